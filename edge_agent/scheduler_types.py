"""Plain values the pure scheduler takes and returns (no I/O, no clocks, no globals)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum
from typing import Protocol

from loa_contract import BulletinKind, DeviceKind, Priority


class DailyWindow(Protocol):
    """A daily broadcast window (loa_contract.BroadcastWindow is one)."""

    @property
    def start_time(self) -> time: ...

    @property
    def end_time(self) -> time: ...


@dataclass(frozen=True)
class ParsedWindow:
    """A broadcast window whose HH:MM strings were parsed once, not at every decision."""

    start_time: time
    end_time: time


@dataclass(frozen=True)
class WindowPlan:
    """Which windows hold on which local date: a dated exception's if the date has one (a
    holiday, an event; none at all means only emergencies), else the weekday's own if set,
    else every day's. Tuples only, so a plan is hashable and its days can be remembered."""

    every_day: tuple[DailyWindow, ...]
    #: (ISO weekday 1–7, its windows), at most one per weekday.
    weekly: tuple[tuple[int, tuple[DailyWindow, ...]], ...] = ()
    #: (local date, its windows), at most one per date.
    exceptions: tuple[tuple[date, tuple[DailyWindow, ...]], ...] = ()

    def for_day(self, day: date) -> tuple[DailyWindow, ...]:
        for when, windows in self.exceptions:
            if when == day:
                return windows
        weekday = day.isoweekday()
        for number, windows in self.weekly:
            if number == weekday:
                return windows
        return self.every_day


@dataclass(frozen=True)
class Candidate:
    """A bulletin the device holds and could air now (its media is cached and verified)."""

    id: str
    title: str
    priority: Priority
    kind: BulletinKind
    valid_from: datetime  # aware
    valid_until: datetime  # aware
    times: tuple[time, ...] = ()  # fixed local air times (Asia/Ho_Chi_Minh)
    repeats: int = 1
    order: int = 0  # commune's order among priority bulletins, lower first
    #: Emergency on a speaker: seconds from the end of one airing to when the next falls due.
    interval_s: float = 0.0
    #: Emergency on a speaker: airs every `interval_s` until cancelled or expired.
    until_cancelled: bool = False


@dataclass(frozen=True)
class Playing:
    """What the player is airing right now."""

    bulletin_id: str
    priority: Priority
    slot: str  # the slot key it was started for (see Decision.slot)
    started_at: datetime
    position_s: float = 0.0


@dataclass(frozen=True)
class Suspended:
    """An item an emergency cut off, to resume afterwards."""

    bulletin_id: str
    slot: str
    position_s: float


@dataclass(frozen=True)
class ScheduleInput:
    now: datetime  # aware
    device_kind: DeviceKind
    #: Every day's windows, or a plan with weekdays' and dates' own.
    windows: tuple[DailyWindow, ...] | WindowPlan
    candidates: tuple[Candidate, ...]
    playing: Playing | None = None
    suspended: Suspended | None = None
    #: How many times each (bulletin_id, slot) has aired (completed or cut short by a user).
    aired: Mapping[tuple[str, str], int] = field(default_factory=dict)
    cancelled: frozenset[str] = frozenset()
    clock_trusted: bool = True
    resume_mode: str = "resume"  # "resume" | "restart"
    #: Emergencies that have begun airing on this device at least once (one cut short
    #: included): any other is a new arrival, which cuts in at once.
    started: frozenset[str] = frozenset()
    #: When each emergency's last complete airing ended (its repeat interval runs from there,
    #: and the rotation serves the one that has waited longest).
    last_aired: Mapping[str, datetime] = field(default_factory=dict)
    #: Bulletins whose last airing failed (the player could not play it), each with the
    #: instant before which it may not start again (`failure_backoff`).
    held_back: Mapping[str, datetime] = field(default_factory=dict)


class Action(StrEnum):
    KEEP = "keep"  # leave the current item (or silence) as it is
    START = "start"  # start `bulletin_id` (stopping whatever plays: see `preempt`)
    STOP = "stop"  # stop the current item; nothing replaces it


@dataclass(frozen=True)
class Decision:
    action: Action
    bulletin_id: str | None = None
    #: The slot the start counts against: "emergency", "w:<YYYY-MM-DD>T<HH:MM>" for a window
    #: opened on that local date at that time, or "t:<YYYY-MM-DD>T<HH:MM>" for a fixed air time.
    slot: str | None = None
    #: Seconds into the item to start from (a resumed item).
    start_at_s: float = 0.0
    #: True when an emergency cuts the current item off mid-way (reported as pre-empted). A
    #: cut non-emergency is kept as Suspended; a cut emergency is not: it airs again in its
    #: turn, from the top.
    preempt: bool = False
    #: When to ask again even if nothing happens (next window edge, validity edge, fixed time).
    next_check: datetime | None = None
    reason: str = ""
