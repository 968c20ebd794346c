"""Hub nodes sharing one database, and the list of them that devices fail over along.

Each node with a public URL (`hub serve --public-url`) registers itself in `hub_nodes` at
start and keeps its row fresh; a node not heard from within `node_fresh` counts as gone.
Devices learn the nodes from their signed manifest (`Manifest.hub_urls`), so the list they
hold changes only with a manifest version: the set of live nodes is compared, at each
heartbeat, with the set last *announced*; when they differ, whichever node notices first
records the new set and raises every device's manifest version once, in one transaction,
so the other nodes find nothing left to do. Each node then tells its own connected devices
(it notices the announced set changed, whoever changed it). Manifests list the announced
set, sorted: the same list whichever node signs, and no re-signing while nothing changes.

All the SQL for nodes is here, so it can move into the data layer as one piece.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from aiohttp import web

from loa_contract import MAX_HUB_URLS

from .appkeys import CLOCK, CONFIG, CONNECTIONS, DB
from .db import Database, iso

log = logging.getLogger(__name__)


def node_url(public_url: str | None) -> str | None:
    """The form a node's address is stored and signed in (no trailing slash)."""
    return public_url.rstrip("/") if public_url else None


async def hub_urls(db: Database) -> list[str]:
    """The hub nodes a manifest lists: the set last announced, sorted."""
    rows = await db.fetchall(
        "SELECT url FROM hub_nodes WHERE announced = 1 ORDER BY url LIMIT ?", (MAX_HUB_URLS,)
    )
    return [r["url"] for r in rows]


async def beat(
    db: Database, url: str | None, now: datetime, fresh: timedelta
) -> dict[str, int] | None:
    """Record this node (if it has a URL) alive at `now`, and announce the live nodes if they
    are not the set announced: returns every device's new manifest version when this call
    announced a change, None when there was nothing to announce."""
    async with db.transaction() as conn:
        if url is not None:
            await conn.execute(
                "INSERT INTO hub_nodes (url, first_seen, last_seen) VALUES (?, ?, ?)"
                " ON CONFLICT (url) DO UPDATE SET last_seen = excluded.last_seen",
                (url, iso(now), iso(now)),
            )
        cutoff = iso(now - fresh)
        cur = await conn.execute("SELECT url, last_seen, announced FROM hub_nodes")
        rows = await cur.fetchall()
        live = {r["url"] for r in rows if r["last_seen"] >= cutoff}
        announced = {r["url"] for r in rows if r["announced"]}
        if live == announced:
            return None
        await conn.execute(
            "UPDATE hub_nodes SET announced = CASE WHEN last_seen >= ? THEN 1 ELSE 0 END",
            (cutoff,),
        )
        cur = await conn.execute(
            "UPDATE devices SET manifest_version = manifest_version + 1"
            " RETURNING id, manifest_version"
        )
        versions = {r[0]: r[1] for r in await cur.fetchall()}
    log.info(
        "hub nodes now %s (were %s): %d manifests re-issued",
        sorted(live),
        sorted(announced),
        len(versions),
    )
    return versions


async def versions_of(db: Database, device_ids: set[str]) -> dict[str, int]:
    """The current manifest version of each of `device_ids`."""
    if not device_ids:
        return {}
    rows = await db.fetchall("SELECT id, manifest_version FROM devices")
    return {r["id"]: r["manifest_version"] for r in rows if r["id"] in device_ids}


#: A change of nodes is not urgent: this node's connected devices are told in this many
#: slices spread over `spread_s`, so ten thousand do not come for a manifest in one moment
#: (a node's death is announced just after its devices moved to the survivors).
TELL_SLICES = 10


async def tell_connected(app: web.Application, spread_s: float) -> None:
    """Tell the devices connected to this node their new manifest version."""
    connections = app[CONNECTIONS]
    versions = await versions_of(app[DB], connections.online_ids())
    ids = sorted(versions)
    for part in range(TELL_SLICES):
        chunk = {device_id: versions[device_id] for device_id in ids[part::TELL_SLICES]}
        if chunk:
            await connections.push_manifest_ready(chunk, app[CONFIG].command_ttl)
        await asyncio.sleep(spread_s / TELL_SLICES)


async def nodes_context(app: web.Application) -> AsyncIterator[None]:
    """Register this node before it serves, keep it alive while it runs, and tell this node's
    connected devices when the announced nodes change (whichever node announced it)."""
    config = app[CONFIG]
    clock = app[CLOCK]
    db = app[DB]
    url = node_url(config.public_url)
    await beat(db, url, clock(), config.node_fresh)
    listed = await hub_urls(db)

    async def loop() -> None:
        nonlocal listed
        while True:
            await asyncio.sleep(config.node_heartbeat.total_seconds())
            try:
                await beat(db, url, clock(), config.node_fresh)
                now_listed = await hub_urls(db)
                if now_listed != listed:
                    listed = now_listed
                    await tell_connected(app, config.node_heartbeat.total_seconds())
            except Exception:
                log.exception("hub node heartbeat failed; retrying at the next one")

    task = asyncio.create_task(loop(), name="hub-node-heartbeat")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
