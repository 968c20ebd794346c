"""Per-device manifests: building, signing, caching and re-issuing them before they expire.
What reaches a device, and the version numbers, are hub/store/manifests.py's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from aiohttp import web

from loa_contract import (
    VN_TZ,
    DeviceKind,
    Manifest,
    ManifestBulletin,
    Priority,
)

from .appkeys import CLOCK, CONFIG, CONNECTIONS, DB, KEYRING, MANIFEST_CACHE
from .auth import DeviceAuth
from .db import Database
from .nodes import hub_urls
from .store import bulletins, communes, manifests, reports

log = logging.getLogger(__name__)


async def bulletins_for_device(
    db: Database, device_id: str, commune: str, kind: DeviceKind, now: datetime
) -> list[ManifestBulletin]:
    """What the device must hold: highest priority first; among the priority bulletins (and
    the normal ones the commune accepted), the commune's chosen order first (those it has not
    placed follow); else by valid_from."""
    items = await manifests.published_for_device(db, device_id, commune, kind, now)
    positions = await bulletins.running_positions(db, commune)
    if positions:
        last = max(positions.values()) + 1
        items = [
            b.model_copy(update={"order": positions.get(b.id, last)})
            # Priority bulletins, and normal ones the commune accepted (hub/offers.py).
            if b.priority is Priority.PRIORITY or b.id in positions
            else b
            for b in items
        ]
    items.sort(key=lambda b: b.priority.rank)  # stable: keeps valid_from order within a rank
    return items


class ManifestCache:
    """The latest signed manifest bytes per device, so a thousand polls sign nothing.

    Bounded to `capacity` devices, least recently used dropped first: a device that holds
    its manifest asks with its ETag and is answered 304 without the bytes, so after the
    fetch that follows a change an entry serves only retries. Unbounded, a province's fleet
    kept a signed copy per device for as long as the hub ran (about 1 KB each, measured)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._entries: OrderedDict[str, tuple[int, bytes]] = OrderedDict()

    def get(self, device_id: str, version: int) -> bytes | None:
        entry = self._entries.get(device_id)
        if entry is None or entry[0] != version:
            return None
        self._entries.move_to_end(device_id)
        return entry[1]

    def put(self, device_id: str, version: int, body: bytes) -> None:
        current = self._entries.get(device_id)
        if current is None or current[0] <= version:
            self._entries[device_id] = (version, body)
            self._entries.move_to_end(device_id)
            if len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


async def current_version(app: web.Application, device: DeviceAuth) -> int:
    """The version to serve; re-issues (bumps) a manifest past half its lifetime."""
    config = app[CONFIG]
    now = app[CLOCK]()
    if (
        device.manifest_signed_version == device.manifest_version
        and device.manifest_signed_at is not None
        and now - device.manifest_signed_at > config.manifest_lifetime / 2
    ):
        async with app[DB].transaction() as tx:
            return (await manifests.bump_versions(tx, [device.id]))[device.id]
    return device.manifest_version


async def signed_manifest(app: web.Application, device: DeviceAuth, version: int) -> bytes:
    cache = app[MANIFEST_CACHE]
    cached = cache.get(device.id, version)
    if cached is not None:
        return cached
    db = app[DB]
    config = app[CONFIG]
    now = app[CLOCK]()
    commune = await communes.broadcast_settings(db, device.commune)
    if commune is None:
        raise RuntimeError(f"device {device.id} belongs to a missing commune")
    manifest = Manifest(
        device_id=device.id,
        version=version,
        issued_at=now,
        expires_at=now + config.manifest_lifetime,
        device_kind=device.kind,
        commune=device.commune,
        commune_name=await communes.name_of(db, device.commune),
        windows=commune.windows.for_kind(device.kind),
        weekly_windows=commune.windows.weekly_for_kind(device.kind),
        # Past dates are left out (from yesterday on: a window of yesterday's exception may
        # still be open past midnight); every date still to come is carried.
        window_exceptions=commune.windows.exceptions_for_kind(
            device.kind, now.astimezone(VN_TZ).date() - timedelta(days=1)
        ),
        volume=commune.volume,
        profile=device.profile,
        resume_mode=config.resume_mode,
        bulletins=await bulletins_for_device(db, device.id, device.commune, device.kind, now),
        cancelled=await manifests.cancelled_emergencies_for_device(
            db, device.id, device.commune, now - config.cancelled_memory
        ),
        hub_urls=await hub_urls(db),
        frame_interval_s=(
            int(config.frame_interval.total_seconds())
            if config.frame_interval is not None and device.kind is DeviceKind.BOARD
            else None
        ),
    )
    body = app[KEYRING].signer.sign(manifest).model_dump_json().encode("utf-8")
    cache.put(device.id, version, body)
    # Remember when this version was first signed: the refresher re-issues it before expiry.
    async with db.transaction() as tx:
        await manifests.mark_signed(tx, device.id, version, now)
    return body


async def refresh_stale_manifests(app: web.Application) -> int:
    """Bump and announce manifests past half their lifetime, for devices that only listen."""
    config = app[CONFIG]
    cutoff = app[CLOCK]() - config.manifest_lifetime / 2
    async with app[DB].transaction() as tx:
        ids = await manifests.signed_before(tx, cutoff)
        versions = await manifests.bump_versions(tx, ids) if ids else {}
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
                cutoff = app[CLOCK]() - app[CONFIG].health_retention
                async with app[DB].transaction() as tx:
                    await reports.forget_health_received_before(tx, cutoff)
            except Exception:
                log.exception("manifest refresh failed; retrying next interval")
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop(), name="manifest-refresher")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
