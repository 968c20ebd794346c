"""Content (nội dung): media fetched and verified into the cache, what it becomes on this
device (a document's text and pages, a picture fitted to the screen, speech), and room on
the SD card kept for all of it.

Nothing here is on the path to the loudspeaker: the programme plays what the cache already
holds and verified, while this part fetches what is missing, makes renditions and speech in
worker threads and subprocesses, re-checks what is there and says (as a fault or in the
status, with a reason) when something cannot be had or cannot air here.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from loa_contract import BulletinKind, DeviceKind, Fault, ManifestBulletin, MediaRef, Priority

from .cache import CacheIntegrityError, MediaCache
from .disk import CachedObject, free_bytes, mib, plan_room
from .hubclient import HubRejected, HubUnavailable
from .parts import AgentPart
from .renditions import (
    Rendition,
    RenditionError,
    document_key,
    image_key,
    make_document,
    make_image,
)
from .speech import speech_key

if TYPE_CHECKING:
    from .agent import Agent

log = logging.getLogger("edge_agent")

#: The longest pause between attempts to fetch media that is still missing.
MISSING_MEDIA_PAUSE_MAX_S = 15 * 60.0
_RANK = {Priority.NORMAL: 0, Priority.PRIORITY: 1, Priority.EMERGENCY: 2}
#: Why a document cannot be read aloud or shown as text.
NO_WORDS = "the document has no text to read (a scanned PDF holds only pictures of its pages)"


def _make_rendition(
    cache: MediaCache,
    kind: BulletinKind,
    source: Path,
    key: str,
    screen: tuple[int, int] | None,
) -> Rendition:
    """Blocking: make the rendition in a work folder, then move it into the cache."""
    with cache.work_dir() as work:
        if kind is BulletinKind.IMAGE:
            assert screen is not None
            rendition = make_image(source, key, work, screen)
        else:
            rendition = make_document(source, key, work, screen)
        cache.adopt(work, rendition.files(), (f"{key}.json", rendition.to_json()))
    return rendition


def _load_rendition(cache: MediaCache, key: str) -> Rendition | None:
    """Blocking: a rendition made before (by a previous run), if whole and of this version."""
    index = cache.derived_path(key, ".json")
    if index is None:
        return None
    try:
        rendition = Rendition.from_json(index.read_bytes())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if rendition.key != key or any(not (cache.derived / f).is_file() for f in rendition.files()):
        return None  # a part went missing: made again
    return rendition


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
        #: Renditions ready, by key (renditions.py), and those that could not be made, with
        #: the reason (not tried again until the agent restarts).
        self.renditions: dict[str, Rendition] = {}
        self.render_failures: dict[str, str] = {}
        #: Renditions are made apart from downloads (a long document must not hold up an
        #: emergency's file), one job at a time; a request meanwhile makes it go round again.
        self._render_lock = asyncio.Lock()
        self._render_again = False

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
            if sha not in needed and not sha.startswith(("speech:", "render:")):
                self._clear_room_refusal(sha)
        found_before = cache.corrupt_found
        results = await asyncio.gather(*(self._fetch_one(ref, p) for ref, p in missing))
        changed_on_disk = cache.corrupt_found - found_before
        if changed_on_disk:
            agent.state_fault(
                Fault.CACHE_CORRUPT, f"{changed_on_disk} cached objects changed on disk"
            )
        self._prepare_soon()
        spoken = await self._synthesize_speech()
        freed = 0
        if agent.manifest is not None:
            # Keep everything a held bulletin still needs; the rest is dead weight on the SD card.
            freed = cache.evict(set(needed))
            freed += cache.evict_derived(set(self._wanted_renditions()) | spoken)
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

    # ------------------------------------------------------------------ renditions

    def _plan(self, bulletin: ManifestBulletin) -> tuple[str, tuple[int, int] | None] | None:
        """The rendition this device makes of the bulletin's file, if it makes one: its key
        and the screen size it is made for. A document's pages at the screen's size on
        boards that show pages, its text only (no size) on speakers and small panels; a
        picture fitted to the screen."""
        media = bulletin.media
        profile = self.agent.profile
        if media is None or bulletin.kind not in profile.kinds:
            return None
        display = profile.display if profile.device_kind is DeviceKind.BOARD else None
        if bulletin.kind is BulletinKind.DOCUMENT:
            screen = display.screen_size if display is not None and display.shows_pages else None
            return document_key(media.sha256, screen), screen
        if bulletin.kind is BulletinKind.IMAGE and display is not None:
            return image_key(media.sha256, display.screen_size), display.screen_size
        return None

    def rendition_key(self, bulletin: ManifestBulletin) -> str | None:
        plan = self._plan(bulletin)
        return plan[0] if plan is not None else None

    def rendition(self, bulletin: ManifestBulletin) -> Rendition | None:
        """The bulletin's rendition if it is ready (memory only: the programme asks)."""
        key = self.rendition_key(bulletin)
        return self.renditions.get(key) if key is not None else None

    def words(self, bulletin: ManifestBulletin) -> str | None:
        """The words a text or document bulletin airs as on this device: read aloud by a
        speaker, shown by a board as text. A document's file is read for them; its typed
        text stands in when the file has none or cannot be read. None while the file is not
        read yet (or for other kinds), "" when there are no words at all."""
        if bulletin.kind is BulletinKind.TEXT:
            return bulletin.text or ""
        if bulletin.kind is not BulletinKind.DOCUMENT:
            return None
        typed = (bulletin.text or "").strip()
        key = self.rendition_key(bulletin)
        if key is None:
            return typed
        rendition = self.renditions.get(key)
        if rendition is not None and rendition.text and rendition.text.strip():
            return rendition.text
        if rendition is not None or key in self.render_failures:
            return typed
        return None  # the file is not here or not read yet

    def unplayable(self) -> dict[str, str]:
        """Held bulletins that cannot air on this device, each with the reason: a file that
        could not be made into anything here, a document with no words where they are what
        airs. Shown in the status; a speaker's are its speech_failed fault too."""
        found: dict[str, str] = {}
        profile = self.agent.profile
        for bulletin in self.agent.bulletins().values():
            key = self.rendition_key(bulletin)
            if key is None:
                continue
            failure = self.render_failures.get(key)
            rendition = self.renditions.get(key)
            if rendition is not None and (rendition.pages or rendition.image or rendition.frames):
                continue
            if bulletin.kind is BulletinKind.DOCUMENT and self.words(bulletin) != "":
                continue  # words to air, or not read yet
            if failure is not None:
                found[bulletin.id] = failure
            elif rendition is not None:
                where = "speaker" if profile.device_kind is DeviceKind.SPEAKER else "board"
                found[bulletin.id] = f"{NO_WORDS}: this {where} has nothing to air"
        return found

    def _wanted_renditions(self) -> dict[str, tuple[ManifestBulletin, tuple[int, int] | None]]:
        """Renditions the held bulletins need here: key -> (the bulletin using it with the
        highest priority, the screen size it is made for)."""
        agent = self.agent
        wanted: dict[str, tuple[ManifestBulletin, tuple[int, int] | None]] = {}
        for bulletin in agent.bulletins().values():
            plan = self._plan(bulletin)
            if plan is None or bulletin.id in agent.cancelled:
                continue
            key, screen = plan
            held = wanted.get(key)
            if held is None or _RANK[bulletin.priority] > _RANK[held[0].priority]:
                wanted[key] = (bulletin, screen)
        return wanted

    def _prepare_soon(self) -> None:
        """Make what the held files become here, in the background."""
        if self._render_lock.locked():
            self._render_again = True
            return
        self.agent.background(self._prepare(), "renditions")

    async def _prepare(self) -> None:
        agent = self.agent
        async with self._render_lock:
            while True:
                self._render_again = False
                if await self._make_renditions():
                    agent.programme.held_changed(content=True)
                    agent.programme.wake.set()
                    agent.changed()
                    if agent.speech is not None:
                        self.ensure()  # a document's words were read: speech is made of them
                if not self._render_again:
                    return

    async def _make_renditions(self) -> bool:
        """Make (or find, from a previous run) what the held files become here, the most
        urgent first; True when any became ready."""
        agent = self.agent
        cache = agent.cache
        wanted = self._wanted_renditions()
        for key in list(self.renditions):
            if key not in wanted:
                del self.renditions[key]
        for key in list(self.render_failures):
            if key not in wanted:
                del self.render_failures[key]
        for key in list(self.refused_for_room):
            if key.startswith("render:") and key.removeprefix("render:") not in wanted:
                self._clear_room_refusal(key)
        made = False
        floor = agent.config.disk_reserve_bytes // 4
        for key, (bulletin, screen) in sorted(
            wanted.items(), key=lambda kv: -_RANK[kv[1][0].priority]
        ):
            if key in self.renditions or key in self.render_failures:
                continue
            media = bulletin.media
            assert media is not None  # only bulletins with a file have a rendition
            source = cache.path_for(media.sha256)
            if source is None:
                continue  # not fetched (or not verified) yet
            rendition = await asyncio.to_thread(_load_rendition, cache, key)
            if rendition is None:
                free = await asyncio.to_thread(free_bytes, cache.root)
                if free <= floor:
                    self._refuse_for_room(
                        f"render:{key}",
                        1,
                        f"{bulletin.kind.value} {bulletin.id} not prepared: {mib(free)} free, "
                        f"{mib(floor)} kept for the database and logs",
                    )
                    continue
                rendition = await self._render(key, bulletin, source, screen)
            if rendition is not None:
                self.renditions[key] = rendition
                self._clear_room_refusal(f"render:{key}")
                made = True
        return made

    async def _render(
        self,
        key: str,
        bulletin: ManifestBulletin,
        source: Path,
        screen: tuple[int, int] | None,
    ) -> Rendition | None:
        agent = self.agent
        started = time.monotonic()
        try:
            rendition = await asyncio.to_thread(
                _make_rendition, agent.cache, bulletin.kind, source, key, screen
            )
        except RenditionError as exc:
            reason = f"{bulletin.kind.value} {bulletin.id}: {exc}"
            log.error("cannot prepare %s", reason)
            self.render_failures[key] = str(exc)
            agent.counters.rejected_media += 1
            agent.counters.last_rejection = reason
            agent.changed()
            return None
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            self._refuse_for_room(
                f"render:{key}", 1, f"{bulletin.kind.value} {bulletin.id} not prepared: {exc}"
            )
            return None
        log.info(
            "prepared %s %s in %.2f s (%d files)",
            bulletin.kind.value,
            bulletin.id,
            time.monotonic() - started,
            len(rendition.files()),
        )
        return rendition

    # ------------------------------------------------------------------ speech

    async def _synthesize_speech(self) -> set[str]:
        """Speech for every text a speaker airs; returns the keys of all that it needs."""
        agent = self.agent
        speech = agent.speech
        if speech is None or agent.profile.device_kind is not DeviceKind.SPEAKER:
            return set()
        cache = agent.cache
        texts = {}
        for bulletin in agent.bulletins().values():
            words = self.words(bulletin)
            if words and words.strip():
                texts[bulletin.id] = words
        wanted = {speech_key(speech.engine_id, text) for text in texts.values()}
        for key in list(self.refused_for_room):
            if key.startswith("speech:") and key.removeprefix("speech:") not in wanted:
                self._clear_room_refusal(key)
        for bulletin_id in list(self.speech_failures):
            if bulletin_id not in texts:
                del self.speech_failures[bulletin_id]
        # A document with nothing to read is said so, never skipped in silence.
        for bulletin_id, reason in self.unplayable().items():
            self.speech_failures[bulletin_id] = reason
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
                # Made in a private folder the start-up sweep removes if a kill cuts it.
                with cache.work_dir() as work:
                    tmp = work / "speech.wav"
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
        return wanted
