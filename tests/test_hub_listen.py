"""`hub serve` holds a province's reconnection storm in its listen queue: with aiohttp's
default of 128, the SYNs of devices coming back at once after a restart were dropped and
retried 1 s, then 3 s later (bench/hub_load.py saw the kernel's listen overflows)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.support import HubServer
from hub.cli import LISTEN_BACKLOG


def _somaxconn() -> int:
    return int(Path("/proc/sys/net/core/somaxconn").read_text())


async def test_the_hub_listens_with_a_queue_for_a_whole_reconnection_storm(tmp_path: Path) -> None:
    hub = HubServer(tmp_path / "hub")
    await hub.start()
    try:
        # For a listening socket, ss shows the queue's limit as Send-Q.
        ss = await asyncio.create_subprocess_exec(
            "ss", "-Hltn", f"sport = :{hub.port}", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await ss.communicate()
        shown = out.decode().split()
        assert shown, f"nothing listens on {hub.port}"
        assert int(shown[2]) == min(LISTEN_BACKLOG, _somaxconn()) > 128, shown
    finally:
        hub.stop()
