"""Bulletins (bản tin) and their review workflow (kho thông tin nguồn).

    draft ──submit──► submitted ──approve──► published ──cancel──► cancelled
      ▲                 │   ▲
      │               return│submit
      └── edit ──── returned┘

A contributor (agency, newspaper) drafts and submits; a reviewer edits, returns with a
comment, or approves with targets and schedule. Admins, reviewers and a commune's operator
(for its own commune) may also publish a draft directly. Which move is allowed from which
state, and to whom, is one table: hub/domain/lifecycle.py; the handlers here ask it, check
the content and record the move. Every transition is kept in `bulletin_events` (who, when,
why) and in the audit log.

Publishing an emergency signs one `emergency_start` for its whole scope and pushes it to every
online device it targets, so it plays now; cancelling does the same with `emergency_cancel`.
The API answers once the change is committed, with the command id; the push runs after it,
in the background (`Connections.in_background`), and its progress shows on the emergency's
status page. Offline devices catch up from the manifest and from the pushes sent when their
WebSocket reconnects (the start frame of each active emergency is kept for them).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
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
    DeviceKind,
    MediaRef,
    Priority,
    Schedule,
    Scope,
    Sha256,
)

from .auth import Permission, User
from .categories import DEFAULT as DEFAULT_CATEGORY
from .categories import check_category
from .db import Database
from .domain.folding import search_terms
from .domain.lengths import recorded_length_problem
from .domain.lifecycle import (
    Action,
    Actor,
    BulletinState,
    Expired,
    NotSubmitted,
    OutOfScope,
    Refusal,
    check_actor,
    check_in_force,
    next_state,
)
from .errors import ApiError, field_error
from .paging import (
    DEFAULT_LIMIT,
    MAX_CURSOR,
    MAX_LIMIT,
    Page,
    cut,
    decode_cursor,
)
from .push import EMERGENCY_SLACK, Connections, EmergencyFrame
from .reports import provider_of
from .routing import Ctx, RouteTable
from .store import bulletins as store
from .store import communes, devices, media, offers
from .store.bulletins import Bulletin, Draft, Event, Targets
from .store.manifests import bump_reached, bump_versions
from .store.sql import Reader, Tx

routes = RouteTable("bulletins")

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Category = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
#: A BulletinState (hub/domain/lifecycle.py), as the API's schemas spell it out.
State = Literal["draft", "submitted", "returned", "published", "cancelled", "deleted"]
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
    source_level: Literal["central", "province"] | None = Field(
        default=None,
        description="Where the content comes from, for reports: a province account may record"
        " a bulletin received from the central HTTTN as central; left out: the author's own"
        " level (a commune's bulletins are always commune).",
    )


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
    #: Words the title or text must all hold, with or without diacritics ("tiem phong").
    q: str | None = Field(default=None, max_length=200)
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


# ---------------------------------------------------------------- the life cycle


def as_actor(user: User) -> Actor:
    """The user as the life cycle sees it."""
    return Actor(
        unit=user.unit,
        province_wide=user.province_wide,
        reviewer=user.may(Permission.BULLETINS_REVIEW),
    )


def _refused(exc: Refusal) -> ApiError:
    """The API's answer to what the life cycle refuses."""
    if isinstance(exc, OutOfScope):
        return ApiError(403, "out_of_scope", str(exc))
    if isinstance(exc, NotSubmitted):
        return ApiError(409, "not_submitted", str(exc))
    if isinstance(exc, Expired):
        return ApiError(409, "expired", str(exc))
    return ApiError(409, "illegal_transition", str(exc))


def _next_state(bulletin: Bulletin, action: Action, user: User) -> BulletinState:
    """Where `action` by `user` takes the bulletin (hub/domain/lifecycle.py), or the API's
    refusal."""
    try:
        return next_state(bulletin.state, action, as_actor(user), bulletin.unit)
    except Refusal as exc:
        raise _refused(exc) from None


async def _visible_bulletin(db: Reader, bulletin_id: str, user: User) -> Bulletin:
    """The bulletin, if `user` may see it: 404 when there is none, 403 when it is another
    unit's."""
    bulletin = await store.get(db, bulletin_id)
    if bulletin is None:
        raise ApiError(404, "not_found", f"no bulletin {bulletin_id!r}")
    if not await store.visible(db, bulletin_id, user):
        raise ApiError(403, "out_of_scope", "this bulletin belongs to another unit")
    return bulletin


# ---------------------------------------------------------------- checks


async def _check_target_scope(db: Reader, targets: TargetsIn, user: User) -> None:
    """A commune-bound account targets only its own commune and that commune's devices."""
    if user.commune is None:
        return
    for code in targets.communes:
        if code != user.commune:
            raise ApiError(403, "out_of_scope", f"commune {code!r} is outside your unit")
    for device_id in targets.devices:
        if await devices.commune_of(db, device_id) != user.commune:
            raise ApiError(403, "out_of_scope", f"device {device_id!r} is outside your unit")


async def _check(
    db: Reader, body: BulletinCreate, user: User, now: datetime
) -> list[dict[str, str]]:
    """Checks that need the database or span fields; all problems at once, each by field."""
    await _check_target_scope(db, body.targets, user)
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
        mime = await media.mime_of(db, body.media)
        if mime is None:
            err("media", f"no uploaded media {body.media}; POST it to /api/v1/media first")
        elif body.kind is not BulletinKind.TEXT and not _mime_fits(body.kind, mime):
            want = {
                "audio": "audio/*",
                "image": "image/*",
                "video": "video/*",
                "document": "application/pdf or text/plain",
            }[body.kind.value]
            err("media", f"a {body.kind.value} bulletin needs {want} media, not {mime}")
    if body.schedule.valid_until <= now:
        err("schedule.valid_until", "is already in the past")
    errors += await _target_errors(db, body.targets)
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


async def _target_errors(db: Reader, targets: TargetsIn) -> list[dict[str, str]]:
    errors = []
    for i, code in enumerate(targets.communes):
        if not await communes.exists(db, code):
            errors.append(
                {"field": f"targets.communes[{i}]", "message": f"unknown commune {code!r}"}
            )
    for i, device_id in enumerate(targets.devices):
        if not await devices.exists(db, device_id):
            errors.append(
                {"field": f"targets.devices[{i}]", "message": f"unknown device {device_id!r}"}
            )
    return errors


async def _bound_for_speakers(db: Reader, bulletin: Bulletin) -> bool:
    """Whether a bulletin may reach a speaker: the whole province, a commune (whatever
    devices it has now or gets later), or a speaker named among its devices."""
    if bulletin.target_all:
        return True
    targets = await store.targets(db, bulletin.content.id)
    if targets.communes:
        return True
    for device_id in targets.devices:
        device = await devices.get(db, device_id)
        if device is not None and device.kind is DeviceKind.SPEAKER:
            return True
    return False


async def _wordless_document(db: Reader, bulletin: Bulletin) -> dict[str, str] | None:
    """The problem of a document bound for speakers with no words to read (a scanned PDF
    with nothing typed beside it): it would be published to air nothing."""
    b = bulletin.content
    if b.kind is not BulletinKind.DOCUMENT or (b.text and b.text.strip()) or b.media is None:
        return None
    stored = await media.get(db, b.media.sha256)
    if stored is None or stored.words is None or stored.words > 0:
        return None  # words to read, or a file stored before uploads were read
    if not await _bound_for_speakers(db, bulletin):
        return None
    return {
        "field": "media",
        "message": "Tài liệu không có chữ nào đọc được (bản chụp hoặc bản quét): loa không có"
        " gì để phát. Hãy gửi tệp có lớp chữ (PDF xuất từ Word, tệp Word), nhập nội dung vào"
        " ô văn bản, hoặc chỉ chọn bảng tin làm nơi phát.",
        "message_en": "the document has no words to read (a photo or a scan): speakers would"
        " air nothing. Send a file with a text layer (a PDF saved from Word, a Word file),"
        " type its words in the text field, or target boards only",
    }


async def _recording_length(
    db: Reader, bulletin: Bulletin, newspapers: frozenset[str]
) -> dict[str, str] | None:
    """The regulations' length of a submitted recording, judged by its decoded length."""
    b = bulletin.content
    if b.media is None or b.kind not in (BulletinKind.AUDIO, BulletinKind.VIDEO):
        return None
    stored = await media.get(db, b.media.sha256)
    duration = stored.duration_s if stored is not None else None
    missed = recorded_length_problem(b.kind, provider_of(bulletin.unit, newspapers), duration)
    if missed is None or duration is None:
        return None
    low, high = (round(x / 60) for x in missed)
    return {
        "field": "media",
        "message": f"Bản tin thu âm dài {duration / 60:.1f} phút; quy định: {low}–{high} phút.",
        "message_en": f"the recording lasts {duration / 60:.1f} minutes; the rule is"
        f" {low}–{high} minutes",
    }


# ---------------------------------------------------------------- changes


async def _set_targets(tx: Tx, bulletin_id: str, targets: TargetsIn, priority: Priority) -> None:
    # Only an emergency left without targets goes to the whole province; a contributor's
    # proposal without targets reaches nobody until the reviewer chooses.
    target_all = not targets.communes and not targets.devices and priority is Priority.EMERGENCY
    await store.set_targets(
        tx, bulletin_id, targets.communes, targets.devices, target_all=target_all
    )


async def _event(
    tx: Tx,
    ctx: Ctx,
    bulletin_id: str,
    action: Action,
    from_state: BulletinState | None,
    to_state: BulletinState,
    comment: str | None = None,
    detail: str | None = None,
) -> None:
    """Keep the step in the bulletin's history and in the audit log."""
    user = ctx.user
    await store.append_event(
        tx,
        bulletin_id,
        Event(
            at=ctx.now,
            actor=user.username,
            unit=user.unit,
            action=action.value,
            from_state=from_state,
            to_state=to_state,
            comment=comment,
        ),
    )
    await ctx.audit(
        tx,
        f"bulletin.{action.value}",
        bulletin_id,
        detail or comment,
        before={"state": from_state.value} if from_state else None,
        after={"state": to_state.value},
    )


def _draft(body: BulletinCreate) -> Draft:
    return Draft(
        title=body.title,
        kind=body.kind,
        priority=body.priority,
        text=body.text,
        media=body.media,
        schedule=body.schedule.to_contract(),
        display_seconds=body.display_seconds or 15.0,
        category=body.category,
    )


async def _insert(tx: Tx, body: BulletinCreate, ctx: Ctx) -> str:
    user = ctx.user
    errors = await _check(tx, body, user, ctx.now)
    if body.source_level is not None and not user.province_wide:
        errors.append(
            {"field": "source_level", "message": "only a province account sets the source level"}
        )
    if errors:
        raise ApiError(422, "validation_error", errors)
    bulletin_id = str(uuid.uuid4())
    try:
        state = next_state(None, Action.CREATE, as_actor(user), user.unit)
    except Refusal as exc:
        raise _refused(exc) from None
    own_level = "commune" if user.role.value == "commune_operator" else "province"
    source_level = body.source_level or own_level
    await store.add(
        tx,
        bulletin_id,
        _draft(body),
        source_level=source_level,
        unit=user.unit,
        created_by=user.username,
        at=ctx.now,
    )
    await _set_targets(tx, bulletin_id, body.targets, body.priority)
    await _event(
        tx,
        ctx,
        bulletin_id,
        Action.CREATE,
        None,
        state,
        detail=f"{body.priority.value} {body.kind.value} {body.title}",
    )
    return bulletin_id


class Published(NamedTuple):
    #: As committed, read back inside the transaction: the answer needs no read after it.
    record: Bulletin
    targets: Targets
    #: The new manifest version of every device it reaches.
    versions: dict[str, int]
    #: For an emergency, whom its start frame names.
    scope: Scope | None


async def _publish(
    tx: Tx,
    ctx: Ctx,
    bulletin_id: str,
    action: Action = Action.PUBLISH,
    comment: str | None = None,
) -> Published:
    """Make the move into `published` (publish, approve) and raise the manifest version of
    every device the bulletin reaches."""
    before = await store.get(tx, bulletin_id)
    if before is None:
        raise ApiError(404, "not_found", f"no bulletin {bulletin_id!r}")
    to = _next_state(before, action, ctx.user)
    try:
        check_in_force(before.content.schedule.valid_until, ctx.now)
    except Refusal as exc:
        raise _refused(exc) from None
    if not before.target_all and not await store.names_a_target(tx, bulletin_id):
        raise field_error(422, "validation_error", "targets", "choose communes or devices first")
    wordless = await _wordless_document(tx, before)
    if wordless is not None:
        raise ApiError(422, "validation_error", [wordless])
    await store.mark_published(
        tx, bulletin_id, at=ctx.now, default_category=DEFAULT_CATEGORY, comment=comment
    )
    published = await store.get(tx, bulletin_id)
    assert published is not None
    bulletin = published.content
    versions = await bump_reached(tx, bulletin_id, bulletin.kind)
    await ctx.audit(tx, "bulletin.targets", bulletin_id, f"{len(versions)} devices")
    await _event(tx, ctx, bulletin_id, action, before.state, to, comment)
    emergency = bulletin.priority is Priority.EMERGENCY
    scope = await store.scope(tx, bulletin_id) if emergency else None
    targets = await store.targets(tx, bulletin_id)
    return Published(published, targets, versions, scope)


async def _announce_publish(ctx: Ctx, published: Published) -> BulletinOut:
    """Answer a committed publish and push it in the background: an emergency's start
    (signed once, kept for reconnecting devices) or each device's manifest_ready."""
    connections = ctx.connections
    record, targets, versions, scope = published
    start = connections.emergency_start(record.content, scope) if scope is not None else None
    answer = _to_out(
        record,
        targets,
        targeted=len(versions),
        pushed=len((await connections.online_anywhere()).intersection(versions)),
        command_id=start.signed.command_id if start is not None else None,
    )
    # Scheduled with nothing left to await: the push follows the commit at once, and the
    # operator's answer goes out before the fan-out's writes (thousands of them).
    _push_publish(ctx, published, start)
    return answer


def _push_publish(ctx: Ctx, published: Published, start: EmergencyFrame | None) -> None:
    connections = ctx.connections
    bulletin, versions = published.record.content, published.versions
    # The start frame also tells each device its manifest changed: no second frame. An
    # emergency approved for later plays from the manifest; devices connecting once it is
    # due get its start frame.
    if start is not None and bulletin.schedule.valid_from <= ctx.now + EMERGENCY_SLACK:
        connections.in_background(
            connections.push_emergency_start(list(versions), start),
            f"emergency_start of {bulletin.id}",
        )
    else:
        if start is not None:
            # Approved for later: the other nodes keep its start for the devices that
            # connect to them once it is due.
            connections.in_background(
                connections.push_emergency_start([], start), f"emergency_start of {bulletin.id}"
            )
        connections.in_background(
            connections.push_manifest_ready(versions, ctx.config.command_ttl),
            f"manifest_ready for {bulletin.id}",
        )


async def load_active_emergencies(db: Database, connections: Connections, now: datetime) -> int:
    """Sign the start of every emergency still in force, oldest first (at start-up, so the
    devices reconnecting after a restart hear the emergencies they may have missed)."""
    for bulletin in await store.in_force_emergencies(db, now):
        connections.emergency_start(bulletin.content, await store.scope(db, bulletin.id))
    return len(connections.emergencies)


async def _out(ctx: Ctx, bulletin_id: str, **extra: Any) -> BulletinOut:
    bulletin = await store.get(ctx.db, bulletin_id)
    if bulletin is None:
        raise ApiError(404, "not_found", f"no bulletin {bulletin_id!r}")
    return _to_out(bulletin, await store.targets(ctx.db, bulletin_id), **extra)


def _to_out(bulletin: Bulletin, targets: Targets, **extra: Any) -> BulletinOut:
    b = bulletin.content
    return BulletinOut(
        id=b.id,
        title=b.title,
        kind=b.kind,
        priority=b.priority,
        text=b.text,
        media=b.media,
        targets=TargetsOut(
            communes=targets.communes, devices=targets.devices, all_communes=bulletin.target_all
        ),
        schedule=b.schedule,
        display_seconds=b.display_seconds,
        category=b.category,
        source_level=b.source_level,
        state=bulletin.state.value,
        unit=bulletin.unit,
        review_comment=bulletin.review_comment,
        created_by=bulletin.created_by,
        created_at=bulletin.created_at,
        published_at=bulletin.published_at,
        cancelled_at=bulletin.cancelled_at,
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
    async with ctx.db.transaction() as tx:
        bulletin_id = await _insert(tx, ctx.body, ctx)
    return await _out(ctx, bulletin_id)


async def fold_older_bulletins(db: Database) -> int:
    """Fold for search the bulletins written before search existed (once, at start)."""
    folded = 0
    while rows := await store.unfolded(db, 500):
        async with db.transaction() as tx:
            for bulletin_id, title, text in rows:
                await store.set_search_text(tx, bulletin_id, title, text)
        folded += len(rows)
    return folded


@routes.get(
    "/api/v1/bulletins",
    summary="List the bulletins the caller may see, newest first (state=submitted: the queue);"
    " paged: follow the Link header",
    query=BulletinQuery,
    response=list[BulletinOut],
)
async def list_bulletins(ctx: Ctx) -> Page[list[BulletinOut]]:
    query: BulletinQuery = ctx.query
    before = None
    if query.before is not None:
        created_at, bulletin_id = decode_cursor(query.before, (str, str))
        before = (created_at, bulletin_id)
    rows = await store.newest(
        ctx.db,
        ctx.user,
        state=BulletinState(query.state) if query.state else None,
        priority=query.priority,
        kind=query.kind,
        unit=query.unit,
        search=search_terms(query.q or ""),
        before=before,
        limit=query.limit + 1,
    )
    rows, cursor = cut(rows, query.limit, store.list_key)
    # The targets of this page's bulletins only, not of every bulletin ever made.
    targets = await store.targets_of(ctx.db, [b.id for b in rows])
    return Page([_to_out(b, targets[b.id]) for b in rows], cursor)


@routes.get(
    "/api/v1/bulletins/{id}", summary="One bulletin", response=BulletinOut, errors=[403, 404]
)
async def get_bulletin(ctx: Ctx) -> BulletinOut:
    await _visible_bulletin(ctx.db, ctx.path("id"), ctx.user)
    return await _out(ctx, ctx.path("id"))


@routes.get(
    "/api/v1/bulletins/{id}/history",
    summary="Every state change of a bulletin: who, when, why",
    response=list[EventOut],
    errors=[403, 404],
)
async def bulletin_history(ctx: Ctx) -> list[EventOut]:
    await _visible_bulletin(ctx.db, ctx.path("id"), ctx.user)
    return [
        EventOut(
            at=e.at,
            actor=e.actor,
            unit=e.unit,
            action=e.action,
            from_state=e.from_state.value if e.from_state is not None else None,
            to_state=e.to_state.value,
            comment=e.comment,
        )
        for e in await store.events(ctx.db, ctx.path("id"))
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
    async with ctx.db.transaction() as tx:
        bulletin = await _visible_bulletin(tx, ctx.path("id"), user)
        state = _next_state(bulletin, Action.EDIT, user)
        errors = await _check(tx, body, user, ctx.now)
        if errors:
            raise ApiError(422, "validation_error", errors)
        await store.update(tx, bulletin.id, _draft(body))
        await _set_targets(tx, bulletin.id, body.targets, body.priority)
        await _event(tx, ctx, bulletin.id, Action.EDIT, bulletin.state, state)
    return await _out(ctx, bulletin.id)


def _word_count(text: str | None) -> int:
    return len((text or "").split())


def submit_problems(
    *,
    kind: BulletinKind,
    priority: Priority,
    text: str | None,
    category: str | None,
    times: Sequence[str],
) -> list[dict[str, str]]:
    """What keeps a bulletin from going to review (field, message), none when it may: checked
    by the submit route, and by the console before "save and submit" creates anything."""
    errors = []
    if not category:
        errors.append({"field": "category", "message": "choose the content category"})
    words = _word_count(text)
    low, high = SUBMIT_WORDS
    if kind is BulletinKind.TEXT and not low <= words <= high:
        errors.append(
            {"field": "text", "message": f"a text bulletin has {low}-{high} words, not {words}"}
        )
    if priority is not Priority.NORMAL and not times:
        errors.append(
            {
                "field": "schedule.times",
                "message": f"propose the air time of a {priority.value} bulletin",
            }
        )
    return errors


@routes.post(
    "/api/v1/bulletins/{id}/submit",
    summary="Submit a draft (or a returned bulletin) to the province's review",
    permission=Permission.BULLETINS_WRITE,
    response=BulletinOut,
    errors=[403, 404, 409, 422],
)
async def submit_bulletin(ctx: Ctx) -> BulletinOut:
    user = ctx.user
    async with ctx.db.transaction() as tx:
        bulletin = await _visible_bulletin(tx, ctx.path("id"), user)
        state = _next_state(bulletin, Action.SUBMIT, user)
        b = bulletin.content
        errors = submit_problems(
            kind=b.kind,
            priority=b.priority,
            text=b.text,
            category=b.category,
            times=b.schedule.times,
        )
        for found in (
            await _wordless_document(tx, bulletin),
            await _recording_length(tx, bulletin, ctx.config.newspaper_units),
        ):
            if found is not None:
                errors.append(found)
        if errors:
            raise ApiError(422, "validation_error", errors)
        await store.mark_submitted(tx, b.id)
        await _event(tx, ctx, b.id, Action.SUBMIT, bulletin.state, state)
    return await _out(ctx, b.id)


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
    async with ctx.db.transaction() as tx:
        bulletin = await _visible_bulletin(tx, ctx.path("id"), ctx.user)
        state = _next_state(bulletin, Action.RETURN, ctx.user)
        await store.mark_returned(tx, bulletin.id, body.comment)
        await _event(tx, ctx, bulletin.id, Action.RETURN, bulletin.state, state, body.comment)
    return await _out(ctx, bulletin.id)


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
    async with ctx.db.transaction() as tx:
        bulletin = await _visible_bulletin(tx, ctx.path("id"), ctx.user)
        _next_state(bulletin, Action.APPROVE, ctx.user)
        errors: list[dict[str, str]] = []
        if body.targets is not None:
            errors += await _target_errors(tx, body.targets)
        if body.schedule is not None and body.schedule.valid_until <= ctx.now:
            errors.append({"field": "schedule.valid_until", "message": "is already in the past"})
        category = body.category or bulletin.content.category
        if category is None:
            errors.append({"field": "category", "message": "choose the content category"})
        else:
            try:
                check_category(category)
            except ApiError as exc:
                errors += exc.detail
        if errors or category is None:
            raise ApiError(422, "validation_error", errors)
        priority = body.priority or bulletin.content.priority
        await store.set_review(
            tx,
            bulletin.id,
            priority=priority,
            category=category,
            schedule=body.schedule.to_contract() if body.schedule is not None else None,
        )
        if body.targets is not None:
            await _set_targets(tx, bulletin.id, body.targets, priority)
        elif priority is not bulletin.content.priority:
            current = await store.targets(tx, bulletin.id)
            await _set_targets(
                tx,
                bulletin.id,
                TargetsIn(communes=current.communes, devices=current.devices),
                priority,
            )
        published = await _publish(tx, ctx, bulletin.id, Action.APPROVE, body.comment)
    return await _announce_publish(ctx, published)


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
    async with ctx.db.transaction() as tx:
        bulletin = await _visible_bulletin(tx, ctx.path("id"), ctx.user)
        _next_state(bulletin, Action.PUBLISH, ctx.user)
        published = await _publish(tx, ctx, bulletin.id)
    return await _announce_publish(ctx, published)


async def _cancel(ctx: Ctx, bulletin_id: str, *, emergency_only: bool) -> BulletinOut:
    user = ctx.user
    now = ctx.now
    async with ctx.db.transaction() as tx:
        bulletin = await _visible_bulletin(tx, bulletin_id, user)
        try:
            check_actor(Action.CANCEL, as_actor(user), bulletin.unit)
        except Refusal as exc:
            raise _refused(exc) from None
        emergency = bulletin.content.priority is Priority.EMERGENCY
        if emergency_only and not emergency:
            raise ApiError(404, "not_found", f"no emergency {bulletin_id!r}")
        state = _next_state(bulletin, Action.CANCEL, user)
        await store.mark_cancelled(tx, bulletin_id, now)
        versions = await bump_reached(tx, bulletin_id, bulletin.content.kind)
        scope = await store.scope(tx, bulletin_id) if emergency else None
        await _event(
            tx,
            ctx,
            bulletin_id,
            Action.CANCEL,
            bulletin.state,
            state,
            detail=f"{len(versions)} devices",
        )
    connections = ctx.connections
    pushed = len((await connections.online_anywhere()).intersection(versions))
    if scope is None:
        answer = await _out(ctx, bulletin_id, targeted=len(versions), pushed=pushed)
        connections.in_background(
            connections.push_manifest_ready(versions, ctx.config.command_ttl),
            f"manifest_ready for cancelled {bulletin_id}",
        )
        return answer
    # As with the start: the cancel frame also tells each device to fetch its manifest.
    ttl = max(ctx.config.command_ttl, bulletin.content.schedule.valid_until - now)
    cancel = connections.emergency_cancel(bulletin_id, scope, ttl)
    answer = await _out(
        ctx, bulletin_id, targeted=len(versions), pushed=pushed, command_id=cancel.command_id
    )
    connections.in_background(
        connections.push_emergency_cancel(bulletin_id, list(versions), cancel),
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


class Deleted(BaseModel):
    """What a DELETE removed (its record stays in the audit log)."""

    id: str
    deleted: bool = True


@routes.delete(
    "/api/v1/bulletins/{id}",
    summary="Delete a bulletin that was never published (a draft or a returned one); a"
    " published bulletin is cancelled instead. Its history is kept",
    permission=Permission.BULLETINS_WRITE,
    response=Deleted,
    errors=[403, 404, 409],
)
async def delete_bulletin(ctx: Ctx) -> Deleted:
    async with ctx.db.transaction() as tx:
        bulletin = await _visible_bulletin(tx, ctx.path("id"), ctx.user)
        state = _next_state(bulletin, Action.DELETE, ctx.user)
        await store.mark_deleted(tx, bulletin.id)
        await _event(
            tx,
            ctx,
            bulletin.id,
            Action.DELETE,
            bulletin.state,
            state,
            detail=bulletin.content.title,
        )
    return Deleted(id=bulletin.id)


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
    now = ctx.now
    kind = BulletinKind.TEXT
    if body.media is not None:
        mime = await media.mime_of(ctx.db, body.media)
        # An unknown sha256 gets a media kind; _check then reports it missing by field.
        kind = (kind_for_mime(mime) if mime else None) or BulletinKind.AUDIO
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

    async def fire(tx: Tx) -> Published:
        bulletin_id = await _insert(tx, draft, ctx)
        published = await _publish(tx, ctx, bulletin_id)
        await ctx.audit(tx, "emergency.start", bulletin_id, body.title)
        return published

    # One hop to the writer for its two dozen statements and the commit, not one per
    # statement: every device's push waits for this commit (issue #8, arrival near the floor).
    return await _announce_publish(ctx, await ctx.db.write(fire))


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
    user = ctx.user
    bulletin = await _visible_bulletin(ctx.db, bulletin_id, user)
    if bulletin.content.priority is not Priority.EMERGENCY:
        raise ApiError(404, "not_found", f"no emergency {bulletin_id!r}")
    online = await ctx.connections.online_anywhere()
    limit = ctx.config.offline_after
    now = ctx.now
    states: list[DevicePlayState] = []
    for dev in await store.airing_devices(ctx.db, bulletin_id, bulletin.content.kind):
        if not user.may_see_commune(dev.commune):
            continue
        now_playing = dev.health.get("now_playing") or {}
        playing = now_playing.get("bulletin_id") == bulletin_id
        # Proof of play first; else what the device says it plays now (its JSON, as sent).
        started_at: Any = dev.first_started_at
        if started_at is None and playing:
            started_at = now_playing.get("started_at")
        last_seen = dev.last_seen
        states.append(
            DevicePlayState(
                device_id=dev.id,
                commune=dev.commune,
                name=dev.name,
                online=dev.id in online or (last_seen is not None and now - last_seen <= limit),
                started=started_at is not None,
                started_at=started_at,
                now_playing=playing,
                outcome=dev.last_outcome,
            )
        )
    return EmergencyStatus(
        bulletin=await _out(ctx, bulletin_id),
        targeted=len(states),
        started=sum(d.started for d in states),
        devices=states,
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
    return OrderOut(commune=commune, bulletins=await store.running_order(ctx.db, commune))


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
    async with ctx.db.transaction() as tx:
        if not await communes.exists(tx, code):
            raise ApiError(404, "not_found", f"no commune {code!r}")
        errors = []
        accepted = {
            b for b, c in (await offers.choices(tx, code)).items() if c.choice == "accepted"
        }
        for i, bulletin_id in enumerate(body.bulletins):
            priority = await store.published_priority_for(tx, bulletin_id, code)
            placed = priority is Priority.PRIORITY or (
                priority is Priority.NORMAL and bulletin_id in accepted
            )
            if not placed:
                errors.append(
                    {
                        "field": f"bulletins[{i}]",
                        "message": "not a published priority bulletin of this commune, nor a"
                        " normal one it accepted",
                    }
                )
        if len(set(body.bulletins)) != len(body.bulletins):
            errors.append({"field": "bulletins", "message": "a bulletin appears twice"})
        if errors:
            raise ApiError(422, "validation_error", errors)
        before = await store.running_order(tx, code)
        await store.set_running_order(tx, code, body.bulletins)
        versions = await bump_versions(tx, await devices.ids_in_commune(tx, code))
        await ctx.audit(
            tx,
            "commune.order",
            code,
            before={"bulletins": before},
            after={"bulletins": body.bulletins},
        )
    await ctx.connections.push_manifest_ready(versions, ctx.config.command_ttl)
    return await _order(ctx, code)


# ---------------------------------------------------------------- for other ways in (CAP)

#: The steps above, for modules that make bulletins from what arrives another way (CAP
#: alerts, hub/cap.py) and must take exactly the same checks, history and pushes.
insert = _insert
publish_in = _publish
announce_publish = _announce_publish
record_event = _event
bulletin_out = _out


async def submit_in(tx: Tx, ctx: Ctx, bulletin_id: str, comment: str) -> None:
    """A bulletin that arrived another way (a CAP alert, an upper hub's item) goes to the
    province's review, with `comment` saying where it came from in its history."""
    await store.mark_submitted(tx, bulletin_id)
    await _event(
        tx,
        ctx,
        bulletin_id,
        Action.SUBMIT,
        BulletinState.DRAFT,
        BulletinState.SUBMITTED,
        comment,
    )


async def cancel_as(ctx: Ctx, bulletin_id: str) -> BulletinOut:
    """Cancel a published bulletin as `ctx.user` (an emergency stops now)."""
    return await _cancel(ctx, bulletin_id, emergency_only=False)
