"""Reports: the pure arithmetic (periods, airings, per-day minutes, uptime slots, quotas, chart
geometry) exhaustively, then the API over a real hub: scope by unit, bad input, CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hub import reports
from hub.appkeys import DB
from hub.db import iso
from hub.errors import validation_detail
from hub.reports import (
    BulletinRow,
    DeviceRow,
    PlayRow,
    ReportQuery,
    build_report,
    chart_bars,
    counted_slots,
    device_uptime,
    month_days,
    per_day,
    period_bounds,
    qualifies,
    quota_rows,
    slot_index,
    tally_by,
)
from hub.testing import EnrolledDevice, FakeClock, HubHarness, health_report, running_hub
from loa_contract import VN_TZ
from tests.real_files import wav_bytes
from tests.test_hub_device import publish

LONG_TEXT = " ".join(["Thông báo lịch tiêm chủng cho trẻ em trong xã."] * 40)  # 400 words
T0 = datetime(2025, 3, 1, tzinfo=VN_TZ)  # local midnight, 2025-02-28 17:00 UTC


def play(
    bulletin: str = "b1",
    start: datetime = T0,
    seconds: float = 60.0,
    *,
    priority: str = "normal",
    kind: str = "text",
    outcome: str = "completed",
) -> PlayRow:
    return PlayRow(
        bulletin_id=bulletin,
        priority=priority,
        kind=kind,
        started_at=start,
        ended_at=start + timedelta(seconds=seconds),
        outcome=outcome,
        position_s=seconds,
    )


def words(n: int) -> str:
    return " ".join(["chữ"] * n)


# ================================================================ periods


@pytest.mark.parametrize(
    ("month", "first", "last"),
    [
        ("2025-01", date(2025, 1, 1), date(2025, 1, 31)),
        ("2025-02", date(2025, 2, 1), date(2025, 2, 28)),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("2000-02", date(2000, 2, 1), date(2000, 2, 29)),
        ("1900-02", date(1900, 2, 1), date(1900, 2, 28)),
        ("2025-04", date(2025, 4, 1), date(2025, 4, 30)),
        ("2025-12", date(2025, 12, 1), date(2025, 12, 31)),
    ],
)
def test_month_days(month: str, first: date, last: date) -> None:
    assert month_days(month) == (first, last)


@pytest.mark.parametrize("month", ["2025-13", "2025-00", "2025-1", "25-01", "2025/01", "", "x"])
def test_month_days_refuses_non_months(month: str) -> None:
    with pytest.raises(ValueError):
        month_days(month)


def test_period_bounds_are_local_midnights_in_utc() -> None:
    start, end = period_bounds(date(2025, 3, 1), date(2025, 3, 31))
    assert start == datetime(2025, 2, 28, 17, 0, tzinfo=UTC)
    assert end == datetime(2025, 3, 31, 17, 0, tzinfo=UTC)
    one = period_bounds(date(2025, 3, 5), date(2025, 3, 5))
    assert one[1] - one[0] == timedelta(days=1)
    with pytest.raises(ValueError):
        period_bounds(date(2025, 3, 2), date(2025, 3, 1))


# ================================================================ airings


def test_airing_length_and_what_counts() -> None:
    assert reports.airing_seconds(play(seconds=90.5)) == 90.5
    assert reports.airing_seconds(play(seconds=0)) == 0
    # A device clock jumping backwards mid-airing must not subtract minutes.
    assert reports.airing_seconds(play(seconds=-30)) == 0
    for outcome in ("completed", "preempted", "stopped"):
        assert reports.is_airing(play(outcome=outcome))
    assert not reports.is_airing(play(outcome="failed"))


@pytest.mark.parametrize(
    ("source", "unit", "level"),
    [
        ("central", "province", "central"),
        ("commune", "00001", "commune"),
        ("province", "province", "province"),
        ("province", "so-yte", "agency"),
        ("province", "baotinh", "agency"),
    ],
)
def test_source_level(source: str, unit: str, level: str) -> None:
    b = BulletinRow(id="b", unit=unit, source_level=source, kind="text")
    assert reports.source_level(b) == level


def test_source_level_and_category_of_unknown_bulletin() -> None:
    assert reports.source_level(None) == "unknown"
    assert reports.category_of(None) == "other"
    blank = BulletinRow(id="b", unit="province", source_level="province", kind="text")
    assert reports.category_of(blank) == "other"
    set_ = BulletinRow(
        id="b", unit="province", source_level="province", kind="text", category="science_culture"
    )
    assert reports.category_of(set_) == "science_culture"


def test_tally_zero_fills_counts_distinct_bulletins_and_skips_failed() -> None:
    plays = [
        play("a", seconds=60, priority="priority"),
        play("a", seconds=30, priority="priority"),
        play("b", seconds=45, priority="priority"),
        play("c", seconds=120, priority="emergency"),
        play("d", seconds=600, priority="normal", outcome="failed"),
    ]
    rows = tally_by(plays, lambda p: p.priority, reports.PRIORITY_KEYS)
    assert [r.key for r in rows] == ["emergency", "priority", "normal"]
    by = {r.key: r for r in rows}
    assert (by["priority"].bulletins, by["priority"].airings, by["priority"].seconds) == (2, 3, 135)
    assert by["priority"].minutes == 2.2  # 135 s = 2.25 min, one decimal
    assert (by["emergency"].bulletins, by["emergency"].airings, by["emergency"].minutes) == (
        1,
        1,
        2.0,
    )
    # The failed airing counts nowhere; its group still shows, at zero.
    assert (by["normal"].bulletins, by["normal"].airings, by["normal"].seconds) == (0, 0, 0)


def test_tally_lists_unexpected_keys_after_the_fixed_ones_sorted() -> None:
    plays = [play(kind="zeta"), play(kind="alpha"), play(kind="text")]
    rows = tally_by(plays, lambda p: p.kind, ("text", "audio"))
    assert [r.key for r in rows] == ["text", "audio", "alpha", "zeta"]
    assert tally_by([], lambda p: p.kind) == []


def test_minutes_rounding() -> None:
    assert reports.minutes(0) == 0.0
    assert reports.minutes(59) == 1.0
    assert reports.minutes(89) == 1.5
    assert reports.minutes(3) == 0.1
    assert reports.minutes(2) == 0.0


def test_per_day_zero_fills_and_cuts_at_local_midnight() -> None:
    first, last = date(2025, 3, 1), date(2025, 3, 31)
    before_midnight = datetime(2025, 3, 1, 16, 59, 59, tzinfo=UTC)  # 23:59:59 on 1 March
    midnight = datetime(2025, 3, 1, 17, 0, tzinfo=UTC)  # 00:00 on 2 March
    plays = [
        play("a", before_midnight, 120),  # counts whole on 1 March, though it ends on the 2nd
        play("b", midnight, 60),
        play("c", midnight + timedelta(hours=3), 30),
        play("d", midnight, 999, outcome="failed"),
        play("e", T0 - timedelta(seconds=1), 60),  # 28 February: outside
        play("f", datetime(2025, 3, 31, 17, 0, tzinfo=UTC), 60),  # 1 April: outside
    ]
    days = per_day(plays, first, last)
    assert len(days) == 31 and days[0].date == first and days[-1].date == last
    assert (days[0].airings, days[0].seconds, days[0].minutes) == (1, 120, 2.0)
    assert (days[1].airings, days[1].seconds, days[1].minutes) == (2, 90, 1.5)
    assert all(d.airings == 0 and d.seconds == 0 for d in days[2:])
    assert len(per_day([], date(2024, 2, 1), date(2024, 2, 29))) == 29
    assert len(per_day([], first, first)) == 1


# ================================================================ uptime


@pytest.mark.parametrize(
    ("offset", "slot"),
    [
        (0, 0),
        (0.999999, 0),
        (299, 0),
        (299.999999, 0),  # fractions are dropped, never rounded up into the next slot
        (300, 1),
        (599, 1),
        (600, 2),
        (86_400, 288),
        (-0.5, -1),
        (-300, -1),
        (-301, -2),
    ],
)
def test_slot_index(offset: float, slot: int) -> None:
    assert slot_index(T0 + timedelta(seconds=offset), T0) == slot


def test_slot_index_other_slot_lengths() -> None:
    assert slot_index(T0 + timedelta(seconds=59), T0, 60) == 0
    assert slot_index(T0 + timedelta(seconds=60), T0, 60) == 1
    assert slot_index(T0 + timedelta(hours=1), T0, 3600) == 1


def test_counted_slots() -> None:
    start, end = period_bounds(date(2025, 3, 1), date(2025, 3, 31))
    total = 31 * 288
    after = end + timedelta(days=5)
    assert counted_slots(start, end, after, None) == range(0)
    # Enrolled before the period, judged after it: every slot counts.
    assert counted_slots(start, end, after, start - timedelta(days=40)) == range(0, total)
    # Enrolled mid-slot: that slot counts (the device had part of it to report in).
    enrolled = start + timedelta(minutes=12)
    assert counted_slots(start, end, after, enrolled) == range(2, total)
    # "Now" mid-period: up to and including the slot holding now.
    now = start + timedelta(hours=1, minutes=1)
    assert counted_slots(start, end, now, start) == range(0, 13)
    assert counted_slots(start, end, start, start) == range(0, 1)
    # A period wholly in the future, or enrolment after now: nothing counts.
    assert counted_slots(start, end, start - timedelta(seconds=1), start) == range(0)
    assert len(counted_slots(start, end, now, now + timedelta(hours=1))) == 0
    # Enrolled after the period ended: nothing counts.
    assert len(counted_slots(start, end, after, end + timedelta(days=1))) == 0


def _device(enrolled: datetime | None) -> DeviceRow:
    return DeviceRow(id="d1", name="Loa", commune="00001", kind="speaker", enrolled_at=enrolled)


def test_device_uptime_percent() -> None:
    start = T0.astimezone(UTC)
    end = start + timedelta(days=1)
    now = start + timedelta(minutes=49)  # slots 0..9 count
    up = device_uptime(_device(start), [0, 1, 2, 3, 3, 5, 6, 9, 42, -1], start, end, now)
    assert (up.slots, up.up_slots, up.percent) == (10, 7, 70.0)
    third = device_uptime(_device(start), [0], start, end, start + timedelta(minutes=14))
    assert (third.slots, third.up_slots, third.percent) == (3, 1, 33.3)
    full = device_uptime(_device(start), range(288), start, end, end + timedelta(days=1))
    assert (full.slots, full.up_slots, full.percent) == (288, 288, 100.0)
    never = device_uptime(_device(None), [0, 1], start, end, now)
    assert (never.slots, never.up_slots, never.percent) == (0, 0, None)
    silent = device_uptime(_device(start), [], start, end, now)
    assert silent.percent == 0.0
    # Reports before enrolment (a re-used slot id, a wrong clock) do not count.
    late = device_uptime(_device(start + timedelta(minutes=30)), [0, 1, 6, 7], start, end, now)
    assert (late.slots, late.up_slots, late.percent) == (4, 2, 50.0)


def test_report_slots_of_moments() -> None:
    moments = [T0, T0 + timedelta(seconds=10), T0 + timedelta(minutes=5), T0 - timedelta(1)]
    assert reports.report_slots(moments, T0) == {0, 1, -288}


# ================================================================ quotas


def provided(unit: str, kind: str = "text", **kw: Any) -> BulletinRow:
    return BulletinRow(
        id=kw.pop("id", f"{unit}-{kind}-{len(kw)}"),
        unit=unit,
        source_level=kw.pop("source_level", "province"),
        kind=kind,
        **kw,
    )


def test_length_seconds() -> None:
    assert reports.word_count(None) == 0 and reports.word_count("  a  b\nc ") == 3
    assert reports.length_seconds(provided("x", text=words(150))) == 60
    assert reports.length_seconds(provided("x", "document", text=words(300))) == 120
    # A measured airing beats the estimate from words.
    assert reports.length_seconds(provided("x", text=words(150), measured_seconds=75)) == 75
    assert reports.length_seconds(provided("x", "audio", measured_seconds=130)) == 130
    assert reports.length_seconds(provided("x", "audio")) is None
    assert reports.length_seconds(provided("x", "audio", measured_seconds=0)) is None
    assert reports.length_seconds(provided("x", "image")) is None


@pytest.mark.parametrize(
    ("bulletin", "verdict"),
    [
        (provided("a", text=words(299)), False),
        (provided("a", text=words(300)), True),
        (provided("a", text=words(500)), True),
        (provided("a", text=words(501)), False),
        (provided("a", "document", text=words(420)), True),
        (provided("a", "document"), None),
        (provided("a", "audio"), None),
        (provided("a", "audio", measured_seconds=114.9), False),
        (provided("a", "audio", measured_seconds=115), True),  # 2 min less the tolerance
        (provided("a", "audio", measured_seconds=150), True),
        (provided("a", "audio", measured_seconds=185), True),
        (provided("a", "audio", measured_seconds=185.1), False),
        (provided("a", "image"), False),
        (provided("a", "video", measured_seconds=150), False),
    ],
)
def test_agency_length_rule(bulletin: BulletinRow, verdict: bool | None) -> None:
    assert qualifies(bulletin, "agency") is verdict


@pytest.mark.parametrize(
    ("bulletin", "verdict"),
    [
        (provided("n", text=words(299)), False),  # 1:59.6 at 150 words a minute
        (provided("n", text=words(300)), True),  # 2:00
        (provided("n", text=words(750)), True),  # 5:00
        (provided("n", text=words(751)), False),
        (provided("n", "audio", measured_seconds=114), False),
        (provided("n", "audio", measured_seconds=116), True),
        (provided("n", "audio", measured_seconds=305), True),
        (provided("n", "audio", measured_seconds=306), False),
        (provided("n", text=words(100), measured_seconds=200), True),  # TTS measured: 3:20
        (provided("n", "audio"), None),
        (provided("n", "video"), None),
        (provided("n", "image"), False),
    ],
)
def test_newspaper_length_rule(bulletin: BulletinRow, verdict: bool | None) -> None:
    assert qualifies(bulletin, "newspaper") is verdict


def test_province_products_have_no_length_rule() -> None:
    assert qualifies(provided("province", "image"), "province") is True
    assert qualifies(provided("province", "audio"), "province") is True


def test_provider_of() -> None:
    assert reports.provider_of("province") == "province"
    assert reports.provider_of("baotinh") == "newspaper"
    assert reports.provider_of("so-yte") == "agency"
    assert reports.provider_of("so-yte", frozenset({"so-yte"})) == "newspaper"


def test_quota_rows() -> None:
    rows = quota_rows(
        [
            provided("province", id="p1"),
            provided("province", "image", id="p2"),
            provided("province", id="c1", source_level="central"),  # received, not produced
            provided("00001", id="x1", source_level="commune"),  # a commune's, no quota
            provided("baotinh", text=words(400), id="n1"),
            provided("baotinh", text=words(400), id="n2"),
            provided("baotinh", text=words(400), id="n3"),
            provided("baotinh", text=words(50), id="n4"),  # too short
            provided("baotinh", "audio", id="n5"),  # never aired: length unknown
            provided("so-yte", text=words(350), id="a1"),
            provided("so-nn", "audio", measured_seconds=60, id="a2"),  # too short
        ],
        agencies=["so-gtvt", "so-yte", "province", ""],
    )
    assert [r.unit for r in rows] == ["province", "baotinh", "so-gtvt", "so-nn", "so-yte"]
    by = {r.unit: r for r in rows}
    assert (by["province"].provider, by["province"].provided, by["province"].met) == (
        "province",
        2,
        True,
    )
    paper = by["baotinh"]
    assert (paper.provider, paper.required, paper.provided, paper.counted) == ("newspaper", 4, 5, 3)
    assert (paper.unknown_length, paper.met) == (1, False)
    # An agency with an account that sent nothing shows, not met.
    assert (by["so-gtvt"].provided, by["so-gtvt"].counted, by["so-gtvt"].met) == (0, 0, False)
    assert (by["so-nn"].provided, by["so-nn"].counted, by["so-nn"].met) == (1, 0, False)
    assert (by["so-yte"].required, by["so-yte"].counted, by["so-yte"].met) == (1, 1, True)
    only = quota_rows([], [])
    assert [(r.unit, r.provided, r.met) for r in only] == [("province", 0, False)]


def test_quota_for_a_newspaper_meets_at_four() -> None:
    four = [provided("baotinh", text=words(400), id=f"n{i}") for i in range(4)]
    [_, paper] = quota_rows(four, [])
    assert paper.counted == 4 and paper.met


# ================================================================ the whole report


def test_build_report() -> None:
    first, last = date(2025, 3, 1), date(2025, 3, 31)
    start, end = period_bounds(first, last)
    bulletins = {
        "p": BulletinRow(
            id="p",
            unit="province",
            source_level="province",
            kind="text",
            category="events_holidays",
        ),
        "a": BulletinRow(id="a", unit="so-yte", source_level="province", kind="audio"),
        "x": BulletinRow(id="x", unit="00001", source_level="commune", kind="text"),
    }
    plays = [
        play("p", T0 + timedelta(hours=6), 120, priority="priority"),
        play("p", T0 + timedelta(days=1, hours=6), 120, priority="priority"),
        play("a", T0 + timedelta(hours=7), 180, kind="audio"),
        play("x", T0 + timedelta(hours=8), 60),
        play("ghost", T0 + timedelta(hours=9), 30),
        play("x", T0 + timedelta(hours=10), 60, outcome="failed"),
        play("p", T0 - timedelta(hours=1), 600),  # February: not this report's
    ]
    devices = [_device(start - timedelta(days=1))]
    now = end + timedelta(days=1)
    report = build_report(
        first=first,
        last=last,
        now=now,
        commune=None,
        plays=plays,
        bulletins=bulletins,
        devices=devices,
        up_slots={"d1": range(0, 31 * 288, 2)},
        provided=[],
        agencies=["so-yte"],
    )
    assert report.scope == "province" and report.commune is None
    assert (report.totals.bulletins, report.totals.airings, report.totals.seconds) == (4, 5, 510)
    assert report.totals.minutes == 8.5 and report.failed_airings == 1
    assert {t.key: t.airings for t in report.by_priority} == {
        "emergency": 0,
        "priority": 2,
        "normal": 3,
    }
    assert {t.key: t.seconds for t in report.by_kind if t.airings} == {"text": 330, "audio": 180}
    assert [(t.key, t.airings) for t in report.by_source_level] == [
        ("central", 0),
        ("province", 2),
        ("agency", 1),
        ("commune", 1),
        ("unknown", 1),
    ]
    cats = {t.key: t.airings for t in report.by_category}
    assert cats["events_holidays"] == 2 and cats["other"] == 3
    assert [c.key for c in report.by_category][: len(reports.CATEGORY_KEYS)] == list(
        reports.CATEGORY_KEYS
    )
    assert report.per_day[0].minutes == 6.5 and report.per_day[1].minutes == 2.0
    assert sum(d.seconds for d in report.per_day) == report.totals.seconds
    [uptime] = report.uptime
    assert (uptime.slots, uptime.up_slots, uptime.percent) == (8928, 4464, 50.0)
    assert report.quotas is not None and [q.unit for q in report.quotas] == ["province", "so-yte"]
    commune = build_report(
        first=first,
        last=last,
        now=now,
        commune="00001",
        plays=[],
        bulletins={},
        devices=[],
        up_slots={},
        provided=None,
    )
    assert commune.scope == "commune" and commune.quotas is None
    assert commune.totals.airings == 0 and len(commune.per_day) == 31


def test_csv_rows_have_every_section() -> None:
    first, last = date(2025, 3, 1), date(2025, 3, 2)
    report = build_report(
        first=first,
        last=last,
        now=T0,
        commune=None,
        plays=[play("p", T0, 90)],
        bulletins={},
        devices=[_device(None)],
        up_slots={},
        provided=[],
    )
    rows = reports.csv_rows(report)
    assert rows[0][0] == "report" and rows[1][1] == "province"
    assert ["total", "total", 1, 1, 90, 1.5] in rows
    assert ["2025-03-01", 1, 90, 1.5] in rows and ["2025-03-02", 0, 0, 0.0] in rows
    assert ["d1", "Loa", "00001", "speaker", 0, 0, None] in rows
    assert any(r[:2] == ["province", "province"] for r in rows)
    no_quotas = reports.csv_rows(report.model_copy(update={"quotas": None}))
    assert not any(r and r[0] == "unit" for r in no_quotas)


# ================================================================ chart geometry


def test_chart_bars_geometry() -> None:
    chart = chart_bars(
        [("a", 10), ("b", 5), ("c", 0), ("d", -3)], width=400, height=200, pad_top=10, pad_bottom=30
    )
    assert (chart.baseline, chart.top, chart.maximum) == (170, 10, 10)
    assert [b.x for b in chart.bars] == [10, 110, 210, 310]
    assert all(b.width == 80 for b in chart.bars)
    assert [b.height for b in chart.bars] == [160, 80, 0, 0]
    assert all(round(b.y + b.height, 6) == chart.baseline for b in chart.bars)
    assert chart.bars[0].y == chart.top


def test_chart_bars_edge_cases() -> None:
    flat = chart_bars([("a", 0), ("b", 0)])
    assert all(b.height == 0 for b in flat.bars) and flat.maximum == 0
    assert chart_bars([]).bars == []
    scaled = chart_bars([("a", 50), ("b", 150)], height=112, pad_top=6, pad_bottom=6, scale=100)
    assert [b.height for b in scaled.bars] == [50, 100]  # above the scale: full height
    one = chart_bars([("only", 3)], width=100, gap=0.5)
    assert (one.bars[0].x, one.bars[0].width) == (25, 50)


# ================================================================ the query


def _field(data: dict[str, str]) -> str:
    with pytest.raises(ValidationError) as caught:
        ReportQuery.model_validate(data)
    return validation_detail(caught.value)[0]["field"]


def test_report_query() -> None:
    today = date(2025, 3, 17)
    assert ReportQuery().days(today) == (date(2025, 3, 1), date(2025, 3, 31))
    assert ReportQuery(month="2024-02").days(today) == (date(2024, 2, 1), date(2024, 2, 29))
    ranged = ReportQuery.model_validate({"start": "2025-03-05", "end": "2025-03-09"})
    assert ranged.days(today) == (date(2025, 3, 5), date(2025, 3, 9))
    assert _field({"month": "2025-13"}) == "month"
    assert _field({"month": "March"}) == "month"
    assert _field({"start": "2025-03-05"}) == "end"
    assert _field({"end": "2025-03-05"}) == "end"
    assert _field({"start": "2025-03-05", "end": "2025-03-04"}) == "end"
    assert _field({"start": "2024-01-01", "end": "2025-01-01"}) == "end"  # 367 days
    assert _field({"month": "2025-03", "start": "2025-03-05", "end": "2025-03-06"}) == "start"
    assert _field({"commune": "bad code!"}) == "commune"
    assert _field({"month": "2025-03", "extra": "1"}) == "extra"


# ================================================================ the API


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001")
        await harness.commune("00002")
        yield harness


def _play_report(
    seq: int, bulletin: str, started: datetime, seconds: float, **kw: Any
) -> dict[str, Any]:
    return {
        "type": "play",
        "seq": seq,
        "bulletin_id": bulletin,
        "priority": kw.get("priority", "normal"),
        "kind": kw.get("kind", "text"),
        "started_at": started.isoformat(),
        "ended_at": (started + timedelta(seconds=seconds)).isoformat(),
        "outcome": kw.get("outcome", "completed"),
        "position_s": seconds,
    }


async def _report(device: EnrolledDevice, items: list[dict[str, Any]]) -> None:
    status, body = await device.report(items)
    assert status == 200, body


def _month_of(moment: datetime) -> str:
    return moment.astimezone(VN_TZ).strftime("%Y-%m")


async def _aired(
    hub: HubHarness, devices: list[EnrolledDevice], commune: str, kind: str = "text", **kw: Any
) -> str:
    """A bulletin published for `commune` a day ago, to the devices enrolled since: the hub
    credits a device only with airings of what it was sent, while it was valid. Its text runs
    150 words (up to 3 minutes spoken); its audio file 90 s (an airing lasts no longer)."""
    if kind == "audio":
        kw.update(media=(await hub.upload(wav_bytes(90.0)))["sha256"], text=None)
    else:
        kw.setdefault("text", "lời " * 150)
    bulletin = (await publish(hub, kind=kind, targets={"communes": [commune]}, **kw))["id"]
    since = datetime.now(UTC) - timedelta(days=1)
    for device in devices:
        await hub.backdate(since, device.id, bulletin)
    return bulletin


async def test_monthly_report_counts_airings_by_scope(hub: HubHarness) -> None:
    one = await hub.new_device("00001")
    two = await hub.new_device("00002")
    b1 = await _aired(hub, [one], "00001", priority="priority")
    b2 = await _aired(hub, [one], "00001")
    b3 = await _aired(hub, [two], "00002", kind="audio")
    started = datetime.now(UTC) - timedelta(minutes=30)
    await _report(
        one,
        [
            _play_report(1, b1, started, 120, priority="priority"),
            _play_report(2, b1, started + timedelta(minutes=5), 120, priority="priority"),
            _play_report(3, b2, started + timedelta(minutes=10), 60, outcome="failed"),
            health_report(4, started),
        ],
    )
    await _report(two, [_play_report(1, b3, started, 90, kind="audio")])
    # A retried batch is stored once: the report must not double-count it.
    await _report(two, [_play_report(1, b3, started, 90, kind="audio")])
    # A play stored before the hub checked proof of play, of a bulletin it does not hold.
    await hub.app[DB].execute(
        "INSERT INTO plays (device_id, seq, bulletin_id, priority, kind, started_at, ended_at,"
        " outcome, position_s, received_at) VALUES (?, 99, 'gone', 'normal', 'text', ?, ?,"
        " 'completed', 0, ?)",
        (one.id, iso(started), iso(started + timedelta(seconds=40)), iso(started)),
    )
    month = _month_of(started)
    report = await hub.call("GET", "/api/v1/reports/monthly", params={"month": month})
    assert report["scope"] == "province" and report["commune"] is None
    assert report["totals"]["airings"] == 4 and report["totals"]["seconds"] == 370
    assert report["totals"]["bulletins"] == 3 and report["failed_airings"] == 1
    priority = {t["key"]: t for t in report["by_priority"]}
    assert priority["priority"]["airings"] == 2 and priority["priority"]["minutes"] == 4.0
    assert {t["key"]: t["airings"] for t in report["by_kind"]}["audio"] == 1
    # Bulletins the hub does not hold are "unknown" sources, never dropped.
    assert {t["key"]: t["airings"] for t in report["by_source_level"]}["unknown"] == 1
    day = started.astimezone(VN_TZ).date().isoformat()
    assert {d["date"]: d["seconds"] for d in report["per_day"]}[day] == 370
    assert {u["device_id"] for u in report["uptime"]} == {one.id, two.id}
    assert all(u["up_slots"] >= 1 and u["percent"] > 0 for u in report["uptime"])
    assert report["quotas"][0]["unit"] == "province"

    only = await hub.call(
        "GET", "/api/v1/reports/monthly", params={"month": month, "commune": "00002"}
    )
    assert only["scope"] == "commune" and only["commune"] == "00002" and only["quotas"] is None
    assert only["totals"]["airings"] == 1 and only["totals"]["seconds"] == 90
    assert [u["device_id"] for u in only["uptime"]] == [two.id]


async def test_commune_operator_sees_only_its_commune(hub: HubHarness) -> None:
    one = await hub.new_device("00001")
    two = await hub.new_device("00002")
    b1 = await _aired(hub, [one], "00001")
    b2 = await _aired(hub, [two], "00002", kind="audio")
    started = datetime.now(UTC) - timedelta(minutes=15)
    await _report(one, [_play_report(1, b1, started, 60)])
    await _report(two, [_play_report(1, b2, started, 90, kind="audio")])
    op = await hub.user("xa1.op", "commune_operator", "00001")
    month = _month_of(started)
    mine = await op.call("GET", "/api/v1/reports/monthly", params={"month": month})
    assert mine["commune"] == "00001" and mine["totals"]["seconds"] == 60
    assert mine["quotas"] is None and [u["device_id"] for u in mine["uptime"]] == [one.id]
    same = await op.call(
        "GET", "/api/v1/reports/monthly", params={"month": month, "commune": "00001"}
    )
    assert same["totals"] == mine["totals"]
    other = await op.call(
        "GET", "/api/v1/reports/monthly", params={"month": month, "commune": "00002"}, expect=403
    )
    assert other["error"] == "out_of_scope"
    await op.call(
        "GET",
        "/api/v1/reports/monthly.csv",
        params={"month": month, "commune": "00002"},
        expect=403,
    )
    agency = await hub.user("bt.soyte", "contributor", "so-yte")
    await agency.call("GET", "/api/v1/reports/monthly", expect=403)
    await hub.call("GET", "/api/v1/reports/monthly", auth=False, expect=401)


async def test_bad_input_names_the_field(hub: HubHarness) -> None:
    for bad in ("2025-13", "2025-1", "march"):
        body = await hub.call("GET", "/api/v1/reports/monthly", params={"month": bad}, expect=422)
        assert body["error"] == "validation_error"
        assert body["detail"][0]["field"] == "month"
    body = await hub.call(
        "GET",
        "/api/v1/reports/monthly",
        params={"start": "2025-03-09", "end": "2025-03-01"},
        expect=422,
    )
    assert body["detail"][0]["field"] == "end"
    missing = await hub.call(
        "GET", "/api/v1/reports/monthly", params={"commune": "09999"}, expect=404
    )
    assert missing["detail"][0]["field"] == "commune"


async def test_default_is_the_current_month_and_ranges_work(hub: HubHarness) -> None:
    now = datetime.now(VN_TZ)
    report = await hub.call("GET", "/api/v1/reports/monthly")
    assert report["first_day"] == now.date().replace(day=1).isoformat()
    ranged = await hub.call(
        "GET", "/api/v1/reports/monthly", params={"start": "2025-03-05", "end": "2025-03-07"}
    )
    assert [d["date"] for d in ranged["per_day"]] == ["2025-03-05", "2025-03-06", "2025-03-07"]


async def test_sql_slots_agree_with_the_pure_arithmetic(tmp_path: Path) -> None:
    """Uptime slots are computed by SQLite for speed; they must match `slot_index` exactly,
    fractions of a second included (SQLite's own time functions round them)."""
    clock = FakeClock(datetime(2024, 4, 15, 3, 0, tzinfo=UTC))
    async with running_hub(tmp_path, clock=clock) as hub:
        await hub.commune("00001")
        device = await hub.new_device("00001")
        start, end = period_bounds(date(2024, 3, 1), date(2024, 3, 31))
        await hub.app[DB].execute(
            "UPDATE devices SET enrolled_at = ? WHERE id = ?",
            (iso(start - timedelta(days=30)), device.id),
        )
        moments = [
            start,
            start + timedelta(seconds=299, microseconds=999_999),
            start + timedelta(seconds=300),
            start + timedelta(days=1),
            end - timedelta(microseconds=1),
            end,  # April: outside
            start - timedelta(microseconds=1),  # February: outside
        ]
        await _report(device, [health_report(i + 1, m) for i, m in enumerate(moments)])
        report = await hub.call("GET", "/api/v1/reports/monthly", params={"month": "2024-03"})
        [uptime] = report["uptime"]
        expected = {s for s in reports.report_slots(moments, start) if 0 <= s < 31 * 288}
        assert expected == {0, 1, 288, 31 * 288 - 1}
        assert (uptime["slots"], uptime["up_slots"]) == (31 * 288, len(expected))
        assert uptime["percent"] == round(100 * 4 / (31 * 288), 1)


async def test_quotas_from_published_bulletins(hub: HubHarness) -> None:
    reviewer = await hub.user("tt.lan", "reviewer")
    paper = await hub.user("bt.bao", "contributor", "baotinh")
    health = await hub.user("bt.soyte", "contributor", "so-yte")
    await hub.user("bt.gtvt", "contributor", "so-gtvt")
    now = datetime.now(UTC)
    schedule = {
        "valid_from": (now - timedelta(minutes=1)).isoformat(),
        "valid_until": (now + timedelta(days=1)).isoformat(),
    }
    base = {
        "kind": "text",
        "priority": "normal",
        "text": LONG_TEXT,
        "category": "socioeconomic_development",
        "schedule": schedule,
    }
    for who in (paper, health):
        draft = await who.call(
            "POST", "/api/v1/bulletins", json={**base, "title": "Tin"}, expect=201
        )
        await who.call("POST", f"/api/v1/bulletins/{draft['id']}/submit")
        await reviewer.call(
            "POST",
            f"/api/v1/bulletins/{draft['id']}/approve",
            json={"targets": {"communes": ["00001"]}},
        )
    for i in range(2):
        own = await hub.call(
            "POST",
            "/api/v1/bulletins",
            json={**base, "title": f"Tỉnh {i}", "targets": {"communes": ["00001"]}},
            expect=201,
        )
        await hub.call("POST", f"/api/v1/bulletins/{own['id']}/publish")
    report = await hub.call(
        "GET", "/api/v1/reports/monthly", params={"month": _month_of(datetime.now(UTC))}
    )
    quotas = {q["unit"]: q for q in report["quotas"]}
    assert list(quotas) == ["province", "baotinh", "so-gtvt", "so-yte"]
    assert quotas["province"]["provided"] == 2 and quotas["province"]["met"]
    assert quotas["baotinh"]["provider"] == "newspaper"
    assert (quotas["baotinh"]["counted"], quotas["baotinh"]["met"]) == (1, False)
    assert quotas["so-yte"]["met"] and quotas["so-yte"]["counted"] == 1
    assert not quotas["so-gtvt"]["met"] and quotas["so-gtvt"]["provided"] == 0


async def test_csv_export(hub: HubHarness) -> None:
    device = await hub.new_device("00001")
    bulletin = await _aired(hub, [device], "00001")
    started = datetime.now(UTC) - timedelta(minutes=5)
    await _report(device, [_play_report(1, bulletin, started, 60)])
    month = _month_of(started)
    resp = await hub.client.get(
        "/api/v1/reports/monthly.csv", params={"month": month}, headers=hub.auth
    )
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    raw = await resp.read()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][0] == "report" and rows[1][1] == "province"
    assert ["total", "total", "1", "1", "60.0", "1.0"] in rows
    assert any(r and r[0] == device.id for r in rows)
    bad = await hub.client.get(
        "/api/v1/reports/monthly.csv", params={"month": "13"}, headers=hub.auth
    )
    assert bad.status == 422 and (await bad.json())["detail"][0]["field"] == "month"


async def test_openapi_declares_the_reports(hub: HubHarness) -> None:
    doc = await hub.call("GET", "/api/v1/openapi.json", auth=False)
    op = doc["paths"]["/api/v1/reports/monthly"]["get"]
    assert op["tags"] == ["reports"] and "422" in op["responses"]
    assert {p["name"] for p in op["parameters"]} == {"month", "start", "end", "commune"}
    assert (
        "text/csv"
        in doc["paths"]["/api/v1/reports/monthly.csv"]["get"]["responses"]["200"]["content"]
    )
