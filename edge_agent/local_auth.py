"""The local page's one account: commune staff or the technician who provisioned the device.

The account is set at provisioning (`edge-agent local-user set NAME --password-stdin`) under
the hub's password rules and kept as a scrypt hash in the agent store's settings. Sessions live
in memory: a restart logs everyone out, which on a device that restarts after power cuts is the
safe side. Lockout (5 failures → 15 minutes) is per user name, so guessing across names gains
nothing; it is in memory too, and rebooting the device to reset it needs physical access.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .store import AgentStore

SETTING_KEY = "local_user"
MAX_FAILURES = 5
LOCKOUT_S = 15 * 60.0
IDLE_TIMEOUT_S = 30 * 60.0
#: scrypt cost: n=2**14 takes ~50 ms on a Pi 3, cheap enough per login, costly per guess.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1


class PasswordRejected(ValueError):
    pass


def password_problems(password: str, username: str | None = None) -> list[str]:
    """The hub's rules (DESIGN.md §2): ≥ 8 characters with upper, lower, digit and special."""
    missing = []
    if len(password) < 8:
        missing.append("at least 8 characters")
    if not any(c.isupper() for c in password):
        missing.append("an upper-case letter")
    if not any(c.islower() for c in password):
        missing.append("a lower-case letter")
    if not any(c.isdigit() for c in password):
        missing.append("a digit")
    if all(c.isalnum() for c in password):
        missing.append("a special character")
    problems = ["needs " + ", ".join(missing)] if missing else []
    if username and username.lower() in password.lower():
        problems.append("must not contain the username")
    return problems


def hash_password(password: str, *, n: int = SCRYPT_N) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=SCRYPT_R, p=SCRYPT_P, maxmem=64 * 1024 * 1024
    )
    return f"scrypt${n}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, bytes.fromhex(digest))


async def set_local_user(
    store: AgentStore, username: str, password: str, *, n: int = SCRYPT_N
) -> None:
    """Create or replace the local account; raises PasswordRejected naming what is wrong."""
    username = username.strip()
    if not username or len(username) > 64 or not username.isprintable():
        raise PasswordRejected("username: 1-64 printable characters")
    problems = password_problems(password, username)
    if problems:
        raise PasswordRejected("password: " + "; ".join(problems))
    record = {"username": username, "hash": hash_password(password, n=n)}
    await store.set_setting(SETTING_KEY, json.dumps(record))


@dataclass
class Session:
    username: str
    csrf: str
    last_seen: float


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0


@dataclass
class LocalAuth:
    """Checks logins against the stored account and keeps sessions and lockouts."""

    store: AgentStore
    clock: Callable[[], float] = time.monotonic
    idle_timeout_s: float = IDLE_TIMEOUT_S
    sessions: dict[str, Session] = field(default_factory=dict)
    failures: dict[str, _Failures] = field(default_factory=dict)

    def locked_for(self, username: str) -> float:
        """Seconds the user name is still locked out (0 if it is not)."""
        entry = self.failures.get(username.lower())
        if entry is None:
            return 0.0
        return max(0.0, entry.locked_until - self.clock())

    async def check(self, username: str, password: str) -> bool:
        """True for the right name and password, unless locked; counts failures."""
        key = username.lower()
        if self.locked_for(username) > 0:
            return False
        raw = await self.store.get_setting(SETTING_KEY)
        record = json.loads(raw) if raw else None
        # The hash runs even without an account, so timing does not say whether one exists.
        encoded = record["hash"] if record else hash_password("not the password", n=2**4)
        verified = verify_password(password, encoded)
        ok = (
            verified
            and record is not None
            and hmac.compare_digest(record["username"].lower().encode(), key.encode())
        )
        if ok:
            self.failures.pop(key, None)
            return True
        entry = self.failures.setdefault(key, _Failures())
        entry.count += 1
        if entry.count >= MAX_FAILURES:
            entry.locked_until = self.clock() + LOCKOUT_S
            entry.count = 0
        return False

    def open_session(self, username: str) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        session = Session(username, secrets.token_urlsafe(24), self.clock())
        self.sessions[token] = session
        return token, session

    def session(self, token: str | None) -> Session | None:
        """The live session for a cookie value; touching it restarts its idle timer."""
        if not token:
            return None
        session = self.sessions.get(token)
        if session is None:
            return None
        if self.clock() - session.last_seen > self.idle_timeout_s:
            del self.sessions[token]
            return None
        session.last_seen = self.clock()
        return session

    def close_session(self, token: str | None) -> None:
        if token:
            self.sessions.pop(token, None)


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic …` header, for scripts."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None
