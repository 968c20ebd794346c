"""Who is calling: operator sessions (Bearer) and devices (Device id:secret), and `require`.

Roles and units are stored now; today every logged-in operator may do everything. The
permission check lives only in `require`, so role and unit scoping extend in one place.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from aiohttp import web

from loa_contract import DeviceKind, utcnow

from .appkeys import CONFIG, DB
from .db import Database, from_iso, iso
from .errors import ApiError
from .security import (
    hash_password,
    new_token,
    secret_matches,
    sha256_hex,
    verify_password,
)


class Role(StrEnum):
    ADMIN = "admin"
    REVIEWER = "reviewer"
    CONTRIBUTOR = "contributor"
    COMMUNE_OPERATOR = "commune_operator"
    TECHNICIAN = "technician"
    VIEWER = "viewer"


class Permission(StrEnum):
    READ = "read"
    COMMUNES_WRITE = "communes.write"
    DEVICES_WRITE = "devices.write"
    DEVICES_COMMAND = "devices.command"
    MEDIA_WRITE = "media.write"
    BULLETINS_WRITE = "bulletins.write"
    BULLETINS_PUBLISH = "bulletins.publish"
    EMERGENCY = "emergency"


# This issue grants every role everything; the RBAC issue narrows this table only.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {role: frozenset(Permission) for role in Role}

# Touching a session or a device's last_seen is a write; once a minute is precise enough.
_TOUCH_EVERY = timedelta(seconds=60)
_DEVICE_TOUCH_EVERY = timedelta(seconds=30)


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: Role
    unit: str | None
    must_change_password: bool


@dataclass(frozen=True)
class DeviceAuth:
    id: str
    commune: str
    kind: DeviceKind
    profile: str
    manifest_version: int
    manifest_signed_version: int | None
    manifest_signed_at: datetime | None


def require(user: User, permission: Permission, *, unit: str | None = None) -> None:
    """Raise 403 unless `user` may do `permission` (on data of `unit`, when given).

    Unit scoping is not enforced yet: `unit` is accepted so callers already pass it.
    """
    if permission not in ROLE_PERMISSIONS.get(user.role, frozenset()):
        raise ApiError(403, "forbidden", f"role {user.role.value} may not {permission.value}")


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, "unauthorized", "send Authorization: Bearer <token> (from POST /api/v1/auth/login)"
        )
    return token.strip()


async def authenticate_operator(request: web.Request) -> User:
    token = _bearer(request)
    db = request.app[DB]
    config = request.app[CONFIG]
    token_hash = sha256_hex(token)
    row = await db.fetchone(
        "SELECT s.expires_at, s.last_used_at, u.id, u.username, u.role, u.unit, u.locked,"
        " u.must_change_password FROM sessions s JOIN users u ON u.id = s.user_id"
        " WHERE s.token_hash = ?",
        (token_hash,),
    )
    now = utcnow()
    if row is None:
        raise ApiError(401, "unauthorized", "invalid or expired token")
    last_used = from_iso(row["last_used_at"])
    expired = from_iso(row["expires_at"]) <= now or last_used + config.session_idle <= now
    if expired or row["locked"]:
        await db.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))
        raise ApiError(401, "unauthorized", "invalid or expired token")
    if now - last_used >= _TOUCH_EVERY:
        await db.execute(
            "UPDATE sessions SET last_used_at = ? WHERE token_hash = ?", (iso(now), token_hash)
        )
    return User(
        id=row["id"],
        username=row["username"],
        role=Role(row["role"]),
        unit=row["unit"],
        must_change_password=bool(row["must_change_password"]),
    )


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


async def login(
    db: Database,
    username: str,
    password: str,
    *,
    scrypt_n: int,
    idle: timedelta,
    lifetime: timedelta,
    address: str | None,
) -> tuple[str, datetime, User]:
    row = await db.fetchone("SELECT * FROM users WHERE username = ?", (username,))
    stored = row["password_hash"] if row else _dummy_hash(scrypt_n)
    ok = await asyncio.to_thread(verify_password, password, stored)
    if row is None or not ok or row["locked"]:
        raise ApiError(401, "invalid_credentials", "wrong username or password")
    token = new_token()
    now = utcnow()
    expires = now + lifetime
    async with db.transaction() as conn:
        await conn.execute(
            "DELETE FROM sessions WHERE expires_at <= ? OR last_used_at <= ?",
            (iso(now), iso(now - idle)),
        )
        await conn.execute(
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_used_at,"
            " address) VALUES (?, ?, ?, ?, ?, ?)",
            (sha256_hex(token), row["id"], iso(now), iso(expires), iso(now), address),
        )
        await conn.execute("UPDATE users SET failed_logins = 0 WHERE id = ?", (row["id"],))
    user = User(
        id=row["id"],
        username=row["username"],
        role=Role(row["role"]),
        unit=row["unit"],
        must_change_password=bool(row["must_change_password"]),
    )
    return token, expires, user


@functools.cache
def _dummy_hash(n: int) -> str:
    """A real hash, so a login for an unknown user costs the same as a wrong password."""
    return hash_password("not a password", n)


async def logout(db: Database, request: web.Request) -> None:
    await db.execute("DELETE FROM sessions WHERE token_hash = ?", (sha256_hex(_bearer(request)),))


async def create_user(
    db: Database,
    username: str,
    password: str,
    role: Role,
    unit: str | None,
    *,
    scrypt_n: int,
    must_change_password: bool = False,
) -> int:
    hashed = await asyncio.to_thread(hash_password, password, scrypt_n)
    now = iso(utcnow())
    async with db.transaction() as conn:
        cur = await conn.execute("SELECT 1 FROM users WHERE username = ?", (username,))
        if await cur.fetchone():
            raise ApiError(409, "exists", f"user {username!r} already exists")
        cur = await conn.execute(
            "INSERT INTO users (username, password_hash, role, unit, must_change_password,"
            " password_changed_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (username, hashed, role.value, unit, int(must_change_password), now, now),
        )
        return int(cur.lastrowid or 0)
