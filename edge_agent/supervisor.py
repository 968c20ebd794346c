"""Supervision of the agent's long-lived tasks (giám sát tác vụ).

A loudspeaker runs unattended for months, so a task that dies must not leave a device that
plays on while nothing syncs, or that stops playing while its health says "ok". Each task
the agent runs (programme, sync, content, reports, health, clock) is started here; one that
raises or returns is logged, shown as a fault in health with its reason, and started again
after a pause that grows while it keeps dying. A task may also promise to show progress
(`beat`) at least every `stall_after_s`; one that does not is "stalled".

systemd's watchdog is fed by the supervisor itself, and only while every task is running
and none has stalled: a hung backend or a dead loop gets the whole agent restarted, which is
the one recovery that does not need a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from .sdnotify import Watchdog

log = logging.getLogger("edge_agent.supervisor")

#: How long a task's death stays in health after it was restarted, so a hub sampling once a
#: minute (or one that was unreachable at the time) still sees it.
DEATH_SHOWN_S = 24 * 3600.0


def restart_delay(deaths_in_a_row: int, minimum_s: float, maximum_s: float) -> float:
    """The pause before restarting a task that has died `deaths_in_a_row` times without a
    stable run between: `minimum_s`, doubled for each further death, at most `maximum_s`.

    A task that dies at once on every start (a full disk, a bug hit on each pass) would
    otherwise spin the CPU and fill the log; one that died once comes back quickly.
    """
    if deaths_in_a_row <= 1:
        return min(minimum_s, maximum_s)
    # Capped before the power so a task dead for weeks cannot overflow the float.
    exponent = min(deaths_in_a_row - 1, 64)
    return min(maximum_s, minimum_s * 2.0**exponent)


@dataclass
class _Supervised:
    name: str
    run: Callable[[], Coroutine[Any, Any, None]]
    stall_after_s: float | None
    task: asyncio.Task[None] | None = None
    #: True while the task waits out its restart pause (it is not running then).
    restarting: bool = False
    started_at: float = 0.0
    last_beat: float = 0.0
    deaths_in_a_row: int = 0
    restarts: int = 0
    last_death: str | None = None
    last_death_at: float | None = None
    history: list[str] = field(default_factory=list)


class Supervisor:
    """Starts named tasks, restarts them when they die, and tells whether all are well.

    `on_change` is called whenever a task dies or comes back (the agent's status watchers
    wake on it); `now` is the monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        prefix: str,
        *,
        on_change: Callable[[], None] | None = None,
        backoff_min_s: float = 1.0,
        backoff_max_s: float = 300.0,
        stable_after_s: float = 600.0,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._prefix = prefix
        self._on_change = on_change or (lambda: None)
        self._backoff_min_s = backoff_min_s
        self._backoff_max_s = backoff_max_s
        self._stable_after_s = stable_after_s
        self._now = now
        self._tasks: dict[str, _Supervised] = {}
        self._runners: list[asyncio.Task[None]] = []
        self._stopping = False

    def add(
        self,
        name: str,
        run: Callable[[], Coroutine[Any, Any, None]],
        *,
        stall_after_s: float | None = None,
    ) -> None:
        """Supervise `run()` (a coroutine function meant to run for ever) under `name`.

        With `stall_after_s`, the task must call `beat(name)` at least that often.
        """
        if name in self._tasks:
            raise ValueError(f"task {name!r} is supervised already")
        entry = _Supervised(name, run, stall_after_s)
        self._tasks[name] = entry
        runner = asyncio.create_task(self._keep(entry), name=f"{self._prefix}:{name}:supervisor")
        self._runners.append(runner)

    def watch(self, watchdog: Watchdog | None = None) -> None:
        """Look over the tasks from now on: feed systemd's `watchdog` (if it asked for one)
        while `healthy()`, and log and announce every change between well and not."""
        periods = [e.stall_after_s / 4 for e in self._tasks.values() if e.stall_after_s]
        if watchdog is not None and watchdog.interval_s is not None:
            periods.append(watchdog.interval_s / 2)
        period = min([5.0, *periods])

        async def look_out() -> None:
            was_healthy = True
            while True:
                healthy = self.healthy()
                if healthy and watchdog is not None:
                    watchdog.feed()
                if healthy != was_healthy:
                    was_healthy = healthy
                    if healthy:
                        log.warning("every agent task is running again")
                    else:
                        why = "; ".join(self.problems().values())
                        log.error("not well, the watchdog is no longer fed: %s", why)
                    self._on_change()
                await asyncio.sleep(period)

        self._runners.append(asyncio.create_task(look_out(), name=f"{self._prefix}:look-out"))

    def beat(self, name: str) -> None:
        """Task `name` made progress."""
        entry = self._tasks.get(name)
        if entry is not None:
            entry.last_beat = self._now()

    async def _keep(self, entry: _Supervised) -> None:
        while not self._stopping:
            entry.started_at = entry.last_beat = self._now()
            entry.restarting = False
            entry.task = asyncio.create_task(entry.run(), name=f"{self._prefix}:{entry.name}")
            try:
                await asyncio.shield(entry.task)
                reason = "returned"
            except asyncio.CancelledError:
                if self._stopping or not entry.task.cancelled():
                    # The supervisor itself is being cancelled: take the task down with it.
                    entry.task.cancel()
                    with contextlib.suppress(BaseException):
                        await entry.task
                    raise
                reason = "cancelled"
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.error("agent task %s died", entry.name, exc_info=exc)
            if self._stopping:
                return
            ran_for = self._now() - entry.started_at
            entry.deaths_in_a_row = (
                1 if ran_for >= self._stable_after_s else (entry.deaths_in_a_row + 1)
            )
            entry.last_death = reason
            entry.last_death_at = self._now()
            entry.history = [*entry.history[-9:], reason]
            delay = restart_delay(entry.deaths_in_a_row, self._backoff_min_s, self._backoff_max_s)
            log.error(
                "agent task %s stopped (%s); restarting in %.1f s (death %d in a row)",
                entry.name,
                reason,
                delay,
                entry.deaths_in_a_row,
            )
            entry.restarting = True
            self._on_change()
            await asyncio.sleep(delay)
            entry.restarts += 1
            self._on_change()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Cancel every task; a task that ignores its cancellation is named in the log."""
        self._stopping = True
        tasks = [e.task for e in self._tasks.values() if e.task is not None]
        for task in [*tasks, *self._runners]:
            task.cancel()
        pending = [*tasks, *self._runners]
        if pending:
            _, stuck = await asyncio.wait(pending, timeout=timeout_s)
            for task in stuck:
                log.error("task %s did not stop: %s", task.get_name(), task.get_stack())
        self._runners.clear()

    # ------------------------------------------------------------------ judgement

    def stalled(self) -> list[str]:
        now = self._now()
        return [
            e.name
            for e in self._tasks.values()
            if e.stall_after_s is not None
            and not e.restarting
            and now - e.last_beat > e.stall_after_s
        ]

    def healthy(self) -> bool:
        """Every task is running (none waiting to be restarted) and none has stalled."""
        running = all(
            e.task is not None and not e.task.done() and not e.restarting
            for e in self._tasks.values()
        )
        return running and not self.stalled()

    def problems(self) -> dict[str, str]:
        """Task name -> what is wrong with it now, or what killed it within the last day."""
        now = self._now()
        found: dict[str, str] = {}
        stalled = set(self.stalled())
        for entry in self._tasks.values():
            if entry.name in stalled:
                found[entry.name] = f"{entry.name}: no progress for {now - entry.last_beat:.0f} s"
            elif entry.last_death_at is not None and now - entry.last_death_at <= DEATH_SHOWN_S:
                state = "restarting" if entry.restarting else f"restarted {entry.restarts}×"
                found[entry.name] = f"{entry.name}: {entry.last_death} ({state})"
        return found

    def died_recently(self) -> dict[str, str]:
        stalled = set(self.stalled())
        return {name: why for name, why in self.problems().items() if name not in stalled}

    def stalled_problems(self) -> dict[str, str]:
        stalled = set(self.stalled())
        return {name: why for name, why in self.problems().items() if name in stalled}

    def restarts(self, name: str) -> int:
        return self._tasks[name].restarts

    def task(self, name: str) -> asyncio.Task[None] | None:
        """The running task of `name` (tests kill it to see the supervisor at work)."""
        return self._tasks[name].task
