"""Communes (xã) and their broadcast windows and volume."""

from __future__ import annotations

import json
import sqlite3
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from loa_contract import CommuneWindows, utcnow

from .auth import Permission, require
from .db import iso
from .errors import ApiError
from .manifests import bump_versions, commune_device_ids
from .routing import Ctx, RouteTable

routes = RouteTable("communes")

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# Commune codes are GSO administrative codes (e.g. "00001") or any short slug.
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]


class CommuneCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Code
    name: Name
    windows: CommuneWindows = Field(default_factory=CommuneWindows)
    volume: int = Field(default=70, ge=0, le=100)


class CommuneUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    windows: CommuneWindows | None = None
    volume: int | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _something(self) -> CommuneUpdate:
        if self.name is None and self.windows is None and self.volume is None:
            raise ValueError("give at least one of name, windows, volume")
        return self


class CommuneOut(BaseModel):
    code: str
    name: str
    windows: CommuneWindows
    volume: int
    devices: int
    created_at: str
    updated_at: str


_SELECT = (
    "SELECT c.*, (SELECT COUNT(*) FROM devices d WHERE d.commune = c.code) AS devices"
    " FROM communes c"
)


def _out(r: sqlite3.Row) -> CommuneOut:
    return CommuneOut(
        code=r["code"],
        name=r["name"],
        windows=CommuneWindows.model_validate_json(r["windows_json"]),
        volume=r["volume"],
        devices=r["devices"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
    )


async def _get(ctx: Ctx, code: str) -> CommuneOut:
    row = await ctx.db.fetchone(f"{_SELECT} WHERE c.code = ?", (code,))
    if row is None:
        raise ApiError(404, "not_found", f"no commune {code!r}")
    return _out(row)


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
    now = iso(utcnow())
    async with ctx.db.transaction() as conn:
        cur = await conn.fetchone("SELECT 1 FROM communes WHERE code = ?", (body.code,))
        if cur:
            raise ApiError(409, "exists", f"commune {body.code!r} already exists")
        await conn.execute(
            "INSERT INTO communes (code, name, windows_json, volume, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (body.code, body.name, body.windows.model_dump_json(), body.volume, now, now),
        )
        await ctx.audit(conn, "commune.create", body.code, after=body.model_dump(mode="json"))
    return await _get(ctx, body.code)


@routes.get("/api/v1/communes", summary="List communes", response=list[CommuneOut])
async def list_communes(ctx: Ctx) -> list[CommuneOut]:
    rows = await ctx.db.fetchall(f"{_SELECT} ORDER BY c.code")
    return [_out(r) for r in rows if ctx.user.may_see_commune(r["code"])]


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
    errors=[403, 404],
)
async def update_commune(ctx: Ctx) -> CommuneOut:
    body: CommuneUpdate = ctx.body
    code = ctx.path("code")
    require(ctx.user, Permission.COMMUNES_WRITE, commune=code)
    async with ctx.db.transaction() as conn:
        cur = await conn.fetchone("SELECT * FROM communes WHERE code = ?", (code,))
        row = cur
        if row is None:
            raise ApiError(404, "not_found", f"no commune {code!r}")
        await conn.execute(
            "UPDATE communes SET name = ?, windows_json = ?, volume = ?, updated_at = ?"
            " WHERE code = ?",
            (
                body.name if body.name is not None else row["name"],
                body.windows.model_dump_json() if body.windows is not None else row["windows_json"],
                body.volume if body.volume is not None else row["volume"],
                iso(utcnow()),
                code,
            ),
        )
        versions = await bump_versions(conn, await commune_device_ids(conn, code))
        await ctx.audit(
            conn,
            "commune.update",
            code,
            before={
                "name": row["name"],
                "windows": json.loads(row["windows_json"]),
                "volume": row["volume"],
            },
            after=body.model_dump(mode="json", exclude_none=True),
        )
    await ctx.connections.push_manifest_ready(versions, ctx.config.command_ttl)
    return await _get(ctx, code)
