"""Ed25519 checks through PyNaCl (loa_contract/ed25519.py) against the hub's signer."""

from __future__ import annotations

import base64
import os

import pytest

from loa_contract import HubKey, HubSigner, SignatureError, TrustedKeys
from loa_contract.ed25519 import Ed25519Key


@pytest.mark.parametrize("size", [0, 1, 63, 64, 65, 1000, 100_000])
def test_what_the_hub_signs_checks_and_nothing_else_does(size: int) -> None:
    signer = HubSigner.generate()
    key = Ed25519Key(base64.b64decode(signer.hub_key().public_key))
    payload = os.urandom(size)
    envelope = signer.sign_bytes(payload)
    signature = base64.b64decode(envelope.signature)

    assert key.verify(signature, payload)
    assert not key.verify(signature, payload + b"\x00")
    if payload:
        assert not key.verify(signature, bytes([payload[0] ^ 1]) + payload[1:])
    for bit in (0, 255, 511):
        flipped = bytearray(signature)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not key.verify(bytes(flipped), payload)
    assert not key.verify(signature[:63], payload)
    assert not key.verify(signature + b"\x00", payload)
    other = Ed25519Key(base64.b64decode(HubSigner.generate().hub_key().public_key))
    assert not other.verify(signature, payload)

    assert TrustedKeys([signer.hub_key()]).verify_bytes(envelope) == payload
    with pytest.raises(SignatureError, match="bad signature"):
        TrustedKeys(
            [signer.hub_key().model_copy(update={"public_key": other_b64(other)})]
        ).verify_bytes(envelope)


def other_b64(key: Ed25519Key) -> str:
    return base64.b64encode(key.raw).decode()


@pytest.mark.parametrize("raw", [b"", b"\x01" * 31, b"\x01" * 33])
def test_a_key_of_the_wrong_size_is_refused(raw: bytes) -> None:
    with pytest.raises(ValueError):
        Ed25519Key(raw)
    with pytest.raises(SignatureError, match="not an Ed25519 key"):
        TrustedKeys([HubKey(key_id="k", public_key=base64.b64encode(raw).decode())])
