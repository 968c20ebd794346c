"""Secrets: password hashing (scrypt), session tokens, enrollment codes, device secrets."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

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


def new_token() -> str:
    return secrets.token_urlsafe(32)


def new_device_secret() -> str:
    return secrets.token_urlsafe(32)  # 32 random bytes


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
