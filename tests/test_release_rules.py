"""The pure rules of fleet updates (issue #14), case by case: release versions, what the
launcher does with each state a power cut can leave, when a switch may happen, which devices a
roll-out reaches, and when a roll-out pauses itself. Plus the release folder's refusals."""

from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from edge_agent.releases import (
    BASE,
    MAX_START_ATTEMPTS,
    HashRefusal,
    Pending,
    ReleaseError,
    Releases,
    ReleaseState,
    plan_boot,
    prepare_boot,
    switch_back,
)
from edge_agent.scheduler_types import Candidate, ParsedWindow, Playing, ScheduleInput
from edge_agent.updater import (
    MISMATCH_MAX_WAIT_S,
    after_mismatch,
    fetch_held_back,
    mismatch_wait,
    quiet_for_switch,
)
from hub.releases import bucket, in_rollout, offered, pause_reason
from hub.store.releases import Rollout
from loa_contract import BulletinKind, DeviceKind, Priority, is_newer, version_key

# ---------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("newer", "older"),
    [
        ("0.2.0", "0.1.0"),
        ("0.10.0", "0.9.9"),
        ("1.0", "0.99.99"),
        ("0.1.1", "0.1"),
        ("0.1.0", "0.1.0.dev3+g12ab"),  # a checkout is older than any release
        ("0.0.1", "unknown"),
    ],
)
def test_release_versions_order_as_numbers(newer: str, older: str) -> None:
    assert is_newer(newer, older)
    assert not is_newer(older, newer)


def test_trailing_zeros_do_not_make_a_version_newer() -> None:
    assert version_key("1.0") == version_key("1.0.0")
    assert not is_newer("1.0.0", "1.0")


# ---------------------------------------------------------------- the launcher's plan


def _pending(**kw: object) -> Pending:
    fields: dict[str, object] = {"version": "0.2.0", "previous": BASE, "stopped_at": 100.0}
    return Pending(**{**fields, **kw})  # type: ignore[arg-type]


def test_no_switch_under_way_runs_current() -> None:
    plan = plan_boot(ReleaseState(), "0.2.0")
    assert (plan.run, plan.state, plan.give_up) == ("0.2.0", None, None)


def test_a_switch_that_never_moved_current_is_dropped_and_not_blamed() -> None:
    plan = plan_boot(ReleaseState(pending=_pending()), BASE)
    assert plan.run == BASE and plan.give_up is None
    assert plan.state is not None and plan.state.pending is None
    assert plan.state.last is not None and plan.state.last["state"] == "waiting"
    assert "0.2.0" not in plan.state.refused


@pytest.mark.parametrize("attempts", range(MAX_START_ATTEMPTS))
def test_each_start_of_a_pending_release_is_counted_first(attempts: int) -> None:
    plan = plan_boot(ReleaseState(pending=_pending(attempts=attempts)), "0.2.0")
    assert plan.run == "0.2.0" and plan.give_up is None
    assert plan.state is not None and plan.state.pending == _pending(attempts=attempts + 1)


def test_a_release_started_too_often_without_proving_itself_is_given_up() -> None:
    plan = plan_boot(ReleaseState(pending=_pending(attempts=MAX_START_ATTEMPTS)), "0.2.0")
    assert plan.run == BASE
    assert plan.give_up is not None and "did not prove itself" in plan.give_up


@pytest.mark.parametrize("current", ["0.2.0", BASE])
def test_a_switch_back_begun_is_finished_wherever_current_points(current: str) -> None:
    plan = plan_boot(ReleaseState(pending=_pending(gave_up="player dead")), current)
    assert (plan.run, plan.give_up) == (BASE, "player dead")


def _installed(data: Path, *versions: str) -> Releases:
    releases = Releases(data)
    for version in versions:
        (releases.root / version / "site").mkdir(parents=True)
    return releases


def test_a_cut_between_the_mark_and_the_link_still_ends_on_the_old_release(
    tmp_path: Path,
) -> None:
    releases = _installed(tmp_path, "0.1.5", "0.2.0")
    releases.point_current("0.2.0")
    state = ReleaseState(pending=_pending(previous="0.1.5", attempts=1))
    # switch_back's first write, then the power goes: `current` still names the new one.
    marked = replace(state, pending=replace(state.pending, gave_up="no hub in 180 s"))  # type: ignore[type-var]
    releases.save_state(marked)
    assert prepare_boot(tmp_path, now=130.0) == "0.1.5"
    assert releases.current() == "0.1.5"
    after = releases.load_state()
    assert after.pending is None and after.refused == {"0.2.0": "no hub in 180 s"}
    assert after.last == {
        "state": "rolled_back",
        "target_version": "0.2.0",
        "reason": "no hub in 180 s",
        "switch_silence_s": 30.0,
    }


def test_switch_back_keeps_what_else_the_state_holds(tmp_path: Path) -> None:
    releases = _installed(tmp_path, "0.2.0")
    releases.point_current("0.2.0")
    state = ReleaseState(pending=_pending(), refused={"0.1.9": "old"}, previous="0.1.8")
    final = switch_back(releases, state, "crashed", 101.0)
    assert releases.current() == BASE
    assert final.refused == {"0.1.9": "old", "0.2.0": "crashed"}
    assert final.previous == "0.1.8"
    assert releases.load_state() == final


def test_a_garbled_state_file_runs_current(tmp_path: Path) -> None:
    releases = _installed(tmp_path, "0.2.0")
    releases.point_current("0.2.0")
    (releases.root / "state.json").write_bytes(b'{"pending": {"vers')
    assert prepare_boot(tmp_path) == "0.2.0"


def test_current_naming_a_missing_release_means_the_provisioned_one(tmp_path: Path) -> None:
    releases = _installed(tmp_path, "0.2.0")
    releases.point_current("0.2.0")
    (releases.root / "0.2.0" / "site").rmdir()
    assert releases.current() == BASE
    with pytest.raises(ReleaseError):
        releases.point_current("0.3.0")


# ---------------------------------------------------------------- the release folder


def _tar(path: Path, entries: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _manifest(version: str = "0.2.0") -> bytes:
    return json.dumps(
        {"version": version, "wheel": "loa-0.2.0-py3-none-any.whl", "requires": {}}
    ).encode()


@pytest.mark.parametrize(
    ("entries", "why"),
    [
        ({"wheels/x.whl": b"x"}, "no RELEASE.json"),
        ({"RELEASE.json": _manifest(), "../evil": b"x"}, "unsafe path"),
        ({"RELEASE.json": _manifest(), "bin/run": b"x"}, "unexpected entry"),
        ({"RELEASE.json": _manifest()}, "names wheels the release does not hold"),
        ({"RELEASE.json": _manifest("0.3.0")}, "holds release 0.3.0, not 0.2.0"),
        ({"RELEASE.json": b"{not json"}, "not what a release holds"),
    ],
)
def test_install_refuses_what_is_not_a_whole_release(
    tmp_path: Path, entries: dict[str, bytes], why: str
) -> None:
    releases = Releases(tmp_path)
    with pytest.raises(ReleaseError, match=why):
        releases.install(_tar(tmp_path / "r.tar", entries), "0.2.0")
    assert not releases.is_installed("0.2.0")
    assert [p.name for p in releases.root.iterdir()] == []  # nothing half-made is left


# ---------------------------------------------------------------- when to switch

NOW = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam
MORNING = ParsedWindow(time(9, 0), time(11, 0))
EVENING = ParsedWindow(time(17, 0), time(18, 0))


def _candidate(priority: Priority, bulletin_id: str = "b1", **kw: object) -> Candidate:
    fields: dict[str, object] = {
        "id": bulletin_id,
        "title": bulletin_id,
        "priority": priority,
        "kind": BulletinKind.AUDIO,
        "valid_from": NOW - timedelta(hours=1),
        "valid_until": NOW + timedelta(hours=1),
    }
    return Candidate(**{**fields, **kw})  # type: ignore[arg-type]


def _input(
    *candidates: Candidate, windows: tuple[ParsedWindow, ...] = (MORNING,), **kw: object
) -> ScheduleInput:
    return ScheduleInput(
        now=NOW,
        device_kind=DeviceKind.SPEAKER,
        windows=windows,
        candidates=candidates,
        **kw,  # type: ignore[arg-type]
    )


def test_a_switch_waits_for_an_emergency_whatever_the_window() -> None:
    emergency = _candidate(Priority.EMERGENCY)
    assert quiet_for_switch(_input(emergency, windows=(EVENING,)), False) is not None
    assert quiet_for_switch(_input(windows=(EVENING,)), True) == "an emergency is active"
    # Cancelled or expired, it no longer holds the switch back.
    assert (
        quiet_for_switch(_input(emergency, windows=(EVENING,), cancelled=frozenset({"b1"})), False)
        is None
    )
    expired = _candidate(Priority.EMERGENCY, valid_until=NOW - timedelta(seconds=1))
    assert quiet_for_switch(_input(expired, windows=(EVENING,)), False) is None


def test_a_switch_never_cuts_what_is_on_air() -> None:
    playing = Playing("b1", Priority.NORMAL, "w:x", NOW - timedelta(seconds=30))
    why = quiet_for_switch(_input(windows=(EVENING,), playing=playing), False)
    assert why == "on air: b1"


def test_inside_a_window_a_switch_waits_only_while_something_is_due() -> None:
    normal = _candidate(Priority.NORMAL)
    assert quiet_for_switch(_input(normal), False) == (
        "inside a broadcast window with 1 bulletins to air"
    )
    assert quiet_for_switch(_input(), False) is None  # an empty window is quiet
    not_yet = _candidate(Priority.NORMAL, valid_from=NOW + timedelta(hours=2))
    assert quiet_for_switch(_input(not_yet), False) is None
    # Outside the windows, what waits for the evening does not hold the switch back.
    assert quiet_for_switch(_input(normal, windows=(EVENING,)), False) is None


# ---------------------------------------------------------------- roll-outs on the hub


def _rollout(**kw: object) -> Rollout:
    fields: dict[str, object] = {
        "id": "r1",
        "version": "0.2.0",
        "communes": (),
        "devices": (),
        "kind": None,
        "percent": 100,
        "state": "active",
        "downgrade": False,
        "descriptor": "{}",
        "max_failure_share": 0.2,
        "min_attempts": 1,
        "paused_reason": None,
        "created_at": NOW,
        "created_by": "admin",
        "updated_at": NOW,
    }
    return Rollout(**{**fields, **kw})  # type: ignore[arg-type]


def test_a_device_keeps_its_place_and_widening_only_adds_devices() -> None:
    devices = [f"d{i}" for i in range(2000)]
    assert all(bucket("r1", d) == bucket("r1", d) for d in devices[:50])
    at = {
        p: {d for d in devices if in_rollout(_rollout(percent=p), d, "x", "speaker")}
        for p in (10, 50, 100)
    }
    assert at[10] <= at[50] <= at[100] and len(at[100]) == 2000
    assert 120 <= len(at[10]) <= 280  # about a tenth
    # Another roll-out draws another tenth: the same devices do not always go first.
    other = {d for d in devices if in_rollout(_rollout(id="r2", percent=10), d, "x", "speaker")}
    assert other != at[10]


def test_a_rollout_reaches_only_its_scope() -> None:
    scoped = _rollout(communes=("xa-a",), devices=("d9",), kind="speaker")
    assert in_rollout(scoped, "d1", "xa-a", "speaker")
    assert in_rollout(scoped, "d9", "xa-b", "speaker")
    assert not in_rollout(scoped, "d1", "xa-b", "speaker")
    assert not in_rollout(scoped, "d1", "xa-a", "board")


@pytest.mark.parametrize(
    ("groups", "commune", "device", "kind", "reached"),
    [
        (frozenset({"g1"}), "xa-b", "d1", "speaker", True),  # a member, wherever it is
        (frozenset({"g0", "g1"}), "xa-b", "d1", "speaker", True),
        (frozenset(), "xa-a", "d1", "speaker", False),  # in no group
        (frozenset({"g2"}), "xa-a", "d1", "speaker", False),  # another group's
        (frozenset({"g1"}), "xa-a", "d1", "board", False),  # a member, of another kind
    ],
)
def test_a_group_rollout_reaches_the_group_members_only(
    groups: frozenset[str], commune: str, device: str, kind: str, reached: bool
) -> None:
    grouped = _rollout(group="g1", kind="speaker")
    assert in_rollout(grouped, device, commune, kind, groups) is reached


def test_a_group_rollout_draws_its_share_among_the_members() -> None:
    members = frozenset({"g1"})
    devices = [f"d{i}" for i in range(1000)]
    at = {
        p: {d for d in devices if in_rollout(_rollout(group="g1", percent=p), d, "x", "s", members)}
        for p in (10, 100)
    }
    assert at[10] < at[100] and len(at[100]) == 1000
    assert at[10] == {d for d in devices if bucket("r1", d) < 10}


def test_a_group_rollout_is_offered_only_to_members() -> None:
    grouped = _rollout(id="new", version="0.3.0", group="g1")
    everyone = _rollout(id="old")
    assert offered([grouped, everyone], "d1", "x", "speaker", frozenset({"g1"})) is grouped
    assert offered([grouped, everyone], "d1", "x", "speaker") is everyone
    assert offered([grouped], "d1", "x", "speaker", frozenset({"g9"})) is None


def test_only_an_active_rollout_is_offered_the_newest_first() -> None:
    newest, older = _rollout(id="new", version="0.3.0"), _rollout(id="old")
    assert offered([newest, older], "d1", "x", "speaker") is newest
    paused = replace(newest, state="paused")
    assert offered([paused, older], "d1", "x", "speaker") is older
    assert offered([paused], "d1", "x", "speaker") is None


@pytest.mark.parametrize(
    ("updated", "failed", "share", "minimum", "pauses"),
    [
        (0, 0, 0.2, 1, False),
        (9, 1, 0.2, 1, False),  # 10 %: under the bar
        (8, 2, 0.2, 1, False),  # exactly 20 %: not more than the bar
        (7, 3, 0.2, 1, True),
        (0, 1, 0.2, 1, True),
        (0, 1, 0.2, 5, False),  # too few tried yet to judge
        (1, 4, 0.2, 5, True),
        (5, 0, 0.0, 1, False),
        (5, 1, 0.0, 1, True),  # no failure tolerated
    ],
)
def test_when_a_rollout_pauses_itself(
    updated: int, failed: int, share: float, minimum: int, pauses: bool
) -> None:
    assert (pause_reason(updated, failed, share, minimum) is not None) is pauses


def test_going_back_to_a_release_no_longer_there_ends_on_the_provisioned_one(
    tmp_path: Path,
) -> None:
    releases = _installed(tmp_path, "0.2.0")
    releases.point_current("0.2.0")
    releases.save_state(ReleaseState(pending=_pending(previous="0.1.5", attempts=3)))
    assert prepare_boot(tmp_path, now=101.0) == BASE
    assert releases.current() == BASE
    assert releases.load_state().pending is None


# ---------------------------------------------------------------- a file that does not match


def test_a_mismatched_file_is_left_alone_longer_each_time_up_to_a_day() -> None:
    waits = [mismatch_wait(n) for n in (*range(1, 10), 5000)]
    assert waits[:4] == [15 * 60.0, 30 * 60.0, 60 * 60.0, 120 * 60.0]
    assert waits == sorted(waits)
    assert waits[-1] == MISMATCH_MAX_WAIT_S == 24 * 3600.0
    first = after_mismatch(None, 1000.0)
    assert first == HashRefusal(failures=1, retry_at=1000.0 + 15 * 60)
    second = after_mismatch(first, 5000.0)
    assert second == HashRefusal(failures=2, retry_at=5000.0 + 30 * 60)


@pytest.mark.parametrize(
    ("now", "held"),
    [
        (1000.0, 900.0),  # just refused: the whole wait is left
        (1899.0, 1.0),
        (1900.0, None),  # the wait is over
        (99_999.0, None),
        (1900.0 - MISMATCH_MAX_WAIT_S - 1, None),  # the clock went back further than any wait
    ],
)
def test_when_a_mismatched_file_may_be_fetched_again(now: float, held: float | None) -> None:
    refusal = HashRefusal(failures=1, retry_at=1900.0)
    assert fetch_held_back(refusal, now) == held
    assert fetch_held_back(None, now) is None


def test_the_refusals_of_mismatched_files_survive_a_restart(tmp_path: Path) -> None:
    releases = Releases(tmp_path)
    state = ReleaseState(mismatched={"a" * 64: HashRefusal(failures=3, retry_at=12.5)})
    releases.save_state(state)
    assert releases.load_state() == state
    # A state file written by a release from before these refusals reads as none.
    (tmp_path / "releases" / "state.json").write_text('{"refused": {}, "last": null}')
    assert releases.load_state().mismatched == {}
