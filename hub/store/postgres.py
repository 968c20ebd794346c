"""PostgreSQL storage (asyncpg): the hub's database when `--database postgresql://…` names one.

The same `hub.store.sql.Database` as hub/db.py's SQLite one, so every store function runs on
either. Statements keep the store's `?` and `:name` parameters; each distinct statement text
is rewritten once to PostgreSQL's `$n` (`translate`, cached per database) and asyncpg
prepares it once per connection.

Writes are serialized as SQLite's are (one writer): a node's writers take turns, and a write
transaction first takes a transaction-scoped advisory lock, so read-then-write steps in the
store (the next running order position, a manifest version) behave as they do on SQLite,
also when several hub nodes share the database. Reads run on any pooled connection and see
committed data.

The pool is `PostgresDatabase.pool`, for what needs a connection of its own (LISTEN).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from loa_contract import utcnow

from ..db import MIGRATIONS, postgres_migration
from .sql import (
    POSTGRES,
    DatabaseDamaged,
    DatabaseError,
    DatabaseUnreachable,
    Dialect,
    Params,
    Tx,
    redacted,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Advisory lock keys (any two numbers of our own): the single writer, and the migrations.
WRITE_LOCK = 0x4C6F6101
MIGRATION_LOCK = 0x4C6F6102

#: How long a connection attempt may take before the server counts as unreachable.
CONNECT_TIMEOUT_S = 10.0

#: How long closing waits for connections still in use before it cuts them. asyncpg's
#: graceful close waits for ever (its documentation advises a timeout): one connection a
#: stuck task never gives back would hold the hub's shutdown, and so its restart, until
#: systemd killed it.
CLOSE_GRACE_S = 10.0

#: What asyncpg raises when the server is gone or refuses the hub, besides PostgresError.
_CONNECTION_ERRORS = (OSError, asyncpg.InterfaceError, TimeoutError)


@dataclass(frozen=True)
class Statement:
    """A store statement in PostgreSQL's terms: its text with `$n`, and for `:name`
    parameters the names in `$n` order (None: the statement takes positional ones, or none)."""

    sql: str
    names: tuple[str, ...] | None

    def arguments(self, params: Params) -> Sequence[Any]:
        # A mapping may hold more names than the statement uses (a condition left out), as
        # sqlite3 allows: only the statement's own are bound.
        if isinstance(params, Mapping):
            return [params[name] for name in self.names or ()]
        if self.names is not None and params:
            raise TypeError("positional parameters given to a statement with :name ones")
        return params


# A quoted literal or identifier (left as is), a `::` cast, a comment, `?`, `?N` or `:name`.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|::|--[^\n]*|\?(\d*)|:([A-Za-z_]\w*)")


def translate(sql: str) -> Statement:
    """The statement with `?`, `?N` and `:name` parameters as PostgreSQL's `$n`."""
    names: dict[str, int] = {}
    positional = 0
    numbered = False

    def swap(match: re.Match[str]) -> str:
        nonlocal positional, numbered
        number, name = match.group(1), match.group(2)
        if name is not None:
            return f"${names.setdefault(name, len(names) + 1)}"
        if number is None:
            return match.group(0)
        if number:
            numbered = True
            return f"${number}"
        positional += 1
        return f"${positional}"

    text = _TOKENS.sub(swap, sql)
    if names and (positional or numbered):
        raise ValueError(f"a statement mixes ? and :name parameters: {sql[:80]}")
    return Statement(text, tuple(names) if names else None)


def rows_changed(status: str) -> int:
    """The row count of a command's status ("UPDATE 3", "INSERT 0 1"); 0 for others."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else 0


class PostgresTx:
    """A `hub.store.sql.Tx` on one connection inside a transaction."""

    __slots__ = ("_conn", "_statement")
    dialect: Dialect = POSTGRES

    def __init__(self, conn: asyncpg.Connection, statement: Callable[[str], Statement]) -> None:
        self._conn = conn
        self._statement = statement

    async def execute(self, sql: str, params: Params = ()) -> int:
        st = self._statement(sql)
        return rows_changed(await self._conn.execute(st.sql, *st.arguments(params)))

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        st = self._statement(sql)
        # Pipelined: one round trip for the lot, not one per row.
        await self._conn.executemany(st.sql, [st.arguments(params) for params in rows])

    async def fetchone(self, sql: str, params: Params = ()) -> asyncpg.Record | None:
        st = self._statement(sql)
        row: asyncpg.Record | None = await self._conn.fetchrow(st.sql, *st.arguments(params))
        return row

    async def fetchall(self, sql: str, params: Params = ()) -> list[asyncpg.Record]:
        st = self._statement(sql)
        rows: list[asyncpg.Record] = await self._conn.fetch(st.sql, *st.arguments(params))
        return rows

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        st = self._statement(sql)
        return await self._conn.fetchval(st.sql, *st.arguments(params))


class PostgresDatabase:
    """The hub's database on a PostgreSQL server, through an asyncpg pool."""

    dialect: Dialect = POSTGRES

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        #: Open to what needs its own connection (LISTEN/NOTIFY between hub nodes).
        self.pool = pool
        self.url = url
        self._statements: dict[str, Statement] = {}
        self._write_turn = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_connections: int = 10,
        held_since: str | None = None,
    ) -> PostgresDatabase:
        """Connect and bring the schema up to date; DatabaseUnreachable if the server does not
        answer or refuses, DatabaseDamaged if the schema is not one this hub knows, or if the
        database is empty though this node has held data in it since `held_since` (a hub
        made anew would silently forget every account and device). `clock` is SQLite's."""
        del clock
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=1,
                max_size=max_connections,
                statement_cache_size=1024,
                # A server behind a dropped route is named within seconds, not a minute.
                timeout=CONNECT_TIMEOUT_S,
            )
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            raise DatabaseUnreachable(
                f"the hub database {redacted(url)} cannot be reached: {exc}"
            ) from exc
        try:
            await _migrate(pool, url, held_since)
        except BaseException:
            await pool.close()
            raise
        return cls(pool, url)

    def _statement(self, sql: str) -> Statement:
        found = self._statements.get(sql)
        if found is None:
            found = self._statements[sql] = translate(sql)
        return found

    async def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """Close once every connection is given back, or cut off those still held after
        `grace_s` (their work is rolled back by the server), and say so."""
        try:
            await asyncio.wait_for(self.pool.close(), grace_s)
        except TimeoutError:
            # wait_for cancelled the graceful close, which terminates the pool.
            log.warning("database connections still in use %g s into closing; cut off", grace_s)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTx]:
        """A write transaction; it rolls back on any exception, so bad input changes nothing.

        This node's writers take their turn before they take a connection. Were they to take
        a connection first, a burst of writes could hold every one of them waiting for the
        write lock, while the write holding it waits for a connection to read through the
        database: the hub would stop, every request with it."""
        async with self._write_turn, self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
            yield PostgresTx(conn, self._statement)

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    async def write(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """`work` in a transaction of its own (no group commit: the server has its own)."""
        async with self.transaction() as tx:
            return await work(tx)

    # Reads outside a transaction expect no constraint to fail: any error is the database
    # failing, reported as the backend-neutral DatabaseError.
    async def fetchone(self, sql: str, params: Params = ()) -> asyncpg.Record | None:
        st = self._statement(sql)
        try:
            row: asyncpg.Record | None = await self.pool.fetchrow(st.sql, *st.arguments(params))
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            raise self._failed(exc) from exc
        return row

    async def fetchall(self, sql: str, params: Params = ()) -> list[asyncpg.Record]:
        st = self._statement(sql)
        try:
            rows: list[asyncpg.Record] = await self.pool.fetch(st.sql, *st.arguments(params))
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            raise self._failed(exc) from exc
        return rows

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        st = self._statement(sql)
        try:
            return await self.pool.fetchval(st.sql, *st.arguments(params))
        except (asyncpg.PostgresError, *_CONNECTION_ERRORS) as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: BaseException) -> DatabaseError:
        if isinstance(exc, (*_CONNECTION_ERRORS, asyncpg.CannotConnectNowError)):
            return DatabaseUnreachable(
                f"the hub database {redacted(self.url)} cannot be reached: {exc}"
            )
        return DatabaseError(str(exc))


async def schema_version(conn: asyncpg.Connection) -> int:
    """The migrations applied to this database (0: none, a new database)."""
    if await conn.fetchval("SELECT to_regclass('loa_schema')") is None:
        return 0
    version: int = await conn.fetchval("SELECT version FROM loa_schema")
    return version


async def _migrate(pool: asyncpg.Pool, url: str, held_since: str | None) -> None:
    """Apply the migrations this database lacks, all in one transaction, one node at a time."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        current = await schema_version(conn)
        if current == 0 and held_since is not None:
            raise DatabaseDamaged(
                f"the hub database {redacted(url)} is empty, but this hub has held data in it"
                f" since {held_since}; restore the last backup: hub restore --from BACKUP.tar"
                " --data DIR --database URL --force"
            )
        if current == 0:
            await conn.execute("CREATE TABLE loa_schema (version BIGINT NOT NULL)")
            await conn.execute("INSERT INTO loa_schema (version) VALUES (0)")
        if current > len(MIGRATIONS):
            raise DatabaseDamaged(
                f"the hub database {redacted(url)} has schema version {current}, newer than"
                f" this hub's {len(MIGRATIONS)}: run the newer hub, or restore a backup"
            )
        for version in range(current, len(MIGRATIONS)):
            await conn.execute(postgres_migration(MIGRATIONS[version]))
        if current < len(MIGRATIONS):
            await conn.execute("UPDATE loa_schema SET version = $1", len(MIGRATIONS))
            log.info("database migrated from schema version %d to %d", current, len(MIGRATIONS))
