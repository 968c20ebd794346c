"""Who is calling and what they may do: accounts, sessions, devices, roles and units.

The permission check lives only in `require` and the unit scope in `User.commune` /
`User.may_see_commune`, so every handler asks the same two questions the same way.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from aiohttp import web

from loa_contract import DeviceKind, utcnow

from .appkeys import CLOCK, CONFIG, DB
from .config import HubConfig
from .db import Database, from_iso, iso
from .errors import ApiError, field_error
from .security import (
    hash_password,
    new_token,
    secret_matches,
    sha256_hex,
    verify_password,
)
from .store import audit as audit_log
from .store.sql import Row, Tx

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
        }
    ),
    Role.TECHNICIAN: frozenset({_P.READ, _P.FLEET_READ, _P.DEVICES_WRITE, _P.DEVICES_COMMAND}),
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


@dataclass(frozen=True)
class DeviceAuth:
    id: str
    commune: str
    kind: DeviceKind
    profile: str
    manifest_version: int
    manifest_signed_version: int | None
    manifest_signed_at: datetime | None


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


async def check_unit_exists(conn: Tx, role: Role, unit: str) -> None:
    confined = role is Role.COMMUNE_OPERATOR or (role in EITHER_ROLES and unit != PROVINCE)
    if confined:
        cur = await conn.fetchone("SELECT 1 FROM communes WHERE code = ?", (unit,))
        if cur is None:
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


def _user(row: sqlite3.Row, config: HubConfig, now: datetime) -> User:
    expired = from_iso(row["password_changed_at"]) + config.password_max_age <= now
    return User(
        id=row["id"],
        username=row["username"],
        role=Role(row["role"]),
        unit=row["unit"] or PROVINCE,
        must_change_password=bool(row["must_change_password"]) or expired,
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
    row = await db.fetchone(
        "SELECT s.expires_at, s.last_used_at, s.csrf_token, u.* FROM sessions s"
        " JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.kind = ?",
        (token_hash, kind),
    )
    if row is None:
        return None
    last_used = from_iso(row["last_used_at"])
    expired = from_iso(row["expires_at"]) <= now or last_used + config.session_idle <= now
    if expired or row["locked"] or row["disabled"]:
        await db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))
        return None
    if now - last_used >= _TOUCH_EVERY:
        await db.execute(
            "UPDATE sessions SET last_used_at = ? WHERE token_hash = ?", (iso(now), token_hash)
        )
    return Session(_user(row, config, now), row["csrf_token"])


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
    row = await db.fetchone("SELECT * FROM devices WHERE id = ?", (device_id,))
    # Compare even for an unknown id so timing does not reveal which ids exist.
    if not secret_matches(secret, row["secret_hash"] if row else sha256_hex("")) or row is None:
        raise ApiError(401, "unauthorized", "unknown device or wrong secret")
    now = utcnow()
    last_seen = from_iso(row["last_seen"]) if row["last_seen"] else None
    if last_seen is None or now - last_seen >= _DEVICE_TOUCH_EVERY:
        await db.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (iso(now), device_id))
    return DeviceAuth(
        id=row["id"],
        commune=row["commune"],
        kind=DeviceKind(row["kind"]),
        profile=row["profile"],
        manifest_version=row["manifest_version"],
        manifest_signed_version=row["manifest_signed_version"],
        manifest_signed_at=(
            from_iso(row["manifest_signed_at"]) if row["manifest_signed_at"] else None
        ),
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
    row = await db.fetchone("SELECT * FROM users WHERE username = ?", (username,))
    stored = row["password_hash"] if row else _dummy_hash(config.scrypt_n)
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
    async with db.transaction() as conn:
        if row is None:
            await audit_log.append(
                conn,
                username[:100],
                address,
                "auth.login_failed",
                username[:100],
                "unknown user",
                at=now,
            )
            failure = bad
        elif row["disabled"]:
            await audit_log.append(
                conn,
                row["username"],
                address,
                "auth.login_failed",
                row["username"],
                "account disabled",
                unit=row["unit"],
                at=now,
            )
            failure = bad
        elif row["locked"] or (row["locked_until"] and from_iso(row["locked_until"]) > now):
            await audit_log.append(
                conn,
                row["username"],
                address,
                "auth.login_refused",
                row["username"],
                "locked by an administrator"
                if row["locked"]
                else f"locked until {row['locked_until']}",
                unit=row["unit"],
                at=now,
            )
            failure = bad
        elif not ok:
            cur = await conn.fetchone(
                "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ?"
                " RETURNING failed_logins",
                (row["id"],),
            )
            counted = cur
            assert counted is not None  # RETURNING of a row read in this transaction
            failed = counted[0]
            await audit_log.append(
                conn,
                row["username"],
                address,
                "auth.login_failed",
                row["username"],
                f"wrong password ({failed})",
                unit=row["unit"],
                at=now,
            )
            if failed >= config.max_failed_logins:
                until = now + config.lockout
                await conn.execute(
                    "UPDATE users SET failed_logins = 0, locked_until = ? WHERE id = ?",
                    (iso(until), row["id"]),
                )
                await audit_log.append(
                    conn,
                    "system",
                    address,
                    "auth.lockout",
                    row["username"],
                    f"{failed} failed logins",
                    unit=row["unit"],
                    after={"locked_until": iso(until)},
                    at=now,
                )
            failure = bad
        else:
            await conn.execute(
                "DELETE FROM sessions WHERE expires_at <= ? OR last_used_at <= ?",
                (iso(now), iso(now - config.session_idle)),
            )
            await conn.execute(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_used_at,"
                " address, kind, csrf_token) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sha256_hex(token),
                    row["id"],
                    iso(now),
                    iso(expires),
                    iso(now),
                    address,
                    kind,
                    csrf,
                ),
            )
            await conn.execute(
                "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?",
                (row["id"],),
            )
            await audit_log.append(
                conn,
                row["username"],
                address,
                "auth.login",
                row["username"],
                kind,
                unit=row["unit"],
                at=now,
            )
    if failure is not None or row is None:
        raise failure or bad
    return LoginResult(token, csrf, expires, _user(row, config, now))


@functools.cache
def _dummy_hash(n: int) -> str:
    """A real hash, so a login for an unknown user costs the same as a wrong password."""
    return hash_password("not a password", n)


async def end_session(
    db: Database, token: str, user: User, address: str | None, now: datetime
) -> None:
    async with db.transaction() as conn:
        await conn.execute("DELETE FROM sessions WHERE token_hash = ?", (sha256_hex(token),))
        await audit_log.append(
            conn, user.username, address, "auth.logout", user.username, unit=user.unit, at=now
        )


async def logout(db: Database, request: web.Request, user: User, now: datetime) -> None:
    await end_session(db, _bearer(request), user, request.remote, now)


async def end_all_sessions(conn: Tx, user_id: int) -> int:
    cur = await conn.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))
    return cur


# ---------------------------------------------------------------- accounts


async def _history_hashes(conn: Tx, user_id: int, keep: int) -> list[str]:
    cur = await conn.fetchall(
        "SELECT password_hash FROM password_history WHERE user_id = ? ORDER BY id DESC LIMIT ?",
        (user_id, keep),
    )
    return [r[0] for r in cur]


async def _reused(hashes: list[str], password: str) -> bool:
    for stored in hashes:
        if await asyncio.to_thread(verify_password, password, stored):
            return True
    return False


async def _store_password(
    conn: Tx, user_id: int, hashed: str, now: datetime, must_change: bool
) -> None:
    await conn.execute(
        "UPDATE users SET password_hash = ?, password_changed_at = ?, must_change_password = ?,"
        " failed_logins = 0, locked_until = NULL WHERE id = ?",
        (hashed, iso(now), int(must_change), user_id),
    )
    await conn.execute(
        "INSERT INTO password_history (user_id, password_hash, changed_at) VALUES (?, ?, ?)",
        (user_id, hashed, iso(now)),
    )


async def create_user(
    db: Database,
    username: str,
    password: str,
    role: Role,
    unit: str | None,
    *,
    scrypt_n: int,
    must_change_password: bool = False,
    actor: str = "system",
    actor_unit: str | None = None,
    address: str | None = None,
    now: datetime | None = None,
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
    at = now or utcnow()
    async with db.transaction() as conn:
        cur = await conn.fetchone("SELECT 1 FROM users WHERE username = ?", (username,))
        if cur:
            raise ApiError(409, "exists", f"user {username!r} already exists")
        await check_unit_exists(conn, role, unit)
        user_id = int(
            await conn.fetchval(
                "INSERT INTO users (username, password_hash, role, unit, must_change_password,"
                " password_changed_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (username, hashed, role.value, unit, int(must_change_password), iso(at), iso(at)),
            )
        )
        await conn.execute(
            "INSERT INTO password_history (user_id, password_hash, changed_at) VALUES (?, ?, ?)",
            (user_id, hashed, iso(at)),
        )
        await audit_log.append(
            conn,
            actor,
            address,
            "user.create",
            username,
            unit=actor_unit,
            at=at,
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
    row = await db.fetchone("SELECT password_hash FROM users WHERE id = ?", (user.id,))
    if row is None or not await asyncio.to_thread(
        verify_password, old_password, row["password_hash"]
    ):
        raise field_error(403, "wrong_password", "old_password", "is not the current password")
    check_password_policy(new_password, user.username, "new_password")
    hashed = await asyncio.to_thread(hash_password, new_password, config.scrypt_n)
    async with db.transaction() as conn:
        history = await _history_hashes(conn, user.id, config.password_history)
        if await _reused([row["password_hash"], *history], new_password):
            raise field_error(
                422,
                "password_reused",
                "new_password",
                f"must differ from the last {config.password_history} passwords",
            )
        await _store_password(conn, user.id, hashed, now, must_change=False)
        ended = await end_all_sessions(conn, user.id)
        await audit_log.append(
            conn,
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
    async with db.transaction() as conn:
        row = await user_row(conn, username)
        await _store_password(conn, row["id"], hashed, now, must_change=must_change)
        ended = await end_all_sessions(conn, row["id"])
        await audit_log.append(
            conn,
            actor,
            address,
            "user.password_reset",
            username,
            f"{ended} sessions ended",
            unit=actor_unit,
            at=now,
            after={"must_change_password": must_change},
        )


async def user_row(conn: Tx, username: str) -> Row:
    row = await conn.fetchone("SELECT * FROM users WHERE username = ?", (username,))
    if row is None:
        raise ApiError(404, "not_found", f"no user {username!r}")
    return row


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
) -> Row:
    """Lock, unlock or disable (for good). Locking and disabling end the account's sessions
    at once; neither may leave the province without a usable admin."""
    async with db.transaction() as conn:
        row = await user_row(conn, username)
        before = _state(row)
        if row["disabled"]:
            raise ApiError(409, "disabled", f"user {username!r} is disabled for good")
        if action in ("lock", "disable") and row["role"] == Role.ADMIN.value:
            cur = await conn.fetchone(
                "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND locked = 0"
                " AND id != ?",
                (row["id"],),
            )
            others = cur
            assert others is not None  # COUNT(*) always answers one row
            if others[0] == 0:
                raise ApiError(409, "last_admin", "at least one admin must remain enabled")
        if action == "lock":
            await conn.execute("UPDATE users SET locked = 1 WHERE id = ?", (row["id"],))
        elif action == "unlock":
            await conn.execute(
                "UPDATE users SET locked = 0, locked_until = NULL, failed_logins = 0 WHERE id = ?",
                (row["id"],),
            )
        elif action == "disable":
            await conn.execute("UPDATE users SET disabled = 1 WHERE id = ?", (row["id"],))
        else:
            raise ValueError(action)
        ended = await end_all_sessions(conn, row["id"]) if action != "unlock" else 0
        row = await user_row(conn, username)
        await audit_log.append(
            conn,
            actor,
            address,
            f"user.{action}",
            username,
            f"{ended} sessions ended" if ended else None,
            unit=actor_unit,
            at=now,
            before=before,
            after=_state(row),
        )
        return row


def _state(row: Row) -> dict[str, object]:
    return {
        "locked": bool(row["locked"]),
        "locked_until": row["locked_until"],
        "disabled": bool(row["disabled"]),
    }
