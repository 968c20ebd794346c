"""CAP 1.2 in and out: alerts from warning agencies become bulletins; the hub's own
emergencies go out as a CAP feed.

In: `POST /api/v1/cap` takes one OASIS CAP 1.2 alert. It is untrusted XML from outside, so it
is parsed with defusedxml (no DTD, no entities, no external references), size-limited, and
checked against the CAP 1.2 structure (hub/domain/cap.py) before anything else; a problem is
a 4xx naming the element. How an alert becomes a bulletin:

- the `info` in vi-VN (or "vi") is read, else the first; headline (else event) is the title;
  description and instruction are the text, spoken on speakers and shown on boards;
- an audio `resource` (by `uri`, fetched through hub/outbound.py, or `derefUri`) is checked
  against its SHA-1 `digest` and stored as media: the bulletin is then audio;
- urgency Immediate/Expected with severity Extreme/Severe is an emergency, published at once;
  anything else is a priority (severe, or imminent and moderate) or normal bulletin, put in
  the review queue (submitted);
- areas: a `geocode` VN-DVHC names a commune by its administrative code (or the province by
  the province's code), an `areaDesc` equal to a commune's name or the province's name names
  it; an alert that names nothing here is refused (422), never sent province-wide by default;
- `expires` is the end of validity; `effective` its start when later than now;
- `msgType` Update withdraws the bulletins of the alerts it `references` (cancelled when
  published, returned when still under review) and is then taken as a new alert; Cancel only
  withdraws them; the same identifier + sender + sent twice changes nothing (200, as before);
- status other than Actual (Exercise, Test...), scope other than Public, and Ack/Error
  messages are recorded and answered but never aired: loudspeakers are for the public.

Who posts: admins and reviewers (their session token), whose alerts act at once, and sender
accounts (`hub sender add NAME --policy auto|review`, a token of their own): "auto" publishes
emergencies at once, "review" puts everything in the review queue. A sender account updates
and cancels only the alerts it posted itself. Everything lands in the audit log (`cap.take`,
and each bulletin's own history).

Out: `GET /api/v1/cap/feed.atom`, public: the emergencies the hub's loudspeakers air (in
force now, or cancelled within a day, as Cancel messages) as CAP 1.2 alerts inside Atom
entries. What it serves passes the same validator as what the hub takes in.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from xml.etree import ElementTree as ET

import defusedxml  # type: ignore[import-untyped]
import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped]
from aiohttp import web
from pydantic import BaseModel

from loa_contract import KINDS_FOR_DEVICE, VN_TZ, BulletinKind, DeviceKind, Priority

from . import bulletins
from .appkeys import CLOCK, CONFIG, CONNECTIONS, DB, KEYRING, PROBES
from .auth import PROVINCE, Permission, Role, User, authenticate_operator
from .bulletins import BulletinCreate, BulletinOut, ScheduleIn, TargetsIn
from .config import HubConfig
from .db import Database
from .domain import cap as capdef
from .domain.cap import CapAlert, CapInvalid, Info, Resource
from .domain.lifecycle import Action, BulletinState
from .errors import ApiError, field_error
from .keys import HubKeyring
from .media import keep_bytes
from .outbound import Outbound, OutboundRefused, OutboundUnavailable, check_form
from .push import Connections
from .routing import Ctx, RouteTable
from .security import new_token, sha256_hex
from .store import audit as audit_log
from .store import bulletins as bulletin_store
from .store import cap as store
from .store import communes, media
from .store.cap import Sender, TakenAlert

log = logging.getLogger(__name__)

routes = RouteTable("cap")

CAP_TYPES = ("application/cap+xml", "application/xml", "text/xml")
#: The geocode valueName of Vietnam's administrative codes (mã đơn vị hành chính).
DVHC = "VN-DVHC"
#: How long an alert without `expires` stays in force: an emergency as long as one made in
#: the console by default; a bulletin a day, for the reviewer to shorten or lengthen.
EMERGENCY_DEFAULT_VALID = timedelta(minutes=60)
BULLETIN_DEFAULT_VALID = timedelta(hours=24)
CATEGORY = "disaster_emergency"
#: Cancelled emergencies stay in the feed this long, as Cancel messages.
FEED_CANCELLED_MEMORY = timedelta(days=1)
SENDER_PREFIX = "sender:"
#: The shortest poll interval a feed may ask for.
MIN_INTERVAL_S = 30

Policy = Literal["auto", "review"]
#: On a request: the sender account whose token authenticated it.
CAP_SENDER = web.RequestKey("cap_sender", Sender)
Outcome = Literal["published", "review", "cancelled", "not_aired"]


# ---------------------------------------------------------------- who posts


@dataclass(frozen=True)
class Poster:
    #: The user the bulletin machinery acts as (a sender account acts as a province reviewer
    #: named "sender:<name>", so its history and audit say who it was).
    user: User
    policy: Policy
    source_level: Literal["central", "province"]
    #: Account name kept with each alert: references are honoured only from the same one.
    account: str
    #: An operator: may update and cancel any alert.
    operator: bool


def sender_user(sender: Sender) -> User:
    return User(
        id=0,
        username=f"{SENDER_PREFIX}{sender.name}",
        role=Role.REVIEWER,
        unit=PROVINCE,
        must_change_password=False,
    )


async def authenticate_poster(request: web.Request) -> User:
    """A sender account's token, else an operator's session (routing.RouteSpec.authenticate)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        sender = await store.sender_by_token(request.app[DB], sha256_hex(token.strip()))
        if sender is not None:
            request[CAP_SENDER] = sender
            return sender_user(sender)
    return await authenticate_operator(request)


def _poster(ctx: Ctx, level: Literal["central", "province"] | None) -> Poster:
    sender: Sender | None = ctx.request.get(CAP_SENDER)
    if sender is not None:
        if level is not None and level != sender.source_level:
            raise field_error(
                422, "validation_error", "source_level", "a sender account posts at its own level"
            )
        return Poster(
            user=ctx.user,
            policy="auto" if sender.policy == "auto" else "review",
            source_level="central" if sender.source_level == "central" else "province",
            account=ctx.user.username,
            operator=False,
        )
    if ctx.user.role not in (Role.ADMIN, Role.REVIEWER):
        raise ApiError(403, "forbidden", "only admins, reviewers and sender accounts post CAP")
    return Poster(
        user=ctx.user,
        policy="auto",
        source_level=level or "province",
        account=ctx.user.username,
        operator=True,
    )


# ---------------------------------------------------------------- parsing


def parse_xml(raw: bytes) -> ET.Element:
    """The document's root, parsed as untrusted: 400 for anything defusedxml forbids or that
    is not well-formed XML."""
    try:
        root: ET.Element = SafeET.fromstring(raw, forbid_dtd=True)
    except defusedxml.DTDForbidden as exc:
        raise ApiError(400, "xml_forbidden", "a DOCTYPE is not allowed in CAP") from exc
    except defusedxml.EntitiesForbidden as exc:
        raise ApiError(400, "xml_forbidden", f"entity declarations are not allowed: {exc}") from exc
    except defusedxml.ExternalReferenceForbidden as exc:
        raise ApiError(400, "xml_forbidden", "external references are not allowed") from exc
    except defusedxml.DefusedXmlException as exc:
        raise ApiError(400, "xml_forbidden", str(exc)) from exc
    except ET.ParseError as exc:
        raise ApiError(400, "bad_xml", f"not well-formed XML: {exc}") from exc
    return root


def read_cap(raw: bytes) -> CapAlert:
    try:
        return capdef.read_alert(parse_xml(raw))
    except CapInvalid as exc:
        raise ApiError(
            422,
            "cap_invalid",
            [{"field": p.element, "message": p.message} for p in exc.problems],
        ) from exc


# ---------------------------------------------------------------- mapping


def _fold(name: str) -> str:
    """A place name as compared: NFC, case-folded, spaces collapsed."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


@dataclass(frozen=True)
class Reach:
    #: Every commune of the province.
    province: bool
    communes: list[str]


async def area_reach(db: Database, config: HubConfig, info: Info, info_path: str) -> Reach:
    """The communes the info's areas name; 422 naming the areas when they name none."""
    by_name: dict[str, str] = {}
    every = await communes.every_commune(db)
    for commune in every:
        by_name.setdefault(_fold(commune.name), commune.code)
    province_name = _fold(config.province_name) if config.province_name else None
    found: list[str] = []
    province = False
    for area in info.areas:
        if province_name is not None and _fold(area.description) == province_name:
            province = True
        elif (code := by_name.get(_fold(area.description))) is not None:
            found.append(code)
        for pair in area.geocodes:
            if pair.name.strip().upper() != DVHC:
                continue
            value = pair.value.strip()
            if config.province_code is not None and value == config.province_code:
                province = True
            elif (code := await communes.with_admin_code(db, value)) is not None:
                found.append(code)
    if province:
        return Reach(True, [c.code for c in every])
    if not found:
        raise field_error(
            422,
            "area_unknown",
            f"{info_path}/area",
            "names no commune of this province (by geocode VN-DVHC or areaDesc): the alert is"
            " not sent anywhere rather than everywhere",
        )
    return Reach(False, sorted(set(found)))


def _title(info: Info) -> str:
    title = info.headline or info.event
    return title[:300]


def _text(info: Info) -> str:
    parts = [p for p in (info.description, info.instruction) if p]
    return "\n\n".join(parts)[:50_000] or _title(info)


def priority_of(info: Info) -> Priority:
    if capdef.is_emergency(info):
        return Priority.EMERGENCY
    if capdef.is_priority(info):
        return Priority.PRIORITY
    return Priority.NORMAL


async def _fetch_resource(ctx: Ctx, resource: Resource, path: str) -> bytes:
    if resource.deref is not None:
        data = resource.deref
    elif resource.uri is not None:
        fetcher = Outbound.from_config(ctx.config, ctx.config.cap_resource_max_bytes)
        try:
            data = (await fetcher.fetch(resource.uri)).body
        except OutboundRefused as exc:
            raise field_error(422, "resource_refused", f"{path}/uri", str(exc)) from exc
        except OutboundUnavailable as exc:
            raise field_error(503, "resource_unavailable", f"{path}/uri", str(exc)) from exc
    else:
        raise field_error(422, "validation_error", f"{path}/uri", "an audio resource needs uri")
    if len(data) > ctx.config.cap_resource_max_bytes:
        raise field_error(
            422,
            "too_large",
            f"{path}/derefUri",
            f"more than {ctx.config.cap_resource_max_bytes} bytes",
        )
    if resource.digest is not None and hashlib.sha1(data).hexdigest() != resource.digest:
        raise field_error(422, "digest_mismatch", f"{path}/digest", "the bytes do not match")
    if resource.size is not None and resource.size != len(data):
        raise field_error(
            422, "size_mismatch", f"{path}/size", f"says {resource.size}, got {len(data)} bytes"
        )
    return data


async def _audio(ctx: Ctx, info: Info, info_path: str, unit: str) -> str | None:
    """The sha256 of the info's first audio resource, stored as media; None without one."""
    for i, resource in enumerate(info.resources):
        if not resource.mime_type.lower().startswith("audio/"):
            continue
        path = f"{info_path}/resource[{i + 1}]"
        data = await _fetch_resource(ctx, resource, path)
        async with ctx.app[PROBES]:
            kept = await asyncio.to_thread(keep_bytes, ctx.config.media_dir, data)
        if kept.problem is not None:
            raise field_error(422, "media_unfit", f"{path}/uri", kept.problem)
        if kept.record is None or not kept.record.mime.startswith("audio/"):
            raise field_error(
                422, "unsupported_media_type", f"{path}/mimeType", "the bytes are not audio"
            )
        async with ctx.db.transaction() as tx:
            await media.add(tx, kept.record, unit=unit, at=ctx.now)
            await ctx.audit(
                tx,
                "media.upload",
                kept.sha256,
                "CAP resource",
                after={"sha256": kept.sha256, "size": kept.size, "mime": kept.mime},
            )
        return kept.sha256
    return None


def _info_path(alert: CapAlert, info: Info) -> str:
    return f"alert/info[{alert.infos.index(info) + 1}]"


async def bulletin_for(ctx: Ctx, alert: CapAlert, poster: Poster) -> BulletinCreate:
    """The bulletin an alert becomes (its media already stored); 4xx naming the element."""
    info = capdef.preferred_info(alert.infos)
    if info is None:
        raise field_error(422, "validation_error", "alert/info", "an alert to air needs an info")
    path = _info_path(alert, info)
    now = ctx.now
    priority = priority_of(info)
    reach = await area_reach(ctx.db, ctx.config, info, path)
    start = info.effective if info.effective is not None and info.effective > now else now
    default = EMERGENCY_DEFAULT_VALID if priority is Priority.EMERGENCY else BULLETIN_DEFAULT_VALID
    until = info.expires or start + default
    if until <= now:
        raise field_error(422, "expired", f"{path}/expires", "the alert has already expired")
    if until <= start:
        raise field_error(422, "validation_error", f"{path}/expires", "is before effective")
    sha = await _audio(ctx, info, path, poster.user.unit)
    # A province-wide emergency goes out without targets (the whole province, as the
    # console's); anything else names its communes.
    if reach.province and priority is Priority.EMERGENCY:
        targets = TargetsIn()
    else:
        targets = TargetsIn(communes=reach.communes)
    emergency = priority is Priority.EMERGENCY
    return BulletinCreate(
        title=_title(info),
        kind=BulletinKind.AUDIO if sha else BulletinKind.TEXT,
        priority=priority,
        text=_text(info),
        media=sha,
        targets=targets,
        schedule=ScheduleIn(
            valid_from=start.astimezone(VN_TZ),
            valid_until=until.astimezone(VN_TZ),
            repeats=bulletins.PROVINCE_EMERGENCY_REPEATS if emergency else 1,
            interval_s=bulletins.EMERGENCY_INTERVAL_S if emergency else 0,
        ),
        category=CATEGORY,
        source_level=poster.source_level,
    )


# ---------------------------------------------------------------- taking an alert


class CapOut(BaseModel):
    identifier: str
    sender: str
    sent: datetime
    msg_type: str
    #: published: airs now; review: in the review queue; cancelled: the referenced alerts'
    #: bulletins withdrawn; not_aired: recorded only (a test, an exercise, not public...).
    outcome: Outcome
    #: Why it was not aired, when it was not.
    reason: str | None = None
    #: The bulletin the alert became, if any.
    bulletin: BulletinOut | None = None
    #: The bulletins this Update or Cancel withdrew.
    withdrawn: list[str] = []
    #: False when the same alert had been taken before: nothing changed.
    new: bool = True


class _AlreadyTaken(Exception):
    pass


def _not_aired_reason(alert: CapAlert) -> str | None:
    if alert.status != "Actual":
        return f"status {alert.status}: only Actual alerts air"
    if alert.scope != "Public":
        return f"scope {alert.scope}: loudspeakers are public"
    if alert.msg_type in ("Ack", "Error"):
        return f"msgType {alert.msg_type} carries no warning"
    return None


async def _referenced(ctx: Ctx, alert: CapAlert, poster: Poster) -> list[TakenAlert]:
    found = []
    for i, ref in enumerate(alert.references):
        taken = await store.taken(ctx.db, ref.sender, ref.identifier, ref.sent)
        if taken is None:
            continue
        if not poster.operator and taken.posted_by != poster.account:
            raise field_error(
                403,
                "out_of_scope",
                "alert/references",
                f"entry {i + 1} is an alert another account posted",
            )
        found.append(taken)
    return found


async def _withdraw(ctx: Ctx, taken: list[TakenAlert], why: str) -> list[str]:
    """Cancel the published bulletins of `taken`, return the ones under review."""
    withdrawn: list[str] = []
    for alert in taken:
        if alert.bulletin_id is None:
            continue
        bulletin = await bulletin_store.get(ctx.db, alert.bulletin_id)
        if bulletin is None:
            continue
        if bulletin.state is BulletinState.PUBLISHED:
            await bulletins.cancel_as(ctx, bulletin.id)
            withdrawn.append(bulletin.id)
        elif bulletin.state is BulletinState.SUBMITTED:
            async with ctx.db.transaction() as tx:
                await bulletin_store.mark_returned(tx, bulletin.id, why)
                await bulletins.record_event(
                    tx, ctx, bulletin.id, Action.RETURN, bulletin.state, BulletinState.RETURNED, why
                )
            withdrawn.append(bulletin.id)
    return withdrawn


async def take_alert(ctx: Ctx, raw: bytes, poster: Poster) -> CapOut:
    """Take one CAP document: validate, map, record; the answer says what became of it."""
    alert = read_cap(raw)
    previous = await store.taken(ctx.db, alert.sender, alert.identifier, alert.sent)
    if previous is not None:
        return await _answer(ctx, alert, previous, new=False)
    reason = _not_aired_reason(alert)
    withdrawn: list[str] = []
    draft: BulletinCreate | None = None
    referenced: list[TakenAlert] = []
    if reason is None:
        if alert.msg_type in ("Update", "Cancel"):
            referenced = await _referenced(ctx, alert, poster)
            if alert.msg_type == "Cancel" and not referenced:
                raise field_error(
                    422,
                    "unknown_reference",
                    "alert/references",
                    "names no alert this hub took (sender,identifier,sent)",
                )
        if alert.msg_type != "Cancel":
            draft = await bulletin_for(ctx, alert, poster)
        withdrawn = await _withdraw(
            ctx, referenced, f"{alert.msg_type} {alert.identifier} from {alert.sender}"
        )
    outcome: Outcome = "not_aired" if reason is not None else "cancelled"
    bulletin_id: str | None = None
    published = None
    try:
        async with ctx.db.transaction() as tx:
            if draft is not None:
                bulletin_id = await bulletins.insert(tx, draft, ctx)
                if draft.priority is Priority.EMERGENCY and poster.policy == "auto":
                    published = await bulletins.publish_in(tx, ctx, bulletin_id)
                    await ctx.audit(tx, "emergency.start", bulletin_id, draft.title)
                    outcome = "published"
                else:
                    await bulletins.submit_in(
                        tx, ctx, bulletin_id, f"CAP {alert.identifier} from {alert.sender}"
                    )
                    outcome = "review"
            taken = TakenAlert(
                sender=alert.sender,
                identifier=alert.identifier,
                sent=alert.sent,
                msg_type=alert.msg_type,
                posted_by=poster.account,
                bulletin_id=bulletin_id,
                outcome=outcome,
                received_at=ctx.now,
            )
            if not await store.take(tx, taken):
                raise _AlreadyTaken
            await ctx.audit(
                tx,
                "cap.take",
                f"{alert.sender},{alert.identifier},{capdef.format_datetime(alert.sent)}",
                reason,
                after={
                    "msg_type": alert.msg_type,
                    "outcome": outcome,
                    "bulletin": bulletin_id,
                    "withdrawn": withdrawn,
                    "source_level": poster.source_level,
                },
            )
    except _AlreadyTaken:
        # Taken meanwhile by a request that raced this one: its answer stands.
        again = await store.taken(ctx.db, alert.sender, alert.identifier, alert.sent)
        assert again is not None
        return await _answer(ctx, alert, again, new=False)
    if published is not None:
        await bulletins.announce_publish(ctx, published)
    return await _answer(ctx, alert, taken, new=True, withdrawn=withdrawn, reason=reason)


async def _answer(
    ctx: Ctx,
    alert: CapAlert,
    taken: TakenAlert,
    *,
    new: bool,
    withdrawn: list[str] | None = None,
    reason: str | None = None,
) -> CapOut:
    bulletin = None
    if taken.bulletin_id is not None:
        bulletin = await bulletins.bulletin_out(ctx, taken.bulletin_id)
    return CapOut(
        identifier=alert.identifier,
        sender=alert.sender,
        sent=alert.sent,
        msg_type=alert.msg_type,
        outcome=taken.outcome,  # type: ignore[arg-type]
        reason=reason
        if new
        else (_not_aired_reason(alert) if taken.outcome == "not_aired" else None),
        bulletin=bulletin,
        withdrawn=withdrawn or [],
        new=new,
    )


class CapQuery(BaseModel):
    source_level: Literal["central", "province"] | None = None


@routes.post(
    "/api/v1/cap",
    summary="Take an OASIS CAP 1.2 alert (application/cap+xml). Admins and reviewers (session"
    " token) and sender accounts (their own token, `hub sender add`) post; an"
    " Immediate/Expected + Extreme/Severe alert airs now as an emergency (a sender with policy"
    " review: into the review queue), anything else goes to the review queue. 201 when taken,"
    " 200 when the same identifier+sender+sent was taken before (nothing changes)",
    permission=Permission.BULLETINS_REVIEW,
    authenticate=authenticate_poster,
    query=CapQuery,
    raw_body=list(CAP_TYPES),
    response=CapOut,
    status=201,
    response_content={
        "200": {
            "description": "Taken before: what became of it then; nothing changed",
            "content": {"application/json": {"schema": CapOut}},
        }
    },
    errors=[400, 403, 413, 415, 422, 503],
)
async def post_cap(ctx: Ctx) -> CapOut | web.Response:
    query: CapQuery = ctx.query
    poster = _poster(ctx, query.source_level)
    request = ctx.request
    if request.content_type not in CAP_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send CAP as {', '.join(CAP_TYPES)}, not {request.content_type}",
        )
    limit = ctx.config.cap_max_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"a CAP alert is limited to {limit} bytes")
    raw = await request.read()
    if len(raw) > limit:
        raise ApiError(413, "too_large", f"a CAP alert is limited to {limit} bytes")
    if not raw.strip():
        raise ApiError(400, "bad_xml", "the body is empty")
    answer = await take_alert(ctx, raw, poster)
    if not answer.new:
        return web.Response(
            body=answer.model_dump_json(), status=200, content_type="application/json"
        )
    return answer


# ---------------------------------------------------------------- out: the hub's own feed


def _el(parent: ET.Element, name: str, text: str | None = None, ns: str = capdef.NS) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        element.text = text
    return element


def cap_identifier(bulletin_id: str, cancelled: bool) -> str:
    return f"loa-{bulletin_id}" + ("-cancel" if cancelled else "")


@dataclass(frozen=True)
class FeedItem:
    bulletin_id: str
    title: str
    text: str | None
    published_at: datetime
    valid_until: datetime
    cancelled_at: datetime | None
    province: bool
    #: (name, admin_code) of each commune it targets.
    communes: list[tuple[str, str | None]]


def alert_element(item: FeedItem, config: HubConfig) -> ET.Element:
    """One CAP 1.2 alert for a bulletin the loudspeakers air (or aired, until cancelled)."""
    sent = item.published_at.astimezone(VN_TZ)
    alert = ET.Element(f"{{{capdef.NS}}}alert")
    cancelled = item.cancelled_at is not None
    _el(alert, "identifier", cap_identifier(item.bulletin_id, cancelled))
    _el(alert, "sender", config.cap_sender)
    when = item.cancelled_at.astimezone(VN_TZ) if item.cancelled_at else sent
    _el(alert, "sent", capdef.format_datetime(when))
    _el(alert, "status", "Actual")
    _el(alert, "msgType", "Cancel" if cancelled else "Alert")
    _el(alert, "scope", "Public")
    if cancelled:
        original = cap_identifier(item.bulletin_id, False)
        _el(alert, "references", f"{config.cap_sender},{original},{capdef.format_datetime(sent)}")
    info = _el(alert, "info")
    _el(info, "language", "vi-VN")
    _el(info, "category", "Safety")
    _el(info, "event", item.title)
    _el(info, "urgency", "Immediate")
    _el(info, "severity", "Severe")
    _el(info, "certainty", "Observed")
    _el(info, "expires", capdef.format_datetime(item.valid_until.astimezone(VN_TZ)))
    _el(info, "headline", item.title)
    _el(info, "description", item.text or item.title)
    areas = (
        [(config.province_name or "Toàn tỉnh", config.province_code)]
        if item.province
        else item.communes
    )
    for name, code in areas:
        area = _el(info, "area")
        _el(area, "areaDesc", name)
        if code:
            geocode = _el(area, "geocode")
            _el(geocode, "valueName", DVHC)
            _el(geocode, "value", code)
    return alert


ATOM = "http://www.w3.org/2005/Atom"


def atom_feed(items: list[FeedItem], config: HubConfig, now: datetime, self_url: str) -> bytes:
    ET.register_namespace("", ATOM)
    ET.register_namespace("cap", capdef.NS)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _el(feed, "id", f"urn:loa:{config.cap_sender}:cap", ATOM)
    _el(feed, "title", "Loa: cảnh báo khẩn cấp / emergency alerts", ATOM)
    updated = max([now.astimezone(VN_TZ)] if not items else [i.published_at for i in items])
    _el(feed, "updated", capdef.format_datetime(updated.astimezone(VN_TZ)), ATOM)
    link = _el(feed, "link", None, ATOM)
    link.set("rel", "self")
    link.set("href", self_url)
    author = _el(feed, "author", None, ATOM)
    _el(author, "name", config.cap_sender, ATOM)
    for item in items:
        entry = _el(feed, "entry", None, ATOM)
        cancelled = item.cancelled_at is not None
        _el(entry, "id", f"urn:loa:{cap_identifier(item.bulletin_id, cancelled)}", ATOM)
        _el(entry, "title", item.title, ATOM)
        changed = item.cancelled_at or item.published_at
        _el(entry, "updated", capdef.format_datetime(changed.astimezone(VN_TZ)), ATOM)
        content = _el(entry, "content", None, ATOM)
        content.set("type", "application/cap+xml")
        content.append(alert_element(item, config))
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return body


async def feed_items(db: Database, now: datetime) -> list[FeedItem]:
    speaker_kinds = KINDS_FOR_DEVICE[DeviceKind.SPEAKER]
    found = await bulletin_store.aired_emergencies(db, now, now - FEED_CANCELLED_MEMORY)
    targets = await bulletin_store.targets_of(db, [b.id for b in found])
    names = {c.code: (c.name, c.admin_code) for c in await communes.every_commune(db)}
    items = []
    for b in found:
        if b.content.kind not in speaker_kinds or b.published_at is None:
            continue
        items.append(
            FeedItem(
                bulletin_id=b.id,
                title=b.content.title,
                text=b.content.text,
                published_at=b.published_at,
                valid_until=b.content.schedule.valid_until,
                cancelled_at=b.cancelled_at,
                province=b.target_all,
                communes=[names[c] for c in targets[b.id].communes if c in names],
            )
        )
    return items


@routes.get(
    "/api/v1/cap/feed.atom",
    summary="The hub's emergencies as CAP 1.2 alerts in Atom, for other systems to take:"
    " only what the loudspeakers air (in force, or cancelled within a day as Cancel)",
    auth="public",
    response_content={
        "200": {
            "description": "Atom feed, one CAP 1.2 alert per entry",
            "content": {"application/atom+xml": {"schema": {"type": "string"}}},
        }
    },
)
async def cap_feed(ctx: Ctx) -> web.Response:
    now = ctx.now
    items = await feed_items(ctx.db, now)
    body = atom_feed(items, ctx.config, now, str(ctx.request.url))
    return web.Response(
        body=body,
        content_type="application/atom+xml",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=30"},
    )


# ---------------------------------------------------------------- outside a request


class BackgroundCtx(Ctx):
    """A Ctx for work the hub starts itself (the feed poller): the app's parts, no request;
    audit records carry no address."""

    def __init__(self, app: web.Application, user: User) -> None:
        super().__init__(None, None, None, user, None)  # type: ignore[arg-type]
        self._app = app

    @property
    def app(self) -> web.Application:
        return self._app

    @property
    def db(self) -> Database:
        return self._app[DB]

    @property
    def config(self) -> HubConfig:
        return self._app[CONFIG]

    @property
    def connections(self) -> Connections:
        return self._app[CONNECTIONS]

    @property
    def keyring(self) -> HubKeyring:
        return self._app[KEYRING]

    @property
    def now(self) -> datetime:
        return self._app[CLOCK]()

    @property
    def address(self) -> str | None:
        return None

    def path(self, name: str) -> str:
        raise RuntimeError("no request")


def sender_poster(sender: Sender) -> Poster:
    user = sender_user(sender)
    return Poster(
        user=user,
        policy="auto" if sender.policy == "auto" else "review",
        source_level="central" if sender.source_level == "central" else "province",
        account=user.username,
        operator=False,
    )


# ---------------------------------------------------------------- sender accounts


async def add_sender(
    db: Database, name: str, policy: Policy, source_level: str, *, now: datetime
) -> str:
    """A new sender account; returns its token (shown once, stored hashed)."""
    token = new_token()
    async with db.transaction() as tx:
        if await store.sender(tx, name) is not None:
            raise ApiError(409, "exists", f"sender {name!r} already exists")
        await store.add_sender(
            tx, name, sha256_hex(token), policy=policy, source_level=source_level, at=now
        )
        await audit_log.append(
            tx,
            "cli",
            None,
            "cap.sender_add",
            name,
            at=now,
            after={"policy": policy, "source_level": source_level},
        )
    return token


async def _sender_named(db: Database, name: str) -> Sender:
    sender = await store.sender(db, name)
    if sender is None:
        raise ApiError(404, "not_found", f"no sender {name!r}")
    return sender


async def renew_sender_token(db: Database, name: str, *, now: datetime) -> str:
    """A new token for a sender account; the old one stops working."""
    await _sender_named(db, name)
    token = new_token()
    async with db.transaction() as tx:
        await store.set_sender_token(tx, name, sha256_hex(token))
        await audit_log.append(tx, "cli", None, "cap.sender_token", name, at=now)
    return token


async def disable_sender(db: Database, name: str, *, now: datetime) -> None:
    await _sender_named(db, name)
    async with db.transaction() as tx:
        await store.disable_sender(tx, name)
        await audit_log.append(tx, "cli", None, "cap.sender_disable", name, at=now)


async def add_feed(db: Database, url: str, sender: str, every_s: int, *, now: datetime) -> None:
    """Poll `url` every `every_s` seconds as the sender account `sender`."""
    # The address is checked at each fetch, against the allowed networks `hub serve` has.
    try:
        check_form(url)
    except OutboundRefused as exc:
        raise field_error(422, "validation_error", "url", str(exc)) from exc
    if every_s < MIN_INTERVAL_S:
        raise field_error(422, "validation_error", "every", f"at least {MIN_INTERVAL_S} seconds")
    await _sender_named(db, sender)
    async with db.transaction() as tx:
        if await store.feed(tx, url) is not None:
            raise ApiError(409, "exists", f"feed {url!r} is already polled")
        await store.add_feed(tx, url, sender, every_s, now)
        await audit_log.append(
            tx, "cli", None, "cap.feed_add", url, at=now, after={"sender": sender, "every": every_s}
        )


async def remove_feed(db: Database, url: str, *, now: datetime) -> None:
    async with db.transaction() as tx:
        if await store.feed(tx, url) is None:
            raise ApiError(404, "not_found", f"no feed {url!r}")
        await store.remove_feed(tx, url)
        await audit_log.append(tx, "cli", None, "cap.feed_remove", url, at=now)
