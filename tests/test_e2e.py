"""The core loop end to end: a real hub on 127.0.0.1, agents with real libVLC and pygame."""

from __future__ import annotations

import asyncio
import time
import unicodedata
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.e2e import (
    LiveHub,
    enroll_agent,
    headless,
    live_hub,
    schedule,
    tone_bytes,
    window_around,
)

headless()

import vlc  # noqa: E402

from edge_agent.agent import Agent  # noqa: E402
from edge_agent.players.base import PlayItem  # noqa: E402
from edge_agent.players.display import DisplayPlayer  # noqa: E402
from edge_agent.players.vlc import VlcPlayer  # noqa: E402
from loa_contract import (  # noqa: E402
    BulletinKind,
    CommandDocument,
    EmergencyStart,
    HubSigner,
    Manifest,
    Priority,
    Scope,
    utcnow,
)

ARTIFACTS = Path(__file__).parent / "artifacts"
BOARD_TEXT = "Thông báo: Ủy ban nhân dân xã tổ chức tiêm phòng dại cho chó, mèo vào sáng thứ Bảy."
TIMEOUT = 15.0


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as live:
        yield live


async def next_play(agent: Agent, timeout: float = TIMEOUT) -> PlayItem:
    return await asyncio.wait_for(agent.play_started.get(), timeout)


async def hub_plays(hub: LiveHub, agent: Agent) -> list[dict]:
    return await hub.call("GET", f"/api/v1/plays?device={agent.identity.device_id}")


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


async def test_normal_audio_airs_only_inside_windows_and_board_renders_vietnamese(
    hub: LiveHub, tmp_path: Path
) -> None:
    now = utcnow()
    later = window_around(now + timedelta(hours=5), before=timedelta(0), after=timedelta(hours=1))
    await hub.add_commune("xa-a", speaker=[later], board=[window_around(now)])
    speaker = await enroll_agent(
        hub,
        tmp_path / "speaker",
        commune="xa-a",
        kind="speaker",
        profile="speaker-cluster",
        player=VlcPlayer(["--aout=dummy"]),
    )
    display = DisplayPlayer((640, 360), window=True)
    board = await enroll_agent(
        hub,
        tmp_path / "board",
        commune="xa-a",
        kind="board",
        profile="led-board-p10",
        player=display,
    )
    try:
        audio = await hub.upload(tone_bytes(tmp_path, "normal", 1.0), "audio/wav")
        await hub.publish(
            {
                "title": "Tiêm phòng",
                "kind": "audio",
                "priority": "normal",
                "media": audio["sha256"],
                "targets": {"communes": ["xa-a"]},
                "schedule": schedule(now),
            }
        )
        await hub.publish(
            {
                "title": "Thông báo",
                "kind": "text",
                "priority": "normal",
                "text": BOARD_TEXT,
                "targets": {"communes": ["xa-a"]},
                "schedule": schedule(now),
                "display_seconds": 30,
            }
        )

        # Outside the speaker's window: held and cached, but silent.
        await speaker.wait_until(lambda: speaker.cache.has(audio["sha256"]), TIMEOUT)
        await speaker.wait_until(lambda: "window" in (speaker.status_reason() or ""), TIMEOUT)
        assert speaker.now_playing() is None
        assert speaker.play_started.empty()

        # The board shows the text; its frame has every diacritic drawn.
        item = await next_play(board)
        assert item.kind is BulletinKind.TEXT and item.text == BOARD_TEXT
        await display.shown()  # laid out off the event loop, then on screen
        ARTIFACTS.mkdir(exist_ok=True)
        frame_path = ARTIFACTS / "e2e-board-text.png"
        display.save_frame(frame_path)
        import pygame

        frame = pygame.image.load(str(frame_path))
        plain = display.render_frame(
            PlayItem(
                bulletin_id="plain",
                kind=BulletinKind.TEXT,
                priority=Priority.NORMAL,
                title=item.title,
                text=_strip_marks(BOARD_TEXT),
            )
        )
        colours = {frame.get_at((x, y))[:3] for x in range(0, 640, 7) for y in range(0, 360, 7)}
        assert len(colours) > 2, "the frame is blank"
        differing = sum(
            frame.get_at((x, y)) != plain.get_at((x, y)) for x in range(640) for y in range(360)
        )
        assert differing > 200, "diacritics were not drawn"

        # Opening the window now lets the speaker air it, once.
        await hub.call(
            "PUT",
            "/api/v1/communes/xa-a",
            json={"windows": {"speaker": [window_around(now)], "board": [window_around(now)]}},
        )
        played = await next_play(speaker)
        assert played.kind is BulletinKind.AUDIO and played.priority is Priority.NORMAL
        await speaker.wait_until(lambda: speaker.now_playing() is None, TIMEOUT)
        assert speaker.play_started.empty(), "a normal bulletin airs once per window"
    finally:
        await speaker.stop()
        await board.stop()


async def test_emergency_preempts_and_the_normal_item_resumes(hub: LiveHub, tmp_path: Path) -> None:
    now = utcnow()
    await hub.add_commune("xa-b", speaker=[window_around(now)], board=[window_around(now)])
    player = VlcPlayer(["--aout=dummy"])
    speaker = await enroll_agent(
        hub,
        tmp_path / "speaker",
        commune="xa-b",
        kind="speaker",
        profile="speaker-cluster",
        player=player,
    )
    try:
        normal = await hub.upload(tone_bytes(tmp_path, "long", 8.0), "audio/wav")
        alarm = await hub.upload(tone_bytes(tmp_path, "alarm", 1.0, 880.0), "audio/wav")
        await hub.publish(
            {
                "title": "Bản tin thời sự",
                "kind": "audio",
                "priority": "normal",
                "media": normal["sha256"],
                "targets": {"communes": ["xa-b"]},
                "schedule": schedule(now),
            }
        )
        first = await next_play(speaker)
        assert first.priority is Priority.NORMAL
        # Let the item air for a while: the point is to cut it mid-way and resume there.
        await aired_past(player, 0.3)

        fired = time.perf_counter()
        emergency = await hub.call(
            "POST",
            "/api/v1/emergencies",
            # Aired once: the point is the cut-in and the resume, not the repeats.
            json={"title": "Cảnh báo lũ", "media": alarm["sha256"], "repeats": 1},
            expect=201,
        )
        cut_in = await next_play(speaker)
        latency = time.perf_counter() - fired
        assert cut_in.priority is Priority.EMERGENCY and cut_in.bulletin_id == emergency["id"]
        assert latency < 2.0, f"emergency took {latency:.3f} s"

        resumed = await next_play(speaker)
        assert resumed.bulletin_id == first.bulletin_id
        assert resumed.start_at_s > 0.2, "a pre-empted item resumes where it stopped"

        await speaker.wait_until(
            lambda: _outcomes(hub, speaker, {"preempted", "completed"}), TIMEOUT
        )
        plays = await hub_plays(hub, speaker)
        by_outcome = {(p["bulletin_id"], p["outcome"]) for p in plays}
        assert (first.bulletin_id, "preempted") in by_outcome
        assert (emergency["id"], "completed") in by_outcome
    finally:
        await speaker.stop()


async def aired_past(player: VlcPlayer, seconds: float) -> None:
    """Wait on libvlc's own clock (its TimeChanged events) until the item is past `seconds`."""
    loop = asyncio.get_running_loop()
    past = asyncio.Event()

    def on_time(_event: object) -> None:  # libvlc's thread
        loop.call_soon_threadsafe(lambda: past.set() if player.position() > seconds else None)

    events = player._slot.mp.event_manager()
    events.event_attach(vlc.EventType.MediaPlayerTimeChanged, on_time)
    try:
        if player.position() <= seconds:
            await asyncio.wait_for(past.wait(), TIMEOUT)
    finally:
        events.event_detach(vlc.EventType.MediaPlayerTimeChanged)
    assert player.position() > seconds


async def _outcomes(hub: LiveHub, agent: Agent, wanted: set[str]) -> bool:
    plays = await hub_plays(hub, agent)
    return (
        wanted <= {p["outcome"] for p in plays} and sum((await agent.store.backlog()).values()) == 0
    )


async def test_agents_play_from_cache_while_the_hub_is_down_and_reports_arrive_once(
    hub: LiveHub, tmp_path: Path
) -> None:
    now = utcnow()
    await hub.add_commune("xa-c", speaker=[window_around(now)], board=[window_around(now)])
    display = DisplayPlayer((320, 160), window=True)
    board = await enroll_agent(
        hub,
        tmp_path / "board",
        commune="xa-c",
        kind="board",
        profile="led-board-p10",
        player=display,
    )
    try:
        for n in range(2):
            await hub.publish(
                {
                    "title": f"Tin {n}",
                    "kind": "text",
                    "priority": "normal",
                    "text": f"Bản tin số {n}",
                    "targets": {"communes": ["xa-c"]},
                    "schedule": schedule(now),
                    "display_seconds": 0.2,
                }
            )
        await next_play(board)
        await hub.stop()
        await board.wait_until(lambda: not board.status_connected(), TIMEOUT)
        seen = [await next_play(board) for _ in range(4)]
        assert {item.bulletin_id for item in seen} and len(seen) == 4
        backlog = await board.store.backlog()
        # Of the four started offline, at least three have ended and wait in the outbox.
        assert backlog["plays"] >= 3, "plays made while offline wait in the outbox"

        await hub.start()
        await board.wait_until(lambda: _drained(board), TIMEOUT)
        plays = await hub_plays(hub, board)
        seqs = [p["seq"] for p in plays]
        assert len(seqs) == len(set(seqs))
        starts = [(p["bulletin_id"], p["started_at"]) for p in plays]
        assert len(starts) == len(set(starts)), "a play was stored twice"
        # The first play and at least three offline ones have ended by now: none is lost.
        assert len(plays) >= 4
    finally:
        await board.stop()


async def _drained(agent: Agent) -> bool:
    return (await agent.store.backlog())["plays"] == 0


async def test_forged_replayed_and_corrupt_content_is_refused(hub: LiveHub, tmp_path: Path) -> None:
    now = utcnow()
    await hub.add_commune("xa-d", speaker=[window_around(now)], board=[window_around(now)])
    player = VlcPlayer(["--aout=dummy"])
    speaker = await enroll_agent(
        hub,
        tmp_path / "speaker",
        commune="xa-d",
        kind="speaker",
        profile="speaker-cluster",
        player=player,
    )
    try:
        await speaker.wait_until(lambda: speaker.manifest_version() is not None, TIMEOUT)
        old_envelope = (await speaker.store.stored_manifest())[1]
        old_version = speaker.manifest_version()

        # A bulletin whose stored bytes no longer match their sha256.
        bad = await hub.upload(tone_bytes(tmp_path, "bad", 1.0), "audio/wav")
        stored = hub.data_dir / "media" / bad["sha256"]
        stored.write_bytes(tone_bytes(tmp_path, "other", 1.0, 600.0))
        await hub.publish(
            {
                "title": "Hỏng",
                "kind": "audio",
                "priority": "normal",
                "media": bad["sha256"],
                "targets": {"communes": ["xa-d"]},
                "schedule": schedule(now),
            }
        )
        await speaker.wait_until(lambda: speaker.counters.rejected_media >= 1, TIMEOUT)
        assert not speaker.cache.has(bad["sha256"])
        assert speaker.manifest_version() > old_version

        # A replay of an older, genuinely signed manifest.
        assert not await speaker.apply_manifest(old_envelope)

        # A manifest and an emergency signed by someone else's key.
        impostor = HubSigner.generate()
        current = Manifest.model_validate((await speaker.store.stored_manifest())[0].model_dump())
        forged = current.model_copy(update={"version": current.version + 100})
        assert not await speaker.apply_manifest(impostor.sign(forged).model_dump_json().encode())
        rogue = EmergencyStart(
            command_id="x",
            scope=Scope(devices=[speaker.identity.device_id]),
            issued_at=now,
            expires_at=now + timedelta(minutes=5),
            bulletin=current.bulletins[0].model_copy(
                update={"priority": Priority.EMERGENCY, "id": "rogue"}
            ),
        )
        forged = impostor.sign(CommandDocument(command=rogue)).model_dump_json()
        await speaker.sync.handle_push(forged)

        assert speaker.counters.rejected_manifests >= 2
        assert speaker.counters.rejected_commands >= 1
        assert speaker.manifest_version() == current.version
        assert all(item.bulletin_id != "rogue" for item in _drain(speaker))
        assert speaker.now_playing() is None or speaker.now_playing().bulletin_id != "rogue"
    finally:
        await speaker.stop()


def _drain(agent: Agent) -> list[PlayItem]:
    items = []
    while not agent.play_started.empty():
        items.append(agent.play_started.get_nowait())
    return items
