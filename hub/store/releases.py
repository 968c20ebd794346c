"""Agent releases, their roll-outs and each device's update state (issue #14)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from ..db import from_iso, iso
from .sql import Reader, Row, Tx, after_key, key_params


@dataclass(frozen=True)
class Release:
    version: str
    sha256: str
    size: int
    filename: str
    #: The SignedEnvelope (JSON) of its ReleaseDescriptor.
    descriptor: str
    added_at: datetime
    added_by: str


@dataclass(frozen=True)
class Rollout:
    id: str
    version: str
    communes: tuple[str, ...]
    devices: tuple[str, ...]
    kind: str | None
    percent: int
    #: "active", "paused" or "stopped".
    state: str
    downgrade: bool
    descriptor: str
    max_failure_share: float
    min_attempts: int
    paused_reason: str | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    #: A device group's id: the roll-out reaches the group's members as they are when each
    #: device asks (instead of `communes` and `devices`).
    group: str | None = None


@dataclass(frozen=True)
class Outcomes:
    """What the devices that took a version made of it."""

    updated: int
    failed: int


_RELEASE = "version, sha256, size, filename, descriptor, added_at, added_by"
_ROLLOUT = (
    "id, version, communes, devices, kind, percent, state, downgrade, descriptor,"
    " max_failure_share, min_attempts, paused_reason, created_at, created_by, updated_at,"
    " group_id"
)


def _release(row: Row) -> Release:
    return Release(
        version=row["version"],
        sha256=row["sha256"],
        size=int(row["size"]),
        filename=row["filename"],
        descriptor=row["descriptor"],
        added_at=from_iso(row["added_at"]),
        added_by=row["added_by"],
    )


def _rollout(row: Row) -> Rollout:
    return Rollout(
        id=row["id"],
        version=row["version"],
        communes=tuple(json.loads(row["communes"])),
        devices=tuple(json.loads(row["devices"])),
        kind=row["kind"],
        percent=int(row["percent"]),
        state=row["state"],
        downgrade=bool(row["downgrade"]),
        descriptor=row["descriptor"],
        max_failure_share=float(row["max_failure_share"]),
        min_attempts=int(row["min_attempts"]),
        paused_reason=row["paused_reason"],
        created_at=from_iso(row["created_at"]),
        created_by=row["created_by"],
        updated_at=from_iso(row["updated_at"]),
        group=row["group_id"],
    )


# ---------------------------------------------------------------- releases


async def add_release(tx: Tx, release: Release) -> None:
    await tx.execute(
        f"INSERT INTO agent_releases ({_RELEASE}) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            release.version,
            release.sha256,
            release.size,
            release.filename,
            release.descriptor,
            iso(release.added_at),
            release.added_by,
        ),
    )


async def release(db: Reader, version: str) -> Release | None:
    row = await db.fetchone(f"SELECT {_RELEASE} FROM agent_releases WHERE version = ?", (version,))
    return _release(row) if row else None


async def release_by_sha(db: Reader, sha256: str) -> Release | None:
    row = await db.fetchone(f"SELECT {_RELEASE} FROM agent_releases WHERE sha256 = ?", (sha256,))
    return _release(row) if row else None


async def releases(db: Reader) -> list[Release]:
    rows = await db.fetchall(f"SELECT {_RELEASE} FROM agent_releases ORDER BY added_at DESC")
    return [_release(r) for r in rows]


# ---------------------------------------------------------------- roll-outs


async def add_rollout(tx: Tx, rollout: Rollout) -> None:
    await tx.execute(
        f"INSERT INTO rollouts ({_ROLLOUT}) VALUES ({', '.join('?' * 16)})",
        (
            rollout.id,
            rollout.version,
            json.dumps(list(rollout.communes)),
            json.dumps(list(rollout.devices)),
            rollout.kind,
            rollout.percent,
            rollout.state,
            1 if rollout.downgrade else 0,
            rollout.descriptor,
            rollout.max_failure_share,
            rollout.min_attempts,
            rollout.paused_reason,
            iso(rollout.created_at),
            rollout.created_by,
            iso(rollout.updated_at),
            rollout.group,
        ),
    )


async def rollout(db: Reader, rollout_id: str) -> Rollout | None:
    row = await db.fetchone(f"SELECT {_ROLLOUT} FROM rollouts WHERE id = ?", (rollout_id,))
    return _rollout(row) if row else None


async def rollouts(db: Reader, *, state: str | None = None) -> list[Rollout]:
    """Newest first; only those in `state` when given."""
    if state is None:
        rows = await db.fetchall(f"SELECT {_ROLLOUT} FROM rollouts ORDER BY created_at DESC")
    else:
        rows = await db.fetchall(
            f"SELECT {_ROLLOUT} FROM rollouts WHERE state = ? ORDER BY created_at DESC", (state,)
        )
    return [_rollout(r) for r in rows]


async def set_rollout(
    tx: Tx,
    rollout_id: str,
    *,
    state: str,
    percent: int,
    paused_reason: str | None,
    at: datetime,
) -> None:
    await tx.execute(
        "UPDATE rollouts SET state = ?, percent = ?, paused_reason = ?, updated_at = ?"
        " WHERE id = ?",
        (state, percent, paused_reason, iso(at), rollout_id),
    )


# ---------------------------------------------------------------- devices


async def save_device_update(
    tx: Tx,
    device_id: str,
    *,
    running_version: str,
    state: str,
    target_version: str | None,
    reason: str | None,
    switch_silence_s: float | None,
    at: datetime,
) -> None:
    """What the device said of its software; its running version goes on its row too."""
    await tx.execute(
        "INSERT INTO device_updates (device_id, running_version, state, target_version, reason,"
        " switch_silence_s, reported_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (device_id) DO UPDATE SET running_version = excluded.running_version,"
        " state = excluded.state, target_version = excluded.target_version,"
        " reason = excluded.reason, switch_silence_s = excluded.switch_silence_s,"
        " reported_at = excluded.reported_at",
        (device_id, running_version, state, target_version, reason, switch_silence_s, iso(at)),
    )
    await tx.execute(
        "UPDATE devices SET agent_version = ?, last_seen = ? WHERE id = ?",
        (running_version, iso(at), device_id),
    )


async def outcomes(db: Reader, version: str) -> Outcomes:
    """Devices that run `version` after updating to it, and those it failed on."""
    rows = await db.fetchall(
        "SELECT state, COUNT(*) AS n FROM device_updates WHERE target_version = ? GROUP BY state",
        (version,),
    )
    counts = {r["state"]: int(r["n"]) for r in rows}
    return Outcomes(
        updated=counts.get("updated", 0),
        failed=counts.get("failed", 0) + counts.get("rolled_back", 0),
    )


@dataclass(frozen=True)
class VersionCounts:
    version: str
    running: int
    updating: int
    failed: int
    rolled_back: int


async def version_counts(db: Reader) -> list[VersionCounts]:
    """Per agent version: enrolled devices running it, and those updating to it, failed on
    it or rolled back from it (as each device last said)."""
    running = {
        r["agent_version"]: int(r["n"])
        for r in await db.fetchall(
            "SELECT agent_version, COUNT(*) AS n FROM devices"
            " WHERE secret_hash IS NOT NULL AND agent_version IS NOT NULL GROUP BY agent_version"
        )
    }
    states: dict[str, dict[str, int]] = {}
    for r in await db.fetchall(
        "SELECT target_version, state, COUNT(*) AS n FROM device_updates"
        " WHERE target_version IS NOT NULL GROUP BY target_version, state"
    ):
        states.setdefault(r["target_version"], {})[r["state"]] = int(r["n"])
    versions = sorted(set(running) | set(states))
    return [
        VersionCounts(
            version=v,
            running=running.get(v, 0),
            updating=states.get(v, {}).get("downloading", 0) + states.get(v, {}).get("waiting", 0),
            failed=states.get(v, {}).get("failed", 0),
            rolled_back=states.get(v, {}).get("rolled_back", 0),
        )
        for v in versions
    ]


@dataclass(frozen=True)
class DeviceUpdate:
    device_id: str
    running_version: str
    state: str
    target_version: str | None
    reason: str | None
    switch_silence_s: float | None
    reported_at: datetime


#: The device updates list's order (newest first), ending in a unique column.
UPDATES_ORDER = ("reported_at", "device_id")


async def device_updates(
    db: Reader,
    *,
    version: str | None = None,
    limit: int,
    before: tuple[str, str] | None = None,
) -> list[DeviceUpdate]:
    """Up to `limit` devices' last word on their update, newest first, after the one whose
    (reported_at as stored, device_id) is `before`; only those about `version` (running it
    or updating to it) when given."""
    columns = (
        "device_id, running_version, state, target_version, reason, switch_silence_s, reported_at"
    )
    where = ["1 = 1"]
    params: dict[str, object] = {"limit": limit}
    if version is not None:
        where.append("(target_version = :version OR running_version = :version)")
        params["version"] = version
    if before is not None:
        where.append(after_key(UPDATES_ORDER, descending=True))
        params.update(key_params(before))
    rows = await db.fetchall(
        f"SELECT {columns} FROM device_updates WHERE {' AND '.join(where)}"
        " ORDER BY reported_at DESC, device_id DESC LIMIT :limit",
        params,
    )
    return [
        DeviceUpdate(
            device_id=r["device_id"],
            running_version=r["running_version"],
            state=r["state"],
            target_version=r["target_version"],
            reason=r["reason"],
            switch_silence_s=r["switch_silence_s"],
            reported_at=from_iso(r["reported_at"]),
        )
        for r in rows
    ]


def update_key(update: DeviceUpdate) -> tuple[str, str]:
    """A device update's place in UPDATES_ORDER, as `device_updates` takes it in `before`."""
    return iso(update.reported_at), update.device_id
