"""CAP feeds the hub polls (`hub cap-feed add URL --sender NAME`): a CAP alert, or an Atom
feed whose entries carry CAP alerts inline (`<content type="application/cap+xml">`) or link
to them (`<link type="application/cap+xml">`, else the entry's alternate link).

Each alert is taken as if its sender account had posted it (hub/cap.py: its policy, its
source level; idempotent on identifier + sender + sent). An entry is remembered once taken
(by its id and updated time), so a feed's old entries are not fetched again; an entry whose
alert is refused (invalid, an area that names nothing here) is remembered too, with the
refusal in the log: asking again would change nothing. Fetches
go through hub/outbound.py (its retry policy, its address rules). Every node polls: the
alerts are idempotent, so two nodes taking the same alert make one bulletin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from xml.etree import ElementTree as ET

from aiohttp import web

from .appkeys import CLOCK, CONFIG, DB
from .cap import ATOM, BackgroundCtx, Poster, parse_xml, sender_poster, take_alert
from .domain import cap as capdef
from .errors import ApiError
from .outbound import Outbound, OutboundError
from .store import cap as store
from .store.cap import Feed

log = logging.getLogger(__name__)


def due(feed: Feed, now: datetime) -> bool:
    return feed.last_polled_at is None or now - feed.last_polled_at >= timedelta(
        seconds=feed.interval_s
    )


def _entry_alert_refs(entry: ET.Element) -> tuple[ET.Element | None, str | None]:
    """The alert inline in an Atom entry, else the URL of its CAP link."""
    for element in entry.iter(f"{{{capdef.NS}}}alert"):
        return element, None
    links = entry.findall(f"{{{ATOM}}}link")
    for link in links:
        if link.get("type", "").lower() in ("application/cap+xml", "application/xml"):
            return None, link.get("href")
    for link in links:
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return None, link.get("href")
    return None, None


async def poll(app: web.Application, feed: Feed) -> list[str]:
    """Poll one feed now; returns what happened to each alert taken (for logs and tests).
    Raises OutboundError when the feed itself cannot be fetched."""
    config = app[CONFIG]
    db = app[DB]
    sender = await store.sender(db, feed.sender)
    if sender is None or sender.disabled:
        raise OutboundError(f"sender {feed.sender!r} is gone or disabled")
    poster = sender_poster(sender)
    ctx = BackgroundCtx(app, poster.user)
    fetcher = Outbound.from_config(config, config.cap_max_bytes)
    fetched = await fetcher.fetch(feed.url)
    try:
        root = parse_xml(fetched.body)
    except ApiError as exc:
        raise OutboundError(f"{feed.url}: {exc.detail}") from exc
    outcomes: list[str] = []
    if root.tag == f"{{{capdef.NS}}}alert":
        outcomes.append(await _take(ctx, fetched.body, poster))
        return outcomes
    if root.tag != f"{{{ATOM}}}feed":
        raise OutboundError(f"{feed.url}: neither a CAP alert nor an Atom feed")
    for entry in root.findall(f"{{{ATOM}}}entry"):
        key = f"{entry.findtext(f'{{{ATOM}}}id', '')}@{entry.findtext(f'{{{ATOM}}}updated', '')}"
        if await store.entry_taken(db, feed.url, key):
            continue
        inline, href = _entry_alert_refs(entry)
        if inline is not None:
            raw = ET.tostring(inline, encoding="utf-8")
        elif href is not None:
            try:
                raw = (await fetcher.fetch(href)).body
            except OutboundError as exc:
                log.warning("CAP feed %s: entry %s: %s", feed.url, key, exc)
                outcomes.append(f"unavailable: {exc}")
                continue  # not remembered: tried again at the next poll
        else:
            outcomes.append("no alert in the entry")
            raw = None
        if raw is not None:
            outcomes.append(await _take(ctx, raw, poster))
        async with db.transaction() as tx:
            await store.take_entry(tx, feed.url, key, app[CLOCK]())
    return outcomes


async def _take(ctx: BackgroundCtx, raw: bytes, poster: Poster) -> str:
    try:
        answer = await take_alert(ctx, raw, poster)
    except ApiError as exc:
        log.warning("CAP alert refused: %s %s", exc.error, exc.detail)
        return f"refused: {exc.error}"
    return answer.outcome if answer.new else "already taken"


async def poll_due(app: web.Application) -> None:
    now = app[CLOCK]()
    db = app[DB]
    for feed in await store.feeds(db):
        if not due(feed, now):
            continue
        error = None
        try:
            outcomes = await poll(app, feed)
            log.info("CAP feed %s: %s", feed.url, ", ".join(outcomes) or "nothing new")
        except OutboundError as exc:
            error = str(exc)
            log.warning("CAP feed %s: %s", feed.url, exc)
        async with db.transaction() as tx:
            await store.polled(tx, feed.url, app[CLOCK](), error)


async def feeds_context(app: web.Application) -> AsyncIterator[None]:
    """The poller, for as long as the hub runs."""

    async def loop() -> None:
        tick = app[CONFIG].cap_feed_tick.total_seconds()
        while True:
            try:
                await poll_due(app)
            except Exception:
                log.exception("CAP feed poll failed; trying again at the next tick")
            await asyncio.sleep(tick)

    task = asyncio.create_task(loop(), name="cap feeds")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
