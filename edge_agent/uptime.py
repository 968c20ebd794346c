"""Seconds the agent ran on each local day, for the local page's uptime chart.

Kept apart from the page (edge_agent/local_http.py) because it counts from the agent's start,
while the page itself is only loaded when someone first opens it (edge_agent/local_server.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from loa_contract import VN_TZ

if TYPE_CHECKING:
    from .agent import Agent

UPTIME_SETTING = "uptime_days"
#: How often the running time is written to the SD card; the page adds the unwritten part.
UPTIME_SAVE_S = 300.0


class UptimeBook:
    """Seconds the agent ran on each local day.

    Kept in the store's settings and written every few minutes (not every second: SD wear);
    time passed while the clock is untrusted is not booked, since its date is unknown.
    """

    def __init__(self, agent: Agent, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.agent = agent
        self.monotonic = monotonic
        self.days: dict[str, float] = {}
        self.started = self._mark = monotonic()

    def _day(self) -> str:
        return self.agent.clock.now().astimezone(VN_TZ).date().isoformat()

    def _pending(self) -> float:
        # Capped: a device suspended or a loop stalled for hours is not "running" then.
        return min(self.monotonic() - self._mark, 2 * UPTIME_SAVE_S)

    async def load(self) -> None:
        assert self.agent.store is not None
        raw = await self.agent.store.get_setting(UPTIME_SETTING)
        with contextlib.suppress(ValueError, TypeError):
            self.days = {str(k): float(v) for k, v in json.loads(raw or "{}").items()}

    async def save(self) -> None:
        pending = self._pending()
        self._mark = self.monotonic()
        if not self.agent.clock.status().trusted or self.agent.store is None:
            return
        day = self._day()
        self.days[day] = min(86400.0, self.days.get(day, 0.0) + pending)
        for old in sorted(self.days)[:-14]:
            del self.days[old]
        await self.agent.store.set_setting(UPTIME_SETTING, json.dumps(self.days))

    def hours(self, days: list[str]) -> list[float]:
        live = dict(self.days)
        if self.agent.clock.status().trusted:
            today = self._day()
            live[today] = min(86400.0, live.get(today, 0.0) + self._pending())
        return [round(live.get(day, 0.0) / 3600, 1) for day in days]


@contextlib.asynccontextmanager
async def kept(book: UptimeBook) -> AsyncIterator[UptimeBook]:
    """Load the book, write it every UPTIME_SAVE_S while inside, and once more on the way out."""
    await book.load()

    async def keep() -> None:
        while True:
            await asyncio.sleep(UPTIME_SAVE_S)
            with contextlib.suppress(Exception):
                await book.save()

    task = asyncio.create_task(keep())
    try:
        yield book
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await book.save()
