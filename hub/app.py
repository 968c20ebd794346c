"""The hub application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from loa_contract import utcnow

from . import (
    audit_api,
    bulletins,
    categories,
    communes,
    device_api,
    devices,
    media,
    pages,
    process_api,
    reports,
    sessions,
    users,
)
from .appkeys import CLOCK, CONFIG, CONNECTIONS, DB, KEYRING, MANIFEST_CACHE, ROUTES, Clock
from .config import HubConfig
from .db import Database
from .errors import error_middleware
from .keys import load_keyring
from .manifests import ManifestCache, refresher_context
from .push import Connections
from .routing import Ctx, RouteTable, openapi_document
from .web_session import session_middleware

API_TITLE = "Loa hub API"
API_VERSION = "1"

meta = RouteTable("meta")


class Healthz(BaseModel):
    ok: bool


@meta.get("/healthz", summary="Liveness probe", auth="public", response=Healthz)
async def healthz(ctx: Ctx) -> Healthz:
    await ctx.db.fetchone("SELECT 1")
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
    audit_api.routes,
    categories.routes,
    communes.routes,
    devices.routes,
    media.routes,
    bulletins.routes,
    device_api.routes,
    reports.routes,
    process_api.routes,
]


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = await Database.open(app[CONFIG].db_path)
    app[DB] = db
    yield
    await db.close()


async def _close_sockets(app: web.Application) -> None:
    # Without this, shutdown waits for every device socket to time out.
    await app[CONNECTIONS].close_all()


def create_app(
    config: HubConfig, *, clock: Clock | None = None, with_console: bool = True
) -> web.Application:
    """The hub; `with_console=False` leaves the page paths free (helper tests mount stand-ins)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    config.media_dir.mkdir(parents=True, exist_ok=True)
    keyring = load_keyring(config.key_path, config.extra_keys_dir)

    app = web.Application(middlewares=[error_middleware, session_middleware])
    app[CONFIG] = config
    app[CLOCK] = clock or utcnow
    app[KEYRING] = keyring
    app[CONNECTIONS] = Connections(keyring.signer, send_timeout_s=config.ws_send_timeout_s)
    app[MANIFEST_CACHE] = ManifestCache()
    app[ROUTES] = []
    for table in ROUTE_TABLES:
        table.install(app)
    if with_console:
        pages.install(app)
    app.cleanup_ctx.append(_database)
    app.cleanup_ctx.append(refresher_context)
    app.on_shutdown.append(_close_sockets)
    return app
