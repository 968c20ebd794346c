"""The amplifier relay on gpiozero's mock pins, and the agent driving it around audio."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPin

from edge_agent.profile import load_profile
from edge_agent.relay import AmplifierRelay, NullRelay, build_relay
from edge_agent.sdnotify import Watchdog, notify
from loa_contract import Fault

PIN = 17


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    pins = MockFactory()
    yield pins
    pins.reset()


async def test_pin_goes_high_before_audio_with_the_preroll_and_low_after_idle(
    factory: MockFactory,
) -> None:
    relay = AmplifierRelay(PIN, pre_roll_s=0.05, idle_off_s=0.05, pin_factory=factory)
    pin = factory.pin(PIN)
    assert pin.state is False
    began = time.monotonic()
    await relay.before_audio(emergency=False)
    assert pin.state is True
    assert time.monotonic() - began >= 0.05  # the amplifier got its pre-roll
    relay.audio_ended()
    async with asyncio.timeout(2):
        await relay.wait_for(False)
    assert pin.state is False
    assert [s.state for s in pin.states] == [False, True, False]
    relay.close()


async def test_already_on_returns_at_once_and_new_audio_disarms_the_switch_off(
    factory: MockFactory,
) -> None:
    relay = AmplifierRelay(PIN, pre_roll_s=5.0, idle_off_s=0.05, pin_factory=factory)
    relay._on_since = time.monotonic() - 10  # switched on long ago
    relay._device.on()
    relay.audio_ended()
    async with asyncio.timeout(0.5):  # no 5 s pre-roll on this path: emergency latency
        await relay.before_audio(emergency=True)
    assert relay._idle_timer is None
    assert factory.pin(PIN).state is True
    relay.close()
    assert factory.pin(PIN).state is False


async def test_a_second_caller_during_the_preroll_waits_only_for_its_rest(
    factory: MockFactory,
) -> None:
    relay = AmplifierRelay(PIN, pre_roll_s=0.1, idle_off_s=1, pin_factory=factory)
    first = asyncio.create_task(relay.before_audio(False))
    await asyncio.sleep(0)  # let the first switch it on
    await relay.before_audio(True)
    await first
    assert relay.switch_ons == 1
    relay.close()


async def test_emergency_switches_an_off_relay_on(factory: MockFactory) -> None:
    relay = AmplifierRelay(PIN, active_high=False, pre_roll_s=0, idle_off_s=1, pin_factory=factory)
    assert factory.pin(PIN).state is True  # active-low: off is a high pin
    await relay.before_audio(emergency=True)
    assert relay.is_on and factory.pin(PIN).state is False
    relay.close()


def test_profile_without_relay_gets_a_null_relay(factory: MockFactory) -> None:
    assert isinstance(build_relay(load_profile("led-board-p10"), factory), NullRelay)
    relay = build_relay(load_profile("speaker-cluster"), factory)
    assert isinstance(relay, AmplifierRelay) and relay.gpio_pin == 17
    relay.close()


async def test_the_agent_switches_the_amplifier_around_audio(
    tmp_path: Path, factory: MockFactory
) -> None:
    from edge_agent.players.null import NullPlayer
    from loa_contract import utcnow
    from tests.e2e import LiveHub, enroll_agent, schedule, tone_bytes

    hub = LiveHub(tmp_path / "hub")
    await hub.start()
    relay = AmplifierRelay(PIN, pre_roll_s=0.02, idle_off_s=0.05, pin_factory=factory)
    agent = None
    try:
        now = utcnow()
        await hub.add_commune("xa-r")
        agent = await enroll_agent(
            hub,
            tmp_path / "agent",
            commune="xa-r",
            kind="speaker",
            profile="speaker-cluster",
            player=NullPlayer(),
            start=False,
        )
        agent.relay = relay
        await agent.start()
        media = await hub.upload(tone_bytes(tmp_path, "a", 0.2), "audio/wav")
        await hub.publish(
            {
                "title": "Thông báo",
                "kind": "audio",
                "priority": "normal",
                "media": media["sha256"],
                "targets": {"communes": ["xa-r"]},
                "schedule": schedule(now),
            }
        )
        async with asyncio.timeout(10):
            await agent.play_started.get()
        assert factory.pin(PIN).state is True  # on before the audio began
        agent.request("stop")
        async with asyncio.timeout(5):
            await relay.wait_for(False)
    finally:
        if agent is not None:
            await agent.stop()
        await hub.close()
    assert factory.pin(PIN).state is False


def test_sd_notify_sends_one_datagram(tmp_path: Path) -> None:
    import socket

    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(address)
        assert notify("READY=1", {"NOTIFY_SOCKET": address})
        assert server.recv(100) == b"READY=1"
        dog = Watchdog({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"})
        assert dog.interval_s == 1.0
        dog.feed()
        assert server.recv(100) == b"WATCHDOG=1"
    assert notify("READY=1", {}) is False
    assert Watchdog({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}).interval_s is None


def test_gpiozero_default_factory_is_untouched() -> None:
    # The tests inject factories; nothing here may install a global one for other tests.
    assert Device.pin_factory is None or not isinstance(Device.pin_factory, MockFactory)


class DeadPin(MockPin):
    """A GPIO line whose writes fail once `dead` is set (a kernel driver gone, EIO)."""

    dead = False

    def _set_state(self, value: bool) -> None:
        if self.dead:
            raise OSError(5, "Input/output error")
        super()._set_state(value)


async def test_a_relay_that_cannot_switch_is_reported_and_the_emergency_plays_anyway(
    tmp_path: Path,
) -> None:
    from edge_agent.players.null import NullPlayer
    from edge_agent.speech import EspeakEngine
    from loa_contract import Priority
    from tests.e2e import LiveHub, enroll_agent

    pins = MockFactory(pin_class=DeadPin)
    relay = AmplifierRelay(PIN, pre_roll_s=0.02, idle_off_s=0.05, pin_factory=pins)
    pin = pins.pin(PIN)
    assert isinstance(pin, DeadPin)
    pin.dead = True
    hub = LiveHub(tmp_path / "hub")
    await hub.start()
    agent = None
    try:
        await hub.add_commune("xa-d")
        agent = await enroll_agent(
            hub,
            tmp_path / "agent",
            commune="xa-d",
            kind="speaker",
            profile="speaker-cluster",
            player=NullPlayer(default_duration_s=60.0),
            speech=EspeakEngine(),
            start=False,
        )
        agent.relay = relay
        await agent.start()
        await agent.wait_until(agent.status_connected, 10)
        await hub.call(
            "POST", "/api/v1/emergencies", json={"title": "Cảnh báo lũ", "text": "Lũ."}, expect=201
        )
        async with asyncio.timeout(10):
            item = await agent.play_started.get()
        # The relay's failure did not cost the airing.
        assert item.priority is Priority.EMERGENCY
        faults = agent.active_faults()
        assert "Input/output error" in faults[Fault.RELAY_FAILED]
    finally:
        if agent is not None:
            await agent.stop()
        await hub.close()
