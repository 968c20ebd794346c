"""Checks on the broadcast windows people set (pure: plain values in, problems out).

The devices accept any windows (touching, overlapping, crossing midnight: DESIGN.md §2 and
edge_agent/scheduler.py say what each means); these checks stop the usual slips before they
are signed: 20:00 → 19:00 saved as a 23-hour window, or two windows over the same hour.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from loa_contract import BroadcastWindow, CommuneWindows

DAY_MINUTES = 24 * 60
#: An end at midnight closes the day it opened on, whatever `overnight` says.
MIDNIGHT = "00:00"
KINDS = ("speaker", "board")


def minutes(hhmm: str) -> int:
    hours, mins = hhmm.split(":")
    return int(hours) * 60 + int(mins)


def span(start: str, end: str) -> tuple[int, int]:
    """[start, end) in minutes from the opening day's midnight; an end not after the start
    is the next day's."""
    first, last = minutes(start), minutes(end)
    return first, last if last > first else last + DAY_MINUTES


def overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Two daily spans share a minute, on the same day or across midnight (touching does not
    count: 05:00–06:00 and 06:00–07:00 are two programmes)."""
    return any(
        max(a[0], b[0] + shift) < min(a[1], b[1] + shift)
        for shift in (-DAY_MINUTES, 0, DAY_MINUTES)
    )


def list_problems(windows: Sequence[BroadcastWindow], field: str) -> list[dict[str, str]]:
    """What is wrong with one list of windows, each naming its field."""
    problems: list[dict[str, str]] = []
    for i, window in enumerate(windows):
        backwards = minutes(window.end) < minutes(window.start)
        if window.end == MIDNIGHT:
            continue  # "until 00:00" is the end of the day: no slip to confirm either way
        if backwards and not window.overnight:
            problems.append(
                {
                    "field": f"{field}[{i}].overnight",
                    "message": f"{window.start}–{window.end} ends before it starts: confirm"
                    " that it runs past midnight (overnight: true)",
                }
            )
        elif window.overnight and not backwards:
            problems.append(
                {
                    "field": f"{field}[{i}].overnight",
                    "message": f"{window.start}–{window.end} is marked as running past midnight"
                    " but ends the same day",
                }
            )
    spans = [span(w.start, w.end) for w in windows]
    for j in range(len(windows)):
        for i in range(j):
            if overlap(spans[i], spans[j]):
                problems.append(
                    {
                        "field": f"{field}[{j}]",
                        "message": f"{windows[j].start}–{windows[j].end} overlaps"
                        f" {windows[i].start}–{windows[i].end}",
                    }
                )
                break
    return problems


def window_problems(windows: CommuneWindows, field: str = "windows") -> list[dict[str, str]]:
    """Every problem of a commune's windows: every day's, each weekday's, each exception's."""
    problems: list[dict[str, str]] = []
    for kind in KINDS:
        problems += list_problems(getattr(windows, kind), f"{field}.{kind}")
    for day, own in sorted(windows.weekly.items()):
        for kind in KINDS:
            problems += list_problems(getattr(own, kind), f"{field}.weekly.{day}.{kind}")
    for i, exception in enumerate(windows.exceptions):
        for kind in KINDS:
            problems += list_problems(getattr(exception, kind), f"{field}.exceptions[{i}].{kind}")
    return problems


def held(start: str, end: str) -> set[int]:
    """The minutes of the daily clock a window holds."""
    first, last = span(start, end)
    return {minute % DAY_MINUTES for minute in range(first, last)}


def with_window(usual: Sequence[tuple[str, str]], start: str, end: str) -> list[dict[str, Any]]:
    """`usual` with the window `start`–`end` added, as the hub takes them: the usual windows it
    meets are merged with it into one over the same minutes (the demo's "around now")."""
    minutes_held = held(start, end)
    kept: list[dict[str, Any]] = []
    for first, last in usual:
        if overlap(span(first, last), span(start, end)):
            minutes_held |= held(first, last)
        else:
            kept.append({"start": first, "end": last, "overnight": last < first})
    if len(minutes_held) >= DAY_MINUTES:
        return [{"start": "00:00", "end": "12:00"}, {"start": "12:00", "end": "00:00"}]
    opens = next(m for m in sorted(minutes_held) if (m - 1) % DAY_MINUTES not in minutes_held)
    closes = (opens + len(minutes_held)) % DAY_MINUTES
    merged = {
        "start": f"{opens // 60:02d}:{opens % 60:02d}",
        "end": f"{closes // 60:02d}:{closes % 60:02d}",
        "overnight": closes < opens,
    }
    return [*kept, merged]
