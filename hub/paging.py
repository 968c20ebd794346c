"""Cursor pagination for the lists that grow (bulletins, devices, plays, audit).

A list has a fixed order ending in a unique column, so every row has one place in it however
many share a timestamp. A page is the first `limit` rows after the cursor `before`, which
names the last row of the previous page by its sort key; rows added meanwhile never shift a
page, as an offset would. The body stays what the route always returned (a JSON list, or the
audit's page object); the next page's address is in the headers:

    Link: </api/v1/bulletins?state=published&limit=100&before=WyIy...>; rel="next"
    X-Next-Before: WyIy...

Neither header on the last page. The cursor is opaque to clients (base64url of the key as a
JSON array); a cursor that does not decode to this list's key shape is a 422 naming `before`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiohttp import web

from .errors import ApiError, field_error

T = TypeVar("T")

#: The most rows one page may carry; each list has its own default below this.
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
#: SQLite integers are signed 64-bit: a larger cursor would make the query itself fail.
SQLITE_MAX_INT = 2**63 - 1
#: Longest cursor accepted: the biggest key (a device's 200-character name between its
#: commune code and id, in UTF-8, then base64) fits with room.
MAX_CURSOR = 2000

Key = tuple[Any, ...]
KeyShape = tuple[type, ...]


@dataclass(frozen=True)
class Page(Generic[T]):
    """What a paged handler returns: the body its route declares, and the cursor of the next
    page (None on the last). The console reads both; the route turns the cursor into headers."""

    body: T
    next_before: str | None


def encode_cursor(key: Key) -> str:
    raw = json.dumps(list(key), separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(text: str, shape: KeyShape) -> Key:
    """The sort key a cursor names, checked against this list's key shape."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        values = json.loads(raw)
    except (ValueError, binascii.Error, RecursionError):
        values = None
    if (
        not isinstance(values, list)
        or len(values) != len(shape)
        or not all(type(v) is t for v, t in zip(values, shape, strict=True))
        or any(isinstance(v, int) and not -SQLITE_MAX_INT <= v <= SQLITE_MAX_INT for v in values)
    ):
        raise bad_cursor()
    return tuple(values)


def bad_cursor() -> ApiError:
    return field_error(
        422,
        "validation_error",
        "before",
        "not a cursor this list gave out (copy it from X-Next-Before); leave it out to start"
        " from the first page",
    )


def cut(rows: list[T], limit: int, key: Any) -> tuple[list[T], str | None]:
    """Rows fetched with LIMIT limit + 1: the page, and the cursor if there is more."""
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, encode_cursor(key(page[-1]))


def next_headers(request: web.Request, cursor: str | None) -> dict[str, str]:
    """Link and X-Next-Before for the next page: the same path and filters, a new `before`."""
    if cursor is None:
        return {}
    url = request.rel_url.update_query(before=cursor)
    return {"Link": f'<{url}>; rel="next"', "X-Next-Before": cursor}


#: For the OpenAPI document: what a paged route's answer carries besides its body.
PAGE_HEADERS: dict[str, Any] = {
    "Link": {
        "description": 'The next page: `<url>; rel="next"` (RFC 8288); absent on the last page',
        "schema": {"type": "string"},
    },
    "X-Next-Before": {
        "description": "The cursor to pass as `before` for the next page; absent on the last page",
        "schema": {"type": "string"},
    },
}
