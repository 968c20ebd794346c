"""The device-facing API: enrollment, signed manifest, media, WebSocket push, reports.

Devices authenticate with `Authorization: Device <device_id>:<device_secret>`; everything
they receive that could make a loudspeaker sound is signed (manifest and WebSocket frames).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field

from loa_contract import (
    BulletinKind,
    DeviceKind,
    EnrollRequest,
    EnrollResponse,
    HealthSample,
    ManifestReady,
    PlayOutcome,
    Priority,
    ProofOfPlay,
    ReportAck,
    ReportBatch,
    SignedEnvelope,
    utcnow,
)

from .appkeys import ENROLL_LIMITER
from .auth import Permission
from .db import ISO_FROM_PARTS, Database, from_iso, iso, utc_parts
from .errors import ApiError
from .manifests import (
    TARGETS_DEVICE,
    current_version,
    kinds_sql,
    signed_manifest,
)
from .media import file_response
from .paging import MAX_CURSOR, MAX_LIMIT, Page, cut, decode_cursor
from .play_evidence import (
    SQLITE_MAX_INTEGER,
    SentBulletin,
    device_bounds,
    refusal,
    sent_bulletin,
)
from .push import command_fields
from .routing import Ctx, RouteTable
from .security import code_hash, new_device_secret, sha256_hex
from .store import audit as audit_log
from .store import reports
from .store.reports import Play

log = logging.getLogger(__name__)

routes = RouteTable("device")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
#: The enum member of a stored value, by a dict lookup: calling the enum is several times dearer.
_KIND = {k.value: k for k in BulletinKind}
_PRIORITY = {p.value: p for p in Priority}
#: Count refusals newly stored for device ?1 (?2 of them) and name the newest on the device.
_COUNT_REFUSED = (
    "UPDATE devices SET refused_reports_total = refused_reports_total + ?2,"
    " (last_refused_at, last_refused_reason, last_refused_detail) = ("
    "  SELECT received_at, reason, detail FROM refused_reports"
    "  WHERE device_id = ?1 ORDER BY id DESC LIMIT 1)"
    " WHERE id = ?1"
)
_SIGNED = {"application/json": {"schema": SignedEnvelope}}


@routes.post(
    "/api/v1/enroll",
    summary="Trade a one-time enrollment code for a device identity",
    auth="public",
    body=EnrollRequest,
    response=EnrollResponse,
    status=201,
    errors=[403, 429],
)
async def enroll(ctx: Ctx) -> EnrollResponse:
    body: EnrollRequest = ctx.body
    secret = new_device_secret()
    now = ctx.now
    limiter = ctx.app[ENROLL_LIMITER]
    address = ctx.address or "unknown"
    wait = limiter.retry_after(address, now)
    if wait is not None:
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many wrong enrollment codes from this address; try again in {wait:.0f} s",
            headers={"Retry-After": str(int(wait + 0.999))},
        )
    async with ctx.db.transaction() as conn:
        cur = await conn.fetchone(
            "SELECT * FROM devices WHERE enrollment_code_hash = ?", (code_hash(body.code),)
        )
        row = cur
        refusal = _enrollment_refusal(row, now)
        if row is not None and refusal is None:
            await conn.execute(
                "UPDATE devices SET enrollment_used_at = ?, secret_hash = ?, enrolled_at = ?,"
                " agent_version = ?, hostname = ?, last_seen = ? WHERE id = ?",
                (
                    iso(now),
                    sha256_hex(secret),
                    iso(now),
                    body.agent_version,
                    body.hostname,
                    iso(now),
                    row["id"],
                ),
            )
            await audit_log.append(
                conn,
                f"device:{row['id']}",
                ctx.address,
                "device.enroll",
                row["id"],
                f"agent {body.agent_version} host {body.hostname}",
                at=now,
            )
    if refusal is not None:
        # Unknown, used and expired codes get one answer, so guessing learns nothing; the
        # audit log keeps the real reason for the operator.
        limiter.failed(address, now)
        async with ctx.db.transaction() as conn:
            await audit_log.append(
                conn, "anonymous", ctx.address, "device.enroll_failed", None, refusal, at=now
            )
        raise ApiError(
            403,
            "invalid_code",
            "unknown, used or expired enrollment code; ask the hub operator for a new one",
        )
    assert row is not None
    return EnrollResponse(
        device_id=row["id"],
        device_secret=secret,
        device_kind=row["kind"],
        commune=row["commune"],
        profile=row["profile"],
        hub_keys=ctx.keyring.hub_keys(),
    )


def _enrollment_refusal(row: sqlite3.Row | None, now: datetime) -> str | None:
    """Why this code cannot enroll a device (for the audit log), or None if it can."""
    if row is None:
        return "unknown code"
    if row["enrollment_used_at"] is not None:
        return f"code of device {row['id']} already used"
    if from_iso(row["enrollment_expires_at"]) <= now:
        return f"code of device {row['id']} expired"
    return None


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return etag in tags or "*" in tags


@routes.get(
    "/api/v1/device/manifest",
    summary="This device's signed manifest (SignedEnvelope of a Manifest); ETag is the version",
    auth="device",
    response_content={
        "200": {"description": "SignedEnvelope whose payload is a Manifest", "content": _SIGNED},
        "304": {"description": "Not modified (If-None-Match matched the current version)"},
    },
)
async def device_manifest(ctx: Ctx) -> web.StreamResponse:
    version = await current_version(ctx.app, ctx.device)
    etag = f'"{version}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _etag_matches(ctx.request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    body = await signed_manifest(ctx.app, ctx.device, version)
    return web.Response(body=body, content_type="application/json", headers=headers)


@routes.get(
    "/api/v1/device/media/{sha256}",
    summary="A media file of one of this device's bulletins; supports Range for resuming",
    auth="device",
    errors=[404],
    response_content={
        "200": {
            "description": "The file",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        "206": {"description": "Partial content (Range)"},
    },
)
async def device_media(ctx: Ctx) -> web.StreamResponse:
    sha = ctx.path("sha256")
    device = ctx.device
    if not _SHA256.match(sha):
        raise ApiError(404, "not_found", "no such media for this device")
    row = await ctx.db.fetchone(
        "SELECT m.mime FROM media m WHERE m.sha256 = :sha AND EXISTS ("
        " SELECT 1 FROM bulletins b WHERE b.media_sha256 = m.sha256 AND b.state = 'published'"
        f" AND b.kind IN ({kinds_sql(device.kind)}) AND {TARGETS_DEVICE})",
        {"sha": sha, "device": device.id, "commune": device.commune},
    )
    # The same 404 for "missing" and "not yours": a device learns nothing about others' media.
    if row is None:
        raise ApiError(404, "not_found", "no such media for this device")
    return file_response(ctx.config.media_dir, sha, row["mime"])


@routes.get(
    "/api/v1/device/ws",
    summary="WebSocket: signed manifest_ready, emergency_start/cancel and operator commands",
    auth="device",
    response_content={
        "101": {
            "description": "Switching protocols; each text frame is a"
            " SignedEnvelope of a CommandDocument"
        }
    },
)
async def device_ws(ctx: Ctx) -> web.StreamResponse:
    device = ctx.device
    connections = ctx.connections
    config = ctx.config
    db = ctx.db
    # Uncompressed: the hub writes its frames to the transport itself (see hub.push).
    ws = web.WebSocketResponse(heartbeat=config.ws_heartbeat_s, compress=False)
    await ws.prepare(ctx.request)
    transport = ctx.request.transport
    if transport is None:  # the device hung up during the handshake
        return ws
    conn, old = connections.register(device.id, ws, transport)
    if old is not None:
        # Not awaited here: a dead old socket would hold the new one's catch-up for the
        # close handshake's timeout.
        connections.in_background(
            old.socket.close(code=4000, message=b"replaced by a newer connection"),
            f"closing the replaced socket of {device.id}",
        )
    try:
        # Registered first, then read: a publish in between is pushed, never missed.
        row = await db.fetchone("SELECT manifest_version FROM devices WHERE id = ?", (device.id,))
        version = row["manifest_version"] if row else device.manifest_version
        now = utcnow()
        connections.write(
            conn,
            connections.sign(
                ManifestReady(**command_fields(device.id, now, config.command_ttl), version=version)
            ).frame,
        )
        # Each active emergency's start as signed once for its scope: a reconnection storm
        # signs nothing more, and a device that heard it already knows its command id.
        for start in connections.emergencies.due_for(device.id, device.commune, device.kind, now):
            connections.write(conn, start.frame)
        async for msg in ws:
            # Devices report over HTTP; anything they send here only proves they are alive.
            if msg.type == WSMsgType.ERROR:
                log.info("device %s socket error: %r", device.id, ws.exception())
    finally:
        connections.unregister(conn)
        # aiohttp cancels a WebSocket handler when the peer vanishes; the shield lets this
        # last write finish (and its transaction close) even then.
        await asyncio.shield(
            db.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (iso(utcnow()), device.id))
        )
    return ws


@routes.post(
    "/api/v1/device/reports",
    summary="Proof-of-play and health; idempotent by (device, stream, seq). A proof of play the"
    " hub cannot believe is refused: kept with its reason, acknowledged, never counted",
    auth="device",
    body=ReportBatch,
    response=ReportAck,
    errors=[422],
)
async def device_reports(ctx: Ctx) -> ReportAck:
    batch: ReportBatch = ctx.body
    device = ctx.device
    device_id = device.id
    stream = batch.stream
    now = utcnow()
    received = iso(now)
    proofs: list[ProofOfPlay] = []
    healths: list[tuple[Any, ...]] = []
    latest: HealthSample | None = None
    unstorable: list[dict[str, str]] = []
    for i, r in enumerate(batch.reports):
        if r.seq > SQLITE_MAX_INTEGER:
            # Not a refusal: a row that cannot be stored cannot be acknowledged either.
            unstorable.append(
                {"field": f"reports[{i}].seq", "message": f"at most {SQLITE_MAX_INTEGER}"}
            )
        elif isinstance(r, ProofOfPlay):
            proofs.append(r)
        else:
            try:
                at = iso(r.at)
            except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 is past year 9999 in UTC
                unstorable.append({"field": f"reports[{i}].at", "message": "out of range"})
                continue
            healths.append((device_id, stream, r.seq, at, r.model_dump_json(), received))
            if latest is None or r.at > latest.at:
                latest = r
    if unstorable:
        raise ApiError(422, "validation_error", unstorable)
    newest = (latest.model_dump_json(), iso(latest.at)) if latest is not None else None

    plays: list[tuple[Any, ...]] = []
    refused: list[tuple[Any, ...]] = []
    if proofs:
        # Judged here on the event loop, not inside the write: Python on the writer's thread
        # contends for the GIL with the loop and stretched each batch's write several times.
        ids = {p.bulletin_id for p in proofs}
        sent, enrolled_at = await _evidence(ctx.db, device.id, device.commune, device.kind, ids)
        bounds = device_bounds(enrolled_at, now)
        for p in proofs:
            why = refusal(p, sent.get(p.bulletin_id), bounds)
            if why is None:
                plays.append(
                    (
                        device_id,
                        stream,
                        p.seq,
                        p.bulletin_id,
                        # The plain strings: sqlite3 binds an enum member through its slow
                        # adaptation path, several times dearer than this lookup.
                        p.priority.value,
                        p.kind.value,
                        *utc_parts(p.started_at),
                        *utc_parts(p.ended_at),
                        p.outcome.value,
                        p.position_s,
                        received,
                    )
                )
            else:
                refused.append(
                    (
                        device_id,
                        stream,
                        p.seq,
                        p.bulletin_id,
                        why.reason,
                        why.detail,
                        p.model_dump_json(),
                        received,
                    )
                )

    play_seqs = json.dumps([row[2] for row in plays])

    def store(conn: sqlite3.Connection) -> int:
        # One function on the writer's thread: the whole batch is one hop, not one per
        # statement; little but SQL runs there. One verdict per (device, stream, seq): a retry
        # is judged again, but whichever table holds the first answer keeps it. (One query
        # for the batch, not a NOT EXISTS per row: that made each stored play twice as dear.)
        accepted = plays
        if plays:
            earlier = conn.execute(
                "SELECT seq FROM refused_reports WHERE device_id = ? AND stream = ?"
                " AND seq IN (SELECT value FROM json_each(?))",
                (device_id, stream, play_seqs),
            ).fetchall()
            if earlier:
                refused_before = {r[0] for r in earlier}
                accepted = [row for row in plays if row[2] not in refused_before]
        conn.executemany(
            "INSERT OR IGNORE INTO plays (device_id, stream, seq, bulletin_id, priority, kind,"
            " started_at, ended_at, outcome, position_s, received_at)"
            f" VALUES (?, ?, ?, ?, ?, ?, {ISO_FROM_PARTS}, {ISO_FROM_PARTS}, ?, ?, ?)",
            accepted,
        )
        newly_refused = 0
        if refused:
            newly_refused = conn.executemany(
                "INSERT OR IGNORE INTO refused_reports (device_id, stream, seq, bulletin_id,"
                " reason, detail, report_json, received_at)"
                " SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE NOT EXISTS (SELECT 1 FROM plays"
                " WHERE device_id = ?1 AND stream = ?2 AND seq = ?3)",
                refused,
            ).rowcount
        if newly_refused > 0:
            conn.execute(
                _COUNT_REFUSED,
                (device_id, newly_refused),
            )
        conn.executemany(
            "INSERT OR IGNORE INTO health (device_id, stream, seq, at, json, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            healths,
        )
        if newest is not None:
            # A retried old batch must not overwrite a newer sample.
            conn.execute(
                "UPDATE devices SET last_health_json = ?, last_health_at = ?"
                " WHERE id = ? AND (last_health_at IS NULL OR last_health_at < ?)",
                (newest[0], newest[1], device_id, newest[1]),
            )
        conn.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (received, device_id))
        return newly_refused

    newly_refused = await ctx.db.write(store)
    if newly_refused:
        log.info("device %s: %d proof-of-play reports refused", device_id, newly_refused)
    return ReportAck(acked=sorted({r.seq for r in batch.reports}))


async def _evidence(
    db: Database, device_id: str, commune: str, kind: DeviceKind, ids: set[str]
) -> tuple[dict[str, SentBulletin], datetime | None]:
    """What the named bulletins are to the device (those that exist, each marked whether it
    was ever sent to it) and when it was enrolled: one read."""
    rows = await db.fetchall(
        "SELECT d.enrolled_at, b.id, b.kind, b.priority, b.display_seconds, b.text,"
        # Stored times share iso()'s one shape, so they compare as text: the device could hold
        # it from its publication or valid_from (the later) until valid_until or its
        # cancellation (the earlier).
        " max(b.valid_from, coalesce(b.published_at, b.valid_from)) AS held_from,"
        " min(b.valid_until, coalesce(b.cancelled_at, b.valid_until)) AS held_until,"
        f" b.state IN ('published', 'cancelled') AND b.kind IN ({kinds_sql(kind)})"
        f" AND {TARGETS_DEVICE} AS sent"
        # The device's row even when no bulletin matches: it carries the enrollment.
        " FROM devices d LEFT JOIN bulletins b ON b.id IN (SELECT value FROM json_each(:ids))"
        " WHERE d.id = :device",
        {"ids": json.dumps(sorted(ids)), "device": device_id, "commune": commune},
    )
    enrolled = rows[0]["enrolled_at"] if rows else None
    found: dict[str, SentBulletin] = {}
    for r in rows:
        if r["id"] is None:
            continue
        found[r["id"]] = sent_bulletin(
            r["id"],
            _KIND[r["kind"]],
            _PRIORITY[r["priority"]],
            sent_to_device=bool(r["sent"]),
            held_from=from_iso(r["held_from"]),
            held_until=from_iso(r["held_until"]),
            device_kind=kind,
            words=len(r["text"].split()) if r["text"] else 0,
            display_seconds=r["display_seconds"],
        )
    return found, from_iso(enrolled) if enrolled else None


async def recheck_stored_plays(
    db: Database, *, apply: bool, clock: Callable[[], datetime] = utcnow
) -> dict[str, int]:
    """Judge the plays stored before the hub checked proof of play by today's rules; with
    `apply`, move those it refuses to refused_reports (reason and all, counted on the device)
    so reports stop counting them. Returns the count per reason.

    Each play is judged as of when it was received. The enrollment bound is left out: a device
    re-enrolled since (a new SD card) has a later enrollment than its older plays."""
    counts: dict[str, int] = {}
    devices = await db.fetchall("SELECT id, commune, kind FROM devices ORDER BY id")
    for device in devices:
        rows = await db.fetchall(
            "SELECT * FROM plays WHERE device_id = ? ORDER BY id", (device["id"],)
        )
        if not rows:
            continue
        kind = DeviceKind(device["kind"])
        sent, _ = await _evidence(
            db, device["id"], device["commune"], kind, {r["bulletin_id"] for r in rows}
        )
        moved: list[tuple[int, tuple[Any, ...]]] = []
        for r in rows:
            out = PlayOut.from_row(r)
            play = ProofOfPlay(
                seq=out.seq,
                bulletin_id=out.bulletin_id,
                priority=out.priority,
                kind=out.kind,
                started_at=out.started_at,
                ended_at=out.ended_at,
                outcome=out.outcome,
                position_s=out.position_s,
            )
            why = refusal(play, sent.get(play.bulletin_id), device_bounds(None, out.received_at))
            if why is None:
                continue
            counts[why.reason] = counts.get(why.reason, 0) + 1
            moved.append(
                (
                    r["id"],
                    (
                        device["id"],
                        r["stream"],
                        play.seq,
                        play.bulletin_id,
                        why.reason,
                        f"rechecked after storing: {why.detail}",
                        play.model_dump_json(),
                        r["received_at"],
                    ),
                )
            )
        if apply and moved:
            await _move_to_refused(db, device["id"], moved, clock())
    return counts


async def _move_to_refused(
    db: Database, device_id: str, moved: list[tuple[int, tuple[Any, ...]]], now: datetime
) -> None:
    async with db.transaction() as conn:
        await conn.executemany(
            "INSERT OR IGNORE INTO refused_reports (device_id, stream, seq, bulletin_id, reason,"
            " detail, report_json, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [row for _, row in moved],
        )
        await conn.executemany("DELETE FROM plays WHERE id = ?", [(i,) for i, _ in moved])
        await conn.execute(
            _COUNT_REFUSED,
            (device_id, len(moved)),
        )
        await audit_log.append(
            conn,
            "cli",
            None,
            "plays.recheck",
            device_id,
            f"{len(moved)} stored plays moved to the refused reports",
            at=now,
        )


class PlaysQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(default=None, max_length=100)
    bulletin: str | None = Field(default=None, max_length=100)
    #: The previous page's X-Next-Before: this page continues after that play.
    before: str | None = Field(default=None, max_length=MAX_CURSOR)
    limit: int = Field(default=MAX_LIMIT, ge=1, le=MAX_LIMIT)


class PlayOut(BaseModel):
    device_id: str
    seq: int
    bulletin_id: str
    priority: Priority
    kind: BulletinKind
    started_at: datetime
    ended_at: datetime
    outcome: PlayOutcome
    position_s: float
    received_at: datetime

    @classmethod
    def of(cls, play: Play) -> PlayOut:
        return cls(
            device_id=play.device_id,
            seq=play.seq,
            bulletin_id=play.bulletin_id,
            priority=play.priority,
            kind=play.kind,
            started_at=play.started_at,
            ended_at=play.ended_at,
            outcome=play.outcome,
            position_s=play.position_s,
            received_at=play.received_at,
        )

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> PlayOut:
        return cls(
            device_id=r["device_id"],
            seq=r["seq"],
            bulletin_id=r["bulletin_id"],
            priority=r["priority"],
            kind=r["kind"],
            started_at=r["started_at"],
            ended_at=r["ended_at"],
            outcome=r["outcome"],
            position_s=r["position_s"],
            received_at=r["received_at"],
        )


@routes.get(
    "/api/v1/plays",
    summary="Stored proof-of-play rows (of the caller's communes), newest first;"
    " paged: follow the Link header",
    permission=Permission.FLEET_READ,
    query=PlaysQuery,
    response=list[PlayOut],
)
async def list_plays(ctx: Ctx) -> Page[list[PlayOut]]:
    query: PlaysQuery = ctx.query
    before = None
    if query.before is not None:
        started_at, play_id = decode_cursor(query.before, (str, int))
        before = (started_at, play_id)
    rows = await reports.plays_page(
        ctx.db,
        commune=ctx.user.commune,
        device=query.device,
        bulletin=query.bulletin,
        before=before,
        limit=query.limit + 1,
    )
    rows, cursor = cut(rows, query.limit, reports.play_key)
    return Page([PlayOut.of(r) for r in rows], cursor)


class RefusedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str | None = Field(default=None, max_length=100)
    #: A reason code of hub/play_evidence.py ("too_long", "not_sent_to_device", …).
    reason: str | None = Field(default=None, max_length=64)
    #: The previous page's X-Next-Before: this page continues after that report.
    before: str | None = Field(default=None, max_length=MAX_CURSOR)
    limit: int = Field(default=MAX_LIMIT, ge=1, le=MAX_LIMIT)


class RefusedReportOut(BaseModel):
    device_id: str
    stream: str
    seq: int
    bulletin_id: str
    #: Stable code (hub/play_evidence.py REASONS) and the sentence for the operator.
    reason: str
    detail: str
    #: The proof of play as the device sent it.
    report: dict[str, Any]
    received_at: datetime


@routes.get(
    "/api/v1/refused-reports",
    summary="Proof-of-play reports the hub refused (of the caller's communes), each with its"
    " reason and the row as sent, newest first; paged: follow the Link header",
    permission=Permission.FLEET_READ,
    query=RefusedQuery,
    response=list[RefusedReportOut],
)
async def list_refused_reports(ctx: Ctx) -> Page[list[RefusedReportOut]]:
    query: RefusedQuery = ctx.query
    before = None
    if query.before is not None:
        (before,) = decode_cursor(query.before, (int,))
    rows = await reports.refused_page(
        ctx.db,
        commune=ctx.user.commune,
        device=query.device,
        reason=query.reason,
        before=before,
        limit=query.limit + 1,
    )
    rows, cursor = cut(rows, query.limit, lambda r: (r.id,))
    return Page(
        [
            RefusedReportOut(
                device_id=r.device_id,
                stream=r.stream,
                seq=r.seq,
                bulletin_id=r.bulletin_id,
                reason=r.reason,
                detail=r.detail,
                report=r.report,
                received_at=r.received_at,
            )
            for r in rows
        ],
        cursor,
    )
