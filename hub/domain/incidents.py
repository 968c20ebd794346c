"""When a device's fault becomes an incident, and when that incident closes on its own.

The hub looks at the fleet every minute or so (hub/incidents.py). For each device it knows
whether it is in fault now (its verdict, hub/verdict.py), since when it has been (kept
between looks), and whether it has an incident the hub opened for it that is still open.
A fault that lasts `threshold` opens one; a fault short of it opens none (a device rebooting
for an update, a 3G link dropping for a minute); once the device is out of fault, the hub's
own incident closes (a person's incident is closed by a person, who says what was done).

Pure: plain values in, the decision out; every case is a unit test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Step:
    #: Since when the device is in fault (None: it is not).
    since: datetime | None
    #: Open an incident now (the device has none open from the hub).
    open: bool
    #: Close the hub's open incident now (the fault is over).
    close: bool


def step(
    *,
    in_fault: bool,
    since: datetime | None,
    began: datetime,
    open_incident: bool,
    now: datetime,
    threshold: timedelta,
) -> Step:
    """The next state for one device.

    `since`: since when it was in fault at the last look (None: it was not); `began`: when
    this fault began as far as the device's record shows (when it was last heard from, for a
    device gone offline), used when the fault is new."""
    if not in_fault:
        return Step(since=None, open=False, close=open_incident)
    start = since if since is not None else min(began, now)
    return Step(since=start, open=not open_incident and now - start >= threshold, close=False)
