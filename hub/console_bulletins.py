"""Console pages for bulletins: the list with filters, create with upload progress and preview,
the detail page with its history, and the reviewers' queue (hàng chờ thẩm định)."""

from __future__ import annotations

from aiohttp import web

from . import bulletins
from .console import STATES, PageHandler, api, page, render
from .web_session import page_user


@page
async def bulletins_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    state = request.query.get("state")
    chosen = state if state in STATES else None
    rows = await api(
        request,
        user,
        bulletins.list_bulletins,
        query=bulletins.BulletinQuery(state=chosen),  # type: ignore[arg-type]
    )
    return await render(request, "bulletins.html", rows=rows, states=STATES, chosen=chosen)


PAGES: list[tuple[str, str, PageHandler]] = [
    ("GET", "/bulletins", bulletins_page),
]
