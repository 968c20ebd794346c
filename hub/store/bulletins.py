"""Bulletins: their content, targets, state and history, who may see them, and the communes'
running order of priority bulletins.

The states and the moves between them are hub/domain/lifecycle.py's; this module records
what the life cycle decided (`mark_*`, `append_event`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from loa_contract import BulletinKind, ManifestBulletin, Priority, Schedule, Scope

from ..db import from_iso, iso
from ..domain.folding import fold, like_pattern
from ..domain.lifecycle import BulletinState
from .manifests import (
    CONTENT_COLUMNS,
    CONTENT_FROM,
    REACHES_D,
    device_kinds_for,
    manifest_bulletin,
    reaches_commune,
)
from .sql import Reader, Row, Tx, after_key, chunks, key_params, marks


@dataclass(frozen=True)
class Bulletin:
    #: What a device holds of it (the manifest's form).
    content: ManifestBulletin
    state: BulletinState
    #: The unit that owns it: "province", an agency's code or a commune's code.
    unit: str
    #: It targets the whole province (an emergency sent without targets).
    target_all: bool
    review_comment: str | None
    created_by: str | None
    created_at: datetime
    published_at: datetime | None
    cancelled_at: datetime | None

    @property
    def id(self) -> str:
        return self.content.id


_SELECT = (
    f"SELECT {CONTENT_COLUMNS}, b.target_all, b.state, b.unit, b.review_comment, b.created_by,"
    f" b.created_at, b.published_at, b.cancelled_at FROM {CONTENT_FROM}"
)


def _time(text: str | None) -> datetime | None:
    return from_iso(text) if text else None


def _bulletin(row: Row) -> Bulletin:
    return Bulletin(
        content=manifest_bulletin(row),
        state=BulletinState(row["state"]),
        unit=row["unit"],
        target_all=bool(row["target_all"]),
        review_comment=row["review_comment"],
        created_by=row["created_by"],
        created_at=from_iso(row["created_at"]),
        published_at=_time(row["published_at"]),
        cancelled_at=_time(row["cancelled_at"]),
    )


#: A deleted draft is in no list and no page; its history stays in bulletin_events.
_NOT_DELETED = f"b.state <> '{BulletinState.DELETED}'"


async def get(db: Reader, bulletin_id: str) -> Bulletin | None:
    """The bulletin; None for no such bulletin, or a deleted draft."""
    row = await db.fetchone(f"{_SELECT} WHERE b.id = ? AND {_NOT_DELETED}", (bulletin_id,))
    return _bulletin(row) if row is not None else None


# ---------------------------------------------------------------- who sees what


class Viewer(Protocol):
    """Whose eyes a query serves (hub/auth.py's User is one)."""

    @property
    def unit(self) -> str: ...

    @property
    def commune(self) -> str | None: ...

    @property
    def province_wide(self) -> bool: ...


def seen_by(viewer: Viewer) -> tuple[str, dict[str, Any]]:
    """SQL condition on bulletins `b` that keeps what `viewer` may see, and its parameters.

    Province accounts see everything; a commune-bound account its own commune's bulletins, and
    province bulletins once they are published to it (never another commune's, nor drafts
    under review); an agency its own unit's."""
    if viewer.province_wide:
        return "1 = 1", {}
    if viewer.commune is not None:
        reaches = reaches_commune("b.id", target_all="b.target_all", commune=":scope")
        published = f"b.state IN ('{BulletinState.PUBLISHED}', '{BulletinState.CANCELLED}')"
        return f"(b.unit = :scope OR ({published} AND {reaches}))", {"scope": viewer.commune}
    return "b.unit = :scope", {"scope": viewer.unit}


async def visible(db: Reader, bulletin_id: str, viewer: Viewer) -> bool:
    cond, params = seen_by(viewer)
    row = await db.fetchone(
        f"SELECT 1 FROM bulletins b WHERE b.id = :id AND {cond}", {"id": bulletin_id, **params}
    )
    return row is not None


#: Newest first; the id breaks ties between bulletins created in the same microsecond.
LIST_ORDER = ("b.created_at", "b.id")


async def newest(
    db: Reader,
    viewer: Viewer,
    *,
    state: BulletinState | None = None,
    priority: Priority | None = None,
    kind: BulletinKind | None = None,
    unit: str | None = None,
    search: Sequence[str] = (),
    before: tuple[str, str] | None = None,
    limit: int,
) -> list[Bulletin]:
    """Up to `limit` bulletins `viewer` may see, newest first, filtered, after the one whose
    (created_at as stored, id) is `before`. `search`: folded words the title or text must
    all hold."""
    cond, params = seen_by(viewer)
    where = [cond, _NOT_DELETED]
    if state is not None:
        where.append("b.state = :state")
        params["state"] = state.value
    if priority is not None:
        where.append("b.priority = :priority")
        params["priority"] = priority.value
    if kind is not None:
        where.append("b.kind = :kind")
        params["kind"] = kind.value
    if unit:
        where.append("b.unit = :unit")
        params["unit"] = unit
    for i, term in enumerate(search):
        where.append(f"b.search_text LIKE :term{i} ESCAPE '\\'")
        params[f"term{i}"] = like_pattern(term)
    if before is not None:
        where.append(after_key(LIST_ORDER, descending=True))
        params.update(key_params(before))
    rows = await db.fetchall(
        f"{_SELECT} WHERE {' AND '.join(where)} ORDER BY b.created_at DESC, b.id DESC LIMIT :limit",
        {**params, "limit": limit},
    )
    return [_bulletin(r) for r in rows]


def list_key(bulletin: Bulletin) -> tuple[str, str]:
    """A bulletin's place in LIST_ORDER, as `newest` takes it in `before`."""
    return iso(bulletin.created_at), bulletin.id


# ---------------------------------------------------------------- targets


@dataclass(frozen=True)
class Targets:
    communes: list[str]
    devices: list[str]


async def targets(db: Reader, bulletin_id: str) -> Targets:
    """The communes and devices a bulletin names, each sorted."""
    return (await targets_of(db, [bulletin_id]))[bulletin_id]


async def targets_of(db: Reader, bulletin_ids: list[str]) -> dict[str, Targets]:
    """The targets of each bulletin, each list sorted (empty for a bulletin without)."""
    found = {b: Targets([], []) for b in bulletin_ids}
    for chunk in chunks(list(found)):
        for r in await db.fetchall(
            "SELECT bulletin_id, commune FROM bulletin_communes"
            f" WHERE bulletin_id IN ({marks(len(chunk))}) ORDER BY commune",
            chunk,
        ):
            found[r[0]].communes.append(r[1])
        for r in await db.fetchall(
            "SELECT bulletin_id, device_id FROM bulletin_devices"
            f" WHERE bulletin_id IN ({marks(len(chunk))}) ORDER BY device_id",
            chunk,
        ):
            found[r[0]].devices.append(r[1])
    return found


async def set_targets(
    tx: Tx, bulletin_id: str, communes: list[str], devices: list[str], *, target_all: bool
) -> None:
    """Replace what a bulletin targets (a name given twice counts once)."""
    await tx.execute("DELETE FROM bulletin_communes WHERE bulletin_id = ?", (bulletin_id,))
    await tx.execute("DELETE FROM bulletin_devices WHERE bulletin_id = ?", (bulletin_id,))
    await tx.executemany(
        "INSERT INTO bulletin_communes (bulletin_id, commune) VALUES (?, ?) ON CONFLICT DO NOTHING",
        [(bulletin_id, c) for c in communes],
    )
    await tx.executemany(
        "INSERT INTO bulletin_devices (bulletin_id, device_id) VALUES (?, ?)"
        " ON CONFLICT DO NOTHING",
        [(bulletin_id, d) for d in devices],
    )
    await tx.execute(
        "UPDATE bulletins SET target_all = ? WHERE id = ?", (int(target_all), bulletin_id)
    )


async def names_a_target(tx: Tx, bulletin_id: str) -> bool:
    """It names at least one commune or device."""
    for table in ("bulletin_communes", "bulletin_devices"):
        if await tx.fetchone(f"SELECT 1 FROM {table} WHERE bulletin_id = ?", (bulletin_id,)):
            return True
    return False


async def scope(db: Reader, bulletin_id: str) -> Scope:
    """Whom a bulletin targets, as a broadcast command names it (in a transaction: the scope
    just written)."""
    target_all = await db.fetchval("SELECT target_all FROM bulletins WHERE id = ?", (bulletin_id,))
    named = await targets(db, bulletin_id)
    return Scope(province=bool(target_all), communes=named.communes, devices=named.devices)


# ---------------------------------------------------------------- content and state


@dataclass(frozen=True)
class Draft:
    """What a bulletin's author writes, on creation and on each edit."""

    title: str
    kind: BulletinKind
    priority: Priority
    text: str | None
    #: The sha256 of its uploaded media.
    media: str | None
    schedule: Schedule
    display_seconds: float
    category: str | None


async def add(
    tx: Tx,
    bulletin_id: str,
    draft: Draft,
    *,
    source_level: str,
    unit: str,
    created_by: str,
    at: datetime,
) -> None:
    """A new draft, targeting nobody yet."""
    schedule = draft.schedule
    await tx.execute(
        "INSERT INTO bulletins (id, title, kind, priority, text, media_sha256, schedule_json,"
        " valid_from, valid_until, display_seconds, category, source_level, target_all, state,"
        " unit, created_by, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
        (
            bulletin_id,
            draft.title,
            draft.kind.value,
            draft.priority.value,
            draft.text,
            draft.media,
            schedule.model_dump_json(),
            iso(schedule.valid_from),
            iso(schedule.valid_until),
            draft.display_seconds,
            draft.category,
            source_level,
            BulletinState.DRAFT.value,
            unit,
            created_by,
            iso(at),
        ),
    )
    await set_search_text(tx, bulletin_id, draft.title, draft.text)


async def update(tx: Tx, bulletin_id: str, draft: Draft) -> None:
    schedule = draft.schedule
    await tx.execute(
        "UPDATE bulletins SET title = ?, kind = ?, priority = ?, text = ?, media_sha256 = ?,"
        " schedule_json = ?, valid_from = ?, valid_until = ?, display_seconds = ?, category = ?"
        " WHERE id = ?",
        (
            draft.title,
            draft.kind.value,
            draft.priority.value,
            draft.text,
            draft.media,
            schedule.model_dump_json(),
            iso(schedule.valid_from),
            iso(schedule.valid_until),
            draft.display_seconds,
            draft.category,
            bulletin_id,
        ),
    )
    await set_search_text(tx, bulletin_id, draft.title, draft.text)


async def set_search_text(tx: Tx, bulletin_id: str, title: str, text: str | None) -> None:
    """What the search reads: title and text, folded (hub/domain/folding.py)."""
    await tx.execute(
        "UPDATE bulletins SET search_text = ? WHERE id = ?",
        (fold(f"{title} {text or ''}"), bulletin_id),
    )


async def unfolded(db: Reader, limit: int) -> list[tuple[str, str, str | None]]:
    """Up to `limit` bulletins written before search existed: (id, title, text)."""
    rows = await db.fetchall(
        "SELECT id, title, text FROM bulletins WHERE search_text IS NULL LIMIT ?", (limit,)
    )
    return [(r["id"], r["title"], r["text"]) for r in rows]


async def set_review(
    tx: Tx, bulletin_id: str, *, priority: Priority, category: str, schedule: Schedule | None
) -> None:
    """The reviewer's final priority and category, and schedule when it changes one."""
    await tx.execute(
        "UPDATE bulletins SET priority = ?, category = ? WHERE id = ?",
        (priority.value, category, bulletin_id),
    )
    if schedule is not None:
        await tx.execute(
            "UPDATE bulletins SET schedule_json = ?, valid_from = ?, valid_until = ? WHERE id = ?",
            (
                schedule.model_dump_json(),
                iso(schedule.valid_from),
                iso(schedule.valid_until),
                bulletin_id,
            ),
        )


async def mark_submitted(tx: Tx, bulletin_id: str) -> None:
    await tx.execute(
        "UPDATE bulletins SET state = ? WHERE id = ?", (BulletinState.SUBMITTED.value, bulletin_id)
    )


async def mark_returned(tx: Tx, bulletin_id: str, comment: str) -> None:
    await tx.execute(
        "UPDATE bulletins SET state = ?, review_comment = ? WHERE id = ?",
        (BulletinState.RETURNED.value, comment, bulletin_id),
    )


async def mark_published(
    tx: Tx, bulletin_id: str, *, at: datetime, default_category: str, comment: str | None
) -> None:
    """Published at `at`; a bulletin without a category gets `default_category`, and the
    reviewer's comment (if any) replaces the last one."""
    await tx.execute(
        "UPDATE bulletins SET state = ?, published_at = ?, category = COALESCE(category, ?),"
        " review_comment = COALESCE(?, review_comment) WHERE id = ?",
        (BulletinState.PUBLISHED.value, iso(at), default_category, comment, bulletin_id),
    )


async def mark_cancelled(tx: Tx, bulletin_id: str, at: datetime) -> None:
    await tx.execute(
        "UPDATE bulletins SET state = ?, cancelled_at = ? WHERE id = ?",
        (BulletinState.CANCELLED.value, iso(at), bulletin_id),
    )


async def mark_deleted(tx: Tx, bulletin_id: str) -> None:
    """A never-published bulletin thrown away: its targets and its hold on its media go (the
    media may then be deleted too); the row stays for its history."""
    await tx.execute(
        "UPDATE bulletins SET state = ?, media_sha256 = NULL WHERE id = ?",
        (BulletinState.DELETED.value, bulletin_id),
    )
    await tx.execute("DELETE FROM bulletin_communes WHERE bulletin_id = ?", (bulletin_id,))
    await tx.execute("DELETE FROM bulletin_devices WHERE bulletin_id = ?", (bulletin_id,))


async def backdate(tx: Tx, bulletin_id: str, at: datetime) -> None:
    """Move a bulletin's publication and valid_from back to `at` (tests and simulations
    of airings made in the past)."""
    await tx.execute(
        "UPDATE bulletins SET valid_from = ?, published_at = ? WHERE id = ?",
        (iso(at), iso(at), bulletin_id),
    )


async def in_force_emergencies(db: Reader, now: datetime) -> list[Bulletin]:
    """Published emergencies whose valid_until is after `now`, oldest publication first."""
    rows = await db.fetchall(
        f"{_SELECT} WHERE b.state = ? AND b.priority = ? AND b.valid_until > ?"
        " ORDER BY b.published_at",
        (BulletinState.PUBLISHED.value, Priority.EMERGENCY.value, iso(now)),
    )
    return [_bulletin(r) for r in rows]


# ---------------------------------------------------------------- history


@dataclass(frozen=True)
class Event:
    """One step of a bulletin's life: who took which action, when, from which state."""

    at: datetime
    actor: str
    unit: str | None
    action: str
    from_state: BulletinState | None
    to_state: BulletinState
    comment: str | None


async def append_event(tx: Tx, bulletin_id: str, event: Event) -> None:
    await tx.execute(
        "INSERT INTO bulletin_events (bulletin_id, at, actor, unit, action, from_state, to_state,"
        " comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            bulletin_id,
            iso(event.at),
            event.actor,
            event.unit,
            event.action,
            event.from_state.value if event.from_state is not None else None,
            event.to_state.value,
            event.comment,
        ),
    )


async def events(db: Reader, bulletin_id: str) -> list[Event]:
    """A bulletin's history, oldest first."""
    rows = await db.fetchall(
        "SELECT at, actor, unit, action, from_state, to_state, comment FROM bulletin_events"
        " WHERE bulletin_id = ? ORDER BY id",
        (bulletin_id,),
    )
    return [
        Event(
            at=from_iso(r["at"]),
            actor=r["actor"],
            unit=r["unit"],
            action=r["action"],
            from_state=BulletinState(r["from_state"]) if r["from_state"] else None,
            to_state=BulletinState(r["to_state"]),
            comment=r["comment"],
        )
        for r in rows
    ]


# ---------------------------------------------------------------- emergencies, device by device


@dataclass(frozen=True)
class AiringDevice:
    """A device an emergency reaches, with what it reported of it."""

    id: str
    commune: str
    name: str
    last_seen: datetime | None
    #: Its newest health sample as it sent it (JSON), or {}.
    health: dict[str, Any]
    #: When it first reported playing the bulletin (proof of play), if it did.
    first_started_at: datetime | None
    #: The outcome of its latest proof of play of the bulletin.
    last_outcome: str | None


async def airing_devices(db: Reader, bulletin_id: str, kind: BulletinKind) -> list[AiringDevice]:
    """Every device the bulletin reaches and can air, by id, with its proof of play: one read
    for the whole fleet (the console polls this every few seconds)."""
    rows = await db.fetchall(
        "WITH first AS (SELECT device_id, MIN(started_at) AS started_at FROM plays"
        " WHERE bulletin_id = :bulletin GROUP BY device_id),"
        # Each device's play that ended last (a tie: the one stored last).
        " last AS (SELECT device_id, outcome FROM (SELECT device_id, outcome,"
        " ROW_NUMBER() OVER (PARTITION BY device_id ORDER BY ended_at DESC, id DESC) AS n"
        " FROM plays WHERE bulletin_id = :bulletin) AS ranked WHERE n = 1)"
        " SELECT d.id, d.commune, d.name, d.last_seen, d.last_health_json,"
        " first.started_at AS first, last.outcome AS outcome FROM devices d"
        " LEFT JOIN first ON first.device_id = d.id LEFT JOIN last ON last.device_id = d.id"
        f" WHERE d.kind IN ({device_kinds_for(kind)}) AND {REACHES_D} ORDER BY d.id",
        {"bulletin": bulletin_id},
    )
    return [
        AiringDevice(
            id=r["id"],
            commune=r["commune"],
            name=r["name"],
            last_seen=_time(r["last_seen"]),
            health=json.loads(r["last_health_json"]) if r["last_health_json"] else {},
            first_started_at=_time(r["first"]),
            last_outcome=r["outcome"],
        )
        for r in rows
    ]


# ---------------------------------------------------------------- a commune's running order


async def running_order(db: Reader, commune: str) -> list[str]:
    """The priority bulletins the commune has placed, first to air first."""
    rows = await db.fetchall(
        "SELECT bulletin_id FROM commune_order WHERE commune = ? ORDER BY position", (commune,)
    )
    return [r[0] for r in rows]


async def running_positions(db: Reader, commune: str) -> dict[str, int]:
    """The place of each priority bulletin the commune has placed (1: airs first)."""
    rows = await db.fetchall(
        "SELECT bulletin_id, position FROM commune_order WHERE commune = ?", (commune,)
    )
    return {r[0]: r[1] for r in rows}


async def set_running_order(tx: Tx, commune: str, bulletin_ids: list[str]) -> None:
    await tx.execute("DELETE FROM commune_order WHERE commune = ?", (commune,))
    await tx.executemany(
        "INSERT INTO commune_order (commune, bulletin_id, position) VALUES (?, ?, ?)",
        [(commune, b, i + 1) for i, b in enumerate(bulletin_ids)],
    )


async def published_priority_for(db: Reader, bulletin_id: str, commune: str) -> Priority | None:
    """The priority of the bulletin if it is published and reaches the commune; else None."""
    reaches = reaches_commune("b.id", target_all="b.target_all", commune=":commune")
    priority = await db.fetchval(
        f"SELECT b.priority FROM bulletins b WHERE b.id = :id AND b.state = :published"
        f" AND {reaches}",
        {"id": bulletin_id, "commune": commune, "published": BulletinState.PUBLISHED.value},
    )
    return Priority(priority) if priority is not None else None


async def aired_emergencies(db: Reader, now: datetime, cancelled_since: datetime) -> list[Bulletin]:
    """Published emergencies in force at `now` and those cancelled since `cancelled_since`,
    newest publication first (the hub's CAP feed)."""
    rows = await db.fetchall(
        f"{_SELECT} WHERE b.priority = ? AND ((b.state = ? AND b.valid_until > ?)"
        " OR (b.state = ? AND b.cancelled_at > ? AND b.published_at IS NOT NULL))"
        " ORDER BY b.published_at DESC",
        (
            Priority.EMERGENCY.value,
            BulletinState.PUBLISHED.value,
            iso(now),
            BulletinState.CANCELLED.value,
            iso(cancelled_since),
        ),
    )
    return [_bulletin(r) for r in rows]


async def from_other_units(db: Reader, commune: str, now: datetime) -> list[Bulletin]:
    """Published bulletins in force at `now` that reach the commune and belong to another
    unit, by priority then start of validity."""
    reaches = reaches_commune("b.id", target_all="b.target_all", commune=":commune")
    rows = await db.fetchall(
        f"{_SELECT} WHERE b.state = 'published' AND b.valid_until > :now AND b.unit <> :commune"
        f" AND {reaches} ORDER BY CASE b.priority WHEN 'emergency' THEN 0"
        " WHEN 'priority' THEN 1 ELSE 2 END, b.valid_from, b.created_at",
        {"now": iso(now), "commune": commune},
    )
    return [_bulletin(r) for r in rows]


async def offered_down(db: Reader, now: datetime, cancelled_since: datetime) -> list[Bulletin]:
    """What a hub offers the hubs below it (hub/exchange.py): its own province-level
    bulletins (not a commune's, nor what it took from a hub above) published and in force
    at `now`, or cancelled since `cancelled_since`; oldest publication first."""
    rows = await db.fetchall(
        f"{_SELECT} WHERE b.unit NOT IN (SELECT code FROM communes)"
        " AND b.source_level <> 'commune' AND b.created_by NOT LIKE 'upstream:%'"
        " AND ((b.state = :published AND b.valid_until > :now)"
        " OR (b.state = :cancelled AND b.cancelled_at > :since AND b.published_at IS NOT NULL))"
        " ORDER BY b.published_at, b.id",
        {
            "published": BulletinState.PUBLISHED.value,
            "cancelled": BulletinState.CANCELLED.value,
            "now": iso(now),
            "since": iso(cancelled_since),
        },
    )
    return [_bulletin(r) for r in rows]


async def media_offered_down(db: Reader, sha256: str, now: datetime) -> str | None:
    """The type of a media file an offered bulletin carries; None when none does."""
    mime: str | None = await db.fetchval(
        "SELECT m.mime FROM bulletins b JOIN media m ON m.sha256 = b.media_sha256"
        " WHERE b.media_sha256 = :sha AND b.state = :published AND b.valid_until > :now"
        " AND b.unit NOT IN (SELECT code FROM communes) LIMIT 1",
        {"sha": sha256, "published": BulletinState.PUBLISHED.value, "now": iso(now)},
    )
    return mime
