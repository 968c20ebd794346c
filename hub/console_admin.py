"""Console pages for communes (windows, order of priority bulletins), users, the audit log and
reports with their charts.

Every read and every change goes through the JSON API's own handler (`console.api`), so the
unit scope, the permission check and the audit record are the API's. Bad input re-renders the
form with the field named and changes nothing; a refusal is the console's error page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from itertools import zip_longest
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from multidict import MultiDictProxy
from pydantic import BaseModel, ValidationError

from loa_contract import BroadcastWindow, Priority
from loa_contract.models import VN_TZ

from . import audit_api, bulletins, communes, devices, reports, users
from . import units as unit_api
from .appkeys import CLOCK
from .auth import PROVINCE, Permission, Role, User, require
from .console import (
    FieldError,
    PageHandler,
    api,
    api_all,
    error_details,
    form_errors,
    page,
    render,
    see_other,
)
from .console_reports_up import submission_context
from .console_say import offers_of
from .errors import ApiError, validation_detail
from .web_session import check_csrf, page_user

Form = MultiDictProxy[Any]
WINDOW_KINDS: tuple[str, ...] = ("speaker", "board")
ROLES: tuple[str, ...] = tuple(r.value for r in Role)
AUDIT_PAGE = 50


def _get(form: Form, name: str) -> str:
    return str(form.get(name, "")).strip()


# ================================================================ communes


#: A window row of the form: start, end, and "1" when confirmed to run past midnight.
WindowRow = tuple[str, str, str]


def _window_rows(form: Form, kind: str) -> list[WindowRow]:
    starts = [str(v).strip() for v in form.getall(f"{kind}_start", [])]
    ends = [str(v).strip() for v in form.getall(f"{kind}_end", [])]
    # A select per row (not a checkbox, which posts nothing when clear): rows stay aligned.
    nights = [str(v).strip() for v in form.getall(f"{kind}_overnight", [])]
    return [
        (s or "", e or "", "1" if n == "1" else "")
        for s, e, n in zip_longest(starts, ends, nights, fillvalue="")
    ]


def _windows_payload(
    rows: dict[str, list[WindowRow]],
) -> tuple[dict[str, list[dict[str, Any]]], dict[tuple[str, int], int]]:
    """The API's windows from the form's rows (blank rows dropped) and, for error messages, the
    form row (1-based) of each kept window."""
    payload: dict[str, list[dict[str, Any]]] = {}
    where: dict[tuple[str, int], int] = {}
    for kind, triples in rows.items():
        kept: list[dict[str, Any]] = []
        for row, (start, end, night) in enumerate(triples, start=1):
            if not start and not end:
                continue
            where[(kind, len(kept))] = row
            kept.append({"start": start, "end": end, "overnight": night == "1"})
        payload[kind] = kept
    return payload, where


_COMMUNE_FIELDS = {"code": "cm.code", "name": "cm.name", "volume": "cm.volume"}
_COMMUNE_MESSAGES = {
    "code": "cm.err.code",
    "name": "cm.err.name",
    "volume": "cm.err.volume",
    "exists": "cm.err.exists",
}


def _commune_errors(
    exc: ApiError | ValidationError, where: dict[tuple[str, int], int] | None = None
) -> list[FieldError]:
    errors = []
    for d in error_details(exc):
        field = d.get("field", "")
        if field.startswith("body."):
            field = field[len("body.") :]
        detail = d.get("message", "")
        if field.startswith("windows."):
            kind = field.split(".")[1].split("[")[0]
            index = field.split("[")[1].split("]")[0] if "[" in field else None
            row = (where or {}).get((kind, int(index))) if index and index.isdigit() else None
            if field.endswith(".overnight"):
                message = "cm.err.overnight"
            elif "overlaps" in detail:
                message = "cm.err.overlap"
            else:
                message = "cm.err.window"
            errors.append(
                FieldError(
                    field=field,
                    label=f"cm.windows_{kind}" if kind in WINDOW_KINDS else "cm.windows",
                    message=message,
                    detail=detail,
                    kind=kind,
                    row=row,
                    problem=d.get("type"),
                    limits=d.get("limits", ()),
                )
            )
            continue
        if isinstance(exc, ApiError) and exc.error == "exists":
            field = "code"
            message = "cm.err.exists"
        else:
            message = _COMMUNE_MESSAGES.get(field, "cm.err.invalid")
        errors.append(
            FieldError(
                field=field or "body",
                label=_COMMUNE_FIELDS.get(field, "cm.form"),
                message=message,
                detail=detail,
                problem=d.get("type"),
                limits=d.get("limits", ()),
            )
        )
    return errors


@page
async def communes_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    return await _communes_list(request, user)


async def _communes_list(
    request: web.Request,
    user: User,
    *,
    status: int = 200,
    errors: list[FieldError] | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:
    rows: list[communes.CommuneOut] = await api(request, user, communes.list_communes)
    return await render(
        request,
        "communes.html",
        status=status,
        rows=rows,
        errors=errors or [],
        values=values or {"code": "", "name": ""},
    )


@page
async def commune_create(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, Permission.COMMUNES_CREATE)
    values = {"code": _get(form, "code"), "name": _get(form, "name")}
    try:
        body = communes.CommuneCreate.model_validate(values)
        created: communes.CommuneOut = await api(request, user, communes.create_commune, body=body)
    except ValidationError as exc:
        return await _communes_list(
            request, user, status=422, errors=_commune_errors(exc), values=values
        )
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _communes_list(
            request, user, status=exc.status, errors=_commune_errors(exc), values=values
        )
    return see_other(f"/communes/{created.code}?saved=created")


async def _running_order(
    request: web.Request, user: User, code: str
) -> list[bulletins.BulletinOut]:
    """The commune's priority bulletins in the order they air: its chosen order first, then
    the ones it has not placed, by start of validity (as the manifest orders them)."""
    stored: bulletins.OrderOut = await api(request, user, bulletins.get_order)
    published: list[bulletins.BulletinOut] = await api_all(
        request,
        user,
        bulletins.list_bulletins,
        query=bulletins.BulletinQuery(state="published", priority=Priority.PRIORITY),
    )
    own_devices: set[str] = set()
    if user.may(Permission.FLEET_READ):
        fleet: list[devices.DeviceOut] = await api_all(
            request,
            user,
            devices.list_devices,
            query=devices.DevicesQuery(commune=code),
        )
        own_devices = {d.id for d in fleet if d.commune == code}
    now = request.app[CLOCK]()
    reaching = {
        b.id: b
        for b in published
        if b.schedule.valid_until > now
        and (
            b.targets.all_communes
            or code in b.targets.communes
            or own_devices.intersection(b.targets.devices)
        )
    }
    # Normal bulletins the commune accepted are in its running order too (hub/offers.py).
    for offer in (await offers_of(request, user)).offers:
        if offer.state == "accepted":
            reaching[offer.bulletin.id] = offer.bulletin
    placed = [reaching[i] for i in stored.bulletins if i in reaching]
    rest = sorted(
        (b for i, b in reaching.items() if i not in stored.bulletins),
        key=lambda b: (b.schedule.valid_from, b.created_at),
    )
    return placed + rest


def _commune_values(commune: communes.CommuneOut) -> dict[str, Any]:
    return {
        "name": commune.name,
        "volume": str(commune.volume),
        "windows": {
            # Windows saved before the confirmation existed show as running past midnight,
            # which is what they always did.
            kind: [
                (w.start, w.end, "1" if w.overnight or w.end < w.start else "")
                for w in getattr(commune.windows, kind)
            ]
            for kind in WINDOW_KINDS
        },
    }


async def _commune_form(
    request: web.Request,
    user: User,
    commune: communes.CommuneOut,
    *,
    status: int = 200,
    errors: list[FieldError] | None = None,
    values: dict[str, Any] | None = None,
) -> web.Response:
    values = values or _commune_values(commune)
    # One blank row per list: without JavaScript, that is how a window is added.
    windows = {kind: [*values["windows"][kind], ("", "", "")] for kind in WINDOW_KINDS}
    order = await _running_order(request, user, commune.code)
    say = await offers_of(request, user)
    bad_rows = {(e.kind, e.row) for e in errors or [] if e.kind and e.row}
    saved = request.query.get("saved")
    return await render(
        request,
        "communes_detail.html",
        status=status,
        commune=commune,
        values=values,
        windows=windows,
        window_kinds=WINDOW_KINDS,
        bad_rows=bad_rows,
        errors=errors or [],
        order=order,
        say=say,
        saved=saved if saved in ("windows", "order", "created", "say") else None,
        may_write=user.may(Permission.COMMUNES_WRITE),
        may_order=user.may(Permission.BULLETINS_ORDER),
    )


@page
async def commune_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    # The API's scope check: a commune operator opening another commune gets 403 here.
    commune: communes.CommuneOut = await api(request, user, communes.get_commune)
    return await _commune_form(request, user, commune)


@page
async def commune_save(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    commune: communes.CommuneOut = await api(request, user, communes.get_commune)
    require(user, Permission.COMMUNES_WRITE, commune=commune.code)
    # Blank rows are dropped (that is how a row is removed without JavaScript); the form is
    # re-rendered as typed, so error row numbers count the kept rows.
    rows = {kind: [r for r in _window_rows(form, kind) if r[0] or r[1]] for kind in WINDOW_KINDS}
    windows, where = _windows_payload(rows)
    volume = _get(form, "volume")
    values = {"name": _get(form, "name"), "volume": volume, "windows": rows}
    # This form sets every day's windows; the weekdays' and dates' own are kept as they are.
    kept = commune.windows.model_dump(mode="json", include={"weekly", "exceptions"})
    try:
        body = communes.CommuneUpdate.model_validate(
            {"name": values["name"], "windows": {**windows, **kept}, "volume": volume or None}
        )
        await api(request, user, communes.update_commune, body=body)
    except (ValidationError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status != 422:
            raise
        return await _commune_form(
            request,
            user,
            commune,
            status=422,
            errors=_commune_errors(exc, where),
            values=values,
        )
    return see_other(f"/communes/{commune.code}?saved=windows")


# ---------------------------------------------------------------- special days

#: ISO weekdays in the order a Vietnamese week is written: thứ Hai … Chủ nhật.
WEEKDAYS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
_PIECE = re.compile(r"^(\d{1,2}:\d{2})\s*[-–—]\s*(\d{1,2}:\d{2})$")


def windows_text(windows: list[BroadcastWindow]) -> str:
    """Windows as people write them: "05:30–06:30, 17:00–18:00"."""
    return ", ".join(f"{w.start}–{w.end}" for w in windows)


def parse_windows_text(text: str, overnight: bool) -> list[dict[str, Any]]:
    """ "05:30-06:30, 22:00-02:00" as the API's windows; `overnight` confirms each window of
    the line that ends before it starts (the others stay same-day). A piece that is not
    "HH:MM-HH:MM" raises ValueError naming it."""
    windows = []
    for piece in re.split(r"[,;\n]+", text):
        piece = piece.strip()
        if not piece:
            continue
        found = _PIECE.match(piece)
        if found is None:
            raise ValueError(piece)
        start, end = (f"{int(t[:-3]):02d}{t[-3:]}" for t in found.groups())
        windows.append({"start": start, "end": end, "overnight": overnight and end < start})
    return windows


def _days_errors(exc: ApiError | ValidationError) -> list[FieldError]:
    errors = []
    for d in error_details(exc):
        field = d.get("field", "").removeprefix("body.")
        detail = d.get("message", "")
        if field.endswith(".overnight"):
            message = "cm.err.overnight"
        elif "overlaps" in detail:
            message = "cm.err.overlap"
        elif "exception" in detail:
            message = "cm.err.same_date"
        elif field.endswith(".date"):
            message = "cm.err.date"
        else:
            message = "cm.err.window"
        errors.append(
            FieldError(field=field, label="cm.days_title", message=message, detail=detail)
        )
    return errors


async def _days_page(
    request: web.Request,
    user: User,
    commune: communes.CommuneOut,
    *,
    status: int = 200,
    errors: list[FieldError] | None = None,
    weekly: dict[str, str] | None = None,
    exception: dict[str, str] | None = None,
) -> web.Response:
    windows = commune.windows
    if weekly is None:
        weekly = {}
        for day, own in windows.weekly.items():
            weekly[f"own_{day}"] = "1"
            weekly[f"speaker_{day}"] = windows_text(own.speaker)
            weekly[f"board_{day}"] = windows_text(own.board)
            nights = own.speaker + own.board
            weekly[f"overnight_{day}"] = "1" if any(w.end < w.start for w in nights) else ""
    saved = request.query.get("saved")
    return await render(
        request,
        "communes_days.html",
        status=status,
        commune=commune,
        weekdays=WEEKDAYS,
        weekly=weekly,
        exceptions=sorted(windows.exceptions, key=lambda e: e.date),
        exception=exception or {},
        text=windows_text,
        errors=errors or [],
        saved=saved if saved in ("weekly", "exception", "removed") else None,
        may_write=user.may(Permission.COMMUNES_WRITE),
    )


@page
async def commune_days(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    commune: communes.CommuneOut = await api(request, user, communes.get_commune)
    return await _days_page(request, user, commune)


async def _save_days(
    request: web.Request,
    user: User,
    commune: communes.CommuneOut,
    windows: dict[str, Any],
    again: dict[str, Any],
) -> web.Response | None:
    """PUT the commune's windows; on refusal the page again with what was typed (None: saved)."""
    try:
        body = communes.CommuneUpdate.model_validate({"windows": windows})
        await api(request, user, communes.update_commune, body=body)
    except (ValidationError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status != 422:
            raise
        return await _days_page(
            request, user, commune, status=422, errors=_days_errors(exc), **again
        )
    return None


def _unreadable(piece: str, field: str) -> FieldError:
    return FieldError(field=field, label="cm.days_title", message="cm.err.window", detail=piece)


@page
async def commune_weekly_save(request: web.Request) -> web.StreamResponse:
    """Each weekday: every day's windows, or its own (a weekend's, a market day's)."""
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    commune: communes.CommuneOut = await api(request, user, communes.get_commune)
    require(user, Permission.COMMUNES_WRITE, commune=commune.code)
    typed = {key: _get(form, key) for key in form if key != "csrf"}
    weekly: dict[str, Any] = {}
    unreadable: list[FieldError] = []
    for day in WEEKDAYS:
        if typed.get(f"own_{day}") != "1":
            continue
        night = typed.get(f"overnight_{day}") == "1"
        own: dict[str, Any] = {}
        for kind in WINDOW_KINDS:
            try:
                own[kind] = parse_windows_text(typed.get(f"{kind}_{day}", ""), night)
            except ValueError as exc:
                unreadable.append(_unreadable(str(exc), f"windows.weekly.{day}.{kind}"))
        weekly[str(day)] = own
    if unreadable:
        return await _days_page(request, user, commune, status=422, errors=unreadable, weekly=typed)
    windows = {**commune.windows.model_dump(mode="json"), "weekly": weekly}
    refused = await _save_days(request, user, commune, windows, {"weekly": typed})
    return refused or see_other(f"/communes/{commune.code}/days?saved=weekly")


@page
async def commune_exception_add(request: web.Request) -> web.StreamResponse:
    """A dated exception (a holiday, an event): that date's windows instead of the usual."""
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    commune: communes.CommuneOut = await api(request, user, communes.get_commune)
    require(user, Permission.COMMUNES_WRITE, commune=commune.code)
    typed = {key: _get(form, key) for key in ("date", "note", "speaker", "board", "overnight")}
    night = typed["overnight"] == "1"
    entry: dict[str, Any] = {"date": typed["date"], "note": typed["note"] or None}
    unreadable: list[FieldError] = []
    for kind in WINDOW_KINDS:
        try:
            entry[kind] = parse_windows_text(typed[kind], night)
        except ValueError as exc:
            unreadable.append(_unreadable(str(exc), f"windows.exceptions.{kind}"))
    if unreadable:
        return await _days_page(
            request, user, commune, status=422, errors=unreadable, exception=typed
        )
    current = commune.windows.model_dump(mode="json")
    windows = {**current, "exceptions": [*current["exceptions"], entry]}
    refused = await _save_days(request, user, commune, windows, {"exception": typed})
    return refused or see_other(f"/communes/{commune.code}/days?saved=exception")


@page
async def commune_exception_remove(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    commune: communes.CommuneOut = await api(request, user, communes.get_commune)
    require(user, Permission.COMMUNES_WRITE, commune=commune.code)
    gone = _get(form, "date")
    current = commune.windows.model_dump(mode="json")
    kept = [e for e in current["exceptions"] if e["date"] != gone]
    if len(kept) == len(current["exceptions"]):
        raise ApiError(404, "not_found", f"no exception on {gone!r}")
    refused = await _save_days(request, user, commune, {**current, "exceptions": kept}, {})
    return refused or see_other(f"/communes/{commune.code}/days?saved=removed")


@page
async def commune_order_move(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    commune: communes.CommuneOut = await api(request, user, communes.get_commune)
    require(user, Permission.BULLETINS_ORDER, commune=commune.code)
    order = [b.id for b in await _running_order(request, user, commune.code)]
    bulletin_id, move = _get(form, "bulletin"), _get(form, "move")
    if bulletin_id not in order or move not in ("up", "down"):
        # The list changed under the page (a bulletin expired or was cancelled): reload.
        return await render(request, "error.html", status=409, message_key="err.conflict")
    i = order.index(bulletin_id)
    j = i - 1 if move == "up" else i + 1
    if 0 <= j < len(order):
        order[i], order[j] = order[j], order[i]
    await api(
        request,
        user,
        bulletins.set_order,
        body=bulletins.OrderIn(bulletins=order),
    )
    return see_other(f"/communes/{commune.code}?saved=order#order")


# ================================================================ users


_USER_FIELDS = {
    "username": "us.username",
    "role": "us.role",
    "unit": "us.unit",
    "unit_new": "us.unit_new",
    "unit_new_name": "us.unit_new_name",
    "password": "us.temp_password",
    "confirm": "us.disable_confirm",
}
_USER_MESSAGES = {
    "weak_password": "us.err.weak_password",
    "shared_account": "us.err.shared_account",
    "bad_username": "us.err.bad_username",
    "bad_unit": "us.err.bad_unit",
    "unit_exists": "us.err.unit_exists",
    "exists": "us.err.exists",
    "unit_unnamed": "us.err.unit_unnamed",
    "last_admin": "us.err.last_admin",
    "disabled": "us.err.disabled",
    "not_confirmed": "us.err.not_confirmed",
}
#: Errors about the account as a whole, shown against the field that caused them.
_USER_ERROR_FIELD = {"exists": "username", "last_admin": "username", "disabled": "username"}
#: The register's fields (a new agency typed on the account form) as the form names them.
_NEW_UNIT_FIELDS = {"code": "unit_new", "name": "unit_new_name", "kind": "unit_new"}


def _user_errors(
    exc: ApiError | ValidationError, *, from_register: bool = False
) -> list[FieldError]:
    """`from_register`: the error is the register's, about the new agency typed on the form."""
    code = exc.error if isinstance(exc, ApiError) else "validation_error"
    if from_register and code == "exists":
        code = "unit_exists"

    def field_of(field: str) -> str:
        field = field or _USER_ERROR_FIELD.get(code, "")
        return _NEW_UNIT_FIELDS.get(field, field) if from_register else field

    message = _USER_MESSAGES.get(code, "us.err.invalid")
    return form_errors(exc, _USER_FIELDS, "us.form", message, field_of=field_of)


async def _users_list(
    request: web.Request,
    user: User,
    *,
    status: int = 200,
    errors: list[FieldError] | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:
    rows: list[users.UserOut] = await api(request, user, users.list_users)
    return await render(
        request,
        "users.html",
        status=status,
        rows=rows,
        roles=ROLES,
        **await _unit_choices(request, user, rows),
        errors=errors or [],
        values=values
        or {"username": "", "role": "", "unit": "", "unit_new": "", "unit_new_name": ""},
    )


async def _unit_choices(
    request: web.Request, user: User, rows: list[users.UserOut]
) -> dict[str, Any]:
    """What an account's unit may be, by name: the communes, the register's agencies and
    newspapers, and any agency an account carries that nobody has named yet (by its code)."""
    units: list[communes.CommuneOut] = await api(request, user, communes.list_communes)
    registered: list[unit_api.UnitOut] = await api(request, user, unit_api.list_units)
    known = {c.code for c in units} | {u.code for u in registered} | {PROVINCE}
    unnamed = sorted({r.unit for r in rows if r.unit not in known})
    agencies = [(u.code, u.name) for u in registered] + [(code, code) for code in unnamed]
    return {"units": units, "agencies": agencies}


async def _unit_of(request: web.Request, user: User, form: Form) -> str:
    """The unit chosen in the list, or a new agency's code typed under it (it wins). A new
    code the hub does not know yet is registered first, under the name typed beside it: an
    account's unit is never a code without a name. Refused (naming the field) when the name
    is missing; the register's own refusals come back as the form's fields."""
    code = _get(form, "unit_new")
    if not code:
        return _get(form, "unit")
    known: list[communes.CommuneOut] = await api(request, user, communes.list_communes)
    registered: list[unit_api.UnitOut] = await api(request, user, unit_api.list_units)
    if code == PROVINCE or code in {c.code for c in known} | {u.code for u in registered}:
        return code
    name = _get(form, "unit_new_name")
    if not name:
        raise ApiError(
            422,
            "unit_unnamed",
            [{"field": "unit_new_name", "message": f"name the new agency {code!r}"}],
        )
    try:
        body = unit_api.UnitCreate.model_validate({"code": code, "name": name})
        await api(request, user, unit_api.create_unit, body=body)
    except (ValidationError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status not in (409, 422):
            raise
        raise _NewUnitRefused(exc) from exc
    return code


class _NewUnitRefused(Exception):
    """The register refused the new agency typed on an account form."""

    def __init__(self, cause: ApiError | ValidationError) -> None:
        super().__init__(str(cause))
        self.cause = cause


@page
async def users_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    require(user, Permission.USERS_MANAGE)
    return await _users_list(request, user)


@page
async def user_create(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, Permission.USERS_MANAGE)
    values = {k: _get(form, k) for k in ("username", "role", "unit", "unit_new", "unit_new_name")}
    try:
        body = users.UserCreate.model_validate(
            {
                "username": values["username"],
                "role": values["role"],
                "unit": await _unit_of(request, user, form) or None,
                # A temporary password is taken exactly as typed: spaces may be part of it.
                "password": str(form.get("password", "")),
            }
        )
        created: users.UserOut = await api(request, user, users.create_user_route, body=body)
    except _NewUnitRefused as exc:
        errors = _user_errors(exc.cause, from_register=True)
        status = exc.cause.status if isinstance(exc.cause, ApiError) else 422
        return await _users_list(request, user, status=status, errors=errors, values=values)
    except ValidationError as exc:
        return await _users_list(request, user, status=422, errors=_user_errors(exc), values=values)
    except ApiError as exc:
        if exc.status not in (409, 422):
            raise
        return await _users_list(
            request, user, status=exc.status, errors=_user_errors(exc), values=values
        )
    return see_other(f"/users/{created.username}?done=created")


_USER_DONE = ("created", "lock", "unlock", "disable", "password", "move")


async def _user_detail(
    request: web.Request,
    user: User,
    *,
    status: int = 200,
    errors: list[FieldError] | None = None,
) -> web.Response:
    account: users.UserOut = await api(request, user, users.get_user)
    rows: list[users.UserOut] = await api(request, user, users.list_users)
    done = request.query.get("done")
    return await render(
        request,
        "users_detail.html",
        status=status,
        account=account,
        roles=ROLES,
        **await _unit_choices(request, user, rows),
        errors=errors or [],
        done=done if done in _USER_DONE else None,
    )


@page
async def user_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    require(user, Permission.USERS_MANAGE)
    return await _user_detail(request, user)


async def _user_action(request: web.Request, action: str) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, Permission.USERS_MANAGE)
    handlers = {
        "lock": users.lock_user,
        "unlock": users.unlock_user,
        "disable": users.disable_user,
        "password": users.reset_password_route,
        "move": users.move_user,
    }
    try:
        if action == "disable" and form.get("confirm") != "yes":
            # The browser's dialog can be skipped; the box cannot.
            raise ApiError(
                400,
                "not_confirmed",
                [{"field": "confirm", "message": "tick the box to disable for good"}],
            )
        body: BaseModel | None = None
        if action == "password":
            body = users.PasswordReset.model_validate({"password": str(form.get("password", ""))})
        elif action == "move":
            unit = await _unit_of(request, user, form)
            body = users.UserMove.model_validate({"role": _get(form, "role"), "unit": unit or None})
        await api(request, user, handlers[action], body=body)
    except _NewUnitRefused as exc:
        errors = _user_errors(exc.cause, from_register=True)
        status = exc.cause.status if isinstance(exc.cause, ApiError) else 422
        return await _user_detail(request, user, status=status, errors=errors)
    except ValidationError as exc:
        return await _user_detail(request, user, status=422, errors=_user_errors(exc))
    except ApiError as exc:
        if exc.status in (403, 404):
            raise
        return await _user_detail(request, user, status=exc.status, errors=_user_errors(exc))
    return see_other(f"/users/{request.match_info['username']}?done={action}")


@page
async def user_move(request: web.Request) -> web.StreamResponse:
    return await _user_action(request, "move")


@page
async def user_lock(request: web.Request) -> web.StreamResponse:
    return await _user_action(request, "lock")


@page
async def user_unlock(request: web.Request) -> web.StreamResponse:
    return await _user_action(request, "unlock")


@page
async def user_disable(request: web.Request) -> web.StreamResponse:
    return await _user_action(request, "disable")


@page
async def user_reset(request: web.Request) -> web.StreamResponse:
    return await _user_action(request, "password")


# ================================================================ audit log

_AUDIT_FILTERS = ("actor", "action", "object", "since", "until")


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), VN_TZ)


def _audit_query(
    params: dict[str, str], *, paged: bool
) -> tuple[audit_api.AuditQuery | None, list[FieldError]]:
    """The API's AuditQuery from the page's filters: dates are local days, `until` inclusive."""
    errors: list[FieldError] = []
    data: dict[str, Any] = {k: params[k] or None for k in ("actor", "action", "object")}
    for name in ("since", "until"):
        raw = params[name]
        if not raw:
            continue
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            errors.append(
                FieldError(name, f"au.{name}", "au.err.date", f"{raw!r} is not a date YYYY-MM-DD")
            )
            continue
        data[name] = _local_midnight(day + timedelta(days=1 if name == "until" else 0))
    if paged:
        data["limit"] = AUDIT_PAGE
        if params.get("before"):
            data["before"] = params["before"]
    if errors:
        return None, errors
    try:
        return audit_api.AuditQuery.model_validate(data), []
    except ValidationError as exc:
        return None, [
            FieldError(
                d["field"],
                f"au.{d['field']}" if d["field"] in _AUDIT_FILTERS else "au.filters",
                "au.err.invalid",
                d["message"],
            )
            for d in validation_detail(exc)
        ]


def _pretty(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def _audit_params(request: web.Request) -> dict[str, str]:
    params = {k: request.query.get(k, "").strip() for k in _AUDIT_FILTERS}
    params["before"] = request.query.get("before", "").strip()
    return params


@page
async def audit_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    require(user, Permission.AUDIT_READ)
    params = _audit_params(request)
    query, errors = _audit_query(params, paged=True)
    result: audit_api.AuditPage | None = None
    if query is not None:
        page = await api(request, user, audit_api.list_audit, query=query)
        result = page.body
    filters = {k: params[k] for k in _AUDIT_FILTERS if params[k]}
    older = (
        "/audit?" + urlencode({**filters, "before": result.next_before})
        if result is not None and result.next_before is not None
        else None
    )
    return await render(
        request,
        "audit.html",
        status=422 if errors else 200,
        values=params,
        errors=errors,
        entries=[(e, _pretty(e.before), _pretty(e.after)) for e in result.items]
        if result is not None
        else [],
        older=older,
        newest="/audit?" + urlencode(filters) if params["before"] else None,
        csv_url="/audit.csv" + ("?" + urlencode(filters) if filters else ""),
    )


@page
async def audit_csv(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    require(user, Permission.AUDIT_READ)
    query, _errors = _audit_query(_audit_params(request), paged=False)
    if query is None:
        # The same filters as the page: it shows what is wrong with them (422).
        return await audit_page(request)
    # The API's own export handler: one CSV writer, the same filters, the same permission.
    response: web.StreamResponse = await api(request, user, audit_api.export_audit, query=query)
    return response


# ================================================================ reports


def _report_query(
    request: web.Request,
) -> tuple[reports.ReportQuery | None, list[FieldError], dict[str, str]]:
    values = {k: request.query.get(k, "").strip() for k in ("month", "commune")}
    try:
        query = reports.ReportQuery.model_validate(
            {"month": values["month"] or None, "commune": values["commune"] or None}
        )
    except ValidationError as exc:
        return (
            None,
            [
                FieldError(
                    d["field"],
                    f"rp.{d['field']}" if d["field"] in ("month", "commune") else "rp.form",
                    "rp.err.month" if d["field"] == "month" else "rp.err.invalid",
                    d["message"],
                )
                for d in validation_detail(exc)
            ],
            values,
        )
    return query, [], values


def _chart(values: Iterable[tuple[str, float]], **kw: Any) -> reports.Chart:
    return reports.chart_bars(list(values), **kw)


@page
async def reports_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    require(user, Permission.FLEET_READ)
    query, errors, values = _report_query(request)
    choices: list[communes.CommuneOut] = await api(request, user, communes.list_communes)
    report: reports.MonthlyReport | None = None
    if query is not None:
        report = await api(request, user, reports.monthly_report, query=query)
    charts: dict[str, reports.Chart] = {}
    if report is not None:
        values["month"] = values["month"] or report.first_day.strftime("%Y-%m")
        charts = {
            "per_day": _chart((str(d.date.day), d.minutes) for d in report.per_day),
            "priority": _chart(
                ((t.key, t.minutes) for t in report.by_priority), width=360, height=180
            ),
            "uptime": _chart(
                ((u.name, u.percent or 0.0) for u in report.uptime),
                width=max(360, min(960, 48 * len(report.uptime))),
                height=180,
                scale=100.0,
            ),
        }
    params = {k: v for k, v in values.items() if v}
    going_up = await submission_context(request, user, report, query)
    return await render(
        request,
        "reports.html",
        **going_up,
        status=422 if errors else 200,
        report=report,
        charts=charts,
        errors=errors,
        values=values,
        communes=choices,
        csv_url="/reports.csv" + ("?" + urlencode(params) if params else ""),
    )


@page
async def reports_csv(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    require(user, Permission.FLEET_READ)
    query, _errors, _values = _report_query(request)
    if query is None:
        # The same month and commune as the page: it shows what is wrong with them (422).
        return await reports_page(request)
    response: web.StreamResponse = await api(request, user, reports.monthly_report_csv, query=query)
    return response


PAGES: list[tuple[str, str, PageHandler]] = [
    ("GET", "/communes", communes_page),
    ("POST", "/communes", commune_create),
    ("GET", "/communes/{code}", commune_page),
    ("POST", "/communes/{code}", commune_save),
    ("POST", "/communes/{code}/order", commune_order_move),
    ("GET", "/communes/{code}/days", commune_days),
    ("POST", "/communes/{code}/days/weekly", commune_weekly_save),
    ("POST", "/communes/{code}/days/exceptions", commune_exception_add),
    ("POST", "/communes/{code}/days/exceptions/remove", commune_exception_remove),
    ("GET", "/users", users_page),
    ("POST", "/users", user_create),
    ("GET", "/users/{username}", user_page),
    ("POST", "/users/{username}/lock", user_lock),
    ("POST", "/users/{username}/move", user_move),
    ("POST", "/users/{username}/unlock", user_unlock),
    ("POST", "/users/{username}/disable", user_disable),
    ("POST", "/users/{username}/password", user_reset),
    ("GET", "/audit", audit_page),
    ("GET", "/audit.csv", audit_csv),
    ("GET", "/reports", reports_page),
    ("GET", "/reports.csv", reports_csv),
]
