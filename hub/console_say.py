"""Console pages for the commune's say (hub/offers.py): how province normal bulletins reach
the commune, and the accept or decline of each. Shown on the commune's page; each action is
the API's own handler, with its scope, checks and audit."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import communes, offers
from .auth import Permission, User, require
from .console import PageHandler, api, page, see_other
from .web_session import check_csrf, page_user


async def offers_of(request: web.Request, user: User) -> offers.OffersOut:
    """The commune's offers for its page (the path names the commune)."""
    found: offers.OffersOut = await api(request, user, offers.list_offers)
    return found


@page
async def say_mode(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    commune: communes.CommuneOut = await api(request, user, communes.get_commune)
    require(user, Permission.COMMUNES_WRITE, commune=commune.code)
    mode: Any = form.get("province_normal")
    body = communes.CommuneUpdate.model_validate({"province_normal": mode})
    await api(request, user, communes.update_commune, body=body)
    return see_other(f"/communes/{commune.code}?saved=say#say")


async def _choose(request: web.Request, handler: Any) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    await api(request, user, handler)
    return see_other(f"/communes/{request.match_info['code']}?saved=say#say")


@page
async def offer_accept(request: web.Request) -> web.StreamResponse:
    return await _choose(request, offers.accept_offer)


@page
async def offer_decline(request: web.Request) -> web.StreamResponse:
    return await _choose(request, offers.decline_offer)


PAGES: list[tuple[str, str, PageHandler]] = [
    ("POST", "/communes/{code}/say", say_mode),
    ("POST", "/communes/{code}/offers/{id}/accept", offer_accept),
    ("POST", "/communes/{code}/offers/{id}/decline", offer_decline),
]
