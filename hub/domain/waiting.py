"""How long something has waited, as people say it ("3 giờ", not "10 812 s")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Waiting:
    """How long something has waited, in the largest unit that is at least 1."""

    amount: int
    #: Label key of the unit: "home.minutes", "home.hours" or "home.days".
    unit: str


def waited(since: datetime, now: datetime) -> Waiting:
    """Minutes under an hour, hours under two days, then days (whole, rounded down)."""
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 3600:
        return Waiting(seconds // 60, "home.minutes")
    if seconds < 2 * 86400:
        return Waiting(seconds // 3600, "home.hours")
    return Waiting(seconds // 86400, "home.days")
