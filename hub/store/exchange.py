"""Hub-to-hub exchange (hub/exchange.py): downstream accounts and the reports they sent up
(on the upper hub); upstreams, the items taken from them and the reports delivered to them
(on the lower hub)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from ..db import from_iso, iso
from .sql import Reader, Row, Tx

# ---------------------------------------------------------------- the upper hub's side


async def add_downstream(tx: Tx, name: str, token_hash: str, at: datetime) -> None:
    await tx.execute(
        "INSERT INTO downstreams (name, token_hash, created_at) VALUES (?, ?, ?)",
        (name, token_hash, iso(at)),
    )


async def downstream_exists(db: Reader, name: str) -> bool:
    return await db.fetchone("SELECT 1 FROM downstreams WHERE name = ?", (name,)) is not None


async def downstream_by_token(db: Reader, token_hash: str) -> str | None:
    name: str | None = await db.fetchval(
        "SELECT name FROM downstreams WHERE token_hash = ? AND disabled = 0", (token_hash,)
    )
    return name


async def downstreams(db: Reader) -> list[str]:
    return [r[0] for r in await db.fetchall("SELECT name FROM downstreams ORDER BY name")]


@dataclass(frozen=True)
class ReceivedReport:
    downstream: str
    scope: str
    first_day: date
    last_day: date
    report_json: str
    received_at: datetime


def _received(row: Row) -> ReceivedReport:
    return ReceivedReport(
        downstream=row[0],
        scope=row[1],
        first_day=date.fromisoformat(row[2]),
        last_day=date.fromisoformat(row[3]),
        report_json=row[4],
        received_at=from_iso(row[5]),
    )


async def receive_report(tx: Tx, report: ReceivedReport) -> bool:
    """Keep a report sent up; False when that downstream had sent that period already."""
    changed = await tx.execute(
        "INSERT INTO received_reports (downstream, scope, first_day, last_day, report_json,"
        " received_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            report.downstream,
            report.scope,
            report.first_day.isoformat(),
            report.last_day.isoformat(),
            report.report_json,
            iso(report.received_at),
        ),
    )
    return changed > 0


async def received_reports(db: Reader) -> list[ReceivedReport]:
    rows = await db.fetchall(
        "SELECT downstream, scope, first_day, last_day, report_json, received_at"
        " FROM received_reports ORDER BY first_day DESC, downstream"
    )
    return [_received(r) for r in rows]


# ---------------------------------------------------------------- the lower hub's side


@dataclass(frozen=True)
class Upstream:
    url: str
    token: str
    policy: str
    #: The upper hub's key: given at `hub upstream add --key-id`, or pinned at first contact.
    key_id: str | None
    public_key: str | None
    last_polled_at: datetime | None
    last_ok_at: datetime | None
    last_error: str | None


def _upstream(row: Row) -> Upstream:
    return Upstream(
        url=row[0],
        token=row[1],
        policy=row[2],
        key_id=row[3],
        public_key=row[4],
        last_polled_at=from_iso(row[5]) if row[5] else None,
        last_ok_at=from_iso(row[6]) if row[6] else None,
        last_error=row[7],
    )


_UPSTREAM = (
    "SELECT url, token, policy, key_id, public_key, last_polled_at, last_ok_at, last_error"
    " FROM upstreams"
)


async def add_upstream(
    tx: Tx, url: str, token: str, policy: str, key_id: str | None, at: datetime
) -> None:
    await tx.execute(
        "INSERT INTO upstreams (url, token, policy, key_id, created_at) VALUES (?, ?, ?, ?, ?)",
        (url, token, policy, key_id, iso(at)),
    )


async def upstreams(db: Reader) -> list[Upstream]:
    return [_upstream(r) for r in await db.fetchall(f"{_UPSTREAM} ORDER BY url")]


async def upstream(db: Reader, url: str) -> Upstream | None:
    row = await db.fetchone(f"{_UPSTREAM} WHERE url = ?", (url,))
    return _upstream(row) if row is not None else None


async def remove_upstream(tx: Tx, url: str) -> None:
    await tx.execute("DELETE FROM report_deliveries WHERE upstream = ?", (url,))
    await tx.execute("DELETE FROM upstream_items WHERE upstream = ?", (url,))
    await tx.execute("DELETE FROM upstreams WHERE url = ?", (url,))


async def pin_key(tx: Tx, url: str, key_id: str, public_key: str) -> None:
    await tx.execute(
        "UPDATE upstreams SET key_id = ?, public_key = ? WHERE url = ?",
        (key_id, public_key, url),
    )


async def polled(tx: Tx, url: str, at: datetime, error: str | None) -> None:
    if error is None:
        await tx.execute(
            "UPDATE upstreams SET last_polled_at = ?, last_ok_at = ?, last_error = NULL"
            " WHERE url = ?",
            (iso(at), iso(at), url),
        )
    else:
        await tx.execute(
            "UPDATE upstreams SET last_polled_at = ?, last_error = ? WHERE url = ?",
            (iso(at), error[:1000], url),
        )


@dataclass(frozen=True)
class TakenItem:
    bulletin_id: str | None
    state: str


async def taken_items(db: Reader, url: str) -> dict[str, TakenItem]:
    rows = await db.fetchall(
        "SELECT remote_id, bulletin_id, state FROM upstream_items WHERE upstream = ?", (url,)
    )
    return {r[0]: TakenItem(r[1], r[2]) for r in rows}


async def taken_item(db: Reader, url: str, remote_id: str) -> TakenItem | None:
    row = await db.fetchone(
        "SELECT bulletin_id, state FROM upstream_items WHERE upstream = ? AND remote_id = ?",
        (url, remote_id),
    )
    return TakenItem(row[0], row[1]) if row is not None else None


async def take_item(
    tx: Tx, url: str, remote_id: str, bulletin_id: str | None, state: str, at: datetime
) -> None:
    await tx.execute(
        "INSERT INTO upstream_items (upstream, remote_id, bulletin_id, state, taken_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (upstream, remote_id) DO UPDATE SET"
        " state = excluded.state",
        (url, remote_id, bulletin_id, state, iso(at)),
    )


async def undelivered(db: Reader, url: str) -> list[tuple[str, date, date, str]]:
    """The province's submitted reports not yet delivered to the upstream:
    (scope, first_day, last_day, report_json), oldest first."""
    rows = await db.fetchall(
        "SELECT s.scope, s.first_day, s.last_day, s.report_json FROM report_submissions s"
        " WHERE s.scope = 'province' AND NOT EXISTS (SELECT 1 FROM report_deliveries d"
        " WHERE d.upstream = ? AND d.scope = s.scope AND d.first_day = s.first_day"
        " AND d.last_day = s.last_day) ORDER BY s.first_day",
        (url,),
    )
    return [(r[0], date.fromisoformat(r[1]), date.fromisoformat(r[2]), r[3]) for r in rows]


async def delivered(tx: Tx, url: str, scope: str, first: date, last: date, at: datetime) -> None:
    await tx.execute(
        "INSERT INTO report_deliveries (upstream, scope, first_day, last_day, delivered_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (url, scope, first.isoformat(), last.isoformat(), iso(at)),
    )
