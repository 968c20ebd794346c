"""Only the province ends an emergency: the agent itself refuses a local stop of one.

The local page used to be the only guard; now `Agent.request` enforces it for every local
caller, and the programme loop checks again when it acts, so a stop asked for the item
before an emergency cannot silence the emergency that replaced it. A stop the hub signed
still works.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_agent.agent import Agent, ControlRefused
from edge_agent.players.base import PlayItem
from edge_agent.players.null import NullPlayer
from loa_contract import PlayOutcome, Priority, utcnow
from tests.e2e import LiveHub, enroll_agent, schedule

COMMUNE = "xa-s"
TIMEOUT = 15.0


class HoldingPlayer(NullPlayer):
    """Items last long enough for any test; `stop()` can be held at a gate."""

    def __init__(self) -> None:
        super().__init__()
        self.hold_stop = False
        self.stop_entered = asyncio.Event()
        self.stop_released = asyncio.Event()

    def duration_of(self, item: PlayItem) -> float:
        return 3600.0

    async def stop(self) -> float:
        if self.hold_stop:
            self.stop_entered.set()
            await self.stop_released.wait()
        return await super().stop()


@pytest.fixture
async def board(tmp_path: Path) -> AsyncIterator[tuple[LiveHub, Agent, HoldingPlayer]]:
    hub = LiveHub(tmp_path / "hub")
    await hub.start()
    await hub.add_commune(COMMUNE)
    player = HoldingPlayer()
    agent = await enroll_agent(
        hub,
        tmp_path / "board",
        commune=COMMUNE,
        kind="board",
        profile="led-board-p10",
        player=player,
    )
    try:
        await agent.wait_until(agent.status_connected, timeout=TIMEOUT)
        yield hub, agent, player
    finally:
        player.stop_released.set()
        await agent.stop()
        await hub.close()


async def _emergency(hub: LiveHub) -> str:
    body = await hub.call(
        "POST",
        "/api/v1/emergencies",
        json={
            "title": "Lũ quét",
            "text": "Di chuyển lên vùng cao",
            "targets": {"communes": [COMMUNE]},
        },
    )
    return str(body["id"])


async def _next_play(agent: Agent) -> PlayItem:
    async with asyncio.timeout(TIMEOUT):
        return await agent.play_started.get()


async def test_local_stop_of_an_emergency_is_refused_and_the_hubs_stop_works(
    board: tuple[LiveHub, Agent, HoldingPlayer],
) -> None:
    hub, agent, _ = board
    emergency = await _emergency(hub)
    item = await _next_play(agent)
    assert item.bulletin_id == emergency and item.priority is Priority.EMERGENCY

    with pytest.raises(ControlRefused) as refused:
        agent.request("stop")  # local is the default: a caller that forgets gets the rule
    assert refused.value.code == "emergency_on_air"
    assert "province" in str(refused.value) and emergency in str(refused.value)
    assert agent.counters.refused_controls == 1
    playing = agent.now_playing()
    assert playing is not None and playing.bulletin_id == emergency

    sent = await hub.call(
        "POST", f"/api/v1/devices/{agent.identity.device_id}/commands", json={"type": "stop"}
    )
    assert sent["delivered"] is True
    # The hub's stop ends this airing. It cancels nothing: a board keeps every active
    # emergency up, so the emergency is back at once, as a new airing. (Waiting for "nothing
    # on air" here raced that return: the test failed 1 run in 3.)
    again = await _next_play(agent)
    assert again.bulletin_id == emergency
    assert agent.store is not None
    stopped = [
        p
        for p in await agent.store.recent_plays(5)
        if p.bulletin_id == emergency and p.outcome is PlayOutcome.STOPPED
    ]
    assert len(stopped) == 1


async def test_a_stop_queued_before_an_emergency_does_not_stop_it(
    board: tuple[LiveHub, Agent, HoldingPlayer],
) -> None:
    hub, agent, player = board
    normal = await hub.publish(
        {
            "title": "Lịch tiêm phòng",
            "kind": "text",
            "priority": "normal",
            "text": "Tiêm phòng dại ngày 5/6",
            "targets": {"communes": [COMMUNE]},
            "schedule": schedule(utcnow()),
        }
    )
    assert (await _next_play(agent)).bulletin_id == normal["id"]

    # The emergency pre-empts; hold the player's stop of the normal item half-way, so the
    # normal item is still "now playing" when the commune presses stop.
    player.hold_stop = True
    emergency = await _emergency(hub)
    async with asyncio.timeout(TIMEOUT):
        await player.stop_entered.wait()
    playing = agent.now_playing()
    assert playing is not None and playing.bulletin_id == normal["id"]
    agent.request("stop")  # accepted: what plays is not an emergency
    player.hold_stop = False
    player.stop_released.set()

    item = await _next_play(agent)
    assert item.bulletin_id == emergency
    # The queued stop reached the loop with the emergency on air: refused there.
    await agent.wait_until(lambda: agent.counters.refused_controls == 1, timeout=TIMEOUT)
    playing = agent.now_playing()
    assert playing is not None and playing.bulletin_id == emergency
