"""The console page of the register of units (hub/units.py): the agencies and newspapers that
send bulletins, by name and kind; an admin adds one, renames one or changes its kind, and
names the codes accounts or bulletins already carry that nobody has named. Every change is
the API's own handler, with its permission, checks and audit."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from . import units
from .appkeys import DB
from .auth import Permission, User, require
from .console import FieldError, PageHandler, api, form_errors, page, render, see_other
from .errors import ApiError
from .store import units as store
from .web_session import check_csrf, page_user

_FIELDS = {"code": "un.code", "name": "un.name", "kind": "un.kind"}
_MESSAGES = {"exists": "un.err.exists", "not_found": "un.err.not_found"}
_DONE = ("created", "saved")


def _errors(exc: ApiError | ValidationError) -> list[FieldError]:
    code = exc.error if isinstance(exc, ApiError) else "validation_error"
    return form_errors(exc, _FIELDS, "un.form", _MESSAGES.get(code, "un.err.invalid"))


async def _register_page(
    request: web.Request,
    user: User,
    *,
    status: int = 200,
    errors: list[FieldError] | None = None,
    values: dict[str, str] | None = None,
    edited: dict[str, str] | None = None,
) -> web.Response:
    rows: list[units.UnitOut] = await api(request, user, units.list_units)
    done = request.query.get("done")
    asked = request.query.get("code", "")
    return await render(
        request,
        "units.html",
        status=status,
        rows=rows,
        unnamed=await store.unnamed_in_use(request.app[DB]),
        errors=errors or [],
        # An unnamed code's "name it" link fills the form with it.
        values=values or {"code": asked[:32], "name": "", "kind": "agency"},
        edited=edited,
        done=done if done in _DONE else None,
    )


@page
async def units_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    require(user, Permission.USERS_MANAGE)
    return await _register_page(request, user)


def _text(form: Any, name: str) -> str:
    return str(form.get(name, "")).strip()


@page
async def unit_create(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, Permission.USERS_MANAGE)
    values = {k: _text(form, k) for k in ("code", "name", "kind")}
    try:
        body = units.UnitCreate.model_validate(values)
        created: units.UnitOut = await api(request, user, units.create_unit, body=body)
    except ValidationError as exc:
        return await _register_page(request, user, status=422, errors=_errors(exc), values=values)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _register_page(
            request, user, status=exc.status, errors=_errors(exc), values=values
        )
    return see_other(f"/units?done=created#unit-{created.code}")


@page
async def unit_save(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, Permission.USERS_MANAGE)
    code = request.match_info["code"]
    edited = {"code": code, "name": _text(form, "name"), "kind": _text(form, "kind")}
    try:
        body = units.UnitUpdate.model_validate({"name": edited["name"], "kind": edited["kind"]})
        await api(request, user, units.update_unit, body=body)
    except ValidationError as exc:
        return await _register_page(request, user, status=422, errors=_errors(exc), edited=edited)
    except ApiError as exc:
        if exc.status != 422:
            raise
        return await _register_page(
            request, user, status=exc.status, errors=_errors(exc), edited=edited
        )
    return see_other(f"/units?done=saved#unit-{code}")


PAGES: list[tuple[str, str, PageHandler]] = [
    ("GET", "/units", units_page),
    ("POST", "/units", unit_create),
    ("POST", "/units/{code}", unit_save),
]
