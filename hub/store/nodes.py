"""Hub nodes sharing the database: when each was last alive, and which set devices were last
told of (hub/nodes.py has the rules)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..db import from_iso, iso
from .sql import Reader, Tx


@dataclass(frozen=True)
class Node:
    url: str
    last_seen: datetime
    #: In the set the devices' manifests list.
    announced: bool


async def announced_urls(db: Reader, limit: int) -> list[str]:
    """The announced nodes' URLs, sorted, at most `limit`."""
    rows = await db.fetchall(
        "SELECT url FROM hub_nodes WHERE announced = 1 ORDER BY url LIMIT ?", (limit,)
    )
    return [r[0] for r in rows]


async def record_alive(tx: Tx, url: str, at: datetime) -> None:
    """The node at `url` is alive at `at` (registered on its first beat)."""
    await tx.execute(
        "INSERT INTO hub_nodes (url, first_seen, last_seen) VALUES (?, ?, ?)"
        " ON CONFLICT (url) DO UPDATE SET last_seen = excluded.last_seen",
        (url, iso(at), iso(at)),
    )


async def every_node(db: Reader) -> list[Node]:
    rows = await db.fetchall("SELECT url, last_seen, announced FROM hub_nodes")
    return [Node(r["url"], from_iso(r["last_seen"]), bool(r["announced"])) for r in rows]


async def announce_alive_since(tx: Tx, cutoff: datetime) -> None:
    """Announce exactly the nodes seen alive at or after `cutoff`."""
    await tx.execute(
        "UPDATE hub_nodes SET announced = CASE WHEN last_seen >= ? THEN 1 ELSE 0 END",
        (iso(cutoff),),
    )
