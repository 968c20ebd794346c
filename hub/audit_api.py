"""Browsing and exporting the append-only audit log (admins). Nothing here writes to it:
no route edits or deletes an entry, and the database refuses UPDATE and DELETE anyway."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from loa_contract import CivilDatetime

from .auth import Permission
from .db import iso
from .paging import DEFAULT_LIMIT, MAX_LIMIT, SQLITE_MAX_INT, Page
from .routing import Ctx, RouteTable
from .store import audit as audit_log
from .store.audit import AuditFilter, AuditRecord
from .store.sql import Reader

routes = RouteTable("audit")

_CSV_BATCH = 1000


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    actor: str | None = Field(default=None, max_length=100)
    #: An exact action ("user.lock") or a family ending in a dot ("auth.").
    action: str | None = Field(default=None, max_length=100)
    #: The object acted upon: a username, bulletin id, device id or commune code.
    object: str | None = Field(default=None, max_length=200)
    since: CivilDatetime | None = None
    until: CivilDatetime | None = None
    #: Newest first; pass the previous page's `next_before` (also in X-Next-Before) to get
    #: older entries. Bounded by what SQLite can compare, so no cursor makes the query fail.
    before: int | None = Field(default=None, ge=1, le=SQLITE_MAX_INT)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    unit: str | None
    address: str | None
    action: str
    object: str | None
    detail: str | None
    before: Any = None
    after: Any = None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    #: The `before` for the next (older) page; null on the last page.
    next_before: int | None


def _filter(query: AuditQuery) -> AuditFilter:
    return AuditFilter(
        actor=query.actor,
        action=query.action,
        target=query.object,
        since=query.since,
        until=query.until,
    )


def _entry(record: AuditRecord) -> AuditEntry:
    return AuditEntry(
        id=record.id,
        at=record.at,
        actor=record.actor,
        unit=record.unit,
        address=record.address,
        action=record.action,
        object=record.target,
        detail=record.detail,
        before=record.before,
        after=record.after,
    )


@routes.get(
    "/api/v1/audit",
    summary="The audit log, newest first, filtered; paged: next_before, or the Link header",
    permission=Permission.AUDIT_READ,
    query=AuditQuery,
    response=AuditPage,
)
async def list_audit(ctx: Ctx) -> Page[AuditPage]:
    query: AuditQuery = ctx.query
    rows = await audit_log.newest(
        ctx.db, _filter(query), before=query.before, limit=query.limit + 1
    )
    items = [_entry(r) for r in rows[: query.limit]]
    next_before = items[-1].id if len(rows) > query.limit else None
    return Page(
        AuditPage(items=items, next_before=next_before),
        str(next_before) if next_before is not None else None,
    )


_CSV_COLUMNS = [
    "id",
    "at",
    "actor",
    "unit",
    "address",
    "action",
    "object",
    "detail",
    "before",
    "after",
]


def csv_cell(value: Any) -> str:
    """A CSV cell: None is empty, and text a spreadsheet would run as a formula is defused."""
    text = "" if value is None else str(value)
    # A cell starting with = + - @ is a formula to a spreadsheet; the log holds user input.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def stream_csv(
    request: web.Request,
    filename: str,
    header: list[str] | None,
    batches: AsyncIterator[list[list[Any]]],
) -> web.StreamResponse:
    """The hub's one CSV writer: UTF-8 with a BOM (spreadsheets then read Vietnamese right),
    every cell through `csv_cell`, streamed batch by batch so a big export stays small in
    memory. Used by the audit export (API and console) and the reports."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    buf = io.StringIO()
    writer = csv.writer(buf)
    buf.write("\ufeff")
    if header is not None:
        writer.writerow(header)
    async for rows in batches:
        for row in rows:
            writer.writerow([csv_cell(v) for v in row])
        await response.write(buf.getvalue().encode("utf-8"))
        buf.seek(0)
        buf.truncate()
    await response.write(buf.getvalue().encode("utf-8"))
    await response.write_eof()
    return response


def _json_cell(value: Any) -> str | None:
    return json.dumps(value, ensure_ascii=False) if value is not None else None


async def audit_csv_batches(db: Reader, query: AuditQuery) -> AsyncIterator[list[list[Any]]]:
    """The filtered log, oldest first, in batches of rows for `stream_csv`."""
    last = 0
    while True:
        rows = await audit_log.oldest_after(db, _filter(query), after=last, limit=_CSV_BATCH)
        entries = [_entry(row) for row in rows]
        yield [
            [
                e.id,
                iso(e.at),
                e.actor,
                e.unit,
                e.address,
                e.action,
                e.object,
                e.detail,
                _json_cell(e.before),
                _json_cell(e.after),
            ]
            for e in entries
        ]
        if len(rows) < _CSV_BATCH:
            break
        last = rows[-1].id


@routes.get(
    "/api/v1/audit.csv",
    summary="The audit log as CSV (same filters, oldest first, unpaginated)",
    permission=Permission.AUDIT_READ,
    query=AuditQuery,
    response_content={
        "200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
async def export_audit(ctx: Ctx) -> web.StreamResponse:
    return await stream_csv(
        ctx.request, "audit.csv", _CSV_COLUMNS, audit_csv_batches(ctx.db, ctx.query)
    )
