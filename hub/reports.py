"""Activity reports (báo cáo): what aired, for how long, how reliably, and whether providers
met their monthly quotas. Communes report to the province, the province to the ministry.

The arithmetic is a set of PURE functions (plain values in, plain values out; no clock, no
database) at the top of this module, each unit-tested on its own. The routes at the bottom
only read rows, hand them to `build_report`, and serialise the answer as JSON or CSV.

Definitions (what the numbers mean):

- **Airing.** One proof-of-play row: one device playing one bulletin once. A row whose
  outcome is ``failed`` is not an airing; it is counted apart (``failed_airings``) so nothing
  hides. Airings are counted on every device: a bulletin played by ten loudspeakers makes
  ten airings.
- **Minutes aired.** The sum of ``ended_at - started_at`` of the airings (device-minutes;
  negative spans from a bad device clock count as zero). An airing belongs, whole, to the
  local (Asia/Ho_Chi_Minh) day its ``started_at`` falls in; the period is whole local days.
- **Bulletins aired.** Distinct bulletins among the airings of a group.
- **Source level.** ``central`` (received from the central HTTTN), ``commune`` (made by a
  commune), ``province`` (the province's own unit), ``agency`` (any other unit: a sở, ban,
  ngành or the newspaper); ``unknown`` for an airing of a bulletin the hub does not hold.
- **Content category.** The bulletin's category code (see hub.categories); none → ``other``.
- **Uptime.** The period is cut into 5-minute slots aligned on the period's start (local
  midnight, itself a multiple of 5 minutes in UTC). A device is **up** in a slot if it
  reported from within it: a health sample taken then, an airing started then, or its
  last-seen time. A slot **counts** from the one holding the device's enrollment until the one
  holding "now" (the hub's clock); slots before enrollment or in the future are not counted.
  ``uptime % = up slots / counted slots × 100`` (one decimal), or none when nothing counts.
  Health samples are kept for the hub's ``health_retention`` (30 days by default): a period
  older than that has only airings and last-seen as evidence and reads low.
- **Provider quotas** (per unit, per period; from the regulations): the province's own unit
  provides ≥ 2 products (any bulletin it published itself, central ones excluded); the
  newspaper (a unit the register of units, hub/units.py, calls a newspaper; one not in it if
  ``NEWSPAPER_UNITS`` names it) ≥ 4 bulletins of 2–5 minutes; every other agency unit (each
  registered unit, each contributor account's unit, and any unit that published) ≥ 1 bulletin of
  300–500 words of text or 2–3 minutes of audio. A bulletin is *provided* in the period in
  which it was published into the source repository (``published_at``). Length: a text or
  document bulletin's words at ``READING_WPM`` words per minute; audio or video, the longest
  completed airing's position (measured by the devices); otherwise unknown, which never
  counts towards a length rule (``unknown_length`` says how many). Bounds are inclusive with
  ``LENGTH_TOLERANCE_S`` of slack for measured lengths.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from loa_contract import BulletinKind, PlayOutcome, Priority
from loa_contract.models import CIVIL_YEARS, VN_TZ

from .audit_api import stream_csv
from .auth import Permission
from .categories import CATEGORIES
from .categories import DEFAULT as DEFAULT_CATEGORY
from .db import iso
from .domain.lengths import within
from .errors import ApiError, field_error
from .incidents import IncidentOut, incident_out
from .routing import Ctx, RouteTable
from .store import accounts, communes
from .store import incidents as incident_store
from .store import reports as store
from .store import units as unit_store
from .store.reports import BulletinRow, DeviceRow, PlayRow
from .units import newspapers as newspapers_of

routes = RouteTable("reports")

#: Uptime slot length.
SLOT_SECONDS = 300
#: Speech rate used to turn a text bulletin's words into minutes (300–500 words ≈ 2–3 min,
#: the regulations' own equivalence for an agency's bulletin).
READING_WPM = 150
#: Units that are the province's newspaper and broadcaster (Báo và Phát thanh, truyền hình);
#: the hub passes its register's newspapers and, for units not in it, its configured
#: `HubConfig.newspaper_units` (hub/units.py `newspapers`).
NEWSPAPER_UNITS: frozenset[str] = frozenset({"baotinh"})
#: The longest period one report covers.
MAX_DAYS = 366

PRIORITY_KEYS: tuple[str, ...] = tuple(p.value for p in Priority)
KIND_KEYS: tuple[str, ...] = tuple(k.value for k in BulletinKind)
SOURCE_KEYS: tuple[str, ...] = ("central", "province", "agency", "commune", "unknown")
CATEGORY_KEYS: tuple[str, ...] = tuple(c.code for c in CATEGORIES)

Provider = Literal["province", "newspaper", "agency"]
PROVINCE_UNIT = "province"
#: Quota rules: (provider) -> (required count, length rule).
QUOTA_REQUIRED: dict[str, int] = {"province": 2, "newspaper": 4, "agency": 1}


# ================================================================ pure: outputs
# (the inputs, PlayRow, BulletinRow and DeviceRow, are the rows hub/store/reports.py reads)


class Tally(BaseModel):
    key: str
    #: Distinct bulletins aired.
    bulletins: int
    airings: int
    seconds: float
    minutes: float


class DayTally(BaseModel):
    date: date
    airings: int
    seconds: float
    minutes: float


class Outage(BaseModel):
    """A time the device was not heard from: from the first silent slot to the slot it was
    heard in again (None: still silent at the period's end or now)."""

    disconnected_at: datetime
    reconnected_at: datetime | None


class DeviceUptime(BaseModel):
    device_id: str
    name: str
    commune: str
    kind: str
    #: Slots of the period the device existed in (enrolled, not in the future).
    slots: int
    up_slots: int
    percent: float | None
    #: Each time it went silent and came back, at the slots' precision (SLOT_SECONDS).
    outages: list[Outage] = Field(default_factory=list)
    #: How many times it started up (booted) in the period, from its health reports.
    reboots: int = 0


class QuotaRow(BaseModel):
    unit: str
    provider: Provider
    required: int
    #: Bulletins the unit published in the period.
    provided: int
    #: Those that satisfy the length rule (all of them for the province).
    counted: int
    #: Provided bulletins whose length is unknown (audio never aired to completion).
    unknown_length: int
    met: bool


class MonthlyReport(BaseModel):
    scope: Literal["province", "commune"]
    commune: str | None
    #: First and last local day of the period (inclusive).
    first_day: date
    last_day: date
    generated_at: datetime
    slot_seconds: int
    totals: Tally
    failed_airings: int
    by_priority: list[Tally]
    by_kind: list[Tally]
    by_source_level: list[Tally]
    by_category: list[Tally]
    per_day: list[DayTally]
    uptime: list[DeviceUptime]
    #: Province scope only: quotas concern the province's providers, not one commune.
    quotas: list[QuotaRow] | None
    #: Incidents open at some moment of the period, oldest first (hub/incidents.py).
    incidents: list[IncidentOut] = Field(default_factory=list)
    #: Once submitted (a commune's to the province, the province's upward), the report is
    #: frozen as it was then: who submitted it and when.
    submitted_by: str | None = None
    submitted_at: datetime | None = None


# ================================================================ pure: periods


def month_days(month: str) -> tuple[date, date]:
    """'2025-02' -> (2025-02-01, 2025-02-28): the first and last day, inclusive."""
    match = re.fullmatch(r"(\d{4})-(0[1-9]|1[0-2])", month)
    if match is None:
        raise ValueError(f"{month!r} is not a month YYYY-MM")
    year, mon = int(match[1]), int(match[2])
    if year < 1:
        raise ValueError("there is no year 0")
    return date(year, mon, 1), date(year, mon, calendar.monthrange(year, mon)[1])


def period_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """Local days first..last (inclusive) as a UTC half-open interval [start, end)."""
    if last < first:
        raise ValueError("the last day is before the first")
    start = datetime.combine(first, time(0), VN_TZ).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), VN_TZ).astimezone(UTC)
    return start, end


def local_day(moment: datetime) -> date:
    return moment.astimezone(VN_TZ).date()


def minutes(seconds: float) -> float:
    return round(seconds / 60.0, 1)


# ================================================================ pure: airings


def airing_seconds(play: PlayRow) -> float:
    """Wall-clock length of one airing; a negative span (device clock jump) counts as 0."""
    return max(0.0, (play.ended_at - play.started_at).total_seconds())


def is_airing(play: PlayRow) -> bool:
    return play.outcome != PlayOutcome.FAILED.value


def source_level(bulletin: BulletinRow | None) -> str:
    if bulletin is None:
        return "unknown"
    if bulletin.source_level in ("central", "commune"):
        return bulletin.source_level
    return "province" if bulletin.unit == PROVINCE_UNIT else "agency"


def category_of(bulletin: BulletinRow | None) -> str:
    if bulletin is None or not bulletin.category:
        return DEFAULT_CATEGORY
    return bulletin.category


def _tally(key: str, plays: list[PlayRow]) -> Tally:
    seconds = sum(airing_seconds(p) for p in plays)
    return Tally(
        key=key,
        bulletins=len({p.bulletin_id for p in plays}),
        airings=len(plays),
        seconds=round(seconds, 3),
        minutes=minutes(seconds),
    )


def tally_by(
    plays: Iterable[PlayRow],
    key: Any,
    keys: Iterable[str] = (),
) -> list[Tally]:
    """Airings grouped by `key(play)`: every one of `keys` first (zero-filled, in order),
    then any other key met, sorted. Failed plays are left out."""
    groups: dict[str, list[PlayRow]] = {k: [] for k in keys}
    for play in plays:
        if is_airing(play):
            groups.setdefault(key(play), []).append(play)
    fixed = list(dict.fromkeys(keys))
    extra = sorted(k for k in groups if k not in fixed)
    return [_tally(k, groups[k]) for k in [*fixed, *extra]]


def total(plays: Iterable[PlayRow]) -> Tally:
    return _tally("total", [p for p in plays if is_airing(p)])


def per_day(plays: Iterable[PlayRow], first: date, last: date) -> list[DayTally]:
    """Airings and minutes for every local day first..last (zero-filled); an airing counts
    whole on the day it started; airings outside the days are ignored."""
    days = (last - first).days + 1
    seconds = [0.0] * max(days, 0)
    airings = [0] * max(days, 0)
    for play in plays:
        if not is_airing(play):
            continue
        index = (local_day(play.started_at) - first).days
        if 0 <= index < days:
            seconds[index] += airing_seconds(play)
            airings[index] += 1
    return [
        DayTally(
            date=first + timedelta(days=i),
            airings=airings[i],
            seconds=round(seconds[i], 3),
            minutes=minutes(seconds[i]),
        )
        for i in range(days)
    ]


# ================================================================ pure: uptime


def slot_index(moment: datetime, start: datetime, slot_s: int = SLOT_SECONDS) -> int:
    """Which slot of the period starting at `start` holds `moment` (may be negative).

    Whole seconds: a moment's fraction of a second is dropped, exactly as the SQL does."""
    delta = math.floor(moment.timestamp()) - math.floor(start.timestamp())
    return delta // slot_s


def counted_slots(
    start: datetime,
    end: datetime,
    now: datetime,
    enrolled_at: datetime | None,
    slot_s: int = SLOT_SECONDS,
) -> range:
    """The slots of [start, end) a device is judged on: from the one holding its enrollment
    to the one holding `now`, inclusive; empty if it never enrolled."""
    if enrolled_at is None:
        return range(0)
    total_slots = math.ceil((end - start).total_seconds() / slot_s)
    first = max(0, slot_index(enrolled_at, start, slot_s))
    if now < start:
        return range(0)
    last = min(total_slots, slot_index(now, start, slot_s) + 1)
    return range(first, max(first, last))


def silent_runs(counted: range, up: set[int]) -> list[tuple[int, int | None]]:
    """The runs of counted slots without a report: (first silent slot, the slot heard in
    again or None when the run reaches the end of `counted`). A run before the first slot
    ever heard counts too: the device was enrolled and silent."""
    runs: list[tuple[int, int | None]] = []
    first: int | None = None
    for slot in counted:
        if slot not in up:
            if first is None:
                first = slot
        elif first is not None:
            runs.append((first, slot))
            first = None
    if first is not None:
        runs.append((first, None))
    return runs


#: Two boot times this close are one boot: a Pi without a clock reports a boot time that
#: moves when NTP sets its clock (boot time is "now minus uptime").
SAME_BOOT_S = 300.0


def count_boots(boot_times: Iterable[float], start: datetime, end: datetime) -> int:
    """The boots whose time falls in [start, end), boot times within SAME_BOOT_S of the
    previous one counting once."""
    low, high = start.timestamp(), end.timestamp()
    boots = 0
    previous: float | None = None
    for boot in sorted(boot_times):
        if previous is None or boot - previous > SAME_BOOT_S:
            if low <= boot < high:
                boots += 1
        previous = boot
    return boots


def device_uptime(
    device: DeviceRow,
    up: Iterable[int],
    start: datetime,
    end: datetime,
    now: datetime,
    slot_s: int = SLOT_SECONDS,
    boot_times: Iterable[float] = (),
) -> DeviceUptime:
    """Uptime from the slots in which a device reported (`up`, indexes from `slot_index`),
    its outages from the silent slots, its reboots from the boot times it reported."""
    counted = counted_slots(start, end, now, device.enrolled_at, slot_s)
    heard = {s for s in up if s in counted}
    up_count = len(heard)

    def moment(slot: int) -> datetime:
        return start + timedelta(seconds=slot * slot_s)

    return DeviceUptime(
        device_id=device.id,
        name=device.name,
        commune=device.commune,
        kind=device.kind,
        slots=len(counted),
        up_slots=up_count,
        percent=round(100.0 * up_count / len(counted), 1) if len(counted) else None,
        outages=[
            Outage(
                disconnected_at=moment(first),
                reconnected_at=moment(back) if back is not None else None,
            )
            for first, back in silent_runs(counted, heard)
        ],
        reboots=count_boots(boot_times, start, end),
    )


def report_slots(
    moments: Iterable[datetime], start: datetime, slot_s: int = SLOT_SECONDS
) -> set[int]:
    return {slot_index(m, start, slot_s) for m in moments}


# ================================================================ pure: quotas


def word_count(text: str | None) -> int:
    return len((text or "").split())


def length_seconds(bulletin: BulletinRow) -> float | None:
    """A bulletin's length: measured when it has aired to completion, else from its words."""
    if bulletin.measured_seconds is not None and bulletin.measured_seconds > 0:
        return bulletin.measured_seconds
    if bulletin.kind in (BulletinKind.TEXT.value, BulletinKind.DOCUMENT.value) and bulletin.text:
        return word_count(bulletin.text) * 60.0 / READING_WPM
    return None


def _within(seconds: float, low: float, high: float) -> bool:
    return within(seconds, low, high)


def qualifies(bulletin: BulletinRow, provider: Provider) -> bool | None:
    """Does a provided bulletin satisfy the provider's length rule? None: length unknown."""
    if provider == "province":
        return True
    measured = bulletin.measured_seconds is not None and bulletin.measured_seconds > 0
    if provider == "agency":
        # 300–500 words of text, or 2–3 minutes of recorded audio.
        if bulletin.kind in (BulletinKind.TEXT.value, BulletinKind.DOCUMENT.value):
            return 300 <= word_count(bulletin.text) <= 500 if bulletin.text else None
        if bulletin.kind == BulletinKind.AUDIO.value:
            return _within(bulletin.measured_seconds or 0.0, 120, 180) if measured else None
        return False
    # The newspaper: articles or finished audio of 2–5 minutes.
    if bulletin.kind == BulletinKind.IMAGE.value:
        return False
    seconds = length_seconds(bulletin)
    if seconds is None:
        return None
    if measured:
        return _within(seconds, 120, 300)
    return 120 <= seconds <= 300


def provider_of(unit: str, newspapers: frozenset[str] = NEWSPAPER_UNITS) -> Provider:
    if unit == PROVINCE_UNIT:
        return "province"
    return "newspaper" if unit in newspapers else "agency"


def quota_rows(
    provided: Iterable[BulletinRow],
    agencies: Iterable[str],
    newspapers: frozenset[str] = NEWSPAPER_UNITS,
) -> list[QuotaRow]:
    """One row per provider: the province, then every newspaper and agency unit (those with
    an account and those that published), sorted by unit. `provided` are the bulletins
    published in the period; commune and central bulletins are not a provider's."""
    by_unit: dict[str, list[BulletinRow]] = {PROVINCE_UNIT: []}
    for unit in agencies:
        if unit and unit != PROVINCE_UNIT:
            by_unit.setdefault(unit, [])
    for b in provided:
        if b.source_level in ("central", "commune"):
            continue
        by_unit.setdefault(b.unit, []).append(b)
    rows = []
    for unit in [PROVINCE_UNIT, *sorted(u for u in by_unit if u != PROVINCE_UNIT)]:
        provider = provider_of(unit, newspapers)
        verdicts = [qualifies(b, provider) for b in by_unit[unit]]
        counted = sum(1 for v in verdicts if v)
        required = QUOTA_REQUIRED[provider]
        rows.append(
            QuotaRow(
                unit=unit,
                provider=provider,
                required=required,
                provided=len(verdicts),
                counted=counted,
                unknown_length=sum(1 for v in verdicts if v is None),
                met=counted >= required,
            )
        )
    return rows


# ================================================================ pure: the report


def build_report(
    *,
    first: date,
    last: date,
    now: datetime,
    commune: str | None,
    plays: list[PlayRow],
    bulletins: Mapping[str, BulletinRow],
    devices: list[DeviceRow],
    up_slots: Mapping[str, Iterable[int]],
    provided: list[BulletinRow] | None,
    agencies: Iterable[str] = (),
    newspapers: frozenset[str] = NEWSPAPER_UNITS,
    slot_s: int = SLOT_SECONDS,
    incidents: Iterable[IncidentOut] = (),
    boots: Mapping[str, Iterable[float]] | None = None,
) -> MonthlyReport:
    """The whole report from plain rows. `plays` are the period's (any outcome); `bulletins`
    maps their ids; `up_slots` maps a device id to the slot indexes it reported in;
    `provided` is None for a commune's report (no quotas)."""
    start, end = period_bounds(first, last)
    inside = [p for p in plays if start <= p.started_at < end]
    return MonthlyReport(
        scope="commune" if commune else "province",
        commune=commune,
        first_day=first,
        last_day=last,
        generated_at=now,
        slot_seconds=slot_s,
        totals=total(inside),
        failed_airings=sum(1 for p in inside if not is_airing(p)),
        by_priority=tally_by(inside, lambda p: p.priority, PRIORITY_KEYS),
        by_kind=tally_by(inside, lambda p: p.kind, KIND_KEYS),
        by_source_level=tally_by(
            inside, lambda p: source_level(bulletins.get(p.bulletin_id)), SOURCE_KEYS
        ),
        by_category=tally_by(
            inside, lambda p: category_of(bulletins.get(p.bulletin_id)), CATEGORY_KEYS
        ),
        per_day=per_day(inside, first, last),
        uptime=[
            device_uptime(
                d, up_slots.get(d.id, ()), start, end, now, slot_s, (boots or {}).get(d.id, ())
            )
            for d in devices
        ],
        quotas=None if provided is None else quota_rows(provided, agencies, newspapers),
        incidents=list(incidents),
    )


# ================================================================ pure: charts and CSV


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    #: The plotting area's baseline (y of value 0) and the axis maximum.
    baseline: float
    top: float
    maximum: float
    bars: list[Bar]


def chart_bars(
    values: list[tuple[str, float]],
    *,
    width: int = 640,
    height: int = 200,
    pad_top: float = 12.0,
    pad_bottom: float = 22.0,
    gap: float = 0.2,
    scale: float | None = None,
) -> Chart:
    """Bar geometry in SVG user units: equal slots, a bar `1 - gap` of its slot wide, heights
    proportional to `scale` (default: the largest value; all zero: flat bars). Negative values
    draw as zero, values above the scale as full height."""
    plot = height - pad_top - pad_bottom
    maximum = scale if scale is not None else max((max(v, 0.0) for _, v in values), default=0.0)
    slot = width / len(values) if values else float(width)
    bars = []
    for i, (label, value) in enumerate(values):
        h = plot * min(max(value, 0.0), maximum) / maximum if maximum > 0 else 0.0
        bars.append(
            Bar(
                label=label,
                value=value,
                x=round(i * slot + slot * gap / 2, 2),
                y=round(pad_top + plot - h, 2),
                width=round(slot * (1 - gap), 2),
                height=round(h, 2),
            )
        )
    return Chart(
        width=width,
        height=height,
        baseline=pad_top + plot,
        top=pad_top,
        maximum=maximum,
        bars=bars,
    )


def csv_rows(report: MonthlyReport) -> list[list[Any]]:
    """The report as CSV sections (machine-readable codes, English headers), one writer."""
    rows: list[list[Any]] = [
        ["report", "scope", "commune", "first_day", "last_day", "generated_at"],
        [
            "monthly",
            report.scope,
            report.commune or "",
            report.first_day.isoformat(),
            report.last_day.isoformat(),
            iso(report.generated_at),
        ],
        [],
        ["section", "key", "bulletins", "airings", "seconds", "minutes"],
    ]
    sections: list[tuple[str, list[Tally]]] = [
        ("total", [report.totals]),
        ("priority", report.by_priority),
        ("kind", report.by_kind),
        ("source_level", report.by_source_level),
        ("category", report.by_category),
    ]
    for name, tallies in sections:
        for t in tallies:
            rows.append([name, t.key, t.bulletins, t.airings, t.seconds, t.minutes])
    rows.append(["failed", "failed_airings", "", report.failed_airings, "", ""])
    rows += [[], ["day", "airings", "seconds", "minutes"]]
    rows += [[d.date.isoformat(), d.airings, d.seconds, d.minutes] for d in report.per_day]
    rows += [[], ["device_id", "name", "commune", "kind", "slots", "up_slots", "uptime_percent"]]
    rows += [
        [u.device_id, u.name, u.commune, u.kind, u.slots, u.up_slots, u.percent]
        for u in report.uptime
    ]
    rows += [[], ["device_id", "reboots", "outages"]]
    rows += [[u.device_id, u.reboots, len(u.outages)] for u in report.uptime]
    rows += [[], ["device_id", "disconnected_at", "reconnected_at"]]
    rows += [
        [
            u.device_id,
            iso(o.disconnected_at),
            iso(o.reconnected_at) if o.reconnected_at else "",
        ]
        for u in report.uptime
        for o in u.outages
    ]
    if report.quotas is not None:
        rows += [[], ["unit", "provider", "required", "provided", "counted", "unknown", "met"]]
        rows += [
            [q.unit, q.provider, q.required, q.provided, q.counted, q.unknown_length, q.met]
            for q in report.quotas
        ]
    rows += [
        [],
        [
            "incident",
            "commune",
            "device_id",
            "what",
            "since",
            "source",
            "opened_by",
            "closed_at",
            "closed_by",
            "hours",
        ],
    ]
    rows += [
        [
            i.id,
            i.commune,
            i.device_id or "",
            i.what,
            iso(i.since),
            i.source,
            i.opened_by,
            iso(i.closed_at) if i.closed_at else "",
            i.closed_by or "",
            round(i.age_s / 3600, 1),
        ]
        for i in report.incidents
    ]
    return rows


# ================================================================ the API

Month = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]
CommuneCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]


def _civil_year(day: date) -> date:
    # Period arithmetic steps a day past either end: year 9999 overflows, and so does year 1.
    if day.year not in CIVIL_YEARS:
        raise ValueError(f"the year must be between {CIVIL_YEARS.start} and {CIVIL_YEARS.stop - 1}")
    return day


class ReportQuery(BaseModel):
    """A month (YYYY-MM), or a range of local days `start`..`end` (inclusive); neither: the
    current month. `commune`: one commune (a commune-bound account: its own, the default)."""

    model_config = ConfigDict(extra="forbid")

    month: Month | None = None
    start: date | None = None
    #: Checked even when absent: `start` without `end` names `end`.
    end: date | None = Field(default=None, validate_default=True)
    commune: CommuneCode | None = None

    @field_validator("month")
    @classmethod
    def _civil_month(cls, value: str | None) -> str | None:
        if value is not None:
            _civil_year(month_days(value)[0])
        return value

    @field_validator("start", "end", mode="after")
    @classmethod
    def _civil_day(cls, value: date | None) -> date | None:
        return value if value is None else _civil_year(value)

    @field_validator("start")
    @classmethod
    def _not_with_month(cls, value: date | None, info: ValidationInfo) -> date | None:
        if value is not None and info.data.get("month"):
            raise ValueError("give either month or start and end, not both")
        return value

    @field_validator("end")
    @classmethod
    def _after_start(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start")
        if value is None:
            if start is not None:
                raise ValueError("give end with start")
            return value
        if info.data.get("month"):
            raise ValueError("give either month or start and end, not both")
        if start is None:
            if "start" in info.data:
                raise ValueError("give start with end")
            return value  # start itself failed; its error names it
        if value < start:
            raise ValueError("end is before start")
        if (value - start).days + 1 > MAX_DAYS:
            raise ValueError(f"at most {MAX_DAYS} days")
        return value

    def days(self, today: date) -> tuple[date, date]:
        if self.month:
            return month_days(self.month)
        if self.start is not None and self.end is not None:
            return self.start, self.end
        return month_days(today.strftime("%Y-%m"))


def _scope(ctx: Ctx, asked: str | None) -> str | None:
    """The commune the report covers (None: the whole province) for this caller."""
    own = ctx.user.commune
    if own is not None:
        if asked not in (None, own):
            raise ApiError(403, "out_of_scope", f"commune {asked!r} is outside your unit")
        return own
    if not ctx.user.province_wide:
        # An agency's account is neither a commune nor the province: its fleet is not its own.
        raise ApiError(403, "forbidden", "reports are for province and commune accounts")
    return asked


def _submission_scope(commune: str | None) -> str:
    return commune or PROVINCE_UNIT


async def _report(ctx: Ctx) -> MonthlyReport:
    query: ReportQuery = ctx.query
    now = ctx.now
    first, last = query.days(local_day(now))
    commune = _scope(ctx, query.commune)
    db = ctx.db
    if commune is not None and not await communes.exists(db, commune):
        raise field_error(404, "not_found", "commune", f"no commune {commune!r}")
    frozen = await store.submission(db, _submission_scope(commune), first, last)
    if frozen is not None:
        return MonthlyReport.model_validate_json(frozen.report_json)
    return await _live_report(ctx, first, last, commune)


async def _live_report(ctx: Ctx, first: date, last: date, commune: str | None) -> MonthlyReport:
    """The report as the stored rows give it now."""
    now = ctx.now
    db = ctx.db
    start, end = period_bounds(first, last)
    plays = await store.plays_between(db, start, end, commune)
    provided: list[BulletinRow] | None = None
    agencies: list[str] = []
    if commune is None:
        provided = await store.published_between(db, start, end)
        # Every registered unit owes its quota, with or without an account yet.
        agencies = [
            *await accounts.contributor_units(db),
            *(u.code for u in await unit_store.every_unit(db)),
        ]
    newspapers = await newspapers_of(db, ctx.config.newspaper_units)
    return build_report(
        first=first,
        last=last,
        now=now,
        commune=commune,
        plays=plays,
        bulletins=await store.bulletins_by_id(db, sorted({p.bulletin_id for p in plays})),
        devices=await store.devices_of(db, commune),
        up_slots=await store.reporting_slots(db, start, end, commune, SLOT_SECONDS),
        boots=await store.boots_between(db, start, end, commune),
        provided=provided,
        agencies=agencies,
        newspapers=newspapers,
        incidents=[
            incident_out(i, now) for i in await incident_store.overlapping(db, start, end, commune)
        ],
    )


@routes.get(
    "/api/v1/reports/monthly",
    summary="Activity report for a month or range of days: airings and minutes by priority,"
    " kind, source level and category, per day; device uptime; provider quotas",
    permission=Permission.FLEET_READ,
    query=ReportQuery,
    response=MonthlyReport,
    errors=[404, 422],
)
async def monthly_report(ctx: Ctx) -> MonthlyReport:
    return await _report(ctx)


@routes.get(
    "/api/v1/reports/monthly.csv",
    summary="The same report as CSV (sections separated by a blank row)",
    permission=Permission.FLEET_READ,
    query=ReportQuery,
    errors=[404, 422],
    response_content={
        "200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}}
    },
)
async def monthly_report_csv(ctx: Ctx) -> web.StreamResponse:
    report = await _report(ctx)
    name = f"report-{report.commune or 'province'}-{report.first_day}-{report.last_day}.csv"

    async def batches() -> Any:
        yield csv_rows(report)

    return await stream_csv(ctx.request, name, None, batches())


# ================================================================ reports that go up


class SubmissionRow(BaseModel):
    #: A commune's code, or "province".
    scope: str
    name: str
    submitted_by: str | None
    submitted_at: datetime | None


class SubmissionsOut(BaseModel):
    first_day: date
    last_day: date
    #: Every commune, submitted or not, by code.
    communes: list[SubmissionRow]
    province: SubmissionRow


@routes.post(
    "/api/v1/reports/monthly/submit",
    summary="Submit a finished month's report: a commune's operator its commune's (to the"
    " province), an admin or reviewer the province's (upward). The report is frozen as"
    " submitted: GET answers it from then on; a second submit is 409",
    permission=Permission.REPORTS_SUBMIT,
    query=ReportQuery,
    response=MonthlyReport,
    status=201,
    errors=[403, 404, 409, 422],
)
async def submit_report(ctx: Ctx) -> MonthlyReport:
    query: ReportQuery = ctx.query
    now = ctx.now
    first, last = query.days(local_day(now))
    user = ctx.user
    commune = _scope(ctx, query.commune)
    if commune is not None and user.commune is None:
        raise ApiError(
            403, "forbidden", "a commune's report is submitted by the commune's own staff"
        )
    if last >= local_day(now):
        raise ApiError(409, "period_not_over", f"the period ends {last}; submit it once it is over")
    if commune is not None and not await communes.exists(ctx.db, commune):
        raise field_error(404, "not_found", "commune", f"no commune {commune!r}")
    report = await _live_report(ctx, first, last, commune)
    report = report.model_copy(update={"submitted_by": user.username, "submitted_at": now})
    scope = _submission_scope(commune)
    async with ctx.db.transaction() as tx:
        if await store.submission(tx, scope, first, last) is not None:
            raise ApiError(409, "submitted", f"the report of {scope} for {first}..{last} is frozen")
        await store.submit(tx, scope, first, last, report.model_dump_json(), user.username, now)
        await ctx.audit(
            tx,
            "report.submit",
            scope,
            f"{first}..{last}",
            after={"airings": report.totals.airings, "incidents": len(report.incidents)},
        )
    return report


@routes.get(
    "/api/v1/reports/submissions",
    summary="Which communes submitted the period's report, and whether the province did",
    permission=Permission.FLEET_READ,
    query=ReportQuery,
    response=SubmissionsOut,
    errors=[403, 422],
)
async def report_submissions(ctx: Ctx) -> SubmissionsOut:
    query: ReportQuery = ctx.query
    if not ctx.user.province_wide:
        raise ApiError(403, "forbidden", "the province's view of submissions")
    first, last = query.days(local_day(ctx.now))
    done = {s.scope: s for s in await store.submissions(ctx.db, first, last)}

    def row(scope: str, name: str) -> SubmissionRow:
        found = done.get(scope)
        return SubmissionRow(
            scope=scope,
            name=name,
            submitted_by=found.submitted_by if found else None,
            submitted_at=found.submitted_at if found else None,
        )

    return SubmissionsOut(
        first_day=first,
        last_day=last,
        communes=[row(c.code, c.name) for c in await communes.every_commune(ctx.db)],
        province=row(PROVINCE_UNIT, PROVINCE_UNIT),
    )
