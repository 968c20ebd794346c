"""The hub's device verdict (hub/verdict.py): every rule, its thresholds, and the ordering."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.verdict import (
    CLOCK_OFFSET_WARNING_S,
    HEALTH_STALE_AFTER,
    LEVELS,
    OUTBOX_BACKLOG_WARNING,
    REASON_CODES,
    REPORTS_REFUSED_RECENT,
    SD_WRITE_SLOW_S,
    TEMPERATURE_FAULT_C,
    TEMPERATURE_WARNING_C,
    Verdict,
    device_verdict,
)
from loa_contract import Fault, HealthSample, known_fault

NOW = datetime(2025, 6, 1, 3, 0, tzinfo=UTC)
GIB = 1 << 30


def sample(**fields: Any) -> HealthSample:
    """A healthy Pi's sample, with `fields` changed."""
    base: dict[str, Any] = {
        "seq": 1,
        "at": NOW - timedelta(seconds=30),
        "cpu_percent": 12.0,
        "memory_used_bytes": 1 * GIB,
        "memory_total_bytes": 4 * GIB,
        "filesystem_avail_bytes": 20 * GIB,
        "filesystem_size_bytes": 32 * GIB,
        "temperature_celsius": 52.0,
        "boot_time_seconds": (NOW - timedelta(days=3)).timestamp(),
        "player_state": "idle",
        "volume": 70,
        "clock_offset_seconds": 0.4,
        "clock_trusted": True,
        "under_voltage": False,
        "under_voltage_since_boot": False,
        "throttled": False,
        "throttled_since_boot": False,
        "filesystem_readonly": False,
        "ext4_errors_total": 0,
        "sd_write_ok": True,
        "sd_write_seconds": 0.01,
        "relay_on": False,
    }
    return HealthSample.model_validate({**base, **fields})


def judge(health: HealthSample | None, *, online: bool = True, enrolled: bool = True) -> Verdict:
    return device_verdict(health, online=online, now=NOW, enrolled=enrolled)


def test_a_healthy_online_device_is_ok() -> None:
    assert judge(sample()) == Verdict("ok", ())


def test_an_older_agents_sample_without_the_new_fields_is_ok() -> None:
    old = HealthSample(
        seq=1,
        at=NOW,
        cpu_percent=1.0,
        memory_used_bytes=1,
        memory_total_bytes=4,
        filesystem_avail_bytes=3,
        filesystem_size_bytes=4,
        boot_time_seconds=0.0,
        player_state="playing",
        volume=70,
    )
    assert judge(old) == Verdict("ok", ())


# ---------------------------------------------------------------- one rule at a time

GRADED: list[tuple[str, dict[str, Any], str, str]] = [
    # (case, changed fields, expected level, expected reason)
    ("under-voltage now", {"under_voltage": True}, "fault", "under_voltage"),
    (
        "under-voltage earlier, not now",
        {"under_voltage_since_boot": True},
        "warning",
        "under_voltage_since_boot",
    ),
    ("throttled now", {"throttled": True}, "warning", "throttled"),
    ("SD remounted read-only", {"filesystem_readonly": True}, "fault", "sd_read_only"),
    ("SD write test failed", {"sd_write_ok": False}, "fault", "sd_write_failed"),
    ("ext4 counted errors", {"ext4_errors_total": 3}, "warning", "sd_errors"),
    ("SD write slow", {"sd_write_seconds": SD_WRITE_SLOW_S}, "warning", "sd_slow"),
    ("disk 9.9 % free", {"filesystem_avail_bytes": int(0.099 * 32 * GIB)}, "warning", "disk_low"),
    ("disk 2.9 % free", {"filesystem_avail_bytes": int(0.029 * 32 * GIB)}, "fault", "disk_low"),
    ("memory 91 % used", {"memory_used_bytes": int(0.91 * 4 * GIB)}, "warning", "memory_high"),
    ("memory 98 % used", {"memory_used_bytes": int(0.98 * 4 * GIB)}, "fault", "memory_high"),
    (
        "70 °C",
        {"temperature_celsius": TEMPERATURE_WARNING_C},
        "warning",
        "temperature_high",
    ),
    ("80 °C", {"temperature_celsius": TEMPERATURE_FAULT_C}, "fault", "temperature_high"),
    ("player in error", {"player_state": "error"}, "fault", "player_error"),
    ("player was reset", {"player_stuck_stops_total": 1}, "warning", "player_stuck"),
    ("clock untrusted", {"clock_trusted": False}, "warning", "clock_untrusted"),
    (
        "clock off",
        {"clock_offset_seconds": -(CLOCK_OFFSET_WARNING_S + 1)},
        "warning",
        "clock_offset",
    ),
    ("outbox backlog", {"outbox_backlog": OUTBOX_BACKLOG_WARNING}, "warning", "outbox_backlog"),
    (
        "sample too old",
        {"at": NOW - HEALTH_STALE_AFTER - timedelta(seconds=1)},
        "warning",
        "health_stale",
    ),
    ("blank screen", {"faults": ["screen_blank"]}, "fault", "screen_blank"),
    ("frozen screen", {"faults": ["screen_frozen"]}, "fault", "screen_frozen"),
    # An older agent says these only in its fault names.
    ("under-voltage fault name", {"faults": ["under_voltage"]}, "fault", "under_voltage"),
    ("read-only fault name", {"faults": ["sd_read_only"]}, "fault", "sd_read_only"),
    ("write-failed fault name", {"faults": ["sd_write_failed"]}, "fault", "sd_write_failed"),
    ("ext4 fault name", {"faults": ["sd_errors"]}, "warning", "sd_errors"),
    ("throttled fault name", {"faults": ["throttled"]}, "warning", "throttled"),
    ("clock fault name", {"faults": ["clock_untrusted"]}, "warning", "clock_untrusted"),
    ("stuck player fault name", {"faults": ["player_stuck"]}, "warning", "player_stuck"),
    ("disk low fault name", {"faults": ["disk_low"]}, "warning", "disk_low"),
    # Said only by the agent, in its fault names.
    ("programme altered at rest", {"faults": ["manifest_tampered"]}, "fault", "manifest_tampered"),
    (
        "emergency altered at rest",
        {"faults": ["emergency_tampered"]},
        "fault",
        "emergency_tampered",
    ),
    ("no room for new content", {"faults": ["disk_full"]}, "fault", "disk_full"),
    ("cached file damaged", {"faults": ["cache_corrupt"]}, "warning", "cache_corrupt"),
    ("database rebuilt", {"faults": ["state_rebuilt"]}, "warning", "state_rebuilt"),
    ("a task died", {"faults": ["task_died"]}, "warning", "task_died"),
    ("player check raised", {"faults": ["player_check_failed"]}, "warning", "player_check_failed"),
    # A newer agent's finding this hub does not know yet is shown, not swallowed.
    ("unknown fault name", {"faults": ["fan_stopped"]}, "warning", "fan_stopped"),
]


@pytest.mark.parametrize(
    ("changed", "level", "reason"),
    [pytest.param(c, lv, r, id=name) for name, c, lv, r in GRADED],
)
def test_each_rule(changed: dict[str, Any], level: str, reason: str) -> None:
    assert judge(sample(**changed)) == Verdict(level, (reason,))  # type: ignore[arg-type]


JUST_FINE: list[tuple[str, dict[str, Any]]] = [
    ("disk 10 % free", {"filesystem_avail_bytes": int(0.1 * 32 * GIB) + 1}),
    ("memory 89 % used", {"memory_used_bytes": int(0.89 * 4 * GIB)}),
    ("69.9 °C", {"temperature_celsius": TEMPERATURE_WARNING_C - 0.1}),
    ("no sensor", {"temperature_celsius": None}),
    ("clock off within tolerance", {"clock_offset_seconds": CLOCK_OFFSET_WARNING_S}),
    ("backlog below the mark", {"outbox_backlog": OUTBOX_BACKLOG_WARNING - 1}),
    ("SD write a bit slow", {"sd_write_seconds": SD_WRITE_SLOW_S - 0.01}),
    ("throttled earlier only", {"throttled_since_boot": True}),
    ("nothing known of the Pi", {"under_voltage": None, "filesystem_readonly": None}),
    ("no write test yet", {"sd_write_ok": None, "sd_write_seconds": None}),
    ("relay on", {"relay_on": True}),
    ("playing", {"player_state": "playing"}),
    ("zero-sized filesystem reading", {"filesystem_size_bytes": 0, "filesystem_avail_bytes": 0}),
    ("zero memory reading", {"memory_total_bytes": 0}),
    (
        # An untrusted device clock cannot say how old its sample is; only clock_untrusted.
        "old sample, clock untrusted",
        {"at": NOW - timedelta(days=2), "clock_trusted": False},
    ),
    (
        "a device cannot give the hub's own reasons",
        {
            "faults": [
                "offline",
                "not_enrolled",
                "no_health",
                "health_stale",
                "reports_refused",
                "",
            ]
        },
    ),
]


@pytest.mark.parametrize("changed", [pytest.param(c, id=name) for name, c in JUST_FINE])
def test_below_every_threshold_is_ok(changed: dict[str, Any]) -> None:
    verdict = judge(sample(**changed))
    expected = ("clock_untrusted",) if changed.get("clock_trusted") is False else ()
    assert verdict.reasons == expected
    assert verdict.level == ("warning" if expected else "ok")


# ---------------------------------------------------------------- reach and ordering


def test_not_enrolled_is_unknown_whatever_is_stored() -> None:
    stale = sample(under_voltage=True)
    assert judge(stale, enrolled=False) == Verdict("unknown", ("not_enrolled",))
    assert judge(None, online=False, enrolled=False) == Verdict("unknown", ("not_enrolled",))


def test_no_report_yet() -> None:
    assert judge(None) == Verdict("unknown", ("no_health",))
    assert judge(None, online=False) == Verdict("fault", ("offline",))


def test_offline_keeps_the_last_reports_reasons_as_clues() -> None:
    assert judge(sample(), online=False) == Verdict("fault", ("offline",))
    verdict = judge(sample(under_voltage=True, throttled=True), online=False)
    assert verdict == Verdict("fault", ("offline", "under_voltage", "throttled"))
    # An offline device's sample is old by nature: "offline" says it, not "health_stale".
    old = sample(at=NOW - timedelta(days=1))
    assert judge(old, online=False) == Verdict("fault", ("offline",))


def test_the_worst_level_wins_and_reasons_come_worst_first() -> None:
    verdict = judge(
        sample(
            faults=["fan_stopped", "screen_frozen"],
            clock_trusted=False,
            throttled=True,
            temperature_celsius=85.0,
            filesystem_avail_bytes=int(0.05 * 32 * GIB),
            filesystem_readonly=True,
            under_voltage=True,
            player_stuck_stops_total=2,
        )
    )
    assert verdict.level == "fault"
    assert verdict.reasons == (
        # faults, in REASON_CODES order
        "under_voltage",
        "sd_read_only",
        "screen_frozen",
        "temperature_high",
        # then warnings, in REASON_CODES order, then names the hub does not know
        "disk_low",
        "throttled",
        "player_stuck",
        "clock_untrusted",
        "fan_stopped",
    )


def test_a_reason_named_twice_is_listed_once_at_its_worst() -> None:
    verdict = judge(sample(under_voltage=True, faults=["under_voltage", "under_voltage"]))
    assert verdict == Verdict("fault", ("under_voltage",))
    # The fault name alone says "warning" for a graded reason; the measurement says more.
    verdict = judge(sample(temperature_celsius=90.0, faults=["temperature_high"]))
    assert verdict == Verdict("fault", ("temperature_high",))


def test_warnings_only_give_a_warning() -> None:
    verdict = judge(sample(throttled=True, outbox_backlog=500, clock_offset_seconds=900.0))
    assert verdict == Verdict("warning", ("throttled", "clock_offset", "outbox_backlog"))


def test_every_fault_has_a_level() -> None:
    assert set(REASON_CODES) == set(Fault), "a Fault the verdict cannot rank"
    for code, level in REASON_CODES.items():
        levels = level if isinstance(level, tuple) else (level,)
        assert code and all(lv in LEVELS for lv in levels), code
    assert LEVELS == ("fault", "warning", "unknown", "ok")


def test_fault_names_travel_as_plain_strings_and_unknown_ones_pass() -> None:
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", fault.value) for fault in Fault)
    assert known_fault("screen_blank") is Fault.SCREEN_BLANK
    assert known_fault("fan_stopped") is None
    # A producer hands members; the wire carries their names, and one this version does not
    # know is kept as it is (a newer agent's), never refused.
    health = sample(faults=[Fault.SCREEN_BLANK, "fan_stopped"])
    assert json.loads(health.model_dump_json())["faults"] == ["screen_blank", "fan_stopped"]


def test_reasons_are_faults_and_unknown_names_stay_verbatim() -> None:
    verdict = judge(sample(under_voltage=True, faults=["fan_stopped", "screen_blank"]))
    assert verdict.reasons == ("under_voltage", "screen_blank", "fan_stopped")
    assert [type(r) for r in verdict.reasons] == [Fault, Fault, str]


def test_proof_of_play_refused_lately_is_a_warning_that_lapses() -> None:
    lately = NOW - REPORTS_REFUSED_RECENT
    long_ago = lately - timedelta(seconds=1)

    def refused(at: datetime, health: HealthSample | None = None, online: bool = True) -> Verdict:
        return device_verdict(health, online=online, now=NOW, last_refused_at=at)

    assert refused(lately, sample()) == Verdict("warning", ("reports_refused",))
    assert refused(long_ago, sample()) == Verdict("ok", ())
    # After the device's own warnings, in REASON_CODES order; a fault still wins.
    assert refused(lately, sample(throttled=True)) == Verdict(
        "warning", ("throttled", "reports_refused")
    )
    assert refused(lately, sample(under_voltage=True)).reasons == (
        "under_voltage",
        "reports_refused",
    )
    assert refused(lately) == Verdict("unknown", ("no_health", "reports_refused"))
    assert refused(lately, online=False) == Verdict("fault", ("offline",))
    # A device cannot clear or claim it: the hub alone says it.
    assert judge(sample(faults=["reports_refused"])) == Verdict("ok", ())
