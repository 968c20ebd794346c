"""The device-facing API: enrollment, signed manifest, media, WebSocket push, reports.

Devices authenticate with `Authorization: Device <device_id>:<device_secret>`; everything
they receive that could make a loudspeaker sound is signed (manifest and WebSocket frames).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from datetime import datetime
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field

from loa_contract import (
    BulletinKind,
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
from .db import ISO_FROM_PARTS, audit, from_iso, iso, utc_parts
from .errors import ApiError
from .manifests import (
    TARGETS_DEVICE,
    current_version,
    kinds_sql,
    signed_manifest,
)
from .media import file_response
from .paging import MAX_CURSOR, MAX_LIMIT, Page, after_key, cut, decode_cursor, key_params
from .push import command_fields
from .routing import Ctx, RouteTable
from .security import code_hash, new_device_secret, sha256_hex

log = logging.getLogger(__name__)

routes = RouteTable("device")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
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
    now = utcnow()
    limiter = ctx.app[ENROLL_LIMITER]
    address = ctx.address or "unknown"
    wait = limiter.retry_after(address, ctx.now)
    if wait is not None:
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many wrong enrollment codes from this address; try again in {wait:.0f} s",
            headers={"Retry-After": str(int(wait + 0.999))},
        )
    async with ctx.db.transaction() as conn:
        cur = await conn.execute(
            "SELECT * FROM devices WHERE enrollment_code_hash = ?", (code_hash(body.code),)
        )
        row = await cur.fetchone()
        refusal = _enrollment_refusal(row, now)
        if refusal is None:
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
            await audit(
                conn,
                f"device:{row['id']}",
                ctx.address,
                "device.enroll",
                row["id"],
                f"agent {body.agent_version} host {body.hostname}",
            )
    if refusal is not None:
        # Unknown, used and expired codes get one answer, so guessing learns nothing; the
        # audit log keeps the real reason for the operator.
        limiter.failed(address, ctx.now)
        async with ctx.db.transaction() as conn:
            await audit(conn, "anonymous", ctx.address, "device.enroll_failed", None, refusal)
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
    summary="Proof-of-play and health; idempotent by (device, stream, seq)",
    auth="device",
    body=ReportBatch,
    response=ReportAck,
)
async def device_reports(ctx: Ctx) -> ReportAck:
    batch: ReportBatch = ctx.body
    device_id = ctx.device.id
    stream = batch.stream
    now = iso(utcnow())
    plays: list[tuple[Any, ...]] = []
    healths: list[tuple[Any, ...]] = []
    latest: HealthSample | None = None
    for r in batch.reports:
        if isinstance(r, ProofOfPlay):
            plays.append(
                (
                    device_id,
                    stream,
                    r.seq,
                    r.bulletin_id,
                    # The plain strings: sqlite3 binds an enum member through its slow
                    # adaptation path, several times dearer than this lookup.
                    r.priority.value,
                    r.kind.value,
                    *utc_parts(r.started_at),
                    *utc_parts(r.ended_at),
                    r.outcome.value,
                    r.position_s,
                    now,
                )
            )
        else:
            healths.append((device_id, stream, r.seq, iso(r.at), r.model_dump_json(), now))
            if latest is None or r.at > latest.at:
                latest = r
    newest = (latest.model_dump_json(), iso(latest.at)) if latest is not None else None

    def store(conn: sqlite3.Connection) -> None:
        # One function on the writer's thread: the whole batch is one hop, not one per statement.
        conn.executemany(
            "INSERT OR IGNORE INTO plays (device_id, stream, seq, bulletin_id, priority, kind,"
            " started_at, ended_at, outcome, position_s, received_at)"
            f" VALUES (?, ?, ?, ?, ?, ?, {ISO_FROM_PARTS}, {ISO_FROM_PARTS}, ?, ?, ?)",
            plays,
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
        conn.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (now, device_id))

    await ctx.db.write(store)
    return ReportAck(acked=sorted({r.seq for r in batch.reports}))


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


#: Newest first, as the audit log; the row id breaks ties between plays that started together.
_PLAY_ORDER = ("started_at", "id")


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
    where: list[str] = []
    params: dict[str, Any] = {}
    commune = ctx.user.commune
    if commune is not None:
        where.append("device_id IN (SELECT id FROM devices WHERE commune = :scope)")
        params["scope"] = commune
    if query.device:
        where.append("device_id = :device")
        params["device"] = query.device
    if query.bulletin:
        where.append("bulletin_id = :bulletin")
        params["bulletin"] = query.bulletin
    if query.before is not None:
        where.append(after_key(_PLAY_ORDER, descending=True))
        params.update(key_params(decode_cursor(query.before, (str, int))))
    rows = await ctx.db.fetchall(
        "SELECT * FROM plays"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY started_at DESC, id DESC LIMIT :limit",
        {**params, "limit": query.limit + 1},
    )
    rows, cursor = cut(rows, query.limit, lambda r: (r["started_at"], r["id"]))
    return Page([PlayOut.from_row(r) for r in rows], cursor)
