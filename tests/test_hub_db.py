"""The hub's Database: a request reads back what it just wrote, whatever else is reading."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from hub.db import SqliteDatabase as Database
from hub.db import epoch_us, epoch_us_span, from_iso, iso
from hub.store.sql import SQLITE, Tx


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "hub.sqlite")
    try:
        await database.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        yield database
    finally:
        await database.close()


async def test_each_writer_reads_its_own_row_while_others_read(db: Database) -> None:
    # The shape of the bug: a request commits, then reads its row back through the shared
    # reader connection while other requests' reads are in flight on it. A statement left
    # open by any of them pinned the reader's snapshot to before the commit.
    missing: list[int] = []

    async def create(note: int) -> None:
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (note, "x"))
        if await db.fetchone("SELECT id FROM notes WHERE id = ?", (note,)) is None:
            missing.append(note)

    async def browse() -> None:
        for _ in range(50):
            await db.fetchone("SELECT id FROM notes ORDER BY id")
            await db.fetchall("SELECT id FROM notes ORDER BY id DESC LIMIT 5")

    await asyncio.gather(*(create(n) for n in range(1, 601)), *(browse() for _ in range(8)))
    assert missing == []


async def test_write_is_one_transaction_that_rolls_back(db: Database) -> None:
    async def two_rows(tx: Tx) -> int:
        await tx.execute("INSERT INTO notes (id, body) VALUES (1, 'a')")
        await tx.execute("INSERT INTO notes (id, body) VALUES (2, 'b')")
        return 2

    async def half_then_fail(tx: Tx) -> None:
        await tx.execute("INSERT INTO notes (id, body) VALUES (3, 'c')")
        await tx.execute("INSERT INTO notes (id, body) VALUES (1, 'duplicate')")

    assert await db.write(two_rows) == 2
    with pytest.raises(sqlite3.IntegrityError):
        await db.write(half_then_fail)
    rows = await db.fetchall("SELECT id, body FROM notes ORDER BY id")
    # The failed batch left nothing behind, and the writer is usable again afterwards.
    assert await db.execute("UPDATE notes SET body = 'z' WHERE id = 2") == 1
    assert [tuple(r) for r in rows] == [(1, "a"), (2, "b")]


@pytest.mark.parametrize("minutes", [-600, -59, 0, 1, 420, 525, 840])
@pytest.mark.parametrize("micro", [0, 1, 999_999])
def test_iso_has_one_shape_that_sorts(minutes: int, micro: int) -> None:
    zone = timezone(timedelta(minutes=minutes))
    times = [
        datetime(year, month, 28, hour, 59, 59, micro, tzinfo=zone)
        for year in (1970, 2026, 9998)
        for month in (1, 12)
        for hour in (0, 23)
    ]
    for when in times:
        text = iso(when)
        assert text == when.astimezone(UTC).isoformat(timespec="microseconds")
        assert len(text) == 32 and text.endswith("+00:00") and from_iso(text) == when
    assert sorted(times) == sorted(times, key=iso)


def test_sqlite_writes_the_same_text_as_iso_from_epoch_us() -> None:
    conn = sqlite3.connect(":memory:")
    times = [
        datetime(year, month, day, hour, minute, second, micro, tzinfo=timezone(offset))
        for year in (1969, 1970, 2026, 9998)
        for month, day in ((1, 1), (2, 28), (12, 31))
        for hour, minute, second in ((0, 0, 0), (23, 59, 59), (6, 30, 1))
        for micro in (0, 1, 500_000, 999_999)
        for offset in (timedelta(0), timedelta(hours=7), timedelta(hours=-9, minutes=-30))
    ]
    for when in times:
        us = epoch_us(when)
        assert datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us) == when
        (text,) = conn.execute(f"SELECT {SQLITE.iso_from_epoch_us('?1')}", (us,)).fetchone()
        assert text == iso(when), when
    with pytest.raises(ValueError):
        epoch_us(datetime(2026, 1, 1))
    # A span's ends, whatever their offsets (the same tzinfo or not) and order.
    for start in times[::7]:
        for end in times[::5]:
            assert epoch_us_span(start, end) == (epoch_us(start), epoch_us(end))
    with pytest.raises(ValueError):
        epoch_us_span(datetime(2026, 1, 1), datetime(2026, 1, 2))


async def test_writes_queued_meanwhile_commit_together_and_fail_alone(
    db: Database, tmp_path: Path
) -> None:
    def insert(note: int) -> Callable[[Tx], Awaitable[int]]:
        async def work(tx: Tx) -> int:
            await tx.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (note, f"n{note}"))
            if note == 7:
                raise ValueError("note 7 is refused")
            # What another connection sees: only what earlier groups committed.
            outside = sqlite3.connect(tmp_path / "hub.sqlite")
            try:
                return int(outside.execute("SELECT COUNT(*) FROM notes").fetchone()[0])
            finally:
                outside.close()

        return work

    results = await asyncio.gather(
        *(db.write(insert(n)) for n in range(1, 21)), return_exceptions=True
    )
    # The first write ran alone; the 19 queued behind it shared one commit, so none of them
    # saw another's row committed, and the refused one took only its own row with it.
    assert results[0] == 0
    assert isinstance(results[6], ValueError)
    assert results[1:6] + results[7:] == [1] * 18
    rows = await db.fetchall("SELECT id FROM notes ORDER BY id")
    assert [r[0] for r in rows] == [n for n in range(1, 21) if n != 7]
