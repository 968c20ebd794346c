"""What enrollment leaves on the device: who it is and which hub keys it trusts."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from loa_contract import DeviceKind, HubKey, TrustedKeys

IDENTITY_FILE = "identity.json"


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

    def trusted_keys(self) -> TrustedKeys:
        return TrustedKeys(self.hub_keys)

    def save(self, data_dir: Path) -> Path:
        """Write atomically with mode 0600: the secret must never be world-readable."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / IDENTITY_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(self.model_dump_json(indent=2))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return path

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
            return cls.model_validate(json.loads(raw))
        except (ValueError, ValidationError) as exc:
            raise IdentityError(f"{path} is damaged: {exc}") from exc
