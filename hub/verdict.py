"""A device's verdict for the fleet view: ok, warning or fault, and the reasons why.

An operator watching hundreds of devices cannot read health samples; a technician needs to
know which pole to drive to and what to bring. So each device gets one level and a list of
stable reason codes (the console translates them; scripts match on them):

- "fault": the device does not do its job, or soon will not (offline, under-voltage, SD card
  read-only or failing its write test, player in error, a blank or frozen screen, stored
  state altered, no room for new content, the disk or memory almost full, too hot).
- "warning": it works, but something needs a look (throttled, SD errors counted, a slow
  card, the clock, a backlog of reports, a player that had to be reset or could not check
  itself, a task that died and was restarted, state the device repaired itself, resources
  running low, the last report too old, proof of play the hub refused lately).
- "unknown": there is nothing to judge yet (a slot not enrolled, no report received).
- "ok": nothing above.

The reasons are `loa_contract.Fault` members, plus any name a newer agent reports that this
hub does not know (kept verbatim). The worst level wins; reasons come worst first, then in
the order of `REASON_CODES`.
A device that is offline keeps the reasons of its last report: they are often the clue to
why it went away (under-voltage before a brown-out, a full disk before a crash).

Pure: no I/O and no clock of its own, so every rule is a table-driven unit test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from loa_contract import Fault, HealthSample, known_fault

Level = Literal["ok", "warning", "fault", "unknown"]
#: Worst first: the order reasons are listed in, and the order of a fleet filter.
LEVELS: tuple[Level, ...] = ("fault", "warning", "unknown", "ok")
_RANK: dict[Level, int] = {level: rank for rank, level in enumerate(LEVELS)}

# ---------------------------------------------------------------- thresholds

#: Free share of the data filesystem below which new media may not fit (the cache evicts
#: only what no held bulletin needs) …
DISK_FREE_WARNING = 0.10
#: … and below which SQLite's WAL and the next download are likely to fail outright.
DISK_FREE_FAULT = 0.03
#: Used share of memory: a Pi swapping to its SD card stutters audio and wears the card;
#: near the top the kernel's OOM killer picks a process, often the player.
MEMORY_USED_WARNING = 0.90
MEMORY_USED_FAULT = 0.97
#: SoC temperature. A Pi 4 or 5's firmware throttles from 80 °C, so 70 °C is the time to
#: look at the enclosure and its shade, and 80 °C is too hot to play reliably.
TEMPERATURE_WARNING_C = 70.0
TEMPERATURE_FAULT_C = 80.0
#: |hub time - system clock| beyond which the system clock (NTP) is broken. The agent
#: corrects its own schedule from the hub, so this is a warning; the agent's ClockJudge
#: uses the same tolerance.
CLOCK_OFFSET_WARNING_S = 120.0
#: Reports waiting for the hub's acknowledgement: at one health sample a minute, 100 is well
#: over an hour of history not delivered.
OUTBOX_BACKLOG_WARNING = 100
#: The agent's 4 KiB write, fsync and read-back; a healthy card takes milliseconds, a worn
#: one seconds (it is still retiring blocks) before it fails.
SD_WRITE_SLOW_S = 2.0
#: An online device whose newest sample is older than this has a stuck health or report
#: loop (the agent samples every minute by default).
HEALTH_STALE_AFTER = timedelta(minutes=15)
#: A device whose proof of play the hub refused (hub/play_evidence.py) within this long is a
#: warning: a wrong clock or a confused agent inflates or hides air time. Once it reports
#: cleanly again the warning lapses; the count stays on its page.
REPORTS_REFUSED_RECENT = timedelta(days=7)

# ---------------------------------------------------------------- reasons

#: The level of every Fault, in listing order within a level (disk_low, memory_high and
#: temperature_high are a warning or a fault by degree; an agent naming one itself gets the
#: milder). A fault name an agent reports that is not a Fault is passed on as a warning
#: under its own name, after these: a newer agent's findings are never hidden.
REASON_CODES: dict[Fault, Level | tuple[Level, Level]] = {
    Fault.NOT_ENROLLED: "unknown",
    Fault.OFFLINE: "fault",
    Fault.NO_HEALTH: "unknown",
    Fault.UNDER_VOLTAGE: "fault",
    Fault.SD_READ_ONLY: "fault",
    Fault.SD_WRITE_FAILED: "fault",
    Fault.PLAYER_ERROR: "fault",
    Fault.SCREEN_BLANK: "fault",
    Fault.SCREEN_FROZEN: "fault",
    # The loudspeaker is silent while its player runs on: nothing it airs is heard.
    Fault.AUDIO_OUTPUT_FAILED: "fault",
    Fault.RELAY_FAILED: "fault",
    # Something at rest on the device was altered and refused (it plays only what verifies).
    Fault.MANIFEST_TAMPERED: "fault",
    Fault.EMERGENCY_TAMPERED: "fault",
    # New content cannot be stored: the programme goes stale until space returns.
    Fault.DISK_FULL: "fault",
    # The loudspeaker may be silent while the rest looks fine; systemd restarts it.
    Fault.TASK_STALLED: "fault",
    Fault.STATE_WRITE_FAILED: "fault",
    # A text bulletin the commune expects to hear is not aired.
    Fault.SPEECH_FAILED: "fault",
    Fault.DISK_LOW: ("warning", "fault"),
    Fault.MEMORY_HIGH: ("warning", "fault"),
    Fault.TEMPERATURE_HIGH: ("warning", "fault"),
    Fault.SD_ERRORS: "warning",
    Fault.SD_SLOW: "warning",
    Fault.THROTTLED: "warning",
    Fault.UNDER_VOLTAGE_SINCE_BOOT: "warning",
    Fault.PLAYER_STUCK: "warning",
    Fault.PLAYER_CHECK_FAILED: "warning",
    # Recovered by the device itself, but a sign of a bug, a failing SD card or tampering.
    Fault.TASK_DIED: "warning",
    Fault.CACHE_CORRUPT: "warning",
    Fault.STATE_REBUILT: "warning",
    Fault.CLOCK_UNTRUSTED: "warning",
    Fault.CLOCK_OFFSET: "warning",
    Fault.OUTBOX_BACKLOG: "warning",
    Fault.HEALTH_STALE: "warning",
    Fault.REPORTS_REFUSED: "warning",
}
_ORDER = {code: index for index, code in enumerate(REASON_CODES)}

#: Reasons only the hub can give: a device saying them of itself is ignored.
_HUB_ONLY = frozenset(
    {Fault.NOT_ENROLLED, Fault.OFFLINE, Fault.NO_HEALTH, Fault.HEALTH_STALE, Fault.REPORTS_REFUSED}
)

#: A reason: a Fault, or the verbatim name of one a newer agent reported.
Reason = Fault | str


@dataclass(frozen=True)
class Verdict:
    level: Level
    #: Stable codes, worst first (see REASON_CODES).
    reasons: tuple[Reason, ...] = ()


def _graded(value: float, warning: float, fault: float, *, above: bool) -> Level | None:
    """The level of `value` against two thresholds, crossing upwards (above) or downwards."""
    if above:
        return "fault" if value >= fault else "warning" if value >= warning else None
    return "fault" if value < fault else "warning" if value < warning else None


def health_reasons(health: HealthSample, *, online: bool, now: datetime) -> dict[Reason, Level]:
    """Each reason a health sample gives, with its level (unordered)."""
    found: dict[Reason, Level] = {}

    def add(code: Reason, level: Level | None) -> None:
        if level is not None and (code not in found or _RANK[level] < _RANK[found[code]]):
            found[code] = level

    # Power: under-voltage corrupts SD cards and resets the Pi; throttling slows decoding.
    if health.under_voltage:
        add(Fault.UNDER_VOLTAGE, "fault")
    elif health.under_voltage_since_boot:
        add(Fault.UNDER_VOLTAGE_SINCE_BOOT, "warning")
    if health.throttled:
        add(Fault.THROTTLED, "warning")

    # The SD card.
    if health.filesystem_readonly:
        add(Fault.SD_READ_ONLY, "fault")
    if health.sd_write_ok is False:
        add(Fault.SD_WRITE_FAILED, "fault")
    if health.ext4_errors_total:
        add(Fault.SD_ERRORS, "warning")
    if health.sd_write_seconds is not None and health.sd_write_seconds >= SD_WRITE_SLOW_S:
        add(Fault.SD_SLOW, "warning")
    if health.filesystem_size_bytes > 0:
        free = health.filesystem_avail_bytes / health.filesystem_size_bytes
        add(Fault.DISK_LOW, _graded(free, DISK_FREE_WARNING, DISK_FREE_FAULT, above=False))

    # Machine.
    if health.memory_total_bytes > 0:
        used = health.memory_used_bytes / health.memory_total_bytes
        add(Fault.MEMORY_HIGH, _graded(used, MEMORY_USED_WARNING, MEMORY_USED_FAULT, above=True))
    if health.temperature_celsius is not None:
        add(
            Fault.TEMPERATURE_HIGH,
            _graded(
                health.temperature_celsius,
                TEMPERATURE_WARNING_C,
                TEMPERATURE_FAULT_C,
                above=True,
            ),
        )

    # Playing.
    if health.player_state == "error":
        add(Fault.PLAYER_ERROR, "fault")
    if health.player_stuck_stops_total > 0:
        add(Fault.PLAYER_STUCK, "warning")

    # Time and reports.
    if not health.clock_trusted:
        add(Fault.CLOCK_UNTRUSTED, "warning")
    offset = health.clock_offset_seconds
    if offset is not None and abs(offset) > CLOCK_OFFSET_WARNING_S:
        add(Fault.CLOCK_OFFSET, "warning")
    if health.outbox_backlog >= OUTBOX_BACKLOG_WARNING:
        add(Fault.OUTBOX_BACKLOG, "warning")
    # Only a trusted device clock makes `at` comparable with the hub's `now`.
    if online and health.clock_trusted and now - health.at > HEALTH_STALE_AFTER:
        add(Fault.HEALTH_STALE, "warning")

    # What the agent itself named (an older agent says some things only here): a known
    # fault at its level (the milder one where graded), any other name as a warning.
    for name in health.faults:
        if not name:
            continue
        fault = known_fault(name)
        if fault is None:
            add(name, "warning")
        elif fault not in _HUB_ONLY:
            level = REASON_CODES[fault]
            add(fault, level if isinstance(level, str) else level[0])
    return found


def device_verdict(
    health: HealthSample | None,
    *,
    online: bool,
    now: datetime,
    enrolled: bool = True,
    last_refused_at: datetime | None = None,
) -> Verdict:
    """The verdict on one device from its newest health sample and whether it is online.

    `now` is the hub's time; `online` is the hub's own judgement (on the WebSocket, or heard
    from within its offline-after); `last_refused_at` when the hub last refused a proof of
    play from it.
    """
    if not enrolled:
        # A slot waiting for its Pi: anything stored is from a previous card, not this one.
        return Verdict("unknown", (Fault.NOT_ENROLLED,))
    refused = last_refused_at is not None and now - last_refused_at <= REPORTS_REFUSED_RECENT
    if health is None:
        if not online:
            return Verdict("fault", (Fault.OFFLINE,))
        if refused:
            return Verdict("unknown", (Fault.NO_HEALTH, Fault.REPORTS_REFUSED))
        return Verdict("unknown", (Fault.NO_HEALTH,))
    found = health_reasons(health, online=online, now=now)
    if not online:
        found[Fault.OFFLINE] = "fault"
    if refused:
        found[Fault.REPORTS_REFUSED] = "warning"
    if not found:
        return Verdict("ok")
    unknown_order = {name: index for index, name in enumerate(health.faults)}

    def key(code: Reason) -> tuple[int, int, int]:
        # Unknown agent fault names after the known reasons, in the agent's own order.
        rank = _RANK[found[code]]
        if isinstance(code, Fault):
            return (rank, 0, _ORDER[code])
        return (rank, 1, unknown_order.get(code, 0))

    reasons = tuple(sorted(found, key=key))
    return Verdict(found[reasons[0]], reasons)


__all__ = [
    "CLOCK_OFFSET_WARNING_S",
    "DISK_FREE_FAULT",
    "DISK_FREE_WARNING",
    "HEALTH_STALE_AFTER",
    "LEVELS",
    "MEMORY_USED_FAULT",
    "MEMORY_USED_WARNING",
    "OUTBOX_BACKLOG_WARNING",
    "REASON_CODES",
    "REPORTS_REFUSED_RECENT",
    "SD_WRITE_SLOW_S",
    "TEMPERATURE_FAULT_C",
    "TEMPERATURE_WARNING_C",
    "Level",
    "Reason",
    "Verdict",
    "device_verdict",
    "health_reasons",
]
