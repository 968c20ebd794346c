"""Connected device sockets and signed pushes to them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from loa_contract import (
    Command,
    CommandDocument,
    EmergencyCancel,
    EmergencyStart,
    HubSigner,
    ManifestBulletin,
    ManifestReady,
    Scope,
    utcnow,
)

log = logging.getLogger(__name__)


class Socket(Protocol):
    """The part of aiohttp's WebSocketResponse the registry uses (tests pass fakes)."""

    @property
    def closed(self) -> bool: ...

    async def send_str(self, data: str, compress: int | None = None) -> None: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


class Connection:
    def __init__(self, device_id: str, socket: Socket) -> None:
        self.device_id = device_id
        self.socket = socket
        # One sender at a time keeps a manifest_ready from overtaking the emergency before it.
        self.lock = asyncio.Lock()
        self.connected_at = utcnow()


def command_fields(device_id: str, now: datetime, ttl: timedelta) -> dict[str, Any]:
    return {**broadcast_fields(now, ttl), "device_id": device_id}


def broadcast_fields(now: datetime, ttl: timedelta) -> dict[str, Any]:
    return {"command_id": str(uuid.uuid4()), "issued_at": now, "expires_at": now + ttl}


class Connections:
    """Registry of live device WebSockets; one per device (a reconnect replaces the old one)."""

    def __init__(self, signer: HubSigner, send_timeout_s: float = 5.0) -> None:
        self._signer = signer
        self._send_timeout_s = send_timeout_s
        self._by_device: dict[str, Connection] = {}

    def __len__(self) -> int:
        return len(self._by_device)

    def is_online(self, device_id: str) -> bool:
        conn = self._by_device.get(device_id)
        return conn is not None and not conn.socket.closed

    def online_ids(self) -> set[str]:
        return {d for d, c in self._by_device.items() if not c.socket.closed}

    def register(self, device_id: str, socket: Socket) -> tuple[Connection, Connection | None]:
        """Returns the new connection and the one it replaced (the caller closes that)."""
        conn = Connection(device_id, socket)
        old = self._by_device.get(device_id)
        self._by_device[device_id] = conn
        return conn, old

    def unregister(self, conn: Connection) -> None:
        if self._by_device.get(conn.device_id) is conn:
            del self._by_device[conn.device_id]

    def sign(self, command: Command) -> str:
        envelope = self._signer.sign(CommandDocument(command=command))
        return envelope.model_dump_json()

    async def send_to(self, conn: Connection, frame: str) -> bool:
        try:
            async with conn.lock:
                if conn.socket.closed:
                    return False
                await asyncio.wait_for(conn.socket.send_str(frame), self._send_timeout_s)
            return True
        except (ConnectionError, RuntimeError, TimeoutError) as exc:
            log.info("push to %s failed: %r; dropping the socket", conn.device_id, exc)
            self.unregister(conn)
            with contextlib.suppress(Exception):
                await conn.socket.close()
            return False

    async def send(self, device_id: str, command: Command) -> bool:
        conn = self._by_device.get(device_id)
        if conn is None or conn.socket.closed:
            return False
        return await self.send_to(conn, self.sign(command))

    async def push(self, device_ids: Iterable[str], build: Callable[[str], Command]) -> int:
        """Sign one command per online device and send them all concurrently.

        Signing is per device because each command names its device: a captured command
        cannot be replayed to another loudspeaker.
        """
        jobs = []
        for device_id in device_ids:
            conn = self._by_device.get(device_id)
            if conn is None or conn.socket.closed:
                continue
            jobs.append(self.send_to(conn, self.sign(build(device_id))))
        if not jobs:
            return 0
        results = await asyncio.gather(*jobs)
        return sum(1 for ok in results if ok)

    async def push_manifest_ready(self, versions: dict[str, int], ttl: timedelta) -> int:
        now = utcnow()
        return await self.push(
            versions,
            lambda d: ManifestReady(**command_fields(d, now, ttl), version=versions[d]),
        )

    async def broadcast(self, device_ids: Iterable[str], frame: str) -> int:
        """Send the same signed frame to every online device among `device_ids`."""
        jobs = []
        for device_id in device_ids:
            conn = self._by_device.get(device_id)
            if conn is None or conn.socket.closed:
                continue
            jobs.append(self.send_to(conn, frame))
        if not jobs:
            return 0
        results = await asyncio.gather(*jobs)
        return sum(1 for ok in results if ok)

    def emergency_start_frame(self, bulletin: ManifestBulletin, scope: Scope) -> str:
        """One signed frame for every device in `scope`: each checks it is inside."""
        now = utcnow()
        ttl = bulletin.schedule.valid_until - now
        return self.sign(
            EmergencyStart(**broadcast_fields(now, ttl), scope=scope, bulletin=bulletin)
        )

    async def push_emergency_start(
        self, device_ids: Iterable[str], bulletin: ManifestBulletin, scope: Scope
    ) -> int:
        return await self.broadcast(device_ids, self.emergency_start_frame(bulletin, scope))

    async def push_emergency_cancel(
        self, device_ids: Iterable[str], bulletin_id: str, scope: Scope, ttl: timedelta
    ) -> int:
        command = EmergencyCancel(
            **broadcast_fields(utcnow(), ttl), scope=scope, bulletin_id=bulletin_id
        )
        return await self.broadcast(device_ids, self.sign(command))

    async def close_all(self) -> None:
        conns = list(self._by_device.values())
        self._by_device.clear()
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.socket.close(code=1001, message=b"hub shutting down")
