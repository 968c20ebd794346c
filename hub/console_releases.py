"""The console's fleet updates page (issue #14): per version how many devices run it, are
updating, failed or rolled back; the roll-outs with widen, pause, resume and stop; a notice
when a roll-out paused itself; the form that starts one. Every action goes through the JSON
API's own handlers (hub/releases.py), so the console and the API cannot differ."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from . import groups, releases
from .auth import Permission, User, require
from .console import PageHandler, api, page, page_cursor, pager_links, render, see_other
from .errors import ApiError, validation_detail
from .paging import Page
from .web_session import check_csrf, page_user

_FORM_FIELDS = (
    "version",
    "percent",
    "communes",
    "group",
    "kind",
    "max_failure_share",
    "rollback",
)


async def _releases_page(
    request: web.Request,
    user: User,
    *,
    status: int = 200,
    errors: list[dict[str, Any]] | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:
    listed: releases.ReleasesOut = await api(request, user, releases.list_releases)
    recent: Page[list[releases.DeviceUpdateOut]] = await api(
        request,
        user,
        releases.list_device_updates,
        query=releases.DeviceUpdatesQuery(limit=50, before=page_cursor(request)),
    )
    device_groups = await api(request, user, groups.list_groups)
    auto_paused = [
        r for r in listed.rollouts if r.state == "paused" and r.paused_reason is not None
    ]
    return await render(
        request,
        "releases.html",
        status=status,
        listed=listed,
        recent=recent.body,
        **pager_links(request, recent.next_before, "/releases"),
        device_groups=device_groups,
        auto_paused=auto_paused,
        errors=errors or [],
        values={k: "" for k in _FORM_FIELDS}
        | {"percent": "10", "max_failure_share": "20"}
        | (values or {}),
    )


@page
async def releases_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    require(user, Permission.FLEET_UPDATES)
    return await _releases_page(request, user)


@page
async def rollout_start(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, Permission.FLEET_UPDATES)
    values = {k: str(form.get(k, "")).strip() for k in _FORM_FIELDS}
    try:
        share = values["max_failure_share"]
        body = releases.RolloutIn.model_validate(
            {
                "version": values["version"],
                "percent": values["percent"],
                "communes": [c.strip() for c in values["communes"].split(",") if c.strip()],
                "group": values["group"] or None,
                "kind": values["kind"] or None,
                "rollback": values["rollback"] == "on",
                "max_failure_share": float(share) / 100 if share else 0.2,
            }
        )
        await api(request, user, releases.create_rollout, body=body)
    except ValueError as exc:
        detail = (
            validation_detail(exc)
            if isinstance(exc, ValidationError)
            else [{"field": "max_failure_share", "message": str(exc)}]
        )
        return await _releases_page(request, user, status=422, errors=detail, values=values)
    except ApiError as exc:
        if exc.status != 422 or not isinstance(exc.detail, list):
            raise
        return await _releases_page(request, user, status=422, errors=exc.detail, values=values)
    return see_other("/releases")


_ACTIONS = {
    "widen": releases.widen_rollout,
    "pause": releases.pause_rollout,
    "resume": releases.resume_rollout,
    "stop": releases.stop_rollout,
}


@page
async def rollout_action(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, Permission.FLEET_UPDATES)
    action = request.match_info["action"]
    handler = _ACTIONS.get(action)
    if handler is None:
        raise ApiError(404, "not_found", f"no action {action!r}")
    body = None
    if action == "widen":
        try:
            body = releases.WidenIn.model_validate({"percent": str(form.get("percent", ""))})
        except ValidationError as exc:
            return await _releases_page(request, user, status=422, errors=validation_detail(exc))
    try:
        await api(request, user, handler, body=body)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        detail = (
            exc.detail
            if isinstance(exc.detail, list)
            else [{"field": "rollout", "message": str(exc.detail)}]
        )
        return await _releases_page(request, user, status=exc.status, errors=detail)
    return see_other("/releases")


PAGES: list[tuple[str, str, PageHandler]] = [
    ("GET", "/releases", releases_page),
    ("POST", "/releases/rollouts", rollout_start),
    ("POST", "/releases/rollouts/{id}/{action}", rollout_action),
]
