"""The edge agent: sync, cache, decide, play, report.

The core decides (the pure scheduler); the backends obey (one Player). One task — the
programme loop — owns everything about what plays: player events, commands and pushes only
enqueue work and wake it, so no two coroutines ever drive the player at once.
Many agents can live in one process (the fleet simulator): no module state.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import aiohttp
from pydantic import BaseModel, ConfigDict

from loa_contract import (
    BulletinKind,
    Command,
    CommandDocument,
    DeviceKind,
    EmergencyCancel,
    EmergencyStart,
    Manifest,
    ManifestBulletin,
    ManifestReady,
    MediaRef,
    NowPlayingInfo,
    PlayOutcome,
    Priority,
    Resync,
    SetVolume,
    SignatureError,
    StopPlayback,
    TestTone,
    parse_hhmm,
)

from .cache import CacheIntegrityError, MediaCache
from .clock import ALIVE_KEY as CLOCK_ALIVE
from .clock import SETTING_KEY as CLOCK_SETTING
from .clock import ClockJudge, Confirmation, NtpProbe
from .health import system_sample
from .hubclient import HubClient, HubRejected, HubUnavailable
from .identity import Identity
from .players.base import EventType, PlaybackEvent, Player, PlayItem
from .profile import HardwareProfile
from .relay import NullRelay, Relay
from .rpi_health import WIRE_FIELDS as PI_WIRE_FIELDS
from .rpi_health import PiHealth
from .scheduler import EMERGENCY_SLOT, decide
from .scheduler_types import (
    Action,
    Candidate,
    Decision,
    ParsedWindow,
    Playing,
    ScheduleInput,
    Suspended,
)
from .sdnotify import Watchdog
from .speech import SpeechEngine, speech_key
from .store import COMMAND_GRACE, AgentStore, StaleManifest
from .test_pattern import ensure_test_pattern
from .tone import ensure_test_tone

log = logging.getLogger("edge_agent")

TEST_TONE_ID = "__test_tone__"
#: Faults about state found damaged or altered stay in health this long after the event, so
#: the hub sees them whatever its sampling interval.
STATE_FAULT_SHOWN_S = 24 * 3600.0
#: The longest pause between attempts to fetch media that is still missing.
MISSING_MEDIA_PAUSE_MAX_S = 15 * 60.0


class AgentConfig(BaseModel):
    """Run-time settings of one agent (the CLI fills them; tests shorten the intervals)."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path
    http_host: str = "0.0.0.0"
    #: Local status endpoint; None runs no HTTP server (the fleet simulator).
    http_port: int | None = 8081
    poll_interval_s: float = 30.0
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    health_interval_s: float = 60.0
    report_retry_s: float = 5.0
    ws_heartbeat_s: float = 20.0
    #: A Pi has no RTC: windowed items wait until the time is trusted (edge_agent/clock.py).
    require_clock_confirmation: bool = True
    #: How often NTP status is asked again and a confirmed time persisted.
    clock_check_interval_s: float = 10.0
    max_parallel_downloads: int = 2
    #: Spread manifest fetches after a push over this many seconds, so a province-wide
    #: publish does not bring every device to the hub in the same instant. An emergency
    #: does not wait for it: its push carries everything needed to play.
    manifest_fetch_jitter_s: float = 3.0
    #: The same after an emergency start or cancel, spread wider: the device already holds
    #: what matters (the signed bulletin, or the cancel), and a province-wide emergency must
    #: not bring thousands of devices to the hub for their manifests in the same 3 seconds.
    emergency_manifest_jitter_s: float = 30.0
    #: How often cached objects are checked for a changed identity (one stat() each), and
    #: how often every object is hashed again in the background (bits rotting on the card
    #: change no metadata). See edge_agent/cache.py.
    cache_check_interval_s: float = 10.0
    cache_rehash_interval_s: float = 6 * 3600.0


@dataclass
class _Current:
    """What the programme loop has started and not yet closed."""

    play_id: int | None  # None for a test tone: it is not a bulletin airing
    item: PlayItem
    slot: str
    started_at: datetime
    bulletin: ManifestBulletin | None


@dataclass
class Counters:
    rejected_manifests: int = 0
    rejected_commands: int = 0
    rejected_media: int = 0
    last_rejection: str | None = None
    #: Local controls refused because an emergency was on air (see Agent.request).
    refused_controls: int = 0
    downloads: dict[str, tuple[int, int]] = field(default_factory=dict)


#: Who asked for a control: the commune's LAN page or a technician ("local"), or a command
#: the hub signed ("hub").
ControlOrigin = Literal["local", "hub"]


class ControlRefused(Exception):
    """A control the agent will not carry out; `code` is stable, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait for `event` at most `timeout` seconds; True if it was set.

    Not `asyncio.wait_for`: on Python 3.11 it can swallow a cancellation that arrives as the
    event is set, and a task cancelled at shutdown then runs on for ever.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
            return True
    return False


class Agent:
    """One device: `await agent.start()`, then it runs until `await agent.stop()`."""

    def __init__(
        self,
        config: AgentConfig,
        identity: Identity,
        profile: HardwareProfile,
        player: Player,
        *,
        speech: SpeechEngine | None = None,
        clock: ClockJudge | None = None,
        session: aiohttp.ClientSession | None = None,
        relay: Relay | None = None,
        watchdog: Watchdog | None = None,
        pi_health: PiHealth | None = None,
    ) -> None:
        self.config = config
        # Hardware hooks (issue #4): amplifier relay, systemd watchdog, Pi power/SD probes.
        self.relay: Relay = relay or NullRelay()
        self.watchdog = watchdog
        self.pi_health = pi_health
        self.hardware: dict[str, Any] = {}
        self.identity = identity
        self.profile = profile
        self.player = player
        self.speech = speech
        self.clock = clock or ClockJudge(
            require_confirmation=config.require_clock_confirmation, ntp=NtpProbe()
        )
        # Clock trust (issue #4): emergencies pushed while the time is unconfirmed are judged
        # on the device's own timeline, shifted by (system clock - the command's issue time).
        self._emergency_shift: dict[str, timedelta] = {}
        self._clock_saved_at = 0.0
        self._alive_saved_at = -1e9
        self.keys = identity.trusted_keys()
        self.client = HubClient(
            identity.hub_url, identity.device_id, identity.device_secret, session=session
        )
        self.cache = MediaCache(config.data_dir / "cache")
        self.counters = Counters()
        self.store: AgentStore | None = None

        self._manifest: Manifest | None = None
        self._etag: str | None = None
        self._emergencies: dict[str, ManifestBulletin] = {}
        self._cancelled: set[str] = set()
        self._aired: dict[tuple[str, str], int] = {}
        #: Emergencies begun here, and when each last aired in full (ScheduleInput).
        self._started_emergencies: set[str] = set()
        self._last_aired: dict[str, datetime] = {}
        #: Command ids seen, with their expiry: the replay check, in memory so a pushed
        #: emergency waits for no disk. `_unsaved_commands` are written after the player
        #: started (`_save_commands`), with the emergency each one carries.
        self._seen_commands: dict[str, datetime] = {}
        self._unsaved_commands: list[tuple[str, datetime, ManifestBulletin | None, str]] = []
        self._manifest_after_play = False
        #: The scheduler's view of the held bulletins, built again only when the manifest, the
        #: held emergencies, the cache or the clock's anchoring change (`_held_changed`), and
        #: then only for the bulletins that changed: bulletin id -> (the bulletin it was built
        #: from, its validity shift, its Candidate or None while it cannot play here).
        self._candidates: tuple[Candidate, ...] | None = None
        self._candidate_of: dict[str, tuple[ManifestBulletin, timedelta, Candidate | None]] = {}
        self._windows: tuple[ParsedWindow, ...] = ()
        self._windows_of: Manifest | None = None  # the manifest `_windows` were parsed from
        self._suspended: Suspended | None = None
        self._current: _Current | None = None
        self._volume_override: int | None = None
        self._pending_controls: deque[tuple[str, ControlOrigin]] = deque()
        self._player_events: deque[PlaybackEvent] = deque()
        self._wake = asyncio.Event()
        self._report_wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._download_tasks: set[asyncio.Task[Any]] = set()
        self._download_slots = asyncio.Semaphore(config.max_parallel_downloads)
        self._content_lock = asyncio.Lock()
        self._manifest_fetch: asyncio.Task[None] | None = None
        self._manifest_wanted = False
        self._last_decision: Decision | None = None
        self._last_sync_at: datetime | None = None
        self._started = asyncio.Event()
        #: Every item that starts playing, in order; tests and benchmarks await it.
        self.play_started: asyncio.Queue[PlayItem] = asyncio.Queue()
        #: Called with every verified command addressed to this device, as it arrives (the
        #: fleet simulator times push arrival with it).
        self.on_command: Callable[[Command], None] | None = None
        #: Called as each pushed frame arrives, before it is verified (the simulator times
        #: the hub's delivery with it).
        self.on_frame: Callable[[], None] | None = None
        self._watchers: set[asyncio.Event] = set()
        #: Faults about damaged or altered state ("state_rebuilt", "manifest_tampered",
        #: "emergency_tampered", "cache_corrupt") -> when (monotonic) last seen.
        self._state_faults: dict[str, float] = {}

    # ------------------------------------------------------------------ lifetime

    async def start(self) -> None:
        data = self.config.data_dir
        data.mkdir(parents=True, exist_ok=True)
        self.store = await AgentStore.open(
            data / "agent.sqlite3", device_id=self.identity.device_id
        )
        if self.store.rebuilt is not None:
            self._state_fault("state_rebuilt", self.store.rebuilt)
        await self._restore_clock()
        bad = await self.cache.verify_all()
        for sha in bad:
            log.warning("cache object %s failed its sha256 check; deleted, will fetch again", sha)
        if bad:
            self._state_fault("cache_corrupt", f"{len(bad)} cached objects failed their sha256")
        now = self.clock.now()
        for play in await self.store.recover_open_plays(now):
            log.warning("closed play of %s interrupted by a restart", play.bulletin_id)
        # Only what verifies again against the pinned keys is obeyed, never a parsed copy.
        verified = await self.store.verified_manifest(self.keys, self.identity.device_id)
        if verified.manifest is not None:
            self._manifest = verified.manifest
            self._etag = f'"{verified.manifest.version}"'
        if verified.refused:
            self._state_fault("manifest_tampered", "; ".join(verified.refused))
        held, refused = await self.store.verified_emergencies(
            self.keys, self.identity.device_id, self.commune()
        )
        if refused:
            self._state_fault("emergency_tampered", "; ".join(refused))
        for bulletin in held:
            self._emergencies[bulletin.id] = bulletin
        self._cancelled = set(await self.store.cancelled())
        if self._manifest is not None:
            self._cancelled |= set(self._manifest.cancelled)
        self._suspended = await self.store.suspended()
        self._aired = await self.store.aired_counts(now - timedelta(days=2))
        started, self._last_aired = await self.store.emergency_airings(now - timedelta(days=2))
        self._started_emergencies = set(started)
        self._seen_commands = await self.store.seen_commands()
        self._held_changed()
        stored_volume = await self.store.get_setting("volume")
        self._volume_override = int(stored_volume) if stored_volume is not None else None
        self.player.set_event_sink(self._on_player_event)

        # The programme starts from cache at once: the hub may be far away or gone.
        self._spawn(self._programme_loop(), "programme")
        self._spawn(self._sync_loop(), "sync")
        self._spawn(self._report_loop(), "reports")
        self._spawn(self._health_loop(), "health")
        self._spawn(self._clock_loop(), "clock")
        self._spawn(self._cache_loop(), "cache")
        self._ensure_content()
        if verified.refused:
            self._schedule_manifest_fetch()  # a fresh signed copy replaces the refused one
        self._started.set()

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._download_tasks]
        for task in tasks:
            task.cancel()
        if tasks:
            # A shutdown must finish even if some I/O ignores its cancellation.
            _, stuck = await asyncio.wait(tasks, timeout=5)
            for task in stuck:
                log.error("task %s did not stop: %s", task.get_name(), task.get_stack())
        self._tasks.clear()
        try:
            await self._save_commands()
        except Exception:
            log.exception("recording the last commands at shutdown failed")
        # Each resource is released even if another one fails: a half-stopped agent would
        # keep libVLC and SQLite threads alive.
        if self._current is not None:
            try:
                position = await self.player.stop()
                await self._close_current(PlayOutcome.STOPPED, position, counts_as_aired=False)
            except Exception:
                log.exception("closing the current play at shutdown failed")
        for close in (self.player.close, self.client.close):
            try:
                await close()
            except Exception:
                log.exception("shutdown step failed")
        try:
            self.relay.close()
        except Exception:
            log.exception("releasing the amplifier relay failed")
        if self.store is not None:
            await self.store.close()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=f"{self.identity.device_id}:{name}")
        task.add_done_callback(self._task_died)
        self._tasks.append(task)

    @staticmethod
    def _task_died(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("agent task %s died", task.get_name(), exc_info=task.exception())

    def _changed(self) -> None:
        for watcher in self._watchers:
            watcher.set()

    def _state_fault(self, fault: str, detail: str) -> None:
        """Damaged or altered state was found and set aside: say so in the log and, for a
        day, in every health sample."""
        log.error("%s: %s", fault, detail)
        self._state_faults[fault] = time.monotonic()
        self._changed()

    def state_faults(self) -> list[str]:
        horizon = time.monotonic() - STATE_FAULT_SHOWN_S
        return sorted(f for f, at in self._state_faults.items() if at >= horizon)

    async def wait_until(
        self, predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0
    ) -> None:
        """Wait (on state-change events, not by polling) until `predicate()` holds."""
        async with asyncio.timeout(timeout):
            while True:
                watcher = asyncio.Event()
                self._watchers.add(watcher)
                try:
                    result = predicate()
                    if inspect.isawaitable(result):
                        result = await result
                    if result:
                        return
                    await watcher.wait()
                finally:
                    self._watchers.discard(watcher)

    # ------------------------------------------------------------------ what plays

    def _on_player_event(self, event: PlaybackEvent) -> None:
        self._player_events.append(event)
        self._wake.set()

    def _bulletins(self) -> dict[str, ManifestBulletin]:
        held: dict[str, ManifestBulletin] = {}
        if self._manifest is not None:
            held.update((b.id, b) for b in self._manifest.bulletins)
        for bulletin_id, bulletin in self._emergencies.items():
            held.setdefault(bulletin_id, bulletin)
        return held

    def _play_item(self, bulletin: ManifestBulletin, start_at_s: float = 0.0) -> PlayItem | None:
        """The item a backend can play for this bulletin on this hardware, if it is ready."""
        kinds = set(self.profile.kinds)
        if bulletin.kind not in kinds:
            return None
        common = {
            "bulletin_id": bulletin.id,
            "priority": bulletin.priority,
            "title": bulletin.title,
            "display_seconds": bulletin.display_seconds,
            "start_at_s": start_at_s,
        }
        if bulletin.kind in (BulletinKind.TEXT, BulletinKind.DOCUMENT) and bulletin.text:
            if self.profile.device_kind is DeviceKind.SPEAKER:
                if self.speech is None:
                    return None
                path = self.cache.derived_path(
                    speech_key(self.speech.engine_id, bulletin.text), ".wav"
                )
                if path is None:
                    return None
                return PlayItem(kind=BulletinKind.AUDIO, path=path, **common)
            return PlayItem(kind=BulletinKind.TEXT, text=bulletin.text, **common)
        if bulletin.media is not None:
            if bulletin.kind is BulletinKind.DOCUMENT:
                return None  # a document file needs a renderer this device lacks
            path = self.cache.path_for(bulletin.media.sha256)
            if path is None:
                return None
            return PlayItem(kind=bulletin.kind, path=path, **common)
        return None

    def _held_changed(self, *, content: bool = False) -> None:
        """The manifest, the held emergencies or the clock's anchoring changed (with
        `content`: what the cache holds changed too): the scheduler's candidates are
        gathered again at the next decision."""
        self._candidates = None
        if content:
            self._candidate_of.clear()  # what is playable may have changed for any of them
        manifest = self._manifest
        if manifest is not self._windows_of:
            self._windows_of = manifest
            self._windows = (
                tuple(ParsedWindow(w.start_time, w.end_time) for w in manifest.windows)
                if manifest
                else ()
            )

    def _gather_candidates(self) -> tuple[Candidate, ...]:
        known = self._candidate_of
        self._candidate_of = {}
        candidates = []
        for bulletin in self._bulletins().values():
            shift = self._emergency_shift.get(bulletin.id, timedelta(0))
            cached = known.get(bulletin.id)
            if cached is not None and cached[0] is bulletin and cached[1] == shift:
                candidate = cached[2]
            else:
                candidate = self._candidate(bulletin, shift)
            self._candidate_of[bulletin.id] = (bulletin, shift, candidate)
            if candidate is not None:
                candidates.append(candidate)
        return tuple(candidates)

    def _candidate(self, bulletin: ManifestBulletin, shift: timedelta) -> Candidate | None:
        if self._play_item(bulletin) is None:
            return None
        schedule = bulletin.schedule
        return Candidate(
            id=bulletin.id,
            title=bulletin.title,
            priority=bulletin.priority,
            kind=bulletin.kind,
            valid_from=schedule.valid_from + shift,
            valid_until=schedule.valid_until + shift,
            times=tuple(parse_hhmm(t) for t in schedule.times),
            repeats=schedule.repeats,
            order=bulletin.order,
            interval_s=schedule.interval_s,
            until_cancelled=schedule.until_cancelled,
        )

    def schedule_input(self) -> ScheduleInput:
        now = self.clock.now()
        if self._candidates is None:
            self._candidates = self._gather_candidates()
        playing = None
        if self._current is not None:
            current = self._current
            playing = Playing(
                bulletin_id=current.item.bulletin_id,
                priority=current.item.priority,
                slot=current.slot,
                started_at=current.started_at,
                position_s=self.player.position(),
            )
        manifest = self._manifest
        return ScheduleInput(
            now=now,
            device_kind=self.profile.device_kind,
            windows=self._windows,
            candidates=self._candidates,
            playing=playing,
            suspended=self._suspended,
            aired=dict(self._aired),
            cancelled=frozenset(self._cancelled),
            clock_trusted=self.clock.status().trusted,
            resume_mode=manifest.resume_mode if manifest else "resume",
            started=frozenset(self._started_emergencies),
            last_aired=dict(self._last_aired),
        )

    async def _programme_loop(self) -> None:
        while True:
            # The watchdog is fed here so a programme loop stuck on a hung backend gets the
            # agent restarted by systemd; the relay idles off whenever nothing sounds.
            if self.watchdog is not None:
                self.watchdog.feed()
            self._wake.clear()
            await self._handle_player_events()
            await self._handle_controls()
            decision = self._decide()
            self._last_decision = decision
            if decision.action is not Action.KEEP:
                log.info(
                    "%s %s (%s) slot=%s at=%.1fs: %s",
                    decision.action.value,
                    decision.bulletin_id,
                    "pre-empting" if decision.preempt else "boundary",
                    decision.slot,
                    decision.start_at_s,
                    decision.reason,
                )
                await self._apply(decision)
                await self._follow_up()
                self._changed()
                continue
            await self._follow_up()
            self._changed()
            if self._current is None or not self._sounds(self._current.item):
                self.relay.audio_ended()
            timeout = None
            if decision.next_check is not None:
                timeout = max(0.0, (decision.next_check - self.clock.now()).total_seconds())
            feed_every = self.watchdog.interval_s if self.watchdog is not None else None
            if feed_every is not None:
                timeout = feed_every if timeout is None else min(timeout, feed_every)
            await wait_event(self._wake, timeout)

    def _sounds(self, item: PlayItem) -> bool:
        audible = item.kind in (BulletinKind.AUDIO, BulletinKind.VIDEO)
        return audible and self.profile.audio is not None

    def _decide(self) -> Decision:
        inp = self.schedule_input()
        if self._current is not None and self._current.item.bulletin_id == TEST_TONE_ID:
            # A technician's test tone runs to its end; only an emergency cuts it.
            decision = decide(dataclasses.replace(inp, playing=None, suspended=None))
            emergency = self._bulletins().get(decision.bulletin_id or "")
            if (
                decision.action is Action.START
                and emergency is not None
                and (emergency.priority is Priority.EMERGENCY)
            ):
                return decision
            return Decision(Action.KEEP, next_check=decision.next_check, reason="test tone")
        return decide(inp)

    async def _apply(self, decision: Decision) -> None:
        if decision.action is Action.STOP:
            if self._current is not None:
                position = await self.player.stop()
                await self._close_current(PlayOutcome.STOPPED, position, counts_as_aired=False)
            return
        bulletin = self._bulletins().get(decision.bulletin_id or "")
        item = self._play_item(bulletin, decision.start_at_s) if bulletin else None
        if bulletin is None or item is None or decision.slot is None:
            log.error("scheduler chose %s, which is not playable", decision.bulletin_id)
            # Typically its cached file changed since it was verified: it is hashed again
            # (or fetched again) off this path, and the scheduler picks without it meanwhile.
            self._held_changed(content=True)
            self._ensure_content()
            return
        assert self.store is not None
        previous = self._current
        previous_position = 0.0
        if previous is not None:
            # Stop first so the emergency is heard at once; book-keeping follows.
            previous_position = await self.player.stop()
        resumed = self._suspended is not None and self._suspended.bulletin_id == bulletin.id
        await self._set_volume_for(bulletin.priority)
        started_at = self.clock.now()
        current = _Current(None, item, decision.slot, started_at, bulletin)
        self._current = current
        failed = False
        try:
            if self._sounds(item):
                # Returns at once when the amplifier is already on: no pre-roll in that path.
                await self.relay.before_audio(bulletin.priority is Priority.EMERGENCY)
            await self.player.play(item)
        except Exception as exc:
            log.error("could not play %s: %s", bulletin.id, exc)
            failed = True
        else:
            self.play_started.put_nowait(item)
        if decision.slot == EMERGENCY_SLOT:
            self._started_emergencies.add(bulletin.id)
        # The durable record follows the start, so the disk never delays what is heard. A
        # crash before it leaves no trace: the item was not heard out and airs again.
        current.play_id = await self.store.begin_play(
            bulletin.id, decision.slot, bulletin.priority, bulletin.kind, started_at
        )
        if failed:
            await self._close_current(PlayOutcome.FAILED, 0.0, counts_as_aired=True)
        else:
            log.info("playing %s %r (%s)", bulletin.id, bulletin.title, bulletin.priority.value)
        if previous is not None:
            outcome = PlayOutcome.PREEMPTED if decision.preempt else PlayOutcome.STOPPED
            await self._close_play(previous, outcome, previous_position, counts_as_aired=False)
            # An emergency cut by a newer one is never kept: it airs again, from the top, in
            # its turn; the Suspended item stays the one the first emergency cut.
            if (
                decision.preempt
                and previous.item.bulletin_id != TEST_TONE_ID
                and previous.item.priority is not Priority.EMERGENCY
            ):
                self._suspended = Suspended(
                    previous.item.bulletin_id, previous.slot, previous_position
                )
                await self.store.save_suspended(self._suspended)
        if resumed:
            self._suspended = None
            await self.store.save_suspended(None)

    async def _close_current(
        self, outcome: PlayOutcome, position: float, *, counts_as_aired: bool
    ) -> None:
        current, self._current = self._current, None
        if current is not None:
            await self._close_play(current, outcome, position, counts_as_aired=counts_as_aired)

    async def _close_play(
        self, current: _Current, outcome: PlayOutcome, position: float, *, counts_as_aired: bool
    ) -> None:
        if self._current is current:
            self._current = None
        if current.play_id is None:
            return
        assert self.store is not None
        await self.store.finish_play(
            current.play_id, self.clock.now(), outcome, position, counts_as_aired
        )
        if counts_as_aired:
            key = (current.item.bulletin_id, current.slot)
            self._aired[key] = self._aired.get(key, 0) + 1
            if current.slot == EMERGENCY_SLOT:
                self._last_aired[current.item.bulletin_id] = self.clock.now()
        self._report_wake.set()

    async def _handle_player_events(self) -> None:
        while self._player_events:
            event = self._player_events.popleft()
            current = self._current
            if current is None or event.bulletin_id != current.item.bulletin_id:
                continue  # a late event of an item already replaced
            if event.type is EventType.ENDED:
                await self._close_current(
                    PlayOutcome.COMPLETED, event.position_s, counts_as_aired=True
                )
            elif event.type is EventType.ERROR:
                log.error("player failed on %s: %s", event.bulletin_id, event.detail)
                await self._close_current(
                    PlayOutcome.FAILED, event.position_s, counts_as_aired=True
                )

    async def _handle_controls(self) -> None:
        while self._pending_controls:
            control, origin = self._pending_controls.popleft()
            current = self._current
            if control == "stop" and current is not None and origin == "local":
                # Checked again here, not only in request(): an emergency may have started
                # between the request and now, and a stop meant for the item before it must
                # not silence the warning.
                refusal = self._local_stop_refusal(current.item)
                if refusal is not None:
                    self._refuse_control(control, refusal)
                    continue
            if control == "stop" and current is not None:
                position = await self.player.stop()
                # An operator's stop counts as aired so the programme does not replay it.
                await self._close_current(PlayOutcome.STOPPED, position, counts_as_aired=True)
            elif control in ("test_tone", "test_pattern"):
                if current is not None and current.item.priority is Priority.EMERGENCY:
                    log.info("%s refused: an emergency is on air", control)
                    continue
                if current is not None:
                    position = await self.player.stop()
                    await self._close_current(PlayOutcome.STOPPED, position, counts_as_aired=False)
                if control == "test_pattern":
                    # A board's check: colour bars and a frame show dead pixels and cropping.
                    display = self.profile.display
                    size = (display.width, display.height) if display else (640, 360)
                    pattern = await asyncio.to_thread(
                        ensure_test_pattern, self.config.data_dir, size
                    )
                    kind, title, path = BulletinKind.IMAGE, "Test pattern", pattern
                else:
                    tone = await asyncio.to_thread(ensure_test_tone, self.config.data_dir)
                    kind, title, path = BulletinKind.AUDIO, "Test tone", tone
                item = PlayItem(
                    bulletin_id=TEST_TONE_ID,
                    kind=kind,
                    priority=Priority.NORMAL,
                    title=title,
                    path=path,
                    display_seconds=10.0,
                )
                await self._set_volume_for(Priority.NORMAL)
                self._current = _Current(None, item, "test", self.clock.now(), None)
                if self._sounds(item):
                    await self.relay.before_audio(False)
                await self.player.play(item)
                self.play_started.put_nowait(item)

    # ------------------------------------------------------------------ volume

    def volume(self) -> int:
        audio = self.profile.audio
        wanted = self._volume_override
        if wanted is None:
            wanted = self._manifest.volume if self._manifest else 70
        if audio is None:
            return wanted
        return max(audio.volume_min, min(audio.volume_max, wanted))

    async def _set_volume_for(self, priority: Priority) -> None:
        audio = self.profile.audio
        if priority is Priority.EMERGENCY and audio is not None:
            await self.player.set_volume(audio.emergency_volume)
        else:
            await self.player.set_volume(self.volume())

    async def set_volume(self, volume: int) -> None:
        assert self.store is not None
        self._volume_override = volume
        await self.store.set_setting("volume", str(volume))
        if self._current is None or self._current.item.priority is not Priority.EMERGENCY:
            await self.player.set_volume(self.volume())

    def request(self, control: str, *, origin: ControlOrigin = "local") -> None:
        """Ask the programme loop to "stop", play a "test_tone" or show a "test_pattern", or
        start a "resync".

        A local "stop" of an emergency raises ControlRefused: the province fired it and only
        the hub's signed cancel or stop ends it (DESIGN.md §2), whoever is logged in on the
        commune LAN. The default origin is "local" so a caller that forgets to say who asks
        gets the safe rule.
        """
        if control == "resync":
            task = asyncio.create_task(self.resync())
            self._download_tasks.add(task)
            task.add_done_callback(self._download_tasks.discard)
            return
        current = self._current
        if control == "stop" and origin == "local" and current is not None:
            refusal = self._local_stop_refusal(current.item)
            if refusal is not None:
                self._refuse_control(control, refusal)
                raise ControlRefused("emergency_on_air", refusal)
        self._pending_controls.append((control, origin))
        self._wake.set()

    @staticmethod
    def _local_stop_refusal(item: PlayItem) -> str | None:
        """Why a local stop of `item` is refused, or None if it may be stopped."""
        if item.priority is Priority.EMERGENCY:
            return f"emergency {item.bulletin_id} is on air; only the province's cancel ends it"
        return None

    def _refuse_control(self, control: str, reason: str) -> None:
        self.counters.refused_controls += 1
        log.warning("refused local %s: %s", control, reason)
        self._changed()

    # ------------------------------------------------------------------ clock trust (issue #4)

    async def _restore_clock(self) -> None:
        assert self.store is not None
        saved = await self.store.get_setting(CLOCK_SETTING)
        boot, alive = self.clock.parse_alive(await self.store.get_setting(CLOCK_ALIVE))
        # Only an earlier boot's last sign of life says anything about a restored clock.
        current_boot = self.clock.alive_mark().partition(" ")[0] or None
        self.clock.restore(
            Confirmation.from_json(saved) if saved else None,
            alive if boot != current_boot else None,
        )
        await asyncio.to_thread(self.clock.refresh_ntp)

    async def _signed_time_seen(self, issued_at: datetime, round_trip_s: float) -> None:
        """The hub signed `issued_at` at most `round_trip_s` ago (see `_sync_loop` and
        `_refresh_manifest`): the only time the agent believes from the hub. The HTTP `Date`
        header is not signed; a proxy shifting it froze manifests as expired."""
        was_corrected = self.clock.corrected()
        self.clock.observe_signed_time(issued_at, round_trip_s)
        if not was_corrected:
            # The device's own timeline is anchored now: pushed emergencies are judged on it.
            self._emergency_shift.clear()
            self._held_changed()
            self._clock_saved_at = 0.0
        self._wake.set()
        self._changed()
        await self._save_clock(every_s=60.0)

    async def _save_clock(self, *, every_s: float) -> None:
        # Throttled: a confirmation is worth persisting, an SD write every poll is not.
        if self.store is None or time.monotonic() - self._clock_saved_at < every_s:
            return
        confirmation = self.clock.confirmation()
        if confirmation is not None:
            await self.store.set_setting(CLOCK_SETTING, confirmation.to_json())
            self._clock_saved_at = time.monotonic()

    async def _clock_loop(self) -> None:
        while True:
            try:
                trusted = self.clock.status().trusted
                await asyncio.to_thread(self.clock.refresh_ntp)
                if self.clock.status().trusted != trusted:
                    self._emergency_shift.clear()
                    self._held_changed()
                    self._wake.set()
                    self._changed()
                await self._save_clock(every_s=60.0)
                if time.monotonic() - self._alive_saved_at >= self.clock.alive_period_s:
                    assert self.store is not None
                    await self.store.set_setting(CLOCK_ALIVE, self.clock.alive_mark())
                    self._alive_saved_at = time.monotonic()
            except Exception:
                log.exception("clock check failed")
            await asyncio.sleep(self.config.clock_check_interval_s)

    async def _cache_loop(self) -> None:
        """Notice cached objects changed since verified (cheap), re-hash everything now and
        then (not cheap, in a thread): neither is on the path to the loudspeaker."""
        rehashed_at = time.monotonic()
        # Media still missing (deleted as corrupt while the hub was away, a download that
        # failed) is asked for again with a growing pause, so a file the hub keeps serving
        # wrong does not cost a 3G link its size every few seconds.
        retry_missing_at = 0.0
        missing_pause = self.config.cache_check_interval_s
        while True:
            await asyncio.sleep(self.config.cache_check_interval_s)
            try:
                if self._content_lock.locked():
                    continue  # a sync is under way; it sees the same files
                now = time.monotonic()
                if now - rehashed_at >= self.config.cache_rehash_interval_s:
                    rehashed_at = now
                    self._ensure_content(verify=True)
                    continue
                changed = self.cache.changed_objects()
                if changed:
                    self._held_changed(content=True)
                    self._ensure_content()
                elif not any(not self.cache.has(sha) for sha in self._needed_media()):
                    missing_pause = self.config.cache_check_interval_s
                elif now >= retry_missing_at:
                    retry_missing_at = now + missing_pause
                    missing_pause = min(missing_pause * 2, MISSING_MEDIA_PAUSE_MAX_S)
                    self._ensure_content()
            except Exception:
                log.exception("cache check failed")

    async def resync(self) -> None:
        """Fetch the manifest again and re-verify the cache (hub command, local page)."""
        await self._refresh_manifest(force=True)
        self._ensure_content(verify=True)

    # ------------------------------------------------------------------ sync with the hub

    async def _sync_loop(self) -> None:
        backoff = self.config.reconnect_min_s
        next_poll = 0.0
        while True:
            connecting = time.monotonic()
            try:
                ws = await self.client.connect_ws(heartbeat=self.config.ws_heartbeat_s)
            except (HubUnavailable, HubRejected, aiohttp.ClientError, OSError) as exc:
                log.debug("push channel unavailable: %s", exc)
                if time.monotonic() >= next_poll:
                    # Push is down: fall back to polling, with the ETag so it costs little.
                    await self._refresh_manifest()
                    next_poll = time.monotonic() + self.config.poll_interval_s
                # Full jitter, so a thousand devices do not come back in the same second.
                await asyncio.sleep(random.uniform(0, backoff))
                backoff = min(backoff * 2, self.config.reconnect_max_s)
                continue
            backoff = self.config.reconnect_min_s
            self._connected.set()
            self._report_wake.set()
            self._changed()
            # The hub signs a manifest_ready the moment the socket opens: its issue time is
            # at most one connect round trip old, so it sets the clock. Later frames may
            # have waited in buffers for any time: they do not.
            first_frame = True
            try:
                async for message in ws:
                    if message.type is aiohttp.WSMsgType.TEXT:
                        if self.on_frame is not None:
                            self.on_frame()
                        # One loop turn before the work on it: where many agents share a
                        # process (the fleet simulator), every one reads its frame first, so
                        # the hub's delivery is timed apart from the agents' own CPU.
                        await asyncio.sleep(0)
                        if first_frame:
                            first_frame = False
                            await self._connect_time_seen(
                                message.data, time.monotonic() - connecting
                            )
                        await self._handle_push(message.data)
                    elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                        break
            except (aiohttp.ClientError, OSError) as exc:
                log.info("push channel lost: %s", exc)
            finally:
                self._connected.clear()
                self._changed()
                with contextlib.suppress(Exception):
                    await ws.close()
            await asyncio.sleep(random.uniform(0, self.config.reconnect_min_s))

    def _refuse(self, what: str, reason: str) -> None:
        self.counters.last_rejection = f"{what}: {reason}"
        log.warning("refused %s: %s", what, reason)
        self._changed()

    async def _connect_time_seen(self, data: str, round_trip_s: float) -> None:
        """The first frame of a push connection: signed as the socket opened, so its issue
        time is at most `round_trip_s` old. Checked like any frame (signature, address, not
        seen before) before its time is believed; `_handle_push` then acts on it."""
        try:
            command = self.keys.open(data, CommandDocument).command
        except SignatureError:
            return  # `_handle_push` refuses and counts it
        if (
            command.addressed_to(self.identity.device_id, self.commune())
            and command.command_id not in self._seen_commands
        ):
            await self._signed_time_seen(command.issued_at, round_trip_s)

    async def _handle_push(self, data: str) -> None:
        try:
            command = self.keys.open(data, CommandDocument).command
        except SignatureError as exc:
            self.counters.rejected_commands += 1
            self._refuse("pushed command", str(exc))
            return
        if not command.addressed_to(self.identity.device_id, self.commune()):
            self.counters.rejected_commands += 1
            self._refuse("pushed command", f"{command.type} is not addressed to this device")
            return
        if self.on_command is not None:
            self.on_command(command)
        if command.expires_at <= self.clock.now() and self.clock.corrected():
            # An unconfirmed clock cannot judge expiry (a Pi booted a day ahead would refuse
            # every emergency); the signature and the command-id replay check still hold.
            self._refuse("pushed command", f"{command.type} expired at {command.expires_at}")
            return
        assert self.store is not None
        if not self._first_sight(command, data):
            return
        match command:
            case EmergencyStart(bulletin=bulletin):
                if not self.clock.corrected():
                    self._emergency_shift[bulletin.id] = self.clock.now() - command.issued_at
                await self._accept_emergency(bulletin)
                # The hub sends no manifest nudge after an emergency: the start implies it.
                # Fetched once the emergency plays (`_follow_up`): a manifest being fetched
                # and verified must not hold the loop while the player starts.
                self._manifest_after_play = True
            case EmergencyCancel(bulletin_id=bulletin_id):
                self._cancelled.add(bulletin_id)
                await self.store.cancel(bulletin_id)
                self._wake.set()
                self._schedule_manifest_fetch(self.config.emergency_manifest_jitter_s)
            case ManifestReady(version=version):
                if self._manifest is None or version > self._manifest.version:
                    self._schedule_manifest_fetch()
            case SetVolume(volume=volume):
                await self.set_volume(volume)
            case StopPlayback():
                # Signed by the hub: the province may stop anything, an emergency included.
                # A stop ends the airing on air now and cancels nothing: an emergency still
                # active airs again at its next turn (a board, which keeps every active
                # emergency up, at once). Taking an emergency off the air is its cancel.
                self.request("stop", origin="hub")
            case TestTone():
                self.request("test_tone", origin="hub")
            case Resync():
                await self.resync()

    def _first_sight(self, command: Command, frame: str) -> bool:
        """True the first time a command id is seen (in memory: no disk on this path); its
        durable record, and the emergency it carries, follow in `_save_commands`."""
        if command.command_id in self._seen_commands:
            return False
        self._seen_commands[command.command_id] = command.expires_at
        hold = command.bulletin if isinstance(command, EmergencyStart) else None
        self._unsaved_commands.append((command.command_id, command.expires_at, hold, frame))
        # The programme loop writes them down, after it has acted on them.
        self._wake.set()
        return True

    async def _follow_up(self) -> None:
        """What a pushed command asks for once the player has acted on it."""
        await self._save_commands()
        if self._manifest_after_play:
            self._manifest_after_play = False
            self._schedule_manifest_fetch(self.config.emergency_manifest_jitter_s)

    async def _save_commands(self) -> None:
        """Make the command ids seen (and the emergencies they brought) durable.

        Called by the programme loop right after it started what they asked for. A crash
        before this loses no emergency for good: the hub sends every active emergency again
        when the device reconnects, and the manifest holds it. The emergency is not held if
        it was cancelled meanwhile, so a restart never revives it.
        """
        if not self._unsaved_commands:
            return
        assert self.store is not None
        unsaved, self._unsaved_commands = self._unsaved_commands, []
        for command_id, expires_at, hold, frame in unsaved:
            if hold is not None and hold.id in self._cancelled:
                hold = None
            # The emergency is kept with the signed frame it came in: verified at each start.
            await self.store.command_seen(command_id, expires_at, hold=hold, frame=frame)
        # Forgotten on the same terms as the store forgets them.
        horizon = datetime.now(UTC) - COMMAND_GRACE
        expired = [cid for cid, expiry in self._seen_commands.items() if expiry < horizon]
        for command_id in expired:
            del self._seen_commands[command_id]

    def _schedule_manifest_fetch(self, jitter_s: float | None = None) -> None:
        # A fetch already under way may have its answer already: ask for one more after it,
        # or a connected device (which does not poll) would sit on an old manifest.
        self._manifest_wanted = True
        if self._manifest_fetch is not None and not self._manifest_fetch.done():
            return
        spread = self.config.manifest_fetch_jitter_s if jitter_s is None else jitter_s

        async def fetch_later() -> None:
            await asyncio.sleep(random.uniform(0, spread))
            while self._manifest_wanted:
                self._manifest_wanted = False
                await self._refresh_manifest()

        self._manifest_fetch = asyncio.create_task(fetch_later())
        self._download_tasks.add(self._manifest_fetch)
        self._manifest_fetch.add_done_callback(self._download_tasks.discard)

    async def _accept_emergency(self, bulletin: ManifestBulletin) -> None:
        """Play `bulletin` now; the store already holds it (saved with its command)."""
        if bulletin.id in self._cancelled:
            return
        self._emergencies[bulletin.id] = bulletin
        self._held_changed()
        if self._play_item(bulletin) is None:
            self._ensure_content()  # it plays as soon as its media is here
        self._wake.set()

    async def _refresh_manifest(self, *, force: bool = False) -> None:
        assert self.store is not None
        trusted_before = await self.store.trusted_version()
        started = time.monotonic()
        try:
            fetched = await self.client.fetch_manifest(None if force else self._etag)
        except (HubUnavailable, HubRejected) as exc:
            log.debug("manifest fetch failed: %s", exc)
            return
        round_trip = time.monotonic() - started
        self._last_sync_at = self.clock.now()
        if fetched.envelope is None:
            return
        adopted = await self.apply_manifest(fetched.envelope)
        manifest = self._manifest
        if (
            adopted
            and manifest is not None
            and manifest.version > trusted_before
            and not self.clock.corrected()
        ):
            # The hub signs a device's manifest when that version is first fetched, so a new
            # version's issue time is about one round trip old: time enough for a device
            # that cannot keep a push channel open. Not for a clock already set by the
            # hub's push or NTP, which a copy signed earlier (a lost answer) would pull back.
            await self._signed_time_seen(manifest.issued_at, round_trip)
            self._last_sync_at = self.clock.now()

    async def apply_manifest(self, envelope: bytes) -> bool:
        """Verify and adopt a signed manifest; anything wrong leaves the last good one in force."""
        assert self.store is not None
        try:
            manifest = self.keys.open(envelope, Manifest)
        except SignatureError as exc:
            self.counters.rejected_manifests += 1
            self._refuse("manifest", str(exc))
            return False
        if manifest.device_id != self.identity.device_id:
            self.counters.rejected_manifests += 1
            self._refuse("manifest", f"it is for device {manifest.device_id}")
            return False
        if manifest.expires_at <= self.clock.now() and self.clock.status().trusted:
            # An untrusted clock cannot judge expiry (a Pi booted a month ahead would refuse
            # every manifest and never learn the time from one); the version floor still holds.
            self.counters.rejected_manifests += 1
            self._refuse("manifest", f"version {manifest.version} expired at {manifest.expires_at}")
            return False
        try:
            # With no verified manifest held (refused at start, or lost with the database),
            # the hub's signed copy of the trusted version itself is taken back.
            await self.store.save_manifest(manifest, envelope, reinstate=self._manifest is None)
        except StaleManifest:
            self.counters.rejected_manifests += 1
            self._refuse(
                "manifest",
                f"version {manifest.version} is not newer than "
                f"{await self.store.trusted_version()}",
            )
            return False
        loudness_before = self.volume()
        self._manifest = manifest
        self._etag = f'"{manifest.version}"'
        self._held_changed()
        if self.volume() != loudness_before:
            # The commune turned its loudspeakers up or down: heard now, not at the next item.
            current = self._current
            if current is None or current.item.priority is not Priority.EMERGENCY:
                await self.player.set_volume(self.volume())
        for bulletin_id in manifest.cancelled:
            if bulletin_id not in self._cancelled:
                self._cancelled.add(bulletin_id)
                await self.store.cancel(bulletin_id)
        log.info(
            "manifest version %d adopted (%d bulletins)", manifest.version, len(manifest.bulletins)
        )
        self._ensure_content()
        self._wake.set()
        self._changed()
        return True

    # ------------------------------------------------------------------ content

    def _needed_media(self) -> dict[str, MediaRef]:
        needed: dict[str, MediaRef] = {}
        kinds = set(self.profile.kinds)
        for bulletin in self._bulletins().values():
            if (
                bulletin.media is not None
                and bulletin.kind in kinds
                and bulletin.id not in self._cancelled
            ):
                needed[bulletin.media.sha256] = bulletin.media
        return needed

    def _ensure_content(self, *, verify: bool = False) -> None:
        task = asyncio.create_task(self._fetch_content(verify))
        self._download_tasks.add(task)
        task.add_done_callback(self._download_tasks.discard)

    async def _fetch_content(self, verify: bool) -> None:
        # One sync at a time: a push and a manifest arriving together would otherwise fetch
        # and synthesize the same things twice, racing on the same files.
        async with self._content_lock:
            await self._fetch_content_locked(verify)

    async def _fetch_content_locked(self, verify: bool) -> None:
        corrupt: list[str] = []
        if verify:
            corrupt = await self.cache.verify_all()
            for sha in corrupt:
                log.warning("cache object %s was corrupt; fetching it again", sha)
            if corrupt:
                self._state_fault("cache_corrupt", f"{len(corrupt)} objects failed their sha256")
        needed = self._needed_media()
        # `has` is False too for an object changed since it was verified: `fetch` hashes it
        # again and keeps it, or deletes it and downloads it again.
        missing = [ref for sha, ref in needed.items() if not self.cache.has(sha)]
        found_before = self.cache.corrupt_found
        results = await asyncio.gather(*(self._fetch_one(ref) for ref in missing))
        changed_on_disk = self.cache.corrupt_found - found_before
        if changed_on_disk:
            self._state_fault("cache_corrupt", f"{changed_on_disk} cached objects changed on disk")
        await self._synthesize_speech()
        freed = 0
        if self._manifest is not None:
            # Keep everything a held bulletin still needs; the rest is dead weight on the SD card.
            freed = self.cache.evict(set(needed))
            if freed:
                log.info("cache eviction freed %d bytes", freed)
        if corrupt or changed_on_disk or any(results) or freed:
            # What is playable changed (fetched, found corrupt, evicted).
            self._held_changed(content=True)
        if any(results):
            self._wake.set()
        self._changed()

    async def _fetch_one(self, ref: MediaRef) -> bool:
        async with self._download_slots:

            def progress(done: int, total: int) -> None:
                self.counters.downloads[ref.sha256] = (done, total)

            try:
                await self.cache.fetch(self.client, ref, progress)
                return True
            except CacheIntegrityError as exc:
                self.counters.rejected_media += 1
                self._refuse(f"media {ref.sha256[:12]}", str(exc))
            except (HubUnavailable, HubRejected, aiohttp.ClientError, OSError) as exc:
                log.info("media %s not fetched yet: %s", ref.sha256[:12], exc)
            finally:
                self.counters.downloads.pop(ref.sha256, None)
            return False

    async def _synthesize_speech(self) -> None:
        if self.speech is None or self.profile.device_kind is not DeviceKind.SPEAKER:
            return
        for bulletin in list(self._bulletins().values()):
            if bulletin.kind not in (BulletinKind.TEXT, BulletinKind.DOCUMENT) or not bulletin.text:
                continue
            key = speech_key(self.speech.engine_id, bulletin.text)
            if self.cache.derived_path(key, ".wav") is not None:
                continue
            tmp = self.config.data_dir / f"speech-{key[:16]}-{uuid.uuid4().hex[:8]}.tmp.wav"
            try:
                await self.speech.synthesize(bulletin.text, tmp)
                await self.cache.put_file(tmp, key)
            except Exception as exc:
                log.error("speech for %s failed: %s", bulletin.id, exc)
            finally:
                tmp.unlink(missing_ok=True)
            self._held_changed(content=True)
            self._wake.set()

    # ------------------------------------------------------------------ reports

    async def _report_loop(self) -> None:
        assert self.store is not None
        while True:
            self._report_wake.clear()
            pending = await self.store.pending(200)
            if not pending:
                await wait_event(self._report_wake, self.config.health_interval_s)
                continue
            try:
                ack = await self.client.post_reports(
                    pending, stream=await self.store.report_stream()
                )
            except (HubUnavailable, HubRejected) as exc:
                log.debug("reports not delivered: %s", exc)
                await wait_event(
                    self._connected, random.uniform(0.5, 1.0) * self.config.report_retry_s
                )
                continue
            await self.store.acknowledge(ack.acked)
            self._changed()

    async def _health_loop(self) -> None:
        assert self.store is not None
        while True:
            try:
                await self.store.add_health(await self.health_fields())
                await self.store.heartbeat(self.clock.now())
                self._report_wake.set()
                self._changed()
            except Exception:
                log.exception("health sample failed")
            await asyncio.sleep(self.config.health_interval_s)

    async def health_fields(self) -> dict[str, Any]:
        """One HealthSample's fields (without `seq`, which the outbox assigns)."""
        assert self.store is not None
        sample = await asyncio.to_thread(system_sample, self.config.data_dir)
        objects, size = self.cache.usage()
        backlog = await self.store.backlog()
        clock = self.clock.status()
        faults = []
        if not clock.trusted:
            faults.append("clock_untrusted")
        if self.pi_health is not None:
            values, pi_faults = await asyncio.to_thread(self.pi_health.sample)
            self.hardware = {**values, "relay_on": self.relay.is_on}
            sample.update({name: values.get(name) for name in PI_WIRE_FIELDS})
            if sample.get("temperature_celsius") is None:
                # psutil finds no sensor on some kernels; the thermal zone is the SoC itself.
                sample["temperature_celsius"] = values.get("soc_temperature_celsius")
            faults.extend(pi_faults)
        # Any backend may count stops it had to abandon (VlcPlayer, the router's sum); a
        # player without the counter never had one.
        stuck = getattr(self.player, "stuck_stops", 0)
        # A board's screen check (PlayerRouter.screen_faults): "screen_blank", "screen_frozen".
        # A check that breaks must not cost the rest of the sample.
        try:
            screen = list(getattr(self.player, "screen_faults", None) or ())
        except Exception:
            log.exception("screen check failed")
            screen = []
        for fault in [*screen, *self.state_faults()]:
            if fault not in faults:
                faults.append(fault)
        sample.update(
            at=self.clock.now(),
            player_state=self.player.state.value,
            now_playing=self.now_playing(),
            volume=self.volume(),
            manifest_version=self._manifest.version if self._manifest else None,
            cache_bytes=size,
            cache_objects=objects,
            outbox_backlog=sum(backlog.values()),
            clock_offset_seconds=clock.offset_s,
            clock_trusted=clock.trusted,
            faults=faults,
            # No relay object (NullRelay) means no relay to report, not a relay that is off.
            relay_on=None if isinstance(self.relay, NullRelay) else self.relay.is_on,
            player_stuck_stops_total=stuck if isinstance(stuck, int) else 0,
        )
        return sample

    # ------------------------------------------------------------------ status

    def now_playing(self) -> NowPlayingInfo | None:
        current = self._current
        if current is None:
            return None
        return NowPlayingInfo(
            bulletin_id=current.item.bulletin_id,
            priority=current.item.priority,
            kind=current.item.kind if current.bulletin is None else current.bulletin.kind,
            title=current.item.title,
            started_at=current.started_at,
        )

    def upcoming(self, limit: int = 10) -> list[dict[str, Any]]:
        """What plays next, by asking the scheduler what it would start after each item ends.

        Each active emergency is listed once, however often it will air; a board's list
        stops when its rotation comes round again.
        """
        inp = self.schedule_input()
        aired = dict(inp.aired)
        started = set(inp.started)
        last_aired = dict(inp.last_aired)
        # Each imagined airing ends a microsecond after the one before, so the rotation's
        # "longest since it last aired" sees them in order.
        now = inp.now
        suspended = inp.suspended

        def count(bulletin_id: str, slot: str) -> None:
            aired[(bulletin_id, slot)] = aired.get((bulletin_id, slot), 0) + 1
            if slot == EMERGENCY_SLOT:
                started.add(bulletin_id)
                last_aired[bulletin_id] = now

        if self._current is not None:
            count(self._current.item.bulletin_id, self._current.slot)
        held = self._bulletins()
        board = self.profile.device_kind is DeviceKind.BOARD
        queue: list[dict[str, Any]] = []
        listed: set[str] = set()
        # Bounded: a board or an emergency until cancelled would loop for ever.
        for _ in range(4 * limit):
            now += timedelta(microseconds=1)
            decision = decide(
                dataclasses.replace(
                    inp,
                    now=now,
                    playing=None,
                    suspended=suspended,
                    aired=dict(aired),
                    started=frozenset(started),
                    last_aired=dict(last_aired),
                )
            )
            if decision.action is not Action.START or decision.bulletin_id is None:
                break
            count(decision.bulletin_id, decision.slot or "")
            if suspended is not None and suspended.bulletin_id == decision.bulletin_id:
                suspended = None  # resumed: as the agent does, it is not kept any longer
            bulletin = held[decision.bulletin_id]
            if bulletin.id in listed and (board or bulletin.priority is Priority.EMERGENCY):
                if board:
                    break
                continue
            listed.add(bulletin.id)
            queue.append(
                {
                    "bulletin_id": bulletin.id,
                    "title": bulletin.title,
                    "priority": bulletin.priority.value,
                    "kind": bulletin.kind.value,
                }
            )
            if len(queue) >= limit:
                break
        return queue

    def commune(self) -> str:
        """The commune this device serves: the signed manifest's word, else enrollment's."""
        return self._manifest.commune if self._manifest else self.identity.commune

    def manifest_version(self) -> int | None:
        return self._manifest.version if self._manifest else None

    def status_connected(self) -> bool:
        return self._connected.is_set()

    def status_reason(self) -> str | None:
        return self._last_decision.reason if self._last_decision else None

    async def status(self) -> dict[str, Any]:
        assert self.store is not None
        now_playing = self.now_playing()
        clock = self.clock.status()
        objects, size = self.cache.usage()
        return {
            "device_id": self.identity.device_id,
            "device_kind": self.profile.device_kind.value,
            "commune": self.identity.commune,
            "profile": self.profile.name,
            "hub_url": self.identity.hub_url,
            "hub_connected": self._connected.is_set(),
            "manifest_version": self._manifest.version if self._manifest else None,
            "now_playing": now_playing.model_dump(mode="json") if now_playing else None,
            "position_s": self.player.position() if now_playing else None,
            "queue": self.upcoming(),
            "reason": self._last_decision.reason if self._last_decision else "starting",
            "windows": [w.model_dump() for w in self._manifest.windows] if self._manifest else [],
            "volume": self.volume(),
            "last_sync_at": self._last_sync_at.isoformat() if self._last_sync_at else None,
            "clock": {
                "trusted": clock.trusted,
                "offset_s": clock.offset_s,
                "source": clock.source,
                "reason": clock.reason,
            },
            "cache": {"objects": objects, "bytes": size},
            "downloads": {
                sha: {"done": done, "total": total}
                for sha, (done, total) in self.counters.downloads.items()
            },
            "outbox": await self.store.backlog(),
            # Pi power, SD card and relay (issue #4), with the raw throttled word besides.
            "hardware": {**self.hardware, "relay_on": self.relay.is_on},
            "rejected": {
                "manifests": self.counters.rejected_manifests,
                "commands": self.counters.rejected_commands,
                "media": self.counters.rejected_media,
                "last": self.counters.last_rejection,
            },
        }
