"""What enrollment leaves on the device: who it is, which hub keys it trusts and, when the
hub is behind TLS with the province's own CA, that CA (pinned beside the identity)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from loa_contract import DeviceKind, HubKey, TrustedKeys

IDENTITY_FILE = "identity.json"
#: The hub's CA as given to `edge-agent enroll --ca`, copied into the data directory so the
#: device does not depend on where the technician's file was.
HUB_CA_FILE = "hub-ca.pem"


class IdentityError(Exception):
    pass


class Identity(BaseModel):
    """Danh tính thiết bị: id, secret and the pinned hub keys (never leaves the device)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hub_url: str
    device_id: str
    device_secret: str
    device_kind: DeviceKind
    commune: str
    profile: str
    hub_keys: list[HubKey]
    #: The pinned CA's file name in the data directory; None: the system's CA store.
    hub_ca: str | None = None

    def trusted_keys(self) -> TrustedKeys:
        return TrustedKeys(self.hub_keys)

    def ca_file(self, data_dir: Path) -> Path | None:
        return data_dir / self.hub_ca if self.hub_ca is not None else None

    def save(self, data_dir: Path) -> Path:
        """Write atomically with mode 0600: the secret must never be world-readable."""
        return write_durably(
            data_dir / IDENTITY_FILE, self.model_dump_json(indent=2).encode(), 0o600
        )

    @classmethod
    def load(cls, data_dir: Path) -> Identity:
        path = data_dir / IDENTITY_FILE
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise IdentityError(
                f"{path} not found: enroll first (edge-agent enroll --hub URL --code CODE "
                f"--data {data_dir})"
            ) from exc
        try:
            identity = cls.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise IdentityError(f"{path} is damaged: {exc}") from exc
        ca = identity.ca_file(data_dir)
        # Fail closed: falling back to the system store would trust more than was pinned.
        if ca is not None and not ca.is_file():
            raise IdentityError(
                f"{ca} (the hub's CA pinned at enrollment) is missing: put it back or enroll "
                f"again with --ca"
            )
        return identity


def pin_hub_ca(data_dir: Path, pem: bytes | None) -> str | None:
    """Keep the hub's CA beside the identity (None removes an earlier one); the file name to
    record in the identity. Called before the identity is saved: the identity commits."""
    path = data_dir / HUB_CA_FILE
    if pem is None:
        path.unlink(missing_ok=True)
        return None
    write_durably(path, pem, 0o644)
    return HUB_CA_FILE


def write_durably(path: Path, data: bytes, mode: int = 0o600) -> Path:
    """Temp file, fsync, os.replace, fsync of the folder: whole or not at all after a cut.
    A write that fails (a full card) leaves no temporary file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path
