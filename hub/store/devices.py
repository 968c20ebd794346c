"""Device slots: enrollment, identity, the fleet list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loa_contract import DeviceKind, HealthSample

from ..db import from_iso, iso
from .sql import Reader, Row, Tx, after_key, key_params


@dataclass(frozen=True)
class Device:
    id: str
    commune: str
    name: str
    kind: DeviceKind
    profile: str
    #: It holds a device secret (enrolled, and not since given a new enrollment code).
    enrolled: bool
    enrolled_at: datetime | None
    enrollment_expires_at: datetime | None
    agent_version: str | None
    hostname: str | None
    manifest_version: int
    last_seen: datetime | None
    #: The newest health sample it reported.
    health: HealthSample | None
    #: Proof-of-play reports refused from it, and the newest refusal.
    refused_reports: int
    last_refused_at: datetime | None
    last_refused_reason: str | None
    last_refused_detail: str | None


_COLUMNS = (
    "id, commune, name, kind, profile, secret_hash IS NOT NULL AS enrolled, enrolled_at,"
    " enrollment_expires_at, agent_version, hostname, dm.version AS manifest_version, last_seen,"
    " last_health_json, refused_reports_total, last_refused_at, last_refused_reason,"
    " last_refused_detail"
)


#: A device row with its manifest's (hub/db.py: kept apart, so that raising the version of
#: every device an emergency reaches writes a narrow table, not the device rows).
_WITH_MANIFEST = "devices JOIN device_manifests dm ON dm.device_id = devices.id"


def _time(text: str | None) -> datetime | None:
    return from_iso(text) if text else None


def _device(row: Row) -> Device:
    health = row["last_health_json"]
    return Device(
        id=row["id"],
        commune=row["commune"],
        name=row["name"],
        kind=DeviceKind(row["kind"]),
        profile=row["profile"],
        enrolled=bool(row["enrolled"]),
        enrolled_at=_time(row["enrolled_at"]),
        enrollment_expires_at=_time(row["enrollment_expires_at"]),
        agent_version=row["agent_version"],
        hostname=row["hostname"],
        manifest_version=row["manifest_version"],
        last_seen=_time(row["last_seen"]),
        health=HealthSample.model_validate_json(health) if health else None,
        refused_reports=row["refused_reports_total"],
        last_refused_at=_time(row["last_refused_at"]),
        last_refused_reason=row["last_refused_reason"],
        last_refused_detail=row["last_refused_detail"],
    )


async def get(db: Reader, device_id: str) -> Device | None:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM {_WITH_MANIFEST} WHERE id = ?", (device_id,))
    return _device(row) if row is not None else None


async def exists(db: Reader, device_id: str) -> bool:
    return await db.fetchone("SELECT 1 FROM devices WHERE id = ?", (device_id,)) is not None


async def commune_of(db: Reader, device_id: str) -> str | None:
    """The device's commune; None for no such device."""
    commune: str | None = await db.fetchval(
        "SELECT commune FROM devices WHERE id = ?", (device_id,)
    )
    return commune


#: The fleet's order: by commune, then name; the id tells apart two devices of one name.
FLEET_ORDER = ("commune", "name", "id")


async def fleet_page(
    db: Reader,
    *,
    commune: str | None = None,
    kind: DeviceKind | None = None,
    after: tuple[str, str, str] | None = None,
    limit: int,
) -> list[Device]:
    """Up to `limit` devices in FLEET_ORDER, of one commune and kind when given, after the
    device whose (commune, name, id) is `after`."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if commune is not None:
        where.append("commune = :commune")
        params["commune"] = commune
    if kind is not None:
        where.append("kind = :kind")
        params["kind"] = kind.value
    if after is not None:
        where.append(after_key(FLEET_ORDER, descending=False))
        params.update(key_params(after))
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM {_WITH_MANIFEST}"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY {', '.join(FLEET_ORDER)} LIMIT :limit",
        params,
    )
    return [_device(r) for r in rows]


async def add(
    tx: Tx,
    device_id: str,
    *,
    commune: str,
    name: str,
    kind: DeviceKind,
    profile: str,
    enrollment_code_hash: str,
    enrollment_expires_at: datetime,
    at: datetime,
) -> None:
    """A device slot, waiting to be enrolled with its code."""
    await tx.execute(
        "INSERT INTO devices (id, commune, name, kind, profile, enrollment_code_hash,"
        " enrollment_expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            device_id,
            commune,
            name,
            kind.value,
            profile,
            enrollment_code_hash,
            iso(enrollment_expires_at),
            iso(at),
        ),
    )
    await tx.execute("INSERT INTO device_manifests (device_id) VALUES (?)", (device_id,))


async def new_enrollment_code(tx: Tx, device_id: str, code_hash: str, expires_at: datetime) -> None:
    """A new one-time code for the slot; the device's secret stops working at once."""
    await tx.execute(
        "UPDATE devices SET enrollment_code_hash = ?, enrollment_expires_at = ?,"
        " enrollment_used_at = NULL, secret_hash = NULL WHERE id = ?",
        (code_hash, iso(expires_at), device_id),
    )


async def ids_in_commune(db: Reader, commune: str) -> list[str]:
    rows = await db.fetchall("SELECT id FROM devices WHERE commune = ?", (commune,))
    return [r[0] for r in rows]


async def backdate_enrollment(tx: Tx, device_id: str, at: datetime) -> None:
    """Move a device's enrollment back to `at` (tests and simulations of airings made in the
    past)."""
    await tx.execute("UPDATE devices SET enrolled_at = ? WHERE id = ?", (iso(at), device_id))


# ---------------------------------------------------------------- enrollment and identity


@dataclass(frozen=True)
class EnrollmentSlot:
    """A slot as its one-time enrollment code finds it."""

    id: str
    commune: str
    kind: DeviceKind
    profile: str
    #: When the code was used (None: not yet).
    used_at: datetime | None
    expires_at: datetime


async def slot_for_code(db: Reader, code_hash: str) -> EnrollmentSlot | None:
    """The slot whose current enrollment code hashes to `code_hash`."""
    row = await db.fetchone(
        "SELECT id, commune, kind, profile, enrollment_used_at, enrollment_expires_at"
        " FROM devices WHERE enrollment_code_hash = ?",
        (code_hash,),
    )
    if row is None:
        return None
    return EnrollmentSlot(
        id=row["id"],
        commune=row["commune"],
        kind=DeviceKind(row["kind"]),
        profile=row["profile"],
        used_at=_time(row["enrollment_used_at"]),
        expires_at=from_iso(row["enrollment_expires_at"]),
    )


async def code_is_current(db: Reader, device_id: str, code_hash: str, now: datetime) -> bool:
    """The device's enrollment code hashes to `code_hash`, is unused and not expired."""
    row = await db.fetchone(
        "SELECT enrollment_expires_at FROM devices WHERE id = ? AND enrollment_code_hash = ?"
        " AND enrollment_used_at IS NULL",
        (device_id, code_hash),
    )
    return row is not None and from_iso(row["enrollment_expires_at"]) > now


async def mark_enrolled(
    tx: Tx,
    device_id: str,
    *,
    secret_hash: str,
    at: datetime,
    agent_version: str,
    hostname: str | None,
) -> None:
    """The code is used: the device now holds the secret hashing to `secret_hash`."""
    await tx.execute(
        "UPDATE devices SET enrollment_used_at = ?, secret_hash = ?, enrolled_at = ?,"
        " agent_version = ?, hostname = ?, last_seen = ? WHERE id = ?",
        (iso(at), secret_hash, iso(at), agent_version, hostname, iso(at), device_id),
    )


@dataclass(frozen=True)
class Credentials:
    """What authenticating a device's request needs of it."""

    id: str
    commune: str
    kind: DeviceKind
    profile: str
    #: None: not enrolled (or its secret revoked by a new enrollment code).
    secret_hash: str | None
    last_seen: datetime | None
    manifest_version: int
    manifest_signed_version: int | None
    manifest_signed_at: datetime | None
    #: When it last enrolled (None: not recorded).
    enrolled_at: datetime | None


async def credentials(db: Reader, device_id: str) -> Credentials | None:
    row = await db.fetchone(
        "SELECT id, commune, kind, profile, secret_hash, last_seen,"
        " dm.version AS manifest_version, dm.signed_version AS manifest_signed_version,"
        f" dm.signed_at AS manifest_signed_at, enrolled_at FROM {_WITH_MANIFEST} WHERE id = ?",
        (device_id,),
    )
    if row is None:
        return None
    return Credentials(
        id=row["id"],
        commune=row["commune"],
        kind=DeviceKind(row["kind"]),
        profile=row["profile"],
        secret_hash=row["secret_hash"],
        last_seen=_time(row["last_seen"]),
        manifest_version=row["manifest_version"],
        manifest_signed_version=row["manifest_signed_version"],
        manifest_signed_at=_time(row["manifest_signed_at"]),
        enrolled_at=_time(row["enrolled_at"]),
    )


async def touch_seen(tx: Tx, device_id: str, at: datetime) -> None:
    """The device was heard from at `at`."""
    await tx.execute("UPDATE devices SET last_seen = ? WHERE id = ?", (iso(at), device_id))
