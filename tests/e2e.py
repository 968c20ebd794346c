"""A real hub on 127.0.0.1 and real agents enrolled into it, for end-to-end tests and benches."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from edge_agent.agent import Agent, AgentConfig
from edge_agent.hubclient import HubClient
from edge_agent.identity import Identity
from edge_agent.players.base import Player
from edge_agent.profile import load_profile
from edge_agent.speech import SpeechEngine
from edge_agent.tone import write_tone
from hub.app import create_app
from hub.auth import Role, create_user
from hub.db import open_database
from hub.store import accounts
from hub.testing import hub_config
from loa_contract import VN_TZ, utcnow

ADMIN = "admin"
ADMIN_PASSWORD = "Th1s-is-long!"


class ApiFailure(AssertionError):
    pass


@dataclass
class LiveHub:
    """A hub served on a real socket; `stop()` and `start()` keep its data and its port."""

    data_dir: Path
    port: int = 0
    runner: web.AppRunner | None = None
    token: str | None = None
    session: aiohttp.ClientSession | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: HubConfig fields of this node (e.g. public_url for one of several nodes).
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def app(self) -> web.Application:
        assert self.runner is not None
        return self.runner.app

    async def start(self) -> None:
        config = hub_config(self.data_dir, **{"scrypt_n": 2**4, **self.config})
        db = await open_database(config.database_url, config.db_path)
        if await accounts.by_username(db, ADMIN) is None:
            await create_user(
                db, ADMIN, ADMIN_PASSWORD, Role.ADMIN, "province", scrypt_n=2**4, now=utcnow()
            )
        await db.close()
        self.runner = web.AppRunner(create_app(config), access_log=None, shutdown_timeout=1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if self.port == 0:
            self.port = self.runner.addresses[0][1]
        await self.login()

    async def login(self, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> None:
        """Sign in (as the admin by default); also how a test talks to a hub node run as its
        own process."""
        if self.session is None:
            self.session = aiohttp.ClientSession()
        self.token = None
        login = await self.call(
            "POST",
            "/api/v1/auth/login",
            json={"username": username, "password": password},
            auth=False,
        )
        self.token = login["token"]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def close(self) -> None:
        await self.stop()
        if self.session is not None:
            await self.session.close()

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        auth: bool = True,
        expect: int | None = None,
    ) -> Any:
        assert self.session is not None
        headers = {}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if content_type:
            headers["Content-Type"] = content_type
        async with self.session.request(
            method, self.url + path, json=json, data=data, headers=headers
        ) as response:
            body = await response.json(content_type=None)
            if expect is not None and response.status != expect:
                raise ApiFailure(f"{method} {path}: {response.status} {body}")
            if expect is None and response.status >= 400:
                raise ApiFailure(f"{method} {path}: {response.status} {body}")
            return body

    async def add_commune(
        self,
        code: str,
        *,
        speaker: list[Any] | None = None,
        board: list[Any] | None = None,
    ) -> dict[str, Any]:
        """A commune whose windows (by default) are open now, for speakers and boards."""
        around = window_around(utcnow())
        windows = {"speaker": speaker or [around], "board": board or [around]}
        return await self.call(
            "POST",
            "/api/v1/communes",
            json={"code": code, "name": f"Xã {code}", "windows": windows},
        )

    async def upload(self, payload: bytes, mime: str) -> dict[str, Any]:
        return await self.call("POST", "/api/v1/media", data=payload, content_type=mime)

    async def publish(self, bulletin: dict[str, Any]) -> dict[str, Any]:
        created = await self.call("POST", "/api/v1/bulletins", json=bulletin)
        return await self.call("POST", f"/api/v1/bulletins/{created['id']}/publish")


class NoUpgradeProxy:
    """A reverse proxy that passes plain HTTP but refuses WebSocket upgrades, as some
    carrier proxies on 3G do: the agent must fall back to polling."""

    def __init__(self, upstream: str, *, date_shift: timedelta | None = None) -> None:
        self.upstream = upstream
        #: Shift the hub's `Date` header by this much (a lying proxy); None passes it as is.
        self.date_shift = date_shift
        self.refused_upgrades = 0
        self.runner: web.AppRunner | None = None
        self.session = aiohttp.ClientSession(auto_decompress=False)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            self.refused_upgrades += 1
            return web.Response(status=403, text="upgrades not allowed")
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self.session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
        ) as upstream:
            body = await upstream.read()
            passed = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "content-encoding")
            }
            if self.date_shift is not None and "Date" in passed:
                hub_date = parsedate_to_datetime(passed["Date"])
                passed["Date"] = format_datetime(hub_date + self.date_shift, usegmt=True)
            return web.Response(status=upstream.status, body=body, headers=passed)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        await self.session.close()


@asynccontextmanager
async def live_hub(data_dir: Path) -> AsyncIterator[LiveHub]:
    """A started LiveHub, closed (with its client session) however the test ends."""
    live = LiveHub(data_dir)
    await live.start()
    try:
        yield live
    finally:
        await live.close()


def window_around(
    now: datetime, before: timedelta = timedelta(hours=1), after: timedelta = timedelta(hours=2)
) -> dict[str, Any]:
    """A window open from `before` until `after` now; run near midnight it crosses it, and
    says so (the hub refuses an unconfirmed end before the start)."""
    local = now.astimezone(VN_TZ)
    start, end = (local - before).strftime("%H:%M"), (local + after).strftime("%H:%M")
    return {"start": start, "end": end, "overnight": end < start}


def schedule(now: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "valid_from": (now - timedelta(minutes=5)).isoformat(),
        "valid_until": (now + timedelta(days=1)).isoformat(),
        **extra,
    }


def tone_bytes(tmp: Path, name: str, seconds: float, frequency: float = 440.0) -> bytes:
    path = write_tone(tmp / f"{name}.wav", frequency=frequency, seconds=seconds)
    return path.read_bytes()


def fast_config(data_dir: Path, **overrides: Any) -> AgentConfig:
    settings: dict[str, Any] = {
        "http_port": None,
        "poll_interval_s": 0.5,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.5,
        "health_interval_s": 3600,
        "report_retry_s": 0.2,
        "manifest_fetch_jitter_s": 0.0,
        "emergency_manifest_jitter_s": 0.0,
    }
    return AgentConfig(data_dir=data_dir, **{**settings, **overrides})


async def enroll_identity(
    hub: LiveHub,
    data_dir: Path,
    *,
    commune: str,
    kind: str,
    profile: str,
    name: str | None = None,
    hub_url: str | None = None,
) -> Identity:
    """A device slot made on the hub and enrolled: its identity saved in `data_dir`, as
    `edge-agent enroll` leaves it for `edge-agent run` (a process or an in-process Agent)."""
    device = await hub.call(
        "POST",
        "/api/v1/devices",
        json={
            "commune": commune,
            "name": name or f"{kind} {data_dir.name}",
            "kind": kind,
            "profile": profile,
        },
    )
    client = HubClient(hub.url)
    try:
        answer = await client.enroll(device["enrollment_code"], "test")
    finally:
        await client.close()
    identity = Identity(
        hub_url=hub_url or hub.url,
        device_id=answer.device_id,
        device_secret=answer.device_secret,
        device_kind=answer.device_kind,
        commune=answer.commune,
        profile=profile,
        hub_keys=answer.hub_keys,
    )
    identity.save(data_dir)
    return identity


async def enroll_agent(
    hub: LiveHub,
    data_dir: Path,
    *,
    commune: str,
    kind: str,
    profile: str,
    player: Player,
    name: str | None = None,
    speech: SpeechEngine | None = None,
    start: bool = True,
    hub_url: str | None = None,
    **config: Any,
) -> Agent:
    identity = await enroll_identity(
        hub, data_dir, commune=commune, kind=kind, profile=profile, name=name, hub_url=hub_url
    )
    agent = Agent(
        fast_config(data_dir, **config), identity, load_profile(profile), player, speech=speech
    )
    if start:
        await agent.start()
    return agent


def headless() -> None:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
