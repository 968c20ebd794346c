"""What devices report back: proof of play (plays), health samples, the reports the hub
refused, and the reads the monthly activity report is built from (hub/reports.py does the
arithmetic on the rows defined here)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loa_contract import BulletinKind, PlayOutcome, Priority

from ..db import from_iso, iso
from .sql import Reader, Row, after_key, chunks, key_params, marks

# ================================================================ rows the reports read


@dataclass(frozen=True)
class PlayRow:
    """A stored proof-of-play row (times aware)."""

    bulletin_id: str
    priority: str
    kind: str
    started_at: datetime
    ended_at: datetime
    outcome: str
    position_s: float = 0.0


@dataclass(frozen=True)
class BulletinRow:
    """What reports need of a bulletin."""

    id: str
    unit: str
    source_level: str
    kind: str
    priority: str = Priority.NORMAL.value
    category: str | None = None
    text: str | None = None
    published_at: datetime | None = None
    #: The longest completed airing's position (seconds), measured by devices; None if never.
    measured_seconds: float | None = None


@dataclass(frozen=True)
class DeviceRow:
    id: str
    name: str
    commune: str
    kind: str
    enrolled_at: datetime | None


def _in_commune(commune: str | None) -> str:
    """The condition keeping devices `d` of :commune (none: the whole province)."""
    return " AND d.commune = :commune" if commune else ""


def _period(start: datetime, end: datetime, commune: str | None) -> dict[str, Any]:
    return {"start": iso(start), "end": iso(end), "commune": commune}


async def plays_between(
    db: Reader, start: datetime, end: datetime, commune: str | None
) -> list[PlayRow]:
    """The plays started in [start, end), of one commune's devices or the whole province's."""
    rows = await db.fetchall(
        "SELECT p.bulletin_id, p.priority, p.kind, p.started_at, p.ended_at, p.outcome,"
        " p.position_s FROM plays p JOIN devices d ON d.id = p.device_id"
        f" WHERE p.started_at >= :start AND p.started_at < :end{_in_commune(commune)}",
        _period(start, end, commune),
    )
    return [
        PlayRow(
            bulletin_id=r["bulletin_id"],
            priority=r["priority"],
            kind=r["kind"],
            started_at=from_iso(r["started_at"]),
            ended_at=from_iso(r["ended_at"]),
            outcome=r["outcome"],
            position_s=r["position_s"],
        )
        for r in rows
    ]


async def bulletins_by_id(db: Reader, ids: list[str]) -> dict[str, BulletinRow]:
    """The bulletins among `ids` the hub holds."""
    found: dict[str, BulletinRow] = {}
    for chunk in chunks(ids):
        for r in await db.fetchall(
            "SELECT id, unit, source_level, kind, priority, category FROM bulletins"
            f" WHERE id IN ({marks(len(chunk))})",
            chunk,
        ):
            found[r["id"]] = BulletinRow(
                id=r["id"],
                unit=r["unit"],
                source_level=r["source_level"],
                kind=r["kind"],
                priority=r["priority"],
                category=r["category"],
            )
    return found


async def devices_of(db: Reader, commune: str | None) -> list[DeviceRow]:
    """One commune's devices or the whole province's, by commune, name and id."""
    rows = await db.fetchall(
        "SELECT d.id, d.name, d.commune, d.kind, d.enrolled_at FROM devices d"
        f" WHERE 1 = 1{_in_commune(commune)} ORDER BY d.commune, d.name, d.id",
        {"commune": commune},
    )
    return [
        DeviceRow(
            id=r["id"],
            name=r["name"],
            commune=r["commune"],
            kind=r["kind"],
            enrolled_at=from_iso(r["enrolled_at"]) if r["enrolled_at"] else None,
        )
        for r in rows
    ]


async def reporting_slots(
    db: Reader, start: datetime, end: datetime, commune: str | None, slot_s: int
) -> dict[str, set[int]]:
    """For each device, the `slot_s`-second slots of the period (counted from `start`) in
    which it reported: a health sample taken, an airing started, or its last-seen time.

    The slot arithmetic of hub/reports.py's `slot_index`, done by the database so a month of
    health samples need not cross into Python: whole UTC seconds since the period's start,
    divided by the slot."""
    scope = _in_commune(commune)
    slot = "(CAST(strftime('%s', substr({col}, 1, 19)) AS INTEGER) - :epoch) / :slot"
    rows = await db.fetchall(
        f"SELECT DISTINCT h.device_id AS device, {slot.format(col='h.at')} AS slot"
        " FROM health h JOIN devices d ON d.id = h.device_id"
        f" WHERE h.at >= :start AND h.at < :end{scope}"
        f" UNION SELECT p.device_id, {slot.format(col='p.started_at')}"
        " FROM plays p JOIN devices d ON d.id = p.device_id"
        f" WHERE p.started_at >= :start AND p.started_at < :end{scope}"
        f" UNION SELECT d.id, {slot.format(col='d.last_seen')} FROM devices d"
        f" WHERE d.last_seen >= :start AND d.last_seen < :end{scope}",
        {
            **_period(start, end, commune),
            "epoch": math.floor(start.timestamp()),
            "slot": slot_s,
        },
    )
    up: dict[str, set[int]] = {}
    for r in rows:
        up.setdefault(r[0], set()).add(int(r[1]))
    return up


async def published_between(db: Reader, start: datetime, end: datetime) -> list[BulletinRow]:
    """The bulletins published in [start, end) (what providers provided), oldest first, each
    with its longest completed airing."""
    rows = await db.fetchall(
        "SELECT b.id, b.unit, b.source_level, b.kind, b.priority, b.category, b.text,"
        " b.published_at, (SELECT MAX(p.position_s) FROM plays p"
        " WHERE p.bulletin_id = b.id AND p.outcome = :completed) AS measured"
        " FROM bulletins b WHERE b.published_at >= :start AND b.published_at < :end"
        " ORDER BY b.published_at",
        {"start": iso(start), "end": iso(end), "completed": PlayOutcome.COMPLETED.value},
    )
    return [
        BulletinRow(
            id=r["id"],
            unit=r["unit"],
            source_level=r["source_level"],
            kind=r["kind"],
            priority=r["priority"],
            category=r["category"],
            text=r["text"],
            published_at=from_iso(r["published_at"]),
            measured_seconds=r["measured"],
        )
        for r in rows
    ]


# ================================================================ plays and refusals, listed


@dataclass(frozen=True)
class Play:
    """A stored proof of play."""

    id: int
    device_id: str
    stream: str
    seq: int
    bulletin_id: str
    priority: Priority
    kind: BulletinKind
    started_at: datetime
    ended_at: datetime
    outcome: PlayOutcome
    position_s: float
    received_at: datetime


_PLAY = (
    "p.id, p.device_id, p.stream, p.seq, p.bulletin_id, p.priority, p.kind, p.started_at,"
    " p.ended_at, p.outcome, p.position_s, p.received_at"
)


def _play(row: Row) -> Play:
    return Play(
        id=row["id"],
        device_id=row["device_id"],
        stream=row["stream"],
        seq=row["seq"],
        bulletin_id=row["bulletin_id"],
        priority=Priority(row["priority"]),
        kind=BulletinKind(row["kind"]),
        started_at=from_iso(row["started_at"]),
        ended_at=from_iso(row["ended_at"]),
        outcome=PlayOutcome(row["outcome"]),
        position_s=row["position_s"],
        received_at=from_iso(row["received_at"]),
    )


def _about_devices(
    commune: str | None, device: str | None, column: str = "device_id"
) -> tuple[list[str], dict[str, Any]]:
    """Conditions (and their parameters) on rows about devices: of one commune's devices
    (a commune account's scope) and of one device, when given."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if commune is not None:
        where.append(f"{column} IN (SELECT id FROM devices WHERE commune = :scope)")
        params["scope"] = commune
    if device:
        where.append(f"{column} = :device")
        params["device"] = device
    return where, params


#: Newest first, as the audit log; the row id breaks ties between plays that started together.
PLAY_ORDER = ("p.started_at", "p.id")


async def plays_page(
    db: Reader,
    *,
    commune: str | None = None,
    device: str | None = None,
    bulletin: str | None = None,
    before: tuple[str, int] | None = None,
    limit: int,
) -> list[Play]:
    """Up to `limit` plays, newest first, of one commune's devices, one device and one
    bulletin when given, after the play whose (started_at as stored, id) is `before`."""
    where, params = _about_devices(commune, device, "p.device_id")
    if bulletin:
        where.append("p.bulletin_id = :bulletin")
        params["bulletin"] = bulletin
    if before is not None:
        where.append(after_key(PLAY_ORDER, descending=True))
        params.update(key_params(before))
    rows = await db.fetchall(
        f"SELECT {_PLAY} FROM plays p"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY p.started_at DESC, p.id DESC LIMIT :limit",
        {**params, "limit": limit},
    )
    return [_play(r) for r in rows]


def play_key(play: Play) -> tuple[str, int]:
    """A play's place in PLAY_ORDER, as `plays_page` takes it in `before`."""
    return iso(play.started_at), play.id


async def recent_plays(db: Reader, device_id: str, limit: int) -> list[tuple[Play, str | None]]:
    """A device's latest plays, newest first, each with its bulletin's title (None: a
    bulletin the hub does not hold)."""
    rows = await db.fetchall(
        f"SELECT {_PLAY}, b.title AS title FROM plays p"
        " LEFT JOIN bulletins b ON b.id = p.bulletin_id"
        " WHERE p.device_id = ? ORDER BY p.started_at DESC, p.seq DESC LIMIT ?",
        (device_id, limit),
    )
    return [(_play(r), r["title"]) for r in rows]


@dataclass(frozen=True)
class RefusedReport:
    id: int
    device_id: str
    stream: str
    seq: int
    bulletin_id: str
    #: A reason code of hub/play_evidence.py, and the sentence for the operator.
    reason: str
    detail: str
    #: The proof of play as the device sent it.
    report: dict[str, Any]
    received_at: datetime


async def refused_page(
    db: Reader,
    *,
    commune: str | None = None,
    device: str | None = None,
    reason: str | None = None,
    before: int | None = None,
    limit: int,
) -> list[RefusedReport]:
    """Up to `limit` refused reports, newest first, filtered like `plays_page`, and by reason,
    older than the one with id `before`."""
    where, params = _about_devices(commune, device)
    if reason:
        where.append("reason = :reason")
        params["reason"] = reason
    if before is not None:
        where.append(after_key(("id",), descending=True))
        params.update(key_params((before,)))
    rows = await db.fetchall(
        "SELECT id, device_id, stream, seq, bulletin_id, reason, detail, report_json,"
        " received_at FROM refused_reports"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY id DESC LIMIT :limit",
        {**params, "limit": limit},
    )
    return [
        RefusedReport(
            id=r["id"],
            device_id=r["device_id"],
            stream=r["stream"],
            seq=r["seq"],
            bulletin_id=r["bulletin_id"],
            reason=r["reason"],
            detail=r["detail"],
            report=json.loads(r["report_json"]),
            received_at=from_iso(r["received_at"]),
        )
        for r in rows
    ]


# ================================================================ health over time


@dataclass(frozen=True)
class HealthPoint:
    """One health sample's figures for the device page's chart (None: not reported)."""

    at: datetime
    temperature: float | None
    cpu: float | None
    memory_used: int | None
    memory_total: int | None


async def health_between(
    db: Reader, device_id: str, since: datetime, until: datetime
) -> list[HealthPoint]:
    """A device's health samples taken in [since, until], oldest first."""
    rows = await db.fetchall(
        "SELECT at, json_extract(json, '$.temperature_celsius') AS temperature,"
        " json_extract(json, '$.cpu_percent') AS cpu,"
        " json_extract(json, '$.memory_used_bytes') AS mem_used,"
        " json_extract(json, '$.memory_total_bytes') AS mem_total"
        " FROM health WHERE device_id = ? AND at >= ? AND at <= ? ORDER BY at",
        (device_id, iso(since), iso(until)),
    )
    return [
        HealthPoint(
            at=from_iso(r["at"]),
            temperature=r["temperature"],
            cpu=r["cpu"],
            memory_used=r["mem_used"],
            memory_total=r["mem_total"],
        )
        for r in rows
    ]
