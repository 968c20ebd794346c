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

The SQL for nodes is hub/store/nodes.py.
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
from .db import Database
from .store import nodes
from .store.manifests import bump_every_version, versions_of

log = logging.getLogger(__name__)


def node_url(public_url: str | None) -> str | None:
    """The form a node's address is stored and signed in (no trailing slash)."""
    return public_url.rstrip("/") if public_url else None


async def hub_urls(db: Database) -> list[str]:
    """The hub nodes a manifest lists: the set last announced, sorted."""
    return await nodes.announced_urls(db, MAX_HUB_URLS)


async def beat(
    db: Database, url: str | None, now: datetime, fresh: timedelta
) -> dict[str, int] | None:
    """Record this node (if it has a URL) alive at `now`, and announce the live nodes if they
    are not the set announced: returns every device's new manifest version when this call
    announced a change, None when there was nothing to announce."""
    async with db.transaction() as tx:
        if url is not None:
            await nodes.record_alive(tx, url, now)
        cutoff = now - fresh
        known = await nodes.every_node(tx)
        live = {n.url for n in known if n.last_seen >= cutoff}
        announced = {n.url for n in known if n.announced}
        if live == announced:
            return None
        await nodes.announce_alive_since(tx, cutoff)
        versions = await bump_every_version(tx)
    log.info(
        "hub nodes now %s (were %s): %d manifests re-issued",
        sorted(live),
        sorted(announced),
        len(versions),
    )
    return versions


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
