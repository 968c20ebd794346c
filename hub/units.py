"""The register of units that send bulletins besides the province and its communes: agencies
(sở, ban, trung tâm) and newspapers, each with the name people call it by and its kind.

A unit's code is what accounts and bulletins carry (`unit`, e.g. "baotinh"); the console shows
its name instead (hub/console.py `unit_label`). The kind decides the unit's quota in the monthly
report (hub/reports.py): a newspaper owes more than an agency. A unit not in the register is
a newspaper if the hub's configured `newspaper_units` names it (the default before the
register existed), else an agency.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

from .auth import PROVINCE, Permission
from .db import iso
from .errors import ApiError, field_error
from .routing import Ctx, RouteTable
from .store import audit as audit_log
from .store import communes
from .store import units as store
from .store.sql import Reader, Tx
from .store.units import Unit

routes = RouteTable("units")

Kind = Literal["newspaper", "agency"]
#: The format of every unit code accounts carry (hub/auth.py `check_role_unit`).
UnitCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]
UnitName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=200)]


class UnitCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: UnitCode
    name: UnitName
    kind: Kind = "agency"


class UnitUpdate(BaseModel):
    """A new name or kind (a renamed agency, a newspaper registered as an agency by mistake)."""

    model_config = ConfigDict(extra="forbid")

    name: UnitName | None = None
    kind: Kind | None = None

    @model_validator(mode="after")
    def _something(self) -> UnitUpdate:
        if self.name is None and self.kind is None:
            raise ValueError("give name, kind or both")
        return self


class UnitOut(BaseModel):
    code: str
    name: str
    kind: Kind
    created_at: str
    created_by: str
    updated_at: str


def _out(unit: Unit) -> UnitOut:
    return UnitOut(
        code=unit.code,
        name=unit.name,
        kind="newspaper" if unit.kind == "newspaper" else "agency",
        created_at=iso(unit.created_at),
        created_by=unit.created_by,
        updated_at=iso(unit.updated_at),
    )


def newspaper_units(register: Iterable[Unit], default: frozenset[str]) -> frozenset[str]:
    """The units held to a newspaper's quota: the register's newspapers, and of the units not
    in it, those `default` (the hub's configured newspaper units) names."""
    listed = {u.code: u.kind for u in register}
    return frozenset(
        {code for code, kind in listed.items() if kind == "newspaper"}
        | {code for code in default if code not in listed}
    )


async def newspapers(db: Reader, default: frozenset[str]) -> frozenset[str]:
    return newspaper_units(await store.every_unit(db), default)


async def add_unit(
    tx: Tx,
    body: UnitCreate,
    *,
    at: datetime,
    actor: str,
    actor_unit: str | None,
    address: str | None,
) -> None:
    """Register a unit, audited in the caller's transaction. 409 (naming `code`) when the
    code is taken by the register, a commune or the province."""
    code = body.code
    if code == PROVINCE or await communes.exists(tx, code):
        raise field_error(409, "exists", "code", f"{code!r} is the province's or a commune's code")
    if await store.get(tx, code) is not None:
        raise field_error(409, "exists", "code", f"unit {code!r} is already registered")
    await store.add(tx, code, body.name, body.kind, at=at, by=actor)
    await audit_log.append(
        tx,
        actor,
        address,
        "unit.create",
        code,
        at=at,
        unit=actor_unit,
        after={"name": body.name, "kind": body.kind},
    )


async def change_unit(
    tx: Tx,
    code: str,
    body: UnitUpdate,
    *,
    at: datetime,
    actor: str,
    actor_unit: str | None,
    address: str | None,
) -> None:
    """Rename a unit or change its kind, audited with before and after."""
    current = await store.get(tx, code)
    if current is None:
        raise ApiError(404, "not_found", f"no unit {code!r} in the register")
    name = body.name if body.name is not None else current.name
    kind = body.kind if body.kind is not None else current.kind
    await store.update(tx, code, name=name, kind=kind, at=at)
    await audit_log.append(
        tx,
        actor,
        address,
        "unit.update",
        code,
        at=at,
        unit=actor_unit,
        before={"name": current.name, "kind": current.kind},
        after={"name": name, "kind": kind},
    )


async def _get(ctx: Ctx, code: str) -> UnitOut:
    unit = await store.get(ctx.db, code)
    if unit is None:
        raise ApiError(404, "not_found", f"no unit {code!r} in the register")
    return _out(unit)


@routes.get(
    "/api/v1/units",
    summary="The register of agencies and newspapers that send bulletins, by name",
    response=list[UnitOut],
)
async def list_units(ctx: Ctx) -> list[UnitOut]:
    return [_out(u) for u in await store.every_unit(ctx.db)]


@routes.get("/api/v1/units/{code}", summary="One registered unit", response=UnitOut, errors=[404])
async def get_unit(ctx: Ctx) -> UnitOut:
    return await _get(ctx, ctx.path("code"))


@routes.post(
    "/api/v1/units",
    summary="Register an agency or newspaper with its name",
    permission=Permission.USERS_MANAGE,
    body=UnitCreate,
    response=UnitOut,
    status=201,
    errors=[409],
)
async def create_unit(ctx: Ctx) -> UnitOut:
    body: UnitCreate = ctx.body
    async with ctx.db.transaction() as tx:
        await add_unit(
            tx,
            body,
            at=ctx.now,
            actor=ctx.user.username,
            actor_unit=ctx.user.unit,
            address=ctx.address,
        )
    return await _get(ctx, body.code)


@routes.put(
    "/api/v1/units/{code}",
    summary="Rename a registered unit or change its kind (newspaper or agency)",
    permission=Permission.USERS_MANAGE,
    body=UnitUpdate,
    response=UnitOut,
    errors=[404],
)
async def update_unit(ctx: Ctx) -> UnitOut:
    code = ctx.path("code")
    async with ctx.db.transaction() as tx:
        await change_unit(
            tx,
            code,
            ctx.body,
            at=ctx.now,
            actor=ctx.user.username,
            actor_unit=ctx.user.unit,
            address=ctx.address,
        )
    return await _get(ctx, code)
