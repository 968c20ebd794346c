"""Browsing and exporting the append-only audit log (admins). Nothing here writes to it:
no route edits or deletes an entry, and the database refuses UPDATE and DELETE anyway."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from loa_contract import CivilDatetime

from .auth import Permission
from .db import Database, iso
from .paging import DEFAULT_LIMIT, MAX_LIMIT, SQLITE_MAX_INT, Page
from .routing import Ctx, RouteTable

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


def _where(query: AuditQuery) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if query.actor:
        where.append("actor = ?")
        params.append(query.actor)
    if query.action:
        if query.action.endswith("."):
            where.append("substr(action, 1, ?) = ?")
            params += [len(query.action), query.action]
        else:
            where.append("action = ?")
            params.append(query.action)
    if query.object:
        where.append("target = ?")
        params.append(query.object)
    if query.since:
        where.append("at >= ?")
        params.append(iso(query.since))
    if query.until:
        where.append("at < ?")
        params.append(iso(query.until))
    return (" WHERE " + " AND ".join(where) if where else ""), params


def _entry(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        unit=row["unit"],
        address=row["address"],
        action=row["action"],
        object=row["target"],
        detail=row["detail"],
        before=json.loads(row["before_json"]) if row["before_json"] else None,
        after=json.loads(row["after_json"]) if row["after_json"] else None,
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
    where, params = _where(query)
    if query.before is not None:
        where += (" AND " if where else " WHERE ") + "id < ?"
        params.append(query.before)
    rows = await ctx.db.fetchall(
        f"SELECT * FROM audit{where} ORDER BY id DESC LIMIT ?", [*params, query.limit + 1]
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


async def audit_csv_batches(db: Database, query: AuditQuery) -> AsyncIterator[list[list[Any]]]:
    """The filtered log, oldest first, in batches of rows for `stream_csv`."""
    where, params = _where(query)
    last = 0
    while True:
        cond = where + (" AND " if where else " WHERE ") + "id > ?"
        rows = await db.fetchall(
            f"SELECT * FROM audit{cond} ORDER BY id LIMIT ?", [*params, last, _CSV_BATCH]
        )
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
        last = rows[-1]["id"]


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
