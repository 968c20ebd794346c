"""Health a technician can act on: the agent fills the wire sample, the hub judges it.

A real agent (null player behind a PlayerRouter, a fake /sys and /proc for the Pi probes)
reports to a real hub over a real socket; the hub's fleet API shows the fields and the
verdict.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from edge_agent.agent import Agent
from edge_agent.players.base import PlayerHealth
from edge_agent.players.null import NullPlayer
from edge_agent.players.router import PlayerRouter
from edge_agent.rpi_health import WIRE_FIELDS, PiHealth
from hub.appkeys import DB
from loa_contract import BulletinKind, Fault, HealthSample
from tests.e2e import LiveHub, enroll_agent, live_hub

COMMUNE = "xa-h"


def fake_pi(root: Path, *, word: str, errors: int = 0, read_only: bool = False) -> Path:
    """The files a Pi's kernel and firmware driver expose, as PiHealth reads them."""
    sys_root, proc = root / "sys", root / "proc"
    firmware = sys_root / "devices/platform/soc/soc:firmware"
    firmware.mkdir(parents=True)
    (firmware / "get_throttled").write_text(f"{word}\n")
    (sys_root / "class/thermal/thermal_zone0").mkdir(parents=True)
    (sys_root / "class/thermal/thermal_zone0/temp").write_text("71500\n")
    (sys_root / "fs/ext4/mmcblk0p2").mkdir(parents=True)
    (sys_root / "fs/ext4/mmcblk0p2/errors_count").write_text(f"{errors}\n")
    proc.mkdir()
    mode = "ro" if read_only else "rw"
    (proc / "mounts").write_text(f"/dev/mmcblk0p2 / ext4 {mode},noatime 0 0\n")
    return root


class AilingPlayer(NullPlayer):
    """A backend whose own checks found something (a null player otherwise)."""

    def __init__(
        self, *, stuck_stops: int = 0, faults: tuple[Fault, ...] = (), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.found = PlayerHealth(self.state, stuck_stops, faults)

    def health(self) -> PlayerHealth:
        return replace(self.found, state=self.state)


class OnRelay:
    """An amplifier relay that is switched on (the agent only reads `is_on` here)."""

    is_on = True

    async def before_audio(self, emergency: bool) -> None:
        return None

    def audio_ended(self) -> None:
        return None

    def close(self) -> None:
        return None


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as live:
        await live.add_commune(COMMUNE)
        yield live


async def _agent(hub: LiveHub, data: Path, player: object) -> Agent:
    return await enroll_agent(
        hub,
        data,
        commune=COMMUNE,
        kind="speaker",
        profile="speaker-cluster",
        player=player,  # type: ignore[arg-type]
        start=False,
    )


async def test_agent_sample_carries_pi_player_and_relay_state_to_the_hub(
    hub: LiveHub, tmp_path: Path
) -> None:
    # Two stops the sound backend had to abandon; the screen's own check found it blank.
    audio = AilingPlayer(kinds=[BulletinKind.AUDIO, BulletinKind.VIDEO], stuck_stops=2)
    screen = AilingPlayer(
        kinds=[BulletinKind.TEXT, BulletinKind.IMAGE], faults=(Fault.SCREEN_BLANK,)
    )
    data = tmp_path / "agent"
    agent = await _agent(hub, data, PlayerRouter([audio, screen]))
    # 0x50005: under-voltage and throttled now, and both since boot (the firmware's bits).
    pi = fake_pi(tmp_path / "pi", word="50005", errors=2)
    agent.pi_health = PiHealth(data, pi / "sys", pi / "proc", vcgencmd="")
    agent.relay = OnRelay()
    await agent.start()  # the health loop samples and reports at once
    try:
        fields = await agent.health_fields()
        sample = HealthSample.model_validate({**fields, "seq": 1})
        assert sample.under_voltage is True and sample.under_voltage_since_boot is True
        assert sample.throttled is True and sample.throttled_since_boot is True
        assert sample.filesystem_readonly is False and sample.ext4_errors_total == 2
        assert sample.sd_write_ok is True and sample.sd_write_seconds is not None
        assert sample.relay_on is True
        assert sample.player_stuck_stops_total == 2
        assert {"under_voltage", "throttled", "sd_errors", "screen_blank"} <= set(sample.faults)
        assert sample.faults.count("screen_blank") == 1
        assert sample.temperature_celsius is not None
        # The local status keeps what the wire does not carry.
        assert agent.hardware["throttled_word"] == "0x50005"
        assert agent.hardware["soc_temperature_celsius"] == pytest.approx(71.5)
        assert not list(data.glob(".sd-probe*")), "the write probe leaves nothing behind"

        async def hub_holds_it() -> bool:
            row = await hub.app[DB].fetchone(
                "SELECT last_health_json FROM devices WHERE id = ?", (agent.identity.device_id,)
            )
            return row is not None and row[0] is not None

        await agent.wait_until(hub_holds_it, timeout=15)
        listed = await hub.call("GET", "/api/v1/devices")
        device = next(d for d in listed if d["id"] == agent.identity.device_id)
        health = device["health"]
        for name in WIRE_FIELDS:
            assert name in health, name
        assert health["under_voltage"] is True and health["ext4_errors_total"] == 2
        assert health["relay_on"] is True and health["player_stuck_stops_total"] == 2
        assert device["verdict"] == "fault"
        reasons = device["verdict_reasons"]
        assert {"under_voltage", "screen_blank", "temperature_high", "sd_errors"} <= set(reasons)
        assert {"throttled", "player_stuck"} <= set(reasons)
        # Worst first: every fault before the first warning.
        assert reasons.index("under_voltage") < reasons.index("throttled")
        assert reasons.index("screen_blank") < reasons.index("sd_errors")

        only_faults = await hub.call("GET", "/api/v1/devices?verdict=fault")
        assert [d["id"] for d in only_faults] == [agent.identity.device_id]
        assert await hub.call("GET", "/api/v1/devices?verdict=ok") == []
    finally:
        await agent.stop()


async def test_a_plain_device_reports_what_it_cannot_tell_as_unknown(
    hub: LiveHub, tmp_path: Path
) -> None:
    # No Pi probes, no relay, a player with no screen check: None, not a guessed False.
    agent = await _agent(hub, tmp_path / "plain", NullPlayer())
    await agent.start()
    try:
        fields = await agent.health_fields()
        sample = HealthSample.model_validate({**fields, "seq": 1})
        assert sample.under_voltage is None and sample.filesystem_readonly is None
        assert sample.sd_write_ok is None and sample.relay_on is None
        assert sample.player_stuck_stops_total == 0
        assert not {"screen_blank", "screen_frozen"} & set(sample.faults)
        stored = await agent.store.add_health(fields)  # type: ignore[union-attr]
        assert json.loads(stored.model_dump_json())["relay_on"] is None
    finally:
        await agent.stop()


async def test_a_read_only_card_skips_the_write_probe_and_is_a_fault(
    hub: LiveHub, tmp_path: Path
) -> None:
    data = tmp_path / "ro"
    agent = await _agent(hub, data, NullPlayer())
    pi = fake_pi(tmp_path / "pi", word="0", read_only=True)
    agent.pi_health = PiHealth(data, pi / "sys", pi / "proc", vcgencmd="")
    await agent.start()
    try:
        sample = HealthSample.model_validate({**await agent.health_fields(), "seq": 1})
        assert sample.filesystem_readonly is True and "sd_read_only" in sample.faults
        # Writing to a card the kernel made read-only proves nothing and would only fail.
        assert sample.sd_write_ok is None
        assert sample.under_voltage is False and sample.under_voltage_since_boot is False
    finally:
        await agent.stop()
