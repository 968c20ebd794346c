"""The server-rendered operator console: login, dashboard, fleet, bulletins and emergencies.

Pages call the JSON API's own handlers (with a `Ctx` built for the cookie session's user), so
the console sees exactly what the API would show the same account: the same unit scope, the
same permission checks, the same emergency code path and audit trail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict, get_args

import jinja2
from aiohttp import web
from pydantic import BaseModel, ValidationError

from loa_contract import Priority
from loa_contract.models import VN_TZ

from . import bulletins, communes
from .appkeys import CLOCK, CONFIG, DB, ROUTES
from .audit_words import action_words, detail_words
from .auth import PROVINCE, Permission, User, change_password, require
from .db import Database
from .errors import ApiError, refuse_nul, validation_detail
from .form_errors import explain, limits_of
from .i18n import CATALOGUE, LANGS, Lang, pick_lang, translate, translate_plural
from .paging import MAX_CURSOR, MAX_LIMIT, Page, bad_cursor
from .routing import Ctx, HandlerFn
from .store import communes as store_communes
from .store import maintenance
from .store import units as store_units
from .web_session import (
    check_csrf,
    csrf_token,
    current_session,
    end_session,
    page_user,
    start_session,
)

HERE = Path(__file__).parent
LANG_COOKIE = "loa_lang"
#: The states a bulletin list can show (a deleted draft is in none).
STATES: tuple[str, ...] = tuple(s for s in get_args(bulletins.State) if s != "deleted")

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(value: datetime | str | None) -> str:
    """Operators read local (Vietnam) time, whatever the hub stores."""
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(VN_TZ).strftime("%d/%m/%Y %H:%M")


_env.filters["when"] = _when

PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class FieldError:
    """One problem with one form field, as the page shows it."""

    #: The API's field path ("windows.speaker[1].end", "password").
    field: str
    #: Label key of the field as the form names it.
    label: str
    #: Label key of the explanation.
    message: str
    #: The API's own words (English): kept for logs and tests, never shown on a page.
    detail: str
    #: For window rows: which list and which row of the form (1-based).
    kind: str | None = None
    row: int | None = None
    #: Pydantic's error type and its limits, said in words by `form_errors.explain`.
    problem: str | None = None
    limits: tuple[tuple[str, Any], ...] = ()


def error_details(exc: ApiError | ValidationError) -> list[dict[str, Any]]:
    """An API error's or a validation error's problems, each naming its field; a validation
    error's also with its `type` and `limits` (for `form_errors.explain`)."""
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_input=False)
        return [
            {**d, "type": e["type"], "limits": limits_of(e.get("ctx"))}
            for d, e in zip(validation_detail(exc), errors, strict=True)
        ]
    if isinstance(exc.detail, list):
        return [d for d in exc.detail if isinstance(d, dict)]
    return [{"field": "", "message": str(exc.detail or exc.error)}]


def request_lang(request: web.Request) -> Lang:
    asked = request.query.get("lang")
    return pick_lang(asked if asked in LANGS else request.cookies.get(LANG_COOKIE))


def _switch_url(request: web.Request, lang: Lang) -> str:
    query = {k: v for k, v in request.query.items() if k != "lang"}
    query["lang"] = "vi" if lang == "en" else "en"
    return str(request.rel_url.with_query(query))


async def render(
    request: web.Request, template: str, *, status: int = 200, **context: Any
) -> web.Response:
    lang = request_lang(request)
    session = await current_session(request)
    user = session.user if session is not None else None
    # Planned maintenance and switch-overs, on every page a signed-in user sees.
    notices = await maintenance.in_force(request.app[DB], request.app[CLOCK]()) if user else []
    names = await unit_names(request.app[DB]) if user is not None else UnitNames({}, frozenset())
    html = _env.get_template(template).render(
        t=lambda key: translate(key, lang),
        tn=lambda key, n: translate_plural(key, n, lang),
        lang=lang,
        user=user,
        csrf=csrf_token(request),
        path=request.path,
        switch_url=_switch_url(request, lang),
        may=(lambda p: user is not None and user.may(Permission(p))),
        maintenance_notices=notices,
        unit_name=lambda code: unit_label(code, names, lang),
        commune_choice=lambda c: commune_choice(c.code, c.name, names),
        num=lambda value, digits=0: format_number(value, digits, lang),
        explain=lambda e: explain(e.problem, dict(e.limits), lang),
        profile_name=lambda code: profile_label(code, lang),
        action_words=lambda action: action_words(action, lang),
        detail_words=lambda detail: detail_words(detail, lang),
        **context,
    )
    response = web.Response(text=html, status=status, content_type="text/html")
    if request.query.get("lang") in LANGS:
        response.set_cookie(
            LANG_COOKIE, lang, max_age=365 * 86400, path="/", httponly=True, samesite="Lax"
        )
    # Pages carry CSRF tokens and fleet state: never cached, never framed.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'"
    return response


def refresh_idle_s(request: web.Request) -> int:
    """How long a self-refreshing part (console.js data-refresh) goes on without input: half
    the idle limit, so an unattended page's session still ends."""
    return int(request.app[CONFIG].session_idle.total_seconds() // 2)


def profile_label(code: str | None, lang: Lang) -> str:
    """A hardware profile as people call it ("Màn hình LCD 1080p"); an unknown one by code."""
    if not code:
        return "—"
    key = f"profile.{code}"
    return translate(key, lang) if key in CATALOGUE else code


def format_number(value: float, digits: int, lang: Lang) -> str:
    """A number as the reader writes it: 1.234,5 in Vietnamese, 1,234.5 in English."""
    text = f"{value:,.{digits}f}"
    if lang == "vi":
        text = text.replace(",", " ").replace(".", ",").replace(" ", ".")
    return text


@dataclass(frozen=True)
class UnitNames:
    """What the console calls each unit: communes and registered agencies by their codes."""

    #: A commune's or a registered agency's name by its code.
    names: Mapping[str, str]
    #: Communes whose name another commune shares: only they show their code beside it.
    ambiguous: frozenset[str]


async def unit_names(db: Database) -> UnitNames:
    """People read "Xã Tân An" and "Báo Hải Phòng", not "xa-tan-an" and "baotinh"."""
    every = await store_communes.every_commune(db)
    seen = Counter(c.name for c in every)
    names = {u.code: u.name for u in await store_units.every_unit(db)}
    names.update({c.code: c.name for c in every})
    return UnitNames(names, frozenset(c.code for c in every if seen[c.name] > 1))


def unit_label(code: str | None, names: UnitNames, lang: Lang) -> str:
    """A unit as people name it: the province, a commune's or a registered agency's name, or
    the bare code of an agency nobody has named yet (the units page offers to name it)."""
    if not code:
        return "—"
    if code == PROVINCE:
        return translate("unit.province", lang)
    return names.names.get(code, code)


def commune_choice(code: str, name: str, names: UnitNames) -> str:
    """A commune in a drop-down or a list of boxes: its name, with its code only when another
    commune has the same name."""
    return f"{name} ({code})" if code in names.ambiguous else name


def see_other(location: str) -> web.Response:
    # 303 so a reload after a POST does not resend the form (an emergency must not fire twice).
    return web.Response(status=303, headers={"Location": location})


_ERROR_KEYS = {
    "csrf": "err.csrf",
    "forbidden": "err.forbidden",
    "out_of_scope": "err.forbidden",
    "not_found": "err.not_found",
    "illegal_transition": "err.conflict",
}


def page(handler: PageHandler) -> PageHandler:
    """API errors raised inside a page become a readable page, not the API's JSON."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            key = _ERROR_KEYS.get(exc.error, "err.generic")
            return await render(request, "error.html", status=exc.status, message_key=key)

    wrapped.__name__ = handler.__name__
    return wrapped


def declared_permission(app: web.Application, handler: HandlerFn) -> Permission | None:
    """The permission `handler`'s route declares: the console checks exactly what the API
    would, from the one declaration, so a page cannot ask for less than its route."""
    specs = [spec for spec in app[ROUTES] if spec.handler is handler]
    if not specs or any(spec.auth != "operator" for spec in specs):
        raise RuntimeError(f"{handler.__name__} is not an operator route's handler")
    permissions = {spec.permission for spec in specs}
    if len(permissions) != 1:
        raise RuntimeError(f"{handler.__name__} is routed with different permissions")
    return permissions.pop()


async def api(
    request: web.Request,
    user: User,
    handler: HandlerFn,
    *,
    body: BaseModel | None = None,
    query: BaseModel | None = None,
) -> Any:
    """Run a JSON API handler for a console user, with its route's own permission check."""
    permission = declared_permission(request.app, handler)
    if permission is not None:
        require(user, permission)
    for given in (body, query):
        if given is not None:
            refuse_nul(given.model_dump())
    return await handler(Ctx(request, body, query, user, None))


async def api_all(
    request: web.Request,
    user: User,
    handler: HandlerFn,
    *,
    query: BaseModel,
) -> list[Any]:
    """Every row of a paged list handler, page after page: for pages that need the whole list
    (a summary, a running order), not a screenful of it."""
    rows: list[Any] = []
    query = query.model_copy(update={"limit": MAX_LIMIT})
    while True:
        page: Page[list[Any]] = await api(request, user, handler, query=query)
        rows += page.body
        if page.next_before is None:
            return rows
        query = query.model_copy(update={"before": page.next_before})


def page_cursor(request: web.Request) -> str | None:
    """The `before` of a paged console list (the API checks what it names)."""
    before = request.query.get("before") or None
    if before is not None and len(before) > MAX_CURSOR:
        raise bad_cursor()
    return before


class PagerLinks(TypedDict):
    """A list page's pager, as template variables."""

    first_url: str | None
    next_url: str | None


#: Query parameters that only carry a flash after a form's redirect (see_other).
FLASH_PARAMS = frozenset({"saved", "done", "deleted", "error"})


def pager_links(
    request: web.Request, next_before: str | None, path: str | None = None
) -> PagerLinks:
    """The pager of a console list: its first page and its next one, same filters (on
    `path` when the list is a fragment of another page)."""
    here = request.rel_url
    # A flash that said what the last form did ("saved", "deleted"…) is not the list's to
    # carry: on another page it would say it again.
    kept = {k: v for k, v in here.query.items() if k not in FLASH_PARAMS}
    here = here.with_path(path or here.path).with_query(kept)
    first = here.with_query({k: v for k, v in here.query.items() if k != "before"})
    return {
        "first_url": str(first) if "before" in here.query else None,
        "next_url": str(here.update_query(before=next_before)) if next_before else None,
    }


def _safe_next(value: str | None) -> str:
    # Only a local path: an attacker's link must not turn the login page into a redirector.
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


# ---------------------------------------------------------------- login and password


@page
async def login_form(request: web.Request) -> web.StreamResponse:
    if await current_session(request) is not None:
        return see_other("/")
    return await render(
        request, "login.html", next=_safe_next(request.query.get("next")), error_key=None
    )


@page
async def login_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    check_csrf(request, form)
    target = _safe_next(str(form.get("next") or ""))
    response = see_other(target)
    try:
        result = await start_session(
            request, response, str(form.get("username", "")), str(form.get("password", ""))
        )
    except ApiError:
        config = request.app[CONFIG]
        return await render(
            request,
            "login.html",
            status=401,
            next=target,
            error_key="login.failed",
            error_args={
                "attempts": config.max_failed_logins,
                "minutes": int(config.lockout.total_seconds() // 60),
                "until": (request.app[CLOCK]() + config.lockout)
                .astimezone(VN_TZ)
                .strftime("%H:%M %d/%m/%Y"),
            },
        )
    if result.user.must_change_password:
        response.headers["Location"] = "/password"
    return response


@page
async def password_form(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    return await render(
        request, "password.html", forced=user.must_change_password, error_key=None, detail=None
    )


_PASSWORD_ERRORS = {
    "wrong_password": "password.wrong_old",
    "weak_password": "password.weak",
    "password_reused": "password.reused",
}


@page
async def password_submit(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    old, new = str(form.get("old_password", "")), str(form.get("new_password", ""))

    async def again(key: str, status: int) -> web.Response:
        return await render(
            request,
            "password.html",
            status=status,
            forced=user.must_change_password,
            error_key=key,
        )

    if new != str(form.get("repeat_password", "")):
        return await again("password.mismatch", 422)
    app = request.app
    try:
        await change_password(
            app[DB], user, old, new, config=app[CONFIG], now=app[CLOCK](), address=request.remote
        )
    except ApiError as exc:
        return await again(_PASSWORD_ERRORS.get(exc.error, "err.generic"), exc.status)
    # Every session of the account just ended; the person who proved both passwords goes on.
    response = see_other("/")
    await start_session(request, response, user.username, new)
    return response


@page
async def logout(request: web.Request) -> web.StreamResponse:
    await page_user(request)
    check_csrf(request, await request.post())
    response = see_other("/login")
    await end_session(request, response)
    return response


# ---------------------------------------------------------------- read-only pages


# ---------------------------------------------------------------- emergencies


#: The emergency form's fields, each with the label key the page shows it under.
_EMERGENCY_FIELDS = {
    "title": "em.headline",
    "text": "em.text",
    "targets": "em.target",
    "valid_minutes": "em.minutes",
    "repeats": "em.repeats",
    "interval_s": "em.interval",
    "until_cancelled": "em.until_cancelled",
}


def _emergency_defaults(user: User) -> dict[str, str]:
    repeats = (
        bulletins.COMMUNE_EMERGENCY_REPEATS
        if user.commune is not None
        else bulletins.PROVINCE_EMERGENCY_REPEATS
    )
    return {
        "title": "",
        "text": "",
        "commune": "",
        "minutes": "60",
        "repeats": str(repeats),
        "interval_s": str(bulletins.EMERGENCY_INTERVAL_S),
        "until_cancelled": "",
    }


def form_errors(
    exc: ApiError | ValidationError,
    labels: Mapping[str, str],
    default_label: str,
    message: str,
    *,
    field_of: Callable[[str], str] | None = None,
) -> list[FieldError]:
    """The API's refusal as a form's errors: each field named as the API names it, without
    "body."; labelled by its first name from `labels`; explained by `message`. `field_of`
    renames a field for the form (and names the field of an error that has none)."""
    errors = []
    for d in error_details(exc):
        field = d.get("field", "").removeprefix("body.")
        if field_of is not None:
            field = field_of(field)
        errors.append(
            FieldError(
                field=field or "body",
                label=labels.get(field.split(".")[0].split("[")[0], default_label),
                message=message,
                detail=d.get("message", ""),
                problem=d.get("type"),
                limits=d.get("limits", ()),
            )
        )
    return errors


def _emergency_errors(exc: ApiError | ValidationError) -> list[FieldError]:
    return form_errors(exc, _EMERGENCY_FIELDS, "em.title", "em.err.invalid")


async def _emergency_form(
    request: web.Request,
    user: User,
    *,
    status: int = 200,
    error_key: str | None = None,
    errors: list[FieldError] | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:
    active: list[bulletins.BulletinOut] = await api_all(
        request,
        user,
        bulletins.list_bulletins,
        query=bulletins.BulletinQuery(state="published", priority=Priority.EMERGENCY),
    )
    choices: list[communes.CommuneOut] = await api(request, user, communes.list_communes)
    return await render(
        request,
        "emergency.html",
        status=status,
        active=active,
        communes=choices,
        error_key=error_key,
        errors=errors or [],
        errors_title="em.errors_title",
        values=values or _emergency_defaults(user),
    )


@page
async def emergency_form(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    require(user, Permission.EMERGENCY)
    return await _emergency_form(request, user)


def _whole_number(values: dict[str, str], key: str, field: str) -> int | None:
    """A number field as typed; an empty one takes the API's default."""
    text = values[key]
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        # Typed as pydantic would type it, so the page says it in words (form_errors).
        problem = {"field": field, "message": "a whole number", "type": "int_parsing"}
        raise ApiError(422, "validation_error", [problem]) from None


@page
async def emergency_submit(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, Permission.EMERGENCY)
    values = {
        key: str(form.get(key, "")).strip()
        for key in ("title", "text", "commune", "minutes", "repeats", "interval_s")
    }
    values["until_cancelled"] = "yes" if form.get("until_cancelled") == "yes" else ""
    # The browser's confirm() can be skipped (no JavaScript, a script); the box cannot.
    if form.get("confirm") != "yes":
        return await _emergency_form(
            request, user, status=400, error_key="em.not_confirmed", values=values
        )
    if not values["title"] or not values["text"]:
        return await _emergency_form(
            request, user, status=422, error_key="em.needs_text", values=values
        )
    commune = values["commune"]
    try:
        fields: dict[str, Any] = {
            "valid_minutes": _whole_number(values, "minutes", "valid_minutes"),
            "repeats": _whole_number(values, "repeats", "repeats"),
            "interval_s": _whole_number(values, "interval_s", "interval_s"),
        }
        body = bulletins.EmergencyCreate(
            title=values["title"],
            text=values["text"],
            targets=bulletins.TargetsIn(communes=[commune]) if commune else None,
            until_cancelled=bool(values["until_cancelled"]),
            **{k: v for k, v in fields.items() if v is not None},
        )
        created: bulletins.BulletinOut = await api(
            request, user, bulletins.create_emergency, body=body
        )
    except (ValidationError, ApiError) as exc:
        if isinstance(exc, ApiError) and exc.status != 422:
            raise
        return await _emergency_form(
            request, user, status=422, errors=_emergency_errors(exc), values=values
        )
    return see_other(f"/emergency/{created.id}")


@page
async def emergency_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    progress: bulletins.EmergencyStatus = await api(request, user, bulletins.emergency_status)
    if request.query.get("part") == "live":
        # Only the counts and the device table: console.js swaps them in every few seconds.
        return await render(request, "_emergency_live.html", progress=progress)
    return await render(
        request, "emergency_status.html", progress=progress, idle_s=refresh_idle_s(request)
    )


@page
async def emergency_cancel(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    check_csrf(request, await request.post())
    await api(request, user, bulletins.cancel_emergency)
    return see_other(f"/emergency/{request.match_info['id']}")


#: The core pages: (method, path, handler). `hub.pages` joins them with the other areas'.
PAGES: list[tuple[str, str, PageHandler]] = [
    ("GET", "/login", login_form),
    ("POST", "/login", login_submit),
    ("GET", "/password", password_form),
    ("POST", "/password", password_submit),
    ("POST", "/logout", logout),
    ("GET", "/emergency", emergency_form),
    ("POST", "/emergency", emergency_submit),
    ("GET", "/emergency/{id}", emergency_page),
    ("POST", "/emergency/{id}/cancel", emergency_cancel),
]
