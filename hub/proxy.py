"""The hub behind a TLS reverse proxy: trust X-Forwarded-Proto/-For only from named proxies.

Behind nginx the hub sees plain HTTP from the proxy's address: without this, the console
cookie never gets `Secure` and the audit log records the proxy instead of the person. A
forwarded header from any other address is ignored, or anyone could claim any address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import TypedDict

from aiohttp import web

from .appkeys import CONFIG
from .config import Network

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _trusted(remote: str | None, networks: tuple[Network, ...]) -> bool:
    if not remote or not networks:
        return False
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return False
    return any(address in network for network in networks)


def forwarded_client(
    remote: str | None, proto: str | None, forwarded_for: str | None, networks: tuple[Network, ...]
) -> tuple[str | None, str | None]:
    """(scheme, client address) the request really came with, or (None, None) to keep its own.

    X-Forwarded-For is walked from the right: each trusted proxy appended the address it saw,
    so the first address from the right that is not a trusted proxy is the client.
    """
    if not _trusted(remote, networks):
        return None, None
    scheme = None
    if proto:
        first = proto.split(",")[0].strip().lower()
        if first in ("http", "https"):
            scheme = first
    client = None
    if forwarded_for:
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                break  # a garbled chain: keep the proxy's own address
            client = hop
            if not _trusted(hop, networks):
                break
    return scheme, client


class _Forwarded(TypedDict, total=False):
    """What a trusted proxy may change of a request (keywords of `Request.clone`)."""

    scheme: str
    remote: str


@web.middleware
def forwarded_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Not a coroutine: it only rewrites the request, so it hands back the handler's awaitable
    instead of awaiting it, and keeps no frame alive for as long as the handler runs (a
    device's WebSocket: months, times 10,000 devices)."""
    networks = request.app[CONFIG].trusted_proxy_networks
    scheme, client = forwarded_client(
        request.remote,
        request.headers.get("X-Forwarded-Proto"),
        request.headers.get("X-Forwarded-For"),
        networks,
    )
    if scheme is None and client is None:
        return handler(request)
    changes: _Forwarded = {}
    if scheme is not None:
        changes["scheme"] = scheme
    if client is not None:
        changes["remote"] = client
    return handler(request.clone(**changes))
