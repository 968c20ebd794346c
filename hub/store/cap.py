"""CAP 1.2 in: the sender accounts, the alerts taken (once each) and the feeds polled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..db import from_iso, iso
from .sql import Reader, Row, Tx


@dataclass(frozen=True)
class Sender:
    name: str
    #: "auto": its emergencies air at once; "review": everything waits for a reviewer.
    policy: str
    #: The source level its bulletins carry in reports ("central", "province").
    source_level: str
    disabled: bool
    created_at: datetime


def _sender(row: Row) -> Sender:
    return Sender(
        name=row["name"],
        policy=row["policy"],
        source_level=row["source_level"],
        disabled=bool(row["disabled"]),
        created_at=from_iso(row["created_at"]),
    )


_SENDER = "SELECT name, policy, source_level, disabled, created_at FROM cap_senders"


async def add_sender(
    tx: Tx, name: str, token_hash: str, *, policy: str, source_level: str, at: datetime
) -> None:
    await tx.execute(
        "INSERT INTO cap_senders (name, token_hash, policy, source_level, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (name, token_hash, policy, source_level, iso(at)),
    )


async def sender(db: Reader, name: str) -> Sender | None:
    row = await db.fetchone(f"{_SENDER} WHERE name = ?", (name,))
    return _sender(row) if row is not None else None


async def sender_by_token(db: Reader, token_hash: str) -> Sender | None:
    row = await db.fetchone(f"{_SENDER} WHERE token_hash = ? AND disabled = 0", (token_hash,))
    return _sender(row) if row is not None else None


async def senders(db: Reader) -> list[Sender]:
    return [_sender(r) for r in await db.fetchall(f"{_SENDER} ORDER BY name")]


async def set_sender_token(tx: Tx, name: str, token_hash: str) -> None:
    await tx.execute("UPDATE cap_senders SET token_hash = ? WHERE name = ?", (token_hash, name))


async def disable_sender(tx: Tx, name: str) -> None:
    await tx.execute("UPDATE cap_senders SET disabled = 1 WHERE name = ?", (name,))


# ---------------------------------------------------------------- alerts taken


@dataclass(frozen=True)
class TakenAlert:
    sender: str
    identifier: str
    sent: datetime
    msg_type: str
    #: The account that posted it: an operator's user name or "sender:<name>".
    posted_by: str
    bulletin_id: str | None
    #: What the hub did: "published", "review", "updated", "cancelled".
    outcome: str
    received_at: datetime


def _taken(row: Row) -> TakenAlert:
    return TakenAlert(
        sender=row["sender"],
        identifier=row["identifier"],
        sent=from_iso(row["sent"]),
        msg_type=row["msg_type"],
        posted_by=row["posted_by"],
        bulletin_id=row["bulletin_id"],
        outcome=row["outcome"],
        received_at=from_iso(row["received_at"]),
    )


_TAKEN = (
    "SELECT sender, identifier, sent, msg_type, posted_by, bulletin_id, outcome, received_at"
    " FROM cap_alerts"
)


async def taken(db: Reader, sender: str, identifier: str, sent: datetime) -> TakenAlert | None:
    row = await db.fetchone(
        f"{_TAKEN} WHERE sender = ? AND identifier = ? AND sent = ?",
        (sender, identifier, iso(sent)),
    )
    return _taken(row) if row is not None else None


async def take(tx: Tx, alert: TakenAlert) -> bool:
    """Record the alert; False when it was already taken (nothing written)."""
    changed = await tx.execute(
        "INSERT INTO cap_alerts (sender, identifier, sent, msg_type, posted_by, bulletin_id,"
        " outcome, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            alert.sender,
            alert.identifier,
            iso(alert.sent),
            alert.msg_type,
            alert.posted_by,
            alert.bulletin_id,
            alert.outcome,
            iso(alert.received_at),
        ),
    )
    return changed > 0


async def of_bulletins(db: Reader, bulletin_ids: list[str]) -> dict[str, TakenAlert]:
    """The alert each bulletin came from (bulletins not from CAP are left out)."""
    out: dict[str, TakenAlert] = {}
    for bulletin_id in bulletin_ids:
        row = await db.fetchone(
            f"{_TAKEN} WHERE bulletin_id = ? ORDER BY received_at LIMIT 1", (bulletin_id,)
        )
        if row is not None:
            out[bulletin_id] = _taken(row)
    return out


# ---------------------------------------------------------------- feeds


@dataclass(frozen=True)
class Feed:
    url: str
    sender: str
    interval_s: int
    last_polled_at: datetime | None
    last_ok_at: datetime | None
    last_error: str | None


def _feed(row: Row) -> Feed:
    return Feed(
        url=row["url"],
        sender=row["sender"],
        interval_s=row["interval_s"],
        last_polled_at=from_iso(row["last_polled_at"]) if row["last_polled_at"] else None,
        last_ok_at=from_iso(row["last_ok_at"]) if row["last_ok_at"] else None,
        last_error=row["last_error"],
    )


_FEED = "SELECT url, sender, interval_s, last_polled_at, last_ok_at, last_error FROM cap_feeds"


async def add_feed(tx: Tx, url: str, sender: str, interval_s: int, at: datetime) -> None:
    await tx.execute(
        "INSERT INTO cap_feeds (url, sender, interval_s, created_at) VALUES (?, ?, ?, ?)",
        (url, sender, interval_s, iso(at)),
    )


async def feeds(db: Reader) -> list[Feed]:
    return [_feed(r) for r in await db.fetchall(f"{_FEED} ORDER BY url")]


async def feed(db: Reader, url: str) -> Feed | None:
    row = await db.fetchone(f"{_FEED} WHERE url = ?", (url,))
    return _feed(row) if row is not None else None


async def remove_feed(tx: Tx, url: str) -> None:
    await tx.execute("DELETE FROM cap_feed_entries WHERE feed_url = ?", (url,))
    await tx.execute("DELETE FROM cap_feeds WHERE url = ?", (url,))


async def polled(tx: Tx, url: str, at: datetime, error: str | None) -> None:
    if error is None:
        await tx.execute(
            "UPDATE cap_feeds SET last_polled_at = ?, last_ok_at = ?, last_error = NULL"
            " WHERE url = ?",
            (iso(at), iso(at), url),
        )
    else:
        await tx.execute(
            "UPDATE cap_feeds SET last_polled_at = ?, last_error = ? WHERE url = ?",
            (iso(at), error[:1000], url),
        )


async def entry_taken(db: Reader, url: str, entry: str) -> bool:
    row = await db.fetchone(
        "SELECT 1 FROM cap_feed_entries WHERE feed_url = ? AND entry = ?", (url, entry)
    )
    return row is not None


async def take_entry(tx: Tx, url: str, entry: str, at: datetime) -> None:
    await tx.execute(
        "INSERT INTO cap_feed_entries (feed_url, entry, taken_at) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (url, entry, iso(at)),
    )
