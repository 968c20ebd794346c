"""The agent's local page: its port is open from the agent's start, its code loaded on first use.

The page (aiohttp's web server, jinja2 templates, the local login; edge_agent/local_http.py)
costs the agent several MiB that a speaker playing on a pole spends for nothing until someone
on the commune LAN opens it. So the agent listens at once with a plain asyncio server; the
first connection loads and starts the page, waits for it (about a tenth of a second on a Pi),
and is then handed, with whatever it already sent, to aiohttp. Every later connection goes
straight to aiohttp.

What must count from the start does not wait for the page: the uptime book runs from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .uptime import UptimeBook, kept

if TYPE_CHECKING:
    from aiohttp import web

    from .agent import Agent

log = logging.getLogger("edge_agent.local")

#: What a connection may send before the page is ready; a request line and headers fit.
WAITING_LIMIT = 64 * 1024

ProtocolFactory = Callable[[], asyncio.Protocol]


class _Waiting(asyncio.Protocol):
    """A connection that arrived before the page was loaded: hold its bytes, then hand it on."""

    def __init__(self, page: asyncio.Task[ProtocolFactory]) -> None:
        self._page = page
        self._received = bytearray()
        self._eof = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._page.add_done_callback(self._hand_over)

    def data_received(self, data: bytes) -> None:
        self._received += data
        if len(self._received) > WAITING_LIMIT and self._transport is not None:
            self._transport.abort()

    def eof_received(self) -> bool:
        self._eof = True
        return True  # keep the socket: the answer has yet to be written

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def _hand_over(self, page: asyncio.Task[ProtocolFactory]) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if page.cancelled() or page.exception() is not None:
            transport.abort()
            return
        protocol = page.result()()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._received:
            protocol.data_received(bytes(self._received))
        if self._eof and not protocol.eof_received():
            transport.close()


class LocalServer:
    """The listening socket of the agent's page, and the page once someone has opened it."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.uptime = UptimeBook(agent)
        self._keeping = contextlib.AsyncExitStack()
        self._listener: asyncio.Server | None = None
        self._loading: asyncio.Task[ProtocolFactory] | None = None
        self._runner: web.AppRunner | None = None

    @property
    def page_loaded(self) -> bool:
        return self._runner is not None

    async def start(self, host: str, port: int) -> None:
        await self._keeping.enter_async_context(kept(self.uptime))
        loop = asyncio.get_running_loop()
        # The backlog aiohttp's own TCPSite uses.
        self._listener = await loop.create_server(self._connection, host, port, backlog=128)

    def _connection(self) -> asyncio.Protocol:
        if self._runner is not None and self._runner.server is not None:
            return self._runner.server()
        if self._loading is None:
            self._loading = asyncio.get_running_loop().create_task(self._load())
        return _Waiting(self._loading)

    async def _load(self) -> ProtocolFactory:
        try:
            from aiohttp import web

            from .local_http import create_local_app

            runner = web.AppRunner(
                create_local_app(self.agent, uptime=self.uptime), access_log=None
            )
            await runner.setup()
        except Exception:
            log.exception("the local page could not be loaded")
            self._loading = None  # the next connection tries again
            raise
        assert runner.server is not None
        self._runner = runner
        return runner.server

    async def cleanup(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._loading is not None:
            with contextlib.suppress(Exception):
                await self._loading
        if self._runner is not None:
            await self._runner.cleanup()
        if self._listener is not None:
            await self._listener.wait_closed()
        await self._keeping.aclose()


async def serve_local(agent: Agent, host: str, port: int) -> LocalServer:
    """Listen for the agent's page on host:port; the page loads on its first connection."""
    server = LocalServer(agent)
    await server.start(host, port)
    return server
