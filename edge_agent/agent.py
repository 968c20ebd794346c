"""The edge agent: one device's parts under one supervisor.

The core decides (the pure scheduler); the backends obey (one Player). The work is split by
responsibility, each part in its own module:

- `Programme` (programme.py): what plays; the only part that drives the player;
- `HubSync` (sync.py): the push channel, signed commands and manifests;
- `Content` (content.py): media into the cache, speech, room on the card;
- `Reporting` (reporting.py): proof of play and health to the hub, the status;
- `Timekeeping` (timekeeping.py): when the time may be believed.

What several parts read (the verified manifest, the held emergencies, the store, the
player) lives here. Each long-lived task runs under the `Supervisor`: one that dies is
restarted with backoff and shown as a fault, and systemd's watchdog is fed only while all
are alive. Many agents can live in one process (the fleet simulator): no module state.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict

from loa_contract import Command, Fault, Manifest, ManifestBulletin, NowPlayingInfo

from .cache import MediaCache
from .clock import ClockJudge, NtpProbe
from .content import Content, is_disk_full
from .disk import effective_reserve, size_bytes
from .frames import FrameSender
from .hubclient import HubClient
from .identity import Identity
from .parts import LoopQuiet
from .players.base import Player, PlayerHealth, PlayItem
from .profile import HardwareProfile
from .programme import TEST_TONE_ID as TEST_TONE_ID
from .programme import ControlOrigin, ControlRefused, Programme
from .relay import NullRelay, Relay
from .reporting import Reporting
from .rpi_health import PiHealth
from .scheduler_types import ScheduleInput
from .sdnotify import Watchdog
from .speech import SpeechEngine
from .store import AgentStore
from .supervisor import Supervisor
from .sync import HubSync
from .timekeeping import Timekeeping
from .updater import Updater

log = logging.getLogger("edge_agent")

#: Faults about state found damaged or altered stay in health this long after the event, so
#: the hub sees them whatever its sampling interval.
STATE_FAULT_SHOWN_S = 24 * 3600.0
#: Started items kept in `Agent.play_started`.
PLAYS_KEPT = 256

__all__ = ["Agent", "AgentConfig", "ControlOrigin", "ControlRefused", "Counters"]


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
    #: While another hub node serves it, how often the agent asks its enrolled hub whether
    #: it is back (jittered by up to half).
    home_probe_s: float = 60.0
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
    #: Room kept free on the card for speech, SQLite and the logs: a download that would eat
    #: into it is refused (edge_agent/disk.py).
    disk_reserve_bytes: int = 64 * 1024 * 1024
    #: The programme loop looks round at least this often, even with nothing due ...
    heartbeat_s: float = 10.0
    #: ... and is taken for stalled (a hung backend) after this long without doing so.
    stall_after_s: float = 90.0
    #: The first and the longest pause before a dead task is started again.
    restart_min_s: float = 1.0
    restart_max_s: float = 300.0
    #: Updates of the agent itself (issue #14, edge_agent/updater.py): on for a device run
    #: by `edge-agent run`, off for agents in the fleet simulator and most tests.
    updates: bool = False
    #: How often the hub is asked for a release.
    update_check_s: float = 300.0
    #: How long a new release has to prove itself before it switches back.
    probation_s: float = 180.0
    #: The folder under releases/ this process runs from ("base": the provisioned install);
    #: the launcher says it through LOA_RELEASE.
    release: str = "base"


@dataclass
class Counters:
    rejected_manifests: int = 0
    rejected_commands: int = 0
    rejected_media: int = 0
    last_rejection: str | None = None
    #: Local controls refused because an emergency was on air (see Agent.request).
    refused_controls: int = 0
    #: sha256 -> (bytes done, bytes in all) of each download under way.
    downloads: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Records the store could not write (a full or failing card), and the last reason.
    write_failures: int = 0


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
        quiet: LoopQuiet | None = None,
    ) -> None:
        self.config = config
        #: Shared by every agent of a process (the simulator's): see LoopQuiet.
        self.quiet = quiet or LoopQuiet()
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
        self.keys = identity.trusted_keys()
        self.client = HubClient(
            identity.hub_url,
            identity.device_id,
            identity.device_secret,
            session=session,
            ca_file=identity.ca_file(config.data_dir),
        )
        self.cache = MediaCache(config.data_dir / "cache", reserve=config.disk_reserve_bytes)
        #: Room kept free on the card (set at start from its size; see edge_agent/disk.py).
        self.disk_reserve = config.disk_reserve_bytes
        self.counters = Counters()
        self.store: AgentStore | None = None

        # What the device holds, verified: read by every part.
        self.manifest: Manifest | None = None
        self.emergencies: dict[str, ManifestBulletin] = {}
        self.cancelled: set[str] = set()
        #: Clock trust (issue #4): emergencies pushed while the time is unconfirmed are judged
        #: on the device's own timeline, shifted by (system clock - the command's issue time).
        self.emergency_shift: dict[str, timedelta] = {}

        self.report_wake = asyncio.Event()
        #: The items that started playing, in order, for tests to await: the latest
        #: PLAYS_KEPT only (nothing reads it on a device, where it would grow for months).
        self.play_started: asyncio.Queue[PlayItem] = asyncio.Queue(PLAYS_KEPT)
        #: Called with each item as it starts playing (the fleet simulator times it).
        self.on_play_started: Callable[[PlayItem], None] | None = None
        #: Called with every verified command addressed to this device, as it arrives (the
        #: fleet simulator times push arrival with it).
        self.on_command: Callable[[Command], None] | None = None
        #: Called as each pushed frame arrives, before it is verified (the simulator times
        #: the hub's delivery with it).
        self.on_frame: Callable[[], None] | None = None
        self._watchers: set[asyncio.Event] = set()
        #: Faults about damaged or altered state ("state_rebuilt", "manifest_tampered", …)
        #: -> (when, monotonic; what was found).
        self._state_faults: dict[Fault, tuple[float, str]] = {}
        self._background: set[asyncio.Task[Any]] = set()

        self.supervisor = Supervisor(
            identity.device_id,
            on_change=self.changed,
            backoff_min_s=config.restart_min_s,
            backoff_max_s=config.restart_max_s,
        )
        self.programme = Programme(self)
        self.sync = HubSync(self)
        self.content = Content(self)
        self.reporting = Reporting(self)
        #: The board's screen picture for the hub, when the manifest asks for one.
        self.frames = FrameSender(self)
        self.timekeeping = Timekeeping(self)
        self.updater = Updater(self, release=config.release)

    # ------------------------------------------------------------------ lifetime

    async def start(self) -> None:
        data = self.config.data_dir
        data.mkdir(parents=True, exist_ok=True)
        self.disk_reserve = self.cache.reserve = effective_reserve(
            self.config.disk_reserve_bytes, size_bytes(data)
        )
        self.store = store = await AgentStore.open(
            data / "agent.sqlite3", device_id=self.identity.device_id
        )
        if store.rebuilt is not None:
            self.state_fault(Fault.STATE_REBUILT, store.rebuilt)
        await self.timekeeping.restore()
        await self.reporting.restore()
        bad = await self.cache.verify_all()
        for sha in bad:
            log.warning("cache object %s failed its sha256 check; deleted, will fetch again", sha)
        if bad:
            self.state_fault(Fault.CACHE_CORRUPT, f"{len(bad)} cached objects failed their sha256")
        now = self.clock.now()
        for play in await store.recover_open_plays(now):
            log.warning("closed play of %s interrupted by a restart", play.bulletin_id)
        # Only what verifies again against the pinned keys is obeyed, never a parsed copy.
        verified = await store.verified_manifest(self.keys, self.identity.device_id)
        if verified.manifest is not None:
            self.sync.adopt(verified.manifest)
        await self.sync.restore_hub_list()
        if verified.refused:
            self.state_fault(Fault.MANIFEST_TAMPERED, "; ".join(verified.refused))
        held, refused = await store.verified_emergencies(
            self.keys, self.identity.device_id, self.commune()
        )
        if refused:
            self.state_fault(Fault.EMERGENCY_TAMPERED, "; ".join(refused))
        for bulletin in held:
            self.emergencies[bulletin.id] = bulletin
        self.cancelled = set(await store.cancelled())
        if self.manifest is not None:
            self.cancelled |= set(self.manifest.cancelled)
        await self.programme.restore(now)
        self.sync.seen_commands = await store.seen_commands()
        self.programme.held_changed()

        # The programme starts from cache at once: the hub may be far away or gone.
        supervise = self.supervisor.add
        supervise("programme", self.programme.run, stall_after_s=self.config.stall_after_s)
        supervise("sync", self.sync.run)
        supervise("reports", self.reporting.run_reports)
        # A health sample stuck for three rounds (a hung statvfs on a dying card) is a stall.
        stall = 3 * self.config.health_interval_s + 60.0
        supervise("health", self.reporting.run_health, stall_after_s=stall)
        stall = 3 * self.config.clock_check_interval_s + 60.0
        supervise("clock", self.timekeeping.run, stall_after_s=stall)
        supervise("cache", self.content.run)
        if self.config.updates:
            supervise("updates", self.updater.run)
        self.supervisor.watch(self.watchdog)
        self.content.ensure()
        if verified.refused:
            self.sync.schedule_manifest_fetch()  # a fresh signed copy replaces the refused one

    async def halt_tasks(self) -> None:
        """Cancel every task and job, and nothing more: what a kill leaves of the agent
        (`stop` does this first, then its book-keeping)."""
        await self.supervisor.stop()
        background = list(self._background)
        for task in background:
            task.cancel()
        if background:
            # A shutdown must finish even if some I/O ignores its cancellation.
            _, stuck = await asyncio.wait(background, timeout=5)
            for task in stuck:
                log.error("task %s did not stop: %s", task.get_name(), task.get_stack())

    async def stop(self) -> None:
        await self.halt_tasks()
        try:
            await self.sync.save_commands()
        except Exception:
            log.exception("recording the last commands at shutdown failed")
        # Each resource is released even if another one fails: a half-stopped agent would
        # keep libVLC and SQLite threads alive.
        try:
            await self.programme.shutdown()
        except Exception:
            log.exception("closing the current play at shutdown failed")
        # Proofs the card could not take (a full card) are otherwise lost with the process.
        await self.reporting.flush_from_memory(timeout_s=3.0)
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

    def announce_play(self, item: PlayItem) -> None:
        """`item` has started playing: tell whoever watches (tests, the simulator)."""
        if self.on_play_started is not None:
            self.on_play_started(item)
        if self.play_started.full():
            self.play_started.get_nowait()
        self.play_started.put_nowait(item)

    def background(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run a short job (a download, a manifest fetch) beside the supervised tasks; it
        is cancelled at stop, and its failure is logged and shown, never lost."""
        task = asyncio.create_task(coro, name=f"{self.identity.device_id}:{name}")
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("agent job %s failed", task.get_name(), exc_info=exc)
            if is_disk_full(exc):
                self.state_fault(Fault.DISK_FULL, f"{task.get_name()}: {exc}")
            else:
                self.state_fault(Fault.TASK_DIED, f"{task.get_name()}: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------ faults and watchers

    def changed(self) -> None:
        for watcher in self._watchers:
            watcher.set()

    def state_fault(self, fault: Fault, detail: str) -> None:
        """Something was found damaged, altered or failing: say so in the log and, for a
        day, in every health sample."""
        log.error("%s: %s", fault, detail)
        self._state_faults[fault] = (time.monotonic(), detail[:500])
        self.changed()

    def write_failed(self, what: str, exc: BaseException) -> None:
        """The store could not record `what`: the device goes on, and says why."""
        self.counters.write_failures += 1
        fault = Fault.DISK_FULL if is_disk_full(exc) else Fault.STATE_WRITE_FAILED
        self.state_fault(fault, f"{what} not recorded: {type(exc).__name__}: {exc}")

    def state_faults(self) -> list[Fault]:
        horizon = time.monotonic() - STATE_FAULT_SHOWN_S
        return sorted(f for f, (at, _) in self._state_faults.items() if at >= horizon)

    def active_faults(self, player: PlayerHealth | None = None) -> dict[Fault, str]:
        """Every fault the agent sees now, with its reason (fault -> reason). `player`: the
        player's health if the caller has just sampled it (it looks at the sound card)."""
        horizon = time.monotonic() - STATE_FAULT_SHOWN_S
        found: dict[Fault, str] = {
            f: why for f, (at, why) in self._state_faults.items() if at >= horizon
        }
        player = player or self.player.health()
        for fault in player.faults:
            found.setdefault(fault, player.reasons.get(fault, ""))
        died = self.supervisor.died_recently()
        if died:
            found[Fault.TASK_DIED] = "; ".join(died.values())
        stalled = self.supervisor.stalled_problems()
        if stalled:
            found[Fault.TASK_STALLED] = "; ".join(stalled.values())
        room = self.content.refused_for_room
        if room:
            first = next(iter(room.values()))
            more = f" (+{len(room) - 1} more)" if len(room) > 1 else ""
            found[Fault.DISK_FULL] = first + more
        speech = self.content.speech_failures
        if speech:
            found[Fault.SPEECH_FAILED] = "; ".join(f"{b}: {why}" for b, why in speech.items())[:500]
        return found

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

    # ------------------------------------------------------------------ what it holds

    def bulletins(self) -> dict[str, ManifestBulletin]:
        """Every bulletin held: the manifest's, then emergencies pushed since."""
        held: dict[str, ManifestBulletin] = {}
        if self.manifest is not None:
            held.update((b.id, b) for b in self.manifest.bulletins)
        for bulletin_id, bulletin in self.emergencies.items():
            held.setdefault(bulletin_id, bulletin)
        return held

    def commune(self) -> str:
        """The commune this device serves: the signed manifest's word, else enrollment's."""
        return self.manifest.commune if self.manifest else self.identity.commune

    def commune_name(self) -> str:
        """The commune as people name it ("Xã Tân An"); empty until a hub has said."""
        return self.manifest.commune_name if self.manifest is not None else ""

    def manifest_version(self) -> int | None:
        return self.manifest.version if self.manifest else None

    # ------------------------------------------------------------------ for the CLI, the
    # ------------------------------------------------------------------ local page and tests

    def request(
        self, control: str, *, origin: ControlOrigin = "local", command_id: str | None = None
    ) -> None:
        """Ask for a "stop", a "test_tone", a "test_pattern" or a "resync" (see
        Programme.request for who may stop what). `command_id` names the hub's command the
        programme answers once it has acted."""
        if control == "resync":

            async def resync() -> None:
                await self.sync.resync()

            self.background(resync(), "resync")
            return
        self.programme.request(control, origin=origin, command_id=command_id)

    async def resync(self) -> None:
        await self.sync.resync()

    async def apply_manifest(self, envelope: bytes) -> bool:
        return await self.sync.apply_manifest(envelope)

    def volume(self) -> int:
        return self.programme.volume()

    async def set_volume(self, volume: int) -> None:
        await self.programme.set_volume(volume)

    def now_playing(self) -> NowPlayingInfo | None:
        return self.programme.now_playing()

    def upcoming(self, limit: int = 10) -> list[dict[str, Any]]:
        return self.programme.upcoming(limit)

    def schedule_input(self) -> ScheduleInput:
        return self.programme.schedule_input()

    def status_connected(self) -> bool:
        return self.sync.connected.is_set()

    def status_reason(self) -> str | None:
        decision = self.programme.last_decision
        return decision.reason if decision else None

    async def health_fields(self) -> dict[str, Any]:
        return await self.reporting.health_fields()

    async def status(self) -> dict[str, Any]:
        return await self.reporting.status()
