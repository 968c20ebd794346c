"""Maintenance and switch-over notices (hub/domain/maintenance.py has the rules)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..db import from_iso, iso
from .sql import Reader, Row, Tx


@dataclass(frozen=True)
class Notice:
    id: str
    kind: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    consent_ref: str | None
    warnings: tuple[str, ...]
    announced_by: str
    announced_at: datetime
    withdrawn_by: str | None
    withdrawn_at: datetime | None


_COLUMNS = (
    "id, kind, starts_at, ends_at, reason, consent_ref, warnings, announced_by, announced_at,"
    " withdrawn_by, withdrawn_at"
)


def _notice(r: Row) -> Notice:
    return Notice(
        id=r["id"],
        kind=r["kind"],
        starts_at=from_iso(r["starts_at"]),
        ends_at=from_iso(r["ends_at"]),
        reason=r["reason"],
        consent_ref=r["consent_ref"],
        warnings=tuple(w for w in r["warnings"].split(",") if w),
        announced_by=r["announced_by"],
        announced_at=from_iso(r["announced_at"]),
        withdrawn_by=r["withdrawn_by"],
        withdrawn_at=from_iso(r["withdrawn_at"]) if r["withdrawn_at"] else None,
    )


async def add(tx: Tx, notice: Notice) -> None:
    await tx.execute(
        f"INSERT INTO maintenance_notices ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            notice.id,
            notice.kind,
            iso(notice.starts_at),
            iso(notice.ends_at),
            notice.reason,
            notice.consent_ref,
            ",".join(notice.warnings),
            notice.announced_by,
            iso(notice.announced_at),
            None,
            None,
        ),
    )


async def get(db: Reader, notice_id: str) -> Notice | None:
    row = await db.fetchone(
        f"SELECT {_COLUMNS} FROM maintenance_notices WHERE id = ?", (notice_id,)
    )
    return _notice(row) if row is not None else None


async def withdraw(tx: Tx, notice_id: str, by: str, at: datetime) -> bool:
    """Withdraw a notice not withdrawn yet: False if there was none to withdraw."""
    changed = await tx.execute(
        "UPDATE maintenance_notices SET withdrawn_by = ?, withdrawn_at = ?"
        " WHERE id = ? AND withdrawn_at IS NULL",
        (by, iso(at), notice_id),
    )
    return changed == 1


async def in_force(db: Reader, now: datetime) -> list[Notice]:
    """Notices not withdrawn whose end is still ahead, soonest first (the banner's list)."""
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM maintenance_notices"
        " WHERE withdrawn_at IS NULL AND ends_at > ? ORDER BY starts_at, id",
        (iso(now),),
    )
    return [_notice(r) for r in rows]


async def latest(db: Reader, limit: int) -> list[Notice]:
    """The most recently announced notices, withdrawn and past ones included."""
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM maintenance_notices ORDER BY announced_at DESC, id LIMIT ?",
        (limit,),
    )
    return [_notice(r) for r in rows]
