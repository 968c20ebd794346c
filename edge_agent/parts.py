"""What the agent's parts (programme, sync, content, reporting, timekeeping) share.

Each part owns one responsibility and the state that goes with it; what several parts read
(the verified manifest, the held emergencies, the store, the player) lives on the Agent, and
each part reaches it through `self.agent`.
"""

from __future__ import annotations

import asyncio
import contextlib
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
