"""The PostgreSQL backend: the store's statements rewritten for it, the same schema as SQLite's
from the same migrations, the same stored text for times, and writes one at a time."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from hub.db import MIGRATIONS, SqliteDatabase, epoch_us, iso
from hub.store.postgres import PostgresDatabase, Statement, rows_changed, translate
from hub.store.sql import Tx, redacted
from hub.testing_postgres import PostgresUnavailable, ThrowawayPostgres, server_binaries


def test_parameters_become_numbered_once_each() -> None:
    assert translate("SELECT a FROM t WHERE b = ? AND c IN (?, ?)") == Statement(
        "SELECT a FROM t WHERE b = $1 AND c IN ($2, $3)", None
    )
    named = translate("UPDATE t SET a = :a WHERE id = :id AND (b = :a OR c::text = ':x')")
    assert named == Statement(
        "UPDATE t SET a = $1 WHERE id = $2 AND (b = $1 OR c::text = ':x')", ("a", "id")
    )
    assert named.arguments({"id": 7, "a": "x", "unused": 1}) == ["x", 7]
    assert translate("VALUES (?1, ?2, ?1)").sql == "VALUES ($1, $2, $1)"
    # Quoted text and identifiers are left alone, however they look.
    assert translate("SELECT '?', \"a:b\", 'it''s :x' FROM t").sql == (
        "SELECT '?', \"a:b\", 'it''s :x' FROM t"
    )
    assert translate("SELECT 1").arguments({"spare": 1}) == []
    with pytest.raises(ValueError, match="mixes"):
        translate("SELECT ? , :a")
    with pytest.raises(TypeError):
        named.arguments(("x", 7))


def test_status_counts_and_redacted_urls() -> None:
    assert [rows_changed(s) for s in ("UPDATE 3", "INSERT 0 1", "DELETE 0", "BEGIN")] == [
        3,
        1,
        0,
        0,
    ]
    assert redacted("postgresql://loa:s3cret@db.example:5433/hub") == (
        "postgresql://loa:***@db.example:5433/hub"
    )
    assert redacted("postgresql://loa@db/hub") == "postgresql://loa@db/hub"


@pytest.fixture(scope="module")
def server(postgres_server: ThrowawayPostgres | None) -> Iterator[ThrowawayPostgres]:
    """The suite's server on PostgreSQL runs, else one of this module's own (about a second)."""
    if postgres_server is not None:
        yield postgres_server
        return
    try:
        server_binaries()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    with ThrowawayPostgres() as pg:
        yield pg


@pytest.fixture
async def pg(server: ThrowawayPostgres) -> AsyncIterator[PostgresDatabase]:
    db = await PostgresDatabase.open(server.create_database())
    try:
        yield db
    finally:
        await db.close()


async def test_both_backends_build_the_same_schema(pg: PostgresDatabase, tmp_path: Path) -> None:
    sqlite = await SqliteDatabase.open(tmp_path / "hub.sqlite3")
    try:
        tables = [
            r[0]
            for r in await sqlite.fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        on_sqlite = {
            t: {r["name"] for r in await sqlite.fetchall(f"PRAGMA table_info({t})")} for t in tables
        }
    finally:
        await sqlite.close()
    rows = await pg.fetchall(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name <> 'loa_schema'"
    )
    on_postgres: dict[str, set[str]] = {}
    for r in rows:
        on_postgres.setdefault(r["table_name"], set()).add(r["column_name"])
    assert on_postgres == on_sqlite
    assert await pg.fetchval("SELECT version FROM loa_schema") == len(MIGRATIONS)
    # Opening again (another node, a restart) finds nothing left to do.
    again = await PostgresDatabase.open(pg.url)
    await again.close()


async def test_postgresql_stores_the_same_time_text_as_iso(pg: PostgresDatabase) -> None:
    times = [
        datetime(year, month, 28, hour, 59, 59, micro, tzinfo=timezone(offset))
        for year in (1969, 1970, 2026, 9998)
        for month in (1, 12)
        for hour in (0, 23)
        for micro in (0, 1, 500_000, 999_999)
        for offset in (timedelta(0), timedelta(hours=7), timedelta(hours=-9, minutes=-30))
    ]
    sql = f"SELECT {pg.dialect.iso_from_epoch_us(':us')} AS text, "
    sql += f"{pg.dialect.epoch_seconds(':iso')} AS seconds"
    for when in times:
        row = await pg.fetchone(sql, {"us": epoch_us(when), "iso": iso(when)})
        assert row is not None and row["text"] == iso(when), when
        assert row["seconds"] == epoch_us(when) // 1_000_000


async def test_json_fragments_read_the_same_on_both(pg: PostgresDatabase) -> None:
    sqlite = sqlite3.connect(":memory:")
    document = '{"cpu_percent": 12.5, "memory_used_bytes": 3000000000}'
    for key, expected in (("cpu_percent", 12.5), ("memory_used_bytes", 3e9), ("absent", None)):
        got = await pg.fetchval(f"SELECT {pg.dialect.json_number(':doc', key)}", {"doc": document})
        (on_sqlite,) = sqlite.execute(
            f"SELECT {SqliteDatabase.dialect.json_number('?', key)}", (document,)
        ).fetchone()
        assert got == expected and on_sqlite == expected
    values = await pg.fetchall(
        f"SELECT * FROM ({pg.dialect.json_values(':ids', 'BIGINT')}) AS v", {"ids": "[3, 1]"}
    )
    assert sorted(r[0] for r in values) == [1, 3]


async def test_writes_take_turns_and_a_failed_write_leaves_nothing(pg: PostgresDatabase) -> None:
    await pg.execute("CREATE TABLE counter (n BIGINT NOT NULL)")
    await pg.execute("INSERT INTO counter (n) VALUES (0)")

    async def bump(tx: Tx) -> int:
        # Read, then write what was read plus one: lost updates if two ran at once.
        n = await tx.fetchval("SELECT n FROM counter")
        await asyncio.sleep(0)  # let the other writes try to run in between
        return await tx.execute("UPDATE counter SET n = ?", (n + 1,))

    assert await asyncio.gather(*(pg.write(bump) for _ in range(20))) == [1] * 20
    assert await pg.fetchval("SELECT n FROM counter") == 20

    async def half_then_fail(tx: Tx) -> None:
        await tx.execute("UPDATE counter SET n = 100")
        await tx.execute("INSERT INTO counter (n) VALUES (NULL)")

    with pytest.raises(asyncpg.NotNullViolationError):
        await pg.write(half_then_fail)
    assert await pg.fetchval("SELECT n FROM counter") == 20
    assert await pg.fetchval("SELECT count(*) FROM counter WHERE n IS NULL") == 0


async def test_a_burst_of_writes_that_read_as_they_go_cannot_starve_the_pool(
    server: ThrowawayPostgres,
) -> None:
    """More writes at once than the pool has connections, each also reading through the
    database (a separate connection, as a store function called mid-write does): with every
    connection held by a writer waiting for the write lock, the one holding it would wait
    for a connection for ever, and the hub with it."""
    db = await PostgresDatabase.open(server.create_database(), max_connections=3)
    try:
        await db.execute("CREATE TABLE counter (n BIGINT NOT NULL)")
        await db.execute("INSERT INTO counter (n) VALUES (0)")

        async def bump(tx: Tx) -> int:
            await db.fetchval("SELECT count(*) FROM counter")
            n = await tx.fetchval("SELECT n FROM counter")
            return await tx.execute("UPDATE counter SET n = ?", (n + 1,))

        async with asyncio.timeout(30):
            assert await asyncio.gather(*(db.write(bump) for _ in range(12))) == [1] * 12
        assert await db.fetchval("SELECT n FROM counter") == 12
    finally:
        await db.close()


async def test_closing_cuts_off_a_connection_never_given_back(
    server: ThrowawayPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    """asyncpg's own close waits for ever for a connection still held (a task stuck or
    cancelled mid-query): the hub's shutdown would hang with it."""
    db = await PostgresDatabase.open(server.create_database())
    held = await db.pool.acquire()  # never released
    async with asyncio.timeout(30):
        await db.close(grace_s=0.5)
    with pytest.raises(asyncpg.InterfaceError):  # cut off: no longer usable
        await held.fetchval("SELECT 1")
    assert "still in use 0.5 s into closing" in caplog.text


async def test_executemany_and_execute_counts(pg: PostgresDatabase) -> None:
    await pg.execute("CREATE TABLE seen (seq BIGINT PRIMARY KEY)")
    async with pg.transaction() as tx:
        insert = "INSERT INTO seen (seq) VALUES (?) ON CONFLICT DO NOTHING"
        await tx.executemany(insert, [(1,), (2,), (3,)])
        await tx.executemany(insert, [(2,), (4,)])
        assert [await tx.execute(insert, (seq,)) for seq in (4, 5)] == [0, 1]
    rows = await pg.fetchall("SELECT seq FROM seen ORDER BY seq")
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
