"""Account administration (admins only): create with a temporary password, lock, unlock,
disable for good, reset a password. Every change is audited with before and after."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from .auth import (
    SHARED_NAMES,
    Permission,
    Role,
    account_named,
    create_user,
    move_account,
    reset_password,
    set_account_state,
)
from .errors import ApiError, field_error
from .routing import Ctx, RouteTable
from .store import accounts
from .store import audit as audit_log
from .store.accounts import Account

routes = RouteTable("users")


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=2, max_length=64)
    role: Role
    #: "province", an agency's code, or a commune's code (commune operators).
    unit: str | None = Field(default=None, max_length=32)
    #: Temporary: the holder must change it at first login.
    password: str = Field(min_length=1, max_length=1024)


class UserMove(BaseModel):
    """A new post for an account: its role and unit, as at creation."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    unit: str | None = Field(default=None, max_length=32)


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=1, max_length=1024)


class UserOut(BaseModel):
    username: str
    role: Role
    unit: str
    locked: bool
    #: A temporary lockout after failed logins.
    locked_until: datetime | None
    disabled: bool
    must_change_password: bool
    password_changed_at: datetime
    password_expires_at: datetime
    created_at: datetime
    #: The last successful login (API or console), from the audit log; null if never.
    last_login_at: datetime | None = None


def _out(ctx: Ctx, account: Account, last_login: datetime | None = None) -> UserOut:
    until = account.locked_until
    return UserOut(
        username=account.username,
        role=Role(account.role),
        unit=account.unit or "province",
        locked=account.locked,
        locked_until=until if until and until > ctx.now else None,
        disabled=account.disabled,
        must_change_password=account.must_change_password,
        password_changed_at=account.password_changed_at,
        password_expires_at=account.password_changed_at + ctx.config.password_max_age,
        created_at=account.created_at,
        last_login_at=last_login,
    )


async def _get(ctx: Ctx, username: str) -> UserOut:
    account = await account_named(ctx.db, username)
    return _out(ctx, account, await audit_log.last_login(ctx.db, username))


@routes.post(
    "/api/v1/users",
    summary="Create an account with a temporary password (changed at first login)",
    permission=Permission.USERS_MANAGE,
    body=UserCreate,
    response=UserOut,
    status=201,
    errors=[409],
)
async def create_user_route(ctx: Ctx) -> UserOut:
    body: UserCreate = ctx.body
    if body.role is Role.ADMIN and body.username.lower() in SHARED_NAMES:
        raise field_error(
            422, "shared_account", "username", "admin accounts are personal; use the person's name"
        )
    await create_user(
        ctx.db,
        body.username,
        body.password,
        body.role,
        body.unit,
        scrypt_n=ctx.config.scrypt_n,
        must_change_password=True,
        actor=ctx.user.username,
        actor_unit=ctx.user.unit,
        address=ctx.address,
        now=ctx.now,
    )
    return await _get(ctx, body.username)


@routes.get(
    "/api/v1/users",
    summary="List accounts",
    permission=Permission.USERS_MANAGE,
    response=list[UserOut],
)
async def list_users(ctx: Ctx) -> list[UserOut]:
    logins = await audit_log.last_logins(ctx.db)
    return [_out(ctx, a, logins.get(a.username)) for a in await accounts.every_account(ctx.db)]


@routes.get(
    "/api/v1/users/{username}",
    summary="One account",
    permission=Permission.USERS_MANAGE,
    response=UserOut,
    errors=[404],
)
async def get_user(ctx: Ctx) -> UserOut:
    return await _get(ctx, ctx.path("username"))


async def _state_change(ctx: Ctx, action: str) -> UserOut:
    account = await set_account_state(
        ctx.db,
        ctx.path("username"),
        action,
        now=ctx.now,
        actor=ctx.user.username,
        actor_unit=ctx.user.unit,
        address=ctx.address,
    )
    return _out(ctx, account, await audit_log.last_login(ctx.db, account.username))


@routes.post(
    "/api/v1/users/{username}/lock",
    summary="Lock an account until unlocked; its sessions end at once",
    permission=Permission.USERS_MANAGE,
    response=UserOut,
    errors=[404, 409],
)
async def lock_user(ctx: Ctx) -> UserOut:
    return await _state_change(ctx, "lock")


@routes.post(
    "/api/v1/users/{username}/unlock",
    summary="Unlock an account (also clears a failed-login lockout)",
    permission=Permission.USERS_MANAGE,
    response=UserOut,
    errors=[404, 409],
)
async def unlock_user(ctx: Ctx) -> UserOut:
    return await _state_change(ctx, "unlock")


@routes.post(
    "/api/v1/users/{username}/disable",
    summary="Disable an account for good (staff change); its sessions end at once",
    permission=Permission.USERS_MANAGE,
    response=UserOut,
    errors=[404, 409],
)
async def disable_user(ctx: Ctx) -> UserOut:
    return await _state_change(ctx, "disable")


@routes.post(
    "/api/v1/users/{username}/password",
    summary="Reset a password to a temporary one; forces a change, ends every session",
    permission=Permission.USERS_MANAGE,
    body=PasswordReset,
    response=UserOut,
    errors=[403, 404, 409],
)
async def reset_password_route(ctx: Ctx) -> UserOut:
    body: PasswordReset = ctx.body
    username = ctx.path("username")
    if username == ctx.user.username:
        # A reset skips the old-password check and the history rules; for one's own account
        # that would let a stolen session take the account over. The own change asks for both.
        raise ApiError(
            403,
            "own_account",
            "an administrator cannot reset its own password; change it with"
            " POST /api/v1/auth/password (the current password is asked)",
        )
    if (await account_named(ctx.db, username)).disabled:
        raise ApiError(409, "disabled", f"user {username!r} is disabled for good")
    await reset_password(
        ctx.db,
        username,
        body.password,
        config=ctx.config,
        now=ctx.now,
        actor=ctx.user.username,
        actor_unit=ctx.user.unit,
        address=ctx.address,
    )
    return await _get(ctx, username)


@routes.post(
    "/api/v1/users/{username}/move",
    summary="Move an account to another role or unit (staff change posts); its sessions end",
    permission=Permission.USERS_MANAGE,
    body=UserMove,
    response=UserOut,
    errors=[404, 409],
)
async def move_user(ctx: Ctx) -> UserOut:
    body: UserMove = ctx.body
    account = await move_account(
        ctx.db,
        ctx.path("username"),
        body.role,
        body.unit,
        now=ctx.now,
        actor=ctx.user.username,
        actor_unit=ctx.user.unit,
        address=ctx.address,
    )
    return _out(ctx, account, await audit_log.last_login(ctx.db, account.username))
