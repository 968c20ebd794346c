"""The console's incidents page (hub/incidents.py): open ones with their age, the form to
report one, closing with a word on what was done, and the recently closed with who closed
them. Every action is the API's own handler."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from loa_contract.models import VN_TZ

from . import communes, incidents
from .appkeys import CLOCK
from .auth import Permission, User
from .console import PageHandler, api, api_all, page, page_cursor, pager_links, render, see_other
from .errors import ApiError, validation_detail
from .paging import Page
from .web_session import check_csrf, page_user


async def _page(
    request: web.Request,
    user: User,
    *,
    status: int = 200,
    errors: list[dict[str, str]] | None = None,
    values: dict[str, Any] | None = None,
) -> web.Response:
    # Every open one (each wants doing); the closed ones a page at a time, newest first.
    open_now: list[incidents.IncidentOut] = await api_all(
        request, user, incidents.list_incidents, query=incidents.IncidentQuery(state="open")
    )
    closed: Page[list[incidents.IncidentOut]] = await api(
        request,
        user,
        incidents.list_incidents,
        query=incidents.IncidentQuery(state="closed", limit=50, before=page_cursor(request)),
    )
    every: list[communes.CommuneOut] = await api(request, user, communes.list_communes)
    saved = request.query.get("saved")
    return await render(
        request,
        "incidents.html",
        status=status,
        open=open_now,
        closed=closed.body,
        **pager_links(request, closed.next_before, "/incidents"),
        communes=every,
        errors=errors or [],
        values=values or {"what": "", "commune": user.commune or "", "device_id": "", "since": ""},
        saved=saved if saved in ("opened", "closed") else None,
        may_write=user.may(Permission.INCIDENTS_WRITE),
    )


@page
async def incidents_page(request: web.Request) -> web.StreamResponse:
    return await _page(request, await page_user(request))


def _since(value: str) -> datetime | None:
    """A datetime-local field: Vietnam's time without a zone."""
    if not value:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=VN_TZ)


@page
async def incident_create(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    values = {k: str(form.get(k, "")).strip() for k in ("what", "commune", "device_id", "since")}
    try:
        since = _since(values["since"])
        body = incidents.IncidentCreate.model_validate(
            {
                "what": values["what"],
                "commune": values["commune"] or None,
                "device_id": values["device_id"] or None,
                "since": since or request.app[CLOCK](),
            }
        )
        await api(request, user, incidents.open_incident, body=body)
    except ValueError as exc:
        detail = (
            validation_detail(exc)
            if isinstance(exc, ValidationError)
            else [{"field": "since", "message": str(exc)}]
        )
        return await _page(request, user, status=422, errors=detail, values=values)
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await _page(request, user, status=422, errors=exc.detail, values=values)
    return see_other("/incidents?saved=opened")


@page
async def incident_close(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    try:
        body = incidents.IncidentClose.model_validate({"resolution": form.get("resolution", "")})
    except ValidationError as exc:
        return await _page(request, user, status=422, errors=validation_detail(exc))
    await api(request, user, incidents.close_incident, body=body)
    return see_other("/incidents?saved=closed")


PAGES: list[tuple[str, str, PageHandler]] = [
    ("GET", "/incidents", incidents_page),
    ("POST", "/incidents", incident_create),
    ("POST", "/incidents/{id}/close", incident_close),
]
