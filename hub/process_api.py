"""The hub process's own figures, for capacity planning (`edge-agent simulate`).

Read over the API rather than from /proc so that the simulator can size a hub on another
machine: CPU seconds and resident memory of this process, and how many devices hold a push
channel to it right now. Admin only: it says nothing about bulletins, but it is the server.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import os
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import psutil
from aiohttp import web
from pydantic import BaseModel

from .auth import Permission
from .routing import Ctx, RouteTable

routes = RouteTable("hub")


class CollectorPauses:
    """The garbage collector's full collections and how long they held the hub: a full one
    walks every object the hub holds (with 10,000 devices connected, millions), and while it
    runs nothing is answered."""

    def __init__(self) -> None:
        self.full_collections = 0
        self.seconds_total = 0.0
        self.longest_s = 0.0
        self._started: float | None = None

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        elif self._started is not None:
            took = time.perf_counter() - self._started
            self._started = None
            self.full_collections += 1
            self.seconds_total += took
            self.longest_s = max(self.longest_s, took)


COLLECTOR = web.AppKey("collector_pauses", CollectorPauses)


async def collector_context(app: web.Application) -> AsyncIterator[None]:
    pauses = app[COLLECTOR] = CollectorPauses()
    gc.callbacks.append(pauses)
    try:
        yield
    finally:
        gc.callbacks.remove(pauses)


#: How often the C heap's free pages go back to the system (see HeapTrimmer).
HEAP_TRIM_INTERVAL_S = 60.0


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class HeapTrimmer:
    """Gives the C heap's free pages back to the system, once a minute.

    A connection storm (every device reconnecting after a restart or an outage) leaves the
    heap at its high-water mark: glibc's `free` returns only the heap's top to the system,
    and the pages freed in its middle stay resident for as long as the hub runs (5 MB of
    them at 10,000 devices in bench/hub_load.py). `malloc_trim(0)` releases every whole free
    page. It holds the allocator's lock while it walks the heap (milliseconds; the longest is
    reported), so it runs in a worker thread, and only in `hub serve`: the heap is the
    process's, not an application's."""

    def __init__(self, trim: Callable[[int], int] | None) -> None:
        self._trim = trim
        #: None until `run` starts, and where there is nothing to call.
        self.every_s: float | None = None
        self.trims = 0
        self.longest_s = 0.0
        #: Set after the first pass (what a test waits on).
        self.ran = asyncio.Event()

    def trim_now(self) -> None:
        if self._trim is None:
            return
        started = time.perf_counter()
        self._trim(0)
        self.trims += 1
        self.longest_s = max(self.longest_s, time.perf_counter() - started)

    async def run(self, interval_s: float) -> None:
        if self._trim is None:
            return
        self.every_s = interval_s
        while True:
            await asyncio.sleep(interval_s)
            await asyncio.to_thread(self.trim_now)
            self.ran.set()


HEAP_TRIMMER = web.AppKey("heap_trimmer", HeapTrimmer)


async def heap_trim_context(app: web.Application) -> AsyncIterator[None]:
    trimmer = app[HEAP_TRIMMER] = HeapTrimmer(_malloc_trim())
    task = asyncio.create_task(trimmer.run(HEAP_TRIM_INTERVAL_S), name="heap trim")
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class HubProcess(BaseModel):
    pid: int
    #: The hub's clock (seconds since the epoch) when the figures were read: CPU use is
    #: the difference of two answers' cpu seconds over the difference of their `at`.
    at: float
    rss_bytes: int
    cpu_user_s: float
    cpu_system_s: float
    threads: int
    open_files: int
    connected_devices: int
    #: Devices whose socket handshake waits its turn (hub.push.HANDSHAKES_AT_ONCE).
    handshakes_waiting: int
    #: Full garbage collections since the hub started, their total and longest pause.
    gc_full_collections: int
    gc_seconds_total: float
    gc_pause_max_s: float
    #: How often the C heap's free pages go back to the system (None: not at all, outside
    #: `hub serve` or where the C library cannot), how many times they have, the longest pass.
    heap_trim_every_s: float | None
    heap_trims: int
    heap_trim_max_s: float


@routes.get(
    "/api/v1/hub/process",
    summary="This hub process: pid, resident memory, CPU seconds, connected devices (admin)",
    permission=Permission.HUB_PROCESS,
    response=HubProcess,
    errors=[403],
)
async def hub_process(ctx: Ctx) -> HubProcess:
    pauses = ctx.request.app[COLLECTOR]
    trimmer = ctx.request.app.get(HEAP_TRIMMER)
    process = psutil.Process(os.getpid())
    with process.oneshot():
        cpu = process.cpu_times()
        rss = process.memory_info().rss
        threads = process.num_threads()
        files = process.num_fds()
    return HubProcess(
        pid=process.pid,
        at=ctx.now.timestamp(),
        rss_bytes=rss,
        cpu_user_s=cpu.user,
        cpu_system_s=cpu.system,
        threads=threads,
        open_files=files,
        connected_devices=len(ctx.connections.online_ids()),
        handshakes_waiting=ctx.connections.handshakes_waiting,
        gc_full_collections=pauses.full_collections,
        gc_seconds_total=round(pauses.seconds_total, 3),
        gc_pause_max_s=round(pauses.longest_s, 3),
        heap_trim_every_s=trimmer.every_s if trimmer else None,
        heap_trims=trimmer.trims if trimmer else 0,
        heap_trim_max_s=round(trimmer.longest_s, 3) if trimmer else 0.0,
    )
