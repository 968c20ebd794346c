"""The node bus on PostgreSQL (hub/node_bus.py has the design): `node_events` rows, and a
NOTIFY on `CHANNEL` naming each new row's id.

Publishing inserts the row and notifies in one transaction under an advisory lock, so ids
become visible in the order they were given: a listener that read up to id N never meets a
smaller id committed later. NOTIFY is delivered at commit.

Listening uses a connection of its own (not the pool's: a pool connection may be closed
under it). The notification is a hint that wakes the reader; the reader reads every row
after the last id it delivered. It also reads every `CHECK_S` seconds without a hint, which
notices a lost notification and a connection that died silently (its query fails); a dead
connection is replaced with back-off, LISTEN is issued again, and the rows written
meanwhile are read before anything else. Rows older than `KEEP` are pruned by whichever node
reads them then.

Each node also keeps its row of `node_presence` fresh from the same loop (every `check_s`,
dated by the database server's clock, so nodes whose clocks differ still see each other),
with the address the others reach it at: the nodes seen within `PRESENT_FOR` are its peers;
and its rows of `device_sockets` (the devices connected to it, written as the changes since
the last time), so every node's console shows a device online whichever node holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

import asyncpg

from ..db import iso
from ..node_bus import EventKind, NodeEvent, Receiver
from .postgres import CONNECT_TIMEOUT_S, PostgresDatabase

log = logging.getLogger(__name__)

CHANNEL = "loa_node_events"
#: How the listening connections are named in pg_stat_activity.
LISTENER_NAME = "loa-node-bus"
#: Advisory lock key publishing takes (see WRITE_LOCK in hub/store/postgres.py).
PUBLISH_LOCK = 0x4C6F6103
#: Read the table this often even without a notification.
CHECK_S = 2.0
#: A node not heard from for this long is no longer counted among the peers.
PRESENT_FOR = timedelta(seconds=10)
#: Events older than this are pruned: a node away longer reloads what matters (active
#: emergencies) when it starts, and its devices reconnect and catch up from manifests.
KEEP = timedelta(minutes=30)
#: Back-off between attempts to get the listening connection back.
RECONNECT_MIN_S = 0.2
RECONNECT_MAX_S = 5.0

#: The database server's time in seconds since the epoch: what presence is dated by.
_SERVER_NOW = "EXTRACT(EPOCH FROM clock_timestamp())"

_CONNECTION_ERRORS = (OSError, asyncpg.InterfaceError, asyncpg.PostgresError, TimeoutError)


class PostgresBus:
    """Events between the hub nodes of one PostgreSQL database."""

    def __init__(
        self,
        db: PostgresDatabase,
        *,
        clock: Callable[[], datetime],
        url: str | None,
        check_s: float = CHECK_S,
    ) -> None:
        """`url` is the address the other nodes reach this one at (None: they cannot fetch
        from it, but it still holds devices)."""
        self.node_id = uuid.uuid4().hex
        self._db = db
        self._clock = clock
        self._url = url
        self._check_s = check_s
        self._present_for = max(PRESENT_FOR, timedelta(seconds=5 * check_s))
        #: The devices this node last wrote as connected to it.
        self._told: set[str] = set()
        self._connected: Callable[[], set[str]] = set
        self._elsewhere: tuple[float, set[str]] | None = None
        self._last_id = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Set while the listening connection is up and caught up (tests wait on it).
        self.listening = asyncio.Event()
        #: Why it is not listening, once it lost its connection (see `trouble`), and an
        #: event set meanwhile (tests wait on it).
        self._lost: str | None = None
        self.deaf = asyncio.Event()

    @property
    def shared(self) -> bool:
        return True

    def trouble(self) -> str | None:
        if self._task is not None and self._task.done() and not self._task.cancelled():
            return "the node bus listener stopped"
        return self._lost

    async def publish(self, kind: EventKind, body: dict[str, Any]) -> None:
        text = json.dumps(body, separators=(",", ":"))
        async with self._db.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", PUBLISH_LOCK)
            event_id = await conn.fetchval(
                "INSERT INTO node_events (node, kind, body, at) VALUES ($1, $2, $3, $4)"
                " RETURNING id",
                self.node_id,
                kind,
                text,
                iso(self._clock()),
            )
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(event_id))

    async def peers(self) -> list[str | None]:
        rows = await self._db.fetchall(
            f"SELECT url FROM node_presence WHERE last_seen >= {_SERVER_NOW} - ? AND node <> ?"
            " ORDER BY last_seen DESC",
            (self._present_for.total_seconds(), self.node_id),
        )
        return [row["url"] for row in rows]

    async def online_elsewhere(self) -> set[str]:
        # The others write theirs every check_s: a read half as old loses nothing, and an
        # emergency's answer or a fleet page does not wait for the query each time.
        kept = self._elsewhere
        if kept is not None and time.monotonic() - kept[0] < self._check_s / 2:
            return kept[1]
        rows = await self._db.fetchall(
            "SELECT DISTINCT s.device_id FROM device_sockets s JOIN node_presence p"
            f" ON p.node = s.node WHERE p.last_seen >= {_SERVER_NOW} - ? AND s.node <> ?",
            (self._present_for.total_seconds(), self.node_id),
        )
        found = {row[0] for row in rows}
        self._elsewhere = (time.monotonic(), found)
        return found

    async def tell_presence(self, conn: asyncpg.Connection | None = None) -> None:
        """Write now that this node is alive, reached at its URL, with these devices connected
        to it (the listening loop does so every check_s, on its own connection)."""
        now = self._connected()
        gone, new = self._told - now, now - self._told
        async with (
            self._db.pool.acquire() if conn is None else contextlib.nullcontext(conn) as c,
            c.transaction(),
        ):
            await c.execute(
                f"INSERT INTO node_presence (node, url, last_seen) VALUES ($1, $2, {_SERVER_NOW})"
                " ON CONFLICT (node) DO UPDATE"
                " SET url = excluded.url, last_seen = excluded.last_seen",
                self.node_id,
                self._url,
            )
            if gone:
                await c.execute(
                    "DELETE FROM device_sockets WHERE node = $1 AND device_id = ANY($2::text[])",
                    self.node_id,
                    sorted(gone),
                )
            if new:
                await c.executemany(
                    "INSERT INTO device_sockets (device_id, node) VALUES ($1, $2)"
                    " ON CONFLICT DO NOTHING",
                    [(d, self.node_id) for d in sorted(new)],
                )
        self._told = now

    async def start(self, receive: Receiver, connected: Callable[[], set[str]]) -> None:
        """Deliver events published from now on (what came before is history: a starting
        node loads the active emergencies from the bulletins themselves)."""
        self._connected = connected
        self._last_id = int(
            await self._db.fetchval("SELECT COALESCE(MAX(id), 0) FROM node_events") or 0
        )
        await self.tell_presence()
        self._task = asyncio.create_task(self._listen(receive), name="node-bus-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # Gone at once from the others' peers, not PRESENT_FOR later.
        with contextlib.suppress(*_CONNECTION_ERRORS):
            async with self._db.pool.acquire() as conn, conn.transaction():
                await conn.execute("DELETE FROM device_sockets WHERE node = $1", self.node_id)
                await conn.execute("DELETE FROM node_presence WHERE node = $1", self.node_id)

    def _hint(self, *_: object) -> None:
        self._wake.set()

    async def _listen(self, receive: Receiver) -> None:
        failures = 0
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self._db.url,
                    timeout=CONNECT_TIMEOUT_S,
                    server_settings={"application_name": LISTENER_NAME},
                )
                conn.add_termination_listener(self._hint)
                await conn.add_listener(CHANNEL, self._hint)
                # Listening first, then reading: a row committed in between is read now or
                # announced after; never lost.
                await self._catch_up(conn, receive)
                self._lost = None
                self.deaf.clear()
                self.listening.set()
                failures = 0
                await self._follow(conn, receive)
            except Exception as exc:
                self.listening.clear()
                self._lost = f"not hearing the other hub nodes: {type(exc).__name__}: {exc}"
                self.deaf.set()
                failures += 1
                delay = min(RECONNECT_MAX_S, RECONNECT_MIN_S * 2 ** min(failures, 8))
                if isinstance(exc, _CONNECTION_ERRORS):
                    log.warning(
                        "node bus: listening connection lost (%s); again in %.1f s", exc, delay
                    )
                else:
                    log.exception("node bus: listening failed; again in %.1f s", delay)
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            finally:
                if conn is not None:
                    conn.terminate()

    async def _follow(self, conn: asyncpg.Connection, receive: Receiver) -> None:
        # Intervals by the monotonic clock: the hub's own may be moved (tests) or stepped.
        pruned_at = present_at = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._check_s)
            self._wake.clear()
            if conn.is_closed():
                raise asyncpg.InterfaceError("the listening connection closed")
            await self._catch_up(conn, receive)
            now = time.monotonic()
            if now - present_at >= self._check_s:
                present_at = now
                await self.tell_presence(conn)
            if now - pruned_at > KEEP.total_seconds() / 10:
                pruned_at = now
                gone = iso(self._clock() - KEEP)
                await conn.execute("DELETE FROM node_events WHERE at < $1", gone)
                await conn.execute(
                    f"DELETE FROM node_presence WHERE last_seen < {_SERVER_NOW} - $1",
                    KEEP.total_seconds(),
                )
                await conn.execute(
                    "DELETE FROM device_sockets WHERE node NOT IN (SELECT node FROM node_presence)"
                )

    async def _catch_up(self, conn: asyncpg.Connection, receive: Receiver) -> None:
        rows = await conn.fetch(
            "SELECT id, node, kind, body FROM node_events WHERE id > $1 ORDER BY id",
            self._last_id,
        )
        for row in rows:
            self._last_id = row["id"]
            if row["node"] == self.node_id:
                continue
            event = NodeEvent(cast(EventKind, row["kind"]), json.loads(row["body"]), row["node"])
            try:
                await receive(event)
            except Exception:
                # One event that cannot be delivered must not stop the ones after it.
                log.exception("node bus: delivering %s %s failed", event.kind, row["id"])
