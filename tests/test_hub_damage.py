"""A hub whose database was lost or damaged refuses to start, naming `hub restore`; the health
probe reads the database instead of answering "ok" beside failing logins.

The file cases are SQLite's own; on PostgreSQL an unreachable server or database is the loss."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from hub.appkeys import DB as DB_KEY
from hub.db import DatabaseDamaged, SqliteDatabase, open_database
from hub.testing import running_hub

HUB = [sys.executable, "-m", "hub.cli"]
FILES = pytest.mark.sqlite_only("the damage is done to SQLite's file")


async def _hub_with_data(data: Path) -> Path:
    async with running_hub(data) as hub:
        await hub.commune("00001")
        await hub.device()
    return data / "hub.sqlite3"


def _user_list(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HUB, "user", "list", "--data", str(data)], capture_output=True, text=True, timeout=60
    )


async def test_a_first_start_creates_the_database(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(tmp_path / "hub.sqlite3")
    await db.close()
    assert (tmp_path / "hub.sqlite3.in-use").exists()


@FILES
@pytest.mark.parametrize("loss", ["deleted", "emptied"])
async def test_a_lost_database_is_not_replaced_by_an_empty_hub(tmp_path: Path, loss: str) -> None:
    path = await _hub_with_data(tmp_path / "hub")
    for leftover in path.parent.glob("hub.sqlite3-*"):
        leftover.unlink()
    if loss == "deleted":
        path.unlink()
    else:
        path.write_bytes(b"")
    with pytest.raises(DatabaseDamaged, match="hub restore"):
        await SqliteDatabase.open(path)
    assert not path.exists() or path.stat().st_size == 0  # nothing was created over it
    for command in (["user", "list"], ["serve", "--host", "127.0.0.1", "--port", "0"]):
        result = await asyncio.to_thread(
            subprocess.run,
            [*HUB, *command, "--data", str(tmp_path / "hub")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1, command
        assert "hub restore" in result.stderr and "Traceback" not in result.stderr


@FILES
async def test_damaged_pages_stop_the_start(tmp_path: Path) -> None:
    path = await _hub_with_data(tmp_path / "hub")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    raw = bytearray(path.read_bytes())
    # Scribble over every page but the header page: the tables' b-trees are garbage now.
    for offset in range(page_size, len(raw), page_size):
        raw[offset : offset + 64] = b"\xa5" * 64
    path.write_bytes(bytes(raw))
    with pytest.raises(DatabaseDamaged, match="hub restore"):
        await SqliteDatabase.open(path)
    result = _user_list(tmp_path / "hub")
    assert result.returncode == 1 and "hub restore" in result.stderr


async def test_not_a_database_at_all(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    path.write_bytes(b"this is not a database, it is a text file " * 100)
    with pytest.raises(DatabaseDamaged, match="cannot be read"):
        await SqliteDatabase.open(path)


@FILES
async def test_the_health_probe_reads_the_database(tmp_path: Path) -> None:
    async with running_hub(tmp_path / "hub") as hub:
        assert await hub.call("GET", "/healthz", auth=False) == {"ok": True}
        # The file goes bad under the running hub: its tables are gone from the probe's view.
        writer = hub.app[DB_KEY]
        await writer.execute("DROP TABLE sessions")
        body = await hub.call("GET", "/healthz", auth=False, expect=503)
        assert body["error"] == "database_failed"


def test_an_unreachable_postgresql_is_named_not_a_traceback(tmp_path: Path) -> None:
    # Port 1: nothing listens there, on any machine that runs these tests.
    for command in (["user", "list"], ["serve", "--port", "0"]):
        done = subprocess.run(
            [
                *HUB,
                *command,
                "--data",
                str(tmp_path),
                "--database",
                "postgresql://loa@127.0.0.1:1/x",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1, done.stderr
        assert "cannot be reached" in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(
        [*HUB, "user", "list", "--data", str(tmp_path), "--database", "mysql://x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "--database: " in done.stderr


async def test_the_health_probe_names_a_postgresql_it_cannot_reach(
    tmp_path: Path, another_database: str | None
) -> None:
    if another_database is None:
        pytest.skip("PostgreSQL only: LOA_TEST_DATABASE=postgres")
    async with running_hub(tmp_path / "hub", database_url=another_database) as hub:
        assert await hub.call("GET", "/healthz", auth=False) == {"ok": True}
        name = another_database.rsplit("/", 1)[1]
        admin = await asyncpg.connect(another_database.rsplit("/", 1)[0] + "/postgres")
        try:
            await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        finally:
            await admin.close()
        body = await hub.call("GET", "/healthz", auth=False, expect=503)
        assert body["error"] == "database_failed"
        assert f'database "{name}" does not exist' in body["detail"]


async def test_an_emptied_postgresql_is_not_replaced_by_an_empty_hub(
    tmp_path: Path, another_database: str | None
) -> None:
    if another_database is None:
        pytest.skip("PostgreSQL only: LOA_TEST_DATABASE=postgres")
    data = tmp_path / "hub"
    async with running_hub(data, database_url=another_database) as hub:
        await hub.commune("00001")
    # The database is lost (dropped, made anew empty) while the node's folder remains.
    server, name = another_database.rsplit("/", 1)
    admin = await asyncpg.connect(server + "/postgres")
    try:
        await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
    finally:
        await admin.close()
    with pytest.raises(DatabaseDamaged, match="is empty, but this hub has held data"):
        await open_database(another_database, data / "hub.sqlite3")
    done = await asyncio.to_thread(
        subprocess.run,
        [*HUB, "user", "list", "--data", str(data), "--database", another_database],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "hub restore" in done.stderr, done.stderr
    conn = await asyncpg.connect(another_database)
    try:
        assert await conn.fetchval("SELECT to_regclass('users')") is None, "nothing was made"
    finally:
        await conn.close()
