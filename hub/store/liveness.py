"""The health probe's read: is the database there and readable?"""

from __future__ import annotations

from .sql import Reader

#: The tables every request leans on: the probe reads a row of each, so a database whose
#: pages went bad fails here instead of answering "ok" beside failing logins.
PROBED_TABLES = ("users", "sessions", "communes", "devices", "bulletins")


async def probe(db: Reader) -> None:
    """Read a row of each table every request leans on; the database's error if one fails."""
    for table in PROBED_TABLES:
        await db.fetchone(f"SELECT * FROM {table} LIMIT 1")
