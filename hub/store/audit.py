"""The append-only audit log (who did what, when, from where): written inside the transaction
of the action it records, read newest first or exported oldest first. The database refuses
UPDATE and DELETE on it (triggers in hub/db.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..db import from_iso, iso
from .sql import Reader, Row, Tx


async def append(
    tx: Tx,
    actor: str,
    address: str | None,
    action: str,
    target: str | None = None,
    detail: str | None = None,
    *,
    at: datetime,
    unit: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Record an action inside the caller's transaction: no action without its record."""
    await tx.execute(
        "INSERT INTO audit (at, actor, unit, address, action, target, detail, before_json,"
        " after_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            iso(at),
            actor,
            unit,
            address,
            action,
            target,
            detail,
            json.dumps(before, ensure_ascii=False, default=str) if before is not None else None,
            json.dumps(after, ensure_ascii=False, default=str) if after is not None else None,
        ),
    )


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    #: An exact action ("user.lock") or a family ending in a dot ("auth.").
    action: str | None = None
    #: The object acted upon (the `target` column).
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditRecord:
    id: int
    at: datetime
    actor: str
    unit: str | None
    address: str | None
    action: str
    target: str | None
    detail: str | None
    #: The JSON the action recorded, decoded (None when it recorded none).
    before: Any
    after: Any


def _where(query: AuditFilter) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if query.actor:
        where.append("actor = ?")
        params.append(query.actor)
    if query.action:
        if query.action.endswith("."):
            where.append("substr(action, 1, ?) = ?")
            params += [len(query.action), query.action]
        else:
            where.append("action = ?")
            params.append(query.action)
    if query.target:
        where.append("target = ?")
        params.append(query.target)
    if query.since:
        where.append("at >= ?")
        params.append(iso(query.since))
    if query.until:
        where.append("at < ?")
        params.append(iso(query.until))
    return where, params


_COLUMNS = "id, at, actor, unit, address, action, target, detail, before_json, after_json"


def _record(row: Row) -> AuditRecord:
    return AuditRecord(
        id=row["id"],
        at=from_iso(row["at"]),
        actor=row["actor"],
        unit=row["unit"],
        address=row["address"],
        action=row["action"],
        target=row["target"],
        detail=row["detail"],
        before=json.loads(row["before_json"]) if row["before_json"] else None,
        after=json.loads(row["after_json"]) if row["after_json"] else None,
    )


async def newest(
    db: Reader, query: AuditFilter, *, before: int | None, limit: int
) -> list[AuditRecord]:
    """Up to `limit` entries, newest first, older than entry `before` when given."""
    where, params = _where(query)
    if before is not None:
        where.append("id < ?")
        params.append(before)
    cond = " WHERE " + " AND ".join(where) if where else ""
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM audit{cond} ORDER BY id DESC LIMIT ?", [*params, limit]
    )
    return [_record(r) for r in rows]


async def oldest_after(
    db: Reader, query: AuditFilter, *, after: int, limit: int
) -> list[AuditRecord]:
    """Up to `limit` entries, oldest first, newer than entry `after` (0: from the first)."""
    where, params = _where(query)
    where.append("id > ?")
    params.append(after)
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM audit WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
        [*params, limit],
    )
    return [_record(r) for r in rows]


async def last_logins(db: Reader) -> dict[str, datetime]:
    """Each account's last successful login (API or console), by username."""
    rows = await db.fetchall(
        "SELECT target, MAX(at) AS at FROM audit WHERE action = 'auth.login' GROUP BY target"
    )
    return {r["target"]: from_iso(r["at"]) for r in rows}


async def last_login(db: Reader, username: str) -> datetime | None:
    at = await db.fetchval(
        "SELECT MAX(at) FROM audit WHERE action = 'auth.login' AND target = ?", (username,)
    )
    return from_iso(at) if at else None
