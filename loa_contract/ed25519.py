"""Ed25519 signature checks through the OpenSSL libcrypto that Python's own `ssl` has loaded.

Why not `cryptography`, which the hub signs with: its Rust binding is a 14 MB library that costs
an agent about 9 MiB of resident memory just to check a signature, on a Pi whose budget is
1.5 × a bare `cvlc` (DESIGN.md §5). libcrypto is already mapped into every process that speaks
TLS, so checking through it costs nothing more; it is the same OpenSSL code either way.
Only checking lives here: signing stays with the hub (loa_contract.signing.HubSigner).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import ssl  # noqa: F401 - loads libcrypto (via _ssl) before it is looked up below
import weakref
from functools import cache

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
#: NID_ED25519 / EVP_PKEY_ED25519 in OpenSSL's obj_mac.h (stable since 1.1.1).
_EVP_PKEY_ED25519 = 1087


@cache
def _libcrypto() -> ctypes.CDLL:
    # By soname first: the library _ssl linked is already loaded, and find_library runs
    # `ldconfig -p` in a subprocess.
    for name in ("libcrypto.so.3", "libcrypto.so.1.1", None):
        name = name or ctypes.util.find_library("crypto")
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        if hasattr(lib, "EVP_DigestVerify") and hasattr(lib, "EVP_PKEY_new_raw_public_key"):
            break
    else:
        raise OSError("no OpenSSL libcrypto >= 1.1.1 with Ed25519 found")
    p, size, i = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
    lib.EVP_PKEY_new_raw_public_key.argtypes = [i, p, ctypes.c_char_p, size]
    lib.EVP_PKEY_new_raw_public_key.restype = p
    lib.EVP_PKEY_free.argtypes = [p]
    lib.EVP_PKEY_free.restype = None
    lib.EVP_MD_CTX_new.argtypes = []
    lib.EVP_MD_CTX_new.restype = p
    lib.EVP_MD_CTX_free.argtypes = [p]
    lib.EVP_MD_CTX_free.restype = None
    lib.EVP_DigestVerifyInit.argtypes = [p, p, p, p, p]
    lib.EVP_DigestVerifyInit.restype = i
    lib.EVP_DigestVerify.argtypes = [p, ctypes.c_char_p, size, ctypes.c_char_p, size]
    lib.EVP_DigestVerify.restype = i
    lib.ERR_clear_error.argtypes = []
    lib.ERR_clear_error.restype = None
    return lib


class Ed25519Key:
    """A raw 32-byte Ed25519 public key, ready to check signatures."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != PUBLIC_KEY_BYTES:
            raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes, not {len(raw)}")
        lib = _libcrypto()
        pkey = lib.EVP_PKEY_new_raw_public_key(_EVP_PKEY_ED25519, None, raw, len(raw))
        if not pkey:
            lib.ERR_clear_error()
            raise ValueError("not an Ed25519 public key")
        self.raw = raw
        self._pkey: int = pkey
        weakref.finalize(self, lib.EVP_PKEY_free, pkey)

    def verify(self, signature: bytes, payload: bytes) -> bool:
        """True when `signature` is this key's signature over exactly `payload`."""
        if len(signature) != SIGNATURE_BYTES:
            return False
        lib = _libcrypto()
        ctx = lib.EVP_MD_CTX_new()
        if not ctx:
            raise MemoryError("EVP_MD_CTX_new")
        try:
            ok = (
                lib.EVP_DigestVerifyInit(ctx, None, None, None, self._pkey) == 1
                and lib.EVP_DigestVerify(ctx, signature, len(signature), payload, len(payload)) == 1
            )
        finally:
            lib.EVP_MD_CTX_free(ctx)
        if not ok:
            # Whatever a failure may leave on this thread's OpenSSL error queue must not be
            # found later by Python's ssl module and blamed on an unrelated TLS call.
            lib.ERR_clear_error()
        return ok
