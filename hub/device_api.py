"""The device-facing API: enrollment, signed manifest, media, WebSocket push, reports.

Devices authenticate with `Authorization: Device <device_id>:<device_secret>`; everything
they receive that could make a loudspeaker sound is signed (manifest and WebSocket frames).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from loa_contract import (
    BulletinKind,
    CommandAck,
    DeviceKind,
    EnrollRequest,
    EnrollResponse,
    HealthSample,
    KeyChain,
    ManifestReady,
    PlayOutcome,
    Priority,
    ProofOfPlay,
    ReportAck,
    ReportBatch,
    SignedEnvelope,
    utcnow,
)

from .appkeys import ENROLL_LIMITER, SENT_CACHE
from .auth import DeviceAuth, Permission
from .db import Database, epoch_us_span, iso
from .errors import ApiError
from .manifests import current_version, signed_manifest
from .node_objects import object_response
from .paging import MAX_CURSOR, MAX_LIMIT, Page, cut, decode_cursor
from .play_evidence import (
    SQLITE_MAX_INTEGER,
    SentBulletin,
    device_bounds,
    refusal,
    sent_bulletin,
)
from .push import Connection, Connections, command_fields
from .routing import Ctx, RouteTable
from .security import code_hash, new_device_secret, sha256_hex
from .store import audit as audit_log
from .store import commands, devices, manifests, media, reports
from .store import releases as agent_releases
from .store.devices import EnrollmentSlot
from .store.reports import Play

log = logging.getLogger(__name__)

routes = RouteTable("device")

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SIGNED = {"application/json": {"schema": SignedEnvelope}}


class PushSocket(web.WebSocketResponse):
    """A device's push socket: aiohttp's, minus a dict of its own.

    CPython keeps an object's attributes in a compact array laid out for its class, for at
    most about 30 names; an object given one more gets a dict of its own. aiohttp's socket
    names 29 by its first read and two more at its first ping: every socket the hub pinged
    (a device whose own heartbeat is longer than the hub's) then carried a 1.6 KB dict for
    as long as it stayed connected. Those two live in slots here instead, set to aiohttp's
    own defaults (tests/test_device_socket_frames.py)."""

    __slots__ = ("_ping_task", "_pong_response_cb")

    def __init__(self, *, heartbeat: float, compress: bool) -> None:
        self._pong_response_cb = None
        self._ping_task = None
        super().__init__(heartbeat=heartbeat, compress=compress)


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
    async with ctx.db.transaction() as tx:
        slot = await devices.slot_for_code(tx, code_hash(body.code))
        refusal = _enrollment_refusal(slot, now)
        if slot is not None and refusal is None:
            await devices.mark_enrolled(
                tx,
                slot.id,
                secret_hash=sha256_hex(secret),
                at=now,
                agent_version=body.agent_version,
                hostname=body.hostname,
            )
            await audit_log.append(
                tx,
                f"device:{slot.id}",
                ctx.address,
                "device.enroll",
                slot.id,
                f"agent {body.agent_version} host {body.hostname}",
                at=now,
            )
    if refusal is not None:
        # Unknown, used and expired codes get one answer, so guessing learns nothing; the
        # audit log keeps the real reason for the operator.
        limiter.failed(address, now)
        async with ctx.db.transaction() as tx:
            await audit_log.append(
                tx, "anonymous", ctx.address, "device.enroll_failed", None, refusal, at=now
            )
        raise ApiError(
            403,
            "invalid_code",
            "unknown, used or expired enrollment code; ask the hub operator for a new one",
        )
    assert slot is not None
    return EnrollResponse(
        device_id=slot.id,
        device_secret=secret,
        device_kind=slot.kind,
        commune=slot.commune,
        profile=slot.profile,
        hub_keys=ctx.keyring.hub_keys(),
    )


def _enrollment_refusal(slot: EnrollmentSlot | None, now: datetime) -> str | None:
    """Why this code cannot enroll a device (for the audit log), or None if it can."""
    if slot is None:
        return "unknown code"
    if slot.used_at is not None:
        return f"code of device {slot.id} already used"
    if slot.expires_at <= now:
        return f"code of device {slot.id} expired"
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
    "/api/v1/device/keys",
    summary="Every key endorsement the hub made, oldest first: how a device learns a rotated key",
    auth="device",
    response=KeyChain,
)
async def device_keys(ctx: Ctx) -> KeyChain:
    return KeyChain(endorsements=ctx.keyring.endorsements)


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
    mime = await media.device_media_mime(ctx.db, sha, device.id, device.commune, device.kind)
    if mime is None and await agent_releases.release_by_sha(ctx.db, sha) is not None:
        # An agent release (issue #14): fetched, resumed and verified like media.
        return await object_response(ctx, "releases", sha, "application/x-tar")
    # The same 404 for "missing" and "not yours": a device learns nothing about others' media.
    if mime is None:
        raise ApiError(404, "not_found", "no such media for this device")
    return await object_response(ctx, "media", sha, mime)


@routes.get(
    "/api/v1/device/ws",
    summary="WebSocket: signed manifest_ready, emergency_start/cancel and operator commands",
    auth="device",
    admission=True,
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
    ws = PushSocket(heartbeat=config.ws_heartbeat_s, compress=False)
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
        # This handler lives as long as the new socket: holding the old one here would keep
        # its buffers for as long, one more per reconnection.
        old = None
    device_id = device.id
    try:
        # Its own coroutine: what the catch-up reads is freed once it is sent, not kept for
        # the socket's lifetime (months, times every device of the province).
        await _catch_up(ctx, conn)
        ctx.admitted()
        async for msg in ws:
            # Devices report over HTTP; on this socket they only answer operator commands.
            if msg.type == WSMsgType.TEXT:
                await _command_answered(db, connections, device_id, msg.data, ctx.now)
            elif msg.type == WSMsgType.ERROR:
                log.info("device %s socket error: %r", device_id, ws.exception())
    finally:
        connections.unregister(conn)
        # aiohttp cancels a WebSocket handler when the peer vanishes; the shield lets this
        # last write finish (and its transaction close) even then.
        await asyncio.shield(_seen(db, device_id, ctx.now))
    return ws


async def _catch_up(ctx: Ctx, conn: Connection) -> None:
    """What a device that has just (re)connected must hear: its manifest version and each
    active emergency's start. Registered first, then read: a publish in between is pushed,
    never missed."""
    device = ctx.device
    connections = ctx.connections
    versions = await manifests.versions_of(ctx.db, [device.id])
    version = versions.get(device.id, device.manifest_version)
    now = ctx.now
    connections.write(
        conn,
        connections.sign(
            ManifestReady(**command_fields(device.id, now, ctx.config.command_ttl), version=version)
        ).frame,
    )
    # Each active emergency's start as signed once for its scope: a reconnection storm signs
    # nothing more, and a device that heard it already knows its command id.
    for start in connections.emergencies.due_for(device.id, device.commune, device.kind, now):
        connections.write(conn, start.frame)


async def _command_answered(
    db: Database, connections: Connections, device_id: str, data: str, now: datetime
) -> None:
    """A device's CommandAck: recorded against its own command only (another device's id,
    or a second answer, changes nothing). A frame that is not an ack is logged and dropped:
    the socket stays up, for a newer agent may say things this hub does not know."""
    try:
        ack = CommandAck.model_validate_json(data)
    except ValidationError as exc:
        log.info("device %s sent an unreadable frame: %s", device_id, exc.errors()[:1])
        return
    async with db.transaction() as tx:
        recorded = await commands.answer(
            tx,
            ack.command_id,
            device_id=device_id,
            status=ack.status.value,
            reason=ack.reason,
            detail=ack.detail,
            at=now,
        )
    if recorded:
        await connections.answered(ack.command_id)
    else:
        log.info("device %s answered unknown or answered command %s", device_id, ack.command_id)


async def _seen(db: Database, device_id: str, now: datetime) -> None:
    async with db.transaction() as tx:
        await devices.touch_seen(tx, device_id, now)


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
    now = ctx.now
    proofs: list[ProofOfPlay] = []
    healths: list[tuple[HealthSample, str]] = []
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
            healths.append((r, at))
    if unstorable:
        raise ApiError(422, "validation_error", unstorable)

    credible: list[tuple[ProofOfPlay, int, int]] = []
    refused: list[tuple[ProofOfPlay, str, str]] = []
    if proofs:
        # Judged here on the event loop, not inside the write: Python on the writer's thread
        # contends for the GIL with the loop and stretched each batch's write several times.
        sent = await _sent_to(ctx, device, {p.bulletin_id for p in proofs})
        bounds = device_bounds(device.enrolled_at, now)
        for p in proofs:
            started_us, ended_us = epoch_us_span(p.started_at, p.ended_at)
            why = refusal(p, started_us, ended_us, sent.get(p.bulletin_id), bounds)
            if why is None:
                credible.append((p, started_us, ended_us))
            else:
                refused.append((p, why.reason, why.detail))
    rows = reports.report_rows(
        device_id, stream, now, credible=credible, refused=refused, healths=healths
    )
    newly_refused = await ctx.db.write(partial(reports.write_reports, rows=rows))
    if newly_refused:
        log.info("device %s: %d proof-of-play reports refused", device_id, newly_refused)
    return ReportAck(acked=sorted({r.seq for r in batch.reports}))


async def _sent_to(ctx: Ctx, device: DeviceAuth, ids: set[str]) -> Mapping[str, SentBulletin]:
    """What the named bulletins are to the device, those kept from its earlier batches at its
    current manifest version (hub/play_evidence.py SentCache) and the others looked up."""
    cache = ctx.app[SENT_CACHE]
    known = cache.known(device.id, device.manifest_version)
    missing = ids - known.keys()
    if not missing:
        return known
    found = await _evidence(ctx.db, device.id, device.commune, device.kind, missing)
    cache.add(device.id, device.manifest_version, found)
    return {**known, **found}


async def _evidence(
    db: Database, device_id: str, commune: str, kind: DeviceKind, ids: set[str]
) -> dict[str, SentBulletin]:
    """What the named bulletins are to the device: those that exist, each marked whether it
    was ever sent to it, with its bounds worked out once (a batch checks many airings)."""
    found = await reports.evidence(db, device_id, commune, kind, ids)
    return {
        e.id: sent_bulletin(
            e.id,
            e.kind,
            e.priority,
            sent_to_device=e.sent,
            held_from=e.held_from,
            held_until=e.held_until,
            device_kind=kind,
            words=len(e.text.split()) if e.text else 0,
            chars=len(e.text) if e.text else 0,
            display_seconds=e.display_seconds,
            media_seconds=e.media_seconds,
        )
        for e in found.values()
    }


async def recheck_stored_plays(
    db: Database, *, apply: bool, clock: Callable[[], datetime] = utcnow
) -> dict[str, int]:
    """Judge the plays stored before the hub checked proof of play by today's rules; with
    `apply`, move those it refuses to refused_reports (reason and all, counted on the device)
    so reports stop counting them. Returns the count per reason.

    Each play is judged as of when it was received. The enrollment bound is left out: a device
    re-enrolled since (a new SD card) has a later enrollment than its older plays."""
    counts: dict[str, int] = {}
    for device in sorted(await reports.devices_of(db, None), key=lambda d: d.id):
        plays = await reports.plays_of_device(db, device.id)
        if not plays:
            continue
        kind = DeviceKind(device.kind)
        sent = await _evidence(db, device.id, device.commune, kind, {p.bulletin_id for p in plays})
        moved: list[tuple[int, tuple[Any, ...]]] = []
        for stored in plays:
            play = ProofOfPlay(
                seq=stored.seq,
                bulletin_id=stored.bulletin_id,
                priority=stored.priority,
                kind=stored.kind,
                started_at=stored.started_at,
                ended_at=stored.ended_at,
                outcome=stored.outcome,
                position_s=stored.position_s,
            )
            why = refusal(
                play,
                *epoch_us_span(play.started_at, play.ended_at),
                sent.get(play.bulletin_id),
                device_bounds(None, stored.received_at),
            )
            if why is None:
                continue
            counts[why.reason] = counts.get(why.reason, 0) + 1
            moved.append(
                (
                    stored.id,
                    (
                        device.id,
                        stored.stream,
                        play.seq,
                        play.bulletin_id,
                        why.reason,
                        f"rechecked after storing: {why.detail}",
                        play.model_dump_json(),
                        iso(stored.received_at),
                    ),
                )
            )
        if apply and moved:
            async with db.transaction() as tx:
                await reports.move_plays_to_refused(tx, device.id, moved)
                await audit_log.append(
                    tx,
                    "cli",
                    None,
                    "plays.recheck",
                    device.id,
                    f"{len(moved)} stored plays moved to the refused reports",
                    at=clock(),
                )
    return counts


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
