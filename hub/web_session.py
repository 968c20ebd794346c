"""Cookie sessions and CSRF for the server-rendered console (the pages are built elsewhere).

The console and the JSON API share one account model: the same login (lockout, audit), the
same idle expiry, the same "must change password" rule; only the carrier differs. A cookie
session is its own row kind ("cookie"), so a stolen API token never opens the console and a
console cookie never authorises the JSON API (which takes only Bearer tokens, so cross-site
requests cannot ride on it).

For a page handler:

    user = await page_user(request)                      # or raise login_redirect(request)
    token = csrf_token(request)                          # put in every <form> as "csrf"
    form = await request.post(); check_csrf(request, form)   # on every POST

Login and logout pages call `start_session` / `end_session` with the response they return.
Install `session_middleware` on the app (create_app does) so pre-login CSRF cookies are set.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Mapping
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .appkeys import CLOCK, CONFIG, DB
from .auth import LoginResult, Session, User, login, session_for_token
from .auth import end_session as _end_db_session
from .errors import ApiError, Handler, is_declared_route
from .security import new_token

COOKIE = "loa_session"
#: Double-submit cookie that protects the login form itself, before any session exists.
PRE_COOKIE = "loa_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_PATH = "/login"
#: Pages an account that must change its password may still open.
PASSWORD_PATHS = frozenset({"/password", "/logout"})

_SESSION = web.RequestKey("loa_session", object)
_PRE_TOKEN = web.RequestKey("loa_pre_csrf", str)


def _secure(request: web.Request) -> bool:
    configured = request.app[CONFIG].cookie_secure
    return request.secure if configured is None else configured


def _set_cookie(
    request: web.Request, response: web.StreamResponse, name: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=_secure(request),
        samesite="Strict",
    )


def set_page_cookie(
    request: web.Request,
    response: web.StreamResponse,
    name: str,
    value: str,
    *,
    path: str,
    max_age: int,
) -> None:
    """A short-lived cookie for one page only (a one-time code shown after a redirect), with
    the session cookie's protections."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        secure=_secure(request),
        samesite="Strict",
    )


async def current_session(request: web.Request) -> Session | None:
    """The console session of this request (idle and disabled sessions end here), cached."""
    if _SESSION in request:
        cached = request[_SESSION]
        return cached if isinstance(cached, Session) else None
    token = request.cookies.get(COOKIE)
    session = await session_for_token(request.app, token, "cookie") if token else None
    request[_SESSION] = session if session is not None else False
    return session


async def page_user(request: web.Request) -> User:
    """The logged-in console user, or a redirect to the login page (or to the password page
    while the password must change)."""
    session = await current_session(request)
    if session is None:
        raise login_redirect(request)
    if session.user.must_change_password and request.path not in PASSWORD_PATHS:
        raise web.HTTPFound("/password")
    return session.user


def login_redirect(request: web.Request) -> web.HTTPFound:
    return web.HTTPFound(f"{LOGIN_PATH}?next={quote(request.path_qs, safe='')}")


def csrf_token(request: web.Request) -> str:
    """The token to embed in forms: the session's, or before login a double-submit token.

    Call `current_session` (or `page_user`) first in the handler; this reads its cache.
    """
    cached = request.get(_SESSION)
    if isinstance(cached, Session) and cached.csrf_token:
        return cached.csrf_token
    pre = request.cookies.get(PRE_COOKIE) or request.get(_PRE_TOKEN)
    if not pre:
        pre = new_token()
        request[_PRE_TOKEN] = pre  # session_middleware sets the cookie on the response
    return pre


def check_csrf(request: web.Request, form: Mapping[str, Any]) -> None:
    """Refuse (403) a state-changing request whose form field or header lacks the token."""
    sent = str(form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER) or "")
    cached = request.get(_SESSION)
    if isinstance(cached, Session) and cached.csrf_token:
        expected = cached.csrf_token
    else:
        expected = request.cookies.get(PRE_COOKIE, "")
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise ApiError(403, "csrf", "the form is stale or forged; reload the page")


async def start_session(
    request: web.Request, response: web.StreamResponse, username: str, password: str
) -> LoginResult:
    """Log in for the console: the API's checks, lockout and audit; sets the cookie."""
    config = request.app[CONFIG]
    result = await login(
        request.app[DB],
        username,
        password,
        config=config,
        now=request.app[CLOCK](),
        address=request.remote,
        kind="cookie",
    )
    # No max_age: a browser session cookie; the server enforces idle and absolute expiry.
    _set_cookie(request, response, COOKIE, result.token, None)
    response.del_cookie(PRE_COOKIE, path="/")
    return result


async def end_session(request: web.Request, response: web.StreamResponse) -> None:
    session = await current_session(request)
    token = request.cookies.get(COOKIE)
    if session is not None and token:
        await _end_db_session(
            request.app[DB], token, session.user, request.remote, request.app[CLOCK]()
        )
    response.del_cookie(COOKIE, path="/")


@web.middleware
def session_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Sets the pre-login CSRF cookie when a page asked for one. A declared API route (a
    device's WebSocket among them) renders no page, so its awaitable is handed back as it
    is, and no frame of this stays alive for a socket's lifetime."""
    if is_declared_route(request):
        return handler(request)
    return _with_pre_cookie(request, handler)


async def _with_pre_cookie(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _pre_cookie(request, exc)
        raise
    _pre_cookie(request, response)
    return response


def _pre_cookie(request: web.Request, response: web.StreamResponse) -> None:
    token = request.get(_PRE_TOKEN)
    if token and not response.prepared:
        _set_cookie(request, response, PRE_COOKIE, token, 3600)
