"""The console page for maintenance and switch-over notices (hub/maintenance.py): announce,
see what is announced with the regulation's warnings, withdraw. Every user sees the notices
in force in the banner of every page (console.render)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from loa_contract.models import VN_TZ

from . import maintenance
from .auth import Permission, require
from .console import FieldError, PageHandler, api, error_details, page, render, see_other
from .domain.maintenance import NoticeKind
from .errors import ApiError
from .web_session import check_csrf, page_user

FIELDS = ("kind", "starts_at", "ends_at", "reason", "consent_ref")
REFUSALS = ("past", "too_far", "end_before_start", "too_long")


def _local(value: str) -> str | None:
    """A `datetime-local` field (Vietnam time, no zone) as the API's ISO text with its zone."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).replace(tzinfo=VN_TZ).isoformat()
    except ValueError:
        return value  # the API names it as a bad date


def _errors(exc: ApiError | ValidationError) -> list[FieldError]:
    out = []
    for d in error_details(exc):
        field = d.get("field", "").removeprefix("body.") or "body"
        label = f"mt.field.{field}" if field in FIELDS else "mt.form"
        code = d.get("code")
        message = f"mt.err.{code}" if code in REFUSALS else "mt.err.invalid"
        out.append(FieldError(field=field, label=label, message=message, detail=d["message"]))
    return out


async def _page(
    request: web.Request,
    *,
    status: int = 200,
    errors: list[FieldError] | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:
    user = await page_user(request)
    require(user, Permission.MAINTENANCE)
    rows: list[maintenance.NoticeOut] = await api(
        request,
        user,
        maintenance.list_notices,
        query=maintenance.NoticesQuery(all=True),
    )
    return await render(
        request,
        "maintenance.html",
        status=status,
        rows=rows,
        kinds=[k.value for k in NoticeKind],
        done=request.query.get("done"),
        errors=errors or [],
        values=values or dict.fromkeys(FIELDS, ""),
    )


@page
async def notices_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@page
async def notice_announce(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, Permission.MAINTENANCE)
    values = {k: str(form.get(k, "")).strip() for k in FIELDS}
    raw: dict[str, Any] = {
        "kind": values["kind"],
        "starts_at": _local(values["starts_at"]),
        "ends_at": _local(values["ends_at"]),
        "reason": values["reason"],
        "consent_ref": values["consent_ref"] or None,
    }
    try:
        body = maintenance.NoticeCreate.model_validate(raw)
        created: maintenance.NoticeOut = await api(request, user, maintenance.announce, body=body)
    except (ValidationError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status != 422:
            raise
        return await _page(request, status=422, errors=_errors(exc), values=values)
    return see_other(f"/maintenance?done={created.id}")


@page
async def notice_withdraw(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    await api(request, user, maintenance.withdraw)
    return see_other("/maintenance")


PAGES: list[tuple[str, str, PageHandler]] = [
    ("GET", "/maintenance", notices_page),
    ("POST", "/maintenance", notice_announce),
    ("POST", "/maintenance/{notice_id}/withdraw", notice_withdraw),
]
