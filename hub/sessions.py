"""Operator login and logout."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from .auth import Role, login, logout
from .routing import Ctx, RouteTable

routes = RouteTable("auth")


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(BaseModel):
    token: str
    #: Absolute expiry; the session also ends after `idle_timeout_s` without a request.
    expires_at: datetime
    idle_timeout_s: int
    must_change_password: bool
    role: Role
    unit: str | None


class MeOut(BaseModel):
    username: str
    role: Role
    unit: str | None
    must_change_password: bool


class LoggedOut(BaseModel):
    ok: bool = True


@routes.post(
    "/api/v1/auth/login",
    summary="Log in; returns a bearer token",
    auth="public",
    body=LoginIn,
    response=LoginOut,
)
async def login_route(ctx: Ctx) -> LoginOut:
    body: LoginIn = ctx.body
    config = ctx.config
    token, expires, user = await login(
        ctx.db,
        body.username,
        body.password,
        scrypt_n=config.scrypt_n,
        idle=config.session_idle,
        lifetime=config.session_lifetime,
        address=ctx.address,
    )
    return LoginOut(
        token=token,
        expires_at=expires,
        idle_timeout_s=int(config.session_idle.total_seconds()),
        must_change_password=user.must_change_password,
        role=user.role,
        unit=user.unit,
    )


@routes.post("/api/v1/auth/logout", summary="End this session", response=LoggedOut)
async def logout_route(ctx: Ctx) -> LoggedOut:
    await logout(ctx.db, ctx.request)
    return LoggedOut()


@routes.get("/api/v1/auth/me", summary="Who am I", response=MeOut)
async def me(ctx: Ctx) -> MeOut:
    user = ctx.user
    return MeOut(
        username=user.username,
        role=user.role,
        unit=user.unit,
        must_change_password=user.must_change_password,
    )
