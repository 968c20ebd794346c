"""`hub serve` gives the C heap's free pages back to the system (hub/process_api.py
HeapTrimmer): after a reconnection storm the pages freed in the middle of the heap would
otherwise stay resident for as long as the hub runs."""

from __future__ import annotations

import asyncio
import ctypes
from pathlib import Path

import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub import process_api
from hub.process_api import HEAP_TRIMMER, HeapTrimmer, _malloc_trim

BLOCK = 8 * 1024  # below glibc's mmap threshold: from the heap, as a socket's buffers are
BLOCKS = 4_000

pytestmark = pytest.mark.skipif(_malloc_trim() is None, reason="the C library has no malloc_trim")


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def test_a_pass_gives_back_the_pages_freed_in_the_middle_of_the_heap() -> None:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(BLOCK) for _ in range(BLOCKS)]
    for block in blocks:
        ctypes.memset(block, 1, BLOCK)  # resident, as live data is
    # Three blocks of every four freed; every fourth, still in use, keeps the heap's top in
    # place, so free() alone returns nothing.
    for i, block in enumerate(blocks):
        if i % 4:
            libc.free(block)
    before = _rss()
    trimmer = HeapTrimmer(_malloc_trim())
    trimmer.trim_now()
    given_back = before - _rss()
    for block in blocks[::4]:
        libc.free(block)
    freed = BLOCK * BLOCKS * 3 // 4
    assert given_back > freed // 2, (given_back, freed)
    assert trimmer.trims == 1 and 0 < trimmer.longest_s < 5


async def test_the_trimmer_runs_beside_the_hub_and_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process_api, "HEAP_TRIM_INTERVAL_S", 0.0)
    app = web.Application()
    app.cleanup_ctx.append(process_api.collector_context)
    app.cleanup_ctx.append(process_api.heap_trim_context)
    async with TestClient(TestServer(app)):
        trimmer = app[HEAP_TRIMMER]
        await asyncio.wait_for(trimmer.ran.wait(), timeout=30)
        assert trimmer.trims >= 1 and trimmer.every_s == 0.0
    # Stopped with the application: no pass after it.
    done = trimmer.trims
    await asyncio.sleep(0)
    assert trimmer.trims == done


async def test_the_process_figures_name_the_passes(tmp_path: Path) -> None:
    from bench.support import ADMIN, PASSWORD, HubServer

    hub = HubServer(tmp_path / "hub")
    hub.add_admin()
    await hub.start()
    try:
        import aiohttp

        async with aiohttp.ClientSession(hub.url) as session:
            async with session.post(
                "/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD}
            ) as response:
                token = (await response.json())["token"]
            async with session.get(
                "/api/v1/hub/process", headers={"Authorization": f"Bearer {token}"}
            ) as response:
                figures = await response.json()
        # `hub serve` trims; its first pass is a minute away.
        assert figures["heap_trim_every_s"] == process_api.HEAP_TRIM_INTERVAL_S
        assert figures["heap_trims"] == 0 and figures["heap_trim_max_s"] == 0.0
    finally:
        hub.stop()
