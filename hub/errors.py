"""Every error leaves the hub as JSON `{"error": "<short code>", "detail": ...}`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from pydantic import ValidationError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: PostgreSQL's SQLSTATE for text it cannot hold (U+0000 among it).
_CHARACTER_NOT_IN_REPERTOIRE = "22021"


class ApiError(Exception):
    def __init__(
        self, status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {detail}")
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers


def field_error(status: int, error: str, field: str, message: str) -> ApiError:
    """An error about one input field, in the same shape as a validation error."""
    return ApiError(status, error, [{"field": field, "message": message}])


def loc_to_field(loc: tuple[int | str, ...], prefix: tuple[int | str, ...] = ()) -> str:
    out = ""
    for part in (*prefix, *loc):
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


#: Why text with U+0000 is refused: PostgreSQL cannot store it (SQLite would, and a page or a
#: board would then show a cut string), and no text a person means holds it.
NUL_MESSAGE = "may not contain the NUL character (U+0000)"


def nul_fields(value: Any, loc: tuple[int | str, ...] = ()) -> list[str]:
    """The fields of `value` (parsed JSON, a model's dump, form, query or path values) whose
    text, or whose key, holds U+0000."""
    if isinstance(value, str):
        return [loc_to_field(loc)] if "\x00" in value else []
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                found.append(loc_to_field((*loc, key.replace("\x00", "\\u0000"))))
            found += nul_fields(item, (*loc, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found += nul_fields(item, (*loc, index))
    return found


def refuse_nul(value: Any, loc: tuple[int | str, ...] = ()) -> None:
    """A 422 naming each field with U+0000 in its text; nothing when there is none."""
    fields = nul_fields(value, loc)
    if fields:
        raise ApiError(
            422, "validation_error", [{"field": field, "message": NUL_MESSAGE} for field in fields]
        )


def refuse_repeated(query: Mapping[str, str]) -> None:
    """A 422 naming each query parameter given more than once: no list endpoint takes a
    list, and reading only the first (or the last) of `limit=2&limit=500` would answer a
    question the caller did not ask."""
    seen: set[str] = set()
    repeated: list[str] = []
    for name, _ in query.items():  # a MultiDict's items hold each value of a repeated key
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    if repeated:
        raise ApiError(
            422,
            "validation_error",
            [{"field": name, "message": "given more than once; give it once"} for name in repeated],
        )


def validation_detail(
    exc: ValidationError, prefix: tuple[int | str, ...] = ()
) -> list[dict[str, str]]:
    detail = []
    for err in exc.errors(include_url=False, include_input=False):
        # Discriminated unions add the tag to the location ("command.set_volume.volume");
        # users think in fields, so the tag is kept: it says which variant was checked.
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        detail.append({"field": loc_to_field(tuple(err["loc"]), prefix), "message": message})
    return detail


def json_error(
    status: int, error: str, detail: Any = None, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


def error_answer(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The JSON answer to `exc`, raised while handling `request`; an HTTP exception below 400
    (a redirect) is not an error and is raised again."""
    if isinstance(exc, ApiError):
        return json_error(exc.status, exc.error, exc.detail, headers=exc.headers)
    if isinstance(exc, ValidationError):
        return json_error(422, "validation_error", validation_detail(exc))
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        headers = {}
        if isinstance(exc, web.HTTPMethodNotAllowed):
            headers["Allow"] = ",".join(sorted(exc.allowed_methods))
        code = _HTTP_CODES.get(exc.status, "http_error")
        return json_error(exc.status, code, exc.reason, headers=headers)
    if isinstance(exc, ConnectionResetError):
        # The client went away mid-request (a device losing its 3G link, a reconnection
        # storm): nothing failed on the hub's side and nobody is left to answer.
        log.info("client %s went away during %s %s", request.remote, request.method, request.path)
        return json_error(400, "client_gone", "the connection was closed by the client")
    if getattr(exc, "sqlstate", None) == _CHARACTER_NOT_IN_REPERTOIRE:
        # A NUL that reached PostgreSQL by a path no check above knew of: the transaction
        # was rolled back, so nothing changed; the caller is told, not given a 500.
        log.warning("text with U+0000 refused by the database in %s", request.path)
        return json_error(422, "validation_error", [{"field": "body", "message": NUL_MESSAGE}])
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    return json_error(500, "internal", "internal error; see the hub log")


#: Marks a route declared in hub/routing.py. Such a route answers its own errors as JSON
#: (`error_answer`) and serves no page, so the error and session middlewares hand its
#: awaitable back as it is. A device's WebSocket is one, and it runs for months, times
#: 10,000 devices: a middleware frame waiting under it would be kept as long, for nothing.
DECLARED_ROUTE = "loa_declared_route"


def is_declared_route(request: web.Request) -> bool:
    return bool(getattr(request.match_info.handler, DECLARED_ROUTE, False))


@web.middleware
def error_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    if is_declared_route(request):
        return handler(request)
    return _answering_errors(request, handler)


async def _answering_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Exception as exc:
        return error_answer(request, exc)
