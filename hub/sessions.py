"""Operator login, logout, who-am-I and the holder's own password change (bearer tokens)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from .auth import ROLE_PERMISSIONS, Role, User, change_password, login, logout
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
    #: While true every call but /auth/password, /auth/me and /auth/logout answers 403.
    must_change_password: bool
    #: The password is older than the hub's maximum age (one reason for the above).
    password_expired: bool
    role: Role
    unit: str


class MeOut(BaseModel):
    username: str
    role: Role
    unit: str
    #: The commune this account is confined to, if any.
    commune: str | None
    must_change_password: bool
    password_expired: bool
    permissions: list[str]


class LoggedOut(BaseModel):
    ok: bool = True


class PasswordIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    old_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


@routes.post(
    "/api/v1/auth/login",
    summary="Log in; returns a bearer token",
    auth="public",
    body=LoginIn,
    response=LoginOut,
    errors=[401],
)
async def login_route(ctx: Ctx) -> LoginOut:
    body: LoginIn = ctx.body
    config = ctx.config
    result = await login(
        ctx.db, body.username, body.password, config=config, now=ctx.now, address=ctx.address
    )
    return _login_out(ctx, result.token, result.expires_at, result.user)


def _login_out(ctx: Ctx, token: str, expires: datetime, user: User) -> LoginOut:
    return LoginOut(
        token=token,
        expires_at=expires,
        idle_timeout_s=int(ctx.config.session_idle.total_seconds()),
        must_change_password=user.must_change_password,
        password_expired=user.password_expired,
        role=user.role,
        unit=user.unit,
    )


@routes.post(
    "/api/v1/auth/logout",
    summary="End this session",
    response=LoggedOut,
    during_password_change=True,
)
async def logout_route(ctx: Ctx) -> LoggedOut:
    await logout(ctx.db, ctx.request, ctx.user, ctx.now)
    return LoggedOut()


@routes.get("/api/v1/auth/me", summary="Who am I", response=MeOut, during_password_change=True)
async def me(ctx: Ctx) -> MeOut:
    user = ctx.user
    return MeOut(
        username=user.username,
        role=user.role,
        unit=user.unit,
        commune=user.commune,
        must_change_password=user.must_change_password,
        password_expired=user.password_expired,
        permissions=sorted(p.value for p in ROLE_PERMISSIONS[user.role]),
    )


@routes.post(
    "/api/v1/auth/password",
    summary="Change one's own password; ends every session and returns a new token",
    body=PasswordIn,
    response=LoginOut,
    errors=[403, 422],
    during_password_change=True,
)
async def change_password_route(ctx: Ctx) -> LoginOut:
    body: PasswordIn = ctx.body
    user = ctx.user
    await change_password(
        ctx.db,
        user,
        body.old_password,
        body.new_password,
        config=ctx.config,
        now=ctx.now,
        address=ctx.address,
    )
    # The old sessions are gone everywhere; the person who just proved both passwords keeps
    # working here under a fresh token.
    result = await login(
        ctx.db,
        user.username,
        body.new_password,
        config=ctx.config,
        now=ctx.now,
        address=ctx.address,
    )
    return _login_out(ctx, result.token, result.expires_at, result.user)
