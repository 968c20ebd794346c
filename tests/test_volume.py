"""Volume on a speaker: the commune's setting within the profile's limits, emergency volume for
an emergency, and back to the commune's setting when it ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_agent.players.null import NullPlayer
from edge_agent.profile import load_profile
from loa_contract import Priority, utcnow
from tests.e2e import LiveHub, enroll_agent, live_hub, schedule, tone_bytes, window_around

TIMEOUT = 15.0


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as live:
        yield live


async def test_volume_follows_commune_profile_and_emergency(hub: LiveHub, tmp_path: Path) -> None:
    audio = load_profile("speaker-cluster").audio
    assert audio is not None and audio.emergency_volume > audio.volume_min
    now = utcnow()
    # Below the profile's floor: an amplifier this quiet would not carry to the end of the lane.
    await hub.call(
        "POST",
        "/api/v1/communes",
        json={
            "code": "xa-v",
            "name": "Xã V",
            "windows": {"speaker": [window_around(now)], "board": [window_around(now)]},
            "volume": max(0, audio.volume_min - 10),
        },
    )
    player = NullPlayer(default_duration_s=600)
    speaker = await enroll_agent(
        hub,
        tmp_path / "speaker",
        commune="xa-v",
        kind="speaker",
        profile="speaker-cluster",
        player=player,
    )
    try:
        tone = await hub.upload(tone_bytes(tmp_path, "news", 2.0), "audio/wav")
        await hub.publish(
            {
                "title": "Bản tin",
                "kind": "audio",
                "priority": "normal",
                "media": tone["sha256"],
                "targets": {"communes": ["xa-v"]},
                "schedule": schedule(now),
            }
        )
        first = await asyncio.wait_for(speaker.play_started.get(), TIMEOUT)
        assert first.priority is Priority.NORMAL
        assert player.volume == audio.volume_min

        # The commune turns it up: the next manifest carries it and the player follows.
        await hub.call("PUT", "/api/v1/communes/xa-v", json={"volume": audio.volume_min + 15})
        await speaker.wait_until(lambda: player.volume == audio.volume_min + 15, TIMEOUT)

        emergency = await hub.call(
            "POST",
            "/api/v1/emergencies",
            json={"title": "Cảnh báo", "media": tone["sha256"]},
            expect=201,
        )
        cut_in = await asyncio.wait_for(speaker.play_started.get(), TIMEOUT)
        assert cut_in.bulletin_id == emergency["id"]
        assert player.volume == audio.emergency_volume

        await hub.call("POST", f"/api/v1/emergencies/{emergency['id']}/cancel")
        resumed = await asyncio.wait_for(speaker.play_started.get(), TIMEOUT)
        assert resumed.bulletin_id == first.bulletin_id
        assert player.volume == audio.volume_min + 15
    finally:
        await speaker.stop()
