"""The agent's small HTTP endpoint on the commune LAN (the full local page comes later)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .agent import Agent

AGENT_KEY: web.AppKey[Agent] = web.AppKey("agent")


async def status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[AGENT_KEY].status())


def create_local_app(agent: Agent) -> web.Application:
    app = web.Application()
    app[AGENT_KEY] = agent
    app.router.add_get("/api/status", status)
    return app


async def serve_local(agent: Agent, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(create_local_app(agent), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner
