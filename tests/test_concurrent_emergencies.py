"""Several emergencies at once, end to end (issue #8): a real hub on 127.0.0.1, a speaker and a
board of one commune running the real agent core with null players.

The symptom this guards against: after a province flood alert, a newer commune alert never
reached the board (it looped the oldest emergency), its queue listed the same title five
times, and cancelling the first switched to another province alert, not the commune's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.players.null import NullPlayer
from edge_agent.speech import EspeakEngine
from loa_contract import PlayOutcome, ProofOfPlay, utcnow
from tests.e2e import LiveHub, enroll_agent, live_hub, schedule

TIMEOUT = 20.0
INTERVAL_S = 1.5
REPEATS = 2


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as live:
        yield live


async def next_play(agent: Agent) -> str:
    item = await asyncio.wait_for(agent.play_started.get(), TIMEOUT)
    return item.bulletin_id


def drain(agent: Agent) -> None:
    while not agent.play_started.empty():
        agent.play_started.get_nowait()


async def draft_emergency(hub: LiveHub, title: str, communes: list[str] | None) -> str:
    """An emergency bulletin airing REPEATS times, INTERVAL_S apart; not yet published."""
    body = {
        "title": title,
        "kind": "text",
        "priority": "emergency",
        "text": title,
        "schedule": schedule(utcnow(), repeats=REPEATS, interval_s=INTERVAL_S),
    }
    if communes is not None:
        body["targets"] = {"communes": communes}
    created = await hub.call("POST", "/api/v1/bulletins", json=body)
    return created["id"]


async def emergency_plays(agent: Agent, bulletin_id: str) -> list[ProofOfPlay]:
    assert agent.store is not None
    plays = await agent.store.recent_plays(200)
    return sorted((p for p in plays if p.bulletin_id == bulletin_id), key=lambda p: p.started_at)


def on_air(agent: Agent) -> str | None:
    playing = agent.now_playing()
    return playing.bulletin_id if playing else None


def queue_ids(agent: Agent) -> list[str]:
    return [entry["bulletin_id"] for entry in agent.upcoming()]


async def test_newer_commune_alert_cuts_in_then_all_take_turns(
    hub: LiveHub, tmp_path: Path
) -> None:
    await hub.add_commune("xa-e")
    speaker_player = NullPlayer(default_duration_s=600)
    board_player = NullPlayer()
    speaker = await enroll_agent(
        hub,
        tmp_path / "speaker",
        commune="xa-e",
        kind="speaker",
        profile="speaker-cluster",
        player=speaker_player,
        speech=EspeakEngine(),
    )
    board = await enroll_agent(
        hub,
        tmp_path / "board",
        commune="xa-e",
        kind="board",
        profile="led-board-p10",
        player=board_player,
    )
    try:
        normal = await hub.publish(
            {
                "title": "Bản tin sáng",
                "kind": "text",
                "priority": "normal",
                "text": "Bản tin buổi sáng của xã.",
                "targets": {"communes": ["xa-e"]},
                "schedule": schedule(utcnow()),
                "display_seconds": 600,
            }
        )
        assert await next_play(speaker) == normal["id"]
        assert await next_play(board) == normal["id"]

        # A province flood warning: long enough that the commune alert lands mid-airing.
        province = await draft_emergency(hub, "Cảnh báo lũ toàn tỉnh", None)
        for player in (speaker_player, board_player):
            player.durations[province] = 60.0
        await hub.call("POST", f"/api/v1/bulletins/{province}/publish")
        assert await next_play(speaker) == province
        assert await next_play(board) == province

        # A newer commune fire alert cuts the province's on both devices, at once.
        commune = await draft_emergency(hub, "Cháy rừng thôn Đông", ["xa-e"])
        for player in (speaker_player, board_player):
            player.durations[commune] = 0.4
        await hub.call("POST", f"/api/v1/bulletins/{commune}/publish")
        assert await next_play(speaker) == commune
        assert await next_play(board) == commune
        # Each active emergency is listed once (the symptom: one title five times).
        for agent in (speaker, board):
            queue = queue_ids(agent)
            assert province in queue and len(queue) == len(set(queue)), queue
        for player in (speaker_player, board_player):
            player.durations[province] = 0.4
        for agent in (speaker, board):
            await agent.wait_until(
                lambda agent=agent: _first_outcome(agent, province, PlayOutcome.PREEMPTED), TIMEOUT
            )

        # The board: both in turn, the cut one again from the top; each listed once.
        turns = [await next_play(board) for _ in range(4)]
        assert turns == [province, commune, province, commune]
        assert sorted(queue_ids(board)) == sorted([province, commune])

        # The speaker: each airs REPEATS times, INTERVAL_S apart, then the programme resumes.
        await speaker.wait_until(lambda: _repeats_done(speaker, [province, commune]), TIMEOUT)
        await speaker.wait_until(lambda: on_air(speaker) == normal["id"], TIMEOUT)
        for bulletin_id in (province, commune):
            airings = [
                p
                for p in await emergency_plays(speaker, bulletin_id)
                if p.outcome is PlayOutcome.COMPLETED
            ]
            assert len(airings) == REPEATS
            gap = (airings[1].started_at - airings[0].ended_at).total_seconds()
            assert gap >= INTERVAL_S - 0.05, f"{bulletin_id} aired again after {gap:.2f} s"
        assert queue_ids(speaker).count(province) == 0, "its repeats are done"
        resumed = [
            p for p in (await speaker.store.recent_plays(200)) if p.bulletin_id == normal["id"]
        ]
        assert len(resumed) >= 2, "the normal programme resumed between airings"

        # Cancel the province's: the commune's keeps airing on the board, alone.
        await hub.call("POST", f"/api/v1/bulletins/{province}/cancel")
        await board.wait_until(lambda: province not in queue_ids(board), TIMEOUT)
        await board.wait_until(lambda: on_air(board) == commune, TIMEOUT)
        drain(board)
        assert [await next_play(board) for _ in range(3)] == [commune] * 3
    finally:
        await speaker.stop()
        await board.stop()


async def _first_outcome(agent: Agent, bulletin_id: str, outcome: PlayOutcome) -> bool:
    plays = await emergency_plays(agent, bulletin_id)
    return bool(plays) and plays[0].outcome is outcome


async def _repeats_done(agent: Agent, bulletin_ids: list[str]) -> bool:
    for bulletin_id in bulletin_ids:
        plays = await emergency_plays(agent, bulletin_id)
        if sum(p.outcome is PlayOutcome.COMPLETED for p in plays) < REPEATS:
            return False
    return True
