"""Issue #9 point 1: supervision. A task that dies is restarted with backoff and shows as a
fault with its reason; systemd's watchdog is fed only while every task is alive and none has
stalled. Caused for real: a backend that raises, a backend that hangs, a task cancelled."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_agent.players.base import PlayerState, PlayItem
from edge_agent.players.null import NullPlayer
from edge_agent.sdnotify import Watchdog
from edge_agent.supervisor import Supervisor, restart_delay
from tests.e2e import LiveHub, enroll_agent, live_hub

TIMEOUT = 15.0


# ---------------------------------------------------------------- the pure part


@pytest.mark.parametrize(
    ("deaths", "expected"),
    [(0, 1.0), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 256.0), (10, 300.0), (10_000, 300.0)],
)
def test_restart_delay_doubles_from_the_minimum_up_to_the_maximum(
    deaths: int, expected: float
) -> None:
    assert restart_delay(deaths, 1.0, 300.0) == expected


def test_restart_delay_never_exceeds_its_bounds() -> None:
    for minimum in (0.0, 0.01, 1.0, 5.0):
        for maximum in (0.0, 0.5, 60.0):
            previous = 0.0
            for deaths in range(0, 200):
                delay = restart_delay(deaths, minimum, maximum)
                assert 0.0 <= delay <= max(maximum, 0.0)
                assert delay >= previous  # never shorter after another death
                previous = delay


# ---------------------------------------------------------------- the supervisor alone


def notify_socket(path: Path) -> socket.socket:
    """What systemd listens on for sd_notify datagrams."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.setblocking(False)
    return listener


def drain(listener: socket.socket) -> None:
    """Forget the datagrams sent so far."""
    while True:
        try:
            listener.recv(64)
        except BlockingIOError:
            return


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def test_a_task_that_dies_is_restarted_and_its_reason_kept() -> None:
    runs: list[int] = []
    second_run = asyncio.Event()
    changed = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise RuntimeError("database is locked")
        second_run.set()
        await asyncio.Event().wait()

    supervisor = Supervisor("t", on_change=changed.set, backoff_min_s=0.01)
    supervisor.add("reports", flaky)
    try:
        await asyncio.wait_for(second_run.wait(), TIMEOUT)
        assert changed.is_set()
        assert supervisor.restarts("reports") == 1
        assert supervisor.healthy()
        problems = supervisor.problems()
        assert "RuntimeError: database is locked" in problems["reports"]
        assert "restarted 1×" in problems["reports"]
    finally:
        await supervisor.stop()
    task = supervisor.task("reports")
    assert task is not None and task.done()


async def test_a_task_that_keeps_dying_waits_longer_each_time_and_is_not_healthy() -> None:
    died = asyncio.Event()

    async def broken() -> None:
        died.set()
        raise OSError(28, "No space left on device")

    supervisor = Supervisor("t", backoff_min_s=3600.0)
    supervisor.add("health", broken)
    try:
        await asyncio.wait_for(died.wait(), TIMEOUT)
        await asyncio.sleep(0)  # the supervisor records the death
        # Waiting out its pause: not running, so not healthy, and the reason is shown.
        assert not supervisor.healthy()
        assert "No space left on device" in supervisor.problems()["health"]
        assert "restarting" in supervisor.problems()["health"]
    finally:
        await supervisor.stop()


async def test_a_task_cancelled_from_outside_is_restarted() -> None:
    started = asyncio.Queue[int]()

    async def loop() -> None:
        started.put_nowait(1)
        await asyncio.Event().wait()

    supervisor = Supervisor("t", backoff_min_s=0.01)
    supervisor.add("sync", loop)
    try:
        await asyncio.wait_for(started.get(), TIMEOUT)
        task = supervisor.task("sync")
        assert task is not None
        task.cancel()
        await asyncio.wait_for(started.get(), TIMEOUT)
        assert "cancelled" in supervisor.problems()["sync"]
    finally:
        await supervisor.stop()


async def test_a_task_that_stops_beating_is_stalled_and_not_healthy() -> None:
    clock = Clock()
    running = asyncio.Event()

    async def loop() -> None:
        supervisor.beat("programme")
        running.set()
        await asyncio.Event().wait()  # hung on a backend: no more beats

    supervisor = Supervisor("t", now=clock)
    supervisor.add("programme", loop, stall_after_s=60.0)
    try:
        await asyncio.wait_for(running.wait(), TIMEOUT)
        clock.t += 59.0
        assert supervisor.healthy() and supervisor.stalled() == []
        clock.t += 2.0
        assert supervisor.stalled() == ["programme"]
        assert not supervisor.healthy()
        assert "no progress for 61 s" in supervisor.problems()["programme"]
        supervisor.beat("programme")
        assert supervisor.healthy()
    finally:
        await supervisor.stop()


async def test_the_watchdog_is_fed_only_while_every_task_is_well(tmp_path: Path) -> None:
    clock = Clock()
    address = str(tmp_path / "notify")
    listener = notify_socket(tmp_path / "notify")
    loop = asyncio.get_running_loop()
    # 0.2 s watchdog period: the supervisor looks every 0.05 s.
    dog = Watchdog({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})

    async def beating() -> None:
        while True:
            supervisor.beat("programme")
            await asyncio.sleep(0.01)

    supervisor = Supervisor("t", now=clock)
    supervisor.add("programme", beating, stall_after_s=60.0)
    supervisor.watch(dog)
    try:
        fed = await asyncio.wait_for(loop.sock_recv(listener, 64), TIMEOUT)
        assert fed == b"WATCHDOG=1"
        # The loop is cancelled under the supervisor's feet and waits out a long pause.
        supervisor._backoff_min_s = 3600.0
        task = supervisor.task("programme")
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not supervisor.healthy()
        drain(listener)
        # Three watchdog periods without a single feed.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(loop.sock_recv(listener, 64), 0.6)
    finally:
        await supervisor.stop()
        listener.close()


# ---------------------------------------------------------------- on a real agent


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as live:
        await live.add_commune("xa-s")
        yield live


class BrokenPositionPlayer(NullPlayer):
    """A backend with a bug: asking where it is raises, until it is repaired."""

    def __init__(self) -> None:
        super().__init__(default_duration_s=600)
        self.broken = True
        self.failures = 0

    def position(self) -> float:
        if self.broken and self.state is PlayerState.PLAYING:
            self.failures += 1
            raise ValueError("libvlc returned garbage")
        return super().position()


class HangingPlayer(NullPlayer):
    """A backend whose play() never returns (libVLC stuck on a dead sound card)."""

    def __init__(self) -> None:
        super().__init__(default_duration_s=600)
        self.hung = asyncio.Event()

    async def play(self, item: PlayItem) -> None:
        self.hung.set()
        await asyncio.Event().wait()


async def test_an_agent_task_killed_by_a_backend_bug_comes_back_and_health_says_why(
    hub: LiveHub, tmp_path: Path
) -> None:
    player = BrokenPositionPlayer()
    agent = await enroll_agent(
        hub,
        tmp_path / "speaker",
        commune="xa-s",
        kind="speaker",
        profile="speaker-cluster",
        player=player,
        require_clock_confirmation=False,
        restart_min_s=0.05,
        restart_max_s=0.2,
    )
    try:
        await agent.wait_until(agent.status_connected, TIMEOUT)
        # Something on air, so the programme asks the backend where it is (a test tone
        # needs no media).
        agent.request("test_tone", origin="hub")
        await agent.wait_until(lambda: agent.supervisor.restarts("programme") >= 1, TIMEOUT)
        health = await agent.health_fields()
        assert "task_died" in health["faults"]
        assert "libvlc returned garbage" in health["fault_details"]["task_died"]
        # The backend is repaired: the restarted loop runs on with the same state.
        player.broken = False
        await agent.wait_until(lambda: agent.supervisor.healthy(), TIMEOUT)
        agent.request("stop", origin="hub")
        await agent.wait_until(lambda: agent.now_playing() is None, TIMEOUT)
    finally:
        await agent.stop()


async def test_a_hung_backend_stalls_the_programme_and_starves_the_watchdog(
    hub: LiveHub, tmp_path: Path
) -> None:
    address = str(tmp_path / "notify")
    listener = notify_socket(tmp_path / "notify")
    player = HangingPlayer()
    agent = await enroll_agent(
        hub,
        tmp_path / "board",
        commune="xa-s",
        kind="board",
        profile="led-board-p10",
        player=player,
        require_clock_confirmation=False,
        heartbeat_s=0.05,
        stall_after_s=0.5,
        start=False,
    )
    agent.watchdog = Watchdog({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"})
    await agent.start()
    loop = asyncio.get_running_loop()
    try:
        assert await asyncio.wait_for(loop.sock_recv(listener, 64), TIMEOUT) == b"WATCHDOG=1"
        agent.request("test_pattern", origin="hub")
        await asyncio.wait_for(player.hung.wait(), TIMEOUT)
        await agent.wait_until(lambda: agent.supervisor.stalled() == ["programme"], TIMEOUT)
        health = await agent.health_fields()
        assert "task_stalled" in health["faults"]
        assert "programme: no progress" in health["fault_details"]["task_stalled"]
        drain(listener)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(loop.sock_recv(listener, 64), 0.6)
    finally:
        await agent.stop()
        listener.close()
