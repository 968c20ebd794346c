"""Who is calling and what they may do: accounts, sessions, devices, roles and units.

The permission check lives only in `require` and the unit scope in `User.commune` /
`User.may_see_commune`, so every handler asks the same two questions the same way.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from aiohttp import web

from loa_contract import DeviceKind

from .appkeys import CLOCK, CONFIG, DB
from .config import HubConfig
from .db import Database, iso
from .errors import ApiError, field_error
from .security import (
    hash_password,
    new_token,
    secret_matches,
    sha256_hex,
    verify_password,
)
from .store import accounts, communes, devices
from .store import audit as audit_log
from .store.accounts import Account
from .store.sql import Reader

#: The unit of province-level accounts (the Sở and its hub operators).
PROVINCE = "province"


class Role(StrEnum):
    ADMIN = "admin"
    REVIEWER = "reviewer"
    CONTRIBUTOR = "contributor"
    COMMUNE_OPERATOR = "commune_operator"
    TECHNICIAN = "technician"
    VIEWER = "viewer"


class Permission(StrEnum):
    READ = "read"
    #: Devices, their health and proof-of-play: not for contributing agencies.
    FLEET_READ = "fleet.read"
    COMMUNES_CREATE = "communes.create"
    #: A commune's windows, volume and name (a commune operator: its own).
    COMMUNES_WRITE = "communes.write"
    DEVICES_WRITE = "devices.write"
    DEVICES_COMMAND = "devices.command"
    MEDIA_WRITE = "media.write"
    #: Create, edit and submit one's own unit's bulletins.
    BULLETINS_WRITE = "bulletins.write"
    #: The province's review (thẩm định): see the queue, edit, return, approve.
    BULLETINS_REVIEW = "bulletins.review"
    BULLETINS_PUBLISH = "bulletins.publish"
    #: The commune's running order of priority bulletins.
    BULLETINS_ORDER = "bulletins.order"
    EMERGENCY = "emergency"
    USERS_MANAGE = "users.manage"
    AUDIT_READ = "audit.read"
    #: The hub process's CPU, memory and connection figures (capacity planning).
    HUB_PROCESS = "hub.process"
    #: Announce or withdraw planned maintenance or a switch to the standby.
    MAINTENANCE = "maintenance"
    #: Open and close incidents (sự cố) of one's commune's devices (hub/incidents.py).
    INCIDENTS_WRITE = "incidents.write"
    #: Submit a finished month's report: a commune's to the province, the province's upward.
    REPORTS_SUBMIT = "reports.submit"
    #: Agent releases and their roll-outs to the fleet (issue #14).
    FLEET_UPDATES = "fleet.updates"


_P = Permission
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.REVIEWER: frozenset(
        {
            _P.READ,
            _P.FLEET_READ,
            _P.MEDIA_WRITE,
            _P.BULLETINS_WRITE,
            _P.BULLETINS_REVIEW,
            _P.BULLETINS_PUBLISH,
            _P.EMERGENCY,
            _P.REPORTS_SUBMIT,
        }
    ),
    Role.CONTRIBUTOR: frozenset({_P.READ, _P.MEDIA_WRITE, _P.BULLETINS_WRITE}),
    Role.COMMUNE_OPERATOR: frozenset(
        {
            _P.READ,
            _P.FLEET_READ,
            _P.COMMUNES_WRITE,
            _P.DEVICES_WRITE,
            _P.DEVICES_COMMAND,
            _P.MEDIA_WRITE,
            _P.BULLETINS_WRITE,
            _P.BULLETINS_PUBLISH,
            _P.BULLETINS_ORDER,
            _P.EMERGENCY,
            _P.INCIDENTS_WRITE,
            _P.REPORTS_SUBMIT,
        }
    ),
    Role.TECHNICIAN: frozenset(
        {_P.READ, _P.FLEET_READ, _P.DEVICES_WRITE, _P.DEVICES_COMMAND, _P.INCIDENTS_WRITE}
    ),
    Role.VIEWER: frozenset({_P.READ, _P.FLEET_READ}),
}

#: Roles whose unit is always the province.
PROVINCE_ROLES = frozenset({Role.ADMIN, Role.REVIEWER})
#: Roles that may belong to the province or to one commune (then confined to it).
EITHER_ROLES = frozenset({Role.TECHNICIAN, Role.VIEWER})

#: Names that say "a team uses this", which the regulations forbid for admin accounts.
SHARED_NAMES = frozenset(
    {"admin", "administrator", "root", "quantri", "quantrivien", "shared", "chung", "test", "sa"}
)
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")

# Touching a session or a device's last_seen is a write; once a minute is precise enough.
_TOUCH_EVERY = timedelta(seconds=60)
_DEVICE_TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    unit: str
    must_change_password: bool
    password_expired: bool = False

    @property
    def commune(self) -> str | None:
        """The one commune this account is confined to; None when it is not commune-bound."""
        if self.role is Role.COMMUNE_OPERATOR:
            return self.unit
        if self.role in EITHER_ROLES and self.unit != PROVINCE:
            return self.unit
        return None

    @property
    def province_wide(self) -> bool:
        return self.role in PROVINCE_ROLES or (self.role in EITHER_ROLES and self.unit == PROVINCE)

    def may(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS.get(self.role, frozenset())

    def may_see_commune(self, commune: str) -> bool:
        return self.commune is None or self.commune == commune


@dataclass(frozen=True, slots=True)
class DeviceAuth:
    id: str
    commune: str
    kind: DeviceKind
    profile: str
    manifest_version: int
    manifest_signed_version: int | None
    manifest_signed_at: datetime | None
    #: When the device last enrolled (None: not recorded): no airing of it is older.
    enrolled_at: datetime | None


def require(user: User, permission: Permission, *, commune: str | None = None) -> None:
    """Raise 403 unless `user` may do `permission` (on data of `commune`, when given)."""
    if not user.may(permission):
        raise ApiError(403, "forbidden", f"role {user.role.value} may not {permission.value}")
    if commune is not None and not user.may_see_commune(commune):
        raise ApiError(403, "out_of_scope", f"commune {commune!r} is outside your unit")


# ---------------------------------------------------------------- password policy


def password_problems(password: str, username: str | None = None) -> list[str]:
    problems = []
    if len(password) < 8:
        problems.append("at least 8 characters")
    if not any(c.isupper() for c in password):
        problems.append("an upper-case letter")
    if not any(c.islower() for c in password):
        problems.append("a lower-case letter")
    if not any(c.isdigit() for c in password):
        problems.append("a digit")
    if all(c.isalnum() for c in password):
        problems.append("a special character")
    messages = ["needs " + ", ".join(problems)] if problems else []
    if username and username.lower() in password.lower():
        messages.append("must not contain the username")
    return messages


def check_password_policy(password: str, username: str | None, field: str = "password") -> None:
    problems = password_problems(password, username)
    if problems:
        raise field_error(422, "weak_password", field, "; ".join(problems))


def check_role_unit(role: Role, unit: str | None, field: str = "unit") -> str:
    """The unit an account of `role` gets; the commune check needs the database (see below)."""
    if role in PROVINCE_ROLES:
        if unit not in (None, PROVINCE):
            raise field_error(422, "bad_unit", field, f"a {role.value} belongs to the province")
        return PROVINCE
    if not unit:
        raise field_error(422, "bad_unit", field, f"a {role.value} needs a unit")
    if not re.match(r"^[A-Za-z0-9_.-]{1,32}$", unit):
        raise field_error(422, "bad_unit", field, "letters, digits, '_', '.', '-'; at most 32")
    return unit


async def check_unit_exists(db: Reader, role: Role, unit: str) -> None:
    confined = role is Role.COMMUNE_OPERATOR or (role in EITHER_ROLES and unit != PROVINCE)
    if confined and not await communes.exists(db, unit):
        raise field_error(422, "bad_unit", "unit", f"no commune {unit!r}")


# ---------------------------------------------------------------- sessions


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, "unauthorized", "send Authorization: Bearer <token> (from POST /api/v1/auth/login)"
        )
    return token.strip()


def _user(account: Account, config: HubConfig, now: datetime) -> User:
    expired = account.password_changed_at + config.password_max_age <= now
    return User(
        id=account.id,
        username=account.username,
        role=Role(account.role),
        unit=account.unit or PROVINCE,
        must_change_password=account.must_change_password or expired,
        password_expired=expired,
    )


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str | None


async def session_for_token(app: web.Application, token: str, kind: str) -> Session | None:
    """The live session of `token`, or None; ends it when idle, expired or the account is off."""
    db = app[DB]
    config = app[CONFIG]
    now = app[CLOCK]()
    token_hash = sha256_hex(token)
    found = await accounts.session(db, token_hash, kind)
    if found is None:
        return None
    account = found.account
    expired = found.expires_at <= now or found.last_used_at + config.session_idle <= now
    if expired or account.locked or account.disabled:
        async with db.transaction() as tx:
            await accounts.end_session(tx, token_hash)
        return None
    if now - found.last_used_at >= _TOUCH_EVERY:
        async with db.transaction() as tx:
            await accounts.touch_session(tx, token_hash, now)
    return Session(_user(account, config, now), found.csrf_token)


async def authenticate_operator(request: web.Request) -> User:
    session = await session_for_token(request.app, _bearer(request), "bearer")
    if session is None:
        raise ApiError(401, "unauthorized", "invalid or expired token")
    return session.user


async def authenticate_device(request: web.Request) -> DeviceAuth:
    header = request.headers.get("Authorization", "")
    scheme, _, cred = header.partition(" ")
    device_id, sep, secret = cred.strip().partition(":")
    if scheme != "Device" or not sep or not device_id or not secret:
        raise ApiError(401, "unauthorized", "send Authorization: Device <device_id>:<secret>")
    db = request.app[DB]
    found = await devices.credentials(db, device_id)
    # Compare even for an unknown id so timing does not reveal which ids exist.
    stored = found.secret_hash if found is not None else sha256_hex("")
    if not secret_matches(secret, stored) or found is None:
        raise ApiError(401, "unauthorized", "unknown device or wrong secret")
    now = request.app[CLOCK]()
    if found.last_seen is None or now - found.last_seen >= _DEVICE_TOUCH_EVERY:
        async with db.transaction() as tx:
            await devices.touch_seen(tx, device_id, now)
    # A device's socket keeps this for months; its commune and profile are shared by hundreds
    # of devices, so one copy of each string serves them all.
    return DeviceAuth(
        id=found.id,
        commune=sys.intern(found.commune),
        kind=found.kind,
        profile=sys.intern(found.profile),
        manifest_version=found.manifest_version,
        manifest_signed_version=found.manifest_signed_version,
        manifest_signed_at=found.manifest_signed_at,
        enrolled_at=found.enrolled_at,
    )


@dataclass(frozen=True)
class LoginResult:
    token: str
    csrf_token: str | None
    expires_at: datetime
    user: User


async def login(
    db: Database,
    username: str,
    password: str,
    *,
    config: HubConfig,
    now: datetime,
    address: str | None,
    kind: str = "bearer",
) -> LoginResult:
    """Check a password and open a session; failures count towards a temporary lockout.

    An unknown name, a wrong password, a disabled and a locked account give the same answer,
    whatever the password: guessing learns neither which names exist nor which are locked.
    """
    # No account's name holds U+0000 (names are checked when made), and PostgreSQL refuses
    # it in a query: such a name is simply unknown. The audit keeps what was tried, visibly.
    account = None if "\x00" in username else await accounts.by_username(db, username)
    tried = username.replace("\x00", "\\x00")[:100]
    stored = account.password_hash if account else _dummy_hash(config.scrypt_n)
    ok = await asyncio.to_thread(verify_password, password, stored)
    failure: ApiError | None = None
    token = new_token()
    csrf = new_token() if kind == "cookie" else None
    expires = now + config.session_lifetime
    minutes = int(config.lockout.total_seconds() // 60)
    # One answer for an unknown name, a wrong password, a disabled and a locked account: a
    # different one for "locked" would tell a guesser which names exist. The lockout policy
    # is stated instead, so a person who is locked out knows how long to wait.
    bad = ApiError(
        401,
        "invalid_credentials",
        f"wrong username or password, or the account is locked (after"
        f" {config.max_failed_logins} failures in a row it is locked for {minutes} minutes)",
    )
    async with db.transaction() as tx:
        if account is None:
            await audit_log.append(
                tx,
                tried,
                address,
                "auth.login_failed",
                tried,
                "unknown user",
                at=now,
            )
            failure = bad
        elif account.disabled:
            await audit_log.append(
                tx,
                account.username,
                address,
                "auth.login_failed",
                account.username,
                "account disabled",
                unit=account.unit,
                at=now,
            )
            failure = bad
        elif account.locked or (account.locked_until and account.locked_until > now):
            await audit_log.append(
                tx,
                account.username,
                address,
                "auth.login_refused",
                account.username,
                "locked by an administrator"
                if account.locked
                else f"locked until {iso(account.locked_until) if account.locked_until else ''}",
                unit=account.unit,
                at=now,
            )
            failure = bad
        elif not ok:
            failed = await accounts.count_failed_login(tx, account.id)
            await audit_log.append(
                tx,
                account.username,
                address,
                "auth.login_failed",
                account.username,
                f"wrong password ({failed})",
                unit=account.unit,
                at=now,
            )
            if failed >= config.max_failed_logins:
                until = now + config.lockout
                await accounts.lock_out(tx, account.id, until)
                await audit_log.append(
                    tx,
                    "system",
                    address,
                    "auth.lockout",
                    account.username,
                    f"{failed} failed logins",
                    unit=account.unit,
                    after={"locked_until": iso(until)},
                    at=now,
                )
            failure = bad
        else:
            await accounts.purge_sessions(tx, expired_by=now, idle_since=now - config.session_idle)
            await accounts.open_session(
                tx,
                sha256_hex(token),
                account.id,
                at=now,
                expires_at=expires,
                address=address,
                kind=kind,
                csrf_token=csrf,
            )
            await accounts.clear_failed_logins(tx, account.id)
            await audit_log.append(
                tx,
                account.username,
                address,
                "auth.login",
                account.username,
                kind,
                unit=account.unit,
                at=now,
            )
    if failure is not None or account is None:
        raise failure or bad
    return LoginResult(token, csrf, expires, _user(account, config, now))


@functools.cache
def _dummy_hash(n: int) -> str:
    """A real hash, so a login for an unknown user costs the same as a wrong password."""
    return hash_password("not a password", n)


async def end_session(
    db: Database, token: str, user: User, address: str | None, now: datetime
) -> None:
    async with db.transaction() as tx:
        await accounts.end_session(tx, sha256_hex(token))
        await audit_log.append(
            tx, user.username, address, "auth.logout", user.username, unit=user.unit, at=now
        )


async def logout(db: Database, request: web.Request, user: User, now: datetime) -> None:
    await end_session(db, _bearer(request), user, request.remote, now)


# ---------------------------------------------------------------- accounts


async def _reused(hashes: list[str], password: str) -> bool:
    for stored in hashes:
        if await asyncio.to_thread(verify_password, password, stored):
            return True
    return False


async def create_user(
    db: Database,
    username: str,
    password: str,
    role: Role,
    unit: str | None,
    *,
    scrypt_n: int,
    now: datetime,
    must_change_password: bool = False,
    actor: str = "system",
    actor_unit: str | None = None,
    address: str | None = None,
) -> int:
    """Add an account. The API always passes must_change_password=True (a temporary password
    chosen by someone else); the command line may not (see `hub user add`)."""
    if not USERNAME.match(username):
        raise field_error(
            422, "bad_username", "username", "2-64 of a-z, 0-9, '.', '_', '-'; lower case"
        )
    check_password_policy(password, username)
    unit = check_role_unit(role, unit)
    hashed = await asyncio.to_thread(hash_password, password, scrypt_n)
    async with db.transaction() as tx:
        if await accounts.by_username(tx, username) is not None:
            raise ApiError(409, "exists", f"user {username!r} already exists")
        await check_unit_exists(tx, role, unit)
        user_id = await accounts.add(
            tx,
            username,
            hashed,
            role.value,
            unit,
            must_change_password=must_change_password,
            at=now,
        )
        await audit_log.append(
            tx,
            actor,
            address,
            "user.create",
            username,
            unit=actor_unit,
            at=now,
            after={"role": role.value, "unit": unit, "must_change_password": must_change_password},
        )
        return user_id


async def change_password(
    db: Database,
    user: User,
    old_password: str,
    new_password: str,
    *,
    config: HubConfig,
    now: datetime,
    address: str | None,
) -> None:
    """The holder's own change: proves the old password, refuses the last N; every session of
    the account ends (the caller opens a new one)."""
    account = await accounts.by_id(db, user.id)
    if account is None or not await asyncio.to_thread(
        verify_password, old_password, account.password_hash
    ):
        raise field_error(403, "wrong_password", "old_password", "is not the current password")
    check_password_policy(new_password, user.username, "new_password")
    hashed = await asyncio.to_thread(hash_password, new_password, config.scrypt_n)
    async with db.transaction() as tx:
        history = await accounts.recent_passwords(tx, user.id, config.password_history)
        if await _reused([account.password_hash, *history], new_password):
            raise field_error(
                422,
                "password_reused",
                "new_password",
                f"must differ from the last {config.password_history} passwords",
            )
        await accounts.set_password(tx, user.id, hashed, at=now, must_change=False)
        ended = await accounts.end_sessions_of(tx, user.id)
        await audit_log.append(
            tx,
            user.username,
            address,
            "user.password_change",
            user.username,
            f"{ended} sessions ended",
            unit=user.unit,
            at=now,
        )


async def reset_password(
    db: Database,
    username: str,
    password: str,
    *,
    config: HubConfig,
    now: datetime,
    actor: str,
    actor_unit: str | None,
    address: str | None,
    must_change: bool = True,
) -> None:
    """An administrator's reset: a temporary password, a forced change, every session ended."""
    check_password_policy(password, username)
    hashed = await asyncio.to_thread(hash_password, password, config.scrypt_n)
    async with db.transaction() as tx:
        account = await account_named(tx, username)
        await accounts.set_password(tx, account.id, hashed, at=now, must_change=must_change)
        ended = await accounts.end_sessions_of(tx, account.id)
        await audit_log.append(
            tx,
            actor,
            address,
            "user.password_reset",
            username,
            f"{ended} sessions ended",
            unit=actor_unit,
            at=now,
            after={"must_change_password": must_change},
        )


async def account_named(db: Reader, username: str) -> Account:
    """The account, or 404."""
    account = await accounts.by_username(db, username)
    if account is None:
        raise ApiError(404, "not_found", f"no user {username!r}")
    return account


AccountAction = str  # "lock" | "unlock" | "disable"


async def set_account_state(
    db: Database,
    username: str,
    action: AccountAction,
    *,
    now: datetime,
    actor: str,
    actor_unit: str | None,
    address: str | None,
) -> Account:
    """Lock, unlock or disable (for good). Locking and disabling end the account's sessions
    at once; neither may leave the province without a usable admin."""
    async with db.transaction() as tx:
        account = await account_named(tx, username)
        before = _state(account)
        if account.disabled:
            raise ApiError(409, "disabled", f"user {username!r} is disabled for good")
        if action in ("lock", "disable") and account.role == Role.ADMIN.value:
            if await accounts.other_usable_admins(tx, account.id) == 0:
                raise ApiError(409, "last_admin", "at least one admin must remain enabled")
        if action == "lock":
            await accounts.lock(tx, account.id)
        elif action == "unlock":
            await accounts.unlock(tx, account.id)
        elif action == "disable":
            await accounts.disable(tx, account.id)
        else:
            raise ValueError(action)
        ended = await accounts.end_sessions_of(tx, account.id) if action != "unlock" else 0
        account = await account_named(tx, username)
        await audit_log.append(
            tx,
            actor,
            address,
            f"user.{action}",
            username,
            f"{ended} sessions ended" if ended else None,
            unit=actor_unit,
            at=now,
            before=before,
            after=_state(account),
        )
        return account


async def move_account(
    db: Database,
    username: str,
    role: Role,
    unit: str | None,
    *,
    now: datetime,
    actor: str,
    actor_unit: str | None,
    address: str | None,
) -> Account:
    """Move an account to another post (role, unit) when its holder changes jobs: checked as
    a new account's post would be, never leaving the province without a usable admin. Its
    sessions end, so what it may do changes at once; audited with before and after."""
    async with db.transaction() as tx:
        account = await account_named(tx, username)
        if account.disabled:
            raise ApiError(409, "disabled", f"user {username!r} is disabled for good")
        new_unit = check_role_unit(role, unit)
        await check_unit_exists(tx, role, new_unit)
        before = {"role": account.role, "unit": account.unit or PROVINCE}
        after = {"role": role.value, "unit": new_unit}
        if before == after:
            return account
        if account.role == Role.ADMIN.value and role is not Role.ADMIN:
            if await accounts.other_usable_admins(tx, account.id) == 0:
                raise ApiError(409, "last_admin", "at least one admin must remain enabled")
        await accounts.set_post(tx, account.id, role.value, new_unit)
        ended = await accounts.end_sessions_of(tx, account.id)
        await audit_log.append(
            tx,
            actor,
            address,
            "user.move",
            username,
            f"{ended} sessions ended" if ended else None,
            unit=actor_unit,
            at=now,
            before=before,
            after=after,
        )
        return await account_named(tx, username)


def _state(account: Account) -> dict[str, object]:
    return {
        "locked": account.locked,
        "locked_until": iso(account.locked_until) if account.locked_until else None,
        "disabled": account.disabled,
    }
