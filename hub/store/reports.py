"""What devices report back: proof of play (plays), health samples, the reports the hub
refused, and the reads the monthly activity report is built from (hub/reports.py does the
arithmetic on the rows defined here)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from loa_contract import (
    BulletinKind,
    DeviceKind,
    HealthSample,
    PlayOutcome,
    Priority,
    ProofOfPlay,
)

from ..db import from_iso, iso
from .manifests import B_REACHES_DEVICE, bulletin_kinds_for
from .sql import Reader, Row, Tx, after_key, chunks, key_params, marks

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
    slot = f"({db.dialect.epoch_seconds('{col}')} - :epoch) / :slot"
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


async def boots_between(
    db: Reader, start: datetime, end: datetime, commune: str | None
) -> dict[str, list[float]]:
    """For each device, the boot times (Unix seconds) it reported, from a little before
    `start` (a boot just before the period tells a wobble of the clock from a new boot) to
    `end`."""
    rows = await db.fetchall(
        "SELECT b.device_id, b.boot_time FROM device_boots b JOIN devices d ON d.id = b.device_id"
        f" WHERE b.boot_time >= :low AND b.boot_time < :high{_in_commune(commune)}"
        " ORDER BY b.boot_time",
        {"low": start.timestamp() - 86400, "high": end.timestamp(), "commune": commune},
    )
    found: dict[str, list[float]] = {}
    for r in rows:
        found.setdefault(r[0], []).append(float(r[1]))
    return found


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


async def plays_of_bulletin(
    db: Reader, bulletin_id: str, commune: str | None
) -> list[tuple[Play, str, str]]:
    """Every proof of play of one bulletin, oldest first, each with its device's name and
    commune; only one commune's devices when `commune` is given (a commune account's scope)."""
    where, params = _about_devices(commune, None, "p.device_id")
    rows = await db.fetchall(
        f"SELECT {_PLAY}, d.name AS device_name, d.commune AS device_commune FROM plays p"
        " JOIN devices d ON d.id = p.device_id WHERE p.bulletin_id = :bulletin"
        + "".join(f" AND {w}" for w in where)
        + " ORDER BY p.started_at, p.id",
        {**params, "bulletin": bulletin_id},
    )
    return [(_play(r), r["device_name"], r["device_commune"]) for r in rows]


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
        f"SELECT at, {db.dialect.json_number('json', 'temperature_celsius')} AS temperature,"
        f" {db.dialect.json_number('json', 'cpu_percent')} AS cpu,"
        f" {db.dialect.json_number('json', 'memory_used_bytes')} AS mem_used,"
        f" {db.dialect.json_number('json', 'memory_total_bytes')} AS mem_total"
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


async def forget_health_received_before(tx: Tx, cutoff: datetime) -> None:
    """Drop the health samples received before `cutoff` (kept for the hub's retention)."""
    await tx.execute("DELETE FROM health WHERE received_at < ?", (iso(cutoff),))


# ================================================================ proof of play and health, stored


@dataclass(frozen=True)
class Evidence:
    """What the hub holds of a bulletin a device reports airing (hub/play_evidence.py judges
    the airing against it)."""

    id: str
    kind: BulletinKind
    priority: Priority
    display_seconds: float
    text: str | None
    #: When the device could first hold it: its publication or valid_from, the later.
    held_from: datetime
    #: When it stopped being valid: valid_until or its cancellation, the earlier.
    held_until: datetime
    #: Sent to the device: published or cancelled since, reaching it, of a kind it airs.
    sent: bool
    #: The decoded duration of its file (media.duration_s), None when not known.
    media_seconds: float | None = None


#: The enum member of a stored value, by a dict lookup: calling the enum is several times dearer.
_KIND = {k.value: k for k in BulletinKind}
_PRIORITY = {p.value: p for p in Priority}


async def evidence(
    db: Reader, device_id: str, commune: str, kind: DeviceKind, ids: set[str]
) -> dict[str, Evidence]:
    """What the named bulletins are to the device: those that exist, each marked whether it
    was ever sent to it. One read."""
    rows = await db.fetchall(
        "SELECT b.id, b.kind, b.priority, b.display_seconds, b.text,"
        " (SELECT m.duration_s FROM media m WHERE m.sha256 = b.media_sha256) AS media_seconds,"
        # Stored times share iso()'s one shape, so they compare as text: the device could hold
        # it from its publication or valid_from (the later) until valid_until or its
        # cancellation (the earlier).
        " CASE WHEN b.published_at > b.valid_from THEN b.published_at ELSE b.valid_from END"
        " AS held_from,"
        " CASE WHEN b.cancelled_at < b.valid_until THEN b.cancelled_at ELSE b.valid_until END"
        " AS held_until,"
        f" CASE WHEN b.state IN ('published', 'cancelled') AND b.kind IN"
        f" ({bulletin_kinds_for(kind)}) AND {B_REACHES_DEVICE} THEN 1 ELSE 0 END AS sent"
        f" FROM bulletins b WHERE b.id IN ({db.dialect.json_values(':ids', 'TEXT')})",
        {"ids": json.dumps(sorted(ids)), "device": device_id, "commune": commune},
    )
    return {
        r["id"]: Evidence(
            id=r["id"],
            kind=_KIND[r["kind"]],
            priority=_PRIORITY[r["priority"]],
            display_seconds=r["display_seconds"],
            text=r["text"],
            held_from=from_iso(r["held_from"]),
            held_until=from_iso(r["held_until"]),
            sent=bool(r["sent"]),
            media_seconds=r["media_seconds"],
        )
        for r in rows
    }


@dataclass(frozen=True)
class ReportRows:
    """One batch of reports as `write_reports` stores it, the rows built on the event loop
    (Python on the writer's thread contends for the GIL with the loop)."""

    device_id: str
    stream: str
    #: When the hub received it, as stored.
    received: str
    #: Credible airings: (device_id, stream, seq, bulletin_id, priority, kind, started_at and
    #: ended_at as `epoch_us`, outcome, position_s, received_at).
    plays: list[tuple[Any, ...]]
    #: Refused airings: (device_id, stream, seq, bulletin_id, reason, detail, report_json,
    #: received_at).
    refused: list[tuple[Any, ...]]
    #: (device_id, stream, seq, at, json, received_at).
    healths: list[tuple[Any, ...]]
    #: The batch's newest health sample: (json, at).
    newest_health: tuple[str, str] | None
    #: (device_id, boot_time) of each boot time the batch's samples name, rounded to the
    #: second (the report counts reboots from them).
    boots: list[tuple[str, float]] = field(default_factory=list)


#: The text of each member of the enums a proof of play holds.
_TEXT: Mapping[StrEnum, str] = MappingProxyType(
    {member: member.value for enum in (Priority, BulletinKind, PlayOutcome) for member in enum}
)


def report_rows(
    device_id: str,
    stream: str,
    received: datetime,
    *,
    credible: list[tuple[ProofOfPlay, int, int]],
    refused: list[tuple[ProofOfPlay, str, str]],
    healths: list[tuple[HealthSample, str]],
) -> ReportRows:
    """A batch's rows: `credible` airings each with its start and end as `epoch_us` (worked
    out once, where they were judged), `refused` ones with their reason and detail, and health
    samples each with its `at` as stored (iso)."""
    at = iso(received)
    newest: tuple[HealthSample, str] | None = None
    for sample in healths:
        if newest is None or sample[0].at > newest[0].at:
            newest = sample
    return ReportRows(
        device_id=device_id,
        stream=stream,
        received=at,
        plays=[
            (
                device_id,
                stream,
                p.seq,
                p.bulletin_id,
                # The plain strings: sqlite3 binds an enum member through its slow adaptation
                # path, and `.value` is a descriptor written in Python, each several times
                # dearer than this lookup.
                _TEXT[p.priority],
                _TEXT[p.kind],
                started_us,
                ended_us,
                _TEXT[p.outcome],
                p.position_s,
                at,
            )
            for p, started_us, ended_us in credible
        ],
        refused=[
            (device_id, stream, p.seq, p.bulletin_id, reason, detail, p.model_dump_json(), at)
            for p, reason, detail in refused
        ],
        healths=[(device_id, stream, h.seq, h_at, h.model_dump_json(), at) for h, h_at in healths],
        newest_health=(newest[0].model_dump_json(), newest[1]) if newest is not None else None,
        boots=sorted({(device_id, float(round(h.boot_time_seconds))) for h, _ in healths}),
    )


#: How far apart a batch's seqs may lie, per report, for its earlier refusals to be read as
#: one range (`write_reports`).
_SEQ_SPREAD = 4

#: Count `:count` refusals newly stored for `:device` and name the newest on the device.
_COUNT_REFUSED = (
    "UPDATE devices SET refused_reports_total = refused_reports_total + :count,"
    " (last_refused_at, last_refused_reason, last_refused_detail) = ("
    "  SELECT received_at, reason, detail FROM refused_reports"
    "  WHERE device_id = :device ORDER BY id DESC LIMIT 1)"
    " WHERE id = :device"
)


async def write_reports(tx: Tx, rows: ReportRows) -> int:
    """Store a batch, for `Database.write` (on SQLite's writer thread, in one hop: little but
    SQL runs here); returns how many refusals were new. Idempotent by (device, stream, seq): one
    verdict per report, whichever table holds the first answer keeps it (a retry is judged
    again). Health samples are kept once each; the device's newest sample is replaced only by
    a newer one (a retried old batch must not overwrite it)."""
    device_id, stream = rows.device_id, rows.stream
    accepted = rows.plays
    if accepted:
        # One query for the batch, not a NOT EXISTS per row: that made each stored play
        # twice as dear. An outbox sends its seqs nearly in a row: then the refusals between
        # the least and the greatest, one range of the (device_id, stream, seq) key, a tenth
        # of the cost of looking each seq up. Seqs spread wide are looked up one by one, so
        # a batch never reads more than a few times its own length of refusals.
        seqs = [row[2] for row in accepted]
        low, high = min(seqs), max(seqs)
        if high - low < _SEQ_SPREAD * len(seqs):
            earlier = await tx.fetchall(
                "SELECT seq FROM refused_reports WHERE device_id = ? AND stream = ?"
                " AND seq BETWEEN ? AND ?",
                (device_id, stream, low, high),
            )
        else:
            earlier = await tx.fetchall(
                "SELECT seq FROM refused_reports WHERE device_id = :device AND stream = :stream"
                f" AND seq IN ({tx.dialect.json_values(':seqs', 'BIGINT')})",
                {"device": device_id, "stream": stream, "seqs": json.dumps(seqs)},
            )
        if earlier:
            refused_before = {r[0] for r in earlier}
            accepted = [row for row in accepted if row[2] not in refused_before]
    started, ended = tx.dialect.iso_from_epoch_us("?7"), tx.dialect.iso_from_epoch_us("?8")
    await tx.executemany(
        "INSERT INTO plays (device_id, stream, seq, bulletin_id, priority, kind,"
        " started_at, ended_at, outcome, position_s, received_at)"
        f" VALUES (?1, ?2, ?3, ?4, ?5, ?6, {started}, {ended}, ?9, ?10, ?11)"
        " ON CONFLICT DO NOTHING",
        accepted,
    )
    newly_refused = 0
    # One statement each (refusals are rare): each answers whether it stored a new one.
    for refused in rows.refused:
        newly_refused += await tx.execute(
            "INSERT INTO refused_reports (device_id, stream, seq, bulletin_id,"
            " reason, detail, report_json, received_at)"
            " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE NOT EXISTS (SELECT 1 FROM plays"
            " WHERE device_id = ?1 AND stream = ?2 AND seq = ?3) ON CONFLICT DO NOTHING",
            refused,
        )
    if newly_refused > 0:
        await tx.execute(_COUNT_REFUSED, {"device": device_id, "count": newly_refused})
    await tx.executemany(
        "INSERT INTO health (device_id, stream, seq, at, json, received_at)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        rows.healths,
    )
    if rows.boots:
        await tx.executemany(
            "INSERT INTO device_boots (device_id, boot_time) VALUES (?, ?) ON CONFLICT DO NOTHING",
            rows.boots,
        )
    if rows.newest_health is not None:
        sample, at = rows.newest_health
        await tx.execute(
            "UPDATE devices SET last_health_json = ?, last_health_at = ?"
            " WHERE id = ? AND (last_health_at IS NULL OR last_health_at < ?)",
            (sample, at, device_id, at),
        )
    await tx.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (rows.received, device_id))
    return newly_refused


async def plays_of_device(db: Reader, device_id: str) -> list[Play]:
    """Every stored play of a device, in the order received."""
    rows = await db.fetchall(
        f"SELECT {_PLAY} FROM plays p WHERE p.device_id = ? ORDER BY p.id", (device_id,)
    )
    return [_play(r) for r in rows]


async def move_plays_to_refused(
    tx: Tx, device_id: str, moved: list[tuple[int, tuple[Any, ...]]]
) -> None:
    """Refuse stored plays after all: each (play id, refused row as in `ReportRows.refused`)
    leaves the plays for the refused reports, counted on the device."""
    await tx.executemany(
        "INSERT INTO refused_reports (device_id, stream, seq, bulletin_id, reason, detail,"
        " report_json, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [row for _, row in moved],
    )
    await tx.executemany("DELETE FROM plays WHERE id = ?", [(i,) for i, _ in moved])
    await tx.execute(_COUNT_REFUSED, {"device": device_id, "count": len(moved)})


# ================================================================ submitted reports


@dataclass(frozen=True)
class Submission:
    scope: str
    report_json: str
    submitted_by: str
    submitted_at: datetime


async def submission(db: Reader, scope: str, first: date, last: date) -> Submission | None:
    row = await db.fetchone(
        "SELECT scope, report_json, submitted_by, submitted_at FROM report_submissions"
        " WHERE scope = ? AND first_day = ? AND last_day = ?",
        (scope, first.isoformat(), last.isoformat()),
    )
    if row is None:
        return None
    return Submission(row[0], row[1], row[2], from_iso(row[3]))


async def submissions(db: Reader, first: date, last: date) -> list[Submission]:
    rows = await db.fetchall(
        "SELECT scope, report_json, submitted_by, submitted_at FROM report_submissions"
        " WHERE first_day = ? AND last_day = ? ORDER BY scope",
        (first.isoformat(), last.isoformat()),
    )
    return [Submission(r[0], r[1], r[2], from_iso(r[3])) for r in rows]


async def submit(
    tx: Tx, scope: str, first: date, last: date, report_json: str, by: str, at: datetime
) -> None:
    await tx.execute(
        "INSERT INTO report_submissions (scope, first_day, last_day, report_json, submitted_by,"
        " submitted_at) VALUES (?, ?, ?, ?, ?, ?)",
        (scope, first.isoformat(), last.isoformat(), report_json, by, iso(at)),
    )
