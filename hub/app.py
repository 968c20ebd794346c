"""The hub application factory."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from loa_contract import utcnow

from . import (
    airings,
    audit_api,
    bulletins,
    cap,
    categories,
    communes,
    device_api,
    devices,
    exchange,
    frames,
    groups,
    incidents,
    maintenance,
    media,
    node_objects,
    offers,
    pages,
    preview_api,
    process_api,
    releases,
    reports,
    sessions,
    units,
    users,
)
from .appkeys import (
    CLOCK,
    CONFIG,
    CONNECTIONS,
    DB,
    ENROLL_LIMITER,
    KEYRING,
    MANIFEST_CACHE,
    NODE_OBJECTS,
    NODE_SECRET,
    PROBES,
    ROUTES,
    SENT_CACHE,
    Clock,
)
from .cap_feeds import feeds_context
from .config import HubConfig
from .db import open_database
from .errors import ApiError, error_middleware
from .keys import load_keyring
from .manifests import ManifestCache, refresher_context
from .node_bus import NodeEvent, bus_for
from .node_objects import objects_context
from .node_secret import node_secret
from .nodes import node_url, nodes_context
from .play_evidence import SentCache
from .proxy import forwarded_middleware
from .push import Connections
from .routing import JSON_BODY_MAX_BYTES, Ctx, RouteTable, openapi_document
from .security import FailureLimiter
from .store.liveness import probe
from .store.sql import DatabaseError
from .web_session import session_middleware

log = logging.getLogger(__name__)

API_TITLE = "Loa hub API"
API_VERSION = "1"

meta = RouteTable("meta")


class Healthz(BaseModel):
    ok: bool


@meta.get(
    "/healthz",
    summary="Liveness probe: the hub answers and its database reads",
    auth="public",
    response=Healthz,
    errors=[503],
)
async def healthz(ctx: Ctx) -> Healthz:
    try:
        await probe(ctx.db)
    except DatabaseError as exc:
        log.error("health probe: the database fails: %s", exc)
        raise ApiError(503, "database_failed", f"the database cannot be read: {exc}") from exc
    trouble = ctx.connections.bus.trouble()
    if trouble is not None:
        raise ApiError(503, "node_bus_down", trouble)
    return Healthz(ok=True)


@meta.get(
    "/api/v1/openapi.json",
    summary="This API as OpenAPI 3.1",
    auth="public",
    response=dict[str, Any],
)
async def openapi(ctx: Ctx) -> dict[str, Any]:
    return openapi_document(ctx.app[ROUTES], title=API_TITLE, version=API_VERSION)


ROUTE_TABLES: list[RouteTable] = [
    meta,
    sessions.routes,
    users.routes,
    units.routes,
    audit_api.routes,
    categories.routes,
    communes.routes,
    devices.routes,
    groups.routes,
    frames.routes,
    media.routes,
    bulletins.routes,
    preview_api.routes,
    airings.routes,
    device_api.routes,
    reports.routes,
    process_api.routes,
    maintenance.routes,
    cap.routes,
    offers.routes,
    incidents.routes,
    exchange.routes,
    releases.routes,
    node_objects.routes,
]


async def _database(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    db = await open_database(config.database_url, config.db_path, clock=app[CLOCK])
    app[DB] = db
    await bulletins.fold_older_bulletins(db)
    yield
    await db.close()


async def _close_sockets(app: web.Application) -> None:
    # Without this, shutdown waits for every device socket to time out.
    await app[CONNECTIONS].close_all()


#: How long shutdown waits for pushes still running before it cancels them.
PUSH_GRACE_S = 5.0


async def _push(app: web.Application) -> AsyncIterator[None]:
    """Active emergencies' start frames signed once at start-up (for the devices that
    reconnect after a restart), and the bus to the other hub nodes; at shutdown, the fan-outs
    still running finish or are cancelled before the database closes."""
    connections = app[CONNECTIONS]
    await bulletins.load_active_emergencies(app[DB], connections, app[CLOCK]())
    objects = app[NODE_OBJECTS]

    async def receive(event: NodeEvent) -> None:
        if event.kind == "object_stored":
            store = event.body["store"]
            if store in ("media", "releases"):
                objects.replicate(store, str(event.body["sha256"]))
        else:
            await connections.on_node_event(event)

    await connections.bus.start(receive, connections.online_ids)
    yield
    await connections.finish_background(PUSH_GRACE_S)


async def _bus(app: web.Application) -> AsyncIterator[None]:
    """The bus to the other hub nodes on this database (hub/node_bus.py); it listens once
    everything it delivers to is set up (`_push`)."""
    config = app[CONFIG]
    bus = bus_for(app[DB], clock=app[CLOCK], url=node_url(config.node_url or config.public_url))
    app[CONNECTIONS].bus = bus
    yield
    await bus.close()


#: Tracked objects allocated (less those freed) between two young collections of the cyclic
#: garbage collector; CPython's default is 700. A batch of 200 reports holds about a thousand
#: (its models, their dicts and field sets, its rows) until it is answered, so at 700 the
#: collector ran every other batch, each time walking the batches in flight, and the
#: survivors soon brought on a full collection.
YOUNG_COLLECTION_THRESHOLD = 10_000


def settle_heap() -> None:
    """Once the hub is up (`hub serve`): what it holds by then (modules, models' schemas,
    routes, keys, caches) is kept out of every later collection (`gc.freeze`), and young
    collections wait for YOUNG_COLLECTION_THRESHOLD. Measured with bench/ingest.py: a full
    collection walked the whole startup heap, 50 ms at a time, and report ingest spent up to
    a sixth of its CPU time in the collector; now next to none. Reference counting still frees
    everything the moment it is unused; the collector only finds cycles, and what is frozen
    lives as long as the process."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


def create_app(
    config: HubConfig, *, clock: Clock | None = None, with_console: bool = True
) -> web.Application:
    """The hub; `with_console=False` leaves the page paths free (helper tests mount stand-ins)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.media_dir.mkdir(parents=True, exist_ok=True)
    keyring = load_keyring(config.key_path, config.extra_keys_dir)

    # The proxy's word on scheme and client address comes first: sessions and audit use them.
    app = web.Application(
        middlewares=[forwarded_middleware, error_middleware, session_middleware],
        client_max_size=JSON_BODY_MAX_BYTES,
    )
    app[CONFIG] = config
    app[CLOCK] = clock or utcnow
    app[ENROLL_LIMITER] = FailureLimiter()
    app[KEYRING] = keyring
    app[NODE_SECRET] = node_secret(keyring.signer)
    app[CONNECTIONS] = Connections(
        keyring.signer,
        max_backlog_bytes=config.ws_max_backlog_bytes,
        stall_s=config.ws_send_timeout_s,
        clock=app[CLOCK],
    )
    app[MANIFEST_CACHE] = ManifestCache()
    app[SENT_CACHE] = SentCache()
    app[PROBES] = asyncio.Semaphore(config.probe_concurrency)
    app[ROUTES] = []
    for table in ROUTE_TABLES:
        table.install(app)
    if with_console:
        pages.install(app)
    app.cleanup_ctx.append(process_api.collector_context)
    app.cleanup_ctx.append(_database)
    # Registered before serving: the first manifest signed here already lists this node.
    app.cleanup_ctx.append(nodes_context)
    app.cleanup_ctx.append(_bus)
    app.cleanup_ctx.append(objects_context)
    app.cleanup_ctx.append(_push)
    app.cleanup_ctx.append(refresher_context)
    app.cleanup_ctx.append(feeds_context)
    app.cleanup_ctx.append(incidents.watch_context)
    app.cleanup_ctx.append(exchange.upstream_context)
    app.on_shutdown.append(_close_sockets)
    return app
