"""Broadcast windows: the hub's checks on what people set (crossing midnight is confirmed,
overlaps are refused), and the agent's plans of weekdays' and dates' own windows, exhaustively
against brute-force references."""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from edge_agent.players.null import NullPlayer
from edge_agent.programme import window_plan
from edge_agent.scheduler import (
    current_window,
    decide,
    fixed_time_until,
    next_window_edge,
    plan_of,
    window_spans,
)
from edge_agent.scheduler_types import (
    Action,
    Candidate,
    ParsedWindow,
    ScheduleInput,
    WindowPlan,
)
from hub.windows import (
    DAY_MINUTES,
    held,
    list_problems,
    overlap,
    span,
    window_problems,
    with_window,
)
from loa_contract import (
    VN_TZ,
    BroadcastWindow,
    BulletinKind,
    CommuneWindows,
    DeviceKind,
    Manifest,
    Priority,
)
from tests.e2e import enroll_agent, live_hub

#: Every two hours: 12 times, 132 windows, 17,424 ordered pairs.
GRID = [f"{h:02d}:{m:02d}" for h in range(0, 24, 2) for m in (0,)]
WINDOWS = [(s, e) for s, e in itertools.product(GRID, GRID) if s != e]


def occupied(start: str, end: str) -> set[int]:
    """The minutes of the daily clock a window holds, counted minute by minute (reference)."""
    first = int(start[:2]) * 60 + int(start[3:])
    last = int(end[:2]) * 60 + int(end[3:])
    length = (last - first) % DAY_MINUTES
    return {(first + i) % DAY_MINUTES for i in range(length)}


def test_overlap_is_sharing_a_minute_of_the_daily_clock() -> None:
    held = {w: occupied(*w) for w in WINDOWS}
    for a, b in itertools.product(WINDOWS, WINDOWS):
        assert overlap(span(*a), span(*b)) == bool(held[a] & held[b]), (a, b)


def test_a_span_lasts_its_minutes_and_crosses_midnight_when_it_ends_earlier() -> None:
    for start, end in WINDOWS:
        first, last = span(start, end)
        assert 0 < last - first < DAY_MINUTES
        assert last - first == len(occupied(start, end))
        assert (last > DAY_MINUTES) == (end < start) or last == DAY_MINUTES


def bw(start: str, end: str, overnight: bool | None = None) -> BroadcastWindow:
    night = end < start if overnight is None else overnight
    return BroadcastWindow(start=start, end=end, overnight=night)


@pytest.mark.parametrize(("start", "end"), WINDOWS)
def test_an_end_before_the_start_must_be_confirmed_and_only_then(start: str, end: str) -> None:
    backwards = end < start
    unconfirmed = list_problems([bw(start, end, overnight=False)], "w")
    confirmed = list_problems([bw(start, end, overnight=True)], "w")
    if end == "00:00":  # until midnight: the end of the day, either way
        assert unconfirmed == confirmed == []
        return
    assert [p["field"] for p in unconfirmed] == (["w[0].overnight"] if backwards else [])
    assert [p["field"] for p in confirmed] == ([] if backwards else ["w[0].overnight"])


def test_each_overlapping_window_is_named_once_after_the_one_it_overlaps() -> None:
    for a, b in itertools.combinations(WINDOWS[::7], 2):
        problems = list_problems([bw(*a), bw(*b)], "windows.board")
        expected = bool(occupied(*a) & occupied(*b))
        assert problems == (
            [
                {
                    "field": "windows.board[1]",
                    "message": f"{b[0]}–{b[1]} overlaps {a[0]}–{a[1]}",
                }
            ]
            if expected
            else []
        ), (a, b)


def test_touching_windows_are_two_programmes() -> None:
    assert list_problems([bw("05:00", "06:00"), bw("06:00", "07:00")], "w") == []
    assert list_problems([bw("22:00", "02:00"), bw("02:00", "05:00")], "w") == []
    assert list_problems([bw("22:00", "02:00"), bw("01:59", "05:00")], "w") != []


def test_every_list_of_a_commune_is_checked_and_named() -> None:
    windows = CommuneWindows.model_validate(
        {
            "speaker": [["05:00", "06:00"], ["05:30", "07:00"]],
            "board": [{"start": "20:00", "end": "19:00"}],
            "weekly": {"7": {"speaker": [["06:00", "05:00"]]}},
            "exceptions": [
                {"date": "2026-09-02", "board": [["08:00", "10:00"], ["09:00", "11:00"]]}
            ],
        }
    )
    assert [p["field"] for p in window_problems(windows)] == [
        "windows.speaker[1]",
        "windows.board[0].overnight",
        "windows.weekly.7.speaker[0].overnight",
        "windows.exceptions[0].board[1]",
    ]


# ---------------------------------------------------------------- the agent's plans


def pw(start: str, end: str) -> ParsedWindow:
    return ParsedWindow(time.fromisoformat(start), time.fromisoformat(end))


EVERY = (pw("05:00", "06:00"),)
SUNDAY = (pw("07:00", "09:00"),)
HOLIDAY: tuple[ParsedWindow, ...] = ()
EVENT = (pw("19:00", "23:00"),)
#: Monday 2026-08-31; Wednesday 2026-09-02 is National Day, Saturday 2026-09-05 an event.
MONDAY = date(2026, 8, 31)
PLAN = WindowPlan(
    EVERY,
    weekly=((7, SUNDAY), (6, (pw("22:00", "02:00"),))),
    exceptions=((date(2026, 9, 2), HOLIDAY), (date(2026, 9, 5), EVENT)),
)


def expected_windows(day: date) -> tuple[ParsedWindow, ...]:
    """The rule written out: a date's exception, else its weekday's own, else every day's."""
    if day == date(2026, 9, 2):
        return HOLIDAY
    if day == date(2026, 9, 5):
        return EVENT
    if day.isoweekday() == 7:
        return SUNDAY
    if day.isoweekday() == 6:
        return (pw("22:00", "02:00"),)
    return EVERY


def test_a_dated_exception_wins_then_the_weekday_then_every_day() -> None:
    for offset in range(-14, 28):
        day = MONDAY + timedelta(days=offset)
        assert PLAN.for_day(day) == expected_windows(day), day
    assert plan_of(EVERY).for_day(date(2026, 9, 2)) == EVERY
    assert plan_of(PLAN) is PLAN


def test_spans_follow_each_days_plan_and_a_night_belongs_to_the_day_it_opens() -> None:
    days = [MONDAY + timedelta(days=i) for i in range(14)]
    spans = window_spans(days, PLAN)
    reference = sorted(
        (
            datetime.combine(day, w.start_time, VN_TZ),
            datetime.combine(
                day if w.end_time > w.start_time else day + timedelta(days=1), w.end_time, VN_TZ
            ),
        )
        for day in days
        for w in expected_windows(day)
    )
    assert [(s.start, s.end) for s in spans] == reference


def local(day: date, hhmm: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(hhmm), VN_TZ)


def test_minute_by_minute_the_open_window_is_the_plans() -> None:
    """Every 10 minutes over two weeks: open exactly when the reference says so."""
    start = local(MONDAY, "00:00")
    for step in range(14 * 24 * 6):
        now = start + timedelta(minutes=10 * step)
        inside = any(
            local(day, f"{w.start_time:%H:%M}")
            <= now
            < (
                local(day, f"{w.end_time:%H:%M}")
                if w.end_time > w.start_time
                else local(day + timedelta(days=1), f"{w.end_time:%H:%M}")
            )
            for day in (now.date() - timedelta(days=1), now.date())
            for w in expected_windows(day)
        )
        assert (current_window(now, PLAN) is not None) == inside, now


def test_edges_and_fixed_times_follow_the_plan() -> None:
    holiday_eve = local(date(2026, 9, 1), "06:30")
    # Tuesday's window is over; Wednesday is a holiday with none: Thursday 05:00 is next.
    assert next_window_edge(holiday_eve, PLAN) == local(date(2026, 9, 3), "05:00")
    # Saturday's own night window holds a fixed 01:00 on Sunday until 02:00.
    assert fixed_time_until(local(date(2026, 9, 6), "01:00"), PLAN) is None  # event Saturday
    assert fixed_time_until(local(date(2026, 9, 13), "01:00"), PLAN) == local(
        date(2026, 9, 13), "02:00"
    )


def candidate(bid: str, priority: Priority) -> Candidate:
    return Candidate(
        id=bid,
        title=bid,
        priority=priority,
        kind=BulletinKind.AUDIO,
        valid_from=local(MONDAY, "00:00") - timedelta(days=30),
        valid_until=local(MONDAY, "00:00") + timedelta(days=30),
    )


def decision(now: datetime, *candidates: Candidate) -> Action:
    return decide(
        ScheduleInput(now=now, device_kind=DeviceKind.SPEAKER, windows=PLAN, candidates=candidates)
    ).action


def test_a_holiday_airs_only_emergencies_an_event_airs_in_its_own_window() -> None:
    normal = candidate("n", Priority.NORMAL)
    emergency = candidate("e", Priority.EMERGENCY)
    holiday = date(2026, 9, 2)
    assert decision(local(holiday, "05:30"), normal) is Action.KEEP
    assert decision(local(holiday, "05:30"), emergency) is Action.START
    assert decision(local(date(2026, 9, 1), "05:30"), normal) is Action.START
    event = date(2026, 9, 5)
    assert decision(local(event, "20:00"), normal) is Action.START
    assert decision(local(event, "22:30"), normal) is Action.START
    assert decision(local(date(2026, 9, 12), "20:00"), normal) is Action.KEEP
    assert decision(local(date(2026, 9, 12), "23:30"), normal) is Action.START
    assert decision(local(date(2026, 9, 6), "08:00"), normal) is Action.START  # Sunday
    assert decision(local(date(2026, 9, 6), "05:30"), normal) is Action.KEEP


def test_the_agent_reads_the_manifests_plan() -> None:
    manifest = Manifest.model_validate(
        {
            "device_id": "d",
            "version": 1,
            "issued_at": "2026-08-31T00:00:00+07:00",
            "expires_at": "2026-09-14T00:00:00+07:00",
            "device_kind": "speaker",
            "commune": "00001",
            "windows": [["05:00", "06:00"]],
            "weekly_windows": [
                {"weekday": 7, "windows": [["07:00", "09:00"]]},
                {"weekday": 6, "windows": [["22:00", "02:00"]]},
            ],
            "window_exceptions": [
                {"date": "2026-09-02", "windows": [], "note": "Quốc khánh"},
                {"date": "2026-09-05", "windows": [["19:00", "23:00"]]},
            ],
            "volume": 70,
            "profile": "speaker-cluster",
            "bulletins": [],
        }
    )
    plan = window_plan(manifest)
    for offset in range(14):
        day = MONDAY + timedelta(days=offset)
        assert plan.for_day(day) == expected_windows(day)


def test_a_manifest_naming_a_weekday_or_a_date_twice_is_refused() -> None:
    base = {
        "device_id": "d",
        "version": 1,
        "issued_at": "2026-08-31T00:00:00+07:00",
        "expires_at": "2026-09-14T00:00:00+07:00",
        "device_kind": "speaker",
        "commune": "00001",
        "windows": [],
        "volume": 70,
        "profile": "speaker-cluster",
        "bulletins": [],
    }
    twice_weekday = {"weekly_windows": [{"weekday": 7}, {"weekday": 7}]}
    twice_date = {"window_exceptions": [{"date": "2026-09-02"}, {"date": "2026-09-02"}]}
    for extra in (twice_weekday, twice_date):
        with pytest.raises(ValueError, match="twice"):
            Manifest.model_validate(base | extra)


@pytest.mark.parametrize(("start", "end"), WINDOWS[::5])
def test_a_window_added_to_the_usual_ones_merges_with_those_it_meets(start: str, end: str) -> None:
    usual = [("05:30", "06:30"), ("17:00", "18:00"), ("22:00", "23:00")]
    windows = [BroadcastWindow.model_validate(w) for w in with_window(usual, start, end)]
    assert list_problems(windows, "w") == []  # the hub takes them
    union = held(start, end).union(*(held(*w) for w in usual))
    covered = set().union(*(held(w.start, w.end) for w in windows))
    assert covered == union


async def test_the_local_page_shows_the_windows_of_today(tmp_path: Path) -> None:
    """The commune staff's page lists today's windows: a date's exception when it has one."""
    today = datetime.now(VN_TZ).date()
    async with live_hub(tmp_path / "hub") as hub:
        await hub.call(
            "POST",
            "/api/v1/communes",
            json={
                "code": "xa-w",
                "name": "Xã W",
                "windows": {
                    "speaker": [["05:00", "06:00"]],
                    "exceptions": [{"date": today.isoformat(), "speaker": [["07:00", "08:00"]]}],
                },
            },
            expect=201,
        )
        agent = await enroll_agent(
            hub,
            tmp_path / "speaker",
            commune="xa-w",
            kind="speaker",
            profile="speaker-cluster",
            player=NullPlayer(),
        )
        try:
            await agent.wait_until(lambda: agent.manifest is not None, 15)
            assert (await agent.status())["windows"] == [{"start": "07:00", "end": "08:00"}]
        finally:
            await agent.stop()
