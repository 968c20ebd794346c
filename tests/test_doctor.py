"""`edge-agent doctor` against a real hub and agent, and the Pi health probes on fake trees."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.agent import Agent
from edge_agent.cli import PORT_FILE
from edge_agent.local_server import serve_local
from edge_agent.players.null import NullPlayer
from edge_agent.rpi_health import (
    PiHealth,
    ext4_errors,
    mount_of,
    power_state,
    sd_write_probe,
    soc_temperature,
)
from loa_contract import utcnow
from tests.e2e import LiveHub, enroll_agent, schedule, tone_bytes

NAMES = ["profile", "audio", "display", "relay", "hub", "clock", "disk", "power", "cache"]
NAMES += ["outbox", "service"]

# --------------------------------------------------------------- fake /sys and /proc


def _fake_pi(root: Path, *, word: str = "0x0", ro: bool = False, errors: int = 0) -> Path:
    sys_root, proc = root / "sys", root / "proc"
    firmware = sys_root / "devices/platform/soc/soc:firmware"
    firmware.mkdir(parents=True)
    (firmware / "get_throttled").write_text(f"{word[2:]}\n")
    (sys_root / "class/thermal/thermal_zone0").mkdir(parents=True)
    (sys_root / "class/thermal/thermal_zone0/temp").write_text("48312\n")
    (sys_root / "fs/ext4/mmcblk0p2").mkdir(parents=True)
    (sys_root / "fs/ext4/mmcblk0p2/errors_count").write_text(f"{errors}\n")
    proc.mkdir()
    mode = "ro" if ro else "rw"
    (proc / "mounts").write_text(
        "proc /proc proc rw,nosuid 0 0\n"
        f"/dev/mmcblk0p2 / ext4 {mode},noatime 0 0\n"
        "/dev/mmcblk0p1 /boot/firmware vfat rw 0 0\n"
    )
    return root


def test_power_state_reads_the_firmware_word(tmp_path: Path) -> None:
    root = _fake_pi(tmp_path, word="0x50005")
    power = power_state(root / "sys", vcgencmd="")
    assert power.under_voltage and power.throttled and power.source == "sysfs"
    assert power.under_voltage_since_boot and power.throttled_since_boot
    assert soc_temperature(root / "sys") == pytest.approx(48.312)


def test_power_state_falls_back_to_rpi_volt_then_vcgencmd(tmp_path: Path) -> None:
    hwmon = tmp_path / "sys/class/hwmon/hwmon1"
    hwmon.mkdir(parents=True)
    (hwmon / "name").write_text("rpi_volt\n")
    (hwmon / "in0_lcrit_alarm").write_text("1\n")
    power = power_state(tmp_path / "sys", vcgencmd="")
    assert power.under_voltage is True and power.throttled is None and power.source == "rpi_volt"
    tool = tmp_path / "vcgencmd"
    tool.write_text("#!/bin/sh\necho throttled=0x4\n")
    tool.chmod(0o755)
    power = power_state(tmp_path / "sys", vcgencmd=str(tool))
    assert power.source == "vcgencmd" and power.throttled and not power.under_voltage
    assert power_state(tmp_path / "nothing", vcgencmd="").under_voltage is None


def test_sd_card_read_only_flag_and_ext4_errors(tmp_path: Path) -> None:
    root = _fake_pi(tmp_path, ro=True, errors=3)
    mount = mount_of(Path("/var/lib/loa/agent"), root / "proc")
    assert mount is not None and mount.mountpoint == "/" and mount.read_only
    assert mount_of(Path("/boot/firmware/config.txt"), root / "proc").fstype == "vfat"
    assert ext4_errors(mount.device, root / "sys") == 3


def test_write_probe_and_pi_health_faults(tmp_path: Path) -> None:
    assert sd_write_probe(tmp_path).ok
    assert not list(tmp_path.glob(".sd-probe*")), "the probe leaves no file behind"
    root = _fake_pi(tmp_path / "pi", word="0x50005", ro=True, errors=2)
    data = tmp_path / "data"
    data.mkdir()
    health = PiHealth(data, root / "sys", root / "proc", vcgencmd="")
    values, faults = health.sample()
    assert set(faults) == {"under_voltage", "throttled", "sd_read_only", "sd_errors"}
    assert values["throttled_word"] == "0x50005" and values["ext4_errors_total"] == 2
    data.chmod(0o500)  # a card gone bad refuses writes
    try:
        broken = PiHealth(data, tmp_path / "none", tmp_path / "none", vcgencmd="")
        if os.geteuid() != 0:
            assert "sd_write_failed" in broken.sample()[1]
    finally:
        data.chmod(0o700)


# --------------------------------------------------------------- doctor end to end


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _doctor(data: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    env = {
        **os.environ,
        "GPIOZERO_PIN_FACTORY": "mock",
        "SDL_VIDEODRIVER": "dummy",
        "SDL_AUDIODRIVER": "dummy",
        "LOA_LANG": "en",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_agent.cli",
        "doctor",
        "--data",
        str(data),
        "--json",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, json.loads(out), err.decode()


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"]}


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[tuple[LiveHub, Agent, Path]]:
    hub = LiveHub(tmp_path / "hub")
    await hub.start()
    now = utcnow()
    await hub.add_commune("xa-d")
    data = tmp_path / "agent"
    # The agent's own cache check would heal the rotten object this test plants for doctor.
    agent = await enroll_agent(
        hub,
        data,
        commune="xa-d",
        kind="speaker",
        profile="speaker-cluster",
        player=NullPlayer(),
        cache_check_interval_s=3600,
    )
    port = _free_port()
    runner = await serve_local(agent, "127.0.0.1", port)
    (data / PORT_FILE).write_text(str(port))
    media = await hub.upload(tone_bytes(tmp_path, "n", 0.5), "audio/wav")
    await hub.publish(
        {
            "title": "Bản tin",
            "kind": "audio",
            "priority": "normal",
            "media": media["sha256"],
            "targets": {"communes": ["xa-d"]},
            "schedule": schedule(now),
        }
    )
    await agent.wait_until(lambda: agent.cache.has(media["sha256"]), timeout=15)
    try:
        yield hub, agent, data
    finally:
        await runner.cleanup()
        await agent.stop()
        await hub.close()


async def test_doctor_passes_on_a_healthy_agent_and_fails_what_is_broken(
    live: tuple[LiveHub, Agent, Path], tmp_path: Path
) -> None:
    hub, agent, data = live
    code, report, _ = await _doctor(data, "--aout", "dummy")
    checks = _by_name(report)
    assert list(checks) == NAMES
    assert code == 0, report
    assert all(c["status"] in ("pass", "warn") for c in checks.values()), report
    for name in ("profile", "audio", "relay", "hub", "cache", "service", "outbox"):
        assert checks[name]["status"] == "pass", checks[name]
    assert "GPIO 17" in checks["relay"]["detail"]

    # Break three things: a rotten cache object, a sound card that is not there, no hub.
    obj = next((data / "cache" / "objects").iterdir())
    obj.write_bytes(b"rotten" + obj.read_bytes()[6:])
    await hub.stop()
    bundle = tmp_path / "support.tar.gz"
    code, report, _ = await _doctor(
        data, "--aout", "alsa", "--alsa-audio-device", "hw:9,9", "--bundle", str(bundle)
    )
    checks = _by_name(report)
    assert code == 1
    failed = {name for name, c in checks.items() if c["status"] == "fail"}
    assert {"audio", "hub", "cache"} <= failed, report
    assert "hw:9,9" in checks["audio"]["detail"]
    assert obj.name[:12] in checks["cache"]["detail"]
    assert obj.exists()  # doctor reports; it never deletes
    assert all(checks[n]["fix"] for n in ("audio", "hub", "cache"))
    assert checks["clock"]["status"] == "warn"  # nothing to compare with

    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
        config = json.load(tar.extractfile("loa-support/config.json"))  # type: ignore[arg-type]
        health = tar.extractfile("loa-support/health.jsonl").read()  # type: ignore[union-attr]
    assert {f"loa-support/{n}" for n in ("doctor.json", "config.json", "logs.txt")} <= names
    assert "device_secret" not in config["identity"]
    assert agent.identity.device_secret not in json.dumps(config)
    assert isinstance(health, bytes)


async def test_doctor_speaks_vietnamese_by_default(live: tuple[LiveHub, Agent, Path]) -> None:
    _, _, data = live
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock", "SDL_VIDEODRIVER": "dummy"}
    env.pop("LOA_LANG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "edge_agent.cli",
        "doctor",
        "--data",
        str(data),
        "--aout",
        "alsa",
        "--audio-device",
        "hw:9,9",
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 1
    assert "Âm thanh" in text and "Cách khắc phục" in text and "LỖI" in text


async def test_pi_faults_reach_the_health_sample(
    live: tuple[LiveHub, Agent, Path], tmp_path: Path
) -> None:
    _, agent, data = live
    root = _fake_pi(tmp_path / "pi", word="0x1")
    agent.pi_health = PiHealth(data, root / "sys", root / "proc", vcgencmd="")
    sample = await agent.health_fields()
    assert "under_voltage" in sample["faults"]
    assert agent.hardware["under_voltage"] is True and agent.hardware["relay_on"] is False
    assert (await agent.status())["hardware"]["soc_temperature_celsius"] == pytest.approx(48.312)
    assert agent.store is not None
    # The wire model accepts it, values and faults both.
    await agent.store.add_health(sample)
    assert sample["under_voltage"] is True
