"""The hub process's own figures, for capacity planning (`edge-agent simulate`).

Read over the API rather than from /proc so that the simulator can size a hub on another
machine: CPU seconds and resident memory of this process, and how many devices hold a push
channel to it right now. Admin only: it says nothing about bulletins, but it is the server.
"""

from __future__ import annotations

import os

import psutil
from pydantic import BaseModel

from .auth import Permission
from .routing import Ctx, RouteTable

routes = RouteTable("hub")


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


@routes.get(
    "/api/v1/hub/process",
    summary="This hub process: pid, resident memory, CPU seconds, connected devices (admin)",
    permission=Permission.HUB_PROCESS,
    response=HubProcess,
    errors=[403],
)
async def hub_process(ctx: Ctx) -> HubProcess:
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
    )
