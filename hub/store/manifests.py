"""Which bulletins reach which devices and communes (written here once, for the manifest, the
emergency push, the scope of commune accounts and the evidence of play), and the devices'
manifest versions.

A bulletin reaches a device when it targets the whole province (`target_all`), the device
itself (`bulletin_devices`) or the device's commune (`bulletin_communes`); it reaches a commune
when it targets the province, the commune, or any device in it. Whether the device can air
the bulletin's kind is a separate condition (`device_kinds_for`, `bulletin_kinds_for`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from loa_contract import (
    KINDS_FOR_DEVICE,
    BulletinKind,
    DeviceKind,
    ManifestBulletin,
    MediaRef,
    Priority,
    Schedule,
)

from ..db import iso
from .sql import Reader, Row, Tx, chunks, marks


def reaches_device(
    bulletin: str, *, target_all: str, device: str, commune: str, many_devices: bool = False
) -> str:
    """SQL: the bulletin (an id expression, its target_all expression) reaches the device (an
    id expression) in the commune (a commune code expression).

    `many_devices`: written for one bulletin and many devices (a fixed :bulletin, a device
    per row), its target lists are read once; otherwise (a bulletin per row, one device) each
    row is one index lookup."""
    if many_devices:
        return (
            f"({target_all} = 1"
            f" OR {commune} IN (SELECT commune FROM bulletin_communes"
            f" WHERE bulletin_id = {bulletin})"
            f" OR {device} IN (SELECT device_id FROM bulletin_devices"
            f" WHERE bulletin_id = {bulletin}))"
        )
    return (
        f"({target_all} = 1"
        " OR EXISTS (SELECT 1 FROM bulletin_devices bd"
        f" WHERE bd.bulletin_id = {bulletin} AND bd.device_id = {device})"
        " OR EXISTS (SELECT 1 FROM bulletin_communes bc"
        f" WHERE bc.bulletin_id = {bulletin} AND bc.commune = {commune}))"
    )


def reaches_commune(bulletin: str, *, target_all: str, commune: str) -> str:
    """SQL: the bulletin reaches the commune (a commune code expression) or a device of it."""
    return (
        f"({target_all} = 1"
        " OR EXISTS (SELECT 1 FROM bulletin_communes bc"
        f" WHERE bc.bulletin_id = {bulletin} AND bc.commune = {commune})"
        " OR EXISTS (SELECT 1 FROM bulletin_devices bd JOIN devices dc ON dc.id = bd.device_id"
        f" WHERE bd.bulletin_id = {bulletin} AND dc.commune = {commune}))"
    )


#: Bulletin `b` reaches the device :device of the commune :commune.
B_REACHES_DEVICE = reaches_device(
    "b.id", target_all="b.target_all", device=":device", commune=":commune"
)
#: The bulletin :bulletin reaches device `d`.
REACHES_D = reaches_device(
    ":bulletin",
    target_all="(SELECT target_all FROM bulletins WHERE id = :bulletin)",
    device="d.id",
    commune="d.commune",
    many_devices=True,
)


#: The columns of a bulletin `b` and its media `m` that `manifest_bulletin` reads.
CONTENT_COLUMNS = (
    "b.id, b.title, b.kind, b.priority, b.text, b.media_sha256, b.schedule_json,"
    " b.display_seconds, b.category, b.source_level, m.size AS media_size, m.mime AS media_mime"
)
#: Bulletins `b` with their media `m`.
CONTENT_FROM = "bulletins b LEFT JOIN media m ON m.sha256 = b.media_sha256"


def manifest_bulletin(row: Row) -> ManifestBulletin:
    """A bulletin as a device must hold it, from CONTENT_COLUMNS."""
    media = None
    if row["media_sha256"]:
        media = MediaRef(sha256=row["media_sha256"], size=row["media_size"], mime=row["media_mime"])
    return ManifestBulletin(
        id=row["id"],
        title=row["title"],
        kind=BulletinKind(row["kind"]),
        priority=Priority(row["priority"]),
        text=row["text"],
        media=media,
        schedule=Schedule.model_validate_json(row["schedule_json"]),
        display_seconds=row["display_seconds"],
        category=row["category"],
        source_level=row["source_level"],
    )


def bulletin_kinds_for(kind: DeviceKind) -> str:
    """SQL list of the bulletin kinds a device of `kind` airs."""
    return ",".join(f"'{k.value}'" for k in sorted(KINDS_FOR_DEVICE[kind]))


def device_kinds_for(kind: BulletinKind) -> str:
    """SQL list of the device kinds that can air a bulletin of `kind`."""
    return ",".join(f"'{k.value}'" for k in DeviceKind if kind in KINDS_FOR_DEVICE[k])


async def bump_versions(tx: Tx, device_ids: Iterable[str]) -> dict[str, int]:
    """Raise each device's manifest version by one; returns the new versions."""
    versions: dict[str, int] = {}
    for chunk in chunks(list(dict.fromkeys(device_ids))):
        rows = await tx.fetchall(
            "UPDATE device_manifests SET version = version + 1"
            f" WHERE device_id IN ({marks(len(chunk))}) RETURNING device_id, version",
            chunk,
        )
        versions.update({r[0]: r[1] for r in rows})
    return versions


async def bump_reached(tx: Tx, bulletin_id: str, kind: BulletinKind) -> dict[str, int]:
    """Raise the manifest version of every device a bulletin reaches and can air; returns
    the new versions. One statement on the narrow table: a province-wide emergency raises
    every device's version inside its transaction, and the API answers after it."""
    rows = await tx.fetchall(
        "UPDATE device_manifests SET version = version + 1 WHERE device_id IN"
        f" (SELECT d.id FROM devices d WHERE d.kind IN ({device_kinds_for(kind)}) AND {REACHES_D})"
        " RETURNING device_id, version",
        {"bulletin": bulletin_id},
    )
    return {r[0]: r[1] for r in rows}


async def bump_every_version(tx: Tx) -> dict[str, int]:
    """Raise every device's manifest version by one; returns the new versions."""
    rows = await tx.fetchall(
        "UPDATE device_manifests SET version = version + 1 RETURNING device_id, version"
    )
    return {r[0]: r[1] for r in rows}


async def versions_of(db: Reader, device_ids: Iterable[str]) -> dict[str, int]:
    """The current manifest version of each of `device_ids` (those that exist)."""
    versions: dict[str, int] = {}
    for chunk in chunks(sorted(set(device_ids))):
        rows = await db.fetchall(
            f"SELECT device_id, version FROM device_manifests WHERE device_id IN"
            f" ({marks(len(chunk))})",
            chunk,
        )
        versions.update({r[0]: r[1] for r in rows})
    return versions


#: Bulletin `b` airs in the commune :commune as far as the commune's say goes (HP Đ12.3): a
#: normal bulletin of another unit (the province, an agency, the central level) is left out
#: when the commune declined it, or when the commune takes such bulletins only on offer and
#: has not accepted it. Priority and emergency bulletins and the commune's own always air.
B_AIRS_IN_COMMUNE = (
    "NOT (b.priority = 'normal' AND b.unit <> :commune AND ("
    "EXISTS (SELECT 1 FROM commune_choices cc WHERE cc.commune = :commune"
    " AND cc.bulletin_id = b.id AND cc.choice = 'declined')"
    " OR (EXISTS (SELECT 1 FROM communes co WHERE co.code = :commune"
    " AND co.province_normal = 'offer')"
    " AND NOT EXISTS (SELECT 1 FROM commune_choices cc WHERE cc.commune = :commune"
    " AND cc.bulletin_id = b.id AND cc.choice = 'accepted'))))"
)


# ---------------------------------------------------------------- what a manifest holds


async def published_for_device(
    db: Reader, device_id: str, commune: str, kind: DeviceKind, now: datetime
) -> list[ManifestBulletin]:
    """The published bulletins in force at `now` that reach the device and that it can air,
    by valid_from, then creation."""
    rows = await db.fetchall(
        f"SELECT {CONTENT_COLUMNS} FROM {CONTENT_FROM}"
        " WHERE b.state = 'published' AND b.valid_until > :now"
        f" AND b.kind IN ({bulletin_kinds_for(kind)}) AND {B_REACHES_DEVICE}"
        f" AND {B_AIRS_IN_COMMUNE}"
        " ORDER BY b.valid_from, b.created_at",
        {"now": iso(now), "device": device_id, "commune": commune},
    )
    return [manifest_bulletin(r) for r in rows]


async def cancelled_emergencies_for_device(
    db: Reader, device_id: str, commune: str, since: datetime
) -> list[str]:
    """The emergencies that reached the device and were cancelled after `since`, oldest
    cancellation first."""
    rows = await db.fetchall(
        "SELECT b.id FROM bulletins b WHERE b.state = 'cancelled' AND b.priority = 'emergency'"
        f" AND b.cancelled_at > :since AND {B_REACHES_DEVICE} ORDER BY b.cancelled_at",
        {"since": iso(since), "device": device_id, "commune": commune},
    )
    return [r[0] for r in rows]


async def mark_signed(tx: Tx, device_id: str, version: int, at: datetime) -> None:
    """Version `version` of the device's manifest was first signed at `at` (a later signing
    of the same or an older version changes nothing)."""
    await tx.execute(
        "UPDATE device_manifests SET signed_version = ?, signed_at = ?"
        " WHERE device_id = ? AND (signed_version IS NULL OR signed_version < ?)",
        (version, iso(at), device_id, version),
    )


async def signed_before(db: Reader, cutoff: datetime) -> list[str]:
    """The devices whose current manifest version was first signed before `cutoff`."""
    rows = await db.fetchall(
        "SELECT device_id FROM device_manifests WHERE signed_version = version AND signed_at < ?",
        (iso(cutoff),),
    )
    return [r[0] for r in rows]
