"""The hub's Ed25519 signing key on disk, the endorsements that rotate it, and extra public keys
agents should also trust.

Rotation (`hub key rotate`): a new key is made and endorsed by the current one (a signed
KeyEndorsement, kept in `key_endorsements.json` beside the key); the hub signs with the new
key from its next start and hands the endorsements to devices (GET /api/v1/device/keys),
which learn the new key from a key they already trust: no device is enrolled again.

Several nodes sign with the same key: `hub key export` writes it, encrypted with a
passphrase, with its endorsements; `hub key import` installs that on another node.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import TypeAdapter, ValidationError

from loa_contract import (
    HubKey,
    HubSigner,
    KeyEndorsement,
    SignatureError,
    SignedEnvelope,
    TrustedKeys,
    key_id_for,
)

log = logging.getLogger(__name__)


ENDORSEMENTS_FILE = "key_endorsements.json"
#: The format `hub key export` writes and `hub key import` reads.
EXPORT_FORMAT = "loa-hub-key/1"

_ENVELOPES = TypeAdapter(list[SignedEnvelope])


class KeyFileError(Exception):
    """A key file, an endorsement list or an export that cannot be used: the message says why."""


class HubKeyring:
    """The active signer, the endorsements that led to it, and the keys handed to agents at
    enrollment: the signer's, every key named in the endorsements (a node not yet restarted
    after a rotation still signs with the previous one), and the extra keys of
    `trusted_keys/`."""

    def __init__(
        self,
        signer: HubSigner,
        extra: list[HubKey] | None = None,
        endorsements: list[SignedEnvelope] | None = None,
    ) -> None:
        self.signer = signer
        self.endorsements = list(endorsements or [])
        chained: list[HubKey] = []
        for envelope in self.endorsements:
            endorsement = _endorsement(envelope)
            chained += [endorsement.previous, endorsement.key]
        seen = {signer.key_id}
        self.extra = []
        for key in [*chained, *(extra or [])]:
            if key.key_id not in seen:
                seen.add(key.key_id)
                self.extra.append(key)

    def hub_keys(self) -> list[HubKey]:
        return [self.signer.hub_key(), *self.extra]


def _endorsement(envelope: SignedEnvelope) -> KeyEndorsement:
    """The endorsement an envelope carries, checked against the key it names as its signer."""
    previous = KeyEndorsement.model_validate_json(
        base64.b64decode(envelope.payload), extra="ignore"
    ).previous
    try:
        return TrustedKeys([previous]).open(envelope, KeyEndorsement)
    except SignatureError as exc:
        raise KeyFileError(f"an endorsement does not verify: {exc}") from exc


def load_endorsements(path: Path) -> list[SignedEnvelope]:
    """The endorsements kept at `path`, oldest first; none if there is no file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    try:
        envelopes = _ENVELOPES.validate_json(raw)
        for envelope in envelopes:
            _endorsement(envelope)
    except (ValidationError, ValueError) as exc:
        raise KeyFileError(f"{path} is damaged: {exc}") from exc
    return envelopes


def write_private(path: Path, data: bytes) -> None:
    """Write atomically and durably, readable by the hub's user alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _save_endorsements(path: Path, envelopes: list[SignedEnvelope]) -> None:
    write_private(path, _ENVELOPES.dump_json(envelopes, indent=2))


def rotate_key(key_path: Path, now: datetime) -> tuple[HubKey, HubKey]:
    """Make a new signing key endorsed by the current one: (previous, new).

    The endorsement is written first: a crash before the key is replaced leaves an
    endorsement of a key never used (harmless), never a key devices cannot learn. The
    previous private key is kept beside it, retired, in case the rotation must be undone."""
    if not key_path.exists():
        raise KeyFileError(f"{key_path} does not exist: nothing to rotate")
    old = load_or_create_signer(key_path)
    new = HubSigner.generate()
    endorsement = KeyEndorsement(key=new.hub_key(), previous=old.hub_key(), issued_at=now)
    path = key_path.with_name(ENDORSEMENTS_FILE)
    _save_endorsements(path, [*load_endorsements(path), old.sign(endorsement)])
    write_private(key_path.with_name(f"{key_path.name}.retired-{old.key_id}"), old.to_pem())
    write_private(key_path, new.to_pem())
    log.info("hub signing key rotated: %s -> %s", old.key_id, new.key_id)
    return old.hub_key(), new.hub_key()


def export_key(key_path: Path, passphrase: bytes) -> bytes:
    """The signing key (encrypted with `passphrase`) and its endorsements, for another node."""
    if len(passphrase) < 12:
        raise KeyFileError("the passphrase must have at least 12 characters")
    if not key_path.exists():
        raise KeyFileError(f"{key_path} does not exist: start the hub once, or import a key")
    signer = load_or_create_signer(key_path)
    bundle = {
        "format": EXPORT_FORMAT,
        "key_id": signer.key_id,
        "private_key": signer.to_pem(passphrase).decode("ascii"),
        "endorsements": json.loads(
            _ENVELOPES.dump_json(load_endorsements(key_path.with_name(ENDORSEMENTS_FILE)))
        ),
    }
    return json.dumps(bundle, indent=2).encode()


def import_key(key_path: Path, bundle: bytes, passphrase: bytes, *, replace: bool) -> str:
    """Install an exported key and its endorsements; returns its key id. A node that already
    signs with another key keeps it unless `replace` (its devices would stop trusting it
    otherwise, unless the imported key's endorsements vouch for it)."""
    try:
        data = json.loads(bundle)
        if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
            raise KeyFileError(f"not a hub key export (format {EXPORT_FORMAT})")
        signer = HubSigner.from_pem(str(data["private_key"]).encode(), passphrase)
        envelopes = _ENVELOPES.validate_python(data.get("endorsements", []))
    except KeyFileError:
        raise
    except ValueError as exc:
        raise KeyFileError(f"the export cannot be read (wrong passphrase?): {exc}") from exc
    except (KeyError, TypeError, ValidationError) as exc:
        raise KeyFileError(f"the export is damaged: {exc}") from exc
    for envelope in envelopes:
        _endorsement(envelope)
    if key_path.exists():
        current = load_or_create_signer(key_path)
        if current.key_id != signer.key_id and not replace:
            raise KeyFileError(
                f"this node signs with key {current.key_id}; importing {signer.key_id} would"
                " replace it (give --replace if that is meant)"
            )
    _save_endorsements(key_path.with_name(ENDORSEMENTS_FILE), envelopes)
    write_private(key_path, signer.to_pem())
    return signer.key_id


def load_or_create_signer(path: Path) -> HubSigner:
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o); tightening to 0600", path, mode)
            os.chmod(path, 0o600)
        return HubSigner.from_pem(path.read_bytes())
    signer = HubSigner.generate()
    write_private(path, signer.to_pem())
    log.info("generated hub signing key %s at %s", signer.key_id, path)
    return signer


def load_extra_keys(directory: Path) -> list[HubKey]:
    keys: list[HubKey] = []
    if not directory.is_dir():
        return keys
    for pem in sorted(directory.glob("*.pem")):
        public = serialization.load_pem_public_key(pem.read_bytes())
        if not isinstance(public, Ed25519PublicKey):
            raise ValueError(f"{pem} is not an Ed25519 public key")
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        keys.append(HubKey(key_id=key_id_for(public), public_key=base64.b64encode(raw).decode()))
    return keys


def load_keyring(key_path: Path, extra_dir: Path) -> HubKeyring:
    endorsements = load_endorsements(key_path.with_name(ENDORSEMENTS_FILE))
    return HubKeyring(load_or_create_signer(key_path), load_extra_keys(extra_dir), endorsements)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
