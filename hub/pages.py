"""Every console page in one list: the session test walks it, `install` mounts it."""

from __future__ import annotations

from aiohttp import web

from . import (
    console,
    console_admin,
    console_bulletins,
    console_devices,
    console_home,
    console_incidents,
    console_maintenance,
    console_releases,
    console_reports_up,
    console_say,
    console_units,
)
from .console import HERE, PageHandler

PAGES: list[tuple[str, str, PageHandler]] = [
    *console.PAGES,
    *console_home.PAGES,
    *console_bulletins.PAGES,
    *console_devices.PAGES,
    *console_admin.PAGES,
    *console_units.PAGES,
    *console_maintenance.PAGES,
    *console_say.PAGES,
    *console_incidents.PAGES,
    *console_reports_up.PAGES,
    *console_releases.PAGES,
]


def install(app: web.Application) -> None:
    for method, path, handler in PAGES:
        app.router.add_route(method, path, handler)
    app.router.add_static("/static", HERE / "static")
