"""Video on boards: a real video file, decoded by the real libVLC, checked by its pixels.

There is no ffmpeg here, so the video is made in the test: JPEG frames saved by pygame,
wrapped in a Matroska container as a Motion-JPEG track, which libVLC demuxes and decodes
with its own plugins and the hub already recognises (video/x-matroska). Frames come back
through libVLC's video memory callbacks (`VideoFrameSink`), so the test sees what would be
on the screen.
"""

from __future__ import annotations

import asyncio
import io
import os
import struct
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from tests.e2e import LiveHub, enroll_agent, headless, live_hub, schedule

headless()
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame  # noqa: E402
import pytest  # noqa: E402
import vlc  # noqa: E402

from edge_agent.agent import Agent  # noqa: E402
from edge_agent.backends import build_player  # noqa: E402
from edge_agent.players.base import PlayerHealth, PlayerState, PlayItem  # noqa: E402
from edge_agent.players.router import PlayerRouter  # noqa: E402
from edge_agent.players.vlc import VideoFrameSink, VlcPlayer  # noqa: E402
from edge_agent.profile import load_profile  # noqa: E402
from loa_contract import BulletinKind, Fault, Priority, utcnow  # noqa: E402

ARTIFACTS = Path(__file__).parent / "artifacts"
RED = (220, 30, 40)
BLUE = (30, 60, 220)
SIZE = (160, 120)
TIMEOUT = 15.0


# ---------------------------------------------------------------------- a real video file


def _uint(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _element(element_id: int, payload: bytes) -> bytes:
    """One EBML element; every size is written in 8 bytes (marker 0x01 + 7), which is valid
    EBML and spares computing the shortest form."""
    head = element_id.to_bytes((element_id.bit_length() + 7) // 8, "big")
    return head + b"\x01" + len(payload).to_bytes(7, "big") + payload


def mjpeg_mkv(colours: list[tuple[int, int, int]], fps: int, size: tuple[int, int] = SIZE) -> bytes:
    """A Matroska file with one Motion-JPEG video track (codec V_MJPEG): one frame per
    colour, each a flat colour with a white square in its top-left corner."""
    jpegs = []
    for colour in colours:
        frame = pygame.Surface(size)
        frame.fill(colour)
        pygame.draw.rect(frame, (255, 255, 255), pygame.Rect(4, 4, 16, 16))
        buffer = io.BytesIO()
        pygame.image.save(frame, buffer, "frame.jpg")
        jpegs.append(buffer.getvalue())
    width, height = size
    frame_ms = 1000 / fps
    header = _element(
        0x1A45DFA3,  # EBML
        _element(0x4286, _uint(1))  # EBMLVersion
        + _element(0x42F7, _uint(1))  # EBMLReadVersion
        + _element(0x42F2, _uint(4))  # EBMLMaxIDLength
        + _element(0x42F3, _uint(8))  # EBMLMaxSizeLength
        + _element(0x4282, b"matroska")  # DocType
        + _element(0x4287, _uint(2))  # DocTypeVersion (2: SimpleBlock)
        + _element(0x4285, _uint(2)),  # DocTypeReadVersion
    )
    info = _element(
        0x1549A966,  # Info
        _element(0x2AD7B1, _uint(1_000_000))  # TimestampScale: milliseconds
        + _element(0x4489, struct.pack(">d", len(jpegs) * frame_ms))  # Duration
        + _element(0x4D80, b"loa tests")  # MuxingApp
        + _element(0x5741, b"loa tests"),  # WritingApp
    )
    video = _element(0xE0, _element(0xB0, _uint(width)) + _element(0xBA, _uint(height)))
    track = _element(
        0xAE,  # TrackEntry
        _element(0xD7, _uint(1))  # TrackNumber
        + _element(0x73C5, _uint(1))  # TrackUID
        + _element(0x83, _uint(1))  # TrackType: video
        + _element(0x9C, _uint(0))  # FlagLacing
        + _element(0x86, b"V_MJPEG")  # CodecID
        + _element(0x23E383, _uint(round(1e9 / fps)))  # DefaultDuration (ns)
        + video,
    )
    clusters = b""
    for first in range(0, len(jpegs), fps):  # a cluster a second
        cluster_ms = round(first * frame_ms)
        blocks = b""
        for n, jpeg in enumerate(jpegs[first : first + fps], start=first):
            # SimpleBlock: track 1 (as a 1-byte VINT), time from the cluster's, key frame.
            timing = struct.pack(">hB", round(n * frame_ms) - cluster_ms, 0x80)
            blocks += _element(0xA3, b"\x81" + timing + jpeg)
        clusters += _element(0x1F43B675, _element(0xE7, _uint(cluster_ms)) + blocks)
    return header + _element(0x18538067, info + _element(0x1654AE6B, track) + clusters)


def red_then_blue(seconds: float, fps: int = 10) -> bytes:
    half = round(seconds * fps / 2)
    return mjpeg_mkv([RED] * half + [BLUE] * half, fps)


def close_to(actual: tuple[int, int, int], wanted: tuple[int, int, int]) -> bool:
    # JPEG is lossy: a flat colour comes back within a few steps.
    return all(abs(a - w) <= 12 for a, w in zip(actual, wanted, strict=True))


def save_picture(sink: VideoFrameSink, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    picture = pygame.image.frombuffer(sink.latest(), (sink.width, sink.height), "BGRA")
    pygame.image.save(picture, str(ARTIFACTS / name))


async def until_colour(sink: VideoFrameSink, colour: tuple[int, int, int]) -> None:
    """Wait, picture by picture, until the screen shows `colour`."""
    async with asyncio.timeout(5):
        while not (sink.frames and close_to(sink.rgb_at(80, 80), colour)):
            await sink.wait_for_frames(sink.frames + 1)


def video_item(bulletin_id: str, path: Path) -> PlayItem:
    return PlayItem(
        bulletin_id=bulletin_id,
        kind=BulletinKind.VIDEO,
        priority=Priority.NORMAL,
        title=bulletin_id,
        path=path,
    )


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mkv"
    path.write_bytes(red_then_blue(2.0))
    return path


# ---------------------------------------------------------------------- libVLC decodes it


async def test_vlc_decodes_the_video_to_the_colours_encoded(clip: Path) -> None:
    sink = VideoFrameSink(*SIZE)
    player = VlcPlayer(["--aout=dummy"], kinds={BulletinKind.VIDEO}, frame_sink=sink)
    try:
        await player.play(video_item("clip", clip))
        await until_colour(sink, RED)
        save_picture(sink, "board-lcd-board-1080p-video-decoded-red.png")
        assert close_to(sink.rgb_at(10, 10), (255, 255, 255))  # the white square
        first_position = player.position()
        await until_colour(sink, BLUE)  # the second half: the picture moves on
        save_picture(sink, "board-lcd-board-1080p-video-decoded-blue.png")
        assert player.position() > first_position
        frames = player.video_frames()
        assert frames is not None and frames > 0
    finally:
        await player.close()


async def test_hub_accepts_the_video_format() -> None:
    from hub.media import sniff_mime

    assert sniff_mime(red_then_blue(0.2)[:4096], utf8_text=False) == "video/x-matroska"


# ---------------------------------------------------------------------- faults


async def test_a_video_that_stops_showing_pictures_is_a_frozen_screen(tmp_path: Path) -> None:
    path = tmp_path / "long.mkv"
    path.write_bytes(red_then_blue(6.0))
    clock = FakeClock()
    sink = VideoFrameSink(*SIZE)
    player = VlcPlayer(["--aout=dummy"], kinds={BulletinKind.VIDEO}, frame_sink=sink, clock=clock)
    try:
        await player.play(video_item("clip", path))
        await sink.wait_for_frames(3)
        assert player.screen_fault() is None
        clock.now += player.stall_after_s - 1
        await sink.wait_for_frames(sink.frames + 3)
        assert player.screen_fault() is None, "pictures keep coming: no fault"

        # Pausing libVLC behind the player's back stands in for a decoder that wedged:
        # the player still says "playing" but no new picture comes.
        loop = asyncio.get_running_loop()
        paused = asyncio.Event()
        mp = player._slot.mp
        mp.event_manager().event_attach(
            vlc.EventType.MediaPlayerPaused, lambda _e: loop.call_soon_threadsafe(paused.set)
        )
        mp.set_pause(1)
        await asyncio.wait_for(paused.wait(), 5)
        # libVLC keeps re-showing the still picture: wait on those so it has settled.
        await sink.wait_for_frames(sink.frames + 2)
        player.screen_fault()  # notes how far it got
        await sink.wait_for_frames(sink.frames + 2)
        assert player.state is PlayerState.PLAYING
        clock.now += player.stall_after_s + 1
        assert player.screen_fault() == "screen_frozen"
        assert player.health() == PlayerHealth(PlayerState.PLAYING, 0, (Fault.SCREEN_FROZEN,))
        await player.stop()
        assert player.screen_fault() is None, "a stopped video is no fault"
        assert player.health() == PlayerHealth(PlayerState.IDLE, 0, ())
    finally:
        await player.close()


async def test_a_stop_hanging_in_libvlc_is_reported_until_it_returns(clip: Path) -> None:
    player = VlcPlayer(["--aout=dummy", "--vout=dummy"], kinds={BulletinKind.VIDEO})
    player.stop_timeout_s = 0.3
    await player.play(video_item("clip", clip))
    hung = player._slot.mp
    release = threading.Event()
    real_stop = hung.stop

    def blocking_stop() -> None:
        release.wait(10)  # stands in for libvlc's hang (python-vlc #74)
        real_stop()

    hung.stop = blocking_stop  # type: ignore[method-assign]
    try:
        await player.stop()
        assert player.stuck_stops == 1
        assert player.screen_fault() == "player_stuck"
        assert player.health() == PlayerHealth(PlayerState.IDLE, 1, (Fault.PLAYER_STUCK,))
        release.set()
        for thread in [t for t in threading.enumerate() if t.name == "vlc-stop"]:
            await asyncio.to_thread(thread.join, 5)
        assert player.screen_fault() is None, "the hung stop returned: nothing hangs now"
        assert player.health() == PlayerHealth(PlayerState.IDLE, 1, ()), "the count stays"
    finally:
        release.set()
        await player.close()


# ---------------------------------------------------------------------- end to end


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as live:
        yield live


async def _completed(hub: LiveHub, agent: Agent, bulletin_id: str) -> bool:
    plays = await hub.call("GET", f"/api/v1/plays?device={agent.identity.device_id}")
    return any(p["bulletin_id"] == bulletin_id and p["outcome"] == "completed" for p in plays)


async def test_video_bulletin_plays_through_vlc_on_the_lcd_board(
    hub: LiveHub, tmp_path: Path
) -> None:
    now = utcnow()
    await hub.add_commune("xa-v")
    # Built the way the agent builds its players for this profile.
    player = build_player(load_profile("lcd-board-1080p"), vlc_args=["--aout=dummy"])
    assert isinstance(player, PlayerRouter)
    video = player.backend_for(BulletinKind.VIDEO)
    assert isinstance(video, VlcPlayer)
    sink = VideoFrameSink(*SIZE)
    video.set_frame_sink(sink)
    board = await enroll_agent(
        hub,
        tmp_path / "board",
        commune="xa-v",
        kind="board",
        profile="lcd-board-1080p",
        player=player,
    )
    try:
        media = await hub.upload(red_then_blue(2.0), "video/x-matroska")
        assert media["mime"] == "video/x-matroska"
        bulletin = await hub.publish(
            {
                "title": "Phim hướng dẫn phòng chống lũ",
                "kind": "video",
                "priority": "normal",
                "media": media["sha256"],
                "targets": {"communes": ["xa-v"]},
                "schedule": schedule(now),
            }
        )
        item = await asyncio.wait_for(board.play_started.get(), TIMEOUT)
        assert item.kind is BulletinKind.VIDEO and item.bulletin_id == bulletin["id"]
        assert player.active is video and video.state is PlayerState.PLAYING

        await until_colour(sink, RED)
        started_at = video.position()
        await until_colour(sink, BLUE)
        assert video.position() > started_at, "the video moves on"
        assert (video.video_frames() or 0) > 0
        assert player.health() == PlayerHealth(PlayerState.PLAYING, 0, ())
        save_picture(sink, "board-lcd-board-1080p-video-e2e.png")

        # It plays to its end and the hub gets the proof of play.
        await board.wait_until(lambda: _completed(hub, board, bulletin["id"]), TIMEOUT)
    finally:
        await board.stop()
