"""The hub behind a TLS reverse proxy: forwarded headers believed only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.proxy import forwarded_client
from hub.testing import HubHarness, running_hub

PROXY = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))
FROM_PROXY = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}


@pytest.mark.parametrize(
    ("remote", "proto", "chain", "expected"),
    [
        ("127.0.0.1", "https", "203.0.113.7", ("https", "203.0.113.7")),
        # Two proxies in a row: the first address from the right that is not a proxy.
        ("127.0.0.1", "https", "203.0.113.7, 10.1.2.3", ("https", "203.0.113.7")),
        # A client cannot push an address in front: only the rightmost untrusted hop counts.
        ("127.0.0.1", "http", "6.6.6.6, 203.0.113.7", ("http", "203.0.113.7")),
        ("192.0.2.1", "https", "203.0.113.7", (None, None)),  # not a proxy: ignored
        ("127.0.0.1", "gopher", None, (None, None)),
        ("127.0.0.1", "HTTPS, http", "not-an-ip", ("https", None)),
        (None, "https", "203.0.113.7", (None, None)),
    ],
)
def test_forwarded_client(
    remote: str | None, proto: str | None, chain: str | None, expected: tuple[Any, Any]
) -> None:
    assert forwarded_client(remote, proto, chain, PROXY) == expected


def test_no_trusted_proxy_believes_nothing() -> None:
    assert forwarded_client("127.0.0.1", "https", "203.0.113.7", ()) == (None, None)


@pytest.fixture
async def proxied(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path / "hub", trusted_proxies=("127.0.0.1",)) as harness:
        yield harness


@pytest.fixture
async def direct(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path / "direct") as harness:
        yield harness


async def _login_address(hub: HubHarness) -> str:
    response = await hub.client.post(
        "/api/v1/auth/login",
        json={"username": "dodac", "password": "Wrong-pass-1!"},
        headers=FROM_PROXY,
    )
    assert response.status == 401
    rows = await hub.call("GET", "/api/v1/audit", params={"action": "auth.login_failed"})
    return rows["items"][0]["address"]


async def test_behind_a_trusted_proxy_the_cookie_is_secure_and_the_client_is_audited(
    proxied: HubHarness,
) -> None:
    response = await proxied.client.get("/login", headers=FROM_PROXY)
    assert response.status == 200
    assert "Secure" in response.headers["Set-Cookie"]
    assert await _login_address(proxied) == "203.0.113.7"


async def test_forwarded_headers_from_anyone_else_are_ignored(direct: HubHarness) -> None:
    response = await direct.client.get("/login", headers=FROM_PROXY)
    assert "Secure" not in response.headers["Set-Cookie"]
    assert await _login_address(direct) == "127.0.0.1"


async def test_cookie_secure_forces_the_flag(tmp_path: Path) -> None:
    async with running_hub(tmp_path / "hub", cookie_secure=True) as hub:
        response = await hub.client.get("/login")
        assert "Secure" in response.headers["Set-Cookie"]
