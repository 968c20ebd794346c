"""What the agent's parts (programme, sync, content, reporting, timekeeping) share.

Each part owns one responsibility and the state that goes with it; what several parts read
(the verified manifest, the held emergencies, the store, the player) lives on the Agent, and
each part reaches it through `self.agent`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from .store import AgentStore

if TYPE_CHECKING:
    from .agent import Agent


class AgentPart:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    @property
    def store(self) -> AgentStore:
        store = self.agent.store
        if store is None:
            raise RuntimeError("the agent is not started")
        return store


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


#: A turn of the event loop longer than this means it is busy (see `LoopQuiet`).
BUSY_TURN_S = 0.005
#: How long `LoopQuiet.wait` waits for a busy loop at most.
QUIET_WAIT_MAX_S = 2.0


class Nudge:
    """A flag that wakes whoever waits on it: `set`, `clear` and `is_set` as asyncio.Event's,
    for `LoopQuiet.wait(unless=...)`. Not an Event: waiting on an Event alongside another
    takes a task each and `asyncio.wait`, which in the fleet simulator cost a fifth of an
    emergency's CPU (thousands of agents waiting at once); this resolves the waiter's one
    future instead."""

    __slots__ = ("_is_set", "_waiters")

    def __init__(self) -> None:
        self._is_set = False
        self._waiters: set[asyncio.Future[None]] = set()

    def is_set(self) -> bool:
        return self._is_set

    def set(self) -> None:
        self._is_set = True
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._is_set = False

    def add(self, waiter: asyncio.Future[None]) -> None:
        """Resolve `waiter` when this is next set."""
        self._waiters.add(waiter)

    def discard(self, waiter: asyncio.Future[None]) -> None:
        self._waiters.discard(waiter)


class LoopQuiet:
    """Tells when the event loop's turns are short again: for bookkeeping that follows what
    is heard but must not hold it up.

    A burst of pushed frames being started (on a device, or thousands of agents in the
    fleet simulator's process) makes the loop's turns long; disk work handed to a store's
    thread meanwhile wakes that thread for the GIL again and again, each time delaying the
    next start. One watcher measures the turns however many wait (they share this object:
    the simulator gives one to all the agents of a process), so waiting adds no load of its
    own; on a quiet loop a wait is a turn or two, as `asyncio.sleep(0)` is.
    """

    def __init__(
        self, busy_turn_s: float = BUSY_TURN_S, at_most_s: float = QUIET_WAIT_MAX_S
    ) -> None:
        self.busy_turn_s = busy_turn_s
        self.at_most_s = at_most_s
        #: Who waits for the current watch to end: one future each.
        self._waiters: list[asyncio.Future[None]] = []
        self._watcher: asyncio.Task[None] | None = None

    async def wait(self, unless: Nudge | None = None) -> None:
        """Return once a turn of the loop is short, or `at_most_s` after the watch began, or
        as soon as `unless` is set (something the waiter must not keep waiting for)."""
        if unless is not None and unless.is_set():
            return
        if self._watcher is None or self._watcher.done():
            self._waiters = []
            self._watcher = asyncio.create_task(self._watch(self._waiters), name="loop-quiet")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if unless is None:
            await waiter
            return
        unless.add(waiter)
        try:
            await waiter
        finally:
            unless.discard(waiter)

    async def _watch(self, waiters: list[asyncio.Future[None]]) -> None:
        give_up = time.monotonic() + self.at_most_s
        try:
            while True:
                before = time.perf_counter()
                await asyncio.sleep(0)
                if time.perf_counter() - before < self.busy_turn_s:
                    return
                if time.monotonic() >= give_up:
                    return
        finally:
            # Also if cancelled: nobody waits for ever.
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
