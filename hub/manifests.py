"""Per-device manifests: what targets a device, version bumps, building, signing, caching."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from datetime import datetime

from aiohttp import web

from loa_contract import (
    KINDS_FOR_DEVICE,
    BulletinKind,
    CommuneWindows,
    DeviceKind,
    Manifest,
    ManifestBulletin,
    MediaRef,
    Priority,
    Schedule,
    Scope,
    utcnow,
)

from .appkeys import CONFIG, CONNECTIONS, DB, KEYRING, MANIFEST_CACHE
from .auth import DeviceAuth
from .db import Database, from_iso, iso
from .nodes import hub_urls
from .store.sql import Row, Tx

log = logging.getLogger(__name__)

#: Does bulletin `b` target the device (:device) in commune (:commune)?
TARGETS_DEVICE = """(b.target_all = 1
    OR EXISTS (SELECT 1 FROM bulletin_devices bd
               WHERE bd.bulletin_id = b.id AND bd.device_id = :device)
    OR EXISTS (SELECT 1 FROM bulletin_communes bc
               WHERE bc.bulletin_id = b.id AND bc.commune = :commune))"""

BULLETIN_SELECT = """SELECT b.*, m.size AS media_size, m.mime AS media_mime
    FROM bulletins b LEFT JOIN media m ON m.sha256 = b.media_sha256"""

_RANK = {p.value: p.rank for p in Priority}


def manifest_bulletin(row: Row) -> ManifestBulletin:
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


def kinds_sql(kind: DeviceKind) -> str:
    return ",".join(f"'{k.value}'" for k in sorted(KINDS_FOR_DEVICE[kind]))


async def bulletins_for_device(
    db: Database, device_id: str, commune: str, kind: DeviceKind, now: datetime
) -> list[ManifestBulletin]:
    rows = await db.fetchall(
        f"{BULLETIN_SELECT} WHERE b.state = 'published' AND b.valid_until > :now"
        f" AND b.kind IN ({kinds_sql(kind)}) AND {TARGETS_DEVICE}"
        " ORDER BY b.valid_from, b.created_at",
        {"now": iso(now), "device": device_id, "commune": commune},
    )
    items = [manifest_bulletin(r) for r in rows]
    ordered = await db.fetchall(
        "SELECT bulletin_id, position FROM commune_order WHERE commune = ?", (commune,)
    )
    if ordered:
        # The commune's chosen order first; priority bulletins it has not placed follow.
        positions = {r["bulletin_id"]: r["position"] for r in ordered}
        last = max(positions.values()) + 1
        items = [
            b.model_copy(update={"order": positions.get(b.id, last)})
            if b.priority is Priority.PRIORITY
            else b
            for b in items
        ]
    items.sort(key=lambda b: b.priority.rank)  # stable: keeps valid_from order within a rank
    return items


async def cancelled_for_device(
    db: Database, device_id: str, commune: str, since: datetime
) -> list[str]:
    rows = await db.fetchall(
        "SELECT b.id FROM bulletins b WHERE b.state = 'cancelled' AND b.priority = 'emergency'"
        f" AND b.cancelled_at > :since AND {TARGETS_DEVICE} ORDER BY b.cancelled_at",
        {"since": iso(since), "device": device_id, "commune": commune},
    )
    return [r["id"] for r in rows]


async def bulletin_scope(conn: Tx, bulletin_id: str) -> Scope:
    """Whom a bulletin targets, as a broadcast command names it (inside the caller's
    transaction, so it is the scope just committed)."""
    row = await conn.fetchone("SELECT target_all FROM bulletins WHERE id = ?", (bulletin_id,))
    communes = await conn.fetchall(
        "SELECT commune FROM bulletin_communes WHERE bulletin_id = ? ORDER BY commune",
        (bulletin_id,),
    )
    devices = await conn.fetchall(
        "SELECT device_id FROM bulletin_devices WHERE bulletin_id = ? ORDER BY device_id",
        (bulletin_id,),
    )
    return Scope(
        province=bool(row and row["target_all"]),
        communes=[r[0] for r in communes],
        devices=[r[0] for r in devices],
    )


async def bump_versions(conn: Tx, device_ids: Iterable[str]) -> dict[str, int]:
    """Raise each device's manifest version by one; returns the new versions."""
    ids = list(dict.fromkeys(device_ids))
    versions: dict[str, int] = {}
    for start in range(0, len(ids), 500):  # SQLite caps bound parameters per statement
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        cur = await conn.fetchall(
            f"UPDATE devices SET manifest_version = manifest_version + 1 WHERE id IN ({marks})"
            " RETURNING id, manifest_version",
            chunk,
        )
        versions.update({r["id"]: r["manifest_version"] for r in cur})
    return versions


#: Does bulletin :bulletin reach device `d` (whatever the device's kind)?
REACHES_DEVICE = """((SELECT target_all FROM bulletins WHERE id = :bulletin) = 1
    OR d.commune IN (SELECT commune FROM bulletin_communes WHERE bulletin_id = :bulletin)
    OR d.id IN (SELECT device_id FROM bulletin_devices WHERE bulletin_id = :bulletin))"""


def airing_kinds_sql(kind: BulletinKind) -> str:
    """The device kinds that can air a bulletin kind, as an SQL list."""
    return ",".join(f"'{k.value}'" for k in DeviceKind if kind in KINDS_FOR_DEVICE[k])


async def bump_targeted(conn: Tx, bulletin_id: str, kind: BulletinKind) -> dict[str, int]:
    """Raise the manifest version of every device a bulletin reaches and can air; returns
    the new versions. One statement: a province-wide emergency touches every device row
    inside its transaction, and the API answers after it."""
    cur = await conn.fetchall(
        "UPDATE devices AS d SET manifest_version = manifest_version + 1"
        f" WHERE d.kind IN ({airing_kinds_sql(kind)}) AND {REACHES_DEVICE}"
        " RETURNING id, manifest_version",
        {"bulletin": bulletin_id},
    )
    return {r[0]: r[1] for r in cur}


async def commune_device_ids(conn: Tx, commune: str) -> list[str]:
    cur = await conn.fetchall("SELECT id FROM devices WHERE commune = ?", (commune,))
    return [r["id"] for r in cur]


class ManifestCache:
    """The latest signed manifest bytes per device, so a thousand polls sign nothing."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, bytes]] = {}

    def get(self, device_id: str, version: int) -> bytes | None:
        entry = self._entries.get(device_id)
        return entry[1] if entry and entry[0] == version else None

    def put(self, device_id: str, version: int, body: bytes) -> None:
        current = self._entries.get(device_id)
        if current is None or current[0] <= version:
            self._entries[device_id] = (version, body)


async def current_version(app: web.Application, device: DeviceAuth) -> int:
    """The version to serve; re-issues (bumps) a manifest past half its lifetime."""
    config = app[CONFIG]
    now = utcnow()
    if (
        device.manifest_signed_version == device.manifest_version
        and device.manifest_signed_at is not None
        and now - device.manifest_signed_at > config.manifest_lifetime / 2
    ):
        async with app[DB].transaction() as conn:
            return (await bump_versions(conn, [device.id]))[device.id]
    return device.manifest_version


async def signed_manifest(app: web.Application, device: DeviceAuth, version: int) -> bytes:
    cache = app[MANIFEST_CACHE]
    cached = cache.get(device.id, version)
    if cached is not None:
        return cached
    db = app[DB]
    config = app[CONFIG]
    now = utcnow()
    commune = await db.fetchone(
        "SELECT windows_json, volume FROM communes WHERE code = ?", (device.commune,)
    )
    if commune is None:
        raise RuntimeError(f"device {device.id} belongs to a missing commune")
    windows = CommuneWindows.model_validate_json(commune["windows_json"])
    manifest = Manifest(
        device_id=device.id,
        version=version,
        issued_at=now,
        expires_at=now + config.manifest_lifetime,
        device_kind=device.kind,
        commune=device.commune,
        windows=windows.for_kind(device.kind),
        volume=commune["volume"],
        profile=device.profile,
        resume_mode=config.resume_mode,
        bulletins=await bulletins_for_device(db, device.id, device.commune, device.kind, now),
        cancelled=await cancelled_for_device(
            db, device.id, device.commune, now - config.cancelled_memory
        ),
        hub_urls=await hub_urls(db),
    )
    body = app[KEYRING].signer.sign(manifest).model_dump_json().encode("utf-8")
    cache.put(device.id, version, body)
    # Remember when this version was first signed: the refresher re-issues it before expiry.
    await db.execute(
        "UPDATE devices SET manifest_signed_version = ?, manifest_signed_at = ?"
        " WHERE id = ? AND (manifest_signed_version IS NULL OR manifest_signed_version < ?)",
        (version, iso(now), device.id, version),
    )
    return body


async def refresh_stale_manifests(app: web.Application) -> int:
    """Bump and announce manifests past half their lifetime, for devices that only listen."""
    config = app[CONFIG]
    cutoff = utcnow() - config.manifest_lifetime / 2
    async with app[DB].transaction() as conn:
        cur = await conn.fetchall(
            "SELECT id FROM devices WHERE manifest_signed_version = manifest_version"
            " AND manifest_signed_at < ?",
            (iso(cutoff),),
        )
        ids = [r["id"] for r in cur]
        versions = await bump_versions(conn, ids) if ids else {}
    if versions:
        await app[CONNECTIONS].push_manifest_ready(versions, config.command_ttl)
    return len(versions)


async def refresher_context(app: web.Application) -> AsyncIterator[None]:
    async def loop() -> None:
        interval = app[CONFIG].refresh_interval.total_seconds()
        while True:
            try:
                count = await refresh_stale_manifests(app)
                if count:
                    log.info("re-issued %d manifests nearing expiry", count)
                cutoff = utcnow() - app[CONFIG].health_retention
                await app[DB].execute("DELETE FROM health WHERE received_at < ?", (iso(cutoff),))
            except Exception:
                log.exception("manifest refresh failed; retrying next interval")
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop(), name="manifest-refresher")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def parse_time(text: str | None) -> datetime | None:
    return from_iso(text) if text else None
