"""The database the hub's tests run on: SQLite files (the default), or with
LOA_TEST_DATABASE=postgres a throw-away PostgreSQL server for the session and one migrated
database that each test finds empty: emptied after the test (TRUNCATE, about 50 ms), where
creating a database from a template costs half a second a test and migrating one more.

A test that is about SQLite itself (its files, WAL, damage) is marked
`@pytest.mark.sqlite_only("why")` and skipped on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import sys
from collections.abc import Iterator

import asyncpg
import pytest

from hub.testing_postgres import ThrowawayPostgres

#: What `hub` commands read when --database is not given (hub/cli.py).
DATABASE_ENV = "LOA_DATABASE_URL"
DATABASE = "loa_test"
#: How long a finished run may take to end.
EXIT_LIMIT_S = 120


def on_postgres() -> bool:
    return os.environ.get("LOA_TEST_DATABASE", "sqlite") == "postgres"


async def _migrate(url: str) -> None:
    from hub.store.postgres import PostgresDatabase

    await (await PostgresDatabase.open(url)).close()


async def _empty(url: str, database: str) -> None:
    """Every hub table emptied (ids numbered from 1 again), whatever the test left open.

    Something the test left running may connect again between the terminations and the
    TRUNCATE and hold a lock: TRUNCATE gives up after a few seconds rather than wait for it
    for ever, and the sessions are ended again."""
    conn = await asyncpg.connect(url, timeout=30)
    try:
        tables = [
            r[0]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'loa_schema'"
            )
        ]
        # Replica role: the append-only tables' triggers refuse TRUNCATE, rightly, elsewhere.
        await conn.execute("SET session_replication_role = replica")
        await conn.execute("SET lock_timeout = '5s'")
        for attempt in range(1, 7):
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            try:
                await conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
                return
            except asyncpg.LockNotAvailableError:
                if attempt == 6:
                    raise
    finally:
        await conn.close()


def pytest_unconfigure(config: pytest.Config) -> None:
    """A run whose tests are done but whose process does not end (a thread left waiting, say
    an aiosqlite connection nobody closed) prints every thread's stack and ends with an
    error instead of holding CI until its own limit."""
    faulthandler.dump_traceback_later(EXIT_LIMIT_S, file=sys.__stderr__, exit=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[ThrowawayPostgres | None]:
    if not on_postgres():
        yield None
        return
    with ThrowawayPostgres() as server:
        asyncio.run(_migrate(server.create_database(DATABASE)))
        yield server


@pytest.fixture
def another_database(postgres_server: ThrowawayPostgres | None) -> str | None:
    """A second, empty PostgreSQL database on the test server (a hub restored elsewhere), or
    None on SQLite."""
    if postgres_server is None:
        return None
    return postgres_server.create_database()


@pytest.fixture(autouse=True)
def hub_database(
    request: pytest.FixtureRequest,
    postgres_server: ThrowawayPostgres | None,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    # A database named in the shell (a real hub's) must never be what a test writes to.
    monkeypatch.delenv(DATABASE_ENV, raising=False)
    monkeypatch.delenv("LOA_TEST_DATABASE_URL", raising=False)
    if postgres_server is None:
        yield
        return
    marker = request.node.get_closest_marker("sqlite_only")
    if marker is not None:
        pytest.skip(f"SQLite only: {marker.args[0]}")
    url = postgres_server.dsn(DATABASE)
    monkeypatch.setenv("LOA_TEST_DATABASE_URL", url)
    monkeypatch.setenv(DATABASE_ENV, url)
    yield
    asyncio.run(_empty(url, DATABASE))
