"""The programme (chương trình phát): what plays, decided by the pure scheduler, obeyed by
the one Player.

One task — the programme loop — owns everything about what plays: player events, commands
and pushes only enqueue work and wake it, so no two coroutines ever drive the player at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from loa_contract import (
    AckStatus,
    BroadcastWindow,
    BulletinKind,
    DeviceKind,
    Fault,
    Manifest,
    ManifestBulletin,
    NowPlayingInfo,
    PlayOutcome,
    Priority,
    parse_hhmm,
)
from loa_contract.models import VN_TZ

from .airing import rendition_item
from .parts import AgentPart, Nudge, wait_event
from .players.base import EventType, PlaybackEvent, PlayItem
from .renditions import Rendition
from .scheduler import EMERGENCY_SLOT, LONGEST_RETRY, decide, failure_backoff
from .scheduler_types import (
    Action,
    Candidate,
    DailyWindow,
    Decision,
    ParsedWindow,
    Playing,
    ScheduleInput,
    Suspended,
    WindowPlan,
)
from .speech import speech_key
from .test_pattern import ensure_test_pattern
from .tone import ensure_test_tone

if TYPE_CHECKING:
    from .agent import Agent

log = logging.getLogger("edge_agent")

TEST_TONE_ID = "__test_tone__"
#: A command's ack reason when the device tried and its player failed (the detail says why).
PLAY_FAILED = "play_failed"
T = TypeVar("T")

#: Who asked for a control: the commune's LAN page or a technician ("local"), or a command
#: the hub signed ("hub").
ControlOrigin = Literal["local", "hub"]


def _parsed(windows: list[BroadcastWindow]) -> tuple[ParsedWindow, ...]:
    return tuple(ParsedWindow(w.start_time, w.end_time) for w in windows)


def window_plan(manifest: Manifest) -> WindowPlan:
    """The manifest's windows as the scheduler takes them, parsed once per manifest."""
    return WindowPlan(
        _parsed(manifest.windows),
        tuple((w.weekday, _parsed(w.windows)) for w in manifest.weekly_windows),
        tuple((e.date, _parsed(e.windows)) for e in manifest.window_exceptions),
    )


class ControlRefused(Exception):
    """A control the agent will not carry out; `code` is stable, the message is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Current:
    """What the programme loop has started and not yet closed."""

    play_id: int | None  # None for a test tone, or when its start could not be recorded
    item: PlayItem
    slot: str
    started_at: datetime
    bulletin: ManifestBulletin | None
    #: The monotonic clock at the start: how long it played is measured on it, so a clock
    #: correction mid-airing (NTP, the hub's signed time) never stretches a proof of play.
    started_mono: float = field(default_factory=time.monotonic)

    def ended_at(self) -> datetime:
        return self.started_at + timedelta(seconds=time.monotonic() - self.started_mono)


def failure_counts(slot: str) -> bool:
    """Whether a failed airing counts as one of the item's airings.

    An emergency's does not: it was not heard, so it is still owed, and its hold
    (`failure_backoff`) keeps the tries apart until the output works or it expires. Any
    other item's does, so that one broken item does not hold up a window's programme."""
    return slot != EMERGENCY_SLOT


class Programme(AgentPart):
    """Decides and plays; the only part that drives the player."""

    def __init__(self, agent: Agent) -> None:
        super().__init__(agent)
        self.current: Current | None = None
        self.suspended: Suspended | None = None
        self.aired: dict[tuple[str, str], int] = {}
        #: Emergencies begun here, and when each last aired in full (ScheduleInput).
        self.started_emergencies: set[str] = set()
        self.last_aired: dict[str, datetime] = {}
        #: Failed airings in a row per bulletin, and until when each may not start again
        #: (ScheduleInput.held_back). In memory only: a restart gives each a new chance.
        self.failures: dict[str, int] = {}
        self.held_back: dict[str, datetime] = {}
        #: The hub command of the test tone on air, answered when it ends (`_answer_test`).
        self._test_ack: str | None = None
        self.volume_override: int | None = None
        self.last_decision: Decision | None = None
        #: The scheduler's view of the held bulletins, built again only when the manifest, the
        #: held emergencies, the cache or the clock's anchoring change (`held_changed`), and
        #: then only for the bulletins that changed: bulletin id -> (the bulletin it was built
        #: from, its validity shift, its Candidate or None while it cannot play here).
        self._candidates: tuple[Candidate, ...] | None = None
        self._candidate_of: dict[str, tuple[ManifestBulletin, timedelta, Candidate | None]] = {}
        self._windows: WindowPlan = WindowPlan(())
        self._windows_of: object = None  # the manifest `_windows` were parsed from
        #: Controls waiting for the loop: what, who asked, and the hub command to answer.
        self._pending_controls: deque[tuple[str, ControlOrigin, str | None]] = deque()
        self._player_events: deque[PlaybackEvent] = deque()
        #: Plays whose end the store could not record yet (a full card), oldest first.
        self._unfinished: list[tuple[int, datetime, PlayOutcome, float, bool]] = []
        self.wake = asyncio.Event()
        #: Set when what the scheduler decides from changed (a held bulletin, a control):
        #: bookkeeping that waits for a quiet loop stops waiting (see `_apply`).
        self.inputs_changed = Nudge()

    async def restore(self, now: datetime) -> None:
        """Take back what the store kept of the programme across a restart."""
        store = self.store
        self.suspended = await store.suspended()
        self.aired = await store.aired_counts(now - timedelta(days=2))
        started, self.last_aired = await store.emergency_airings(now - timedelta(days=2))
        self.started_emergencies = set(started)
        stored_volume = await store.get_setting("volume")
        self.volume_override = int(stored_volume) if stored_volume is not None else None
        self.agent.player.set_event_sink(self._on_player_event)

    async def shutdown(self) -> None:
        """Close the airing on air, if any: it was stopped, not heard out."""
        if self.current is not None:
            position = await self.agent.player.stop()
            await self.close_current(PlayOutcome.STOPPED, position, counts_as_aired=False)

    # ------------------------------------------------------------------ what can play

    def _on_player_event(self, event: PlaybackEvent) -> None:
        self._player_events.append(event)
        self.wake.set()

    def play_item(
        self, bulletin: ManifestBulletin, start_at_s: float = 0.0, *, check_file: bool = True
    ) -> PlayItem | None:
        """The item a backend can play for this bulletin on this hardware, if it is ready.

        On the emergency path: it reads nothing but what is in memory and, for audio and
        video, one stat() of the verified file (none with `check_file=False`: weighing
        candidates, where the file is checked once one is chosen). A document or a picture
        plays only once its rendition (content.py) is made; a text a speaker airs, once its
        speech is."""
        agent = self.agent
        profile = agent.profile
        if bulletin.kind not in profile.kinds:  # a handful: no set to build on each call
            return None
        common: dict[str, Any] = {
            "bulletin_id": bulletin.id,
            "priority": bulletin.priority,
            "title": bulletin.title,
            "display_seconds": bulletin.display_seconds,
            "start_at_s": start_at_s,
        }
        content = agent.content
        kind = bulletin.kind
        media = bulletin.media
        if kind in (BulletinKind.IMAGE, BulletinKind.DOCUMENT) and media is not None:
            # Made from verified bytes, and airs only while they are held and unchanged (an
            # evicted file takes its bulletin off the air as it always did).
            rendition = content.rendition(bulletin) if agent.cache.has(media.sha256) else None
            if rendition is not None and (rendition.pages or rendition.image or rendition.frames):
                return self._picture_item(rendition, common)
            if kind is BulletinKind.IMAGE:
                return None
        if kind in (BulletinKind.TEXT, BulletinKind.DOCUMENT):
            words = content.words(bulletin)
            if not words or not words.strip():
                return None
            if profile.device_kind is DeviceKind.SPEAKER:
                if agent.speech is None:
                    return None
                path = agent.cache.derived_path(speech_key(agent.speech.engine_id, words), ".wav")
                if path is None:
                    return None
                return PlayItem(kind=BulletinKind.AUDIO, path=path, **common)
            return PlayItem(kind=BulletinKind.TEXT, text=words, **common)
        if bulletin.media is not None:
            cache = agent.cache
            sha = bulletin.media.sha256
            if check_file:
                path = cache.path_for(sha)
            else:
                path = cache.object_path(sha) if cache.verified(sha) else None
            if path is None:
                return None
            return PlayItem(kind=bulletin.kind, path=path, **common)
        return None

    def _picture_item(self, rendition: Rendition, common: dict[str, Any]) -> PlayItem:
        """A board's item for a document's pages, an animation's frames or a still picture,
        all made at cache time at this screen's size."""
        return rendition_item(
            rendition, self.agent.cache.derived, self.agent.profile.display, common
        )

    def held_changed(self, *, content: bool = False) -> None:
        """The manifest, the held emergencies or the clock's anchoring changed (with
        `content`: what the cache holds changed too): the scheduler's candidates are
        gathered again at the next decision."""
        self._candidates = None
        self.inputs_changed.set()
        if content:
            self._candidate_of.clear()  # what is playable may have changed for any of them
        manifest = self.agent.manifest
        if manifest is not self._windows_of:
            self._windows_of = manifest
            self._windows = window_plan(manifest) if manifest else WindowPlan(())

    def windows_today(self) -> tuple[DailyWindow, ...]:
        """The windows of today's local date (the local page shows them)."""
        manifest = self.agent.manifest
        if manifest is None:
            return ()
        return window_plan(manifest).for_day(self.agent.clock.now().astimezone(VN_TZ).date())

    def _gather_candidates(self) -> tuple[Candidate, ...]:
        known = self._candidate_of
        self._candidate_of = {}
        candidates = []
        shifts = self.agent.emergency_shift
        for bulletin in self.agent.bulletins().values():
            shift = shifts.get(bulletin.id, timedelta(0))
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
        if self.play_item(bulletin, check_file=False) is None:
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
        agent = self.agent
        now = agent.clock.now()
        if self._candidates is None:
            self._candidates = self._gather_candidates()
        playing = None
        if self.current is not None:
            current = self.current
            playing = Playing(
                bulletin_id=current.item.bulletin_id,
                priority=current.item.priority,
                slot=current.slot,
                started_at=current.started_at,
                position_s=agent.player.position(),
            )
        manifest = agent.manifest
        return ScheduleInput(
            now=now,
            device_kind=agent.profile.device_kind,
            windows=self._windows,
            candidates=self._candidates,
            playing=playing,
            suspended=self.suspended,
            aired=dict(self.aired),
            cancelled=frozenset(agent.cancelled),
            clock_trusted=agent.clock.status().trusted,
            resume_mode=manifest.resume_mode if manifest else "resume",
            started=frozenset(self.started_emergencies),
            last_aired=dict(self.last_aired),
            held_back=dict(self.held_back),
        )

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        agent = self.agent
        # The moment the device can air again after a start (bench/update_switch.py times the
        # silence of a release switch to this line).
        log.info("programme loop running")
        while True:
            # The supervisor feeds systemd's watchdog only while this beat keeps coming: a
            # loop stuck on a hung backend gets the agent restarted.
            agent.supervisor.beat("programme")
            self.wake.clear()
            self.inputs_changed.clear()
            if self._unfinished:
                await self._finish_unfinished()
            await self._handle_player_events()
            await self._handle_controls()
            decision = self._decide()
            self.last_decision = decision
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
                await agent.sync.follow_up()
                agent.changed()
                continue
            await agent.sync.follow_up()
            agent.changed()
            if self.current is None or not self.sounds(self.current.item):
                agent.relay.audio_ended()
            timeout = agent.config.heartbeat_s
            if decision.next_check is not None:
                due = max(0.0, (decision.next_check - agent.clock.now()).total_seconds())
                timeout = min(timeout, due)
            await wait_event(self.wake, timeout)

    def sounds(self, item: PlayItem) -> bool:
        audible = item.kind in (BulletinKind.AUDIO, BulletinKind.VIDEO)
        return audible and self.agent.profile.audio is not None

    def _decide(self) -> Decision:
        inp = self.schedule_input()
        if self.current is not None and self.current.item.bulletin_id == TEST_TONE_ID:
            # A technician's test tone runs to its end; only an emergency cuts it.
            decision = decide(dataclasses.replace(inp, playing=None, suspended=None))
            emergency = self.agent.bulletins().get(decision.bulletin_id or "")
            if (
                decision.action is Action.START
                and emergency is not None
                and (emergency.priority is Priority.EMERGENCY)
            ):
                return decision
            return Decision(Action.KEEP, next_check=decision.next_check, reason="test tone")
        return decide(inp)

    async def _apply(self, decision: Decision) -> None:
        agent = self.agent
        player = agent.player
        if decision.action is Action.STOP:
            if self.current is not None:
                position = await player.stop()
                await self.close_current(PlayOutcome.STOPPED, position, counts_as_aired=False)
            return
        bulletin = agent.bulletins().get(decision.bulletin_id or "")
        item = self.play_item(bulletin, decision.start_at_s) if bulletin else None
        if bulletin is None or item is None or decision.slot is None:
            log.error("scheduler chose %s, which is not playable", decision.bulletin_id)
            # Typically its cached file changed since it was verified: it is hashed again
            # (or fetched again) off this path, and the scheduler picks without it meanwhile.
            self.held_changed(content=True)
            agent.content.ensure()
            return
        store = self.store
        previous = self.current
        previous_position = 0.0
        if previous is not None:
            # Stop first so the emergency is heard at once; book-keeping follows.
            previous_position = await player.stop()
        resumed = self.suspended is not None and self.suspended.bulletin_id == bulletin.id
        await self._set_volume_for(bulletin.priority)
        started_at = agent.clock.now()
        current = Current(None, item, decision.slot, started_at, bulletin)
        self.current = current
        failed = False
        try:
            if self.sounds(item):
                # Returns at once when the amplifier is already on: no pre-roll in that path.
                await self._amplifier_on(bulletin.priority is Priority.EMERGENCY)
            await player.play(item)
        except Exception as exc:
            log.error("could not play %s: %s", bulletin.id, exc)
            failed = True
        else:
            agent.announce_play(item)
        if decision.slot == EMERGENCY_SLOT:
            self.started_emergencies.add(bulletin.id)
        # The durable record follows the start, so the disk never delays what is heard. A
        # crash before it leaves no trace: the item was not heard out and airs again.
        # The commands that brought it (a pushed emergency's id, the emergency itself) go
        # into the same commit.
        # The loop first: whatever else is ready to start now (the relay, a board's frame,
        # in the simulator the fleet's other agents) starts before this disk work is handed
        # to the store's thread, whose wake-ups contend for the GIL.
        # Not past a new arrival (an emergency, a cancel, a new manifest): the loop must get
        # to decide on it, and this record goes first.
        await agent.quiet.wait(unless=self.inputs_changed)
        seen = agent.sync.take_unsaved()
        current.play_id = await self._recorded(
            "the start of a play",
            store.begin_play(
                bulletin.id, decision.slot, bulletin.priority, bulletin.kind, started_at, seen=seen
            ),
        )
        if current.play_id is None:
            agent.sync.give_back(seen)
        elif seen:
            agent.sync.saved()
        if failed:
            await self.close_current(
                PlayOutcome.FAILED, 0.0, counts_as_aired=failure_counts(decision.slot)
            )
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
                self.suspended = Suspended(
                    previous.item.bulletin_id, previous.slot, previous_position
                )
                await self._recorded("the item cut", store.save_suspended(self.suspended))
        if resumed:
            self.suspended = None
            await self._recorded("the item resumed", store.save_suspended(None))

    async def close_current(
        self, outcome: PlayOutcome, position: float, *, counts_as_aired: bool, why: str = ""
    ) -> None:
        """Close the airing on air; `why`: the player's words when it failed."""
        current, self.current = self.current, None
        if current is not None:
            await self._close_play(
                current, outcome, position, counts_as_aired=counts_as_aired, why=why
            )

    async def _close_play(
        self,
        current: Current,
        outcome: PlayOutcome,
        position: float,
        *,
        counts_as_aired: bool,
        why: str = "",
    ) -> None:
        if self.current is current:
            self.current = None
        if current.item.bulletin_id == TEST_TONE_ID:
            self._answer_test(outcome, why)
        if current.bulletin is None:
            return  # a test tone: not an airing of anything
        now = self.agent.clock.now()
        ended_at = current.ended_at()
        if current.play_id is not None:
            close = (current.play_id, ended_at, outcome, position, counts_as_aired)
            if not await self._finish(close):
                # Its open row waits; written as soon as the card takes writes again, so
                # neither lost nor, after a restart, reported twice.
                self._unfinished.append(close)
        else:
            # Its start could not be recorded (a full card): the proof goes to the hub from
            # memory rather than nowhere.
            self.agent.reporting.proof_from_memory(
                current.item.bulletin_id,
                current.item.priority,
                current.bulletin.kind,
                current.started_at,
                ended_at,
                outcome,
                position,
            )
        bulletin_id = current.item.bulletin_id
        if outcome is PlayOutcome.FAILED:
            # A hold long over (nothing tried it since) starts the count again; this also
            # forgets bulletins that were removed meanwhile.
            for stale in [b for b, until in self.held_back.items() if until < now - LONGEST_RETRY]:
                del self.held_back[stale]
                self.failures.pop(stale, None)
            failures = self.failures[bulletin_id] = self.failures.get(bulletin_id, 0) + 1
            self.held_back[bulletin_id] = now + failure_backoff(failures)
        elif outcome is PlayOutcome.COMPLETED:
            self.failures.pop(bulletin_id, None)
            self.held_back.pop(bulletin_id, None)
        if counts_as_aired:
            key = (current.item.bulletin_id, current.slot)
            self.aired[key] = self.aired.get(key, 0) + 1
            if current.slot == EMERGENCY_SLOT:
                self.last_aired[current.item.bulletin_id] = now
        self.agent.report_wake.set()

    async def _finish(self, close: tuple[int, datetime, PlayOutcome, float, bool]) -> bool:
        play_id, ended_at, outcome, position, counts_as_aired = close
        try:
            await self.store.finish_play(play_id, ended_at, outcome, position, counts_as_aired)
        except (sqlite3.Error, OSError) as exc:
            self.agent.write_failed("the end of a play", exc)
            return False
        return True

    async def _finish_unfinished(self) -> None:
        """Close, in order, the plays whose end the store could not take before."""
        while self._unfinished:
            if not await self._finish(self._unfinished[0]):
                return
            self._unfinished.pop(0)
            self.agent.report_wake.set()

    async def _recorded(self, what: str, write: Awaitable[T]) -> T | None:
        """Await a store write; if the card cannot take it, the programme goes on (what is
        heard matters more than its record) and the failure is reported with its reason."""
        try:
            return await write
        except (sqlite3.Error, OSError) as exc:
            self.agent.write_failed(what, exc)
            return None

    async def _handle_player_events(self) -> None:
        while self._player_events:
            event = self._player_events.popleft()
            current = self.current
            if current is None or event.bulletin_id != current.item.bulletin_id:
                continue  # a late event of an item already replaced
            if event.type is EventType.ENDED:
                await self.close_current(
                    PlayOutcome.COMPLETED, event.position_s, counts_as_aired=True
                )
            elif event.type is EventType.ERROR:
                log.error("player failed on %s: %s", event.bulletin_id, event.detail)
                await self.close_current(
                    PlayOutcome.FAILED,
                    event.position_s,
                    counts_as_aired=failure_counts(current.slot),
                    why=event.detail,
                )

    async def _handle_controls(self) -> None:
        agent = self.agent
        player = agent.player
        while self._pending_controls:
            control, origin, command_id = self._pending_controls.popleft()
            current = self.current
            if control == "stop" and current is not None and origin == "local":
                # Checked again here, not only in request(): an emergency may have started
                # between the request and now, and a stop meant for the item before it must
                # not silence the warning.
                refusal = self._local_stop_refusal(current.item)
                if refusal is not None:
                    self._refuse_control(control, refusal)
                    continue
            if control == "stop":
                if current is not None:
                    position = await player.stop()
                    # An operator's stop counts as aired so the programme does not replay it.
                    await self.close_current(PlayOutcome.STOPPED, position, counts_as_aired=True)
                self._answer(command_id, AckStatus.APPLIED)
            elif control in ("test_tone", "test_pattern"):
                if current is not None and current.item.priority is Priority.EMERGENCY:
                    log.info("%s refused: an emergency is on air", control)
                    self._answer(
                        command_id,
                        AckStatus.REFUSED,
                        "emergency_on_air",
                        f"emergency {current.item.bulletin_id} is on air",
                    )
                    continue
                if current is not None:
                    position = await player.stop()
                    await self.close_current(PlayOutcome.STOPPED, position, counts_as_aired=False)
                data_dir = agent.config.data_dir
                if control == "test_pattern":
                    # A board's check: colour bars and a frame show dead pixels and cropping.
                    display = agent.profile.display
                    size = display.screen_size if display else (640, 360)
                    pattern = await asyncio.to_thread(ensure_test_pattern, data_dir, size)
                    kind, title, path = BulletinKind.IMAGE, "Test pattern", pattern
                else:
                    tone = await asyncio.to_thread(ensure_test_tone, data_dir)
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
                self.current = Current(None, item, "test", agent.clock.now(), None)
                try:
                    if self.sounds(item):
                        await self._amplifier_on(False)
                    await player.play(item)
                except Exception as exc:  # the loop goes on; the hub hears why
                    log.error("%s could not play: %s", control, exc)
                    self.current = None
                    self._answer(command_id, AckStatus.REFUSED, PLAY_FAILED, str(exc)[:500])
                    continue
                agent.announce_play(item)
                if control == "test_tone":
                    # Answered once it is heard out (or fails): libVLC says "playing" before
                    # it knows whether the sound reached the loudspeaker.
                    self._test_ack = command_id
                else:
                    self._answer(command_id, AckStatus.APPLIED)

    async def _amplifier_on(self, emergency: bool) -> None:
        """Switch the amplifier on before sound. If its GPIO fails, say so and play anyway:
        an amplifier left powered, or wired past the relay, may still carry the sound, and
        an airing not tried is certainly not heard."""
        try:
            await self.agent.relay.before_audio(emergency)
        except Exception as exc:
            self.agent.state_fault(Fault.RELAY_FAILED, f"{type(exc).__name__}: {exc}")

    def _answer_test(self, outcome: PlayOutcome, why: str) -> None:
        """Answer the hub's test tone now that it ended: heard out or cut short (it played),
        or failed (with the player's words)."""
        command_id, self._test_ack = self._test_ack, None
        if outcome is PlayOutcome.FAILED:
            self._answer(command_id, AckStatus.REFUSED, PLAY_FAILED, why[:500] or None)
        else:
            self._answer(command_id, AckStatus.APPLIED)

    def _answer(
        self,
        command_id: str | None,
        status: AckStatus,
        reason: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Tell the hub what became of its command (local controls have none to answer)."""
        if command_id is not None:
            self.agent.sync.acknowledge(command_id, status, reason, detail)

    # ------------------------------------------------------------------ controls and volume

    def volume(self) -> int:
        agent = self.agent
        audio = agent.profile.audio
        wanted = self.volume_override
        if wanted is None:
            wanted = agent.manifest.volume if agent.manifest else 70
        if audio is None:
            return wanted
        return max(audio.volume_min, min(audio.volume_max, wanted))

    async def _set_volume_for(self, priority: Priority) -> None:
        audio = self.agent.profile.audio
        if priority is Priority.EMERGENCY and audio is not None:
            await self.agent.player.set_volume(audio.emergency_volume)
        else:
            await self.agent.player.set_volume(self.volume())

    async def set_volume(self, volume: int) -> None:
        self.volume_override = volume
        await self.store.set_setting("volume", str(volume))
        await self.volume_changed()

    async def volume_changed(self) -> None:
        """The commune's loudness changed: heard now, not at the next item (an emergency
        keeps the profile's own level)."""
        if self.current is None or self.current.item.priority is not Priority.EMERGENCY:
            await self.agent.player.set_volume(self.volume())

    def request(
        self, control: str, *, origin: ControlOrigin = "local", command_id: str | None = None
    ) -> None:
        """Ask the programme loop to "stop", play a "test_tone" or show a "test_pattern".

        A local "stop" of an emergency raises ControlRefused: the province fired it and only
        the hub's signed cancel or stop ends it (DESIGN.md §2), whoever is logged in on the
        commune LAN. The default origin is "local" so a caller that forgets to say who asks
        gets the safe rule.
        """
        current = self.current
        if control == "stop" and origin == "local" and current is not None:
            refusal = self._local_stop_refusal(current.item)
            if refusal is not None:
                self._refuse_control(control, refusal)
                raise ControlRefused("emergency_on_air", refusal)
        self._pending_controls.append((control, origin, command_id))
        self.inputs_changed.set()
        self.wake.set()

    @staticmethod
    def _local_stop_refusal(item: PlayItem) -> str | None:
        """Why a local stop of `item` is refused, or None if it may be stopped."""
        if item.priority is Priority.EMERGENCY:
            return f"emergency {item.bulletin_id} is on air; only the province's cancel ends it"
        return None

    def _refuse_control(self, control: str, reason: str) -> None:
        self.agent.counters.refused_controls += 1
        log.warning("refused local %s: %s", control, reason)
        self.agent.changed()

    # ------------------------------------------------------------------ what people see

    def now_playing(self) -> NowPlayingInfo | None:
        current = self.current
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

        if self.current is not None:
            count(self.current.item.bulletin_id, self.current.slot)
        held = self.agent.bulletins()
        board = self.agent.profile.device_kind is DeviceKind.BOARD
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
                    # Listed as owed even while a failure holds it back a moment.
                    held_back={},
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
