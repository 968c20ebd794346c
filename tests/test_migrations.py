"""Schema migrations run on a hub that already holds data, and keep its meaning."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from hub.db import MIGRATIONS, SqliteDatabase, _split, sqlite_migration


def _database_at(path: Path, version: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:version]:
        for statement in _split(sqlite_migration(script)):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version={version}")
    conn.commit()
    return conn


async def test_media_uploads_are_filled_from_the_upload_audit(tmp_path: Path) -> None:
    path = tmp_path / "hub.sqlite3"
    conn = _database_at(path, 2)
    sha_a, sha_b = "a" * 64, "b" * 64
    for sha in (sha_a, sha_b):
        conn.execute(
            "INSERT INTO media (sha256, size, mime, created_at) VALUES (?, 1, 'audio/wav', ?)",
            (sha, "2026-01-01T00:00:00.000000Z"),
        )
    for at, unit, sha in (
        ("2026-01-01T00:00:00.000000Z", "baotinh", sha_a),
        ("2026-01-02T00:00:00.000000Z", "baotinh", sha_a),  # the same bytes again
        ("2026-01-03T00:00:00.000000Z", "00001", sha_a),
        ("2026-01-04T00:00:00.000000Z", "province", sha_b),
    ):
        conn.execute(
            "INSERT INTO audit (at, actor, action, target, unit)"
            " VALUES (?, 'x', 'media.upload', ?, ?)",
            (at, sha, unit),
        )
    conn.commit()
    conn.close()

    db = await SqliteDatabase.open(path)
    try:
        rows = await db.fetchall("SELECT sha256, unit, first_at FROM media_uploads ORDER BY unit")
        assert [(r["sha256"], r["unit"], r["first_at"][:10]) for r in rows] == [
            (sha_a, "00001", "2026-01-03"),
            (sha_a, "baotinh", "2026-01-01"),
            (sha_b, "province", "2026-01-04"),
        ]
        version = await db.fetchone("PRAGMA user_version")
        assert version is not None and version[0] == len(MIGRATIONS)
    finally:
        await db.close()
