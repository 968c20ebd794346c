"""Ed25519 signature checks for the agent, through PyNaCl (libsodium).

Why not `cryptography`, which the hub signs with: its Rust binding costs an agent about 9 MiB
of resident memory just to check signatures, on a Pi whose budget is 1.5 × a bare `cvlc`
(DESIGN.md §5); PyNaCl, the same authors' libsodium binding, costs under 4 MiB. libsodium's
check is also the strict one: it refuses small-order keys and non-canonical signatures.
Only checking lives here: signing stays with the hub (loa_contract.signing.HubSigner).
"""

from __future__ import annotations

from nacl.exceptions import BadSignatureError
from nacl.exceptions import ValueError as NaclValueError
from nacl.signing import VerifyKey

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


class Ed25519Key:
    """A raw 32-byte Ed25519 public key, ready to check signatures."""

    def __init__(self, raw: bytes) -> None:
        if len(raw) != PUBLIC_KEY_BYTES:
            raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes, not {len(raw)}")
        try:
            self._key = VerifyKey(raw)
        except (NaclValueError, TypeError) as exc:
            raise ValueError("not an Ed25519 public key") from exc
        self.raw = raw

    def verify(self, signature: bytes, payload: bytes) -> bool:
        """True when `signature` is this key's signature over exactly `payload`."""
        if len(signature) != SIGNATURE_BYTES:
            return False
        try:
            self._key.verify(payload, signature)
        except (BadSignatureError, NaclValueError):
            return False
        return True
