"""What the console and local-page tests share: Debian's chromium, where screenshots go, and
one person's console session at the HTTP level (cookie jar, forms with their CSRF token)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from hub.testing import HubHarness

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: Skips on a developer's machine without chromium; under CI a missing browser fails instead.
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"), reason="needs Debian's chromium"
)
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class ConsoleSession:
    """One person's console in a cookie jar: GETs remember the page's CSRF token, POSTs send
    it (unless told not to) and do not follow the 303, so tests see where it points."""

    def __init__(self, hub: HubHarness) -> None:
        self.hub = hub
        self.base = str(hub.client.make_url("/")).rstrip("/")
        # unsafe: cookies for an IP address host (127.0.0.1).
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    async def get(self, path: str, **kw: Any) -> tuple[int, str]:
        async with self.http.get(self.base + path, **kw) as resp:
            html = await resp.text(errors="replace")
            found = CSRF.search(html)
            if found:
                self.csrf = found[1]
            return resp.status, html

    async def post(
        self, path: str, data: Any = None, *, csrf: bool = True, **kw: Any
    ) -> tuple[int, str, str | None]:
        fields: list[tuple[str, str]] = list(data.items() if isinstance(data, dict) else data or [])
        if csrf:
            fields.append(("csrf", self.csrf))
        async with self.http.post(
            self.base + path, data=fields, allow_redirects=False, **kw
        ) as resp:
            return resp.status, await resp.text(), resp.headers.get("Location")

    async def login(self, username: str, password: str, new_password: str | None = None) -> None:
        """Log in through the form; with `new_password`, also through the forced change."""
        await self.get("/login")
        status, body, location = await self.post(
            "/login", {"username": username, "password": password, "next": "/"}
        )
        assert status == 303, (status, body)
        if location == "/password":
            assert new_password is not None, "the account must change its password first"
            await self.get("/password")
            status, body, location = await self.post(
                "/password",
                {
                    "old_password": password,
                    "new_password": new_password,
                    "repeat_password": new_password,
                },
            )
            assert status == 303, (status, body)
        assert location == "/", location
        # The session's own CSRF token replaces the pre-login one.
        await self.get("/")
