"""The agent's path from a verified emergency frame to "playing" (issue #8 point 3): the replay
check in memory, no disk before the player starts, the durable records right after it."""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.identity import Identity
from edge_agent.parts import BUSY_TURN_S, LoopQuiet, Nudge
from edge_agent.players.base import Player, PlayItem
from edge_agent.players.null import NullPlayer
from edge_agent.profile import load_profile
from hub.config import HubConfig
from hub.keys import load_or_create_signer
from loa_contract import (
    BulletinKind,
    CommandDocument,
    EmergencyCancel,
    EmergencyStart,
    ManifestBulletin,
    PlayOutcome,
    Priority,
    Schedule,
    Scope,
    utcnow,
)
from tests.e2e import LiveHub, enroll_agent, fast_config, live_hub, schedule

TIMEOUT = 15.0


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as live:
        yield live


async def board(
    hub: LiveHub, data: Path, commune: str, player: Player, *, start: bool = True
) -> Agent:
    """An LED board enrolled in `commune` (boards record and pre-empt as speakers do)."""
    return await enroll_agent(
        hub, data, commune=commune, kind="board", profile="led-board-p10", player=player,
        start=start,
    )  # fmt: skip


class StoreWitness(NullPlayer):
    """A null player that notes, as each item starts, what the agent's store already holds."""

    def __init__(self) -> None:
        super().__init__(default_duration_s=600)
        self.agent: Agent | None = None
        #: (bulletin id, command ids on disk, emergencies on disk) at each start.
        self.seen_at_start: list[tuple[str, set[str], set[str]]] = []

    async def play(self, item: PlayItem) -> None:
        await super().play(item)
        assert self.agent is not None and self.agent.store is not None
        store = self.agent.store
        commands = set(await store.seen_commands())
        held = {b.id for b in await store.emergencies()}
        self.seen_at_start.append((item.bulletin_id, commands, held))


def alarm(bulletin_id: str) -> ManifestBulletin:
    now = utcnow()
    return ManifestBulletin(
        id=bulletin_id,
        title="Cảnh báo lũ",
        kind=BulletinKind.TEXT,
        priority=Priority.EMERGENCY,
        text="Lũ trên sông Hồng",
        schedule=Schedule(valid_from=now, valid_until=now + timedelta(hours=1)),
    )


def frames(hub: LiveHub, agent: Agent, bulletin: ManifestBulletin) -> tuple[str, str, str]:
    """A signed start, the same start's id, and a signed cancel, for `agent`."""
    signer = load_or_create_signer(HubConfig(data_dir=hub.data_dir).key_path)
    now = utcnow()
    scope = Scope(devices=[agent.identity.device_id])
    start = EmergencyStart(
        command_id=uuid.uuid4().hex,
        scope=scope,
        issued_at=now,
        expires_at=now + timedelta(minutes=5),
        bulletin=bulletin,
    )
    cancel = EmergencyCancel(
        command_id=uuid.uuid4().hex,
        scope=scope,
        issued_at=now,
        expires_at=now + timedelta(minutes=5),
        bulletin_id=bulletin.id,
    )
    return (
        signer.sign(CommandDocument(command=start)).model_dump_json(),
        start.command_id,
        signer.sign(CommandDocument(command=cancel)).model_dump_json(),
    )


async def test_emergency_plays_before_anything_is_written_then_is_written(
    hub: LiveHub, tmp_path: Path
) -> None:
    await hub.add_commune("xa-f")
    player = StoreWitness()
    agent = await board(hub, tmp_path / "board", "xa-f", player, start=False)
    player.agent = agent
    await agent.start()
    try:
        await agent.wait_until(lambda: agent.manifest_version() is not None, TIMEOUT)
        bulletin = alarm("alarm-" + uuid.uuid4().hex[:6])
        start, command_id, _ = frames(hub, agent, bulletin)
        profiler = cProfile.Profile()
        profiler.enable()
        await agent.sync.handle_push(start)
        item = await asyncio.wait_for(agent.play_started.get(), TIMEOUT)
        assert item.bulletin_id == bulletin.id
        started, commands, held = player.seen_at_start[-1]
        assert started == bulletin.id
        assert command_id not in commands and bulletin.id not in held, "disk before playing"

        assert agent.store is not None
        store = agent.store
        await agent.wait_until(lambda: _recorded(agent, command_id, bulletin.id), TIMEOUT)
        profiler.disable()
        # The command and the emergency it brought went into the play's own commit: one
        # write, not a second one of their own.
        calls = _calls(pstats.Stats(profiler))
        assert ("store.py", "begin_play") in calls
        assert ("store.py", "command_seen") not in calls
        assert (await store.emergency_airings(utcnow()))[0] == {bulletin.id}

        # The same frame again is a replay: refused from memory, nothing starts again.
        await agent.sync.handle_push(start)
        assert agent.play_started.empty()
        assert len(player.seen_at_start) == 1
    finally:
        await agent.stop()

    # After a restart the replay is still refused (the ids were loaded from the store), and
    # the emergency, already begun, is not a new arrival any more.
    again = Agent(
        fast_config(tmp_path / "board"),
        Identity.load(tmp_path / "board"),
        load_profile("led-board-p10"),
        NullPlayer(default_duration_s=600),
    )
    await again.start()
    try:
        assert bulletin.id in again.schedule_input().started
        await again.wait_until(lambda: again.now_playing() is not None, TIMEOUT)
        plays_before = again.play_started.qsize()
        await again.sync.handle_push(start)
        assert again.play_started.qsize() == plays_before
    finally:
        await again.stop()


async def _recorded(agent: Agent, command_id: str, bulletin_id: str) -> bool:
    assert agent.store is not None
    commands = await agent.store.seen_commands()
    held = {b.id for b in await agent.store.emergencies()}
    return command_id in commands and bulletin_id in held


async def test_a_cancel_before_the_record_never_revives_the_emergency(
    hub: LiveHub, tmp_path: Path
) -> None:
    await hub.add_commune("xa-g")
    agent = await board(hub, tmp_path / "board", "xa-g", NullPlayer(default_duration_s=600))
    try:
        await agent.wait_until(lambda: agent.manifest_version() is not None, TIMEOUT)
        bulletin = alarm("alarm-" + uuid.uuid4().hex[:6])
        start, command_id, cancel = frames(hub, agent, bulletin)
        # Back to back, before the programme loop has had a turn to write the start down.
        await agent.sync.handle_push(start)
        await agent.sync.handle_push(cancel)
        assert agent.store is not None
        store = agent.store
        await agent.wait_until(lambda: _has_command(agent, command_id), TIMEOUT)
        await agent.wait_until(lambda: agent.now_playing() is None, TIMEOUT)
        assert bulletin.id not in {b.id for b in await store.emergencies()}
        assert bulletin.id in await store.cancelled()
    finally:
        await agent.stop()


async def test_a_newer_emergency_does_not_wait_for_the_older_ones_bookkeeping(
    hub: LiveHub, tmp_path: Path
) -> None:
    """A start's record waits for a quiet loop, but a newer emergency arriving meanwhile is
    decided on at once, the older start's record written first. Here the loop never counts
    as quiet (every turn is 'busy', for up to two minutes): only the arrival ends the wait."""
    await hub.add_commune("xa-q")
    player = StoreWitness()
    agent = await board(hub, tmp_path / "board", "xa-q", player, start=False)
    player.agent = agent
    agent.quiet = LoopQuiet(busy_turn_s=0.0, at_most_s=120.0)
    await agent.start()
    try:
        await agent.wait_until(lambda: agent.manifest_version() is not None, TIMEOUT)
        first = alarm("alarm-a-" + uuid.uuid4().hex[:6])
        start_first, first_command, _ = frames(hub, agent, first)
        await agent.sync.handle_push(start_first)
        while (await asyncio.wait_for(agent.play_started.get(), TIMEOUT)).bulletin_id != first.id:
            pass
        assert not await _recorded(agent, first_command, first.id), "the wait did not hold"

        second = alarm("alarm-b-" + uuid.uuid4().hex[:6])
        start_second, _, _ = frames(hub, agent, second)
        await agent.sync.handle_push(start_second)
        item = await asyncio.wait_for(agent.play_started.get(), TIMEOUT)
        assert item.bulletin_id == second.id
        started, commands, held = player.seen_at_start[-1]
        assert started == second.id
        assert first_command in commands and first.id in held, "the older record came first"
    finally:
        await agent.stop()


async def _has_command(agent: Agent, command_id: str) -> bool:
    assert agent.store is not None
    return command_id in await agent.store.seen_commands()


class ProfiledPlayer(NullPlayer):
    """Stops the profiler the moment an emergency is playing: the span measured is exactly
    frame received -> emergency playing."""

    def __init__(self, profiler: cProfile.Profile) -> None:
        super().__init__(default_duration_s=600)
        self.profiler = profiler

    async def play(self, item: PlayItem) -> None:
        await super().play(item)
        if item.priority is Priority.EMERGENCY:
            self.profiler.disable()


def _calls(stats: pstats.Stats) -> dict[tuple[str, str], int]:
    """(file name, function name) -> primitive call count."""
    return {
        (Path(file).name, name): counts[0]
        for (file, _line, name), counts in stats.stats.items()  # type: ignore[attr-defined]
    }


#: The steps from a verified frame to the player (other tasks, such as the follow-up writing
#: earlier commands down, may run in the same span; they are not on this path).
PUSH_PATH = {"handle_push", "_first_sight", "_accept_emergency", "_decide", "_apply"}


def _store_calls_on_the_path(stats: pstats.Stats) -> dict[str, int]:
    calls: dict[str, int] = {}
    for (file, _line, name), entry in stats.stats.items():  # type: ignore[attr-defined]
        callers = entry[4]
        if Path(file).name == "store.py" and any(c[2] in PUSH_PATH for c in callers):
            calls[name] = calls.get(name, 0) + entry[0]
    return calls


async def test_push_to_playing_reads_no_disk_and_parses_nothing_again(
    hub: LiveHub, tmp_path: Path
) -> None:
    await hub.add_commune("xa-h")
    profiler = cProfile.Profile()
    agent = await board(hub, tmp_path / "board", "xa-h", ProfiledPlayer(profiler))
    try:
        now = utcnow()
        for n in range(6):
            await hub.publish(
                {
                    "title": f"Tin {n}",
                    "kind": "text",
                    "priority": "normal",
                    "text": f"Bản tin số {n}",
                    "targets": {"communes": ["xa-h"]},
                    # Half with fixed times, which the programme airs only at those times.
                    "schedule": schedule(now, times=["06:00", "17:30"] if n % 2 else []),
                }
            )
        await agent.wait_until(lambda: len(agent.schedule_input().candidates) == 6, TIMEOUT)
        await agent.wait_until(lambda: agent.now_playing() is not None, TIMEOUT)
        agent.schedule_input()  # candidates gathered, as they are between pushes
        bulletin = alarm("alarm-" + uuid.uuid4().hex[:6])
        start, _, _ = frames(hub, agent, bulletin)

        profiler.enable()
        await agent.sync.handle_push(start)
        while (
            await asyncio.wait_for(agent.play_started.get(), TIMEOUT)
        ).bulletin_id != bulletin.id:
            pass
        profiler.disable()  # already off if the emergency played; harmless otherwise
    finally:
        await agent.stop()

    stats = pstats.Stats(profiler)
    calls = _calls(stats)
    assert calls.get(("sync.py", "handle_push"), 0) == 1
    store_calls = _store_calls_on_the_path(stats)
    assert store_calls == {}, f"the store was used before playing: {store_calls}"
    assert calls.get(("models.py", "parse_hhmm"), 0) == 0, "windows or times parsed again"
    # Only the new emergency is made into a candidate; the held bulletins are reused.
    assert calls.get(("programme.py", "_candidate"), 0) == 1


class CrashAtEmergency(NullPlayer):
    """Starts the emergency, then the process "dies" (the programme loop's task ends there),
    before any durable record of the emergency or its play is written."""

    def __init__(self) -> None:
        super().__init__(default_duration_s=600)
        self.crashed = asyncio.Event()

    async def play(self, item: PlayItem) -> None:
        await super().play(item)
        if item.priority is Priority.EMERGENCY:
            self.crashed.set()
            raise asyncio.CancelledError


async def _abandon(agent: Agent) -> None:
    """What kill -9 leaves: no shutdown book-keeping, the files as they are."""
    await agent.halt_tasks()
    await agent.client.close()
    assert agent.store is not None
    await agent.store.close()


async def test_a_crash_between_playing_and_recording_loses_nothing_and_counts_nothing_twice(
    hub: LiveHub, tmp_path: Path
) -> None:
    await hub.add_commune("xa-k")
    data = tmp_path / "board"
    first = await board(hub, data, "xa-k", (crashing := CrashAtEmergency()))
    await first.wait_until(lambda: first.status_connected(), TIMEOUT)
    emergency = await hub.call(
        "POST", "/api/v1/emergencies", json={"title": "Cháy chợ", "text": "Cháy chợ xã"}
    )
    await asyncio.wait_for(crashing.crashed.wait(), TIMEOUT)
    assert crashing.last_item is not None and crashing.last_item.bulletin_id == emergency["id"]
    await _abandon(first)

    player = NullPlayer(durations={emergency["id"]: 0.3})
    second = Agent(fast_config(data), Identity.load(data), load_profile("led-board-p10"), player)
    restarted = utcnow()
    await second.start()
    try:
        # Not lost: the hub sends the active emergency again on reconnecting (the manifest
        # holds it too); it was never begun on record, so it cuts in as a new arrival.
        item = await asyncio.wait_for(second.play_started.get(), TIMEOUT)
        assert item.bulletin_id == emergency["id"]
        assert second.store is not None
        store = second.store
        await second.wait_until(lambda: _completed(second, emergency["id"], 2), TIMEOUT)
        plays = [p for p in await store.recent_plays(100) if p.bulletin_id == emergency["id"]]
        # Counted once per airing heard: nothing from before the crash, no recovered play.
        assert all(p.started_at >= restarted for p in plays)
        assert {p.outcome for p in plays} <= {PlayOutcome.COMPLETED, PlayOutcome.PREEMPTED}
    finally:
        await second.stop()


async def _completed(agent: Agent, bulletin_id: str, at_least: int) -> bool:
    assert agent.store is not None
    plays = await agent.store.recent_plays(100)
    done = [p for p in plays if p.bulletin_id == bulletin_id and p.outcome is PlayOutcome.COMPLETED]
    return len(done) >= at_least


async def test_bookkeeping_waits_for_a_busy_loop_and_not_for_a_quiet_one() -> None:
    """`LoopQuiet`, which the start's durable record awaits: a turn or so on a quiet loop;
    while other work makes each turn long (a burst of starts), it waits until that ends,
    and never longer than its bound; however many wait, one watcher measures the turns."""
    quiet = LoopQuiet()
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_turns())
    await asyncio.sleep(0)
    before = turns
    await quiet.wait()
    assert turns - before <= 3  # about what asyncio.sleep(0) costs
    counter.cancel()

    busy_turns_left = 5

    async def burst() -> None:
        nonlocal busy_turns_left
        while busy_turns_left:
            _hold_the_loop(BUSY_TURN_S * 2)  # one long turn: a batch of agents starting
            busy_turns_left -= 1
            await asyncio.sleep(0)

    task = asyncio.create_task(burst())
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(quiet.wait()) for _ in range(100)]
    await asyncio.sleep(0)
    watchers = [t for t in asyncio.all_tasks() if t.get_name() == "loop-quiet"]
    assert len(watchers) == 1
    await asyncio.gather(*waiting)
    assert busy_turns_left == 0, "returned while the loop was still busy"
    await task

    endless = asyncio.Event()

    async def busy_for_ever() -> None:
        while not endless.is_set():
            _hold_the_loop(BUSY_TURN_S * 2)
            await asyncio.sleep(0)

    hog = asyncio.create_task(busy_for_ever())
    await asyncio.sleep(0)
    started = time.monotonic()
    await LoopQuiet(at_most_s=0.1).wait()
    assert 0.1 <= time.monotonic() - started < 1.0

    # Something the waiter must act on (a newer emergency for the programme loop) ends the
    # wait at once, busy loop or not.
    arrival = Nudge()
    asyncio.get_running_loop().call_soon(arrival.set)
    started = time.monotonic()
    await LoopQuiet(at_most_s=30).wait(unless=arrival)
    assert time.monotonic() - started < 1.0
    endless.set()
    await hog


def _hold_the_loop(seconds: float) -> None:
    """Work that keeps the event loop's thread, as a batch of agents starting does."""
    time.sleep(seconds)


async def test_an_emergency_plays_at_once_on_a_clock_behind_the_hubs(
    hub: LiveHub, tmp_path: Path
) -> None:
    """A device's estimate of the hub's time can trail it (anchored on a reply a busy loop
    read late: 6 s in the 5,000-device simulator). A start the hub signed "in the future" of
    that estimate brings the estimate forward and plays at once, not once it catches up."""
    await hub.add_commune("xa-k")
    agent = await board(hub, tmp_path / "board", "xa-k", NullPlayer(default_duration_s=600))
    try:
        await agent.wait_until(lambda: agent.manifest_version() is not None, TIMEOUT)
        assert agent.clock.corrected(), "the test needs a clock the hub has anchored"
        behind = timedelta(seconds=120)
        agent.clock.observe_signed_time(utcnow() - behind)
        assert agent.clock.now() < utcnow() - behind / 2
        bulletin = alarm("alarm-" + uuid.uuid4().hex[:6])
        signed_before = utcnow()
        start, _, _ = frames(hub, agent, bulletin)
        await agent.sync.handle_push(start)
        # The start's signed time moved the estimate forward: not only this emergency, but
        # window edges and proofs of play are timed on it.
        assert agent.clock.now() >= signed_before
        item = await asyncio.wait_for(agent.play_started.get(), TIMEOUT)
        assert item.bulletin_id == bulletin.id
    finally:
        await agent.stop()
