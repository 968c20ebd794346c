"""Console pages for the fleet: the status table with each device's verdict, a device's page,
new slots with their one-time enrollment code, and commands."""

from __future__ import annotations

from aiohttp import web

from . import devices
from .auth import Permission
from .console import PageHandler, api, page, render
from .web_session import page_user


@page
async def devices_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    fleet = await api(request, user, devices.list_devices, Permission.FLEET_READ)
    return await render(request, "devices.html", fleet=fleet)


PAGES: list[tuple[str, str, PageHandler]] = [
    ("GET", "/devices", devices_page),
]
