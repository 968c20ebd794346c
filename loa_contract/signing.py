"""Ed25519 signing of manifests and commands.

The hub signs the exact JSON bytes it sends; the agent checks the signature over those bytes
against a pinned key *before* parsing them, so nothing unauthenticated reaches a parser.
More than one hub key may be trusted at once, so keys can rotate.

The hub signs with `cryptography`; everyone checks through PyNaCl (loa_contract/ed25519.py),
so an agent never loads cryptography's large binding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ValidationError

from .ed25519 import Ed25519Key
from .models import HubKey, KeyEndorsement, SignedEnvelope

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

M = TypeVar("M", bound=BaseModel)


class SignatureError(Exception):
    """The bytes were not signed by a trusted hub key, or are not what they claim to be."""


class UnknownKey(SignatureError):
    """Signed by a key this device does not trust (yet: the hub may have rotated its key,
    and a KeyEndorsement from a trusted key would teach it)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise SignatureError(f"{what} is not valid base64") from exc


def key_id_for(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _raw_key_id(raw)


def _raw_key_id(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def _key_id(public_key_b64: str) -> str:
    return _raw_key_id(_unb64(public_key_b64, "public_key"))


class HubSigner:
    """The hub's private signing key."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id_for(self.public_key)

    @classmethod
    def generate(cls) -> HubSigner:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes, passphrase: bytes | None = None) -> HubSigner:
        """The key from PEM (encrypted with `passphrase` if given). ValueError if it is not an
        Ed25519 private key or the passphrase is wrong."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            key = serialization.load_pem_private_key(pem, password=passphrase)
        except TypeError as exc:  # a passphrase missing, or given for a clear key
            raise ValueError(str(exc)) from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError("the hub key must be an Ed25519 private key")
        return cls(key)

    def to_pem(self, passphrase: bytes | None = None) -> bytes:
        """PKCS#8 PEM; encrypted with `passphrase` (the best scheme cryptography offers) when
        the key leaves the machine."""
        from cryptography.hazmat.primitives import serialization

        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase)
            if passphrase
            else serialization.NoEncryption()
        )
        return self._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def hub_key(self) -> HubKey:
        from cryptography.hazmat.primitives import serialization

        raw = self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return HubKey(key_id=self.key_id, public_key=_b64(raw))

    def sign_bytes(self, payload: bytes) -> SignedEnvelope:
        return SignedEnvelope(
            key_id=self.key_id, payload=_b64(payload), signature=_b64(self._key.sign(payload))
        )

    def sign(self, model: BaseModel) -> SignedEnvelope:
        return self.sign_bytes(model.model_dump_json().encode("utf-8"))


class TrustedKeys:
    """The hub keys an agent pinned at enrollment."""

    def __init__(self, keys: Iterable[HubKey]) -> None:
        self._keys: dict[str, Ed25519Key] = {}
        for key in keys:
            raw = _unb64(key.public_key, "public_key")
            try:
                self._keys[key.key_id] = Ed25519Key(raw)
            except ValueError as exc:
                raise SignatureError(f"hub key {key.key_id} is not an Ed25519 key") from exc

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def learn(self, endorsements: Iterable[SignedEnvelope]) -> list[HubKey]:
        """Trust the keys that keys already trusted vouch for (KeyEndorsement), following
        chains in any order; returns the keys newly trusted. An endorsement no trusted key
        signed, or one that does not verify, teaches nothing."""
        pending = list(endorsements)
        learned: list[HubKey] = []
        progress = True
        while pending and progress:
            progress = False
            for envelope in list(pending):
                if envelope.key_id not in self._keys:
                    continue
                pending.remove(envelope)
                try:
                    endorsement = self.open(envelope, KeyEndorsement)
                except SignatureError:
                    continue
                if endorsement.previous.key_id != envelope.key_id:
                    continue  # it must be signed by the key it names as the one replaced
                key = endorsement.key
                if key.key_id in self._keys:
                    continue
                try:
                    public = Ed25519Key(_unb64(key.public_key, "public_key"))
                except (SignatureError, ValueError):
                    continue
                if _key_id(key.public_key) != key.key_id:
                    continue  # a key id is the hash of its key: no aliasing a trusted one
                self._keys[key.key_id] = public
                learned.append(key)
                progress = True
        return learned

    def verify_bytes(self, envelope: SignedEnvelope) -> bytes:
        public = self._keys.get(envelope.key_id)
        if public is None:
            raise UnknownKey(f"signed by an unknown key {envelope.key_id!r}")
        payload = _unb64(envelope.payload, "payload")
        signature = _unb64(envelope.signature, "signature")
        if not public.verify(signature, payload):
            raise SignatureError("bad signature")
        return payload

    def open(self, envelope: SignedEnvelope | bytes | str, model: type[M]) -> M:
        """Verify, then parse. Raises SignatureError for anything not signed and well-formed.

        Fields this agent does not know are ignored, at any depth: a newer hub may add them
        and thousands of older agents must keep playing (DESIGN.md §4). What the hub cannot
        add silently is a newer contract major version: the models refuse that themselves.
        """
        if not isinstance(envelope, SignedEnvelope):
            try:
                envelope = SignedEnvelope.model_validate_json(envelope, extra="ignore")
            except ValidationError as exc:
                raise SignatureError("not a signed envelope") from exc
        payload = self.verify_bytes(envelope)
        try:
            return model.model_validate_json(payload, extra="ignore")
        except ValidationError as exc:
            raise SignatureError(f"signed payload is not a valid {model.__name__}: {exc}") from exc
