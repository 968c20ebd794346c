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
        self._quiet = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    async def wait(self, unless: asyncio.Event | None = None) -> None:
        """Return once a turn of the loop is short, or `at_most_s` after the watch began, or
        as soon as `unless` is set (something the waiter must not keep waiting for)."""
        if unless is not None and unless.is_set():
            return
        if self._watcher is None or self._watcher.done():
            self._quiet = asyncio.Event()
            self._watcher = asyncio.create_task(self._watch(self._quiet), name="loop-quiet")
        if unless is None:
            await self._quiet.wait()
            return
        either = [asyncio.ensure_future(self._quiet.wait()), asyncio.ensure_future(unless.wait())]
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in either:
                waiter.cancel()

    async def _watch(self, quiet: asyncio.Event) -> None:
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
            quiet.set()  # also if cancelled: nobody waits for ever
