"""Operator accounts, their password history, failed-login lockouts and sessions.

Roles are stored as their text (hub/auth.py's `Role` values); the policy (who may log in,
what a role may do) is hub/auth.py's, not this module's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..db import from_iso, iso
from .sql import Reader, Row, Tx


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    password_hash: str
    #: A `hub.auth.Role` value.
    role: str
    #: None for accounts made before every account had a unit (they are the province's).
    unit: str | None
    must_change_password: bool
    #: Locked by an administrator until unlocked.
    locked: bool
    #: Locked after failed logins until then (None: not locked out).
    locked_until: datetime | None
    failed_logins: int
    #: Disabled for good (staff change).
    disabled: bool
    password_changed_at: datetime
    created_at: datetime


_ACCOUNT = (
    "u.id, u.username, u.password_hash, u.role, u.unit, u.must_change_password, u.locked,"
    " u.locked_until, u.failed_logins, u.disabled, u.password_changed_at, u.created_at"
)


def _account(row: Row) -> Account:
    return Account(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        role=row["role"],
        unit=row["unit"],
        must_change_password=bool(row["must_change_password"]),
        locked=bool(row["locked"]),
        locked_until=from_iso(row["locked_until"]) if row["locked_until"] else None,
        failed_logins=row["failed_logins"],
        disabled=bool(row["disabled"]),
        password_changed_at=from_iso(row["password_changed_at"]),
        created_at=from_iso(row["created_at"]),
    )


async def by_username(db: Reader, username: str) -> Account | None:
    row = await db.fetchone(f"SELECT {_ACCOUNT} FROM users u WHERE u.username = ?", (username,))
    return _account(row) if row is not None else None


async def by_id(db: Reader, user_id: int) -> Account | None:
    row = await db.fetchone(f"SELECT {_ACCOUNT} FROM users u WHERE u.id = ?", (user_id,))
    return _account(row) if row is not None else None


async def every_account(db: Reader) -> list[Account]:
    """All accounts by username."""
    rows = await db.fetchall(f"SELECT {_ACCOUNT} FROM users u ORDER BY u.username")
    return [_account(r) for r in rows]


async def add(
    tx: Tx,
    username: str,
    password_hash: str,
    role: str,
    unit: str,
    *,
    must_change_password: bool,
    at: datetime,
) -> int:
    """A new account (its first password goes into the history too); returns its id."""
    user_id = int(
        await tx.fetchval(
            "INSERT INTO users (username, password_hash, role, unit, must_change_password,"
            " password_changed_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
            (username, password_hash, role, unit, int(must_change_password), iso(at), iso(at)),
        )
    )
    await _remember_password(tx, user_id, password_hash, at)
    return user_id


async def _remember_password(tx: Tx, user_id: int, password_hash: str, at: datetime) -> None:
    await tx.execute(
        "INSERT INTO password_history (user_id, password_hash, changed_at) VALUES (?, ?, ?)",
        (user_id, password_hash, iso(at)),
    )


async def set_password(
    tx: Tx, user_id: int, password_hash: str, *, at: datetime, must_change: bool
) -> None:
    """A new password (kept in the history); clears failed logins and any lockout."""
    await tx.execute(
        "UPDATE users SET password_hash = ?, password_changed_at = ?, must_change_password = ?,"
        " failed_logins = 0, locked_until = NULL WHERE id = ?",
        (password_hash, iso(at), int(must_change), user_id),
    )
    await _remember_password(tx, user_id, password_hash, at)


async def recent_passwords(tx: Tx, user_id: int, keep: int) -> list[str]:
    """The hashes of the account's last `keep` passwords, newest first."""
    rows = await tx.fetchall(
        "SELECT password_hash FROM password_history WHERE user_id = ? ORDER BY id DESC LIMIT ?",
        (user_id, keep),
    )
    return [r[0] for r in rows]


async def count_failed_login(tx: Tx, user_id: int) -> int:
    """One more failed login in a row; returns how many there are now."""
    return int(
        await tx.fetchval(
            "UPDATE users SET failed_logins = failed_logins + 1 WHERE id = ?"
            " RETURNING failed_logins",
            (user_id,),
        )
    )


async def lock_out(tx: Tx, user_id: int, until: datetime) -> None:
    """Refuse logins until `until`; the count of failures starts again."""
    await tx.execute(
        "UPDATE users SET failed_logins = 0, locked_until = ? WHERE id = ?", (iso(until), user_id)
    )


async def clear_failed_logins(tx: Tx, user_id: int) -> None:
    await tx.execute(
        "UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?", (user_id,)
    )


async def lock(tx: Tx, user_id: int) -> None:
    await tx.execute("UPDATE users SET locked = 1 WHERE id = ?", (user_id,))


async def unlock(tx: Tx, user_id: int) -> None:
    """Ends an administrator's lock and a failed-login lockout alike."""
    await tx.execute(
        "UPDATE users SET locked = 0, locked_until = NULL, failed_logins = 0 WHERE id = ?",
        (user_id,),
    )


async def disable(tx: Tx, user_id: int) -> None:
    await tx.execute("UPDATE users SET disabled = 1 WHERE id = ?", (user_id,))


async def set_post(tx: Tx, user_id: int, role: str, unit: str) -> None:
    """The account's role and unit: a person moved to another post."""
    await tx.execute("UPDATE users SET role = ?, unit = ? WHERE id = ?", (role, unit, user_id))


async def other_usable_admins(tx: Tx, user_id: int) -> int:
    """Admins other than `user_id` that are neither disabled nor locked."""
    return int(
        await tx.fetchval(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0 AND locked = 0"
            " AND id != ?",
            (user_id,),
        )
    )


async def contributor_units(db: Reader) -> list[str]:
    """The units of the enabled contributor accounts (the agencies owing a monthly quota)."""
    rows = await db.fetchall(
        "SELECT DISTINCT unit FROM users WHERE role = 'contributor' AND disabled = 0"
        " AND unit IS NOT NULL"
    )
    return [r[0] for r in rows]


# ---------------------------------------------------------------- sessions


@dataclass(frozen=True)
class SessionRecord:
    account: Account
    expires_at: datetime
    last_used_at: datetime
    #: The console's CSRF token (cookie sessions only).
    csrf_token: str | None


async def session(db: Reader, token_hash: str, kind: str) -> SessionRecord | None:
    """The session of a token (by its hash) of `kind` ("bearer" or "cookie"), with its account."""
    row = await db.fetchone(
        f"SELECT s.expires_at, s.last_used_at, s.csrf_token, {_ACCOUNT} FROM sessions s"
        " JOIN users u ON u.id = s.user_id WHERE s.token_hash = ? AND s.kind = ?",
        (token_hash, kind),
    )
    if row is None:
        return None
    return SessionRecord(
        account=_account(row),
        expires_at=from_iso(row["expires_at"]),
        last_used_at=from_iso(row["last_used_at"]),
        csrf_token=row["csrf_token"],
    )


async def open_session(
    tx: Tx,
    token_hash: str,
    user_id: int,
    *,
    at: datetime,
    expires_at: datetime,
    address: str | None,
    kind: str,
    csrf_token: str | None,
) -> None:
    await tx.execute(
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, last_used_at,"
        " address, kind, csrf_token) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (token_hash, user_id, iso(at), iso(expires_at), iso(at), address, kind, csrf_token),
    )


async def touch_session(tx: Tx, token_hash: str, at: datetime) -> None:
    await tx.execute(
        "UPDATE sessions SET last_used_at = ? WHERE token_hash = ?", (iso(at), token_hash)
    )


async def end_session(tx: Tx, token_hash: str) -> None:
    await tx.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))


async def end_sessions_of(tx: Tx, user_id: int) -> int:
    """End every session of an account; returns how many there were."""
    return await tx.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,))


async def purge_sessions(tx: Tx, *, expired_by: datetime, idle_since: datetime) -> None:
    """Forget sessions past their expiry, or unused since `idle_since`."""
    await tx.execute(
        "DELETE FROM sessions WHERE expires_at <= ? OR last_used_at <= ?",
        (iso(expired_by), iso(idle_since)),
    )
