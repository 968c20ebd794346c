"""Secrets: password hashing (scrypt), session tokens, enrollment codes, device secrets, and
the limit on guessing enrollment codes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections import OrderedDict, deque
from datetime import datetime, timedelta

_SCRYPT_R = 8
_SCRYPT_P = 1
_SCRYPT_LEN = 32
# Crockford base32 without I, L, O, U: a technician reads the code off a phone and types it.
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # maxmem must cover 128 * n * r bytes plus slack or OpenSSL refuses.
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        dklen=dklen,
        maxmem=256 * n * r + 1024 * 1024,
    )


def hash_password(password: str, n: int) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, n, _SCRYPT_R, _SCRYPT_P, _SCRYPT_LEN)
    return f"scrypt${n}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _cli_safe_secret() -> str:
    """32 random bytes, URL-safe, never starting with "-".

    People paste these after a command-line flag (`hub upstream add --token …`); one that began
    with "-" (1 in 64) was read by argparse as another option and refused.
    """
    while True:
        secret = secrets.token_urlsafe(32)
        if not secret.startswith("-"):
            return secret


def new_token() -> str:
    return _cli_safe_secret()


def new_device_secret() -> str:
    return _cli_safe_secret()


def new_enrollment_code() -> str:
    """12 symbols (60 bits), shown in three groups of four, e.g. 7KQ2-M9PW-4TRA."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
    return f"{raw[0:4]}-{raw[4:8]}-{raw[8:12]}"


def normalize_code(code: str) -> str:
    """Forgive what people do when typing a code: case, dashes, spaces, O for 0, I/L for 1."""
    cleaned = code.upper().replace("-", "").replace(" ", "")
    return cleaned.replace("O", "0").replace("I", "1").replace("L", "1")


def code_hash(code: str) -> str:
    return sha256_hex(normalize_code(code))


def secret_matches(secret: str, stored_hash: str | None) -> bool:
    if not stored_hash:
        return False
    return hmac.compare_digest(sha256_hex(secret), stored_hash)


class FailureLimiter:
    """At most `limit` failures per `window` from one address; past that, refuse for a while.

    Guards the public enrollment route against guessing codes. Memory is bounded: at most
    `max_addresses` are remembered, the least recently failing forgotten first.
    """

    def __init__(
        self, limit: int = 10, window: timedelta = timedelta(minutes=1), max_addresses: int = 10_000
    ) -> None:
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[datetime]] = OrderedDict()

    def _recent(self, address: str, now: datetime) -> deque[datetime]:
        failures = self._failures.get(address, deque())
        while failures and now - failures[0] >= self.window:
            failures.popleft()
        return failures

    def retry_after(self, address: str, now: datetime) -> float | None:
        """Seconds until `address` may try again, or None if it may try now."""
        failures = self._recent(address, now)
        if len(failures) < self.limit:
            return None
        return max(1.0, (failures[0] + self.window - now).total_seconds())

    def failed(self, address: str, now: datetime) -> None:
        failures = self._recent(address, now)
        failures.append(now)
        self._failures[address] = failures
        self._failures.move_to_end(address)
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
