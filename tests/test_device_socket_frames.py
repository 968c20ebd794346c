"""What the hub keeps alive for each connected device: a province holds 10,000 sockets open
for months, and every coroutine frame waiting under a socket's handler is kept as long
(bench/hub_load.py, ≤ 20 KB per device). Middleware that only rewrites the request keeps
none, and neither does the catch-up a device hears on (re)connecting."""

from __future__ import annotations

import asyncio
import types
from pathlib import Path

from hub.testing import running_hub
from loa_contract import ManifestReady


def _frames_waiting(task: asyncio.Task[object]) -> list[str]:
    """The coroutine frames of `task`, outermost first, down to what it awaits."""
    names = []
    awaited: object = task.get_coro()
    while isinstance(awaited, types.CoroutineType):
        names.append(awaited.cr_code.co_name)
        awaited = awaited.cr_await
    return names


async def test_a_connected_device_keeps_only_the_frames_its_socket_needs(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.commune("00001")
        device = await hub.new_device()
        async with device.socket() as socket:
            assert isinstance(await socket.command(), ManifestReady)
            chains = [
                _frames_waiting(task)
                for task in asyncio.all_tasks()
                if "device_ws" in _frames_waiting(task)
            ]
    assert len(chains) == 1, chains
    chain = chains[0]
    # The error middleware stays: a failure on the socket must still answer as JSON.
    assert "error_middleware" in chain, chain
    for gone in ("forwarded_middleware", "session_middleware", "_with_pre_cookie", "_catch_up"):
        assert gone not in chain, chain
