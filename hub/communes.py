"""Communes (xã) and their broadcast windows and volume."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from loa_contract import CommuneWindows

from .auth import Permission, require
from .db import iso
from .errors import ApiError, field_error
from .routing import Ctx, RouteTable
from .store import communes, devices, offers
from .store import units as registered_units
from .store.communes import Commune
from .store.manifests import bump_versions
from .store.sql import Reader
from .windows import window_problems

routes = RouteTable("communes")

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# Commune codes are GSO administrative codes (e.g. "00001") or any short slug.
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]
#: The administrative code (mã đơn vị hành chính, Decision 124/2004/QĐ-TTg): five digits for a
#: commune. CAP alerts name communes by it (geocode VN-DVHC, hub/cap.py).
AdminCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{2,5}$")]


class CommuneCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Code
    name: Name
    windows: CommuneWindows = Field(default_factory=CommuneWindows)
    volume: int = Field(default=70, ge=0, le=100)
    admin_code: AdminCode | None = None
    #: Province normal bulletins: air unless declined ("auto"), or only once accepted
    #: ("offer"); hub/offers.py.
    province_normal: Literal["auto", "offer"] = "auto"


def _check_windows(windows: CommuneWindows | None) -> None:
    """422 naming each window that ends before it starts unconfirmed, or overlaps another."""
    problems = window_problems(windows) if windows is not None else []
    if problems:
        raise ApiError(422, "validation_error", problems)


class CommuneUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    windows: CommuneWindows | None = None
    volume: int | None = Field(default=None, ge=0, le=100)
    admin_code: AdminCode | None = None
    province_normal: Literal["auto", "offer"] | None = None

    @model_validator(mode="after")
    def _something(self) -> CommuneUpdate:
        if all(
            v is None
            for v in (
                self.name,
                self.windows,
                self.volume,
                self.admin_code,
                self.province_normal,
            )
        ):
            raise ValueError(
                "give at least one of name, windows, volume, admin_code, province_normal"
            )
        return self


class CommuneOut(BaseModel):
    code: str
    name: str
    windows: CommuneWindows
    volume: int
    devices: int
    created_at: str
    updated_at: str
    admin_code: str | None
    province_normal: Literal["auto", "offer"]


def _out(c: Commune) -> CommuneOut:
    return CommuneOut(
        code=c.code,
        name=c.name,
        windows=c.windows,
        volume=c.volume,
        devices=c.devices,
        created_at=iso(c.created_at),
        updated_at=iso(c.updated_at),
        admin_code=c.admin_code,
        province_normal="offer" if c.province_normal == "offer" else "auto",
    )


async def _check_admin_code(db: Reader, admin_code: str | None, code: str) -> None:
    """An administrative code names one commune."""
    if admin_code is None:
        return
    holder = await communes.with_admin_code(db, admin_code)
    if holder is not None and holder != code:
        raise field_error(409, "exists", "admin_code", f"commune {holder!r} has this code")


async def _get(ctx: Ctx, code: str) -> CommuneOut:
    commune = await communes.get(ctx.db, code)
    if commune is None:
        raise ApiError(404, "not_found", f"no commune {code!r}")
    return _out(commune)


@routes.post(
    "/api/v1/communes",
    summary="Create a commune with its broadcast windows",
    permission=Permission.COMMUNES_CREATE,
    body=CommuneCreate,
    response=CommuneOut,
    status=201,
    errors=[409],
)
async def create_commune(ctx: Ctx) -> CommuneOut:
    body: CommuneCreate = ctx.body
    _check_windows(body.windows)
    async with ctx.db.transaction() as tx:
        if await communes.exists(tx, body.code):
            raise ApiError(409, "exists", f"commune {body.code!r} already exists")
        if await registered_units.get(tx, body.code) is not None:
            # One code, one unit: accounts and bulletins carry it (hub/units.py).
            raise field_error(409, "exists", "code", f"{body.code!r} is a registered agency")
        await _check_admin_code(tx, body.admin_code, body.code)
        await communes.add(
            tx,
            body.code,
            body.name,
            body.windows,
            body.volume,
            at=ctx.now,
            admin_code=body.admin_code,
        )
        if body.province_normal != "auto":
            await offers.set_province_normal(tx, body.code, body.province_normal)
        await ctx.audit(tx, "commune.create", body.code, after=body.model_dump(mode="json"))
    return await _get(ctx, body.code)


@routes.get("/api/v1/communes", summary="List communes", response=list[CommuneOut])
async def list_communes(ctx: Ctx) -> list[CommuneOut]:
    return [
        _out(c) for c in await communes.every_commune(ctx.db) if ctx.user.may_see_commune(c.code)
    ]


@routes.get(
    "/api/v1/communes/{code}", summary="One commune", response=CommuneOut, errors=[403, 404]
)
async def get_commune(ctx: Ctx) -> CommuneOut:
    require(ctx.user, Permission.READ, commune=ctx.path("code"))
    return await _get(ctx, ctx.path("code"))


@routes.put(
    "/api/v1/communes/{code}",
    summary="Change a commune's name, windows or volume; its devices get a new manifest",
    permission=Permission.COMMUNES_WRITE,
    body=CommuneUpdate,
    response=CommuneOut,
    errors=[403, 404, 409, 422],
)
async def update_commune(ctx: Ctx) -> CommuneOut:
    body: CommuneUpdate = ctx.body
    code = ctx.path("code")
    require(ctx.user, Permission.COMMUNES_WRITE, commune=code)
    _check_windows(body.windows)
    async with ctx.db.transaction() as tx:
        current = await communes.get(tx, code)
        if current is None:
            raise ApiError(404, "not_found", f"no commune {code!r}")
        await communes.update(
            tx,
            code,
            name=body.name if body.name is not None else current.name,
            windows=body.windows if body.windows is not None else current.windows,
            volume=body.volume if body.volume is not None else current.volume,
            at=ctx.now,
        )
        if body.admin_code is not None and body.admin_code != current.admin_code:
            await _check_admin_code(tx, body.admin_code, code)
            await communes.set_admin_code(tx, code, body.admin_code)
        if body.province_normal is not None:
            await offers.set_province_normal(tx, code, body.province_normal)
        versions = await bump_versions(tx, await devices.ids_in_commune(tx, code))
        await ctx.audit(
            tx,
            "commune.update",
            code,
            before={
                "name": current.name,
                "windows": current.windows.model_dump(mode="json"),
                "volume": current.volume,
                "admin_code": current.admin_code,
                "province_normal": current.province_normal,
            },
            after=body.model_dump(mode="json", exclude_none=True),
        )
    await ctx.connections.push_manifest_ready(versions, ctx.config.command_ttl)
    return await _get(ctx, code)
