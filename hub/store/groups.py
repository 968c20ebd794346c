"""Device groups: named sets of devices (hub/groups.py), of one commune or the province's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..db import from_iso, iso
from .sql import Reader, Row, Tx


@dataclass(frozen=True)
class Group:
    id: str
    name: str
    #: The commune whose devices it holds; None: a province group (any commune's devices).
    commune: str | None
    created_at: datetime
    created_by: str
    devices: int


_SELECT = (
    "SELECT g.id, g.name, g.commune, g.created_at, g.created_by,"
    " (SELECT COUNT(*) FROM device_group_members m WHERE m.group_id = g.id) AS devices"
    " FROM device_groups g"
)


def _group(row: Row) -> Group:
    return Group(
        id=row["id"],
        name=row["name"],
        commune=row["commune"],
        created_at=from_iso(row["created_at"]),
        created_by=row["created_by"],
        devices=row["devices"],
    )


async def add(
    tx: Tx, group_id: str, *, name: str, commune: str | None, at: datetime, by: str
) -> None:
    await tx.execute(
        "INSERT INTO device_groups (id, name, commune, created_at, created_by)"
        " VALUES (?, ?, ?, ?, ?)",
        (group_id, name, commune, iso(at), by),
    )


async def get(db: Reader, group_id: str) -> Group | None:
    row = await db.fetchone(f"{_SELECT} WHERE g.id = ?", (group_id,))
    return _group(row) if row is not None else None


async def listed(db: Reader, commune: str | None) -> list[Group]:
    """Every group by name; with `commune`, only that commune's."""
    if commune is None:
        rows = await db.fetchall(f"{_SELECT} ORDER BY g.name, g.id")
    else:
        rows = await db.fetchall(f"{_SELECT} WHERE g.commune = ? ORDER BY g.name, g.id", (commune,))
    return [_group(r) for r in rows]


async def members(db: Reader, group_id: str) -> list[str]:
    rows = await db.fetchall(
        "SELECT device_id FROM device_group_members WHERE group_id = ? ORDER BY device_id",
        (group_id,),
    )
    return [r["device_id"] for r in rows]


async def set_members(tx: Tx, group_id: str, device_ids: list[str]) -> None:
    await tx.execute("DELETE FROM device_group_members WHERE group_id = ?", (group_id,))
    await tx.executemany(
        "INSERT INTO device_group_members (group_id, device_id) VALUES (?, ?)",
        [(group_id, d) for d in device_ids],
    )


async def groups_of(db: Reader, device_id: str) -> list[Group]:
    rows = await db.fetchall(
        f"{_SELECT} WHERE g.id IN (SELECT group_id FROM device_group_members"
        " WHERE device_id = ?) ORDER BY g.name, g.id",
        (device_id,),
    )
    return [_group(r) for r in rows]


async def remove(tx: Tx, group_id: str) -> None:
    await tx.execute("DELETE FROM device_group_members WHERE group_id = ?", (group_id,))
    await tx.execute("DELETE FROM device_groups WHERE id = ?", (group_id,))
