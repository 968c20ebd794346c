"""`edge-agent simulate`: real agents in real child processes against a real hub on 127.0.0.1,
and the pure figures it prints. Small fleets: the benches in bench/ run the big ones."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import pstats
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from edge_agent.simulate import (
    add_arguments,
    check_options,
    cpu_percent,
    format_summary,
    loop_settled,
    peak_cpu,
    percentile,
    ramp_seconds,
    shares,
)
from hub.testing import HubHarness, running_hub
from tests.e2e import ADMIN, ADMIN_PASSWORD, LiveHub, live_hub

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------- pure figures


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 51.0  # rank round(0.5 * 99) = 50 (0-based)
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile(values, 0) == 1.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    with pytest.raises(ValueError):
        percentile([], 50)


@pytest.mark.parametrize("count", [1, 2, 7, 20, 1000, 10_001])
@pytest.mark.parametrize("procs", [1, 2, 3, 8, 64])
def test_shares_cover_every_device_once_and_evenly(count: int, procs: int) -> None:
    split = shares(count, procs)
    assert len(split) == min(count, procs)
    assert [i for share in split for i in share] == list(range(count))
    sizes = [len(share) for share in split]
    assert max(sizes) - min(sizes) <= 1


def _sample(pid: int, at: float, user: float, system: float) -> dict[str, Any]:
    return {"pid": pid, "at": at, "cpu_user_s": user, "cpu_system_s": system}


def test_cpu_percent_is_of_one_core_and_void_across_a_restart() -> None:
    assert cpu_percent(_sample(1, 100.0, 1.0, 0.5), _sample(1, 110.0, 3.0, 1.5)) == 30.0
    assert cpu_percent(_sample(1, 100.0, 1.0, 0.0), _sample(2, 110.0, 0.1, 0.0)) is None
    assert cpu_percent(_sample(1, 100.0, 1.0, 0.0), _sample(1, 100.0, 1.0, 0.0)) is None
    samples = [
        _sample(1, 0.0, 0.0, 0.0),
        _sample(1, 1.0, 0.2, 0.0),  # 20 %
        _sample(2, 2.0, 0.1, 0.0),  # restarted: no span
        _sample(2, 3.0, 0.9, 0.1),  # 90 %
        _sample(2, 5.0, 1.0, 0.2),  # 10 %
    ]
    assert peak_cpu(samples) == pytest.approx(90.0)
    assert peak_cpu(samples[:1]) is None


def _args(*extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lang", default="vi")
    add_arguments(parser)
    base = ["--hub", "http://127.0.0.1:1", "--devices", "4", "--scenario", "emergency"]
    return parser.parse_args([*base, "--user", "a", "--password-stdin", *extra])


@pytest.mark.parametrize(
    ("extra", "name"),
    [
        (["--procs", "0"], "--procs"),
        (["--procs", "5"], "--procs"),
        (["--devices", "0"], "--devices"),
        (["--interval", "0"], "--interval"),
        (["--duration", "-1"], "--duration"),
        (["--emergencies", "0"], "--emergencies"),
        (["--hub", "127.0.0.1:8080"], "--hub"),
        (["--commune", " "], "--commune"),
        (["--commune", "<x>"], "--commune"),
        (["--commune", "x" * 33], "--commune"),
        (["--ramp", "-1"], "--ramp"),
    ],
)
def test_bad_options_are_named(extra: list[str], name: str) -> None:
    bad = check_options(_args(*extra))
    assert bad is not None
    assert bad[0] == "sim_bad_arg" and bad[1]["name"] == name
    assert check_options(_args("--procs", "4")) is None


async def test_the_next_emergency_waits_for_a_quiet_loop() -> None:
    """A process still busy (a fresh fleet hashing its media, say) is not timed on: the wait
    ends only after the loop has woken on time for a while, and gives up at its timeout."""
    loop = asyncio.get_running_loop()
    busy_until = loop.time() + 0.4
    last_held = 0.0

    async def hog() -> None:  # holds the loop 60 ms at a time, as a burst of agents would
        nonlocal last_held
        while loop.time() < busy_until:
            held_until = loop.time() + 0.06
            while loop.time() < held_until:
                pass
            last_held = loop.time()
            await asyncio.sleep(0)

    hogging = asyncio.create_task(hog())
    assert await loop_settled(0.2, timeout=30.0)
    assert hogging.done()
    assert loop.time() - last_held >= 0.2

    busy_until = loop.time() + 3600.0
    hogging = asyncio.create_task(hog())
    try:
        assert not await loop_settled(0.2, timeout=0.5)
    finally:
        busy_until = 0.0
        await hogging


def test_agents_start_over_a_ramp() -> None:
    assert ramp_seconds(_args("--devices", "5000")) == 50.0
    assert ramp_seconds(_args("--ramp", "0")) == 0.0
    health = _args("--scenario", "health", "--interval", "60")
    assert ramp_seconds(health) == 60.0


def _fleet_result(scenario: str) -> dict[str, Any]:
    """What every scenario's result says of its fleet: 100 devices over 2 processes."""
    return {
        "scenario": scenario,
        "hub": "http://hub",
        "commune": "xa",
        "devices": 100,
        "procs": 2,
        "reused": 100,
        "never_connected": 0,
    }


def test_summary_reads_in_vietnamese_and_english() -> None:
    result = {
        **_fleet_result("health"),
        "interval_s": 60.0,
        "duration_s": 180.0,
        "connected": 100,
        "connected_before": 0,
        "hub_cpu_percent": 1.0,
        "hub_cpu_peak_percent": 2.5,
        "hub_rss_bytes": 100 * 2**20,
        "hub_rss_before_bytes": 90 * 2**20,
        "hub_rss_per_device_bytes": 10 * 1024,
        "health_reports": 300,
        "health_failures": 0,
        "health_p50_ms": 3.0,
        "health_p99_ms": 20.0,
    }
    vi = format_summary(result, "vi")
    assert "10 KB bộ nhớ mỗi thiết bị" in vi and "p99 20 ms" in vi
    # 1 % for 100 devices every 60 s -> 100 % for 10,000; memory 90 MiB + 10,000 x 10 KiB.
    assert "Ước tính cho 10.000 thiết bị" in vi and "100% một lõi" in vi and "188 MB" in vi
    en = format_summary(result, "en")
    assert "10 KB of memory per device" in en and "Estimate for 10,000 devices" in en
    assert "only" not in en
    partly = format_summary({**result, "never_connected": 7}, "en")
    assert "WARNING: only 93/100 devices reached the hub" in partly


def test_an_emergency_timed_on_a_busy_simulator_is_said() -> None:
    figures = dict.fromkeys(
        ["p50_ms", "p99_ms", "max_ms", "arrival_p50_ms", "arrival_p99_ms", "api_p50_ms"], 1.0
    )
    result = {
        **_fleet_result("emergency"),
        "emergencies": 3,
        "missed": 0,
        "cancel_missed": 0,
        "unsettled": 0,
        "api_max_ms": 1.0,
        **figures,
    }
    assert "busy" not in format_summary({**result, "busy_starts": 0}, "en")
    assert "WARNING: 2 emergencies were fired while a simulator process was still busy" in (
        format_summary({**result, "busy_starts": 2}, "en")
    )
    assert "CẢNH BÁO: 2 lượt khẩn cấp" in format_summary({**result, "busy_starts": 2}, "vi")


# ---------------------------------------------------------------------------- real runs


async def _simulate(
    *args: str,
    password: str = ADMIN_PASSWORD,
    on_line: Any = None,
    env: dict[str, str] | None = None,
) -> tuple[int, str, str]:
    """`edge-agent simulate` as an operator runs it, in its own process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_agent.cli",
        "--lang",
        "en",
        "simulate",
        *args,
        "--user",
        ADMIN,
        "--password-stdin",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert process.stdin is not None and process.stderr is not None
    process.stdin.write(f"{password}\n".encode())
    await process.stdin.drain()
    process.stdin.close()
    errors: list[str] = []

    async def read_errors() -> None:
        assert process.stderr is not None
        while line := await process.stderr.readline():
            text = line.decode()
            errors.append(text)
            if on_line is not None:
                await on_line(text)

    assert process.stdout is not None
    async with asyncio.timeout(240):
        out, _ = await asyncio.gather(process.stdout.read(), read_errors())
        code = await process.wait()
    return code, out.decode(), "".join(errors)


async def test_emergency_over_two_processes_then_the_same_devices_again(tmp_path: Path) -> None:
    async with live_hub(tmp_path / "hub") as hub:
        common = [
            "--hub", hub.url, "--procs", "2", "--scenario", "emergency", "--json",
            "--manifest-jitter", "0.5",
        ]  # fmt: skip
        data = ["--data", str(tmp_path / "sim"), "--commune", "xa-mo-phong"]
        code, out, err = await _simulate(*common, *data, "--devices", "20", "--emergencies", "2")
        assert code == 0, err
        result = json.loads(out)
        assert result["devices"] == 20 and result["procs"] == 2 and result["reused"] == 0
        assert result["missed"] == 0 and result["emergencies"] == 2
        assert result["busy_starts"] == 0  # each emergency found its processes quiet
        assert 0 < result["arrival_p50_ms"] <= result["p50_ms"] <= result["p99_ms"]
        assert result["p99_ms"] <= result["max_ms"]
        assert 0 < result["api_p50_ms"] <= result["api_max_ms"]
        # The commune was created with windows open all day.
        commune = await hub.call("GET", "/api/v1/communes/xa-mo-phong")
        day = [{"start": "00:00", "end": "12:00"}, {"start": "12:00", "end": "00:00"}]
        assert commune["windows"]["speaker"] == day

        # Again, one device more: the twenty are reused, one is enrolled. Profiled: each
        # child writes where its emergency path spent its CPU.
        profiles = tmp_path / "profiles"
        profiles.mkdir()
        code, out, err = await _simulate(
            *common,
            *data,
            "--devices",
            "21",
            "--emergencies",
            "1",
            env={"LOA_SIM_PROFILE": str(profiles)},
        )
        assert code == 0, err
        again = json.loads(out)
        assert again["reused"] == 20 and again["devices"] == 21 and again["missed"] == 0
        devices = await hub.call("GET", "/api/v1/devices")
        assert len([d for d in devices if d["commune"] == "xa-mo-phong"]) == 21
        figures = [json.loads(f.read_text()) for f in sorted(profiles.glob("child-*.json"))]
        assert len(figures) == 2 and len(list(profiles.glob("child-*.prof"))) == 2
        assert sorted(f["devices"] for f in figures) == [10, 11]
        for f in figures:
            assert f["emergencies"] >= 1 and f["cpu_s"] > 0
            assert f["cpu_ms_per_device_and_emergency"] > 0
            assert set(f["gc"]) == {"gen0", "gen1", "gen2"}
        stats = pstats.Stats(str(next(profiles.glob("child-*.prof"))))
        assert any(name == "handle_push" for _, _, name in stats.stats)  # type: ignore[attr-defined]


async def test_health_reports_hub_figures_per_device(tmp_path: Path) -> None:
    async with live_hub(tmp_path / "hub") as hub:
        code, out, err = await _simulate(
            "--hub", hub.url, "--devices", "6", "--procs", "2", "--scenario", "health",
            "--interval", "1", "--duration", "3", "--data", str(tmp_path / "sim"),
        )  # fmt: skip
        assert code == 0, err
        assert "Health every 1 s for" in out and "KB of memory per device" in out
        assert "Estimate for 10,000 devices" in out


async def test_outage_waits_for_the_operator_and_times_the_return(tmp_path: Path) -> None:
    hub = LiveHub(tmp_path / "hub")
    await hub.start()
    restarted = asyncio.Event()

    async def operator(line: str) -> None:
        if line.startswith("Waiting: restart the hub now"):
            await hub.stop()
            await hub.start()
            restarted.set()

    try:
        code, out, err = await _simulate(
            "--hub", hub.url, "--devices", "8", "--procs", "2", "--scenario", "outage",
            "--json", "--data", str(tmp_path / "sim"), "--timeout", "120", on_line=operator,
        )  # fmt: skip
    finally:
        await hub.close()
    assert restarted.is_set(), err
    assert code == 0, err
    result = json.loads(out)
    assert result["reconnected"] == 8 and result["missed"] == 0
    assert result["all_back_after_loss_s"] >= result["back_p50_after_loss_s"] > 0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_hub_and_a_wrong_password_are_said_plainly(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    base = ["--devices", "2", "--scenario", "emergency", "--data", str(tmp_path / "sim")]
    code, out, err = await _simulate("--hub", url, *base)
    assert code == 3 and out == ""
    assert f"Cannot reach the hub {url}" in err
    async with live_hub(tmp_path / "hub") as hub:
        code, out, err = await _simulate("--hub", hub.url, *base, password="Wrong-pass-1!")
        assert code == 3 and out == ""
        assert f"The hub refused the sign-in of {ADMIN}" in err
        # Nothing was created with a refused sign-in.
        assert await hub.call("GET", "/api/v1/devices") == []
    code, _, err = await _simulate("--hub", url, *base, "--procs", "3")
    assert code == 2 and "Bad argument --procs" in err


async def test_hub_process_figures_are_for_the_admin_only(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        figures = await hub.call("GET", "/api/v1/hub/process")
        assert figures["pid"] == os.getpid()
        assert figures["rss_bytes"] > 10 * 2**20 and figures["connected_devices"] == 0
        assert figures["handshakes_waiting"] == 0
        assert figures["cpu_user_s"] > 0 and figures["threads"] >= 1
        # The collector's full collections are counted, with their pauses.
        await asyncio.to_thread(gc.collect)
        after = await hub.call("GET", "/api/v1/hub/process")
        # At least ours: the test process may have run one of its own meanwhile.
        assert after["gc_full_collections"] >= figures["gc_full_collections"] + 1
        assert after["gc_seconds_total"] >= figures["gc_seconds_total"]
        assert 0 < after["gc_pause_max_s"] < 60
        device = await hub.new_device(commune=(await hub.commune())["code"])
        async with device.socket():
            await _wait_connected(hub, 1)
        reviewer: HubHarness = await hub.user("thamdinh", "reviewer")
        await reviewer.call("GET", "/api/v1/hub/process", expect=403)


async def _wait_connected(hub: HubHarness, count: int) -> None:
    # The socket is registered before the handshake answers; one read confirms it.
    figures = await hub.call("GET", "/api/v1/hub/process")
    assert figures["connected_devices"] == count
