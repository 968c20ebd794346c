"""Bulletins (bản tin): create as draft, publish into the devices' manifests, cancel.

Publishing an emergency also pushes `emergency_start` to every online device it targets, so it
plays now; cancelling pushes `emergency_cancel`. Offline devices catch up from the manifest
and from the pushes sent when their WebSocket reconnects.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import aiosqlite
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from loa_contract import (
    HHMM,
    BulletinKind,
    ManifestBulletin,
    MediaRef,
    Priority,
    Schedule,
    Sha256,
    utcnow,
)

from .auth import Permission
from .db import audit, from_iso, iso
from .errors import ApiError
from .manifests import (
    BULLETIN_SELECT,
    EMERGENCY_SLACK,
    bump_versions,
    manifest_bulletin,
    targeted_devices,
)
from .routing import Ctx, RouteTable

routes = RouteTable("bulletins")

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
State = Literal["draft", "published", "cancelled"]


class TargetsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    communes: list[str] = Field(default_factory=list, max_length=10_000)
    devices: list[str] = Field(default_factory=list, max_length=10_000)


class ScheduleIn(BaseModel):
    """The API's schedule; checks each field itself so errors name `schedule.valid_until`."""

    model_config = ConfigDict(extra="forbid")

    valid_from: AwareDatetime
    valid_until: AwareDatetime
    times: list[HHMM] = Field(default_factory=list, max_length=48)
    repeats: int = Field(default=1, ge=1, le=20)

    @field_validator("valid_until")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("valid_from")
        if start is not None and value <= start:
            raise ValueError("valid_until must be after valid_from")
        return value

    def to_contract(self) -> Schedule:
        return Schedule(
            valid_from=self.valid_from,
            valid_until=self.valid_until,
            times=self.times,
            repeats=self.repeats,
        )


class BulletinCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    kind: BulletinKind
    priority: Priority
    text: Annotated[str, StringConstraints(max_length=50_000)] | None = None
    media: Sha256 | None = None
    targets: TargetsIn = Field(default_factory=TargetsIn)
    schedule: ScheduleIn
    display_seconds: float | None = Field(default=None, gt=0, le=3600)
    category: Category | None = None


class EmergencyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    text: Annotated[str, StringConstraints(max_length=50_000)] | None = None
    media: Sha256 | None = None
    #: None or empty: the whole province.
    targets: TargetsIn | None = None
    valid_minutes: int = Field(default=60, ge=1, le=24 * 60)
    repeats: int = Field(default=1, ge=1, le=20)
    category: Category | None = None


class TargetsOut(BaseModel):
    communes: list[str]
    devices: list[str]
    #: The whole province (an emergency sent without targets).
    all_communes: bool


class BulletinOut(BaseModel):
    id: str
    title: str
    kind: BulletinKind
    priority: Priority
    text: str | None
    media: MediaRef | None
    targets: TargetsOut
    schedule: Schedule
    display_seconds: float
    category: str | None
    source_level: str
    state: State
    created_by: str | None
    created_at: datetime
    published_at: datetime | None
    cancelled_at: datetime | None
    #: Only in answers to publish/cancel/emergency: devices the change reaches, and how many
    #: of them got the push right now (emergency_start for an emergency publish).
    targeted: int | None = None
    pushed: int | None = None


class BulletinQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: State | None = None
    priority: Priority | None = None


def _mime_fits(kind: BulletinKind, mime: str) -> bool:
    if kind is BulletinKind.AUDIO:
        return mime.startswith("audio/")
    if kind is BulletinKind.IMAGE:
        return mime.startswith("image/")
    if kind is BulletinKind.VIDEO:
        return mime.startswith("video/")
    if kind is BulletinKind.DOCUMENT:
        return mime in ("application/pdf", "text/plain")
    return False


def kind_for_mime(mime: str) -> BulletinKind | None:
    for kind in (BulletinKind.AUDIO, BulletinKind.IMAGE, BulletinKind.VIDEO, BulletinKind.DOCUMENT):
        if _mime_fits(kind, mime):
            return kind
    return None


async def _check(conn: aiosqlite.Connection, body: BulletinCreate) -> list[dict[str, str]]:
    """Checks that need the database or span fields; all problems at once, each by field."""
    errors: list[dict[str, str]] = []

    def err(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    has_text = bool(body.text and body.text.strip())
    if body.kind is BulletinKind.TEXT:
        if not has_text:
            err("text", "a text bulletin needs text")
        if body.media is not None:
            err(
                "media",
                "a text bulletin carries no media; use kind document, audio, image or video",
            )
    elif body.kind is BulletinKind.DOCUMENT:
        if body.media is None and not has_text:
            err("media", "a document bulletin needs media (PDF or text file) or text")
    elif body.media is None:
        err("media", f"a {body.kind.value} bulletin needs media")
    if body.media is not None:
        cur = await conn.execute("SELECT mime FROM media WHERE sha256 = ?", (body.media,))
        row = await cur.fetchone()
        if row is None:
            err("media", f"no uploaded media {body.media}; POST it to /api/v1/media first")
        elif body.kind is not BulletinKind.TEXT and not _mime_fits(body.kind, row["mime"]):
            want = {
                "audio": "audio/*",
                "image": "image/*",
                "video": "video/*",
                "document": "application/pdf or text/plain",
            }[body.kind.value]
            err("media", f"a {body.kind.value} bulletin needs {want} media, not {row['mime']}")
    if body.schedule.valid_until <= utcnow():
        err("schedule.valid_until", "is already in the past")
    for i, code in enumerate(body.targets.communes):
        cur = await conn.execute("SELECT 1 FROM communes WHERE code = ?", (code,))
        if await cur.fetchone() is None:
            err(f"targets.communes[{i}]", f"unknown commune {code!r}")
    for i, device_id in enumerate(body.targets.devices):
        cur = await conn.execute("SELECT 1 FROM devices WHERE id = ?", (device_id,))
        if await cur.fetchone() is None:
            err(f"targets.devices[{i}]", f"unknown device {device_id!r}")
    if (
        not body.targets.communes
        and not body.targets.devices
        and body.priority is not Priority.EMERGENCY
    ):
        err(
            "targets",
            "give at least one commune or device; only an emergency goes to the"
            " whole province without targets",
        )
    return errors


async def _insert(
    conn: aiosqlite.Connection, body: BulletinCreate, actor: str, address: str | None
) -> str:
    errors = await _check(conn, body)
    if errors:
        raise ApiError(422, "validation_error", errors)
    bulletin_id = str(uuid.uuid4())
    schedule = body.schedule.to_contract()
    target_all = not body.targets.communes and not body.targets.devices
    await conn.execute(
        "INSERT INTO bulletins (id, title, kind, priority, text, media_sha256, schedule_json,"
        " valid_from, valid_until, display_seconds, category, source_level, target_all, state,"
        " created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'draft', ?, ?)",
        (
            bulletin_id,
            body.title,
            body.kind.value,
            body.priority.value,
            body.text,
            body.media,
            schedule.model_dump_json(),
            iso(schedule.valid_from),
            iso(schedule.valid_until),
            body.display_seconds or 15.0,
            body.category,
            "province",
            int(target_all),
            actor,
            iso(utcnow()),
        ),
    )
    await conn.executemany(
        "INSERT OR IGNORE INTO bulletin_communes (bulletin_id, commune) VALUES (?, ?)",
        [(bulletin_id, c) for c in body.targets.communes],
    )
    await conn.executemany(
        "INSERT OR IGNORE INTO bulletin_devices (bulletin_id, device_id) VALUES (?, ?)",
        [(bulletin_id, d) for d in body.targets.devices],
    )
    await audit(
        conn,
        actor,
        address,
        "bulletin.create",
        bulletin_id,
        f"{body.priority.value} {body.kind.value} {body.title}",
    )
    return bulletin_id


async def _row(conn: aiosqlite.Connection, bulletin_id: str) -> sqlite3.Row:
    cur = await conn.execute(f"{BULLETIN_SELECT} WHERE b.id = ?", (bulletin_id,))
    row = await cur.fetchone()
    if row is None:
        raise ApiError(404, "not_found", f"no bulletin {bulletin_id!r}")
    return row


async def _publish(
    conn: aiosqlite.Connection, bulletin_id: str, actor: str, address: str | None
) -> tuple[ManifestBulletin, dict[str, int]]:
    row = await _row(conn, bulletin_id)
    if row["state"] != "draft":
        raise ApiError(
            409,
            "illegal_transition",
            f"only a draft can be published; this bulletin is {row['state']}",
        )
    if from_iso(row["valid_until"]) <= utcnow():
        raise ApiError(409, "expired", "the bulletin's valid_until has passed; edit or recreate it")
    await conn.execute(
        "UPDATE bulletins SET state = 'published', published_at = ? WHERE id = ?",
        (iso(utcnow()), bulletin_id),
    )
    bulletin = manifest_bulletin(row)
    versions = await bump_versions(conn, await targeted_devices(conn, bulletin_id, bulletin.kind))
    await audit(conn, actor, address, "bulletin.publish", bulletin_id, f"{len(versions)} devices")
    return bulletin, versions


async def _announce_publish(ctx: Ctx, bulletin: ManifestBulletin, versions: dict[str, int]) -> int:
    connections = ctx.connections
    pushed = None
    now = utcnow()
    # The emergency first: the manifest nudge can wait, the loudspeaker cannot.
    starts_now = bulletin.schedule.valid_from <= now + EMERGENCY_SLACK
    if bulletin.priority is Priority.EMERGENCY and starts_now:
        pushed = await connections.push_emergency_start(versions.keys(), bulletin)
    ready = await connections.push_manifest_ready(versions, ctx.config.command_ttl)
    return ready if pushed is None else pushed


async def _out(ctx: Ctx, bulletin_id: str, **extra: Any) -> BulletinOut:
    row = await ctx.db.fetchone(f"{BULLETIN_SELECT} WHERE b.id = ?", (bulletin_id,))
    if row is None:
        raise ApiError(404, "not_found", f"no bulletin {bulletin_id!r}")
    communes = await ctx.db.fetchall(
        "SELECT commune FROM bulletin_communes WHERE bulletin_id = ? ORDER BY commune",
        (bulletin_id,),
    )
    devices = await ctx.db.fetchall(
        "SELECT device_id FROM bulletin_devices WHERE bulletin_id = ? ORDER BY device_id",
        (bulletin_id,),
    )
    return _to_out(row, [r[0] for r in communes], [r[0] for r in devices], **extra)


def _to_out(row: sqlite3.Row, communes: list[str], devices: list[str], **extra: Any) -> BulletinOut:
    b = manifest_bulletin(row)
    return BulletinOut(
        id=b.id,
        title=b.title,
        kind=b.kind,
        priority=b.priority,
        text=b.text,
        media=b.media,
        targets=TargetsOut(
            communes=communes, devices=devices, all_communes=bool(row["target_all"])
        ),
        schedule=b.schedule,
        display_seconds=b.display_seconds,
        category=b.category,
        source_level=b.source_level,
        state=row["state"],
        created_by=row["created_by"],
        created_at=from_iso(row["created_at"]),
        published_at=from_iso(row["published_at"]) if row["published_at"] else None,
        cancelled_at=from_iso(row["cancelled_at"]) if row["cancelled_at"] else None,
        **extra,
    )


@routes.post(
    "/api/v1/bulletins",
    summary="Create a bulletin (draft)",
    permission=Permission.BULLETINS_WRITE,
    body=BulletinCreate,
    response=BulletinOut,
    status=201,
)
async def create_bulletin(ctx: Ctx) -> BulletinOut:
    async with ctx.db.transaction() as conn:
        bulletin_id = await _insert(conn, ctx.body, ctx.user.username, ctx.address)
    return await _out(ctx, bulletin_id)


@routes.get(
    "/api/v1/bulletins",
    summary="List bulletins, newest first",
    query=BulletinQuery,
    response=list[BulletinOut],
)
async def list_bulletins(ctx: Ctx) -> list[BulletinOut]:
    query: BulletinQuery = ctx.query
    where, params = [], []
    if query.state:
        where.append("b.state = ?")
        params.append(query.state)
    if query.priority:
        where.append("b.priority = ?")
        params.append(query.priority.value)
    sql = BULLETIN_SELECT + (" WHERE " + " AND ".join(where) if where else "")
    rows = await ctx.db.fetchall(sql + " ORDER BY b.created_at DESC", params)
    communes: dict[str, list[str]] = {}
    devices: dict[str, list[str]] = {}
    for r in await ctx.db.fetchall("SELECT * FROM bulletin_communes ORDER BY commune"):
        communes.setdefault(r["bulletin_id"], []).append(r["commune"])
    for r in await ctx.db.fetchall("SELECT * FROM bulletin_devices ORDER BY device_id"):
        devices.setdefault(r["bulletin_id"], []).append(r["device_id"])
    return [_to_out(r, communes.get(r["id"], []), devices.get(r["id"], [])) for r in rows]


@routes.get("/api/v1/bulletins/{id}", summary="One bulletin", response=BulletinOut, errors=[404])
async def get_bulletin(ctx: Ctx) -> BulletinOut:
    return await _out(ctx, ctx.path("id"))


@routes.post(
    "/api/v1/bulletins/{id}/publish",
    summary="Publish a draft: into manifests now; an emergency plays now",
    permission=Permission.BULLETINS_PUBLISH,
    response=BulletinOut,
    errors=[404, 409],
)
async def publish_bulletin(ctx: Ctx) -> BulletinOut:
    async with ctx.db.transaction() as conn:
        bulletin, versions = await _publish(conn, ctx.path("id"), ctx.user.username, ctx.address)
    pushed = await _announce_publish(ctx, bulletin, versions)
    return await _out(ctx, bulletin.id, targeted=len(versions), pushed=pushed)


@routes.post(
    "/api/v1/bulletins/{id}/cancel",
    summary="Cancel a published bulletin; an emergency stops now",
    permission=Permission.BULLETINS_PUBLISH,
    response=BulletinOut,
    errors=[404, 409],
)
async def cancel_bulletin(ctx: Ctx) -> BulletinOut:
    bulletin_id = ctx.path("id")
    async with ctx.db.transaction() as conn:
        row = await _row(conn, bulletin_id)
        if row["state"] != "published":
            raise ApiError(
                409,
                "illegal_transition",
                f"only a published bulletin can be cancelled; this one is {row['state']}",
            )
        await conn.execute(
            "UPDATE bulletins SET state = 'cancelled', cancelled_at = ? WHERE id = ?",
            (iso(utcnow()), bulletin_id),
        )
        kind = BulletinKind(row["kind"])
        versions = await bump_versions(conn, await targeted_devices(conn, bulletin_id, kind))
        await audit(
            conn,
            ctx.user.username,
            ctx.address,
            "bulletin.cancel",
            bulletin_id,
            f"{len(versions)} devices",
        )
    connections = ctx.connections
    pushed = None
    if row["priority"] == Priority.EMERGENCY.value:
        ttl = max(ctx.config.command_ttl, from_iso(row["valid_until"]) - utcnow())
        pushed = await connections.push_emergency_cancel(versions.keys(), bulletin_id, ttl)
    ready = await connections.push_manifest_ready(versions, ctx.config.command_ttl)
    return await _out(
        ctx, bulletin_id, targeted=len(versions), pushed=ready if pushed is None else pushed
    )


@routes.post(
    "/api/v1/emergencies",
    summary="Create and publish an emergency in one call; it plays now",
    permission=Permission.EMERGENCY,
    body=EmergencyCreate,
    response=BulletinOut,
    status=201,
)
async def create_emergency(ctx: Ctx) -> BulletinOut:
    body: EmergencyCreate = ctx.body
    now = utcnow()
    kind = BulletinKind.TEXT
    if body.media is not None:
        media = await ctx.db.fetchone("SELECT mime FROM media WHERE sha256 = ?", (body.media,))
        # An unknown sha256 gets a media kind; _check then reports it missing by field.
        kind = (kind_for_mime(media["mime"]) if media else None) or BulletinKind.AUDIO
    elif not (body.text and body.text.strip()):
        raise ApiError(
            422, "validation_error", [{"field": "text", "message": "give text or media"}]
        )
    draft = BulletinCreate(
        title=body.title,
        kind=kind,
        priority=Priority.EMERGENCY,
        text=body.text,
        media=body.media,
        targets=body.targets or TargetsIn(),
        schedule=ScheduleIn(
            valid_from=now,
            valid_until=now + timedelta(minutes=body.valid_minutes),
            repeats=body.repeats,
        ),
        category=body.category,
    )
    async with ctx.db.transaction() as conn:
        bulletin_id = await _insert(conn, draft, ctx.user.username, ctx.address)
        bulletin, versions = await _publish(conn, bulletin_id, ctx.user.username, ctx.address)
    pushed = await _announce_publish(ctx, bulletin, versions)
    return await _out(ctx, bulletin_id, targeted=len(versions), pushed=pushed)
