"""Agent releases on the wire: the signed descriptor of a release, the device's update report
and the hub's answer to it (issue #14).

A release is a file (edge_agent/releases.py says what is in it). The hub records its version,
size and sha256 and signs a `ReleaseDescriptor` with its manifest key; a device installs a
file only if its bytes hash to what a pinned key signed, and only if it is newer than what it
runs, unless the descriptor itself says `downgrade` (an explicit, signed rollback, which also
expires so an old one cannot be replayed later).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, Field

from .models import CONTRACT_VERSION, ContractVersion, Sha256, SignedEnvelope, WireModel

#: Release versions are plain dotted numbers ("0.2.0", "1.4.12"): ordered without doubt by
#: a device that has no packaging library, and the same order as PEP 440 gives them.
_VERSION = re.compile(r"^\d{1,6}(\.\d{1,6}){1,3}$")


def _check_version(value: str) -> str:
    if not _VERSION.match(value):
        raise ValueError(f"{value!r} is not a release version (dotted numbers, e.g. 0.2.0)")
    return value


ReleaseVersion = Annotated[str, AfterValidator(_check_version)]


def version_key(version: str) -> tuple[int, ...]:
    """The sort key of a release version: "0.10.0" after "0.9.3", "1.0" equal to "1.0.0".

    A version that is not dotted numbers (a development checkout: "0.1.0.dev3+g1234",
    "unknown") sorts below every release, so any release may replace it."""
    if not _VERSION.match(version):
        return (-1,)
    parts = [int(p) for p in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def is_newer(candidate: str, running: str) -> bool:
    return version_key(candidate) > version_key(running)


class ReleaseDescriptor(WireModel):
    """What the hub signs about one release file."""

    contract: ContractVersion = CONTRACT_VERSION
    version: ReleaseVersion
    sha256: Sha256
    size: int = Field(gt=0)
    #: The file name it was added under (shown only; the bytes are named by sha256).
    filename: str = Field(max_length=200)
    signed_at: AwareDatetime
    #: True only in an explicit rollback: the device may then install this older version.
    downgrade: bool = False
    #: A downgrade descriptor stops being obeyed after this (None for ordinary releases).
    expires_at: AwareDatetime | None = None


UpdateState = Literal[
    # the device runs `running_version` and has nothing under way
    "idle",
    # fetching, or fetched and installed beside the running one, waiting for a quiet moment
    "downloading",
    "waiting",
    # the new version runs and proved itself ("updated"), or did not ("rolled_back"), or the
    # release could not even be installed ("failed")
    "updated",
    "rolled_back",
    "failed",
]


class UpdateReport(WireModel):
    """What a device says about its software, each time it asks for an update."""

    running_version: str = Field(max_length=64)
    state: UpdateState = "idle"
    #: The release the state is about (None when idle).
    target_version: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=500)
    #: How long the device could not air during its last switch (seconds).
    switch_silence_s: float | None = Field(default=None, ge=0)


class UpdateOffer(WireModel):
    """The hub's answer: the release this device should run, signed, or none."""

    release: SignedEnvelope | None = None


def descriptor_expired(descriptor: ReleaseDescriptor, now: datetime) -> bool:
    return descriptor.expires_at is not None and descriptor.expires_at <= now


__all__ = [
    "ReleaseDescriptor",
    "ReleaseVersion",
    "UpdateOffer",
    "UpdateReport",
    "UpdateState",
    "descriptor_expired",
    "is_newer",
    "version_key",
]
