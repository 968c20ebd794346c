"""Sync and programme behaviour end to end: polling fallback, cancel, airings across restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e import (
    LiveHub,
    NoUpgradeProxy,
    enroll_agent,
    headless,
    live_hub,
    schedule,
    tone_bytes,
)

headless()

from edge_agent.agent import Agent  # noqa: E402
from edge_agent.players.base import PlayItem  # noqa: E402
from edge_agent.players.null import NullPlayer  # noqa: E402
from edge_agent.players.vlc import VlcPlayer  # noqa: E402
from loa_contract import Priority, utcnow  # noqa: E402

TIMEOUT = 15.0


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as live:
        await live.add_commune("xa-s")
        yield live


async def next_play(agent: Agent) -> PlayItem:
    return await asyncio.wait_for(agent.play_started.get(), TIMEOUT)


async def test_without_push_the_agent_polls_and_still_gets_bulletins(
    hub: LiveHub, tmp_path: Path
) -> None:
    proxy = NoUpgradeProxy(hub.url)
    proxy_url = await proxy.start()
    agent = await enroll_agent(
        hub,
        tmp_path / "speaker",
        commune="xa-s",
        kind="speaker",
        profile="speaker-cluster",
        player=NullPlayer(default_duration_s=0.5),
        hub_url=proxy_url,
        poll_interval_s=0.2,
    )
    try:
        audio = await hub.upload(tone_bytes(tmp_path, "a", 0.5), "audio/wav")
        published = await hub.publish(
            {
                "title": "Qua thăm dò",
                "kind": "audio",
                "priority": "normal",
                "media": audio["sha256"],
                "targets": {"communes": ["xa-s"]},
                "schedule": schedule(utcnow()),
            }
        )
        item = await next_play(agent)
        assert item.bulletin_id == published["id"]
        assert proxy.refused_upgrades >= 1
        assert not agent.status_connected()
        # Proof-of-play still reaches the hub through plain HTTP.
        await agent.wait_until(lambda: _stored(hub, agent, published["id"]), TIMEOUT)
    finally:
        await agent.stop()
        await proxy.close()


async def _stored(hub: LiveHub, agent: Agent, bulletin_id: str) -> bool:
    plays = await hub.call("GET", f"/api/v1/plays?device={agent.identity.device_id}")
    return any(p["bulletin_id"] == bulletin_id for p in plays)


async def test_cancelling_an_emergency_stops_it_at_once(hub: LiveHub, tmp_path: Path) -> None:
    player = VlcPlayer(["--aout=dummy"])
    agent = await enroll_agent(
        hub,
        tmp_path / "speaker",
        commune="xa-s",
        kind="speaker",
        profile="speaker-cluster",
        player=player,
    )
    try:
        siren = await hub.upload(tone_bytes(tmp_path, "siren", 30.0, 880.0), "audio/wav")
        emergency = await hub.call(
            "POST",
            "/api/v1/emergencies",
            json={"title": "Sơ tán", "media": siren["sha256"], "repeats": 3},
            expect=201,
        )
        item = await next_play(agent)
        assert item.priority is Priority.EMERGENCY
        await hub.call("POST", f"/api/v1/bulletins/{emergency['id']}/cancel")
        await agent.wait_until(lambda: agent.now_playing() is None, TIMEOUT)
        await agent.wait_until(lambda: _outcome(hub, agent, emergency["id"], "stopped"), TIMEOUT)
        assert agent.play_started.empty(), "a cancelled emergency does not come back"
    finally:
        await agent.stop()


async def _outcome(hub: LiveHub, agent: Agent, bulletin_id: str, outcome: str) -> bool:
    plays = await hub.call("GET", f"/api/v1/plays?device={agent.identity.device_id}")
    return any(p["bulletin_id"] == bulletin_id and p["outcome"] == outcome for p in plays)


async def test_what_aired_in_a_window_is_not_aired_again_after_a_restart(
    hub: LiveHub, tmp_path: Path
) -> None:
    data = tmp_path / "speaker"
    agent = await enroll_agent(
        hub,
        data,
        commune="xa-s",
        kind="speaker",
        profile="speaker-cluster",
        player=NullPlayer(default_duration_s=0.2),
    )
    audio = await hub.upload(tone_bytes(tmp_path, "once", 0.2), "audio/wav")
    published = await hub.publish(
        {
            "title": "Một lần",
            "kind": "audio",
            "priority": "normal",
            "media": audio["sha256"],
            "targets": {"communes": ["xa-s"]},
            "schedule": schedule(utcnow()),
        }
    )
    assert (await next_play(agent)).bulletin_id == published["id"]
    await agent.wait_until(lambda: agent.now_playing() is None, TIMEOUT)
    await agent.stop()

    again = Agent(
        agent.config,
        agent.identity,
        agent.profile,
        NullPlayer(default_duration_s=0.2),
    )
    await again.start()
    try:
        # Once the restarted agent has reconnected and decided, it stays silent.
        await again.wait_until(again.status_connected, TIMEOUT)
        await again.wait_until(lambda: "done" in (again.status_reason() or ""), TIMEOUT)
        assert again.play_started.empty()
    finally:
        await again.stop()
