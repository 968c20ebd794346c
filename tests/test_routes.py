"""Every route the hub's router really serves, walked one by one without a session.

The API's own route table is tested in test_accounts; this walks aiohttp's router instead, so a
page or endpoint mounted by any other means cannot slip past the session check.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from hub.testing import HubHarness, running_hub

#: Open without a session, and why.
PUBLIC = {
    ("GET", "/login"),  # the way in
    ("POST", "/login"),  # guarded by its CSRF token instead
    ("GET", "/healthz"),  # the load balancer's probe: says only {"ok": true}
    ("GET", "/api/v1/openapi.json"),  # the contract, no data
    ("GET", "/api/v1/cap/feed.atom"),  # what loudspeakers air in public, for other systems
    ("GET", "/api/v1/exchange/keys"),  # public keys, for lower hubs to pin
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/enroll"),  # needs a one-time enrollment code instead
}
#: Device endpoints: they answer 401 without the device secret (checked below all the same).
DEVICE_PREFIX = "/api/v1/device/"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        yield harness


def _served(app: web.Application) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue  # aiohttp adds HEAD beside every GET; the GET is walked
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        assert path, route
        seen.append((route.method, str(path)))
    return seen


async def test_every_served_route_needs_a_session(hub: HubHarness) -> None:
    routes = _served(hub.app)
    assert len(routes) > 40
    static = [path for _method, path in routes if path.startswith("/static")]
    assert static == ["/static"], "only the stylesheet and scripts folder is static"
    checked = 0
    for method, path in routes:
        if (method, path) in PUBLIC or path == "/static":
            continue
        url = re.sub(r"{sha256[^}]*}", "0" * 64, path)
        url = re.sub(r"{(\w+)(:[^}]*)?}", "x", url)
        resp = await hub.client.request(method, url, allow_redirects=False)
        if path.startswith("/api/"):
            assert resp.status == 401, (method, path, resp.status)
            assert (await resp.json())["error"] == "unauthorized", (method, path)
        else:
            assert resp.status in (302, 303, 401), (method, path, resp.status)
            if resp.status != 401:
                assert resp.headers["Location"].startswith("/login"), (method, path)
        checked += 1
    assert checked == len(routes) - len(PUBLIC) - 1


async def test_public_routes_say_nothing_about_the_fleet(hub: HubHarness) -> None:
    assert await hub.call("GET", "/healthz", auth=False) == {"ok": True}
    resp = await hub.client.get("/static/console.css")
    assert resp.status == 200
    # The static folder serves files, never a directory listing.
    assert (await hub.client.get("/static/")).status in (403, 404)
    # A device endpoint refuses an operator's own token just as it refuses nobody.
    await hub.login()
    for method, path in _served(hub.app):
        if path.startswith(DEVICE_PREFIX):
            url = re.sub(r"{(\w+)(:[^}]*)?}", "x", path)
            resp = await hub.client.request(method, url, headers=hub.auth)
            assert resp.status == 401, (method, path)


async def test_json_nested_past_the_parsers_limit_is_a_400_on_every_json_route(
    hub: HubHarness,
) -> None:
    """Deep nesting used to raise RecursionError (500) on every JSON route, anonymous ones
    (login, enroll) included; a device's routes are tried with a device's credentials."""
    from hub.appkeys import ROUTES

    await hub.commune("00001")
    device = await hub.new_device()
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    shallow_but_deep = "[" * 900 + "]" * 900  # under the parser's limit: still a clean 4xx
    tried = 0
    for spec in hub.app[ROUTES]:
        if spec.body is None:
            continue
        url = re.sub(r"{(\w+)}", "x", spec.path)
        headers = {"Content-Type": "application/json"}
        headers.update(device.headers if spec.auth == "device" else hub.auth)
        for body in (deep, shallow_but_deep):
            resp = await hub.client.request(spec.method, url, data=body, headers=headers)
            assert 400 <= resp.status < 500, (spec.path, resp.status, await resp.text())
            assert "error" in await resp.json()
        tried += 1
    assert tried >= 13
