"""Console pages for the fleet: the status table with each device's verdict, a device's page,
new slots with their one-time enrollment code, and commands.

Like the rest of the console, the pages call the JSON API's own handlers (`devices.*`), so a
commune operator sees and acts on exactly what the API would let the same account touch.
Two reads have no API handler yet and are done here, always after `devices.get_device` has
checked the caller may see the device: its health history (for the chart) and its latest
proof-of-play rows (the API lists plays oldest first).
"""

from __future__ import annotations

import itertools
import math
import statistics
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from loa_contract import DeviceKind, HealthSample
from loa_contract.models import VN_TZ

from . import communes, device_api, devices, frames, groups
from .appkeys import CLOCK, CONFIG, DB
from .auth import Permission, User, require
from .console import (
    PageHandler,
    api,
    api_all,
    format_number,
    page,
    page_cursor,
    pager_links,
    refresh_idle_s,
    render,
    request_lang,
    see_other,
)
from .errors import ApiError
from .i18n import CATALOGUE, Lang, translate
from .paging import Page
from .security import code_hash
from .store import devices as device_store
from .store import frames as frame_store
from .store import groups as group_store
from .store import reports
from .verdict import LEVELS
from .web_session import check_csrf, page_user, set_page_cookie

#: Devices on one page of the table; "next page" links to the rest.
PAGE_ROWS = 50
#: Worst first: the order of the summary tiles and of the filter.
VERDICTS: tuple[str, ...] = LEVELS
KINDS: tuple[str, ...] = tuple(k.value for k in DeviceKind)
#: Seconds between refreshes of the status table (devices.js reads it from the page).
REFRESH_S = 15
#: Seconds between refreshes of a device's command history, while answers are awaited.
HISTORY_REFRESH_S = 2
#: How far back the health chart looks, and how many points it draws at most.
CHART_WINDOW = timedelta(hours=24)
CHART_POINTS = 288
RECENT_PLAYS = 20
PROFILES_DIR = Path(__file__).resolve().parent.parent / "firmware_profiles"
#: Where provision.sh puts the agent's state on a Raspberry Pi (see raspberry_pi/).
AGENT_DATA_DIR = "/var/lib/loa/agent"
#: Carries a new enrollment code to its page after the redirect (see `_code_shown`).
CODE_COOKIE = "loa_enrollment_code"

_COMMAND_IN: TypeAdapter[Any] = TypeAdapter(devices.CommandIn)


# ---------------------------------------------------------------- formatting


class Fmt:
    """Numbers, sizes and durations the way the reader's language writes them.

    Vietnamese writes 1.234,5 where English writes 1,234.5. Labels for codes that come from
    devices (verdict reasons, faults, player states, new health fields) fall back to the code
    itself: a newer agent must never break the page.
    """

    def __init__(self, lang: Lang, now: datetime) -> None:
        self.lang = lang
        self.now = now

    def label(self, key: str, fallback: str) -> str:
        labels = CATALOGUE.get(key)
        return labels[self.lang] if labels else fallback

    def reason(self, code: str) -> str:
        return self.label(f"dv.reason.{code}", code)

    def refused(self, code: str | None) -> str:
        return self.label(f"dv.refused.{code}", code or "—")

    def player(self, state: str) -> str:
        return self.label(f"dv.player.{state}", state)

    def num(self, value: float, digits: int = 0) -> str:
        return format_number(value, digits, self.lang)

    def size(self, count: float | None) -> str:
        if count is None:
            return "—"
        value = float(count)
        for unit in ("B", "kB", "MB", "GB"):
            if abs(value) < 1000:
                return f"{self.num(value, 0 if unit == 'B' else 1)} {unit}"
            value /= 1000
        return f"{self.num(value, 1)} TB"

    def percent(self, value: float | None, digits: int = 0) -> str:
        return "—" if value is None else f"{self.num(value, digits)} %"

    def share(self, part: float, whole: float) -> float | None:
        return 100.0 * part / whole if whole > 0 else None

    def celsius(self, value: float | None) -> str:
        return "—" if value is None else f"{self.num(value, 1)} °C"

    def duration(self, seconds: float) -> str:
        seconds = max(0, int(seconds))
        days, rest = divmod(seconds, 86400)
        hours, rest = divmod(rest, 3600)
        minutes, secs = divmod(rest, 60)
        parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
        shown = [(n, unit) for n, unit in parts if n][:2] or [(0, "s")]
        return " ".join(f"{n} {translate('dv.unit.' + unit, self.lang)}" for n, unit in shown)

    def ago(self, value: datetime | None) -> str:
        if value is None:
            return ""
        return translate("dv.ago", self.lang).format(
            self.duration((self.now - value).total_seconds())
        )

    def clock(self, value: datetime | None) -> str:
        """Local time with seconds: when the page or a sample was taken."""
        if value is None:
            return "—"
        return value.astimezone(VN_TZ).strftime("%d/%m/%Y %H:%M:%S")

    def offset(self, seconds: float | None) -> str:
        if seconds is None:
            return "—"
        sign = "+" if seconds >= 0 else "−"
        return f"{sign}{self.num(abs(seconds), 2)} s"

    def yes_no(self, value: bool) -> str:
        return translate("dv.yes" if value else "dv.no", self.lang)


def _fmt(request: web.Request) -> Fmt:
    return Fmt(request_lang(request), request.app[CLOCK]())


# ---------------------------------------------------------------- the status table


def _filters(request: web.Request, places: list[communes.CommuneOut]) -> dict[str, str]:
    """The table's filters from the query; anything unknown means "all", never an error."""
    wanted = {
        "commune": (request.query.get("commune", ""), {c.code for c in places}),
        "kind": (request.query.get("kind", ""), set(KINDS)),
        "verdict": (request.query.get("verdict", ""), set(VERDICTS)),
    }
    return {name: value if value in allowed else "" for name, (value, allowed) in wanted.items()}


def _query(chosen: dict[str, str], **change: str) -> str:
    merged = {**chosen, **change}
    return urlencode({k: v for k, v in merged.items() if v})


async def _fleet_context(request: web.Request, user: User) -> dict[str, Any]:
    # The tiles and the total count the whole fleet the user may see; the table shows one
    # page of what the filters leave.
    fleet: list[devices.DeviceOut] = await api_all(
        request, user, devices.list_devices, query=devices.DevicesQuery()
    )
    places: list[communes.CommuneOut] = await api(request, user, communes.list_communes)
    chosen = _filters(request, places)
    shown = [
        d
        for d in fleet
        if chosen["commune"] in ("", d.commune) and chosen["kind"] in ("", d.kind.value)
    ]
    counts = {v: sum(d.verdict == v for d in shown) for v in VERDICTS}
    found: Page[list[devices.DeviceOut]] = await api(
        request,
        user,
        devices.list_devices,
        query=devices.DevicesQuery(
            commune=chosen["commune"] or None,
            kind=DeviceKind(chosen["kind"]) if chosen["kind"] else None,
            verdict=chosen["verdict"] or None,  # type: ignore[arg-type]
            before=page_cursor(request),
            limit=PAGE_ROWS,
        ),
    )
    return {
        "rows": found.body,
        "counts": counts,
        "total": len(fleet),
        **pager_links(request, found.next_before, "/devices"),
        "chosen": chosen,
        "communes": places,
        "commune_names": {c.code: c.name for c in places},
        "verdicts": VERDICTS,
        "kinds": KINDS,
        "query": _query,
        "fmt": _fmt(request),
        "refreshed_at": request.app[CLOCK](),
    }


@page
async def devices_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    context = await _fleet_context(request, user)
    return await render(
        request,
        "devices.html",
        refresh_url="/devices/table?"
        + _query(context["chosen"], before=request.query.get("before", "")),
        refresh_s=REFRESH_S,
        idle_s=refresh_idle_s(request),
        **context,
    )


@page
async def devices_table(request: web.Request) -> web.StreamResponse:
    """The table alone (same filters): what devices.js swaps in every REFRESH_S seconds."""
    user = await page_user(request)
    return await render(request, "devices_table.html", **await _fleet_context(request, user))


# ---------------------------------------------------------------- new slots and codes


@dataclass(frozen=True)
class ProfileChoice:
    name: str
    kind: str
    description: str


def hardware_profiles(directory: Path = PROFILES_DIR) -> list[ProfileChoice]:
    """The firmware profiles shipped with Loa (name, device kind, description)."""
    found = []
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
        name, kind = data.get("name", path.stem), data.get("device_kind")
        if isinstance(name, str) and kind in KINDS:
            found.append(ProfileChoice(name, kind, str(data.get("description", ""))))
    return found


_FIELD_ERRORS = {
    "commune": "dv.err.commune",
    "name": "dv.err.name",
    "kind": "dv.err.kind",
    "profile": "dv.err.profile",
}


async def _new_form(
    request: web.Request,
    user: User,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
) -> web.Response:
    places: list[communes.CommuneOut] = await api(request, user, communes.list_communes)
    preset = request.query.get("commune", "") or (user.commune or "")
    return await render(
        request,
        "device_new.html",
        status=status,
        communes=places,
        profiles=hardware_profiles(),
        defaults=devices.DEFAULT_PROFILE,
        errors=errors or {},
        values=values or {"commune": preset, "name": "", "kind": "speaker", "profile": ""},
    )


@page
async def device_new_form(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    require(user, Permission.DEVICES_WRITE)
    return await _new_form(request, user)


def _slot_errors(values: dict[str, str]) -> tuple[devices.DeviceCreate | None, dict[str, str]]:
    errors: dict[str, str] = {}
    if not values["commune"]:
        errors["commune"] = _FIELD_ERRORS["commune"]
    known = {p.name: p.kind for p in hardware_profiles()}
    if values["profile"] in known and values["kind"] in KINDS:
        if known[values["profile"]] != values["kind"]:
            errors["profile"] = "dv.err.profile_kind"
    try:
        body = devices.DeviceCreate(
            commune=values["commune"],
            name=values["name"],
            kind=values["kind"],  # type: ignore[arg-type]
            profile=values["profile"] or None,
        )
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            name = str(err["loc"][0]) if err["loc"] else ""
            errors.setdefault(name, _FIELD_ERRORS.get(name, "err.generic"))
        return None, errors
    return (None if errors else body), errors


def _code_shown(
    request: web.Request, device_id: str, code: str, expires_at: datetime, *, reissued: bool
) -> web.Response:
    """Post/redirect/get for a new code: the code rides a cookie for its own page only (the
    hub keeps just its hash), so reloading shows it again and creates nothing."""
    response = see_other(f"/devices/{device_id}/code")
    lifetime = int((expires_at - request.app[CLOCK]()).total_seconds())
    set_page_cookie(
        request,
        response,
        CODE_COOKIE,
        f"{code}.{'reissued' if reissued else 'created'}",
        path=f"/devices/{device_id}/code",
        max_age=max(lifetime, 1),
    )
    return response


@page
async def device_code(request: web.Request) -> web.StreamResponse:
    """The one-time code of a slot, while the browser that asked for it holds it and the
    code still opens the slot; otherwise the way to issue a new one."""
    user = await page_user(request)
    require(user, Permission.DEVICES_WRITE)
    device: devices.DeviceOut = await api(request, user, devices.get_device)
    code, _, how = request.cookies.get(CODE_COOKIE, "").partition(".")
    now = request.app[CLOCK]()
    if not code or not await device_store.code_is_current(
        request.app[DB], device.id, code_hash(code), now
    ):
        code = ""
    hub_url = (request.app[CONFIG].public_url or str(request.url.origin())).rstrip("/")
    places: list[communes.CommuneOut] = await api(request, user, communes.list_communes)
    return await render(
        request,
        "device_code.html",
        device_id=device.id,
        name=device.name,
        commune_name=next(
            (f"{c.name} ({c.code})" for c in places if c.code == device.commune), device.commune
        ),
        profile=device.profile,
        code=code,
        expires_at=device.enrollment_expires_at,
        reissued=how == "reissued",
        enroll_command=(f"edge-agent enroll --hub {hub_url} --code {code} --data {AGENT_DATA_DIR}"),
        provision_command=(
            f"sudo raspberry_pi/provision.sh --profile {device.profile} --hub {hub_url}"
            f" --code {code}"
        ),
        fmt=_fmt(request),
    )


@page
async def device_new_submit(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, Permission.DEVICES_WRITE)
    values = {key: str(form.get(key, "")).strip() for key in ("commune", "name", "kind", "profile")}
    body, errors = _slot_errors(values)
    if body is None:
        return await _new_form(request, user, status=422, errors=errors, values=values)
    try:
        created: devices.DeviceCreated = await api(request, user, devices.create_device, body=body)
    except ApiError as exc:
        if exc.status != 422:
            raise  # out of scope: the error page
        fields = [d.get("field", "") for d in exc.detail or [] if isinstance(d, dict)]
        errors = {f: _FIELD_ERRORS.get(f, "err.generic") for f in fields} or {"": "err.generic"}
        return await _new_form(request, user, status=422, errors=errors, values=values)
    return _code_shown(
        request, created.id, created.enrollment_code, created.enrollment_expires_at, reissued=False
    )


@page
async def device_enrollment(request: web.Request) -> web.StreamResponse:
    """A new one-time code for a slot (a replaced SD card); the old secret stops working."""
    user = await page_user(request)
    check_csrf(request, await request.post())
    require(user, Permission.DEVICES_WRITE)
    device: devices.DeviceOut = await api(request, user, devices.get_device)
    issued: devices.EnrollmentCode = await api(request, user, devices.reissue_enrollment)
    return _code_shown(
        request, device.id, issued.enrollment_code, issued.enrollment_expires_at, reissued=True
    )


# ---------------------------------------------------------------- one device


@dataclass
class ChartSeries:
    key: str
    unit: str
    colour: str
    dash: str
    #: Polylines (one per stretch without a gap) and lone points.
    lines: list[str] = field(default_factory=list)
    dots: list[tuple[float, float]] = field(default_factory=list)
    latest: float | None = None
    peak: float | None = None


@dataclass
class Chart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    series: list[ChartSeries]
    y_ticks: list[tuple[float, str]]
    x_ticks: list[tuple[float, str]]
    samples: int


_SERIES = (
    ("dv.chart.temperature", "celsius", "#c8102e", ""),
    ("dv.chart.cpu", "percent", "#0b5394", "6 4"),
    ("dv.chart.memory", "percent", "#1e7b34", "2 3"),
)


async def _health_chart(request: web.Request, device_id: str, now: datetime) -> Chart:
    """Temperature (°C), CPU and memory (%) over the last day, all on one 0–100 scale."""
    since = now - CHART_WINDOW
    rows = await reports.health_between(
        request.app[DB], device_id, since, now + timedelta(minutes=5)
    )
    width, height, left, right, top, bottom = 720, 240, 40, 708, 10, 210
    span = CHART_WINDOW.total_seconds()
    bucket_s = span / CHART_POINTS
    times = [r.at for r in rows]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    # A longer silence than a few report intervals is the device off: the line breaks there.
    gap_s = max(300.0, 3 * statistics.median(gaps) if gaps else 0.0) + bucket_s

    def x_of(at: datetime) -> float:
        return left + (right - left) * min(max((at - since).total_seconds() / span, 0.0), 1.0)

    def y_of(value: float) -> float:
        return bottom - (bottom - top) * min(max(value, 0.0), 100.0) / 100.0

    series = []
    for index, (key, unit, colour, dash) in enumerate(_SERIES):
        buckets: dict[int, list[float]] = {}
        for at, row in zip(times, rows, strict=True):
            value: float | None
            if index == 0:
                value = row.temperature
            elif index == 1:
                value = row.cpu
            else:
                total, used = row.memory_total, row.memory_used
                value = 100.0 * used / total if total and used is not None else None
            if value is None or not math.isfinite(float(value)):
                continue
            slot = min(int((at - since).total_seconds() // bucket_s), CHART_POINTS - 1)
            buckets.setdefault(slot, []).append(float(value))
        out = ChartSeries(key, unit, colour, dash)
        stretch: list[tuple[float, float]] = []
        previous: int | None = None
        for slot in sorted(buckets):
            value = sum(buckets[slot]) / len(buckets[slot])
            at = since + timedelta(seconds=(slot + 0.5) * bucket_s)
            if previous is not None and (slot - previous) * bucket_s > gap_s:
                _close(out, stretch)
                stretch = []
            stretch.append((round(x_of(at), 1), round(y_of(value), 1)))
            previous = slot
            out.latest = value
            out.peak = max(out.peak if out.peak is not None else value, *buckets[slot])
        _close(out, stretch)
        series.append(out)
    y_ticks = [(y_of(v), str(v)) for v in (0, 25, 50, 75, 100)]
    x_ticks = []
    for i in range(5):
        at = since + CHART_WINDOW * i / 4
        x_ticks.append((round(x_of(at), 1), at.astimezone(VN_TZ).strftime("%H:%M")))
    return Chart(width, height, left, right, top, bottom, series, y_ticks, x_ticks, len(rows))


def _close(series: ChartSeries, stretch: list[tuple[float, float]]) -> None:
    if len(stretch) == 1:
        series.dots.append(stretch[0])
    elif stretch:
        series.lines.append(" ".join(f"{x},{y}" for x, y in stretch))


@dataclass(frozen=True)
class RecentPlay:
    play: device_api.PlayOut
    title: str | None


async def _recent_plays(request: web.Request, device_id: str) -> list[RecentPlay]:
    """The device's latest proof-of-play rows, newest first (scope checked by the caller)."""
    return [
        RecentPlay(device_api.PlayOut.of(play), title)
        for play, title in await reports.recent_plays(request.app[DB], device_id, RECENT_PLAYS)
    ]


#: Health fields shown by `_health_rows` itself; any other (newer) field is listed after them.
_SHOWN = {
    "type",
    "seq",
    "at",
    "cpu_percent",
    "memory_used_bytes",
    "memory_total_bytes",
    "filesystem_avail_bytes",
    "filesystem_size_bytes",
    "temperature_celsius",
    "boot_time_seconds",
    "network_receive_bytes_total",
    "network_transmit_bytes_total",
    "player_state",
    "now_playing",
    "volume",
    "manifest_version",
    "cache_bytes",
    "cache_objects",
    "outbox_backlog",
    "clock_offset_seconds",
    "clock_trusted",
    "faults",
    "fault_details",
}


def _health_rows(h: HealthSample, device: devices.DeviceOut, fmt: Fmt) -> list[tuple[str, str]]:
    """(label, value) rows of a health sample, readable by someone who is not an engineer."""
    t = fmt.label
    memory = fmt.share(h.memory_used_bytes, h.memory_total_bytes)
    free = fmt.share(h.filesystem_avail_bytes, h.filesystem_size_bytes)
    boot = datetime.fromtimestamp(h.boot_time_seconds, UTC)
    manifest = "—" if h.manifest_version is None else str(h.manifest_version)
    if h.manifest_version is not None and h.manifest_version != device.manifest_version:
        manifest += " " + translate("dv.h.hub_has", fmt.lang).format(device.manifest_version)
    rows = [
        (t("dv.h.at", "at"), f"{fmt.clock(h.at)} ({fmt.ago(h.at)})"),
        (t("dv.h.cpu", "cpu"), fmt.percent(h.cpu_percent, 1)),
        (
            t("dv.h.memory", "memory"),
            f"{fmt.size(h.memory_used_bytes)} / {fmt.size(h.memory_total_bytes)}"
            f" ({fmt.percent(memory)})",
        ),
        (
            t("dv.h.disk_free", "disk"),
            f"{fmt.size(h.filesystem_avail_bytes)} / {fmt.size(h.filesystem_size_bytes)}"
            f" ({fmt.percent(free)})",
        ),
        (t("dv.h.temperature", "temperature"), fmt.celsius(h.temperature_celsius)),
        (t("dv.h.uptime", "uptime"), fmt.duration((h.at - boot).total_seconds())),
        (
            t("dv.h.network", "network"),
            f"↓ {fmt.size(h.network_receive_bytes_total)} · "
            f"↑ {fmt.size(h.network_transmit_bytes_total)}",
        ),
        (t("dv.h.player_state", "player"), fmt.player(h.player_state)),
        (t("dv.h.volume", "volume"), fmt.percent(h.volume)),
        (t("dv.h.manifest_version", "manifest"), manifest),
        (
            t("dv.h.cache", "cache"),
            translate("dv.h.cache_value", fmt.lang).format(
                fmt.size(h.cache_bytes), fmt.num(h.cache_objects)
            ),
        ),
        (t("dv.h.outbox_backlog", "outbox"), fmt.num(h.outbox_backlog)),
        (t("dv.h.clock_offset", "clock offset"), fmt.offset(h.clock_offset_seconds)),
        (t("dv.h.clock_trusted", "clock trusted"), fmt.yes_no(h.clock_trusted)),
        (
            t("dv.h.faults", "faults"),
            # Each fault in the console's words, then the device's own reason where it gave
            # one ("media 3f2a… (150.0 MiB) does not fit: 40.0 MiB free").
            "; ".join(
                fmt.reason(code)
                + (f" ({h.fault_details[code]})" if h.fault_details.get(code) else "")
                for code in h.faults
            )
            or translate("dv.none", fmt.lang),
        ),
        (t("dv.h.seq", "seq"), fmt.num(h.seq)),
    ]
    # Fields added to the contract later (power, SD card, relay, …): labelled when known,
    # shown by name otherwise; None means the device cannot tell, so it is left out.
    for name, value in h.model_dump(mode="json").items():
        if name not in _SHOWN and value is not None:
            rows.append((fmt.label(f"dv.h.{name}", name), _plain(value, fmt)))
    return rows


def _plain(value: Any, fmt: Fmt) -> str:
    if isinstance(value, bool):
        return fmt.yes_no(value)
    if isinstance(value, int):
        return fmt.num(value)
    if isinstance(value, float):
        return fmt.num(value, 3 if abs(value) < 1 else 1)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or translate("dv.none", fmt.lang)
    return str(value)


async def _command_history(
    request: web.Request, user: User
) -> tuple[list[devices.CommandOut], devices.CommandOut | None]:
    """The device's commands, newest first, and the one just sent (`?command=`) if it is
    among them: its notice follows the device's answer, never claims more than was heard."""
    history: list[devices.CommandOut] = await api(request, user, devices.command_history)
    wanted = request.query.get("command")
    return history, next((c for c in history if c.id == wanted), None)


async def _history_context(request: web.Request, user: User, device_id: str) -> dict[str, Any]:
    history, just_sent = await _command_history(request, user)
    query = urlencode({"command": just_sent.id}) if just_sent else ""
    return {
        "history": history,
        "just_sent": just_sent,
        "history_url": f"/devices/{device_id}/commands" + (f"?{query}" if query else ""),
        "history_every": HISTORY_REFRESH_S,
    }


def _command_from_form(form: Mapping[str, Any]) -> BaseModel:
    """The command a device's or a group's form asks for (ValidationError when it is not one)."""
    kind = str(form.get("type", ""))
    payload: dict[str, Any] = {"type": kind}
    if kind == "set_volume":
        payload["volume"] = str(form.get("volume", "")).strip()
    command: BaseModel = _COMMAND_IN.validate_python(payload)
    return command


@page
async def device_commands(request: web.Request) -> web.StreamResponse:
    """The command history alone: what console.js swaps in while answers are awaited."""
    user = await page_user(request)
    device: devices.DeviceOut = await api(request, user, devices.get_device)
    context = await _history_context(request, user, device.id)
    return await render(request, "_commands.html", d=device, fmt=_fmt(request), **context)


async def _device_view(
    request: web.Request,
    user: User,
    *,
    status: int = 200,
    error_key: str | None = None,
    volume: str | None = None,
) -> web.Response:
    device: devices.DeviceOut = await api(request, user, devices.get_device)
    places: list[communes.CommuneOut] = await api(request, user, communes.list_communes)
    fmt = _fmt(request)
    return await render(
        request,
        "device.html",
        status=status,
        d=device,
        commune_name={c.code: c.name for c in places}.get(device.commune, device.commune),
        health_rows=_health_rows(device.health, device, fmt) if device.health else [],
        chart=await _health_chart(request, device.id, fmt.now),
        plays=await _recent_plays(request, device.id),
        **await _history_context(request, user, device.id),
        frame_at=await frame_store.taken_at(request.app[DB], device.id),
        member_of=[
            g
            for g in await group_store.groups_of(request.app[DB], device.id)
            if user.commune is None or g.commune == user.commune
        ],
        idle_s=refresh_idle_s(request),
        error_key=error_key,
        volume=volume if volume is not None else str(device.health.volume if device.health else ""),
        fmt=fmt,
    )


@page
async def device_frame(request: web.Request) -> web.StreamResponse:
    """The board's newest screen picture (the API's, with its scope check)."""
    user = await page_user(request)
    response: web.StreamResponse = await api(request, user, frames.get_frame)
    return response


@page
async def device_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    return await _device_view(request, user)


@page
async def device_command(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, Permission.DEVICES_COMMAND)
    try:
        body = _command_from_form(form)
    except ValidationError:
        # Nothing is sent; the page says which field was wrong.
        volume = str(form.get("volume", "")).strip() if form.get("type") == "set_volume" else None
        key = "dv.err.command" if volume is None else "dv.err.volume"
        return await _device_view(request, user, status=422, error_key=key, volume=volume)
    result: devices.CommandResult = await api(request, user, devices.send_command, body=body)
    query = urlencode({"command": result.command_id})
    return see_other(f"/devices/{result.device_id}?{query}#history")


# ---------------------------------------------------------------- groups


@page
async def groups_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    found: list[groups.GroupOut] = await api(request, user, groups.list_groups)
    places: list[communes.CommuneOut] = await api(request, user, communes.list_communes)
    return await render(
        request,
        "device_groups.html",
        groups=found,
        communes=places,
        names={c.code: c.name for c in places},
        error=request.query.get("error") == "name",
    )


@page
async def group_create(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, Permission.DEVICES_WRITE)
    try:
        body = groups.GroupCreate.model_validate(
            {"name": str(form.get("name", "")), "commune": str(form.get("commune", "")) or None}
        )
    except ValidationError:
        return see_other("/devices/groups?error=name")
    created: groups.GroupOut = await api(request, user, groups.create_group, body=body)
    return see_other(f"/devices/groups/{created.id}")


async def _batch_context(request: web.Request, user: User) -> dict[str, Any]:
    """The batch of one command to the group (`?batch=`), each device's answer so far."""
    batch = request.query.get("batch", "")[:64]
    if not batch:
        return {"batch": [], "batch_url": "", "device_names": {}}
    answers: list[devices.CommandOut] = await api(
        request,
        user,
        groups.group_commands,
        query=groups.GroupCommandsQuery(batch=batch),
    )
    group_id = request.match_info["id"]
    db = request.app[DB]
    named = [await device_store.get(db, c.device_id) for c in answers]
    return {
        "device_names": {d.id: d.name for d in named if d is not None},
        "batch": answers,
        "batch_url": f"/devices/groups/{group_id}/batch?{urlencode({'batch': batch})}",
    }


@page
async def group_page(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    group: groups.GroupDetail = await api(request, user, groups.get_group)
    fleet: list[devices.DeviceOut] = await api_all(
        request,
        user,
        devices.list_devices,
        query=devices.DevicesQuery(commune=group.commune),
    )
    places: list[communes.CommuneOut] = await api(request, user, communes.list_communes)
    return await render(
        request,
        "device_group.html",
        group=group,
        fleet=fleet,
        members=set(group.members),
        names={c.code: c.name for c in places},
        saved=request.query.get("saved") == "1",
        idle_s=refresh_idle_s(request),
        history_every=HISTORY_REFRESH_S,
        fmt=_fmt(request),
        **await _batch_context(request, user),
    )


@page
async def group_batch(request: web.Request) -> web.StreamResponse:
    """One command's answers alone: what console.js swaps in while they arrive."""
    user = await page_user(request)
    await api(request, user, groups.get_group)
    context = await _batch_context(request, user)
    return await render(request, "_group_batch.html", fmt=_fmt(request), **context)


@page
async def group_members(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, Permission.DEVICES_WRITE)
    body = groups.GroupMembers(devices=[str(v) for v in form.getall("device", [])])
    await api(request, user, groups.set_group_devices, body=body)
    return see_other(f"/devices/groups/{request.match_info['id']}?saved=1")


@page
async def group_command(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    form = await request.post()
    check_csrf(request, form)
    require(user, Permission.DEVICES_COMMAND)
    try:
        body = _command_from_form(form)
    except ValidationError:
        raise ApiError(
            422, "validation_error", [{"field": "volume", "message": "a whole number 0–100"}]
        ) from None
    sent: groups.GroupCommandResult = await api(request, user, groups.command_group, body=body)
    query = urlencode({"batch": sent.batch_id})
    return see_other(f"/devices/groups/{sent.group_id}?{query}#batch")


#: Fixed paths before "/devices/{id}", so "new" and "table" are never taken for an id.
PAGES: list[tuple[str, str, PageHandler]] = [
    ("GET", "/devices", devices_page),
    ("GET", "/devices/table", devices_table),
    ("GET", "/devices/groups", groups_page),
    ("POST", "/devices/groups", group_create),
    ("GET", "/devices/groups/{id}", group_page),
    ("GET", "/devices/groups/{id}/batch", group_batch),
    ("POST", "/devices/groups/{id}/devices", group_members),
    ("POST", "/devices/groups/{id}/commands", group_command),
    ("GET", "/devices/new", device_new_form),
    ("POST", "/devices/new", device_new_submit),
    ("GET", "/devices/{id}", device_page),
    ("GET", "/devices/{id}/commands", device_commands),
    ("GET", "/devices/{id}/frame", device_frame),
    ("POST", "/devices/{id}/commands", device_command),
    ("POST", "/devices/{id}/enrollment", device_enrollment),
    ("GET", "/devices/{id}/code", device_code),
]
