"""The hub's Ed25519 signing key on disk, plus extra public keys agents should also trust."""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from loa_contract import HubKey, HubSigner, key_id_for

log = logging.getLogger(__name__)


class HubKeyring:
    """The active signer and the full list of keys handed to agents at enrollment.

    Rotation: put the next key's public PEM in `trusted_keys/`; agents enrolled from then on
    pin both; once they all have it, swap the signing key.
    """

    def __init__(self, signer: HubSigner, extra: list[HubKey] | None = None) -> None:
        self.signer = signer
        self.extra = [k for k in (extra or []) if k.key_id != signer.key_id]

    def hub_keys(self) -> list[HubKey]:
        return [self.signer.hub_key(), *self.extra]


def load_or_create_signer(path: Path) -> HubSigner:
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning("%s was readable by others (mode %o); tightening to 0600", path, mode)
            os.chmod(path, 0o600)
        return HubSigner.from_pem(path.read_bytes())
    signer = HubSigner.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(signer.to_pem())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
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
    return HubKeyring(load_or_create_signer(key_path), load_extra_keys(extra_dir))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
