"""The hub process's own figures, for capacity planning (`edge-agent simulate`).

Read over the API rather than from /proc so that the simulator can size a hub on another
machine: CPU seconds and resident memory of this process, and how many devices hold a push
channel to it right now. Admin only: it says nothing about bulletins, but it is the server.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import AsyncIterator
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
    #: Full garbage collections since the hub started, their total and longest pause.
    gc_full_collections: int
    gc_seconds_total: float
    gc_pause_max_s: float


@routes.get(
    "/api/v1/hub/process",
    summary="This hub process: pid, resident memory, CPU seconds, connected devices (admin)",
    permission=Permission.HUB_PROCESS,
    response=HubProcess,
    errors=[403],
)
async def hub_process(ctx: Ctx) -> HubProcess:
    pauses = ctx.request.app[COLLECTOR]
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
        gc_full_collections=pauses.full_collections,
        gc_seconds_total=round(pauses.seconds_total, 3),
        gc_pause_max_s=round(pauses.longest_s, 3),
    )
