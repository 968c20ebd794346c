"""The pure scheduler: given the clock, the windows, the held bulletins and what plays, say what
should play. No I/O, no clock reads, no module state — every rule is a unit test.

Rules (DESIGN.md §2), in the order `decide` applies them:

1. Eligibility. A candidate may air only while ``valid_from <= now < valid_until`` and its id
   is not in ``cancelled``. The agent has already filtered out what this device cannot play.
2. Emergency. Plays whatever the windows or the clock's trust; fixed ``times`` are ignored.
   It cuts any non-emergency item (``preempt=True``: the agent keeps that item as Suspended).
   - What it owes. A speaker airs it ``repeats`` times in all (slot "emergency"), the next
     airing falling due ``interval_s`` after the end of the last complete one; with
     ``until_cancelled`` it keeps falling due every ``interval_s`` until it is cancelled or
     expires. A board keeps every active emergency in its rotation, restarted each time it
     ends, until it is cancelled or expires (``interval_s`` does not apply to a board).
   - A new arrival (an emergency never begun here: not in ``started`` and never aired) cuts
     whatever is on air at once, an older emergency included (``preempt=True``). The cut
     emergency's airing does not count; it is never Suspended and is no longer new, so it
     does not cut back: it airs again, from the top, in its turn. One exception keeps
     arrivals that come together from cutting each other in a cascade: an emergency on its
     first airing ever (none complete yet) is cut only by a newer arrival (later
     ``valid_from``, tie: larger id).
   - A repeat that falls due never cuts an emergency: it waits for the one on air to end.
   - Order among the due ones: new arrivals first, newest first (latest ``valid_from``, tie:
     larger id); then a round robin: the one whose last complete airing ended longest ago
     (never complete: first), then fewer airings, then earliest ``valid_from``, then id. So
     every due emergency airs before any airs twice and none is starved, whoever sent it;
     cancelling one only takes it out of the rotation. (Plain "fewest airings first" would
     let a newcomer air back to back until it caught up with a long-running board alert.)
   - Between a speaker's airings no emergency is due: the suspended item resumes and the
     programme runs (windows apply as usual) until the next airing falls due.
3. Resume. With no emergency due, a suspended item resumes (``resume_mode``) if it is still
   eligible and its slot is still current.
4. Untrusted clock. Nothing but an emergency may start; a playing non-emergency is stopped.
5. Fixed times. A fixed time T on a local date makes slot "t:<date>T<HH:MM>" due from T until
   the end of the window containing T; it airs once per slot; due fixed times go first at
   the next item boundary (priority rank, then T).
6. Programme. Inside the current window, speakers air each eligible unfixed item ``repeats``
   times per window slot, picked by (rank, times aired, order, valid_from, id) so repeats
   interleave (A, B, A); boards loop by (times aired, rank, order, valid_from, id), round
   robin with priority first in each round, ignoring ``repeats``.
7. Failures. A bulletin whose airing failed (its file, the sound card or the screen would
   not play it) may not start again until ``held_back`` says, however due it is: without
   it, a board's rotation or an emergency every 0 s until cancelled would retry a dead
   output in a loop, writing a failed airing each time. The wait doubles with each failure
   in a row (``failure_backoff``) and ends with the first airing that succeeds. An
   emergency's failed airing is not one of its ``repeats`` (the programme does not count
   it in ``aired``): it was not heard, so it stays owed until it is, or expires.
8. Boundaries. A playing item that is still allowed is never cut or restarted except by an
   emergency; an item no longer allowed (cancelled, expired, removed, outside every window,
   clock untrusted) is stopped, or replaced by whatever is due (without ``preempt``).

Interpretations where the spec is silent (what a broadcast engineer would expect):

- Windows are ``[start, end)``: start inclusive, end exclusive. A window whose end is not after
  its start crosses midnight and belongs to the local date it opened on.
- Overlapping or touching windows: the device is "inside" while any window is open, so a
  playing item runs on across the seam; the programme counts against the earliest-opened
  window still open (touching windows are two programmes; a new one starts at the seam).
- A fixed time outside every window never airs (outside windows only emergencies may play).
  With overlapping windows a fixed time stays due until the latest end among those holding it.
- A fixed time airs only if the bulletin was already valid at that time: a bulletin valid from
  06:10 with a fixed time 06:00 first airs at 06:00 the next day, never late on its first day.
  Late-but-in-window airing (the device was busy or received it late) does happen.
- A suspended item's slot is current while its own window is open ("w:") or while the fixed
  time's window is open ("t:"); any other slot is not resumable.
- ``preempt`` is set only when the cut item could otherwise have kept playing; an item that was
  itself no longer allowed is simply replaced.
- Validity is always judged against ``now``, even when the clock is untrusted: ignoring the
  clock's trust means only that an untrusted clock does not hold an emergency back.
- ``next_check`` is the earliest instant after ``now`` and at most 48 h ahead at which a window
  opens or closes, a (non-cancelled) candidate becomes valid or expires, a fixed time falls, or
  a speaker emergency's next airing falls due.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import NamedTuple

from loa_contract import VN_TZ, DeviceKind, Priority

from .scheduler_types import (
    Action,
    Candidate,
    DailyWindow,
    Decision,
    Playing,
    ScheduleInput,
    Suspended,
    WindowPlan,
)

EMERGENCY_SLOT = "emergency"
#: How far ahead `next_check` looks; beyond it the agent asks again anyway.
HORIZON = timedelta(hours=48)
#: The wait after a failed airing before the bulletin may start again, doubled with each
#: failure in a row up to the longest: a sound card back in place is heard within a minute.
FIRST_RETRY = timedelta(seconds=2)
LONGEST_RETRY = timedelta(seconds=60)

__all__ = [
    "EMERGENCY_SLOT",
    "HORIZON",
    "WindowSpan",
    "Windows",
    "current_window",
    "decide",
    "emergency_due_at",
    "failure_backoff",
    "fixed_slot",
    "fixed_time_until",
    "is_eligible",
    "is_new_arrival",
    "next_check",
    "next_window_edge",
    "plan_of",
    "slot_is_current",
    "window_slot",
    "window_spans",
]


class WindowSpan(NamedTuple):
    """One opening of a daily window: its slot key and its [start, end) instants."""

    slot: str
    start: datetime
    end: datetime


# ---------------------------------------------------------------- slot keys and windows


def window_slot(day: date, start: time) -> str:
    return f"w:{day.isoformat()}T{start:%H:%M}"


def fixed_slot(day: date, at: time) -> str:
    return f"t:{day.isoformat()}T{at:%H:%M}"


def _local(moment: datetime) -> datetime:
    return moment.astimezone(VN_TZ)


def _at(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock.replace(second=0, microsecond=0), VN_TZ)


#: Every day's windows, or a plan of weekdays' and dates' own (see WindowPlan).
Windows = Sequence[DailyWindow] | WindowPlan


def plan_of(windows: Windows) -> WindowPlan:
    return windows if isinstance(windows, WindowPlan) else WindowPlan(tuple(windows))


def window_spans(days: Iterable[date], windows: Windows) -> list[WindowSpan]:
    """Every opening of `windows` on the given local dates, sorted by start. A window that
    crosses midnight belongs to the date it opens on: that date's plan decides it."""
    return list(_spans(tuple(days), plan_of(windows)))


@lru_cache(maxsize=64)
def _spans(days: tuple[date, ...], plan: WindowPlan) -> tuple[WindowSpan, ...]:
    # Remembered as `_day_spans` is: each decision asks for the same few days again, and on
    # the emergency path sorting them anew was a tenth of the scheduler's time.
    spans = [span for day in days for span in _day_spans(day, plan.for_day(day))]
    spans.sort(key=lambda span: (span.start, span.end))
    return tuple(spans)


@lru_cache(maxsize=256)
def _day_spans(day: date, windows: tuple[DailyWindow, ...]) -> tuple[WindowSpan, ...]:
    # A pure function of its arguments, remembered: every decision asks for the same few
    # days of the same windows, and building them was most of a decision's cost.
    spans = []
    for window in windows:
        start_t, end_t = window.start_time, window.end_time
        start = _at(day, start_t)
        # An end not after the start is tomorrow's: the window crosses midnight.
        end_day = day if end_t > start_t else day + timedelta(days=1)
        spans.append(WindowSpan(window_slot(day, start_t), start, _at(end_day, end_t)))
    return tuple(spans)


def _days_around(now: datetime, before: int, after: int) -> tuple[date, ...]:
    return _days_from(_local(now).date(), before, after)


@lru_cache(maxsize=16)
def _days_from(today: date, before: int, after: int) -> tuple[date, ...]:
    return tuple(today + timedelta(days=offset) for offset in range(-before, after + 1))


def current_window(now: datetime, windows: Windows) -> WindowSpan | None:
    """The open window `now` falls in (the earliest-opened one if several overlap), or None."""
    # A window lasts under 24 h, so only yesterday's and today's openings can hold `now`.
    spans = _spans(_days_around(now, 1, 0), plan_of(windows))
    open_spans = [span for span in spans if span.start <= now < span.end]
    if not open_spans:
        return None
    # Prefer the longest among equal starts so duplicates with different ends never shorten it.
    return min(open_spans, key=lambda span: (span.start, -span.end.timestamp()))


def next_window_edge(now: datetime, windows: Windows) -> datetime | None:
    """The next instant strictly after `now` at which any window opens or closes."""
    edges = [
        edge
        for span in _spans(_days_around(now, 1, 2), plan_of(windows))
        for edge in (span.start, span.end)
        if edge > now
    ]
    return min(edges, default=None)


def fixed_time_until(at: datetime, windows: Windows) -> datetime | None:
    """Until when a fixed air time `at` stays due: the end of the window holding it, or None."""
    ends = [
        span.end
        for span in _spans(_days_around(at, 1, 0), plan_of(windows))
        if span.start <= at < span.end
    ]
    return max(ends, default=None)


def _parse_slot(slot: str) -> tuple[str, datetime] | None:
    prefix, _, rest = slot.partition(":")
    if prefix not in ("w", "t"):
        return None
    try:
        moment = datetime.strptime(rest, "%Y-%m-%dT%H:%M")
    except ValueError:
        return None
    return prefix, moment.replace(tzinfo=VN_TZ)


def slot_is_current(slot: str, now: datetime, windows: Windows) -> bool:
    """Whether a suspended item's slot may still be aired: its window has not closed."""
    parsed = _parse_slot(slot)
    if parsed is None:
        return False
    prefix, moment = parsed
    if prefix == "t":
        until = fixed_time_until(moment, windows)
        return until is not None and moment <= now < until
    return any(
        span.slot == slot and span.start <= now < span.end
        for span in _spans((moment.date(),), plan_of(windows))
    )


# ---------------------------------------------------------------- candidates


def failure_backoff(failures_in_a_row: int) -> timedelta:
    """How long a bulletin waits after its `failures_in_a_row`-th failed airing in a row."""
    if failures_in_a_row < 1:
        return timedelta(0)
    # Capped before the power, so a bulletin failing for months never overflows it.
    doublings = min(failures_in_a_row - 1, 16)
    wait: timedelta = FIRST_RETRY * (1 << doublings)
    return min(wait, LONGEST_RETRY)


def is_eligible(candidate: Candidate, now: datetime, cancelled: frozenset[str]) -> bool:
    return candidate.valid_from <= now < candidate.valid_until and candidate.id not in cancelled


def _rank(candidate: Candidate) -> int:
    return candidate.priority.rank


def _is_emergency(candidate: Candidate) -> bool:
    return candidate.priority is Priority.EMERGENCY


def _ineligible_why(inp: ScheduleInput, bulletin_id: str) -> str:
    if bulletin_id in inp.cancelled:
        return "cancelled"
    candidate = next((c for c in inp.candidates if c.id == bulletin_id), None)
    if candidate is None:
        return "removed"
    if inp.now >= candidate.valid_until:
        return "expired"
    return "not yet valid"


def _airings(inp: ScheduleInput, candidate: Candidate) -> int:
    return inp.aired.get((candidate.id, EMERGENCY_SLOT), 0)


def is_new_arrival(inp: ScheduleInput, candidate: Candidate) -> bool:
    """An emergency that has never begun airing on this device."""
    return candidate.id not in inp.started and _airings(inp, candidate) == 0


def emergency_due_at(inp: ScheduleInput, candidate: Candidate) -> datetime | None:
    """From when emergency `candidate` owes its next airing; None if it owes none any more."""
    if inp.device_kind is DeviceKind.BOARD:
        return candidate.valid_from
    aired = _airings(inp, candidate)
    if not candidate.until_cancelled and aired >= candidate.repeats:
        return None
    last = inp.last_aired.get(candidate.id)
    if aired == 0 or last is None:
        return candidate.valid_from
    return max(candidate.valid_from, last + timedelta(seconds=candidate.interval_s))


_NEVER = datetime.min.replace(tzinfo=UTC)


def _newest_first(candidate: Candidate) -> tuple[float, str]:
    # Sorted ascending on this key, then reversed: latest valid_from first, tie larger id.
    return (candidate.valid_from.timestamp(), candidate.id)


def _due_emergencies(inp: ScheduleInput, eligible: Sequence[Candidate]) -> list[Candidate]:
    """Emergencies owed an airing now, in the order they should air (see rule 2)."""
    due = []
    for candidate in eligible:
        if not _is_emergency(candidate):
            continue
        due_at = emergency_due_at(inp, candidate)
        if due_at is not None and due_at <= inp.now:
            due.append(candidate)
    arrivals = sorted((c for c in due if is_new_arrival(inp, c)), key=_newest_first, reverse=True)
    rotation = sorted(
        (c for c in due if not is_new_arrival(inp, c)),
        key=lambda c: (inp.last_aired.get(c.id, _NEVER), _airings(inp, c), c.valid_from, c.id),
    )
    return arrivals + rotation


def _cuts_in(inp: ScheduleInput, arrival: Candidate, on_air: Candidate) -> bool:
    """Whether new arrival `arrival` cuts emergency `on_air` off."""
    if not is_new_arrival(inp, arrival) or arrival.id == on_air.id:
        return False
    # Arrivals that came together must not cut each other in turn: an emergency on its
    # first airing yields only to a newer one.
    return _airings(inp, on_air) > 0 or _newest_first(arrival) > _newest_first(on_air)


def _due_fixed(inp: ScheduleInput, eligible: Sequence[Candidate]) -> list[tuple[Candidate, str]]:
    """(candidate, slot) for every fixed time now due and not yet aired, best first."""
    due: list[tuple[tuple[int, datetime, int, datetime, str], Candidate, str]] = []
    days = _days_around(inp.now, 1, 0)
    for candidate in eligible:
        if _is_emergency(candidate):
            continue
        for at in candidate.times:
            for day in days:
                moment = _at(day, at)
                if not (candidate.valid_from <= moment <= inp.now):
                    continue
                slot = fixed_slot(day, at)
                if inp.aired.get((candidate.id, slot), 0) >= 1:
                    continue
                until = fixed_time_until(moment, inp.windows)
                if until is None or inp.now >= until:
                    continue
                c = candidate
                due.append(((_rank(c), moment, c.order, c.valid_from, c.id), c, slot))
    due.sort(key=lambda entry: entry[0])
    return [(candidate, slot) for _, candidate, slot in due]


def _programme_pick(
    inp: ScheduleInput, eligible: Sequence[Candidate], window: WindowSpan
) -> Candidate | None:
    pool = [c for c in eligible if not _is_emergency(c) and not c.times]

    def aired(candidate: Candidate) -> int:
        return inp.aired.get((candidate.id, window.slot), 0)

    if inp.device_kind is DeviceKind.BOARD:
        return min(
            pool,
            key=lambda c: (aired(c), _rank(c), c.order, c.valid_from, c.id),
            default=None,
        )
    pool = [c for c in pool if aired(c) < c.repeats]
    return min(
        pool,
        key=lambda c: (_rank(c), aired(c), c.order, c.valid_from, c.id),
        default=None,
    )


# ---------------------------------------------------------------- next_check


def next_check(inp: ScheduleInput) -> datetime | None:
    """The earliest instant after `now` (within HORIZON) at which the answer could change."""
    now = inp.now
    instants: list[datetime] = []
    edge = next_window_edge(now, inp.windows)
    if edge is not None:
        instants.append(edge)
    days = _days_around(now, 1, 2)
    for candidate in inp.candidates:
        if candidate.id in inp.cancelled:
            continue
        instants.extend((candidate.valid_from, candidate.valid_until))
        held_until = inp.held_back.get(candidate.id)
        if held_until is not None:
            instants.append(held_until)
        if _is_emergency(candidate):
            due_at = emergency_due_at(inp, candidate)
            if due_at is not None:
                instants.append(due_at)
        else:
            instants.extend(_at(day, at) for day in days for at in candidate.times)
    future = [moment for moment in instants if now < moment <= now + HORIZON]
    return _local(min(future)) if future else None


# ---------------------------------------------------------------- decide


def _start(
    candidate: Candidate, slot: str, reason: str, check: datetime | None, *, at_s: float = 0.0
) -> Decision:
    return Decision(
        Action.START,
        bulletin_id=candidate.id,
        slot=slot,
        start_at_s=at_s,
        next_check=check,
        reason=reason,
    )


def _resumable(
    inp: ScheduleInput, by_id: Mapping[str, Candidate], suspended: Suspended | None
) -> Candidate | None:
    if suspended is None or not inp.clock_trusted:
        return None
    candidate = by_id.get(suspended.bulletin_id)
    if candidate is None or _is_emergency(candidate):
        return None
    if not slot_is_current(suspended.slot, inp.now, inp.windows):
        return None
    return candidate


def _next_start(
    inp: ScheduleInput,
    eligible: Sequence[Candidate],
    window: WindowSpan | None,
    check: datetime | None,
) -> Decision | None:
    """What to start at an item boundary (nothing, or something that must go, plays)."""
    emergencies = _due_emergencies(inp, eligible)
    if emergencies:
        return _start(emergencies[0], EMERGENCY_SLOT, "emergency", check)
    if not inp.clock_trusted:
        return None
    by_id = {c.id: c for c in eligible}
    suspended = inp.suspended
    resumed = _resumable(inp, by_id, suspended)
    if resumed is not None and suspended is not None:
        if inp.resume_mode == "resume":
            return _start(
                resumed,
                suspended.slot,
                "resume after emergency",
                check,
                at_s=suspended.position_s,
            )
        return _start(resumed, suspended.slot, "restart after emergency", check)
    fixed = _due_fixed(inp, eligible)
    if fixed:
        candidate, slot = fixed[0]
        return _start(candidate, slot, f"fixed time {slot[-5:]} ({candidate.priority})", check)
    if window is None:
        return None
    picked = _programme_pick(inp, eligible, window)
    if picked is None:
        return None
    loop = "board loop" if inp.device_kind is DeviceKind.BOARD else "programme"
    return _start(picked, window.slot, f"{loop}: {picked.priority}", check)


def _silence_reason(inp: ScheduleInput, window: WindowSpan | None) -> str:
    if not inp.clock_trusted:
        return "clock not trusted"
    if window is None:
        return "outside broadcast windows"
    return "programme done for this window"


def _playing_verdict(
    inp: ScheduleInput,
    playing: Playing,
    by_id: Mapping[str, Candidate],
    window: WindowSpan | None,
) -> str | None:
    """None if the playing non-emergency may go on; else why it must stop."""
    candidate = by_id.get(playing.bulletin_id)
    if candidate is None:
        return _ineligible_why(inp, playing.bulletin_id)
    if not inp.clock_trusted:
        return "clock not trusted"
    if window is None:
        return "window closed"
    if _is_emergency(candidate):
        # Started as an ordinary item but now an emergency: it must air as one, from the top.
        return "became an emergency"
    return None


def decide(inp: ScheduleInput) -> Decision:
    """What the device should do now. Pure: the same input always gives the same decision."""
    now = inp.now
    eligible = [c for c in inp.candidates if is_eligible(c, now, inp.cancelled)]
    by_id = {c.id: c for c in eligible}
    # What may start now: not what failed a moment ago (rule 7). What plays is judged on
    # `eligible`: a failure holds back the next start, never cuts an airing.
    held = inp.held_back
    startable = [c for c in eligible if held.get(c.id, now) <= now] if held else eligible
    window = current_window(now, inp.windows)
    check = next_check(inp)
    playing = inp.playing

    if playing is not None:
        if playing.priority is Priority.EMERGENCY:
            on_air = by_id.get(playing.bulletin_id)
            if on_air is not None:
                for arrival in _due_emergencies(inp, startable):
                    if _cuts_in(inp, arrival, on_air):
                        return Decision(
                            Action.START,
                            bulletin_id=arrival.id,
                            slot=EMERGENCY_SLOT,
                            preempt=True,
                            next_check=check,
                            reason="new emergency pre-empts emergency",
                        )
                return Decision(Action.KEEP, next_check=check, reason="emergency on air")
            why = f"emergency {_ineligible_why(inp, playing.bulletin_id)}"
        else:
            verdict = _playing_verdict(inp, playing, by_id, window)
            emergencies = _due_emergencies(inp, startable)
            if emergencies:
                first = emergencies[0]
                if verdict is None:
                    return Decision(
                        Action.START,
                        bulletin_id=first.id,
                        slot=EMERGENCY_SLOT,
                        preempt=True,
                        next_check=check,
                        reason=f"emergency pre-empts {playing.priority}",
                    )
                return _start(first, EMERGENCY_SLOT, f"{verdict}; emergency", check)
            if verdict is None:
                return Decision(Action.KEEP, next_check=check, reason=f"{playing.priority} on air")
            why = verdict
        following = _next_start(inp, startable, window, check)
        if following is not None:
            return Decision(
                Action.START,
                bulletin_id=following.bulletin_id,
                slot=following.slot,
                start_at_s=following.start_at_s,
                next_check=check,
                reason=f"{why}; {following.reason}",
            )
        return Decision(Action.STOP, next_check=check, reason=why)

    following = _next_start(inp, startable, window, check)
    if following is not None:
        return following
    return Decision(Action.KEEP, next_check=check, reason=_silence_reason(inp, window))
