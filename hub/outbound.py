"""The hub's one HTTP client for fetching from outside (CAP feeds, CAP resources), with its
one retry policy.

Whoever writes the URL is not trusted: a CAP alert names its resource's `uri`, a feed names
its entries' links. So: http and https only; every address the name resolves to (and every
address literal) must be a public one unless the operator allowed its network
(`HubConfig.outbound_allowed_networks`), which keeps the hub from being made to fetch from
its own loopback, the LAN of the commune offices or a cloud's metadata address; redirects
are followed by hand, at most a few, each new URL checked the same way (aiohttp's own
redirect handling would skip the check for an address literal); the body is cut off at a
size limit; every attempt has a timeout.

Policy: exponential back-off with full jitter, retrying connection errors, timeouts and 5xx
answers, never a refusal (a URL not allowed, a 4xx, a body too large): asking again changes
nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)
from yarl import URL

from .config import HubConfig, Network

#: Redirects followed before giving up (http to https, a moved feed).
MAX_REDIRECTS = 3


class OutboundError(Exception):
    """The fetch did not give a body."""


class OutboundRefused(OutboundError):
    """Not fetched and not worth retrying: a URL or address not allowed, a 4xx, too large."""


class OutboundUnavailable(OutboundError):
    """The far end could not be reached or failed (network error, timeout, 5xx)."""


def address_allowed(address: str, allowed: tuple[Network, ...]) -> bool:
    """A public address, or one inside a network the operator allowed."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in net for net in allowed):
        return True
    return ip.is_global and not ip.is_multicast


def check_form(url: str) -> URL:
    """Raise OutboundRefused unless `url` is http(s) with a host and no credentials."""
    try:
        parsed = URL(url)
    except ValueError as exc:
        raise OutboundRefused(f"not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https"):
        raise OutboundRefused(f"only http and https URLs are fetched, not {parsed.scheme!r}")
    if not parsed.host:
        raise OutboundRefused("the URL has no host")
    if parsed.user or parsed.password:
        raise OutboundRefused("the URL must not carry a user name or password")
    return parsed


def check_url(url: str, allowed: tuple[Network, ...]) -> None:
    """Raise OutboundRefused unless `url` has the right form (`check_form`) and an address
    literal as its host is allowed (names are checked when they resolve)."""
    parsed = check_form(url)
    assert parsed.host is not None
    try:
        literal = ipaddress.ip_address(parsed.host.strip("[]"))
    except ValueError:
        return
    if not address_allowed(str(literal), allowed):
        raise OutboundRefused(f"the address {literal} is not a public one")


class GuardedResolver(AbstractResolver):
    """The system resolver, refusing a name any of whose addresses is not allowed (checked at
    connection time, so a name cannot resolve one way when checked and another when used)."""

    def __init__(self, allowed: tuple[Network, ...]) -> None:
        self._inner = DefaultResolver()
        self._allowed = allowed

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for entry in found:
            if not address_allowed(entry["host"], self._allowed):
                raise OutboundRefused(f"{host} resolves to {entry['host']}, not a public address")
        return found

    async def close(self) -> None:
        await self._inner.close()


@dataclass(frozen=True)
class Fetched:
    url: str
    content_type: str
    body: bytes


@dataclass(frozen=True)
class Outbound:
    """The limits of one kind of fetch."""

    allowed: tuple[Network, ...]
    timeout_s: float
    attempts: int
    max_bytes: int
    backoff_s: float = 0.5

    @classmethod
    def from_config(cls, config: HubConfig, max_bytes: int) -> Outbound:
        return cls(
            allowed=config.outbound_networks,
            timeout_s=config.outbound_timeout_s,
            attempts=config.outbound_attempts,
            max_bytes=max_bytes,
        )

    async def fetch(self, url: str, headers: dict[str, str] | None = None) -> Fetched:
        """The body at `url` under the retry policy."""
        async for attempt in self._retrying():
            with attempt:
                return await self._attempt(url, headers or {})
        raise AssertionError("unreachable: the retrier re-raises the last error")

    def _retrying(self) -> AsyncRetrying:
        return AsyncRetrying(
            retry=retry_if_exception_type(OutboundUnavailable),
            stop=stop_after_attempt(max(1, self.attempts)),
            wait=wait_random_exponential(multiplier=self.backoff_s, max=30),
            reraise=True,
        )

    def _session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.allowed), use_dns_cache=False
        )
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        return aiohttp.ClientSession(connector=connector, timeout=timeout)

    async def post_json(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST a JSON body under the retry policy (no redirects: a POST is not replayed
        elsewhere); the status of a 2xx answer, OutboundError otherwise."""
        async for attempt in self._retrying():
            with attempt:
                return await self._post(url, body, headers)
        raise AssertionError("unreachable: the retrier re-raises the last error")

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        check_url(url, self.allowed)
        async with self._session() as session:
            try:
                async with session.post(
                    url,
                    data=body,
                    headers={
                        "User-Agent": "loa-hub",
                        "Content-Type": "application/json",
                        **headers,
                    },
                    allow_redirects=False,
                ) as resp:
                    await resp.read()
                    if resp.status >= 500:
                        raise OutboundUnavailable(f"{url} answered {resp.status}")
                    if not 200 <= resp.status < 300:
                        raise OutboundRefused(f"{url} answered {resp.status}")
                    return resp.status
            except OutboundError:
                raise
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise OutboundUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc

    async def _attempt(self, url: str, headers: dict[str, str]) -> Fetched:
        async with self._session() as session:
            for _ in range(MAX_REDIRECTS + 1):
                check_url(url, self.allowed)
                try:
                    async with session.get(
                        url, headers={"User-Agent": "loa-hub", **headers}, allow_redirects=False
                    ) as resp:
                        if resp.status in (301, 302, 303, 307, 308):
                            location = resp.headers.get("Location")
                            if not location:
                                raise OutboundRefused(f"{resp.status} without a Location")
                            url = urljoin(url, location)
                            continue
                        if resp.status >= 500:
                            raise OutboundUnavailable(f"{url} answered {resp.status}")
                        if resp.status != 200:
                            raise OutboundRefused(f"{url} answered {resp.status}")
                        return Fetched(url, resp.content_type, await self._body(resp))
                except OutboundError:
                    raise
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    cause: Any = exc.__cause__ or exc
                    if isinstance(cause, OutboundRefused):
                        raise cause from None
                    raise OutboundUnavailable(f"{url}: {type(exc).__name__}: {exc}") from exc
        raise OutboundRefused(f"more than {MAX_REDIRECTS} redirects")

    async def _body(self, resp: aiohttp.ClientResponse) -> bytes:
        if resp.content_length is not None and resp.content_length > self.max_bytes:
            raise OutboundRefused(f"{resp.content_length} bytes, more than {self.max_bytes}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > self.max_bytes:
                raise OutboundRefused(f"more than {self.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
