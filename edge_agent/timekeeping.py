"""Timekeeping (giữ giờ): when the agent may believe what time it is (issue #4).

A Pi has no RTC. The time comes from NTP or from data the hub signed, never from the HTTP
`Date` header (a proxy can shift it); until one of them confirms it, windowed items wait
(edge_agent/clock.py holds the rules).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import TYPE_CHECKING

from .clock import ALIVE_KEY as CLOCK_ALIVE
from .clock import SETTING_KEY as CLOCK_SETTING
from .clock import Confirmation
from .parts import AgentPart

if TYPE_CHECKING:
    from .agent import Agent


class Timekeeping(AgentPart):
    def __init__(self, agent: Agent) -> None:
        super().__init__(agent)
        self._saved_at = 0.0
        self._alive_saved_at = -1e9

    async def restore(self) -> None:
        clock = self.agent.clock
        saved = await self.store.get_setting(CLOCK_SETTING)
        boot, alive = clock.parse_alive(await self.store.get_setting(CLOCK_ALIVE))
        # Only an earlier boot's last sign of life says anything about a restored clock.
        current_boot = clock.alive_mark().partition(" ")[0] or None
        clock.restore(
            Confirmation.from_json(saved) if saved else None,
            alive if boot != current_boot else None,
        )
        await asyncio.to_thread(clock.refresh_ntp)

    async def signed_time_seen(self, issued_at: datetime, round_trip_s: float) -> None:
        """The hub signed `issued_at` at most `round_trip_s` ago (a push connection's first
        frame, or a new manifest version): the only time the agent believes from the hub."""
        agent = self.agent
        was_corrected = agent.clock.corrected()
        agent.clock.observe_signed_time(issued_at, round_trip_s)
        if not was_corrected:
            # The device's own timeline is anchored now: pushed emergencies are judged on it.
            self._anchoring_changed()
            self._saved_at = 0.0
        agent.programme.wake.set()
        agent.changed()
        await self._save(every_s=60.0)

    def _anchoring_changed(self) -> None:
        self.agent.emergency_shift.clear()
        self.agent.programme.held_changed()

    async def _save(self, *, every_s: float) -> None:
        # Throttled: a confirmation is worth persisting, an SD write every poll is not.
        if self.agent.store is None or time.monotonic() - self._saved_at < every_s:
            return
        confirmation = self.agent.clock.confirmation()
        if confirmation is not None:
            await self.store.set_setting(CLOCK_SETTING, confirmation.to_json())
            self._saved_at = time.monotonic()

    async def run(self) -> None:
        agent = self.agent
        clock = agent.clock
        while True:
            agent.supervisor.beat("clock")
            trusted = clock.status().trusted
            await asyncio.to_thread(clock.refresh_ntp)
            if clock.status().trusted != trusted:
                self._anchoring_changed()
                agent.programme.wake.set()
                agent.changed()
            await self._save(every_s=60.0)
            if time.monotonic() - self._alive_saved_at >= clock.alive_period_s:
                await self.store.set_setting(CLOCK_ALIVE, clock.alive_mark())
                self._alive_saved_at = time.monotonic()
            await asyncio.sleep(agent.config.clock_check_interval_s)
