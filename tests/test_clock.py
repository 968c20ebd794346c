"""Clock trust: the judge's rules, and issue #4's test 3 against a real hub."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.clock import ClockJudge, Confirmation, NtpProbe
from edge_agent.identity import Identity
from edge_agent.players.null import NullPlayer
from edge_agent.profile import load_profile
from hub.config import HubConfig
from hub.keys import load_or_create_signer
from loa_contract import (
    CommandDocument,
    EmergencyStart,
    Priority,
    Schedule,
    Scope,
    utcnow,
)
from tests.e2e import LiveHub, enroll_agent, fast_config, live_hub, schedule, tone_bytes

T0 = datetime.fromisoformat("2025-03-01T01:00:00+00:00")
BOOT = "boot-a"
TIMEOUT = 15.0


class Fake:
    """A settable system clock and uptime, as a Pi would see them."""

    def __init__(self, now: datetime = T0, uptime: float = 30.0, boot: str = BOOT) -> None:
        self.now = now
        self.uptime = uptime
        self.boot = boot

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.uptime += seconds

    def judge(self, ntp: bool | None = None, **extra: object) -> ClockJudge:
        return ClockJudge(
            lambda: self.now,
            require_confirmation=True,
            ntp=lambda: ntp,
            uptime=lambda: self.uptime,
            boot_id=lambda: self.boot,
            **extra,  # type: ignore[arg-type]
        )


def test_without_confirmation_the_system_clock_is_believed() -> None:
    status = ClockJudge(lambda: T0).status()
    assert status.trusted and status.source == "system"


def test_an_unconfirmed_clock_is_untrusted_until_the_hub_is_seen() -> None:
    fake = Fake(T0 + timedelta(days=1))
    judge = fake.judge()
    judge.refresh_ntp()
    assert not judge.status().trusted and judge.status().source == "waiting"
    assert judge.confirmation() is None
    judge.observe_signed_time(T0, round_trip_s=0.2)
    status = judge.status()
    assert status.trusted and status.source == "hub"
    assert status.offset_s == pytest.approx(-86400 + 0.1)
    assert abs((judge.now() - T0).total_seconds()) < 1


@pytest.mark.parametrize("step_s", [86400.0, -86400.0, 3600.0, -5.0])
def test_a_system_clock_stepped_after_the_hub_was_seen_changes_nothing(step_s: float) -> None:
    # A right clock stepped a day (a wrong RTC read late, a hand), or a wrong one put right by
    # NTP: "now" stays the hub's time carried on the boot clock, not system time + old offset.
    fake = Fake(T0 + timedelta(hours=2))
    judge = fake.judge()
    judge.observe_signed_time(T0, round_trip_s=0.0)
    fake.advance(90)
    assert judge.now() == T0 + timedelta(seconds=90)
    fake.now += timedelta(seconds=step_s)
    assert judge.now() == T0 + timedelta(seconds=90)
    fake.advance(30)
    assert judge.now() == T0 + timedelta(seconds=120)
    status = judge.status()
    assert status.trusted and status.source == "hub"
    assert status.offset_s == pytest.approx(-7200 - step_s)
    saved = judge.confirmation()  # what a restart in this boot takes up again
    assert saved is not None and saved.at == T0 + timedelta(seconds=120)
    again = fake.judge()
    again.restore(saved)
    assert again.status().source == "same_boot" and again.now() == T0 + timedelta(seconds=120)


@pytest.mark.parametrize(
    ("system_ahead_s", "believed"), [(0.0, "system"), (1.5, "system"), (2.5, "hub"), (-3.0, "hub")]
)
def test_the_hub_corrects_the_clock_only_past_two_seconds(
    system_ahead_s: float, believed: str
) -> None:
    # Under two seconds apart the system clock stands (NTP's own slewing, a reply's transit):
    # "now" does not jump back and forth by a reply's jitter.
    fake = Fake(T0 + timedelta(seconds=system_ahead_s))
    for judge in (fake.judge(), ClockJudge(lambda: fake.now, uptime=lambda: fake.uptime)):
        assert not judge.corrected() or not judge.require_confirmation
        judge.observe_signed_time(T0, round_trip_s=0.0)
        assert judge.corrected() and judge.status().source == "hub"
        fake.advance(10)
        expected = fake.now if believed == "system" else T0 + timedelta(seconds=10)
        assert judge.now() == expected
        fake.advance(-10)


def test_ntp_synchronized_is_trusted_without_correction() -> None:
    judge = Fake().judge(ntp=True)
    assert not judge.status().trusted  # nothing asked yet
    assert judge.refresh_ntp() is True
    assert judge.status().source == "ntp" and judge.now() == T0
    confirmation = judge.confirmation()
    assert confirmation is not None and confirmation.offset_s == 0.0


def test_a_restart_in_the_same_boot_keeps_the_hub_offset() -> None:
    fake = Fake(T0 + timedelta(hours=3))
    first = fake.judge()
    first.observe_signed_time(T0)
    saved = first.confirmation()
    assert saved is not None
    fake.advance(600)  # the agent restarts ten minutes later, same kernel
    again = fake.judge()
    again.restore(Confirmation.from_json(saved.to_json()))
    assert again.status().source == "same_boot"
    assert abs((again.now() - (T0 + timedelta(seconds=600))).total_seconds()) < 1

    fake.now += timedelta(days=1)  # someone sets the clock by hand: the old offset means nothing
    stepped = fake.judge()
    stepped.restore(saved)
    assert not stepped.status().trusted and stepped.status().source == "stepped"


def test_after_a_power_cut_only_a_plausible_clock_is_trusted() -> None:
    fake = Fake()
    confirmed = fake.judge(ntp=True)
    confirmed.refresh_ntp()
    saved = confirmed.confirmation()  # L = T0
    assert saved is not None
    died = T0 + timedelta(seconds=60)
    last_alive = died - timedelta(seconds=20)  # persisted every minute by the raw clock

    def boot(clock_at_boot: datetime, uptime: float = 5.0) -> str:
        after = Fake(clock_at_boot + timedelta(seconds=uptime), uptime=uptime, boot="boot-b")
        judge = after.judge()
        judge.restore(saved, last_alive)
        judge.refresh_ntp()
        return judge.status().source

    # A clock that kept time (an RTC) across a two-hour cut: the 2 s cold start still holds.
    assert boot(died + timedelta(hours=2)) == "plausible"
    # fake-hwclock / timesyncd restore the last saved time, from before the power went.
    assert boot(died - timedelta(seconds=5)) == "restored"
    assert boot(died - timedelta(minutes=50)) == "behind"
    # A day ahead (or a Pi back in 1970) is never trusted.
    assert boot(died + timedelta(days=1, minutes=10)) == "ahead"
    assert boot(datetime.fromisoformat("1970-01-01T00:00:00+00:00")) == "behind"
    # An outage longer than the limit cannot be told from a clock running ahead: wait.
    assert boot(died + timedelta(days=2)) == "ahead"


def test_ntp_probe_reads_the_flag_file_or_the_command(tmp_path: Path) -> None:
    flag = tmp_path / "timesync" / "synchronized"
    flag.parent.mkdir()
    assert NtpProbe([flag])() is False
    flag.touch()
    assert NtpProbe([flag])() is True
    missing = tmp_path / "none" / "synchronized"
    assert NtpProbe([missing])() is None
    say = [sys.executable, "-c"]
    assert NtpProbe([missing], command=[*say, "print('yes')"])() is True
    assert NtpProbe([missing], command=[*say, "print('no')"])() is False
    assert NtpProbe([missing], command=[*say, "raise SystemExit(1)"])() is None
    assert NtpProbe([missing], command=[str(tmp_path / "no-such-tool")])() is None


def test_a_damaged_confirmation_is_ignored() -> None:
    assert Confirmation.from_json("{not json") is None
    assert Confirmation.from_json('{"at": "x"}') is None


# ---------------------------------------------------------------- issue #4, test 3


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as live:
        yield live


async def _next(agent: Agent) -> str:
    item = await asyncio.wait_for(agent.play_started.get(), TIMEOUT)
    return item.bulletin_id


async def test_a_clock_a_day_off_holds_windowed_items_but_not_emergencies(
    hub: LiveHub, tmp_path: Path
) -> None:
    now = utcnow()
    await hub.add_commune("xa-c")
    data = tmp_path / "speaker"
    # The previous boot: the agent synced a windowed bulletin and aired it once.
    first = await enroll_agent(
        hub,
        data,
        commune="xa-c",
        kind="speaker",
        profile="speaker-cluster",
        player=NullPlayer(default_duration_s=0.2),
    )
    audio = await hub.upload(tone_bytes(tmp_path, "n", 0.3), "audio/wav")
    normal = await hub.publish(
        {
            "title": "Lịch tiêm phòng",
            "kind": "audio",
            "priority": "normal",
            "media": audio["sha256"],
            "targets": {"communes": ["xa-c"]},
            "schedule": schedule(now, repeats=20),
        }
    )
    try:
        assert await _next(first) == normal["id"]
        manifest = first.manifest
        assert manifest is not None
    finally:
        await first.stop()

    # The hub is out of reach and the system clock is a day ahead.
    await hub.stop()
    skewed = ClockJudge(
        lambda: utcnow() + timedelta(days=1), require_confirmation=True, ntp=lambda: None
    )
    agent = Agent(
        fast_config(data),
        Identity.load(data),
        load_profile("speaker-cluster"),
        NullPlayer(default_duration_s=0.2),
        clock=skewed,
    )
    await agent.start()
    try:
        await agent.wait_until(lambda: agent.status_reason() == "clock not trusted", TIMEOUT)
        status = await agent.status()
        assert status["clock"]["trusted"] is False
        assert status["clock"]["source"] == "stepped"  # same boot, clock moved since confirmed
        assert status["now_playing"] is None and agent.play_started.empty()

        # A signed emergency pushed now plays at once, judged on the device's own timeline.
        signer = load_or_create_signer(HubConfig(data_dir=hub.data_dir).key_path)
        issued = utcnow()
        alarm = manifest.bulletins[0].model_copy(
            update={
                "id": "alarm-" + uuid.uuid4().hex[:6],
                "title": "Cảnh báo lũ",
                "priority": Priority.EMERGENCY,
                "schedule": Schedule(valid_from=issued, valid_until=issued + timedelta(hours=1)),
            }
        )
        command = EmergencyStart(
            command_id=uuid.uuid4().hex,
            scope=Scope(devices=[agent.identity.device_id]),
            issued_at=issued,
            expires_at=issued + timedelta(minutes=5),
            bulletin=alarm,
        )
        await agent.sync.handle_push(
            signer.sign(CommandDocument(command=command)).model_dump_json()
        )
        assert await _next(agent) == alarm.id
        await agent.wait_until(lambda: agent.now_playing() is None, TIMEOUT)
        assert agent.status_reason() == "clock not trusted"
        assert agent.play_started.empty(), "nothing windowed starts after the emergency"

        # The hub comes back: its Date header corrects the clock and the programme resumes.
        await hub.start()
        assert await _next(agent) == normal["id"]
        status = await agent.status()
        assert status["clock"]["trusted"] is True and status["clock"]["source"] == "hub"
        assert status["clock"]["offset_s"] == pytest.approx(-86400, abs=5)
    finally:
        await agent.stop()


async def test_a_clock_jump_mid_airing_does_not_stretch_the_proof_of_play(
    hub: LiveHub, tmp_path: Path
) -> None:
    """Issue #9 point 5: how long an item played is measured on the monotonic clock. The
    system clock leaps a day ahead while a 0.3 s item airs; the proof says about 0.3 s."""
    jump = timedelta(0)

    def system() -> datetime:
        return utcnow() + jump

    await hub.add_commune("xa-c")
    player = NullPlayer(default_duration_s=0.3)
    agent = await enroll_agent(
        hub,
        tmp_path / "speaker",
        commune="xa-c",
        kind="speaker",
        profile="speaker-cluster",
        player=player,
        start=False,
        require_clock_confirmation=False,
    )
    agent.clock = ClockJudge(system, require_confirmation=False, ntp=lambda: None)
    await agent.start()
    try:
        audio = await hub.upload(tone_bytes(tmp_path, "t", 0.3), "audio/wav")
        item = await hub.publish(
            {
                "title": "Lịch cắt điện",
                "kind": "audio",
                "priority": "normal",
                "media": audio["sha256"],
                "targets": {"communes": ["xa-c"]},
                "schedule": schedule(
                    utcnow(), repeats=1, valid_until=(utcnow() + timedelta(days=3)).isoformat()
                ),
            }
        )
        assert await _next(agent) == item["id"]
        jump = timedelta(days=1)  # the same hour of a valid day: it plays on
        assert agent.store is not None
        store = agent.store

        async def closed() -> bool:
            return any(p.bulletin_id == item["id"] for p in await store.recent_plays(100))

        await agent.wait_until(closed, TIMEOUT)
        proof = next(p for p in await store.recent_plays(100) if p.bulletin_id == item["id"])
        seconds = (proof.ended_at - proof.started_at).total_seconds()
        assert 0.25 <= seconds < 5.0, seconds
    finally:
        await agent.stop()
