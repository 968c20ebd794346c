"""Notices of planned maintenance and of a switch to the standby hub, shown in every user's
console until they end (issue #10 point 5; the rules are hub/domain/maintenance.py, the SQL
hub/store/maintenance.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from loa_contract import CivilDatetime

from .auth import Permission
from .domain.maintenance import NoticeKind, NoticeWarning, check_times, shown, warnings
from .errors import ApiError
from .routing import Ctx, RouteTable
from .store import maintenance
from .store.maintenance import Notice

routes = RouteTable("maintenance")

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=1000)]
ConsentRef = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]

#: What `GET /api/v1/maintenance?all=true` lists at most: the latest notices.
HISTORY = 100


class NoticeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: NoticeKind
    starts_at: CivilDatetime
    ends_at: CivilDatetime
    reason: Reason
    #: The managing unit's written consent (số văn bản đồng ý), Thái Nguyên Điều 9.2.
    consent_ref: ConsentRef | None = None


class NoticeOut(BaseModel):
    id: str
    kind: NoticeKind
    starts_at: CivilDatetime
    ends_at: CivilDatetime
    reason: str
    consent_ref: str | None
    #: What the regulation asked that this notice did not give: announced anyway.
    warnings: list[NoticeWarning]
    announced_by: str
    announced_at: CivilDatetime
    withdrawn_by: str | None
    withdrawn_at: CivilDatetime | None
    #: Shown in every user's console now (not withdrawn, not over).
    shown: bool


class NoticesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Past and withdrawn notices too (the latest 100), not only those in force.
    all: bool = Field(default=False)


def notice_out(notice: Notice, now: datetime) -> NoticeOut:
    return NoticeOut(
        id=notice.id,
        kind=NoticeKind(notice.kind),
        starts_at=notice.starts_at,
        ends_at=notice.ends_at,
        reason=notice.reason,
        consent_ref=notice.consent_ref,
        warnings=[NoticeWarning(w) for w in notice.warnings],
        announced_by=notice.announced_by,
        announced_at=notice.announced_at,
        withdrawn_by=notice.withdrawn_by,
        withdrawn_at=notice.withdrawn_at,
        shown=shown(notice.ends_at, notice.withdrawn_at is not None, now),
    )


@routes.post(
    "/api/v1/maintenance",
    summary="Announce planned maintenance or a switch to the standby hub to every user",
    permission=Permission.MAINTENANCE,
    body=NoticeCreate,
    response=NoticeOut,
    status=201,
    errors=[403],
)
async def announce(ctx: Ctx) -> NoticeOut:
    body: NoticeCreate = ctx.body
    now = ctx.now
    refused = check_times(body.starts_at, body.ends_at, now)
    if refused is not None:
        detail = {"field": refused.field, "message": refused.message, "code": refused.code}
        raise ApiError(422, "validation_error", [detail])
    notice = Notice(
        id=uuid.uuid4().hex,
        kind=body.kind.value,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        reason=body.reason,
        consent_ref=body.consent_ref or None,
        warnings=tuple(w.value for w in warnings(body.starts_at, now, body.consent_ref)),
        announced_by=ctx.user.username,
        announced_at=now,
        withdrawn_by=None,
        withdrawn_at=None,
    )
    out = notice_out(notice, now)
    async with ctx.db.transaction() as tx:
        await maintenance.add(tx, notice)
        await ctx.audit(
            tx,
            "maintenance.announce",
            notice.id,
            ", ".join(notice.warnings) or None,
            after=out.model_dump(mode="json", exclude={"shown"}),
        )
    return out


@routes.get(
    "/api/v1/maintenance",
    summary="Maintenance and switch-over notices in force (with all=true: the latest 100)",
    query=NoticesQuery,
    response=list[NoticeOut],
)
async def list_notices(ctx: Ctx) -> list[NoticeOut]:
    query: NoticesQuery = ctx.query
    now = ctx.now
    found = await (
        maintenance.latest(ctx.db, HISTORY) if query.all else maintenance.in_force(ctx.db, now)
    )
    return [notice_out(n, now) for n in found]


@routes.post(
    "/api/v1/maintenance/{notice_id}/withdraw",
    summary="Withdraw a notice (the work was called off): it is no longer shown",
    permission=Permission.MAINTENANCE,
    response=NoticeOut,
    errors=[403, 404, 409],
)
async def withdraw(ctx: Ctx) -> NoticeOut:
    notice_id = ctx.path("notice_id")
    now = ctx.now
    async with ctx.db.transaction() as tx:
        notice = await maintenance.get(tx, notice_id)
        if notice is None:
            raise ApiError(404, "not_found", f"no notice {notice_id!r}")
        if not await maintenance.withdraw(tx, notice_id, ctx.user.username, now):
            raise ApiError(409, "already_withdrawn", "this notice was already withdrawn")
        await ctx.audit(tx, "maintenance.withdraw", notice_id, notice.reason)
        notice = await maintenance.get(tx, notice_id)
    assert notice is not None
    return notice_out(notice, now)
