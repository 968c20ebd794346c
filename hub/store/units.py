"""The register of units that send bulletins (hub/units.py): agencies and newspapers by name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..db import from_iso, iso
from .sql import Reader, Row, Tx


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    #: "newspaper" or "agency": which quota the monthly report holds it to.
    kind: str
    created_at: datetime
    created_by: str
    updated_at: datetime


_SELECT = "SELECT code, name, kind, created_at, created_by, updated_at FROM units"


def _unit(row: Row) -> Unit:
    return Unit(
        code=row["code"],
        name=row["name"],
        kind=row["kind"],
        created_at=from_iso(row["created_at"]),
        created_by=row["created_by"],
        updated_at=from_iso(row["updated_at"]),
    )


async def get(db: Reader, code: str) -> Unit | None:
    row = await db.fetchone(f"{_SELECT} WHERE code = ?", (code,))
    return _unit(row) if row is not None else None


async def every_unit(db: Reader) -> list[Unit]:
    """The register by name (then code: two units may share a name)."""
    return [_unit(r) for r in await db.fetchall(f"{_SELECT} ORDER BY name, code")]


async def add(tx: Tx, code: str, name: str, kind: str, *, at: datetime, by: str) -> None:
    await tx.execute(
        "INSERT INTO units (code, name, kind, created_at, created_by, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (code, name, kind, iso(at), by, iso(at)),
    )


async def update(tx: Tx, code: str, *, name: str, kind: str, at: datetime) -> None:
    await tx.execute(
        "UPDATE units SET name = ?, kind = ?, updated_at = ? WHERE code = ?",
        (name, kind, iso(at), code),
    )


async def unnamed_in_use(db: Reader) -> list[str]:
    """Units accounts or bulletins carry that are neither the province, a commune nor in the
    register: the console offers to name them."""
    rows = await db.fetchall(
        "SELECT used.unit FROM (SELECT unit FROM users WHERE unit IS NOT NULL"
        " UNION SELECT unit FROM bulletins) used"
        " WHERE used.unit <> 'province' AND used.unit <> ''"
        " AND used.unit NOT IN (SELECT code FROM units)"
        " AND used.unit NOT IN (SELECT code FROM communes) ORDER BY used.unit"
    )
    return [r["unit"] for r in rows]
