"""Incidents (sự cố; Hải Phòng Điều 8.8, Thái Nguyên Điều 15.1): what went wrong, where,
since when, who opened and who closed it.

Commune staff and technicians open one by hand (`POST /api/v1/incidents`: what, which
commune or device, since when), for their own commune; a province account for any. The hub
opens one on its own when a device stays in fault (its verdict, hub/verdict.py) longer than
`HubConfig.incident_after`, and closes that one itself when the device is out of fault
again; people close theirs with a word on what was done. The province sees the open ones
with their age and the closed ones with who closed them; the monthly report lists every
incident open during its period (hub/reports.py). Every step is audited (`incident.open`,
`incident.close`; the hub's own steps under the actor "system").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from loa_contract import CivilDatetime

from .appkeys import CLOCK, CONFIG, CONNECTIONS, DB
from .auth import Permission, require
from .db import Database
from .devices import judge
from .domain.incidents import step
from .errors import ApiError, field_error
from .paging import MAX_CURSOR, MAX_LIMIT, Page, cut, decode_cursor
from .routing import Ctx, RouteTable
from .store import audit as audit_log
from .store import communes, devices
from .store import incidents as store
from .store.incidents import Incident

log = logging.getLogger(__name__)

routes = RouteTable("incidents")

SYSTEM = "system"
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
State = Literal["open", "closed"]


class IncidentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: What is wrong, in the opener's words.
    what: Text
    #: Where: a commune, or a device (its commune is then the device's).
    commune: str | None = Field(default=None, max_length=32)
    device_id: str | None = Field(default=None, max_length=64)
    #: Since when; left out: now.
    since: CivilDatetime | None = None


class IncidentClose(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: What was done.
    resolution: Text


class IncidentOut(BaseModel):
    id: str
    commune: str
    device_id: str | None
    what: str
    since: datetime
    source: Literal["auto", "manual"]
    opened_by: str
    opened_at: datetime
    closed_by: str | None
    closed_at: datetime | None
    resolution: str | None
    #: Seconds from `since` to its closing, or to now while it is open.
    age_s: float


class IncidentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: State | None = None
    commune: str | None = Field(default=None, max_length=32)
    #: The previous page's X-Next-Before: this page continues after that incident.
    before: str | None = Field(default=None, max_length=MAX_CURSOR)
    limit: int = Field(default=200, ge=1, le=MAX_LIMIT)


def incident_out(incident: Incident, now: datetime) -> IncidentOut:
    end = incident.closed_at or now
    return IncidentOut(
        id=incident.id,
        commune=incident.commune,
        device_id=incident.device_id,
        what=incident.what,
        since=incident.since,
        source="auto" if incident.source == "auto" else "manual",
        opened_by=incident.opened_by,
        opened_at=incident.opened_at,
        closed_by=incident.closed_by,
        closed_at=incident.closed_at,
        resolution=incident.resolution,
        age_s=max(0.0, (end - incident.since).total_seconds()),
    )


@routes.post(
    "/api/v1/incidents",
    summary="Open an incident by hand: what, where (a commune or a device) and since when",
    permission=Permission.INCIDENTS_WRITE,
    body=IncidentCreate,
    response=IncidentOut,
    status=201,
    errors=[403, 422],
)
async def open_incident(ctx: Ctx) -> IncidentOut:
    body: IncidentCreate = ctx.body
    user = ctx.user
    now = ctx.now
    async with ctx.db.transaction() as tx:
        commune = body.commune
        if body.device_id is not None:
            device_commune = await devices.commune_of(tx, body.device_id)
            if device_commune is None:
                raise field_error(422, "validation_error", "device_id", "no such device")
            if commune is not None and commune != device_commune:
                raise field_error(
                    422, "validation_error", "commune", "the device is in another commune"
                )
            commune = device_commune
        if commune is None:
            commune = user.commune
        if commune is None:
            raise field_error(422, "validation_error", "commune", "say which commune or device")
        if not await communes.exists(tx, commune):
            raise field_error(422, "validation_error", "commune", f"no commune {commune!r}")
        require(user, Permission.INCIDENTS_WRITE, commune=commune)
        since = body.since or now
        if since > now:
            raise field_error(422, "validation_error", "since", "is in the future")
        incident = Incident(
            id=str(uuid.uuid4()),
            commune=commune,
            device_id=body.device_id,
            what=body.what,
            since=since,
            source="manual",
            opened_by=user.username,
            opened_at=now,
            closed_by=None,
            closed_at=None,
            resolution=None,
        )
        await store.add(tx, incident)
        await ctx.audit(
            tx,
            "incident.open",
            incident.id,
            body.what,
            after={"commune": commune, "device": body.device_id, "since": since.isoformat()},
        )
    return incident_out(incident, now)


@routes.get(
    "/api/v1/incidents",
    summary="Incidents, newest first: open ones with their age, closed ones with who closed"
    " them; a commune account sees its commune's; paged: follow the Link header",
    permission=Permission.FLEET_READ,
    query=IncidentQuery,
    response=list[IncidentOut],
    errors=[403],
)
async def list_incidents(ctx: Ctx) -> Page[list[IncidentOut]]:
    query: IncidentQuery = ctx.query
    commune = query.commune
    own = ctx.user.commune
    if own is not None:
        if commune not in (None, own):
            raise ApiError(403, "out_of_scope", f"commune {commune!r} is outside your unit")
        commune = own
    before = None
    if query.before is not None:
        opened_at, incident_id = decode_cursor(query.before, (str, str))
        before = (opened_at, incident_id)
    found = await store.listing(
        ctx.db, commune=commune, state=query.state, limit=query.limit + 1, before=before
    )
    found, cursor = cut(found, query.limit, store.list_key)
    now = ctx.now
    return Page([incident_out(i, now) for i in found], cursor)


@routes.post(
    "/api/v1/incidents/{id}/close",
    summary="Close an open incident, saying what was done",
    permission=Permission.INCIDENTS_WRITE,
    body=IncidentClose,
    response=IncidentOut,
    errors=[403, 404, 409],
)
async def close_incident(ctx: Ctx) -> IncidentOut:
    body: IncidentClose = ctx.body
    now = ctx.now
    async with ctx.db.transaction() as tx:
        incident = await store.get(tx, ctx.path("id"))
        if incident is None:
            raise ApiError(404, "not_found", f"no incident {ctx.path('id')!r}")
        require(ctx.user, Permission.INCIDENTS_WRITE, commune=incident.commune)
        if incident.closed_at is not None:
            raise ApiError(409, "closed", f"closed by {incident.closed_by}")
        await store.close(tx, incident.id, ctx.user.username, now, body.resolution)
        await ctx.audit(tx, "incident.close", incident.id, body.resolution)
        closed = await store.get(tx, incident.id)
    assert closed is not None
    return incident_out(closed, now)


# ---------------------------------------------------------------- the hub's own watch


async def watch_faults(app: web.Application) -> tuple[int, int]:
    """Look at every device once: open an incident for a fault lasting past the threshold,
    close the hub's own once the fault is over. Returns (opened, closed)."""
    db: Database = app[DB]
    config = app[CONFIG]
    now = app[CLOCK]()
    online = await app[CONNECTIONS].online_anywhere()
    since_by_device = await store.fault_since(db)
    open_by_device = await store.open_auto(db)
    opened = closed = 0
    after: tuple[str, str, str] | None = None
    while True:
        page = await devices.fleet_page(db, after=after, limit=500)
        if not page:
            break
        after = (page[-1].commune, page[-1].name, page[-1].id)
        for d in page:
            if not d.enrolled:
                continue
            _, verdict = judge(d, d.id in online, config.offline_after.total_seconds(), now)
            in_fault = verdict.level == "fault"
            since = since_by_device.get(d.id)
            began = d.last_seen if "offline" in verdict.reasons and d.last_seen else now
            decision = step(
                in_fault=in_fault,
                since=since,
                began=began,
                open_incident=d.id in open_by_device,
                now=now,
                threshold=config.incident_after,
            )
            reasons = ", ".join(str(r) for r in verdict.reasons if r)
            if decision.since == since and not decision.open and not decision.close:
                continue
            async with db.transaction() as tx:
                await store.set_fault(tx, d.id, decision.since, reasons)
                # Several nodes may watch: the one that writes first opens it.
                if (
                    decision.open
                    and decision.since is not None
                    and await store.open_auto_of(tx, d.id) is None
                ):
                    incident = Incident(
                        id=str(uuid.uuid4()),
                        commune=d.commune,
                        device_id=d.id,
                        what=f"{d.name}: {reasons}",
                        since=decision.since,
                        source="auto",
                        opened_by=SYSTEM,
                        opened_at=now,
                        closed_by=None,
                        closed_at=None,
                        resolution=None,
                    )
                    await store.add(tx, incident)
                    await audit_log.append(
                        tx, SYSTEM, None, "incident.open", incident.id, incident.what, at=now
                    )
                    opened += 1
                incident_id = await store.open_auto_of(tx, d.id)
                if decision.close and incident_id is not None:
                    await store.close(tx, incident_id, SYSTEM, now, "the device is out of fault")
                    await audit_log.append(
                        tx, SYSTEM, None, "incident.close", incident_id, "out of fault", at=now
                    )
                    closed += 1
    return opened, closed


async def watch_context(app: web.Application) -> AsyncIterator[None]:
    """The watch, for as long as the hub runs."""

    async def loop() -> None:
        every = app[CONFIG].incident_check_interval.total_seconds()
        while True:
            await asyncio.sleep(every)
            try:
                await watch_faults(app)
            except Exception:
                log.exception("incident watch failed; trying again at the next look")

    task = asyncio.create_task(loop(), name="incident watch")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
