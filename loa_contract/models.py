"""The hub–agent wire contract: every message that crosses the network, as pydantic models.

Hub and agent both import these; nothing else defines a wire shape. Times on the wire are
ISO 8601 with an offset; local wall-clock times (broadcast windows, fixed air times) are
"HH:MM" in Vietnam's time zone (UTC+7, no daylight saving).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

#: Vietnam has no daylight saving; a fixed offset is exact and needs no tz database.
VN_TZ = timezone(timedelta(hours=7), "ICT")

#: The contract's major version. A hub may add optional fields within a major version and
#: older agents ignore them; a message of a newer major is refused, for the agent cannot know
#: what its changed fields mean.
CONTRACT_VERSION = 1


class WireModel(BaseModel):
    """Base for wire models. Unknown fields are refused, so a typo never passes silently: the
    hub is strict about what devices send. An agent reads what the hub signed through
    `TrustedKeys.open`, which ignores unknown fields instead (newer hubs, older agents)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_contract(value: int) -> int:
    if value > CONTRACT_VERSION:
        raise ValueError(
            f"the hub speaks contract {value}; this agent knows {CONTRACT_VERSION}: update it"
        )
    return value


#: A contract major version this side understands (the current one or an older one).
ContractVersion = Annotated[int, Field(ge=1), AfterValidator(_check_contract)]


class Priority(StrEnum):
    """Mức độ ưu tiên của bản tin, high to low."""

    EMERGENCY = "emergency"  # khẩn cấp
    PRIORITY = "priority"  # ưu tiên
    NORMAL = "normal"  # thông thường

    @property
    def rank(self) -> int:
        """Lower rank plays first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.EMERGENCY: 0, Priority.PRIORITY: 1, Priority.NORMAL: 2}


class BulletinKind(StrEnum):
    """Hình thức bản tin."""

    TEXT = "text"  # ký tự
    DOCUMENT = "document"  # văn bản
    AUDIO = "audio"  # phát thanh
    IMAGE = "image"  # hình ảnh, infographic
    VIDEO = "video"


class DeviceKind(StrEnum):
    SPEAKER = "speaker"  # cụm loa truyền thanh ứng dụng CNTT-VT
    BOARD = "board"  # bảng tin điện tử công cộng


#: What each device kind can air. Text on a speaker becomes speech; a board never sounds
#: unless its hardware profile says it has a loudspeaker.
KINDS_FOR_DEVICE: dict[DeviceKind, frozenset[BulletinKind]] = {
    DeviceKind.SPEAKER: frozenset({BulletinKind.TEXT, BulletinKind.DOCUMENT, BulletinKind.AUDIO}),
    DeviceKind.BOARD: frozenset(
        {BulletinKind.TEXT, BulletinKind.DOCUMENT, BulletinKind.IMAGE, BulletinKind.VIDEO}
    ),
}

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _check_hhmm(value: str) -> str:
    if not _HHMM.match(value):
        raise ValueError(f"{value!r} is not a local time HH:MM (00:00–23:59)")
    return value


def _check_sha256(value: str) -> str:
    if not _SHA256.match(value):
        raise ValueError("must be 64 lowercase hex digits (sha256)")
    return value


#: The years a validity or air time may fall in. Beyond them the arithmetic breaks (a year-9999
#: time with a negative offset overflows when moved to UTC) and no bulletin means them.
CIVIL_YEARS = range(2000, 2200)


def _check_civil(value: datetime) -> datetime:
    # Judged on the value's own fields: comparing it with a UTC bound could itself overflow.
    if value.year not in CIVIL_YEARS:
        raise ValueError(f"must be a time between {CIVIL_YEARS.start} and {CIVIL_YEARS.stop - 1}")
    return value


#: A hub node's address as devices use it: http or https, a host (and port), perhaps a path
#: (a node behind a proxy's prefix); no query, fragment or credentials, for the agent appends
#: the API's paths to it. Bounded: it is signed into every manifest.
HUB_URL_PATTERN = r"^https?://[^\s/?#@]+(/[^\s?#]*)?$"
HubUrl = Annotated[str, StringConstraints(max_length=256, pattern=HUB_URL_PATTERN)]
#: The most hub nodes one manifest names (a hub lists no more, or its manifests are refused).
MAX_HUB_URLS = 32

HHMM = Annotated[str, AfterValidator(_check_hhmm)]
#: An aware time people or the hub set (validity, expiry), within CIVIL_YEARS.
CivilDatetime = Annotated[AwareDatetime, AfterValidator(_check_civil)]
Sha256 = Annotated[str, AfterValidator(_check_sha256)]


def parse_hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


class BroadcastWindow(WireModel):
    """Khung giờ phát sóng: a daily local time span. An end before the start crosses midnight
    (it belongs to the day it opens on)."""

    start: HHMM
    end: HHMM
    #: Whoever set the window confirmed that it runs past midnight. The hub refuses a new
    #: window ending before its start without it (20:00 → 19:00 is more often a slip than a
    #: 23-hour window); devices go by the times alone, so older windows still mean the same.
    #: Left out of the JSON when false: a same-day window reads as it always did.
    overnight: bool = Field(default=False, exclude_if=lambda overnight: not overnight)

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, data: object) -> object:
        # The API takes windows as ["05:30", "06:30"] pairs, the way people write them.
        if isinstance(data, (list, tuple)):
            if len(data) != 2:
                raise ValueError("a window is a pair [start, end] of HH:MM times")
            return {"start": data[0], "end": data[1]}
        return data

    @model_validator(mode="after")
    def _not_empty(self) -> BroadcastWindow:
        if self.start == self.end:
            raise ValueError("a window's start and end must differ")
        return self

    @property
    def start_time(self) -> time:
        return parse_hhmm(self.start)

    @property
    def end_time(self) -> time:
        return parse_hhmm(self.end)


class DayWindows(WireModel):
    """The windows of one kind of day (a weekday, a dated exception), per device kind."""

    speaker: list[BroadcastWindow] = Field(default_factory=list, max_length=48)
    board: list[BroadcastWindow] = Field(default_factory=list, max_length=48)

    def for_kind(self, kind: DeviceKind) -> list[BroadcastWindow]:
        return self.speaker if kind is DeviceKind.SPEAKER else self.board


#: ISO weekday: 1 is Monday (thứ Hai), 7 is Sunday (Chủ nhật).
Weekday = Annotated[int, Field(ge=1, le=7)]


class WindowException(DayWindows):
    """A dated exception (a holiday, an event): that local date's windows instead of the
    usual ones; no windows at all means only emergencies air that day."""

    date: date
    note: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None


class CommuneWindows(WireModel):
    """A commune's windows, one list for its speakers and one for its boards: every day's,
    a weekday's own where one is set (a weekend), and dated exceptions, which win."""

    speaker: list[BroadcastWindow] = Field(default_factory=list, max_length=48)
    board: list[BroadcastWindow] = Field(default_factory=list, max_length=48)
    weekly: dict[Weekday, DayWindows] = Field(default_factory=dict)
    exceptions: list[WindowException] = Field(default_factory=list, max_length=400)

    @model_validator(mode="after")
    def _one_exception_a_day(self) -> CommuneWindows:
        seen: set[date] = set()
        for exception in self.exceptions:
            if exception.date in seen:
                raise ValueError(f"two exceptions for {exception.date.isoformat()}")
            seen.add(exception.date)
        return self

    def for_kind(self, kind: DeviceKind) -> list[BroadcastWindow]:
        """Every day's windows of `kind` (weekdays and exceptions aside)."""
        return self.speaker if kind is DeviceKind.SPEAKER else self.board

    def weekly_for_kind(self, kind: DeviceKind) -> list[WeekdayWindows]:
        """The weekdays with their own windows, as a device of `kind` holds them."""
        return [
            WeekdayWindows(weekday=day, windows=windows.for_kind(kind))
            for day, windows in sorted(self.weekly.items())
        ]

    def exceptions_for_kind(self, kind: DeviceKind, since: date) -> list[DatedWindows]:
        """The exceptions from `since` on, as a device of `kind` holds them."""
        return [
            DatedWindows(date=e.date, windows=e.for_kind(kind), note=e.note)
            for e in sorted(self.exceptions, key=lambda e: e.date)
            if e.date >= since
        ]


class WeekdayWindows(WireModel):
    """One weekday's windows for one device, instead of every day's."""

    weekday: Weekday
    windows: list[BroadcastWindow] = Field(default_factory=list, max_length=48)


class DatedWindows(WireModel):
    """One date's windows for one device, instead of its usual ones."""

    date: date
    windows: list[BroadcastWindow] = Field(default_factory=list, max_length=48)
    note: str | None = None


class MediaRef(WireModel):
    """A file in the hub's content store, named by its sha256."""

    sha256: Sha256
    size: int = Field(ge=0)
    mime: str


class Schedule(WireModel):
    valid_from: CivilDatetime
    valid_until: CivilDatetime
    #: Fixed local air times; empty means "in the commune's programme".
    times: list[HHMM] = Field(default_factory=list)
    #: How many times it airs per window (speakers) or in all (emergency).
    repeats: int = Field(default=1, ge=1, le=20)
    #: Emergency on a speaker: seconds from the end of one airing until the next falls due.
    interval_s: float = Field(default=0.0, ge=0, le=24 * 3600)
    #: Emergency on a speaker: air every `interval_s` until cancelled or `valid_until`,
    #: whatever `repeats` says.
    until_cancelled: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Schedule:
        if self.valid_until <= self.valid_from:
            raise ValueError("valid_until must be after valid_from")
        return self


class ManifestBulletin(WireModel):
    """One bulletin as a device must hold it."""

    id: str
    title: str
    kind: BulletinKind
    priority: Priority
    text: str | None = None
    media: MediaRef | None = None
    schedule: Schedule
    #: Seconds a still item (text, image) stays on a board; audio and video run their length.
    display_seconds: float = Field(default=15.0, gt=0, le=3600)
    #: The commune's order among priority bulletins (lower first), when the commune set one.
    order: int = 0
    category: str | None = None
    source_level: Literal["central", "province", "commune"] = "province"

    @model_validator(mode="after")
    def _content(self) -> ManifestBulletin:
        if self.kind in (BulletinKind.AUDIO, BulletinKind.IMAGE, BulletinKind.VIDEO):
            if self.media is None:
                raise ValueError(f"a {self.kind.value} bulletin needs media")
        elif self.kind is BulletinKind.TEXT and not (self.text and self.text.strip()):
            raise ValueError("a text bulletin needs text")
        elif self.kind is BulletinKind.DOCUMENT and self.media is None and not self.text:
            raise ValueError("a document bulletin needs text or media")
        return self


class Manifest(WireModel):
    """Everything one device must hold, signed by the hub. Versions only ever increase."""

    contract: ContractVersion = CONTRACT_VERSION
    device_id: str
    version: int = Field(ge=1)
    issued_at: AwareDatetime
    expires_at: AwareDatetime
    device_kind: DeviceKind
    commune: str
    #: The commune's name as people say it ("Xã Tân An"), for the device's own page; empty
    #: from a hub that does not send it (the page then shows the code).
    commune_name: str = Field(default="", max_length=200)
    #: Every day's windows, unless a weekday or a date below has its own.
    windows: list[BroadcastWindow]
    #: Weekdays (ISO: 1 Monday … 7 Sunday) with their own windows instead, at most one entry
    #: each. Agents from before these fields go by `windows` every day.
    weekly_windows: list[WeekdayWindows] = Field(default_factory=list, max_length=7)
    #: Dated exceptions (a holiday, an event), which win over both.
    window_exceptions: list[DatedWindows] = Field(default_factory=list, max_length=400)
    volume: int = Field(ge=0, le=100)
    profile: str
    #: Resume a pre-empted item where it stopped, or restart it from the top.
    resume_mode: Literal["resume", "restart"] = "resume"
    bulletins: list[ManifestBulletin]
    #: Emergencies the hub has cancelled that the device may still hold from a push.
    cancelled: list[str] = Field(default_factory=list)
    #: Every hub node this device may use (each node's public URL, sorted): when its own hub
    #: does not answer, the device tries these. Empty from a hub that names no nodes.
    hub_urls: list[HubUrl] = Field(default_factory=list, max_length=MAX_HUB_URLS)
    #: A board posts a small picture of its screen (POST /api/v1/device/frame) beside its
    #: health, at most this often; None (a speaker, or a hub from before frames): never.
    frame_interval_s: int | None = Field(default=None, ge=60)

    @model_validator(mode="after")
    def _one_entry_a_day(self) -> Manifest:
        weekdays = [w.weekday for w in self.weekly_windows]
        dates = [e.date for e in self.window_exceptions]
        if len(set(weekdays)) != len(weekdays) or len(set(dates)) != len(dates):
            raise ValueError("a weekday or a date has its windows twice")
        return self


# ---------------------------------------------------------------- signed envelopes


class SignedEnvelope(WireModel):
    """Signed bytes. The signature covers `payload` exactly; it is checked before parsing."""

    key_id: str
    payload: str  # base64 of the UTF-8 JSON document
    signature: str  # base64 Ed25519 signature over the decoded payload bytes


class HubKey(WireModel):
    key_id: str
    public_key: str  # base64 raw 32-byte Ed25519 public key


class KeyEndorsement(WireModel):
    """Chứng thực khoá: the hub's next signing key, vouched for by the key it replaces.

    Signed (a SignedEnvelope) by `previous`. A device that trusts `previous` trusts `key` once
    it has checked this, so the hub can rotate its key without re-enrolling any device.
    """

    key: HubKey
    previous: HubKey
    issued_at: AwareDatetime


class KeyChain(WireModel):
    """Every endorsement the hub has made, oldest first (GET /api/v1/device/keys)."""

    endorsements: list[SignedEnvelope]


# ---------------------------------------------------------------- commands (hub -> device)


class Scope(WireModel):
    """Which devices a broadcast command is for (phạm vi): the whole province, or the listed
    communes and devices. One signed frame serves every device in it; each device checks that
    it is inside, so a frame captured in one commune plays nowhere else."""

    province: bool = False
    communes: list[str] = Field(default_factory=list)
    devices: list[str] = Field(default_factory=list)

    def includes(self, device_id: str, commune: str) -> bool:
        return self.province or commune in self.communes or device_id in self.devices


class _Command(WireModel):
    command_id: str
    issued_at: AwareDatetime
    expires_at: AwareDatetime


class _DeviceCommand(_Command):
    """A command for one device, signed for it alone."""

    device_id: str

    def addressed_to(self, device_id: str, commune: str) -> bool:
        return self.device_id == device_id


class _BroadcastCommand(_Command):
    """A command signed once for every device in its scope (the emergency path)."""

    scope: Scope

    def addressed_to(self, device_id: str, commune: str) -> bool:
        return self.scope.includes(device_id, commune)


class ManifestReady(_DeviceCommand):
    """ "Manifest N is ready": the device fetches it over HTTP."""

    type: Literal["manifest_ready"] = "manifest_ready"
    version: int


class EmergencyStart(_BroadcastCommand):
    """Play this now, whatever plays and whatever the window. The device's manifest has
    changed with it: the device fetches it in its own jittered time, no nudge follows."""

    type: Literal["emergency_start"] = "emergency_start"
    bulletin: ManifestBulletin

    @field_validator("bulletin")
    @classmethod
    def _is_emergency(cls, bulletin: ManifestBulletin) -> ManifestBulletin:
        if bulletin.priority is not Priority.EMERGENCY:
            raise ValueError("emergency_start carries an emergency bulletin")
        return bulletin


class EmergencyCancel(_BroadcastCommand):
    type: Literal["emergency_cancel"] = "emergency_cancel"
    bulletin_id: str


class SetVolume(_DeviceCommand):
    type: Literal["set_volume"] = "set_volume"
    volume: int = Field(ge=0, le=100)


class StopPlayback(_DeviceCommand):
    type: Literal["stop"] = "stop"


class TestTone(_DeviceCommand):
    type: Literal["test_tone"] = "test_tone"


class Resync(_DeviceCommand):
    type: Literal["resync"] = "resync"


Command = Annotated[
    ManifestReady | EmergencyStart | EmergencyCancel | SetVolume | StopPlayback | TestTone | Resync,
    Field(discriminator="type"),
]


class CommandDocument(WireModel):
    """The signed payload of a pushed command."""

    contract: ContractVersion = CONTRACT_VERSION
    command: Command


class AckStatus(StrEnum):
    """What a device did with an operator's command."""

    APPLIED = "applied"
    REFUSED = "refused"


class CommandAck(WireModel):
    """The device's answer to an operator command (volume, stop, test tone, resync), sent
    back as a text frame on the push socket that brought it. The socket is the device's own
    authenticated connection, so the ack needs no signature. An agent from before acks sends
    none and its commands stay "sent" on the hub: nothing claims more than was heard."""

    type: Literal["command_ack"] = "command_ack"
    command_id: str = Field(min_length=1, max_length=64)
    status: AckStatus
    #: A stable code when refused ("emergency_on_air", "expired", "hub_unreachable", …).
    reason: str | None = Field(default=None, max_length=64, pattern=r"^[a-z0-9_]+$")
    #: The agent's own sentence, shown beside the code's label.
    detail: str | None = Field(default=None, max_length=500)
    at: AwareDatetime


# ---------------------------------------------------------------- enrollment


class EnrollRequest(WireModel):
    code: str = Field(min_length=6, max_length=64)
    agent_version: str = "unknown"
    hostname: str | None = None


class EnrollResponse(WireModel):
    device_id: str
    device_secret: str
    device_kind: DeviceKind
    commune: str
    profile: str
    hub_keys: list[HubKey]


# ---------------------------------------------------------------- reports (device -> hub)


class PlayOutcome(StrEnum):
    COMPLETED = "completed"
    PREEMPTED = "preempted"
    STOPPED = "stopped"  # stopped by an operator or a cancel
    FAILED = "failed"


class ProofOfPlay(WireModel):
    """One airing of a bulletin (bằng chứng phát)."""

    type: Literal["play"] = "play"
    seq: int = Field(ge=1)
    #: Never empty: an empty id names no bulletin (and, in a URL, another route).
    bulletin_id: str = Field(min_length=1)
    priority: Priority
    kind: BulletinKind
    started_at: AwareDatetime
    ended_at: AwareDatetime
    outcome: PlayOutcome
    position_s: float = Field(default=0.0, ge=0)


class NowPlayingInfo(WireModel):
    bulletin_id: str
    priority: Priority
    kind: BulletinKind
    title: str
    started_at: AwareDatetime


class HealthSample(WireModel):
    """A health snapshot. Field names follow Prometheus node_exporter where one exists.

    Everything added after the first release is optional with a default, so a sample from an
    older agent still validates on a newer hub. `None` always means "this device cannot
    tell" (no such sensor, not a Pi), never "fine".
    """

    type: Literal["health"] = "health"
    seq: int = Field(ge=1)
    at: AwareDatetime
    #: node_cpu_seconds_total as a share: busy CPU since the previous sample, 0–100.
    cpu_percent: float
    #: node_memory_MemTotal_bytes - node_memory_MemAvailable_bytes.
    memory_used_bytes: int
    memory_total_bytes: int
    #: node_filesystem_avail_bytes / node_filesystem_size_bytes of the agent's data folder.
    filesystem_avail_bytes: int
    filesystem_size_bytes: int
    #: node_hwmon_temp_celsius / node_thermal_zone_temp of the SoC.
    temperature_celsius: float | None = None
    #: node_boot_time_seconds (Unix time): uptime is `at` minus this.
    boot_time_seconds: float
    #: node_network_{receive,transmit}_bytes_total, all interfaces.
    network_receive_bytes_total: int = 0
    network_transmit_bytes_total: int = 0
    #: The player's state: "idle", "playing" or "error".
    player_state: str
    now_playing: NowPlayingInfo | None = None
    #: The volume the commune set (0–100); an emergency plays at the profile's own level.
    volume: int
    manifest_version: int | None = None
    #: Verified media and synthesized speech held on the SD card.
    cache_bytes: int = 0
    cache_objects: int = 0
    #: Reports (health and proof-of-play) waiting for the hub's acknowledgement.
    outbox_backlog: int = 0
    #: Hub (or NTP) time minus the system clock when the agent last compared them.
    clock_offset_seconds: float | None = None
    #: False while windowed items are held because the time is not confirmed.
    clock_trusted: bool = True
    #: What the agent itself sees wrong, as `Fault` values ("under_voltage", "sd_read_only",
    #: "screen_blank", …); the hub's verdict reads them too, so older agents still count.
    #: Plain strings on the wire: a newer agent's name an older hub does not know is shown
    #: as it is, never refused.
    faults: list[str] = Field(default_factory=list)
    #: Why, for the faults that have a reason to give: fault name -> what the agent saw
    #: ("media 3f2a… (150.0 MiB) does not fit: 40.0 MiB free", "reports: OSError: …").
    fault_details: dict[
        Annotated[str, StringConstraints(max_length=64)],
        Annotated[str, StringConstraints(max_length=500)],
    ] = Field(default_factory=dict, max_length=64)

    # -- Raspberry Pi power, from the firmware's throttled word (vcgencmd get_throttled, the
    # -- firmware's sysfs file) or the kernel's rpi_volt hwmon alarm. A weak supply is the
    # -- commonest cause of a dead SD card, so it is reported separately from the faults.
    #: The supply is below ~4.63 V now (node_hwmon_in_lcrit_alarm_volts of rpi_volt).
    under_voltage: bool | None = None
    #: Under-voltage happened at some point since boot (bit 16 of the word).
    under_voltage_since_boot: bool | None = None
    #: The SoC runs slowed now: throttled, frequency capped or at the soft temperature limit.
    throttled: bool | None = None
    #: Throttling happened at some point since boot (bit 18 of the word).
    throttled_since_boot: bool | None = None

    # -- The SD card holding the data folder.
    #: node_filesystem_readonly: the kernel remounted it read-only (usually after errors).
    filesystem_readonly: bool | None = None
    #: ext4's own error count on that filesystem (/sys/fs/ext4/<dev>/errors_count).
    ext4_errors_total: int | None = None
    #: The last periodic write-fsync-read-back probe of a small file succeeded.
    sd_write_ok: bool | None = None
    #: How long that probe took; a worn card gets slow before it fails.
    sd_write_seconds: float | None = Field(default=None, ge=0)

    # -- Audio chain and players.
    #: The loudspeaker amplifier's relay is switched on (None: this device has no relay).
    relay_on: bool | None = None
    #: Stops the player did not finish in time, so the backend was recreated (python-vlc #74).
    player_stuck_stops_total: int = Field(default=0, ge=0)


Report = Annotated[ProofOfPlay | HealthSample, Field(discriminator="type")]


class ReportBatch(WireModel):
    #: The agent database's sequence space: a device whose state file was lost starts its
    #: seq again under a new stream, so the hub keeps its new reports instead of taking them
    #: for duplicates. "" for agents from before streams.
    stream: str = Field(default="", max_length=64, pattern=r"^[0-9a-f]*$")
    reports: list[Report] = Field(max_length=1000)


class ReportAck(WireModel):
    """Sequence numbers the hub now holds (new or already stored): the agent may forget them."""

    acked: list[int]


# ---------------------------------------------------------------- helpers


def utcnow() -> datetime:
    return datetime.now(UTC)


__all__ = [
    "CONTRACT_VERSION",
    "HHMM",
    "HUB_URL_PATTERN",
    "KINDS_FOR_DEVICE",
    "MAX_HUB_URLS",
    "VN_TZ",
    "AckStatus",
    "BroadcastWindow",
    "BulletinKind",
    "CivilDatetime",
    "Command",
    "CommandAck",
    "CommandDocument",
    "CommuneWindows",
    "DatedWindows",
    "DayWindows",
    "DeviceKind",
    "EmergencyCancel",
    "EmergencyStart",
    "EnrollRequest",
    "EnrollResponse",
    "HealthSample",
    "HubKey",
    "HubUrl",
    "KeyChain",
    "KeyEndorsement",
    "Manifest",
    "ManifestBulletin",
    "ManifestReady",
    "MediaRef",
    "NowPlayingInfo",
    "PlayOutcome",
    "Priority",
    "ProofOfPlay",
    "Report",
    "ReportAck",
    "ReportBatch",
    "Resync",
    "Schedule",
    "Scope",
    "SetVolume",
    "Sha256",
    "SignedEnvelope",
    "StopPlayback",
    "TestTone",
    "Weekday",
    "WeekdayWindows",
    "WindowException",
    "WireModel",
    "parse_hhmm",
    "utcnow",
]
