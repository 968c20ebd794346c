"""Clock trust. A Pi has no real-time clock: after a power cut it may boot with a stale time.

The agent corrects its notion of "now" by the offset it measures against the hub's HTTP
`Date` header. Windowed items need a trusted clock; an emergency plays regardless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from loa_contract import utcnow

#: The Date header has one-second resolution; smaller offsets are noise, not drift.
_MIN_CORRECTION_S = 2.0


@dataclass
class ClockStatus:
    trusted: bool
    offset_s: float | None
    source: str  # "hub", "system" or "none"
    reason: str


class ClockJudge:
    """Decides what time it is and whether that time can be trusted.

    `require_confirmation`: a device without a real-time clock and without NTP must not
    trust its own clock until the hub has confirmed it. With it off, the system clock is
    trusted until the hub contradicts it (a device with an RTC or NTP).
    """

    def __init__(
        self,
        system: Callable[[], datetime] = utcnow,
        *,
        require_confirmation: bool = False,
        tolerance_s: float = 120.0,
    ) -> None:
        self._system = system
        self._require_confirmation = require_confirmation
        self._tolerance_s = tolerance_s
        self._offset_s: float | None = None

    def observe_hub_date(self, hub_date: datetime, round_trip_s: float = 0.0) -> None:
        """Record the hub's time as seen in a response that took `round_trip_s`."""
        estimated_hub_now = hub_date + timedelta(seconds=round_trip_s / 2)
        self._offset_s = (estimated_hub_now - self._system()).total_seconds()

    def now(self) -> datetime:
        current = self._system()
        if self._offset_s is not None and abs(self._offset_s) >= _MIN_CORRECTION_S:
            current += timedelta(seconds=self._offset_s)
        return current

    def status(self) -> ClockStatus:
        if self._offset_s is not None:
            return ClockStatus(
                True,
                self._offset_s,
                "hub",
                "time confirmed by the hub"
                if abs(self._offset_s) <= self._tolerance_s
                else f"system clock off by {self._offset_s:+.0f} s; corrected from the hub",
            )
        if self._require_confirmation:
            return ClockStatus(False, None, "none", "waiting for the hub to confirm the time")
        return ClockStatus(True, None, "system", "system clock (not yet confirmed by the hub)")
