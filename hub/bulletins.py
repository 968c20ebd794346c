"""Bulletins (bản tin) and their review workflow (kho thông tin nguồn).

    draft ──submit──► submitted ──approve──► published ──cancel──► cancelled
      ▲                 │   ▲
      │               return│submit
      └── edit ──── returned┘

A contributor (agency, newspaper) drafts and submits; a reviewer edits, returns with a
comment, or approves with targets and schedule. Admins, reviewers and a commune's operator
(for its own commune) may also publish a draft directly. Every transition is kept in
`bulletin_events` (who, when, why) and in the audit log.

Publishing an emergency signs one `emergency_start` for its whole scope and pushes it to every
online device it targets, so it plays now; cancelling does the same with `emergency_cancel`.
The API answers once the change is committed, with the command id; the push runs after it,
in the background (`Connections.in_background`), and its progress shows on the emergency's
status page. Offline devices catch up from the manifest and from the pushes sent when their
WebSocket reconnects (the start frame of each active emergency is kept for them).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
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
    CivilDatetime,
    ManifestBulletin,
    MediaRef,
    Priority,
    Schedule,
    Scope,
    Sha256,
    utcnow,
)

from .auth import Permission, User
from .categories import DEFAULT as DEFAULT_CATEGORY
from .categories import check_category
from .db import Database, from_iso, iso
from .errors import ApiError, field_error
from .manifests import (
    BULLETIN_SELECT,
    REACHES_DEVICE,
    airing_kinds_sql,
    bulletin_scope,
    bump_targeted,
    bump_versions,
    commune_device_ids,
    manifest_bulletin,
)
from .paging import (
    DEFAULT_LIMIT,
    MAX_CURSOR,
    MAX_LIMIT,
    Page,
    after_key,
    cut,
    decode_cursor,
    key_params,
)
from .push import EMERGENCY_SLACK, Connections
from .routing import Ctx, RouteTable
from .store.sql import Row, Tx

routes = RouteTable("bulletins")

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
State = Literal["draft", "submitted", "returned", "published", "cancelled"]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
#: The regulations' length for an agency's text bulletin.
SUBMIT_WORDS = (300, 500)
#: Airings of an emergency when its sender does not say: a province warning reaches a wide
#: audience, many of whom miss the first airing (indoors, in the fields, on the road), so it
#: airs three times (issue #8: spoken once, a flood warning went unheard). A commune's own
#: alert concerns a small area within earshot of a few speakers, and the commune's staff are
#: there to follow up in person or fire it again: twice, the first to catch attention, the
#: second to be understood, without drowning the commune's programme.
PROVINCE_EMERGENCY_REPEATS = 3
COMMUNE_EMERGENCY_REPEATS = 2
#: Seconds between two airings of an emergency by default: long enough for a listener caught
#: by the first to step outside or quiet the room and hear the next clearly, short enough that
#: three airings of a short warning are over within about two minutes.
EMERGENCY_INTERVAL_S = 30
#: The longest pause between two airings the API accepts: beyond an hour, fire it again.
MAX_INTERVAL_S = 3600


class TargetsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    communes: list[str] = Field(default_factory=list, max_length=10_000)
    devices: list[str] = Field(default_factory=list, max_length=10_000)


class ScheduleIn(BaseModel):
    """The API's schedule; checks each field itself so errors name `schedule.valid_until`."""

    model_config = ConfigDict(extra="forbid")

    valid_from: CivilDatetime
    valid_until: CivilDatetime
    times: list[HHMM] = Field(default_factory=list, max_length=48)
    repeats: int = Field(default=1, ge=1, le=20)
    #: An emergency on a speaker: seconds between airings, and whether it airs until cancelled.
    interval_s: float = Field(default=0, ge=0, le=MAX_INTERVAL_S, allow_inf_nan=False)
    until_cancelled: bool = False

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
            interval_s=self.interval_s,
            until_cancelled=self.until_cancelled,
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
    """An emergency to air now. On speakers it airs `repeats` times, `interval_s` seconds
    apart, or with `until_cancelled` every `interval_s` until cancelled or `valid_minutes`
    have passed; boards keep it in their rotation while it lasts. Left out, `repeats` is 3
    for the province's emergencies and 2 for a commune's (PROVINCE_EMERGENCY_REPEATS,
    COMMUNE_EMERGENCY_REPEATS) and `interval_s` is 30 (EMERGENCY_INTERVAL_S)."""

    model_config = ConfigDict(extra="forbid")

    title: Title
    text: Annotated[str, StringConstraints(max_length=50_000)] | None = None
    media: Sha256 | None = None
    #: None or empty: the whole province.
    targets: TargetsIn | None = None
    valid_minutes: int = Field(default=60, ge=1, le=24 * 60)
    repeats: int | None = Field(
        default=None,
        ge=1,
        le=20,
        description="Airings on speakers; left out: 3 for the province, 2 for a commune.",
    )
    interval_s: float = Field(
        default=EMERGENCY_INTERVAL_S,
        allow_inf_nan=False,
        ge=0,
        le=MAX_INTERVAL_S,
        description="Seconds from the end of one airing to the next.",
    )
    until_cancelled: bool = Field(
        default=False,
        description="Air every interval_s until cancelled or valid_minutes have passed,"
        " whatever repeats says.",
    )
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
    #: The unit that owns it: "province", an agency's code or a commune's code.
    unit: str
    #: The reviewer's last comment (why it was returned, or a note on approval).
    review_comment: str | None
    created_by: str | None
    created_at: datetime
    published_at: datetime | None
    cancelled_at: datetime | None
    targeted: int | None = Field(
        default=None,
        description="Only in answers to publish, approve, cancel and POST /emergencies: the"
        " devices the change reaches.",
    )
    pushed: int | None = Field(
        default=None,
        description="Only in those answers: how many of the targeted devices were online when"
        " the push (emergency_start, emergency_cancel or manifest_ready) was queued. The push"
        " runs after the answer; delivery shows on GET /api/v1/emergencies/{id}.",
    )
    command_id: str | None = Field(
        default=None,
        description="Only in answers that publish or cancel an emergency: the command id of"
        " the signed emergency_start (on cancel, emergency_cancel) the devices receive.",
    )


class BulletinQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: State | None = None
    priority: Priority | None = None
    kind: BulletinKind | None = None
    unit: str | None = Field(default=None, max_length=32)
    #: The previous page's X-Next-Before: this page continues after that bulletin.
    before: str | None = Field(default=None, max_length=MAX_CURSOR)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class ReturnIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: Comment


class ApproveIn(BaseModel):
    """What the reviewer decides on approval; anything left out keeps the proposal."""

    model_config = ConfigDict(extra="forbid")

    priority: Priority | None = None
    targets: TargetsIn | None = None
    schedule: ScheduleIn | None = None
    category: Category | None = None
    comment: Comment | None = None


class EventOut(BaseModel):
    at: datetime
    actor: str
    unit: str | None
    action: str
    from_state: State | None
    to_state: State
    comment: str | None


class DevicePlayState(BaseModel):
    device_id: str
    commune: str
    name: str
    online: bool
    #: The device reported playing it (proof-of-play) or reports it as now playing.
    started: bool
    started_at: datetime | None
    now_playing: bool
    #: The latest proof-of-play outcome (completed, preempted...), once it ended.
    outcome: str | None


class EmergencyStatus(BaseModel):
    bulletin: BulletinOut
    targeted: int
    started: int
    devices: list[DevicePlayState]


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


# ---------------------------------------------------------------- who sees what

# A commune-bound account sees its own commune's bulletins, and province bulletins once they
# are published to it; never another commune's, nor drafts under review.
_COMMUNE_SEES = """(b.unit = :scope OR (b.state IN ('published', 'cancelled') AND (b.target_all = 1
    OR EXISTS (SELECT 1 FROM bulletin_communes bc
               WHERE bc.bulletin_id = b.id AND bc.commune = :scope)
    OR EXISTS (SELECT 1 FROM bulletin_devices bd JOIN devices d ON d.id = bd.device_id
               WHERE bd.bulletin_id = b.id AND d.commune = :scope))))"""


def scope_sql(user: User) -> tuple[str, dict[str, Any]]:
    """A condition on bulletins `b` that keeps what `user` may see."""
    if user.province_wide:
        return "1 = 1", {}
    if user.commune is not None:
        return _COMMUNE_SEES, {"scope": user.commune}
    # An agency sees its own unit's bulletins.
    return "b.unit = :scope", {"scope": user.unit}


async def _fetch(conn: Tx, sql: str, params: dict[str, Any]) -> Row | None:
    return await conn.fetchone(sql, params)


async def _visible_row(conn: Tx, bulletin_id: str, user: User) -> Row:
    row = await _fetch(conn, f"{BULLETIN_SELECT} WHERE b.id = :id", {"id": bulletin_id})
    if row is None:
        raise ApiError(404, "not_found", f"no bulletin {bulletin_id!r}")
    cond, params = scope_sql(user)
    seen = await _fetch(
        conn,
        f"SELECT 1 FROM bulletins b WHERE b.id = :id AND {cond}",
        {"id": bulletin_id, **params},
    )
    if seen is None:
        raise ApiError(403, "out_of_scope", "this bulletin belongs to another unit")
    return row


def _require_owner(user: User, row: Row) -> None:
    if row["unit"] != user.unit:
        raise ApiError(403, "out_of_scope", f"this bulletin belongs to unit {row['unit']!r}")


def _illegal(row: Row, action: str, allowed: str) -> ApiError:
    return ApiError(
        409,
        "illegal_transition",
        f"cannot {action} a {row['state']} bulletin; only a {allowed} one",
    )


async def _check_target_scope(conn: Tx, targets: TargetsIn, user: User) -> None:
    """A commune-bound account targets only its own commune and that commune's devices."""
    if user.commune is None:
        return
    for code in targets.communes:
        if code != user.commune:
            raise ApiError(403, "out_of_scope", f"commune {code!r} is outside your unit")
    for device_id in targets.devices:
        row = await _fetch(conn, "SELECT commune FROM devices WHERE id = :id", {"id": device_id})
        if row is None or row["commune"] != user.commune:
            raise ApiError(403, "out_of_scope", f"device {device_id!r} is outside your unit")


async def _check(conn: Tx, body: BulletinCreate, user: User) -> list[dict[str, str]]:
    """Checks that need the database or span fields; all problems at once, each by field."""
    await _check_target_scope(conn, body.targets, user)
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
        cur = await conn.fetchone("SELECT mime FROM media WHERE sha256 = ?", (body.media,))
        row = cur
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
    errors += await _target_errors(conn, body.targets)
    # A contributor only proposes; the reviewer chooses the targets on approval.
    if (
        user.may(Permission.BULLETINS_PUBLISH)
        and not body.targets.communes
        and not body.targets.devices
        and body.priority is not Priority.EMERGENCY
    ):
        err(
            "targets",
            "give at least one commune or device; only an emergency goes to the"
            " whole province without targets",
        )
    try:
        check_category(body.category)
    except ApiError as exc:
        errors += exc.detail
    return errors


async def _target_errors(conn: Tx, targets: TargetsIn) -> list[dict[str, str]]:
    errors = []
    for i, code in enumerate(targets.communes):
        cur = await conn.fetchone("SELECT 1 FROM communes WHERE code = ?", (code,))
        if cur is None:
            errors.append(
                {"field": f"targets.communes[{i}]", "message": f"unknown commune {code!r}"}
            )
    for i, device_id in enumerate(targets.devices):
        cur = await conn.fetchone("SELECT 1 FROM devices WHERE id = ?", (device_id,))
        if cur is None:
            errors.append(
                {"field": f"targets.devices[{i}]", "message": f"unknown device {device_id!r}"}
            )
    return errors


async def _set_targets(conn: Tx, bulletin_id: str, targets: TargetsIn, priority: Priority) -> None:
    # Only an emergency left without targets goes to the whole province; a contributor's
    # proposal without targets reaches nobody until the reviewer chooses.
    target_all = not targets.communes and not targets.devices and priority is Priority.EMERGENCY
    await conn.execute("DELETE FROM bulletin_communes WHERE bulletin_id = ?", (bulletin_id,))
    await conn.execute("DELETE FROM bulletin_devices WHERE bulletin_id = ?", (bulletin_id,))
    await conn.executemany(
        "INSERT OR IGNORE INTO bulletin_communes (bulletin_id, commune) VALUES (?, ?)",
        [(bulletin_id, c) for c in targets.communes],
    )
    await conn.executemany(
        "INSERT OR IGNORE INTO bulletin_devices (bulletin_id, device_id) VALUES (?, ?)",
        [(bulletin_id, d) for d in targets.devices],
    )
    await conn.execute(
        "UPDATE bulletins SET target_all = ? WHERE id = ?", (int(target_all), bulletin_id)
    )


async def _event(
    conn: Tx,
    ctx: Ctx,
    bulletin_id: str,
    action: str,
    from_state: str | None,
    to_state: str,
    comment: str | None = None,
    detail: str | None = None,
) -> None:
    user = ctx.user
    await conn.execute(
        "INSERT INTO bulletin_events (bulletin_id, at, actor, unit, action, from_state, to_state,"
        " comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            bulletin_id,
            iso(ctx.now),
            user.username,
            user.unit,
            action,
            from_state,
            to_state,
            comment,
        ),
    )
    await ctx.audit(
        conn,
        f"bulletin.{action}",
        bulletin_id,
        detail or comment,
        before={"state": from_state} if from_state else None,
        after={"state": to_state},
    )


async def _insert(conn: Tx, body: BulletinCreate, ctx: Ctx) -> str:
    user = ctx.user
    errors = await _check(conn, body, user)
    if errors:
        raise ApiError(422, "validation_error", errors)
    bulletin_id = str(uuid.uuid4())
    schedule = body.schedule.to_contract()
    source_level = "commune" if user.role.value == "commune_operator" else "province"
    await conn.execute(
        "INSERT INTO bulletins (id, title, kind, priority, text, media_sha256, schedule_json,"
        " valid_from, valid_until, display_seconds, category, source_level, target_all, state,"
        " unit, created_by, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 'draft', ?, ?, ?)",
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
            source_level,
            user.unit,
            user.username,
            iso(utcnow()),
        ),
    )
    await _set_targets(conn, bulletin_id, body.targets, body.priority)
    await _event(
        conn,
        ctx,
        bulletin_id,
        "create",
        None,
        "draft",
        detail=f"{body.priority.value} {body.kind.value} {body.title}",
    )
    return bulletin_id


async def _update(conn: Tx, bulletin_id: str, body: BulletinCreate) -> None:
    schedule = body.schedule.to_contract()
    await conn.execute(
        "UPDATE bulletins SET title = ?, kind = ?, priority = ?, text = ?, media_sha256 = ?,"
        " schedule_json = ?, valid_from = ?, valid_until = ?, display_seconds = ?, category = ?"
        " WHERE id = ?",
        (
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
            bulletin_id,
        ),
    )
    await _set_targets(conn, bulletin_id, body.targets, body.priority)


class Published(NamedTuple):
    bulletin: ManifestBulletin
    #: The new manifest version of every device it reaches.
    versions: dict[str, int]
    #: For an emergency, whom its start frame names.
    scope: Scope | None


async def _publish(
    conn: Tx,
    ctx: Ctx,
    bulletin_id: str,
    action: str = "publish",
    comment: str | None = None,
) -> Published:
    row = await _fetch(conn, f"{BULLETIN_SELECT} WHERE b.id = :id", {"id": bulletin_id})
    if row is None:
        raise ApiError(404, "not_found", f"no bulletin {bulletin_id!r}")
    if from_iso(row["valid_until"]) <= utcnow():
        raise ApiError(409, "expired", "the bulletin's valid_until has passed; edit or recreate it")
    targets = await _fetch(
        conn,
        "SELECT (SELECT COUNT(*) FROM bulletin_communes WHERE bulletin_id = :id)"
        " + (SELECT COUNT(*) FROM bulletin_devices WHERE bulletin_id = :id)",
        {"id": bulletin_id},
    )
    if not row["target_all"] and targets is not None and targets[0] == 0:
        raise field_error(422, "validation_error", "targets", "choose communes or devices first")
    await conn.execute(
        "UPDATE bulletins SET state = 'published', published_at = ?,"
        " category = COALESCE(category, ?), review_comment = COALESCE(?, review_comment)"
        " WHERE id = ?",
        (iso(utcnow()), DEFAULT_CATEGORY, comment, bulletin_id),
    )
    row = await _fetch(conn, f"{BULLETIN_SELECT} WHERE b.id = :id", {"id": bulletin_id})
    assert row is not None
    bulletin = manifest_bulletin(row)
    versions = await bump_targeted(conn, bulletin_id, bulletin.kind)
    await ctx.audit(conn, "bulletin.targets", bulletin_id, f"{len(versions)} devices")
    previous = "submitted" if action == "approve" else "draft"
    await _event(conn, ctx, bulletin_id, action, previous, "published", comment)
    emergency = bulletin.priority is Priority.EMERGENCY
    scope = await bulletin_scope(conn, bulletin_id) if emergency else None
    return Published(bulletin, versions, scope)


async def _announce_publish(ctx: Ctx, published: Published) -> BulletinOut:
    """Answer a committed publish, then push it in the background: an emergency's start
    (signed once, kept for reconnecting devices) or each device's manifest_ready."""
    connections = ctx.connections
    bulletin, versions, scope = published
    command_id = None
    if scope is not None:
        start = connections.emergency_start(bulletin, scope)
        command_id = start.signed.command_id
    answer = await _out(
        ctx,
        bulletin.id,
        targeted=len(versions),
        pushed=connections.count_online(versions),
        command_id=command_id,
    )
    # The start frame also tells each device its manifest changed: no second frame. An
    # emergency approved for later plays from the manifest; devices connecting once it is
    # due get its start frame.
    if scope is not None and bulletin.schedule.valid_from <= utcnow() + EMERGENCY_SLACK:
        connections.in_background(
            connections.push_emergency_start(list(versions), start),
            f"emergency_start of {bulletin.id}",
        )
    else:
        connections.in_background(
            connections.push_manifest_ready(versions, ctx.config.command_ttl),
            f"manifest_ready for {bulletin.id}",
        )
    return answer


async def load_active_emergencies(db: Database, connections: Connections) -> int:
    """Sign the start of every emergency still in force, oldest first (at start-up, so the
    devices reconnecting after a restart hear the emergencies they may have missed)."""
    async with db.transaction() as conn:
        cur = await conn.fetchall(
            f"{BULLETIN_SELECT} WHERE b.state = 'published' AND b.priority = 'emergency'"
            " AND b.valid_until > ? ORDER BY b.published_at",
            (iso(utcnow()),),
        )
        for row in cur:
            connections.emergency_start(
                manifest_bulletin(row), await bulletin_scope(conn, row["id"])
            )
        return len(connections.emergencies)


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


def _to_out(row: Row, communes: list[str], devices: list[str], **extra: Any) -> BulletinOut:
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
        unit=row["unit"],
        review_comment=row["review_comment"],
        created_by=row["created_by"],
        created_at=from_iso(row["created_at"]),
        published_at=from_iso(row["published_at"]) if row["published_at"] else None,
        cancelled_at=from_iso(row["cancelled_at"]) if row["cancelled_at"] else None,
        **extra,
    )


# ---------------------------------------------------------------- routes


@routes.post(
    "/api/v1/bulletins",
    summary="Create a bulletin (draft) owned by the caller's unit",
    permission=Permission.BULLETINS_WRITE,
    body=BulletinCreate,
    response=BulletinOut,
    status=201,
)
async def create_bulletin(ctx: Ctx) -> BulletinOut:
    async with ctx.db.transaction() as conn:
        bulletin_id = await _insert(conn, ctx.body, ctx)
    return await _out(ctx, bulletin_id)


#: Newest first; the id breaks ties between bulletins created in the same microsecond.
_BULLETIN_ORDER = ("b.created_at", "b.id")


@routes.get(
    "/api/v1/bulletins",
    summary="List the bulletins the caller may see, newest first (state=submitted: the queue);"
    " paged: follow the Link header",
    query=BulletinQuery,
    response=list[BulletinOut],
)
async def list_bulletins(ctx: Ctx) -> Page[list[BulletinOut]]:
    query: BulletinQuery = ctx.query
    cond, params = scope_sql(ctx.user)
    where = [cond]
    if query.state:
        where.append("b.state = :state")
        params["state"] = query.state
    if query.priority:
        where.append("b.priority = :priority")
        params["priority"] = query.priority.value
    if query.kind:
        where.append("b.kind = :kind")
        params["kind"] = query.kind.value
    if query.unit:
        where.append("b.unit = :unit")
        params["unit"] = query.unit
    if query.before is not None:
        where.append(after_key(_BULLETIN_ORDER, descending=True))
        params.update(key_params(decode_cursor(query.before, (str, str))))
    rows = await ctx.db.fetchall(
        f"{BULLETIN_SELECT} WHERE {' AND '.join(where)}"
        " ORDER BY b.created_at DESC, b.id DESC LIMIT :limit",
        {**params, "limit": query.limit + 1},
    )
    rows, cursor = cut(rows, query.limit, lambda r: (r["created_at"], r["id"]))
    # The targets of this page's bulletins only, not of every bulletin ever made.
    ids = json.dumps([r["id"] for r in rows])
    communes: dict[str, list[str]] = {}
    devices: dict[str, list[str]] = {}
    for r in await ctx.db.fetchall(
        "SELECT * FROM bulletin_communes WHERE bulletin_id IN (SELECT value FROM json_each(?))"
        " ORDER BY commune",
        (ids,),
    ):
        communes.setdefault(r["bulletin_id"], []).append(r["commune"])
    for r in await ctx.db.fetchall(
        "SELECT * FROM bulletin_devices WHERE bulletin_id IN (SELECT value FROM json_each(?))"
        " ORDER BY device_id",
        (ids,),
    ):
        devices.setdefault(r["bulletin_id"], []).append(r["device_id"])
    return Page(
        [_to_out(r, communes.get(r["id"], []), devices.get(r["id"], [])) for r in rows], cursor
    )


async def _visible(ctx: Ctx, bulletin_id: str) -> Row:
    """Scope check on the reader connection (no write lock for a GET)."""
    row = await ctx.db.fetchone(f"{BULLETIN_SELECT} WHERE b.id = ?", (bulletin_id,))
    if row is None:
        raise ApiError(404, "not_found", f"no bulletin {bulletin_id!r}")
    cond, params = scope_sql(ctx.user)
    seen = await ctx.db.fetchone(
        f"SELECT 1 FROM bulletins b WHERE b.id = :id AND {cond}", {"id": bulletin_id, **params}
    )
    if seen is None:
        raise ApiError(403, "out_of_scope", "this bulletin belongs to another unit")
    return row


@routes.get(
    "/api/v1/bulletins/{id}", summary="One bulletin", response=BulletinOut, errors=[403, 404]
)
async def get_bulletin(ctx: Ctx) -> BulletinOut:
    await _visible(ctx, ctx.path("id"))
    return await _out(ctx, ctx.path("id"))


@routes.get(
    "/api/v1/bulletins/{id}/history",
    summary="Every state change of a bulletin: who, when, why",
    response=list[EventOut],
    errors=[403, 404],
)
async def bulletin_history(ctx: Ctx) -> list[EventOut]:
    await _visible(ctx, ctx.path("id"))
    rows = await ctx.db.fetchall(
        "SELECT * FROM bulletin_events WHERE bulletin_id = ? ORDER BY id", (ctx.path("id"),)
    )
    return [
        EventOut(
            at=r["at"],
            actor=r["actor"],
            unit=r["unit"],
            action=r["action"],
            from_state=r["from_state"],
            to_state=r["to_state"],
            comment=r["comment"],
        )
        for r in rows
    ]


@routes.put(
    "/api/v1/bulletins/{id}",
    summary="Edit a bulletin: its unit while draft or returned, a reviewer while submitted",
    permission=Permission.BULLETINS_WRITE,
    body=BulletinCreate,
    response=BulletinOut,
    errors=[403, 404, 409],
)
async def edit_bulletin(ctx: Ctx) -> BulletinOut:
    body: BulletinCreate = ctx.body
    user = ctx.user
    async with ctx.db.transaction() as conn:
        row = await _visible_row(conn, ctx.path("id"), user)
        state = row["state"]
        if state in ("draft", "returned"):
            if row["unit"] != user.unit and not user.may(Permission.BULLETINS_REVIEW):
                _require_owner(user, row)
        elif state == "submitted":
            if not user.may(Permission.BULLETINS_REVIEW):
                raise ApiError(409, "illegal_transition", "a submitted bulletin is under review")
        else:
            raise _illegal(row, "edit", "draft, returned or submitted")
        errors = await _check(conn, body, user)
        if errors:
            raise ApiError(422, "validation_error", errors)
        await _update(conn, row["id"], body)
        await _event(conn, ctx, row["id"], "edit", state, state)
    return await _out(ctx, row["id"])


def _word_count(text: str | None) -> int:
    return len((text or "").split())


@routes.post(
    "/api/v1/bulletins/{id}/submit",
    summary="Submit a draft (or a returned bulletin) to the province's review",
    permission=Permission.BULLETINS_WRITE,
    response=BulletinOut,
    errors=[403, 404, 409, 422],
)
async def submit_bulletin(ctx: Ctx) -> BulletinOut:
    user = ctx.user
    async with ctx.db.transaction() as conn:
        row = await _visible_row(conn, ctx.path("id"), user)
        _require_owner(user, row)
        if row["state"] not in ("draft", "returned"):
            raise _illegal(row, "submit", "draft or returned")
        errors = []
        if not row["category"]:
            errors.append({"field": "category", "message": "choose the content category"})
        words = _word_count(row["text"])
        low, high = SUBMIT_WORDS
        if row["kind"] == BulletinKind.TEXT.value and not low <= words <= high:
            errors.append(
                {"field": "text", "message": f"a text bulletin has {low}-{high} words, not {words}"}
            )
        schedule = json.loads(row["schedule_json"])
        if row["priority"] != Priority.NORMAL.value and not schedule.get("times"):
            errors.append(
                {
                    "field": "schedule.times",
                    "message": f"propose the air time of a {row['priority']} bulletin",
                }
            )
        if errors:
            raise ApiError(422, "validation_error", errors)
        await conn.execute("UPDATE bulletins SET state = 'submitted' WHERE id = ?", (row["id"],))
        await _event(conn, ctx, row["id"], "submit", row["state"], "submitted")
    return await _out(ctx, row["id"])


@routes.post(
    "/api/v1/bulletins/{id}/return",
    summary="Return a submitted bulletin to its unit for edits, with a comment",
    permission=Permission.BULLETINS_REVIEW,
    body=ReturnIn,
    response=BulletinOut,
    errors=[403, 404, 409],
)
async def return_bulletin(ctx: Ctx) -> BulletinOut:
    body: ReturnIn = ctx.body
    async with ctx.db.transaction() as conn:
        row = await _visible_row(conn, ctx.path("id"), ctx.user)
        if row["state"] != "submitted":
            raise _illegal(row, "return", "submitted")
        await conn.execute(
            "UPDATE bulletins SET state = 'returned', review_comment = ? WHERE id = ?",
            (body.comment, row["id"]),
        )
        await _event(conn, ctx, row["id"], "return", "submitted", "returned", body.comment)
    return await _out(ctx, row["id"])


@routes.post(
    "/api/v1/bulletins/{id}/approve",
    summary="Approve a submitted bulletin with the final priority, targets, schedule and"
    " category, and publish it",
    permission=Permission.BULLETINS_REVIEW,
    body=ApproveIn,
    response=BulletinOut,
    errors=[403, 404, 409],
)
async def approve_bulletin(ctx: Ctx) -> BulletinOut:
    body: ApproveIn = ctx.body
    async with ctx.db.transaction() as conn:
        row = await _visible_row(conn, ctx.path("id"), ctx.user)
        if row["state"] != "submitted":
            raise _illegal(row, "approve", "submitted")
        errors: list[dict[str, str]] = []
        if body.targets is not None:
            errors += await _target_errors(conn, body.targets)
        if body.schedule is not None and body.schedule.valid_until <= utcnow():
            errors.append({"field": "schedule.valid_until", "message": "is already in the past"})
        category = body.category or row["category"]
        if category is None:
            errors.append({"field": "category", "message": "choose the content category"})
        else:
            try:
                check_category(category)
            except ApiError as exc:
                errors += exc.detail
        if errors:
            raise ApiError(422, "validation_error", errors)
        priority = body.priority or Priority(row["priority"])
        await conn.execute(
            "UPDATE bulletins SET priority = ?, category = ? WHERE id = ?",
            (priority.value, category, row["id"]),
        )
        if body.schedule is not None:
            schedule = body.schedule.to_contract()
            await conn.execute(
                "UPDATE bulletins SET schedule_json = ?, valid_from = ?, valid_until = ?"
                " WHERE id = ?",
                (
                    schedule.model_dump_json(),
                    iso(schedule.valid_from),
                    iso(schedule.valid_until),
                    row["id"],
                ),
            )
        if body.targets is not None:
            await _set_targets(conn, row["id"], body.targets, priority)
        elif priority.value != row["priority"]:
            current = await _current_targets(conn, row["id"])
            await _set_targets(conn, row["id"], current, priority)
        published = await _publish(conn, ctx, row["id"], "approve", body.comment)
    return await _announce_publish(ctx, published)


async def _current_targets(conn: Tx, bulletin_id: str) -> TargetsIn:
    cur = await conn.fetchall(
        "SELECT commune FROM bulletin_communes WHERE bulletin_id = ?", (bulletin_id,)
    )
    communes = [r[0] for r in cur]
    cur = await conn.fetchall(
        "SELECT device_id FROM bulletin_devices WHERE bulletin_id = ?", (bulletin_id,)
    )
    return TargetsIn(communes=communes, devices=[r[0] for r in cur])


@routes.post(
    "/api/v1/bulletins/{id}/publish",
    summary="Publish one's own unit's draft directly (admin, reviewer, a commune operator): into"
    " manifests now; an emergency plays now. Another unit's draft must be submitted, then"
    " approved",
    permission=Permission.BULLETINS_PUBLISH,
    response=BulletinOut,
    errors=[403, 404, 409],
)
async def publish_bulletin(ctx: Ctx) -> BulletinOut:
    user = ctx.user
    async with ctx.db.transaction() as conn:
        row = await _visible_row(conn, ctx.path("id"), user)
        if not user.province_wide:
            _require_owner(user, row)
        if row["state"] != "draft":
            raise ApiError(
                409,
                "illegal_transition",
                f"only a draft can be published directly; this bulletin is {row['state']}"
                + (" (use approve)" if row["state"] == "submitted" else ""),
            )
        if row["unit"] != user.unit:
            # Another unit's draft was never submitted: publishing it would skip the submit
            # checks (word count, proposed time) and the agency's own say that it is ready.
            raise ApiError(
                409,
                "not_submitted",
                f"this draft belongs to unit {row['unit']!r} and was never submitted; it is"
                " published by approving it after its unit submits it",
            )
        published = await _publish(conn, ctx, row["id"])
    return await _announce_publish(ctx, published)


async def _cancel(ctx: Ctx, bulletin_id: str, *, emergency_only: bool) -> BulletinOut:
    user = ctx.user
    async with ctx.db.transaction() as conn:
        row = await _visible_row(conn, bulletin_id, user)
        if not user.province_wide:
            _require_owner(user, row)
        if emergency_only and row["priority"] != Priority.EMERGENCY.value:
            raise ApiError(404, "not_found", f"no emergency {bulletin_id!r}")
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
        versions = await bump_targeted(conn, bulletin_id, BulletinKind(row["kind"]))
        emergency = row["priority"] == Priority.EMERGENCY.value
        scope = await bulletin_scope(conn, bulletin_id) if emergency else None
        await _event(
            conn,
            ctx,
            bulletin_id,
            "cancel",
            "published",
            "cancelled",
            detail=f"{len(versions)} devices",
        )
    connections = ctx.connections
    pushed = connections.count_online(versions)
    if scope is None:
        answer = await _out(ctx, bulletin_id, targeted=len(versions), pushed=pushed)
        connections.in_background(
            connections.push_manifest_ready(versions, ctx.config.command_ttl),
            f"manifest_ready for cancelled {bulletin_id}",
        )
        return answer
    # As with the start: the cancel frame also tells each device to fetch its manifest.
    ttl = max(ctx.config.command_ttl, from_iso(row["valid_until"]) - utcnow())
    cancel = connections.emergency_cancel(bulletin_id, scope, ttl)
    answer = await _out(
        ctx, bulletin_id, targeted=len(versions), pushed=pushed, command_id=cancel.command_id
    )
    connections.in_background(
        connections.broadcast(list(versions), cancel.frame),
        f"emergency_cancel of {bulletin_id}",
    )
    return answer


@routes.post(
    "/api/v1/bulletins/{id}/cancel",
    summary="Cancel a published bulletin; an emergency stops now",
    permission=Permission.BULLETINS_PUBLISH,
    response=BulletinOut,
    errors=[403, 404, 409],
)
async def cancel_bulletin(ctx: Ctx) -> BulletinOut:
    return await _cancel(ctx, ctx.path("id"), emergency_only=False)


@routes.post(
    "/api/v1/emergencies",
    summary="Create and publish an emergency in one call; it plays now. Without targets: the"
    " whole province (a commune operator: its commune). Answers once committed, with the"
    " start's command id; the push to devices follows",
    permission=Permission.EMERGENCY,
    body=EmergencyCreate,
    response=BulletinOut,
    status=201,
    errors=[403],
)
async def create_emergency(ctx: Ctx) -> BulletinOut:
    body: EmergencyCreate = ctx.body
    user = ctx.user
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
    targets = body.targets or TargetsIn()
    if user.commune is not None and not targets.communes and not targets.devices:
        targets = TargetsIn(communes=[user.commune])
    repeats = body.repeats or (
        COMMUNE_EMERGENCY_REPEATS if user.commune is not None else PROVINCE_EMERGENCY_REPEATS
    )
    draft = BulletinCreate(
        title=body.title,
        kind=kind,
        priority=Priority.EMERGENCY,
        text=body.text,
        media=body.media,
        targets=targets,
        schedule=ScheduleIn(
            valid_from=now,
            valid_until=now + timedelta(minutes=body.valid_minutes),
            repeats=repeats,
            interval_s=body.interval_s,
            until_cancelled=body.until_cancelled,
        ),
        category=body.category,
    )
    async with ctx.db.transaction() as conn:
        bulletin_id = await _insert(conn, draft, ctx)
        published = await _publish(conn, ctx, bulletin_id)
        await ctx.audit(conn, "emergency.start", bulletin_id, body.title)
    return await _announce_publish(ctx, published)


@routes.get(
    "/api/v1/emergencies/{id}",
    summary="An emergency, device by device: online, started playing (proof-of-play or"
    " now playing)",
    permission=Permission.EMERGENCY,
    response=EmergencyStatus,
    errors=[403, 404],
)
async def emergency_status(ctx: Ctx) -> EmergencyStatus:
    bulletin_id = ctx.path("id")
    row = await _visible(ctx, bulletin_id)
    if row["priority"] != Priority.EMERGENCY.value:
        raise ApiError(404, "not_found", f"no emergency {bulletin_id!r}")
    # One read for the whole fleet: the console polls this page every few seconds.
    rows = await ctx.db.fetchall(
        "WITH first AS (SELECT device_id, MIN(started_at) AS started_at FROM plays"
        " WHERE bulletin_id = :bulletin GROUP BY device_id),"
        # SQLite takes the bare column from the row holding the MAX.
        " last AS (SELECT device_id, outcome, MAX(ended_at) FROM plays"
        " WHERE bulletin_id = :bulletin GROUP BY device_id)"
        " SELECT d.id, d.commune, d.name, d.last_seen, d.last_health_json,"
        " first.started_at AS first, last.outcome AS outcome FROM devices d"
        " LEFT JOIN first ON first.device_id = d.id LEFT JOIN last ON last.device_id = d.id"
        f" WHERE d.kind IN ({airing_kinds_sql(BulletinKind(row['kind']))})"
        f" AND {REACHES_DEVICE} ORDER BY d.id",
        {"bulletin": bulletin_id},
    )
    user = ctx.user
    online = ctx.connections.online_ids()
    limit = ctx.config.offline_after
    now = utcnow()
    devices: list[DevicePlayState] = []
    for dev in rows:
        if not user.may_see_commune(dev["commune"]):
            continue
        health = json.loads(dev["last_health_json"]) if dev["last_health_json"] else {}
        playing = (health.get("now_playing") or {}).get("bulletin_id") == bulletin_id
        started_at = dev["first"]
        if started_at is None and playing:
            started_at = health["now_playing"].get("started_at")
        last_seen = from_iso(dev["last_seen"]) if dev["last_seen"] else None
        devices.append(
            DevicePlayState(
                device_id=dev["id"],
                commune=dev["commune"],
                name=dev["name"],
                online=dev["id"] in online or (last_seen is not None and now - last_seen <= limit),
                started=started_at is not None,
                started_at=started_at,
                now_playing=playing,
                outcome=dev["outcome"],
            )
        )
    return EmergencyStatus(
        bulletin=await _out(ctx, bulletin_id),
        targeted=len(devices),
        started=sum(d.started for d in devices),
        devices=devices,
    )


@routes.post(
    "/api/v1/emergencies/{id}/cancel",
    summary="Cancel an emergency; it stops now on every device",
    permission=Permission.EMERGENCY,
    response=BulletinOut,
    errors=[403, 404, 409],
)
async def cancel_emergency(ctx: Ctx) -> BulletinOut:
    return await _cancel(ctx, ctx.path("id"), emergency_only=True)


# ---------------------------------------------------------------- a commune's running order


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Priority bulletins reaching the commune, first to air first; the rest follow.
    bulletins: list[str] = Field(max_length=1000)


class OrderOut(BaseModel):
    commune: str
    bulletins: list[str]


async def _order(ctx: Ctx, commune: str) -> OrderOut:
    rows = await ctx.db.fetchall(
        "SELECT bulletin_id FROM commune_order WHERE commune = ? ORDER BY position", (commune,)
    )
    return OrderOut(commune=commune, bulletins=[r[0] for r in rows])


@routes.get(
    "/api/v1/communes/{code}/order",
    summary="The commune's order of priority bulletins sharing a slot",
    response=OrderOut,
    errors=[403],
)
async def get_order(ctx: Ctx) -> OrderOut:
    code = ctx.path("code")
    if not ctx.user.may_see_commune(code):
        raise ApiError(403, "out_of_scope", f"commune {code!r} is outside your unit")
    return await _order(ctx, code)


@routes.put(
    "/api/v1/communes/{code}/order",
    summary="Set the commune's order of priority bulletins (provincial and its own); its"
    " devices get a new manifest",
    permission=Permission.BULLETINS_ORDER,
    body=OrderIn,
    response=OrderOut,
    errors=[403, 404],
)
async def set_order(ctx: Ctx) -> OrderOut:
    body: OrderIn = ctx.body
    code = ctx.path("code")
    if not ctx.user.may_see_commune(code):
        raise ApiError(403, "out_of_scope", f"commune {code!r} is outside your unit")
    async with ctx.db.transaction() as conn:
        if await _fetch(conn, "SELECT 1 FROM communes WHERE code = :c", {"c": code}) is None:
            raise ApiError(404, "not_found", f"no commune {code!r}")
        errors = []
        for i, bulletin_id in enumerate(body.bulletins):
            row = await _fetch(
                conn,
                "SELECT b.priority FROM bulletins b WHERE b.id = :id AND b.state = 'published'"
                " AND (b.target_all = 1 OR EXISTS (SELECT 1 FROM bulletin_communes bc"
                " WHERE bc.bulletin_id = b.id AND bc.commune = :c) OR EXISTS (SELECT 1 FROM"
                " bulletin_devices bd JOIN devices d ON d.id = bd.device_id"
                " WHERE bd.bulletin_id = b.id AND d.commune = :c))",
                {"id": bulletin_id, "c": code},
            )
            if row is None or row["priority"] != Priority.PRIORITY.value:
                errors.append(
                    {
                        "field": f"bulletins[{i}]",
                        "message": "not a published priority bulletin of this commune",
                    }
                )
        if len(set(body.bulletins)) != len(body.bulletins):
            errors.append({"field": "bulletins", "message": "a bulletin appears twice"})
        if errors:
            raise ApiError(422, "validation_error", errors)
        cur = await conn.fetchall(
            "SELECT bulletin_id FROM commune_order WHERE commune = ? ORDER BY position", (code,)
        )
        before = [r[0] for r in cur]
        await conn.execute("DELETE FROM commune_order WHERE commune = ?", (code,))
        await conn.executemany(
            "INSERT INTO commune_order (commune, bulletin_id, position) VALUES (?, ?, ?)",
            [(code, b, i + 1) for i, b in enumerate(body.bulletins)],
        )
        versions = await bump_versions(conn, await commune_device_ids(conn, code))
        await ctx.audit(
            conn,
            "commune.order",
            code,
            before={"bulletins": before},
            after={"bulletins": body.bulletins},
        )
    await ctx.connections.push_manifest_ready(versions, ctx.config.command_ttl)
    return await _order(ctx, code)
