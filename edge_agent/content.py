"""Content (nội dung): media fetched and verified into the cache, speech made on the device,
and room on the SD card kept for both.

Nothing here is on the path to the loudspeaker: the programme plays what the cache already
holds and verified, while this part fetches what is missing, re-checks what is there and
says (as a fault with a reason) when something cannot be had.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING

import aiohttp

from loa_contract import BulletinKind, DeviceKind, Fault, MediaRef, Priority

from .cache import CacheIntegrityError
from .disk import CachedObject, free_bytes, mib, plan_room
from .hubclient import HubRejected, HubUnavailable
from .parts import AgentPart
from .speech import speech_key

if TYPE_CHECKING:
    from .agent import Agent

log = logging.getLogger("edge_agent")

#: The longest pause between attempts to fetch media that is still missing.
MISSING_MEDIA_PAUSE_MAX_S = 15 * 60.0
_RANK = {Priority.NORMAL: 0, Priority.PRIORITY: 1, Priority.EMERGENCY: 2}


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC from the kernel, or SQLite saying the same in its own words."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return "disk is full" in str(exc) or "database or disk is full" in str(exc)


class Content(AgentPart):
    def __init__(self, agent: Agent) -> None:
        super().__init__(agent)
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(agent.config.max_parallel_downloads)
        self._lock = asyncio.Lock()
        #: Media (by sha256) and speech (by key) refused for lack of room, with the reason;
        #: each clears when it is had. Shown as the `disk_full` fault.
        self.refused_for_room: dict[str, str] = {}
        #: The bytes each refused item still needs, to notice when room has come back.
        self._room_wanted: dict[str, int] = {}
        #: Speech that could not be made for another reason (engine missing, crashed).
        self.speech_failures: dict[str, str] = {}
        #: When each bulletin last started on air here: eviction deletes the least recent.
        self.last_started: dict[str, datetime] = {}

    # ------------------------------------------------------------------ what is needed

    def needed_media(self) -> dict[str, tuple[MediaRef, Priority]]:
        """Media of held bulletins this device can play, with the highest priority that uses
        each: emergencies are fetched first, and evict lower content when room is short."""
        agent = self.agent
        needed: dict[str, tuple[MediaRef, Priority]] = {}
        kinds = set(agent.profile.kinds)
        for bulletin in agent.bulletins().values():
            media = bulletin.media
            if media is None or bulletin.kind not in kinds or bulletin.id in agent.cancelled:
                continue
            held = needed.get(media.sha256)
            if held is None or _RANK[bulletin.priority] > _RANK[held[1]]:
                needed[media.sha256] = (media, bulletin.priority)
        return needed

    def _cached_objects(self) -> list[CachedObject]:
        agent = self.agent
        now = agent.clock.now()
        users: dict[str, list[tuple[Priority, bool, datetime | None]]] = {}
        for bulletin in agent.bulletins().values():
            if bulletin.media is None:
                continue
            expired = bulletin.id in agent.cancelled or bulletin.schedule.valid_until <= now
            users.setdefault(bulletin.media.sha256, []).append(
                (bulletin.priority, expired, self.last_started.get(bulletin.id))
            )
        found = []
        for sha, size in agent.cache.objects_on_disk():
            uses = users.get(sha, [])
            live = [u for u in uses if not u[1]]
            aired = [u[2] for u in uses if u[2] is not None]
            found.append(
                CachedObject(
                    sha256=sha,
                    size=size,
                    priority=max((u[0] for u in live or uses), key=_RANK.__getitem__)
                    if uses
                    else None,
                    expired=bool(uses) and not live,
                    last_aired=max(aired) if aired else None,
                )
            )
        return found

    # ------------------------------------------------------------------ the cache loop

    def ensure(self, *, verify: bool = False) -> None:
        """Fetch (and with `verify`, re-hash) in the background; never waits."""
        self.agent.background(self._fetch(verify), "content")

    async def run(self) -> None:
        """Notice cached objects changed since verified (cheap), re-hash everything now and
        then (not cheap, in a thread), fetch again what is missing, and notice when room has
        come back on the card: none of it is on the path to the loudspeaker."""
        agent = self.agent
        config = agent.config
        rehashed_at = time.monotonic()
        # Media still missing (deleted as corrupt while the hub was away, a download that
        # failed) is asked for again with a growing pause, so a file the hub keeps serving
        # wrong does not cost a 3G link its size every few seconds.
        retry_missing_at = 0.0
        missing_pause = config.cache_check_interval_s
        while True:
            await asyncio.sleep(config.cache_check_interval_s)
            if self._lock.locked():
                continue  # a sync is under way; it sees the same files
            now = time.monotonic()
            if now - rehashed_at >= config.cache_rehash_interval_s:
                rehashed_at = now
                self.ensure(verify=True)
                continue
            if self._room_wanted and await self._room_returned():
                log.info("room on the card came back; fetching what was refused")
                # A manifest the card could not take while full is asked for again too.
                agent.sync.schedule_manifest_fetch()
                self.ensure()
                continue
            changed = agent.cache.changed_objects()
            if changed:
                agent.programme.held_changed(content=True)
                self.ensure()
            elif not any(not agent.cache.has(sha) for sha in self.needed_media()):
                missing_pause = config.cache_check_interval_s
            elif now >= retry_missing_at:
                retry_missing_at = now + missing_pause
                missing_pause = min(missing_pause * 2, MISSING_MEDIA_PAUSE_MAX_S)
                self.ensure()

    async def _room_returned(self) -> bool:
        free = await asyncio.to_thread(free_bytes, self.agent.cache.root)
        smallest = min(self._room_wanted.values())
        return free - self.agent.disk_reserve >= smallest

    async def _fetch(self, verify: bool) -> None:
        # One sync at a time: a push and a manifest arriving together would otherwise fetch
        # and synthesize the same things twice, racing on the same files.
        async with self._lock:
            await self._fetch_locked(verify)

    async def _fetch_locked(self, verify: bool) -> None:
        agent = self.agent
        cache = agent.cache
        corrupt: list[str] = []
        if verify:
            corrupt = await cache.verify_all()
            for sha in corrupt:
                log.warning("cache object %s was corrupt; fetching it again", sha)
            if corrupt:
                agent.state_fault(
                    Fault.CACHE_CORRUPT, f"{len(corrupt)} objects failed their sha256"
                )
        needed = self.needed_media()
        # `has` is False too for an object changed since it was verified: `fetch` hashes it
        # again and keeps it, or deletes it and downloads it again.
        missing = [item for sha, item in needed.items() if not cache.has(sha)]
        # Emergencies first, then priority bulletins, the smallest first within each: the
        # download slots go to what matters most, and the most items are ready soonest.
        missing.sort(key=lambda item: (-_RANK[item[1]], item[0].size))
        for sha in list(self.refused_for_room):
            if sha not in needed and not sha.startswith("speech:"):
                self._clear_room_refusal(sha)
        found_before = cache.corrupt_found
        results = await asyncio.gather(*(self._fetch_one(ref, p) for ref, p in missing))
        changed_on_disk = cache.corrupt_found - found_before
        if changed_on_disk:
            agent.state_fault(
                Fault.CACHE_CORRUPT, f"{changed_on_disk} cached objects changed on disk"
            )
        await self._synthesize_speech()
        freed = 0
        if agent.manifest is not None:
            # Keep everything a held bulletin still needs; the rest is dead weight on the SD card.
            freed = cache.evict(set(needed))
            if freed:
                log.info("cache eviction freed %d bytes", freed)
        if corrupt or changed_on_disk or any(results) or freed:
            # What is playable changed (fetched, found corrupt, evicted).
            agent.programme.held_changed(content=True)
        if any(results):
            agent.programme.wake.set()
        agent.changed()

    async def _fetch_one(self, ref: MediaRef, priority: Priority) -> bool:
        agent = self.agent
        downloads = agent.counters.downloads
        async with self._slots:
            if not await self._make_room(ref, priority):
                return False

            def progress(done: int, total: int) -> None:
                downloads[ref.sha256] = (done, total)

            progress(agent.cache.partial_size(ref.sha256), ref.size)
            try:
                await agent.cache.fetch(agent.client, ref, progress)
                self._clear_room_refusal(ref.sha256)
                return True
            except CacheIntegrityError as exc:
                agent.counters.rejected_media += 1
                agent.sync.refuse(f"media {ref.sha256[:12]}", str(exc))
            except OSError as exc:
                if not is_disk_full(exc):
                    raise
                # A half-written file that cannot be finished only takes the room the
                # database and speech need: it goes, and the download is refused.
                agent.cache.discard_partial(ref.sha256)
                self._refuse_for_room(ref.sha256, ref.size, f"the card filled up: {exc}")
            except (HubUnavailable, HubRejected, aiohttp.ClientError) as exc:
                log.info("media %s not fetched yet: %s", ref.sha256[:12], exc)
            finally:
                downloads.pop(ref.sha256, None)
            return False

    async def _make_room(self, ref: MediaRef, priority: Priority) -> bool:
        """True when `ref` may be downloaded: it fits, or was made to fit by evicting."""
        agent = self.agent
        cache = agent.cache
        reserve = agent.disk_reserve
        need = ref.size - cache.partial_size(ref.sha256)
        # Other downloads running now will take their remaining bytes too.
        promised = sum(
            total - done
            for sha, (done, total) in agent.counters.downloads.items()
            if sha != ref.sha256
        )
        free = await asyncio.to_thread(free_bytes, cache.root)
        current = agent.programme.current
        keep = {ref.sha256}
        if current is not None and current.bulletin is not None and current.bulletin.media:
            keep.add(current.bulletin.media.sha256)
        plan = plan_room(
            need_bytes=need,
            free=max(0, free - promised),
            reserve=reserve,
            for_priority=priority,
            cached=self._cached_objects(),
            keep=frozenset(keep),
        )
        if not plan.fits:
            self._refuse_for_room(
                ref.sha256,
                need,
                f"media {ref.sha256[:12]} ({mib(ref.size)}, {priority.value}) does not fit: "
                f"{mib(free)} free, {mib(reserve)} kept in reserve, "
                f"{mib(plan.short_by)} short after evicting all it may",
            )
            return False
        if plan.evict:
            freed = sum(cache.remove(sha) for sha in plan.evict)
            log.warning(
                "evicted %d cached objects (%s) to make room for %s",
                len(plan.evict),
                mib(freed),
                ref.sha256[:12],
            )
            agent.programme.held_changed(content=True)
        return True

    def _refuse_for_room(self, key: str, need: int, reason: str) -> None:
        if self.refused_for_room.get(key) != reason:
            log.error("disk full: %s", reason)
        self.refused_for_room[key] = reason
        self._room_wanted[key] = need
        self.agent.changed()

    def _clear_room_refusal(self, key: str) -> None:
        if self.refused_for_room.pop(key, None) is not None:
            self._room_wanted.pop(key, None)
            self.agent.changed()

    # ------------------------------------------------------------------ speech

    async def _synthesize_speech(self) -> None:
        agent = self.agent
        speech = agent.speech
        if speech is None or agent.profile.device_kind is not DeviceKind.SPEAKER:
            return
        cache = agent.cache
        texts = {}
        for bulletin in agent.bulletins().values():
            if bulletin.kind in (BulletinKind.TEXT, BulletinKind.DOCUMENT) and bulletin.text:
                texts[bulletin.id] = bulletin.text
        wanted = {speech_key(speech.engine_id, text) for text in texts.values()}
        for key in list(self.refused_for_room):
            if key.startswith("speech:") and key.removeprefix("speech:") not in wanted:
                self._clear_room_refusal(key)
        for bulletin_id in list(self.speech_failures):
            if bulletin_id not in texts:
                del self.speech_failures[bulletin_id]
        # A quarter of the reserve stays for the database and the logs whatever speech needs.
        floor = agent.disk_reserve // 4
        for bulletin_id, text in texts.items():
            key = speech_key(speech.engine_id, text)
            if cache.derived_path(key, ".wav") is not None:
                continue
            room_key = f"speech:{key}"
            free = await asyncio.to_thread(free_bytes, cache.root)
            if free <= floor:
                self._refuse_for_room(
                    room_key,
                    1,
                    f"speech for {bulletin_id} not made: {mib(free)} free, "
                    f"{mib(floor)} kept for the database and logs",
                )
                continue
            try:
                with cache.scratch(".wav") as tmp:
                    await speech.synthesize(text, tmp)
                    await cache.put_file(tmp, key)
            except Exception as exc:
                if is_disk_full(exc):
                    self._refuse_for_room(
                        room_key, 1, f"speech for {bulletin_id} not made: the card is full"
                    )
                else:
                    log.error("speech for %s failed: %s", bulletin_id, exc)
                    self.speech_failures[bulletin_id] = str(exc)[:300]
                    agent.changed()
                continue
            self._clear_room_refusal(room_key)
            self.speech_failures.pop(bulletin_id, None)
            agent.programme.held_changed(content=True)
            agent.programme.wake.set()
