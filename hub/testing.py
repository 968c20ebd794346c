"""A real hub on 127.0.0.1 for tests and simulations: real socket, real SQLite (or the
PostgreSQL tests/conftest.py gives each test when LOA_TEST_DATABASE=postgres), real keys."""

from __future__ import annotations

import asyncio
import gc
import os
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse, ClientWebSocketResponse
from aiohttp.test_utils import TestClient, TestServer

from loa_contract import (
    AckStatus,
    CommandAck,
    CommandDocument,
    EnrollResponse,
    Manifest,
    TrustedKeys,
    utcnow,
)

from .app import create_app
from .appkeys import CLOCK, DB, SENT_CACHE, Clock
from .auth import Role, create_user
from .config import HubConfig
from .db import Database, open_database
from .store import accounts, bulletins, devices

ADMIN = "admin"
ADMIN_PASSWORD = "Chang3-me!now"


class HubHarness:
    def __init__(self, client: TestClient[Any, Any], config: HubConfig) -> None:
        self.client = client
        self.config = config
        self.token: str | None = None

    @property
    def app(self) -> Any:
        return self.client.app

    @property
    def auth(self) -> dict[str, str]:
        assert self.token is not None
        return {"Authorization": f"Bearer {self.token}"}

    async def login(self, username: str = ADMIN, password: str = ADMIN_PASSWORD) -> str:
        resp = await self.client.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert resp.status == 200, await resp.text()
        self.token = (await resp.json())["token"]
        return self.token

    async def user(
        self,
        username: str,
        role: str,
        unit: str | None = None,
        password: str = "Temp-pass1!",
        new_password: str = "Own-pass-2!",
    ) -> HubHarness:
        """Create an account over the API and return a harness logged in as it, its
        temporary password already changed (to `new_password`)."""
        await self.call(
            "POST",
            "/api/v1/users",
            json={"username": username, "role": role, "unit": unit, "password": password},
            expect=201,
        )
        other = HubHarness(self.client, self.config)
        await other.login(username, password)
        body = await other.call(
            "POST",
            "/api/v1/auth/password",
            json={"old_password": password, "new_password": new_password},
        )
        other.token = body["token"]
        return other

    async def call(
        self, method: str, path: str, *, expect: int | None = 200, auth: bool = True, **kw: Any
    ) -> Any:
        headers = dict(kw.pop("headers", {}))
        if auth:
            headers.update(self.auth)
        resp = await self.client.request(method, path, headers=headers, **kw)
        body = await resp.json() if resp.content_type == "application/json" else await resp.read()
        if expect is not None:
            assert resp.status == expect, f"{method} {path}: {resp.status} {body!r}"
        return body

    async def commune(self, code: str = "00001", **kw: Any) -> dict[str, Any]:
        payload = {
            "code": code,
            "name": f"Xã {code}",
            "windows": {
                "speaker": [["05:30", "06:30"], ["17:00", "18:00"]],
                "board": [["06:00", "22:00"]],
            },
            **kw,
        }
        result: dict[str, Any] = await self.call(
            "POST", "/api/v1/communes", json=payload, expect=201
        )
        return result

    async def device(
        self, commune: str = "00001", kind: str = "speaker", name: str | None = None
    ) -> dict[str, Any]:
        payload = {"commune": commune, "name": name or f"{kind} {commune}", "kind": kind}
        result: dict[str, Any] = await self.call(
            "POST", "/api/v1/devices", json=payload, expect=201
        )
        return result

    async def enroll(self, code: str) -> EnrolledDevice:
        resp = await self.client.post(
            "/api/v1/enroll", json={"code": code, "agent_version": "test"}
        )
        assert resp.status == 201, await resp.text()
        return EnrolledDevice(self, EnrollResponse.model_validate(await resp.json()))

    async def new_device(self, commune: str = "00001", kind: str = "speaker") -> EnrolledDevice:
        slot = await self.device(commune, kind)
        return await self.enroll(slot["enrollment_code"])

    async def backdate(self, since: datetime, device_id: str, *bulletin_ids: str) -> None:
        """Move a device's enrollment and bulletins' publication and valid_from back to
        `since`: the API only makes them now, and the hub credits a device only with airings
        made after its enrollment of bulletins valid at the time (hub/play_evidence.py).

        These writes go behind the hub's back (no manifest version is raised), so what the
        hub kept of the bulletins between report batches is dropped too."""
        self.app[SENT_CACHE].clear()
        db: Database = self.app[DB]
        async with db.transaction() as tx:
            await devices.backdate_enrollment(tx, device_id, since)
            for bulletin_id in bulletin_ids:
                await bulletins.backdate(tx, bulletin_id, since)

    async def upload(
        self, data: bytes, content_type: str = "application/octet-stream", expect: int = 201
    ) -> Any:
        return await self.call(
            "POST",
            "/api/v1/media",
            data=data,
            headers={"Content-Type": content_type},
            expect=expect,
        )


class EnrolledDevice:
    """The hub-facing half of an agent, enough to test the contract."""

    def __init__(self, hub: HubHarness, enrollment: EnrollResponse) -> None:
        self.hub = hub
        self.enrollment = enrollment
        self.id = enrollment.device_id
        self.keys = TrustedKeys(enrollment.hub_keys)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Device {self.id}:{self.enrollment.device_secret}"}

    async def get(self, path: str, **kw: Any) -> ClientResponse:
        headers = {**self.headers, **kw.pop("headers", {})}
        return await self.hub.client.get(path, headers=headers, **kw)

    async def manifest(self) -> tuple[Manifest, str]:
        resp = await self.get("/api/v1/device/manifest")
        assert resp.status == 200, await resp.text()
        return self.keys.open(await resp.read(), Manifest), resp.headers["ETag"]

    async def report(self, reports: list[dict[str, Any]], stream: str = "") -> tuple[int, Any]:
        resp = await self.hub.client.post(
            "/api/v1/device/reports",
            headers=self.headers,
            json={"stream": stream, "reports": reports},
        )
        return resp.status, await resp.json()

    @asynccontextmanager
    async def socket(self) -> AsyncIterator[DeviceSocket]:
        ws = await self.hub.client.ws_connect("/api/v1/device/ws", headers=self.headers)
        try:
            yield DeviceSocket(ws, self.keys, self.hub.app[CLOCK])
        finally:
            await ws.close()


class DeviceSocket:
    def __init__(self, ws: ClientWebSocketResponse, keys: TrustedKeys, clock: Clock) -> None:
        self.ws = ws
        self.keys = keys
        self.clock = clock

    async def command(self) -> Any:
        """The next pushed command, verified. The time limit only bounds a failing test."""
        async with asyncio.timeout(5.0):
            frame = await self.ws.receive_str()
        return self.keys.open(frame, CommandDocument).command

    async def ack(
        self, command_id: str, status: str, reason: str | None = None, detail: str | None = None
    ) -> None:
        """Answer a command as an agent does (a CommandAck frame on this socket)."""
        ack = CommandAck(
            command_id=command_id,
            status=AckStatus(status),
            reason=reason,
            detail=detail,
            at=self.clock(),
        )
        await self.ws.send_str(ack.model_dump_json(exclude_none=True))


def health_report(seq: int, at: datetime, **fields: Any) -> dict[str, Any]:
    """A minimal health sample as a device sends it; `fields` add to or replace its values."""
    return {
        "type": "health",
        "seq": seq,
        "at": at.isoformat(),
        "cpu_percent": 3.5,
        "memory_used_bytes": 1,
        "memory_total_bytes": 2,
        "filesystem_avail_bytes": 3,
        "filesystem_size_bytes": 4,
        "boot_time_seconds": 5.0,
        "player_state": "idle",
        "volume": 70,
        **fields,
    }


class FakeClock:
    """A clock tests move by hand, so idle and expiry rules are tested without sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def database_for_tests() -> str | None:
    """The PostgreSQL database of the running test (tests/conftest.py names a fresh one per
    test in LOA_TEST_DATABASE_URL), or None: the SQLite file in the hub's data folder."""
    return os.environ.get("LOA_TEST_DATABASE_URL") or None


def hub_config(data_dir: Path, **fields: Any) -> HubConfig:
    """A test hub's configuration on the test's database (see `database_for_tests`)."""
    return HubConfig(data_dir=data_dir, **{"database_url": database_for_tests(), **fields})


@asynccontextmanager
async def running_hub(
    data_dir: Path, *, clock: Clock | None = None, **overrides: Any
) -> AsyncIterator[HubHarness]:
    # Low scrypt cost: tests log in often; production keeps the default.
    config = hub_config(data_dir, **{"scrypt_n": 2**8, **overrides})
    clock = clock or utcnow
    db = await open_database(config.database_url, config.db_path, clock=clock)
    try:
        # A restored or reused data folder already has its admin.
        if await accounts.by_username(db, ADMIN) is None:
            await create_user(
                db,
                ADMIN,
                ADMIN_PASSWORD,
                Role.ADMIN,
                None,
                scrypt_n=config.scrypt_n,
                now=clock(),
            )
    finally:
        await db.close()
    server = TestServer(create_app(config, clock=clock), host="127.0.0.1")
    client: TestClient[Any, Any] = TestClient(server)
    await client.start_server()
    try:
        harness = HubHarness(client, config)
        await harness.login()
        yield harness
    finally:
        await _shut_down(client)


#: Longer than any shutdown grace of the hub's own (pushes 5 s, database 10 s).
SHUTDOWN_LIMIT_S = 60.0


async def _shut_down(client: TestClient[Any, Any]) -> None:
    """Stop the hub, or fail naming what it still waits for: a shutdown that hangs would
    otherwise show only as pytest's timeout, with the event loop idle in select()."""
    closing = asyncio.create_task(client.close(), name="hub shutdown")
    done, _ = await asyncio.wait({closing}, timeout=SHUTDOWN_LIMIT_S)
    if closing in done:
        closing.result()
        return
    waits = [
        f"{task.get_name()}: " + " -> ".join(_awaiting(task.get_coro()))
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
    ]
    closing.cancel()
    raise AssertionError(
        f"the hub did not shut down within {SHUTDOWN_LIMIT_S:g} s; its tasks wait in:\n"
        + "\n".join(waits)
        + "\nand the project's coroutines suspended now (an async generator's step, as a"
        " cleanup context's, hides what it awaits from the task):\n" + "\n".join(_suspended_here())
    )


def _suspended_here() -> list[str]:
    root = str(Path(__file__).resolve().parent.parent)
    found = []
    for obj in gc.get_objects():
        if isinstance(obj, types.CoroutineType):
            frame = obj.cr_frame
        elif isinstance(obj, types.AsyncGeneratorType):
            frame = obj.ag_frame
        else:
            continue
        if frame is None:  # finished
            continue
        where = frame.f_code.co_filename
        if where.startswith(root) and "site-packages" not in where:
            found.append(f"{frame.f_code.co_qualname} ({where}:{frame.f_lineno})")
    return sorted(found)


def _awaiting(coro: Any) -> list[str]:
    """Where a suspended coroutine waits, outermost first (a task's own stack shows only
    its outer frame)."""
    chain: list[str] = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(
                f"{frame.f_code.co_qualname} ({frame.f_code.co_filename}:{frame.f_lineno})"
            )
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return chain
