"""What the hub keeps alive for each connected device: a province holds 10,000 sockets open
for months, and every coroutine frame waiting under a socket's handler is kept as long
(bench/hub_load.py, ≤ 20 KB per device). Middleware that only rewrites the request keeps
none, the error middleware keeps none for a route that answers its own errors, and neither
does the catch-up a device hears on (re)connecting."""

from __future__ import annotations

import asyncio
import gc
import types
from pathlib import Path

import aiohttp

from hub.appkeys import CONNECTIONS
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
    for gone in (
        "forwarded_middleware",
        "error_middleware",
        "_answering_errors",
        "session_middleware",
        "_with_pre_cookie",
        "_catch_up",
    ):
        assert gone not in chain, chain
    # The route answers its own errors in a frame the socket needs anyway.
    assert chain[chain.index("endpoint") + 1] == "device_ws", chain


async def test_a_refused_socket_still_answers_as_json(tmp_path: Path) -> None:
    """The error middleware no longer wraps the socket's route; the route answers itself."""
    upgrade = {"Upgrade": "websocket", "Connection": "Upgrade"}
    async with running_hub(tmp_path) as hub:
        await hub.commune("00001")
        device = await hub.new_device()
        for headers, status, error in (
            ({"Authorization": "Device nobody:wrong"}, 401, "unauthorized"),
            ({}, 401, "unauthorized"),
            # Authenticated, but not a WebSocket handshake: aiohttp's own refusal, as JSON.
            (device.headers, 400, "bad_request"),
        ):
            response = await hub.client.get("/api/v1/device/ws", headers={**upgrade, **headers})
            assert response.status == status, await response.text()
            assert response.content_type == "application/json"
            assert (await response.json())["error"] == error


async def test_a_socket_the_hub_pings_grows_no_dict_of_its_own(tmp_path: Path) -> None:
    """A device whose heartbeat is longer than the hub's is pinged by the hub; aiohttp's
    socket then named attributes past what CPython lays out per class and each socket grew
    a 1.6 KB dict, for months (hub.device_api.PushSocket)."""
    async with running_hub(tmp_path, ws_heartbeat_s=0.05) as hub:
        await hub.commune("00001")
        devices = [await hub.new_device() for _ in range(3)]
        pinged = [asyncio.Event() for _ in devices]

        async def answer_pings(ws: aiohttp.ClientWebSocketResponse, twice: asyncio.Event) -> None:
            pings = 0
            async for message in ws:  # autoping off: each PING is seen, then answered
                if message.type is aiohttp.WSMsgType.PING:
                    await ws.pong(message.data)
                    pings += 1
                    if pings >= 2:
                        twice.set()

        sockets = [
            await hub.client.ws_connect("/api/v1/device/ws", headers=device.headers, autoping=False)
            for device in devices
        ]
        readers = [
            asyncio.create_task(answer_pings(ws, event))
            for ws, event in zip(sockets, pinged, strict=True)
        ]
        try:
            async with asyncio.timeout(10):
                for event in pinged:
                    await event.wait()
            connections = hub.app[CONNECTIONS]
            for device in devices:
                held = connections.connection(device.id)
                assert held is not None
                socket = held.socket
                # An object with a dict of its own hands the collector that dict.
                own = [r for r in gc.get_referents(socket) if isinstance(r, dict) and "_req" in r]
                assert not own, f"a dict of its own, naming {' '.join(own[0])}"
        finally:
            for task in readers:
                task.cancel()
            for ws in sockets:
                await ws.close()
