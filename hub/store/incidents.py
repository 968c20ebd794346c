"""Incidents (sự cố) and since when each device has been in fault (hub/incidents.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..db import from_iso, iso
from .sql import Reader, Row, Tx, after_key, key_params


@dataclass(frozen=True)
class Incident:
    id: str
    commune: str
    device_id: str | None
    what: str
    #: Since when the trouble has been there (as its opener says, or the fault's start).
    since: datetime
    #: "auto": the hub opened it for a lasting device fault; "manual": a person did.
    source: str
    opened_by: str
    opened_at: datetime
    closed_by: str | None
    closed_at: datetime | None
    resolution: str | None


_COLUMNS = (
    "id, commune, device_id, what, since, source, opened_by, opened_at, closed_by, closed_at,"
    " resolution"
)


def _incident(row: Row) -> Incident:
    return Incident(
        id=row["id"],
        commune=row["commune"],
        device_id=row["device_id"],
        what=row["what"],
        since=from_iso(row["since"]),
        source=row["source"],
        opened_by=row["opened_by"],
        opened_at=from_iso(row["opened_at"]),
        closed_by=row["closed_by"],
        closed_at=from_iso(row["closed_at"]) if row["closed_at"] else None,
        resolution=row["resolution"],
    )


async def add(tx: Tx, incident: Incident) -> None:
    await tx.execute(
        f"INSERT INTO incidents ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
        (
            incident.id,
            incident.commune,
            incident.device_id,
            incident.what,
            iso(incident.since),
            incident.source,
            incident.opened_by,
            iso(incident.opened_at),
        ),
    )


async def get(db: Reader, incident_id: str) -> Incident | None:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", (incident_id,))
    return _incident(row) if row is not None else None


async def close(tx: Tx, incident_id: str, by: str, at: datetime, resolution: str) -> None:
    await tx.execute(
        "UPDATE incidents SET closed_by = ?, closed_at = ?, resolution = ?"
        " WHERE id = ? AND closed_at IS NULL",
        (by, iso(at), resolution, incident_id),
    )


#: The incidents list's order (newest first), ending in a unique column (hub/paging.py).
LIST_ORDER = ("opened_at", "id")


async def listing(
    db: Reader,
    *,
    commune: str | None,
    state: str | None,
    limit: int,
    before: tuple[str, str] | None = None,
) -> list[Incident]:
    """Incidents newest first: open ones (state "open"), closed ones ("closed") or all;
    after the one whose (opened_at as stored, id) is `before`."""
    where = ["1 = 1"]
    params: dict[str, Any] = {"limit": limit}
    if before is not None:
        where.append(after_key(LIST_ORDER, descending=True))
        params.update(key_params(before))
    if commune is not None:
        where.append("commune = :commune")
        params["commune"] = commune
    if state == "open":
        where.append("closed_at IS NULL")
    elif state == "closed":
        where.append("closed_at IS NOT NULL")
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM incidents WHERE {' AND '.join(where)}"
        " ORDER BY opened_at DESC, id DESC LIMIT :limit",
        params,
    )
    return [_incident(r) for r in rows]


def list_key(incident: Incident) -> tuple[str, str]:
    """An incident's place in LIST_ORDER, as `listing` takes it in `before`."""
    return iso(incident.opened_at), incident.id


async def overlapping(
    db: Reader, start: datetime, end: datetime, commune: str | None
) -> list[Incident]:
    """Incidents open at some moment of [start, end), oldest first (the monthly report)."""
    sql = (
        f"SELECT {_COLUMNS} FROM incidents WHERE since < :end"
        " AND (closed_at IS NULL OR closed_at >= :start)"
    )
    params: dict[str, Any] = {"start": iso(start), "end": iso(end)}
    if commune is not None:
        sql += " AND commune = :commune"
        params["commune"] = commune
    rows = await db.fetchall(sql + " ORDER BY since, id", params)
    return [_incident(r) for r in rows]


async def open_auto(db: Reader) -> dict[str, str]:
    """device id -> the id of the hub's own open incident for it."""
    rows = await db.fetchall(
        "SELECT device_id, id FROM incidents WHERE source = 'auto' AND closed_at IS NULL"
        " AND device_id IS NOT NULL"
    )
    return {r[0]: r[1] for r in rows}


async def open_auto_of(db: Reader, device_id: str) -> str | None:
    """The hub's own open incident for the device, if any."""
    found: str | None = await db.fetchval(
        "SELECT id FROM incidents WHERE source = 'auto' AND closed_at IS NULL AND device_id = ?",
        (device_id,),
    )
    return found


async def fault_since(db: Reader) -> dict[str, datetime]:
    rows = await db.fetchall("SELECT device_id, since FROM device_faults")
    return {r[0]: from_iso(r[1]) for r in rows}


async def set_fault(tx: Tx, device_id: str, since: datetime | None, reasons: str) -> None:
    if since is None:
        await tx.execute("DELETE FROM device_faults WHERE device_id = ?", (device_id,))
        return
    await tx.execute(
        "INSERT INTO device_faults (device_id, since, reasons) VALUES (?, ?, ?)"
        " ON CONFLICT (device_id) DO UPDATE SET reasons = excluded.reasons",
        (device_id, iso(since), reasons),
    )
