"""The agent's page on the commune LAN: read-only status for anyone, controls after login.

Routes
  GET  /                      status page (Vietnamese; ?lang=en switches, remembered by cookie)
  GET  /login, POST /login    login form; POST /logout
  POST /control/<action>      the page's forms (volume, stop, test-tone, test-pattern, resync)
  GET  /api/status            status JSON (no login: it is what the page shows to anyone)
  POST /api/login, /api/logout
  POST /api/volume {"volume"}, /api/stop, /api/test-tone, /api/test-pattern, /api/resync

Controls need a session cookie (HttpOnly, SameSite=Strict, 30 min idle) plus the session's
CSRF token (form field `csrf`, or header `X-CSRF-Token` for JSON), or HTTP Basic credentials
for scripts. No `WWW-Authenticate` challenge is ever sent, so a browser never caches Basic
credentials that another site could then ride on.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from aiohttp import web

from loa_contract import VN_TZ, PlayOutcome, Priority

from .agent import ControlRefused
from .i18n import page_labels, t
from .local_auth import LocalAuth, Session, parse_basic
from .uptime import UptimeBook, kept

if TYPE_CHECKING:
    from .agent import Agent

AGENT_KEY: web.AppKey[Agent] = web.AppKey("agent")
AUTH_KEY: web.AppKey[LocalAuth] = web.AppKey("auth")
JINJA_KEY: web.AppKey[jinja2.Environment] = web.AppKey("jinja")
UPTIME_KEY: web.AppKey[UptimeBook] = web.AppKey("uptime")

HERE = Path(__file__).parent
SESSION_COOKIE = "loa_session"
LOGIN_CSRF_COOKIE = "loa_login_csrf"
LANG_COOKIE = "loa_lang"
LANGS = ("vi", "en")
CHART_DAYS = 7
SECURITY_HEADERS = {
    # Everything is served from the device itself: there is no internet on a commune LAN.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Refused(Exception):
    """A request that changes nothing, with its status, error code and translated message."""

    def __init__(
        self, status: int, error: str, message_key: str, field: str | None = None, **values: Any
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.message_key = message_key
        self.field = field
        self.values = values


# ---------------------------------------------------------------- language and helpers


def request_lang(request: web.Request) -> str:
    wanted = request.query.get("lang") or request.cookies.get(LANG_COOKIE) or "vi"
    return wanted if wanted in LANGS else "vi"


def _remember_lang(request: web.Request, response: web.StreamResponse) -> None:
    if request.query.get("lang") in LANGS:
        response.set_cookie(
            LANG_COOKIE, request.query["lang"], max_age=365 * 86400, samesite="Lax", path="/"
        )


def _refusal_json(refused: Refused, lang: str) -> web.Response:
    body: dict[str, Any] = {
        "error": refused.error,
        "message": t(refused.message_key, lang, **refused.values),
    }
    if refused.field is not None:
        body["detail"] = [{"field": refused.field, "message": body["message"]}]
    return web.json_response(body, status=refused.status, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _embed(value: Any) -> str:
    """JSON for a <script type="application/json"> block: no "</script>" can close it early."""
    return _dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


#: Messages a redirect may ask the page to show (?msg=…), with the values they take.
PAGE_MESSAGES = {
    "page_msg_volume",
    "page_msg_stopped",
    "page_msg_nothing_to_stop",
    "page_msg_test_tone",
    "page_msg_test_pattern",
    "page_msg_resync",
    "page_msg_logged_out",
    "page_err_emergency",
    "page_err_emergency_test",
    "page_err_csrf",
    "page_err_volume",
    "page_err_no_audio",
    "page_err_no_display",
}


# ---------------------------------------------------------------- status


def _temperature(agent: Agent) -> float | None:
    value = agent.hardware.get("soc_temperature_celsius")
    if isinstance(value, int | float):
        return float(value)
    from .health import _temperature as sensor

    return sensor()


async def page_status(app: web.Application) -> dict[str, Any]:
    agent = app[AGENT_KEY]
    assert agent.store is not None
    status = await agent.status()
    held = agent.bulletins()
    now = agent.clock.now().astimezone(VN_TZ)
    days = [(now.date() - timedelta(days=n)).isoformat() for n in range(CHART_DAYS - 1, -1, -1)]
    since = datetime.combine(now.date() - timedelta(days=CHART_DAYS - 1), datetime.min.time())
    plays_by_day = dict.fromkeys(days, 0)
    for started, outcome in await agent.store.play_starts(since.replace(tzinfo=VN_TZ)):
        day = started.astimezone(VN_TZ).date().isoformat()
        # A failed airing was not heard (or seen): the recent list shows it, not this count.
        if day in plays_by_day and outcome is not PlayOutcome.FAILED:
            plays_by_day[day] += 1
    recent = []
    for proof in await agent.store.recent_plays(12):
        bulletin = held.get(proof.bulletin_id)
        recent.append(
            {
                "bulletin_id": proof.bulletin_id,
                "title": bulletin.title if bulletin else proof.bulletin_id,
                "priority": proof.priority.value,
                "started_at": proof.started_at.isoformat(),
                "ended_at": proof.ended_at.isoformat(),
                "outcome": proof.outcome.value,
            }
        )
    disk = await asyncio.to_thread(shutil.disk_usage, agent.config.data_dir)
    temperature = await asyncio.to_thread(_temperature, agent)
    current = agent.now_playing()
    duration = None
    if current is not None:
        bulletin = held.get(current.bulletin_id)
        if bulletin is not None and bulletin.kind.value in ("text", "image"):
            duration = float(bulletin.display_seconds)
    status.update(
        {
            "now_local": now.isoformat(),
            "now_playing_duration_s": duration,
            "recent_plays": recent,
            "chart_days": days,
            "plays_by_day": [plays_by_day[day] for day in days],
            "uptime_hours_by_day": app[UPTIME_KEY].hours(days),
            "system": {
                "disk_free_bytes": disk.free,
                "disk_total_bytes": disk.total,
                "temperature_celsius": temperature,
                "agent_uptime_s": round(time.monotonic() - app[UPTIME_KEY].started, 1),
            },
            "capabilities": {
                "audio": agent.profile.audio is not None,
                "display": agent.profile.display is not None,
            },
        }
    )
    return status


async def api_status(request: web.Request) -> web.Response:
    return web.json_response(await page_status(request.app), dumps=_dumps)


# ---------------------------------------------------------------- authentication


def _session(request: web.Request) -> tuple[str | None, Session | None]:
    token = request.cookies.get(SESSION_COOKIE)
    return token, request.app[AUTH_KEY].session(token)


async def _authorize(request: web.Request, *, csrf: str | None) -> str:
    """The user a control request acts for; raises Refused otherwise.

    `csrf` is the token the request carried (form field or header), checked against the
    session's. Basic credentials need none: a browser never sends them unasked here.
    """
    auth = request.app[AUTH_KEY]
    basic = parse_basic(request.headers.get("Authorization"))
    if basic is not None:
        await _login_check(auth, *basic)
        return basic[0]
    _, session = _session(request)
    if session is None:
        raise Refused(401, "login_required", "page_err_login_required")
    if not csrf or not hmac.compare_digest(csrf, session.csrf):
        raise Refused(403, "csrf", "page_err_csrf")
    return session.username


async def _login_check(auth: LocalAuth, username: str, password: str) -> None:
    locked = auth.locked_for(username)
    if locked > 0:
        raise Refused(429, "locked", "page_err_locked", minutes=max(1, round(locked / 60)))
    if not await auth.check(username, password):
        locked = auth.locked_for(username)
        if locked > 0:
            raise Refused(429, "locked", "page_err_locked", minutes=max(1, round(locked / 60)))
        raise Refused(401, "bad_credentials", "page_err_bad_login")


def _set_session_cookie(response: web.StreamResponse, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="Strict", path="/", max_age=None
    )


# ---------------------------------------------------------------- actions


async def _do_volume(agent: Agent, raw: Any) -> dict[str, Any]:
    if isinstance(raw, str) and raw.strip().lstrip("-").isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 100:
        raise Refused(422, "bad_volume", "page_err_volume", field="volume")
    await agent.set_volume(raw)
    return {"volume": agent.volume(), "message_key": "page_msg_volume", "values": {"volume": raw}}


async def _do_stop(agent: Agent) -> dict[str, Any]:
    current = agent.now_playing()
    if current is None:
        return {"stopped": None, "message_key": "page_msg_nothing_to_stop"}
    try:
        # The agent enforces the rule itself (an emergency only ends by the province's
        # cancel, DESIGN.md §2); the page only translates its refusal.
        agent.request("stop", origin="local")
    except ControlRefused as refused:
        raise Refused(409, refused.code, "page_err_emergency") from None
    return {"stopped": current.bulletin_id, "message_key": "page_msg_stopped"}


async def _do_test(agent: Agent, control: str) -> dict[str, Any]:
    if control == "test_tone" and agent.profile.audio is None:
        raise Refused(409, "no_audio", "page_err_no_audio")
    if control == "test_pattern" and agent.profile.display is None:
        raise Refused(409, "no_display", "page_err_no_display")
    current = agent.now_playing()
    if current is not None and current.priority is Priority.EMERGENCY:
        raise Refused(409, "emergency_on_air", "page_err_emergency_test")
    agent.request(control)
    return {"requested": control, "message_key": f"page_msg_{control}"}


async def _do_resync(agent: Agent) -> dict[str, Any]:
    agent.request("resync")
    return {"requested": "resync", "message_key": "page_msg_resync"}


ACTIONS: dict[str, Callable[[Agent, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "volume": lambda agent, body: _do_volume(agent, body.get("volume")),
    "stop": lambda agent, body: _do_stop(agent),
    "test-tone": lambda agent, body: _do_test(agent, "test_tone"),
    "test-pattern": lambda agent, body: _do_test(agent, "test_pattern"),
    "resync": lambda agent, body: _do_resync(agent),
}


def _api_action(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        lang = request_lang(request)
        try:
            await _authorize(request, csrf=request.headers.get("X-CSRF-Token"))
            body = await _json_body(request, required=name == "volume")
            result = await ACTIONS[name](request.app[AGENT_KEY], body)
        except Refused as refused:
            return _refusal_json(refused, lang)
        message = t(result.pop("message_key"), lang, **result.pop("values", {}))
        return web.json_response({"ok": True, "message": message, **result}, dumps=_dumps)

    return handler


async def _json_body(request: web.Request, *, required: bool) -> dict[str, Any]:
    if not request.can_read_body:
        if required:
            raise Refused(400, "bad_json", "page_err_json")
        return {}
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise Refused(400, "bad_json", "page_err_json") from None
    if not isinstance(body, dict):
        raise Refused(400, "bad_json", "page_err_json")
    return body


async def api_login(request: web.Request) -> web.Response:
    lang = request_lang(request)
    try:
        body = await _json_body(request, required=True)
        for field in ("username", "password"):
            if not isinstance(body.get(field), str) or not body[field]:
                raise Refused(422, "bad_field", "page_err_field", field=field, name=field)
        await _login_check(request.app[AUTH_KEY], body["username"], body["password"])
    except Refused as refused:
        return _refusal_json(refused, lang)
    token, session = request.app[AUTH_KEY].open_session(body["username"])
    response = web.json_response({"ok": True, "csrf_token": session.csrf})
    _set_session_cookie(response, token)
    return response


async def api_logout(request: web.Request) -> web.Response:
    request.app[AUTH_KEY].close_session(request.cookies.get(SESSION_COOKIE))
    response = web.json_response({"ok": True})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


# ---------------------------------------------------------------- HTML pages


def _render(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    lang = request_lang(request)
    agent = request.app[AGENT_KEY]

    def tr(key: str, **values: Any) -> str:
        return t(key, lang, **values)

    html = (
        request.app[JINJA_KEY]
        .get_template(template)
        .render(
            t=tr,
            lang=lang,
            other_lang="en" if lang == "vi" else "vi",
            device_id=agent.identity.device_id,
            device_kind=agent.profile.device_kind.value,
            commune=agent.commune(),
            commune_name=agent.commune_name(),
            static_url=lambda name: str(request.app.router["static"].url_for(filename=name)),
            **context,
        )
    )
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    _remember_lang(request, response)
    return response


async def index(request: web.Request) -> web.Response:
    _, session = _session(request)
    lang = request_lang(request)
    message = None
    msg = request.query.get("msg", "")
    if msg in PAGE_MESSAGES:
        volume = request.query.get("volume", "")
        message = t(msg, lang, volume=volume if volume.isdigit() else "")
    status = await page_status(request.app)
    return _render(
        request,
        "index.html",
        session=session,
        message=message,
        message_is_error=msg.startswith("page_err_"),
        labels_json=_embed(page_labels(lang)),
        status_json=_embed(status),
        volume=status["volume"],
        capabilities=status["capabilities"],
    )


def _login_page(request: web.Request, status: int = 200, error: str | None = None) -> web.Response:
    token = secrets.token_urlsafe(24)
    response = _render(request, "login.html", status=status, csrf=token, error=error)
    # Double-submit: the form's token must match this cookie, so another site cannot post a
    # login (login CSRF) — it can neither read the cookie nor set it (SameSite=Strict).
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="Strict", path="/")
    return response


async def login_form(request: web.Request) -> web.Response:
    return _login_page(request)


async def login_post(request: web.Request) -> web.StreamResponse:
    lang = request_lang(request)
    form = await request.post()
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    given = str(form.get("csrf", ""))
    if not expected or not hmac.compare_digest(given, expected):
        return _login_page(request, 403, t("page_err_csrf", lang))
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    try:
        await _login_check(request.app[AUTH_KEY], username, password)
    except Refused as refused:
        return _login_page(request, refused.status, t(refused.message_key, lang, **refused.values))
    token, _ = request.app[AUTH_KEY].open_session(username)
    response = _redirect(f"/?lang={lang}")
    _set_session_cookie(response, token)
    response.del_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


async def logout_post(request: web.Request) -> web.StreamResponse:
    lang = request_lang(request)
    token, session = _session(request)
    form = await request.post()
    if session is not None and hmac.compare_digest(str(form.get("csrf", "")), session.csrf):
        request.app[AUTH_KEY].close_session(token)
    response = _redirect(f"/?lang={lang}&msg=page_msg_logged_out")
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def control_post(request: web.Request) -> web.StreamResponse:
    lang = request_lang(request)
    name = request.match_info["action"]
    if name not in ACTIONS:
        raise web.HTTPNotFound()
    form = await request.post()
    try:
        await _authorize(request, csrf=str(form.get("csrf", "")))
        result = await ACTIONS[name](request.app[AGENT_KEY], dict(form))
    except Refused as refused:
        if refused.status == 401:
            return _render(
                request,
                "refused.html",
                status=401,
                error=t(refused.message_key, lang, **refused.values),
                login=True,
            )
        return _redirect(f"/?lang={lang}&msg={refused.message_key}")
    extra = f"&volume={result['volume']}" if "volume" in result else ""
    return _redirect(f"/?lang={lang}&msg={result['message_key']}{extra}")


# ---------------------------------------------------------------- the app


@web.middleware
async def _headers(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        for name, value in SECURITY_HEADERS.items():
            exc.headers.setdefault(name, value)
        raise
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


async def _uptime_ctx(app: web.Application) -> AsyncIterator[None]:
    async with kept(app[UPTIME_KEY]):
        yield


def create_local_app(
    agent: Agent,
    *,
    auth_clock: Callable[[], float] = time.monotonic,
    uptime: UptimeBook | None = None,
) -> web.Application:
    """The page's app. Given no `uptime`, the app keeps its own book while it runs; the agent's
    listener (edge_agent/local_server.py) passes the one it has kept since the agent started."""
    app = web.Application(middlewares=[_headers], client_max_size=64 * 1024)
    app[AGENT_KEY] = agent
    assert agent.store is not None, "start the agent before serving its page"
    app[AUTH_KEY] = LocalAuth(agent.store, clock=auth_clock)
    app[JINJA_KEY] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    if uptime is None:
        app[UPTIME_KEY] = UptimeBook(agent)
        app.cleanup_ctx.append(_uptime_ctx)
    else:
        app[UPTIME_KEY] = uptime
    app.router.add_get("/", index)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login_post)
    app.router.add_post("/logout", logout_post)
    app.router.add_post("/control/{action}", control_post)
    app.router.add_get("/api/status", api_status)
    app.router.add_post("/api/login", api_login)
    app.router.add_post("/api/logout", api_logout)
    for name in ACTIONS:
        app.router.add_post(f"/api/{name}", _api_action(name))
    app.router.add_static("/static/", HERE / "static", append_version=True, name="static")
    return app
