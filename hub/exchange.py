"""Hub-to-hub exchange: the same hub software as the upper level (the central HTTTN, or a
neighbouring province) and as the level below it. The format is docs/exchange.md.

Upper hub: `hub downstream add NAME` gives a lower hub its token. `GET /api/v1/exchange/feed`
answers the upper hub's own province-level bulletins in force (and those cancelled within a
day) as one JSON document signed with the hub's Ed25519 key, each emergency also as CAP 1.2;
`GET /api/v1/exchange/media/{sha256}` serves their media; `POST /api/v1/exchange/reports`
takes the monthly reports the lower hubs submitted, listed by `GET /api/v1/exchange/reports`.

Lower hub: `hub upstream add URL --token T --policy auto|review [--key-id ID]`. The hub polls
each upstream (hub/outbound.py: its retries and address rules), pins the upper hub's key at
first contact (or checks the one given), refuses a feed whose signature does not verify, and
takes each new item as a bulletin of source level "central" for every commune: an emergency
airs at once whatever the policy; anything else is published ("auto") or put in the review
queue ("review"). An item cancelled above is cancelled here (returned, if still in review).
After the items, each province report submitted here (hub/reports.py) and not yet delivered
is sent up. Every step is audited under the actor "upstream:<url>".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from typing import Literal
from xml.etree import ElementTree as ET

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from loa_contract import (
    BulletinKind,
    HubKey,
    Priority,
    Sha256,
    SignatureError,
    SignedEnvelope,
    TrustedKeys,
)

from . import bulletins
from .appkeys import CLOCK, CONFIG, DB, PROBES
from .auth import PROVINCE, Permission, Role, User, authenticate_operator
from .bulletins import BulletinCreate, ScheduleIn, TargetsIn
from .cap import BackgroundCtx, FeedItem, alert_element
from .categories import CATEGORIES
from .db import Database
from .domain.lifecycle import Action, BulletinState
from .errors import ApiError, field_error
from .media import keep_bytes
from .node_objects import object_response
from .outbound import Outbound, OutboundError, check_form
from .reports import MonthlyReport
from .routing import Ctx, RouteTable
from .security import new_token, sha256_hex
from .store import audit as audit_log
from .store import bulletins as bulletin_store
from .store import communes, media
from .store import exchange as store
from .store.exchange import ReceivedReport, Upstream

log = logging.getLogger(__name__)

routes = RouteTable("exchange")

#: The format's version: a lower hub refuses a feed of another.
FORMAT = 1
#: Cancelled items stay in the feed this long, so a lower hub that was away learns of them.
CANCELLED_MEMORY = timedelta(days=1)
#: The largest feed document and media file a lower hub takes.
FEED_MAX_BYTES = 8 * 1024 * 1024
DOWNSTREAM = web.RequestKey("downstream", str)
UPSTREAM_PREFIX = "upstream:"


# ---------------------------------------------------------------- the format


class ExchangeMedia(BaseModel):
    sha256: Sha256
    size: int
    mime: str


class ExchangeItem(BaseModel):
    """One bulletin offered down. The lower hub keys it by `id`."""

    model_config = ConfigDict(extra="ignore")

    id: str
    state: Literal["published", "cancelled"]
    title: str
    kind: BulletinKind
    priority: Priority
    text: str | None
    media: ExchangeMedia | None
    valid_from: datetime
    valid_until: datetime
    category: str | None
    published_at: datetime
    cancelled_at: datetime | None
    #: For an emergency: the same as a CAP 1.2 alert (XML), for systems that speak CAP.
    cap: str | None = None


class ExchangeFeed(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: int = FORMAT
    #: The upper hub's name (its CAP sender).
    hub: str
    generated_at: datetime
    items: list[ExchangeItem]


# ---------------------------------------------------------------- the upper hub


async def authenticate_downstream(request: web.Request) -> User:
    """A lower hub's token, else an operator's session (so an admin can read the feed)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        name = await store.downstream_by_token(request.app[DB], sha256_hex(token.strip()))
        if name is not None:
            request[DOWNSTREAM] = name
            return User(
                id=0,
                username=f"downstream:{name}",
                role=Role.VIEWER,
                unit=PROVINCE,
                must_change_password=False,
            )
    return await authenticate_operator(request)


async def feed_document(db: Database, config_sender: str, now: datetime) -> ExchangeFeed:
    items = []
    for b in await bulletin_store.offered_down(db, now, now - CANCELLED_MEMORY):
        content = b.content
        assert b.published_at is not None
        items.append(
            ExchangeItem(
                id=b.id,
                state="cancelled" if b.state is BulletinState.CANCELLED else "published",
                title=content.title,
                kind=content.kind,
                priority=content.priority,
                text=content.text,
                media=ExchangeMedia(
                    sha256=content.media.sha256, size=content.media.size, mime=content.media.mime
                )
                if content.media
                else None,
                valid_from=content.schedule.valid_from,
                valid_until=content.schedule.valid_until,
                category=content.category,
                published_at=b.published_at,
                cancelled_at=b.cancelled_at,
            )
        )
    return ExchangeFeed(hub=config_sender, generated_at=now, items=items)


@routes.get(
    "/api/v1/exchange/keys",
    summary="The keys this hub signs its exchange feed with (a lower hub pins one)",
    auth="public",
    response=list[HubKey],
)
async def exchange_keys(ctx: Ctx) -> list[HubKey]:
    return ctx.keyring.hub_keys()


@routes.get(
    "/api/v1/exchange/feed",
    summary="For a lower hub (its token from `hub downstream add`): this hub's province-level"
    " bulletins in force and those cancelled within a day, signed (docs/exchange.md)",
    permission=Permission.READ,
    authenticate=authenticate_downstream,
    response=SignedEnvelope,
)
async def exchange_feed(ctx: Ctx) -> SignedEnvelope:
    feed = await feed_document(ctx.db, ctx.config.cap_sender, ctx.now)
    for item in feed.items:
        if item.priority is Priority.EMERGENCY:
            element = alert_element(
                FeedItem(
                    bulletin_id=item.id,
                    title=item.title,
                    text=item.text,
                    published_at=item.published_at,
                    valid_until=item.valid_until,
                    cancelled_at=item.cancelled_at,
                    province=True,
                    communes=[],
                ),
                ctx.config,
            )
            item.cap = ET.tostring(element, encoding="unicode")
    return ctx.keyring.signer.sign(feed)


@routes.get(
    "/api/v1/exchange/media/{sha256}",
    summary="For a lower hub: the media of a bulletin in the exchange feed",
    permission=Permission.READ,
    authenticate=authenticate_downstream,
    errors=[404],
    response_content={
        "200": {
            "description": "The file",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def exchange_media(ctx: Ctx) -> web.StreamResponse:
    sha = ctx.path("sha256")
    mime = await bulletin_store.media_offered_down(ctx.db, sha, ctx.now)
    if mime is None:
        raise ApiError(404, "not_found", "no such media in the feed")
    return await object_response(ctx, "media", sha, mime)


class ReceivedOut(BaseModel):
    downstream: str
    scope: str
    first_day: date
    last_day: date
    received_at: datetime
    report: MonthlyReport


@routes.post(
    "/api/v1/exchange/reports",
    summary="For a lower hub: a monthly report it submitted (hub/reports.py), sent up. The"
    " same period twice is 200 and changes nothing",
    permission=Permission.READ,
    authenticate=authenticate_downstream,
    body=MonthlyReport,
    response=ReceivedOut,
    status=201,
    errors=[403],
)
async def receive_report(ctx: Ctx) -> ReceivedOut | web.Response:
    name = ctx.request.get(DOWNSTREAM)
    if name is None:
        raise ApiError(403, "forbidden", "only a lower hub (its exchange token) sends reports")
    report: MonthlyReport = ctx.body
    if report.submitted_at is None:
        raise field_error(422, "validation_error", "submitted_at", "send a submitted report")
    received = ReceivedReport(
        downstream=name,
        scope=report.commune or PROVINCE,
        first_day=report.first_day,
        last_day=report.last_day,
        report_json=report.model_dump_json(),
        received_at=ctx.now,
    )
    async with ctx.db.transaction() as tx:
        new = await store.receive_report(tx, received)
        if new:
            await ctx.audit(
                tx, "exchange.report_received", name, f"{report.first_day}..{report.last_day}"
            )
    out = ReceivedOut(
        downstream=name,
        scope=received.scope,
        first_day=received.first_day,
        last_day=received.last_day,
        received_at=received.received_at,
        report=report,
    )
    if not new:
        return web.Response(body=out.model_dump_json(), content_type="application/json")
    return out


@routes.get(
    "/api/v1/exchange/reports",
    summary="The monthly reports the lower hubs sent up, newest period first",
    permission=Permission.FLEET_READ,
    response=list[ReceivedOut],
    errors=[403],
)
async def received_reports(ctx: Ctx) -> list[ReceivedOut]:
    if not ctx.user.province_wide:
        raise ApiError(403, "forbidden", "reports from lower hubs are the province's")
    return [
        ReceivedOut(
            downstream=r.downstream,
            scope=r.scope,
            first_day=r.first_day,
            last_day=r.last_day,
            received_at=r.received_at,
            report=MonthlyReport.model_validate_json(r.report_json),
        )
        for r in await store.received_reports(ctx.db)
    ]


async def add_downstream(db: Database, name: str, *, now: datetime) -> str:
    """A lower hub's account; returns its token (shown once, stored hashed)."""
    token = new_token()
    async with db.transaction() as tx:
        if await store.downstream_exists(tx, name):
            raise ApiError(409, "exists", f"downstream {name!r} already exists")
        await store.add_downstream(tx, name, sha256_hex(token), now)
        await audit_log.append(tx, "cli", None, "exchange.downstream_add", name, at=now)
    return token


# ---------------------------------------------------------------- the lower hub


async def add_upstream(
    db: Database, url: str, token: str, policy: str, key_id: str | None, *, now: datetime
) -> None:
    try:
        check_form(url)
    except OutboundError as exc:
        raise field_error(422, "validation_error", "url", str(exc)) from exc
    url = url.rstrip("/")
    async with db.transaction() as tx:
        if await store.upstream(tx, url) is not None:
            raise ApiError(409, "exists", f"upstream {url!r} already exists")
        await store.add_upstream(tx, url, token, policy, key_id, now)
        await audit_log.append(
            tx, "cli", None, "exchange.upstream_add", url, at=now, after={"policy": policy}
        )


async def remove_upstream(db: Database, url: str, *, now: datetime) -> None:
    async with db.transaction() as tx:
        if await store.upstream(tx, url.rstrip("/")) is None:
            raise ApiError(404, "not_found", f"no upstream {url!r}")
        await store.remove_upstream(tx, url.rstrip("/"))
        await audit_log.append(tx, "cli", None, "exchange.upstream_remove", url, at=now)


def _upstream_user(upstream: Upstream) -> User:
    return User(
        id=0,
        username=f"{UPSTREAM_PREFIX}{upstream.url}",
        role=Role.REVIEWER,
        unit=PROVINCE,
        must_change_password=False,
    )


async def _trusted(app: web.Application, upstream: Upstream, fetcher: Outbound) -> TrustedKeys:
    """The upper hub's key: pinned at first contact (checked against --key-id when given)."""
    if upstream.public_key is not None and upstream.key_id is not None:
        return TrustedKeys([HubKey(key_id=upstream.key_id, public_key=upstream.public_key)])
    fetched = await fetcher.fetch(f"{upstream.url}/api/v1/exchange/keys")
    try:
        keys = [HubKey.model_validate(k) for k in json.loads(fetched.body)]
    except (ValueError, ValidationError) as exc:
        raise OutboundError(f"the upper hub's keys are not readable: {exc}") from exc
    if upstream.key_id is not None:
        keys = [k for k in keys if k.key_id == upstream.key_id]
        if not keys:
            raise OutboundError(f"the upper hub does not offer key {upstream.key_id}")
    if not keys:
        raise OutboundError("the upper hub offers no key")
    key = keys[0]
    async with app[DB].transaction() as tx:
        await store.pin_key(tx, upstream.url, key.key_id, key.public_key)
        await audit_log.append(
            tx, "system", None, "exchange.key_pinned", upstream.url, key.key_id, at=app[CLOCK]()
        )
    return TrustedKeys([key])


def _category(code: str | None) -> str | None:
    return code if code in {c.code for c in CATEGORIES} else None


async def _media(ctx: BackgroundCtx, upstream: Upstream, item: ExchangeItem) -> str | None:
    if item.media is None:
        return None
    if await media.mime_of(ctx.db, item.media.sha256) is None:
        fetcher = Outbound.from_config(ctx.config, FEED_MAX_BYTES)
        fetched = await fetcher.fetch(
            f"{upstream.url}/api/v1/exchange/media/{item.media.sha256}",
            {"Authorization": f"Bearer {upstream.token}"},
        )
        if hashlib.sha256(fetched.body).hexdigest() != item.media.sha256:
            raise OutboundError(f"item {item.id}: the media does not match its sha256")
        async with ctx.app[PROBES]:
            kept = await asyncio.to_thread(keep_bytes, ctx.config.media_dir, fetched.body)
        if kept.record is None:
            why = kept.problem or "not a type the hub takes"
            raise OutboundError(f"item {item.id}: the media is refused: {why}")
        async with ctx.db.transaction() as tx:
            await media.add(tx, kept.record, unit=PROVINCE, at=ctx.now)
    return item.media.sha256


async def _take_new(ctx: BackgroundCtx, upstream: Upstream, item: ExchangeItem) -> str:
    """Make the item a bulletin here; returns "published" or "review"."""
    emergency = item.priority is Priority.EMERGENCY
    every = [c.code for c in await communes.every_commune(ctx.db)]
    if not every:
        raise OutboundError("this hub has no commune to take bulletins for")
    now = ctx.now
    sha = await _media(ctx, upstream, item)
    draft = BulletinCreate(
        title=item.title[:300],
        kind=item.kind,
        priority=item.priority,
        text=item.text,
        media=sha,
        targets=TargetsIn() if emergency else TargetsIn(communes=every),
        schedule=ScheduleIn(
            valid_from=max(item.valid_from, now),
            valid_until=item.valid_until,
            repeats=bulletins.PROVINCE_EMERGENCY_REPEATS if emergency else 1,
            interval_s=bulletins.EMERGENCY_INTERVAL_S if emergency else 0,
        ),
        category=_category(item.category),
        source_level="central",
    )
    published = None
    async with ctx.db.transaction() as tx:
        # Another node of this hub may have taken it meanwhile: the write lock decides.
        if await store.taken_item(tx, upstream.url, item.id) is not None:
            return "already taken"
        bulletin_id = await bulletins.insert(tx, draft, ctx)
        if emergency or upstream.policy == "auto":
            published = await bulletins.publish_in(tx, ctx, bulletin_id)
            outcome = "published"
        else:
            await bulletins.submit_in(tx, ctx, bulletin_id, f"from {upstream.url}")
            outcome = "review"
        await store.take_item(tx, upstream.url, item.id, bulletin_id, "published", now)
        await ctx.audit(tx, "exchange.take", bulletin_id, f"{upstream.url} {item.id} {outcome}")
    if published is not None:
        await bulletins.announce_publish(ctx, published)
    return outcome


async def _take_cancel(ctx: BackgroundCtx, upstream: Upstream, item_id: str, local: str) -> None:
    bulletin = await bulletin_store.get(ctx.db, local)
    if bulletin is not None and bulletin.state is BulletinState.PUBLISHED:
        await bulletins.cancel_as(ctx, local)
    elif bulletin is not None and bulletin.state is BulletinState.SUBMITTED:
        why = f"cancelled by {upstream.url}"
        async with ctx.db.transaction() as tx:
            await bulletin_store.mark_returned(tx, local, why)
            await bulletins.record_event(
                tx, ctx, local, Action.RETURN, bulletin.state, BulletinState.RETURNED, why
            )
    async with ctx.db.transaction() as tx:
        await store.take_item(tx, upstream.url, item_id, local, "cancelled", ctx.now)


async def poll_upstream(app: web.Application, upstream: Upstream) -> list[str]:
    """Take the upper hub's feed once and send up the reports due; what happened, per item
    and report (for logs and tests). Raises OutboundError when the feed cannot be had."""
    config = app[CONFIG]
    fetcher = Outbound.from_config(config, FEED_MAX_BYTES)
    auth = {"Authorization": f"Bearer {upstream.token}"}
    keys = await _trusted(app, upstream, fetcher)
    fetched = await fetcher.fetch(f"{upstream.url}/api/v1/exchange/feed", auth)
    try:
        feed = keys.open(fetched.body, ExchangeFeed)
    except SignatureError as exc:
        raise OutboundError(f"the feed's signature does not verify: {exc}") from exc
    if feed.format != FORMAT:
        raise OutboundError(f"exchange format {feed.format}, this hub speaks {FORMAT}")
    ctx = BackgroundCtx(app, _upstream_user(upstream))
    taken = await store.taken_items(app[DB], upstream.url)
    outcomes: list[str] = []
    for item in feed.items:
        before = taken.get(item.id)
        try:
            if before is None and item.state == "published":
                outcomes.append(f"{item.id}: {await _take_new(ctx, upstream, item)}")
            elif before is not None and item.state == "cancelled" and before.state != "cancelled":
                if before.bulletin_id is not None:
                    await _take_cancel(ctx, upstream, item.id, before.bulletin_id)
                outcomes.append(f"{item.id}: cancelled")
        except (ApiError, OutboundError) as exc:
            log.warning("upstream %s: item %s not taken: %s", upstream.url, item.id, exc)
            outcomes.append(f"{item.id}: refused")
    outcomes += await _send_reports(app, upstream, fetcher, auth)
    return outcomes


async def _send_reports(
    app: web.Application, upstream: Upstream, fetcher: Outbound, auth: dict[str, str]
) -> list[str]:
    db = app[DB]
    sent = []
    for scope, first, last, report_json in await store.undelivered(db, upstream.url):
        try:
            await fetcher.post_json(
                f"{upstream.url}/api/v1/exchange/reports", report_json.encode(), auth
            )
        except OutboundError as exc:
            sent.append(f"report {first}: {exc}")
            continue
        async with db.transaction() as tx:
            await store.delivered(tx, upstream.url, scope, first, last, app[CLOCK]())
            await audit_log.append(
                tx,
                "system",
                None,
                "exchange.report_sent",
                upstream.url,
                f"{first}..{last}",
                at=app[CLOCK](),
            )
        sent.append(f"report {first}: sent")
    return sent


async def poll_all(app: web.Application) -> None:
    db = app[DB]
    for upstream in await store.upstreams(db):
        error = None
        try:
            outcomes = await poll_upstream(app, upstream)
            log.info("upstream %s: %s", upstream.url, ", ".join(outcomes) or "nothing new")
        except OutboundError as exc:
            error = str(exc)
            log.warning("upstream %s: %s", upstream.url, exc)
        async with db.transaction() as tx:
            await store.polled(tx, upstream.url, app[CLOCK](), error)


async def upstream_context(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
        every = app[CONFIG].exchange_interval.total_seconds()
        while True:
            try:
                await poll_all(app)
            except Exception:
                log.exception("upstream poll failed; trying again at the next one")
            await asyncio.sleep(every)

    task = asyncio.create_task(loop(), name="upstream exchange")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
