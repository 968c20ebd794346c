"""Real backends: libvlc with a dummy audio output, pygame on SDL's dummy video driver."""

from __future__ import annotations

import array
import asyncio
import math
import os
import subprocess
import threading
import time
import wave
from collections.abc import AsyncIterator, Callable
from pathlib import Path

# Before pygame is imported anywhere: no screen or sound card is needed.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame
import pytest

from edge_agent.fonts import find_font
from edge_agent.players.base import (
    EventType,
    PlaybackEvent,
    PlayerError,
    PlayerHealth,
    PlayerState,
    PlayItem,
)
from edge_agent.players.display import DisplayPlayer
from edge_agent.players.null import NullPlayer
from edge_agent.players.router import PlayerRouter
from edge_agent.players.vlc import VlcPlayer
from loa_contract import BulletinKind, Fault, Priority

ARTIFACTS = Path(__file__).parent / "artifacts"
VIETNAMESE = "Thông báo: Ủy ban nhân dân xã tổ chức tiêm phòng dại cho chó, mèo vào sáng thứ Bảy."
WAIT_S = 5.0


def write_wav(path: Path, seconds: float, frequency: float = 440.0, rate: int = 22050) -> Path:
    samples = array.array(
        "h",
        (
            int(12000 * math.sin(2 * math.pi * frequency * n / rate))
            for n in range(int(seconds * rate))
        ),
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


class Events:
    """Collects player events and lets a test await a particular one."""

    def __init__(self) -> None:
        self.seen: list[PlaybackEvent] = []
        self._changed = asyncio.Event()

    def __call__(self, event: PlaybackEvent) -> None:
        self.seen.append(event)
        self._changed.set()

    async def wait_for(
        self, kind: EventType, bulletin_id: str, within: float = WAIT_S
    ) -> PlaybackEvent:
        async def scan() -> PlaybackEvent:
            while True:
                for event in self.seen:
                    if event.type is kind and event.bulletin_id == bulletin_id:
                        return event
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(scan(), within)

    def kinds_for(self, bulletin_id: str) -> list[EventType]:
        return [e.type for e in self.seen if e.bulletin_id == bulletin_id]


def audio_item(
    bulletin_id: str,
    path: Path,
    *,
    priority: Priority = Priority.NORMAL,
    start_at_s: float = 0.0,
) -> PlayItem:
    return PlayItem(
        bulletin_id=bulletin_id,
        kind=BulletinKind.AUDIO,
        priority=priority,
        title=bulletin_id,
        path=path,
        start_at_s=start_at_s,
    )


def text_item(
    bulletin_id: str,
    text: str = VIETNAMESE,
    *,
    title: str = "Thông báo của UBND xã",
    priority: Priority = Priority.NORMAL,
    display_seconds: float = 15.0,
) -> PlayItem:
    return PlayItem(
        bulletin_id=bulletin_id,
        kind=BulletinKind.TEXT,
        priority=priority,
        title=title,
        text=text,
        display_seconds=display_seconds,
    )


async def join_vlc_stops() -> None:
    """Wait for the threads of abandoned libvlc stops to return (once their hang ends)."""
    for thread in [t for t in threading.enumerate() if t.name == "vlc-stop"]:
        await asyncio.to_thread(thread.join, WAIT_S)


async def until(predicate: Callable[[], bool], within: float = WAIT_S) -> None:
    """Polls a condition that has no event of its own (a clock position moving)."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def _artifacts_dir() -> None:
    ARTIFACTS.mkdir(exist_ok=True)


@pytest.fixture
def short_wav(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "short.wav", 0.5)


@pytest.fixture
def long_wav(tmp_path: Path) -> Path:
    return write_wav(tmp_path / "long.wav", 2.0, frequency=660.0)


@pytest.fixture
async def vlc_player() -> AsyncIterator[tuple[VlcPlayer, Events]]:
    player = VlcPlayer(["--aout=dummy"], kinds={BulletinKind.AUDIO}, stop_timeout_s=0.5)
    events = Events()
    player.set_event_sink(events)
    yield player, events
    await player.close()


@pytest.fixture
async def display() -> AsyncIterator[tuple[DisplayPlayer, Events]]:
    player = DisplayPlayer((640, 360))
    events = Events()
    player.set_event_sink(events)
    yield player, events
    await player.close()


# ---------------------------------------------------------------------- VLC


async def test_vlc_plays_to_the_end(vlc_player: tuple[VlcPlayer, Events], short_wav: Path) -> None:
    player, events = vlc_player
    await player.set_volume(80)
    await player.play(audio_item("b1", short_wav))
    assert player.state is PlayerState.PLAYING
    assert player.health() == PlayerHealth(PlayerState.PLAYING, 0, ())
    ended = await events.wait_for(EventType.ENDED, "b1")
    assert events.kinds_for("b1") == [EventType.STARTED, EventType.ENDED]
    assert ended.position_s == pytest.approx(0.5, abs=0.15)
    assert player.state is PlayerState.IDLE
    assert player.health() == PlayerHealth(PlayerState.IDLE, 0, ())


async def test_vlc_position_advances_and_stop_returns_it(
    vlc_player: tuple[VlcPlayer, Events], long_wav: Path
) -> None:
    player, events = vlc_player
    await player.play(audio_item("b1", long_wav))
    await until(lambda: player.position() >= 0.3)
    position = await player.stop()
    assert 0.3 <= position < 2.0
    assert player.state is PlayerState.IDLE
    assert EventType.ENDED not in events.kinds_for("b1")


async def test_vlc_honours_start_at(vlc_player: tuple[VlcPlayer, Events], long_wav: Path) -> None:
    player, events = vlc_player
    began = time.monotonic()
    await player.play(audio_item("b1", long_wav, start_at_s=1.5))
    assert player.position() >= 1.5
    ended = await events.wait_for(EventType.ENDED, "b1")
    # Only the last half second was played, not the whole two.
    assert time.monotonic() - began < 1.5
    assert ended.position_s == pytest.approx(2.0, abs=0.15)


async def test_vlc_preemption_is_fast_and_late_events_are_not_misreported(
    vlc_player: tuple[VlcPlayer, Events], long_wav: Path, short_wav: Path
) -> None:
    player, events = vlc_player
    await player.play(audio_item("normal", long_wav))
    await until(lambda: player.position() >= 0.2)
    began = time.perf_counter()
    stopped_at = await player.stop()
    await player.play(audio_item("emergency", short_wav, priority=Priority.EMERGENCY))
    latency = time.perf_counter() - began
    print(f"\nVLC pre-emption (stop + start to Playing): {latency * 1000:.1f} ms")
    assert latency < 0.5
    assert stopped_at >= 0.2
    await events.wait_for(EventType.ENDED, "emergency")
    assert events.kinds_for("normal") == [EventType.STARTED]

    # play() over a playing item replaces it by itself, too.
    await player.play(audio_item("a", long_wav))
    began = time.perf_counter()
    await player.play(audio_item("b", short_wav))
    print(f"VLC replace by play(): {(time.perf_counter() - began) * 1000:.1f} ms")
    await events.wait_for(EventType.ENDED, "b")
    assert events.kinds_for("a") == [EventType.STARTED]


async def test_vlc_stuck_stop_is_abandoned_and_the_player_recovers(
    vlc_player: tuple[VlcPlayer, Events], long_wav: Path, short_wav: Path
) -> None:
    player, events = vlc_player
    await player.play(audio_item("stuck", long_wav))
    hung = player._slot.mp
    release = threading.Event()
    real_stop = hung.stop

    def blocking_stop() -> None:
        release.wait(10)  # stands in for libvlc's hang (python-vlc #74)
        real_stop()

    hung.stop = blocking_stop  # type: ignore[method-assign]
    try:
        began = time.perf_counter()
        await player.stop()
        assert time.perf_counter() - began < 2.0
        assert player.health() == PlayerHealth(PlayerState.IDLE, 1, (Fault.PLAYER_STUCK,))
        assert player._slot.mp is not hung
        await player.play(audio_item("after", short_wav))
        await events.wait_for(EventType.ENDED, "after")
        assert EventType.ENDED not in events.kinds_for("stuck")
        # The replacement plays, but the old one still hangs in libvlc.
        assert player.health().faults == (Fault.PLAYER_STUCK,)
        release.set()
        await join_vlc_stops()
        assert player.health() == PlayerHealth(PlayerState.IDLE, 1, ()), "the count stays"
    finally:
        release.set()


async def test_vlc_refuses_what_it_cannot_play(
    vlc_player: tuple[VlcPlayer, Events], tmp_path: Path
) -> None:
    player, events = vlc_player
    with pytest.raises(PlayerError):
        await player.play(audio_item("missing", tmp_path / "nope.wav"))
    with pytest.raises(PlayerError):
        await player.play(text_item("t"))
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF not really a wave file" * 10)
    # libvlc opens it and "ends" at once; that must surface as a failure, not a completion.
    try:
        await player.play(audio_item("garbage", garbage))
    except PlayerError:
        pass
    else:
        await events.wait_for(EventType.ERROR, "garbage")
    assert EventType.ENDED not in events.kinds_for("garbage")
    assert player.state is not PlayerState.PLAYING


async def test_vlc_fails_an_airing_whose_sound_card_cannot_open(long_wav: Path) -> None:
    """libvlc plays on in silence when its audio output cannot open, to Playing and Ended as
    if all were well: the airing must be a failure, and the player must say why."""
    player = VlcPlayer(["--aout=alsa", "--alsa-audio-device=hw:9,9"], stop_timeout_s=0.5)
    events = Events()
    player.set_event_sink(events)
    try:
        try:
            await player.play(audio_item("silent", long_wav))
        except PlayerError as exc:
            detail = str(exc)
        else:
            detail = (await events.wait_for(EventType.ERROR, "silent")).detail
        assert detail.startswith("audio output failed:"), detail
        assert "hw:9,9" in detail
        # Stopped, not left to "end" in silence and be credited.
        await until(lambda: not player._halts)
        assert player.state is PlayerState.ERROR
        assert EventType.ENDED not in events.kinds_for("silent")
        health = player.health()
        assert Fault.AUDIO_OUTPUT_FAILED in health.faults
        assert "hw:9,9" in health.reasons[Fault.AUDIO_OUTPUT_FAILED]
    finally:
        await player.close()


async def test_vlc_audio_fault_clears_once_an_item_is_heard_whole(
    vlc_player: tuple[VlcPlayer, Events], long_wav: Path, short_wav: Path
) -> None:
    player, events = vlc_player
    await player.play(audio_item("first", long_wav))
    # What libvlc's ALSA module logs, from its own thread, when the card goes mid-airing.
    lost = 'cannot write samples: the audio device "hw:0,0" is gone'
    await asyncio.to_thread(player._from_vlc_log, lost)
    await asyncio.to_thread(player._from_vlc_log, "a later message of no interest")
    error = await events.wait_for(EventType.ERROR, "first")
    assert error.detail == f"audio output failed: {lost}"
    assert player.health().reasons == {Fault.AUDIO_OUTPUT_FAILED: lost}
    await until(lambda: player.state is PlayerState.ERROR and not player._halts)
    await player.play(audio_item("second", short_wav))
    assert Fault.AUDIO_OUTPUT_FAILED in player.health().faults  # not yet heard whole
    await events.wait_for(EventType.ENDED, "second")
    assert player.health().faults == ()
    assert EventType.ENDED not in events.kinds_for("first")


async def test_vlc_an_output_tried_on_the_way_to_one_that_works_fails_nothing(
    vlc_player: tuple[VlcPlayer, Events], short_wav: Path
) -> None:
    player, events = vlc_player
    await player.play(audio_item("heard", short_wav))
    # What libvlc logs when PulseAudio is down and it goes on to ALSA, which works.
    await asyncio.to_thread(
        player._from_vlc_log, "PulseAudio server connection failure: Connection refused"
    )
    await events.wait_for(EventType.ENDED, "heard")
    assert EventType.ERROR not in events.kinds_for("heard")
    assert player.health().faults == ()


def _clip(path: Path, *, sound: bool) -> Path:
    """A real half-second MP4 from ffmpeg, with or without a sound track."""
    inputs = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=0.5"]
    if sound:
        inputs += ["-f", "lavfi", "-i", "sine=frequency=440:duration=0.5"]
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", *inputs, "-shortest", str(path)], check=True
    )
    return path


async def test_a_board_video_clears_the_audio_fault_only_when_it_had_sound(
    tmp_path: Path,
) -> None:
    player = VlcPlayer(["--aout=dummy", "--vout=dummy"], kinds={BulletinKind.VIDEO})
    events = Events()
    player.set_event_sink(events)

    def video(bulletin_id: str, path: Path) -> PlayItem:
        return PlayItem(bulletin_id, BulletinKind.VIDEO, Priority.NORMAL, bulletin_id, path=path)

    try:
        await player.play(video("first", _clip(tmp_path / "first.mp4", sound=True)))
        await asyncio.to_thread(player._from_vlc_log, "failed to create audio output")
        # A board's airing is its picture: the video goes on, the fault is kept.
        await events.wait_for(EventType.ENDED, "first")
        assert player.health().reasons == {
            Fault.AUDIO_OUTPUT_FAILED: "failed to create audio output"
        }
        await player.play(video("mute", _clip(tmp_path / "mute.mp4", sound=False)))
        await events.wait_for(EventType.ENDED, "mute")
        assert Fault.AUDIO_OUTPUT_FAILED in player.health().faults, "a silent clip proves nothing"
        await player.play(video("sound", _clip(tmp_path / "sound.mp4", sound=True)))
        await events.wait_for(EventType.ENDED, "sound")
        assert player.health().faults == ()
    finally:
        await player.close()


# ---------------------------------------------------------------------- display


def red_share(surface: pygame.Surface) -> float:
    width, height = surface.get_size()
    red = total = 0
    for x in range(0, width, 4):
        for y in range(0, height, 4):
            r, g, b, *_ = surface.get_at((x, y))
            total += 1
            if r > 150 and g < 80 and b < 80:
                red += 1
    return red / total


def distinct_colours(surface: pygame.Surface) -> int:
    width, height = surface.get_size()
    return len(
        {tuple(surface.get_at((x, y))) for x in range(0, width, 3) for y in range(0, height, 3)}
    )


async def test_display_renders_vietnamese_text(display: tuple[DisplayPlayer, Events]) -> None:
    player, events = display
    await player.play(text_item("t1"))
    assert player.state is PlayerState.PLAYING
    # Laid out off the loop: the frame, and STARTED with it, follow play().
    await player.shown()
    assert events.kinds_for("t1") == [EventType.STARTED]
    png = player.save_frame(ARTIFACTS / "display-normal.png")
    saved = pygame.image.load(str(png))
    assert saved.get_size() == (640, 360)
    assert distinct_colours(saved) > 10  # text was drawn, antialiased
    assert red_share(saved) < 0.05

    emergency = player.render_frame(
        text_item("e1", title="Cảnh báo bão số 3", priority=Priority.EMERGENCY)
    )
    pygame.image.save(emergency, str(ARTIFACTS / "display-emergency.png"))
    assert red_share(emergency) > 0.5
    # The banner is the yellow strip across the top.
    assert tuple(emergency.get_at((2, 2)))[:3] == (255, 221, 0)

    small = DisplayPlayer((192, 96), window=False)  # LED P10 board
    frame = small.render_frame(text_item("p10"))
    pygame.image.save(frame, str(ARTIFACTS / "display-p10.png"))
    assert distinct_colours(frame) > 5
    await small.close()


def top_ink_row(surface: pygame.Surface, left: int, right: int) -> int:
    for y in range(surface.get_height()):
        if any(surface.get_at((x, y)).a > 64 for x in range(left, right)):
            return y
    return surface.get_height()


async def test_diacritics_are_really_drawn(display: tuple[DisplayPlayer, Events]) -> None:
    player, _ = display
    assert player.font_path == find_font()
    font = player.font(64)
    assert all(m is not None for m in font.metrics("ỦẫệỗựĐ"))
    # One line, one baseline: the plain U on the left, U with its hook above on the right.
    pair = font.render("UỦ", True, (255, 255, 255))
    split = font.size("U")[0]
    plain_top = top_ink_row(pair, 0, split)
    hooked_top = top_ink_row(pair, split, pair.get_width())
    # A font lacking the glyph draws tofu (or drops the mark): no ink well above the U.
    assert hooked_top < plain_top - 5
    alone = font.render("U", True, (255, 255, 255))
    tofu_free = font.render("Ủ", True, (255, 255, 255))
    assert pygame.image.tobytes(alone, "RGBA") != pygame.image.tobytes(tofu_free, "RGBA")
    # Decomposed input (U + combining hook) is drawn like the precomposed letter.
    frame_nfd = player.render_frame(text_item("n", text="U\u0309y ban", title=""))
    frame_nfc = player.render_frame(text_item("n", text="Ủy ban", title=""))
    assert pygame.image.tobytes(frame_nfd, "RGB") == pygame.image.tobytes(frame_nfc, "RGB")


async def test_image_is_letterboxed_not_stretched(tmp_path: Path) -> None:
    picture = pygame.Surface((400, 100))
    picture.fill((0, 200, 80))
    pygame.draw.rect(picture, (255, 255, 255), pygame.Rect(0, 0, 400, 100), 4)
    path = tmp_path / "wide.png"
    pygame.image.save(picture, str(path))

    player = DisplayPlayer((320, 320), window=False)
    item = PlayItem(
        bulletin_id="img",
        kind=BulletinKind.IMAGE,
        priority=Priority.NORMAL,
        title="Infographic",
        path=path,
    )
    frame = player.render_frame(item)
    pygame.image.save(frame, str(ARTIFACTS / "display-image.png"))
    background = frame.get_at((0, 0))
    xs, ys = [], []
    for x in range(320):
        for y in range(320):
            if frame.get_at((x, y)) != background:
                xs.append(x)
                ys.append(y)
    width = max(xs) - min(xs) + 1
    height = max(ys) - min(ys) + 1
    assert width == 320
    assert width / height == pytest.approx(4.0, rel=0.05)
    assert abs(min(ys) - (319 - max(ys))) <= 1  # centred vertically
    await player.close()


async def test_still_item_ends_after_display_seconds(display: tuple[DisplayPlayer, Events]) -> None:
    player, events = display
    began = asyncio.get_running_loop().time()
    await player.play(text_item("s", display_seconds=0.2))
    ended = await events.wait_for(EventType.ENDED, "s")
    assert asyncio.get_running_loop().time() - began >= 0.19
    assert ended.position_s == pytest.approx(0.2)
    assert player.state is PlayerState.IDLE


async def test_display_stop_cancels_the_end_and_blanks(
    display: tuple[DisplayPlayer, Events],
) -> None:
    player, events = display
    await player.play(text_item("s", display_seconds=0.1))
    await player.shown()
    shown_at = player.last_frame_at
    position = await player.stop()
    assert 0 <= position < 0.1
    await asyncio.sleep(0.15)  # past the cancelled end: nothing may arrive
    assert events.kinds_for("s") == [EventType.STARTED]
    assert distinct_colours(player.frame) == 1
    assert player.last_frame_at >= shown_at


# ---------------------------------------------------------------------- null and router


async def test_null_player_keeps_a_players_promises() -> None:
    events = Events()
    player = NullPlayer(kinds={BulletinKind.AUDIO}, default_duration_s=0.05, durations={"x": 0.1})
    player.set_event_sink(events)
    await player.play(audio_item("x", Path("/nonexistent.wav")))
    assert player.state is PlayerState.PLAYING
    assert player.health() == PlayerHealth(PlayerState.PLAYING, 0, ())
    await events.wait_for(EventType.ENDED, "x")
    assert events.kinds_for("x") == [EventType.STARTED, EventType.ENDED]
    assert player.health() == PlayerHealth(PlayerState.IDLE, 0, ())
    await player.play(audio_item("y", Path("/nonexistent.wav")))
    assert await player.stop() < 0.05
    with pytest.raises(PlayerError):
        await player.play(text_item("t"))


async def test_router_sends_each_kind_to_its_backend_and_switches(
    short_wav: Path, long_wav: Path
) -> None:
    audio = VlcPlayer(["--aout=dummy"], kinds={BulletinKind.AUDIO, BulletinKind.VIDEO})
    screen = DisplayPlayer((320, 180))
    router = PlayerRouter([audio, screen])
    events = Events()
    router.set_event_sink(events)
    try:
        assert router.kinds == {
            BulletinKind.AUDIO,
            BulletinKind.VIDEO,
            BulletinKind.TEXT,
            BulletinKind.DOCUMENT,
            BulletinKind.IMAGE,
        }
        await router.play(audio_item("sound", long_wav))
        assert router.active is audio
        assert audio.state is PlayerState.PLAYING

        await router.play(text_item("words", display_seconds=0.2))
        assert router.active is screen
        assert audio.state is PlayerState.IDLE  # switching stopped the other backend
        assert screen.state is PlayerState.PLAYING
        await events.wait_for(EventType.ENDED, "words")

        await router.play(audio_item("again", short_wav))
        assert screen.state is PlayerState.IDLE
        await events.wait_for(EventType.ENDED, "again")
        assert events.kinds_for("sound") == [EventType.STARTED]
        assert router.health() == PlayerHealth(PlayerState.IDLE, 0, ())
    finally:
        await router.close()


async def test_display_heartbeat_keeps_the_frame_fresh() -> None:
    player = DisplayPlayer((320, 180), heartbeat_s=0.05)
    try:
        await player.play(text_item("hb", display_seconds=30))
        await player.shown()
        shown_at = player.last_frame_at
        await until(lambda: player.last_frame_at > shown_at + 0.04)
        assert player.state is PlayerState.PLAYING
    finally:
        await player.close()


# ---------------------------------------------------------------------- screen faults, ticker


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_display_reports_a_frozen_screen() -> None:
    clock = FakeClock()
    player = DisplayPlayer((320, 180), clock=clock)
    try:
        assert player.screen_fault() is None
        await player.play(text_item("f", display_seconds=600))
        await player.shown()
        assert player.screen_fault() is None
        # No await from here on: the heartbeat gets no turn, just as when it is stuck.
        clock.now += player.frozen_after_s - 0.1
        assert player.screen_fault() is None
        clock.now += 0.2
        assert player.screen_fault() == "screen_frozen"
        assert player.health() == PlayerHealth(PlayerState.PLAYING, 0, (Fault.SCREEN_FROZEN,))
        player.refresh()  # what the heartbeat does
        assert player.screen_fault() is None
        assert player.health() == PlayerHealth(PlayerState.PLAYING, 0, ())
        await player.stop()
        clock.now += 100
        assert player.screen_fault() is None, "nothing to show is not a frozen screen"
    finally:
        await player.close()
    # Rendering without a screen (window=False) presents nothing, so it is never "frozen".
    headless = DisplayPlayer((320, 180), window=False, clock=clock)
    await headless.play(text_item("h", display_seconds=600))
    await headless.shown()
    clock.now += 100
    assert headless.screen_fault() is None
    await headless.close()


async def test_display_reports_a_blank_screen() -> None:
    player = DisplayPlayer((320, 180))
    try:
        await player.play(text_item("ok"))
        await player.shown()
        assert player.screen_fault() is None
        # Text of invisible characters gets past the "has text" check and draws nothing.
        for invisible in ("\u2800\u2800\u2800", "\u200b"):
            await player.play(text_item("ghost", text=invisible, title=""))
            await player.shown()
            assert player.state is PlayerState.PLAYING
            assert player.screen_fault() == "screen_blank", repr(invisible)
        # The screen lost its picture (panel re-initialised, something else drew on it).
        await player.play(text_item("ok2"))
        await player.shown()
        assert player.screen_fault() is None
        pygame.display.get_surface().fill((0, 0, 0))
        assert player.screen_fault() == "screen_blank"
        assert player.health() == PlayerHealth(PlayerState.PLAYING, 0, (Fault.SCREEN_BLANK,))
        player.refresh()
        assert player.screen_fault() is None
        await player.stop()
        assert player.screen_fault() is None, "the idle black screen is expected"
        assert player.health() == PlayerHealth(PlayerState.IDLE, 0, ())
    finally:
        await player.close()


async def test_router_collects_screen_faults() -> None:
    screen = DisplayPlayer((320, 180))
    router = PlayerRouter([NullPlayer(kinds={BulletinKind.VIDEO}), screen])
    try:
        await router.play(text_item("ghost", text="\u2800", title=""))
        await screen.shown()
        assert router.health() == PlayerHealth(PlayerState.PLAYING, 0, (Fault.SCREEN_BLANK,))
    finally:
        await router.close()


async def test_router_health_sums_stuck_stops_and_merges_faults(
    long_wav: Path, short_wav: Path
) -> None:
    audio = VlcPlayer(["--aout=dummy"], kinds={BulletinKind.AUDIO}, stop_timeout_s=0.3)
    screen = DisplayPlayer((320, 180))
    router = PlayerRouter([audio, screen])
    release = threading.Event()
    try:
        await router.play(audio_item("stuck", long_wav))
        hung = audio._slot.mp
        real_stop = hung.stop

        def blocking_stop() -> None:
            release.wait(10)  # stands in for libvlc's hang (python-vlc #74)
            real_stop()

        hung.stop = blocking_stop  # type: ignore[method-assign]
        # Switching to the screen stops the sound, and that stop hangs; what goes up is blank.
        await router.play(text_item("ghost", text="\u2800", title=""))
        await screen.shown()
        expected = (Fault.PLAYER_STUCK, Fault.SCREEN_BLANK)
        assert router.health() == PlayerHealth(PlayerState.PLAYING, 1, expected)
        release.set()
        await join_vlc_stops()
        await router.play(audio_item("after", short_wav))
        assert router.health() == PlayerHealth(PlayerState.PLAYING, 1, ())
    finally:
        release.set()
        await router.close()


class ProbeRaises(DisplayPlayer):
    """A screen whose output probe itself breaks (a driver call raising mid-check)."""

    def screen_fault(self) -> Fault | None:
        raise RuntimeError("the probe broke")


class HealthRaises(NullPlayer):
    """A backend that breaks the Player promise: its health() raises."""

    def health(self) -> PlayerHealth:
        raise RuntimeError("health broke")


async def test_a_check_that_raises_is_a_fault_not_a_lost_sample(short_wav: Path) -> None:
    screen = ProbeRaises((320, 180))
    try:
        await screen.play(text_item("t"))
        failed = (Fault.PLAYER_CHECK_FAILED,)
        assert screen.health() == PlayerHealth(PlayerState.PLAYING, 0, failed)
        router = PlayerRouter([HealthRaises(kinds={BulletinKind.AUDIO}), screen])
        assert router.health() == PlayerHealth(PlayerState.IDLE, 0, failed)
        await router.play(text_item("t2"))
        assert router.health() == PlayerHealth(PlayerState.PLAYING, 0, failed)
    finally:
        await screen.close()


async def test_stacked_marks_keep_the_baseline() -> None:
    # SDL_ttf lowers a line that holds a capital with stacked marks (Ủ, Ễ); the display
    # undoes it, so such a line stands on the same baseline as any other.
    player = DisplayPlayer((640, 200), window=False)
    plain = player.layout(text_item("a", text="Xa xa xa", title=""))
    marked = player.layout(text_item("b", text="Ủy Ễ xa", title=""))
    assert plain.runs[0].font_px == marked.runs[0].font_px
    assert marked.runs[0].baseline == plain.runs[0].baseline
    assert marked.runs[0].rect.top < plain.runs[0].rect.top  # the marks rise above
    assert marked.runs[0].rect.top >= 0

    # "xa" ends each line: its ink bottom sits on the baseline, equally in both frames.
    bottoms = []
    for layout in (plain, marked):
        run = layout.runs[0]
        tail = player.font(run.font_px).size(run.text[:-2])[0]
        frame = layout.frame_at(0)
        background = frame.get_at((0, 0))
        column = range(run.rect.left + tail, run.rect.left + run.rect.width)
        bottom = max(
            y
            for y in range(frame.get_height())
            for x in column
            if frame.get_at((x, y)) != background
        )
        assert abs(bottom - run.baseline) <= 2  # round letters overshoot a little
        bottoms.append(bottom)
    assert bottoms[0] == bottoms[1]
    await player.close()


async def test_ticker_runs_live_and_ends_with_its_item() -> None:
    player = DisplayPlayer((192, 96), heartbeat_s=30, ticker_hold_s=0, ticker_px_per_s=3000)
    events = Events()
    player.set_event_sink(events)
    try:
        item = text_item("tick", text=VIETNAMESE * 3, display_seconds=0.3)
        layout = player.layout(item)
        assert layout.ticker is not None
        # Shown whole: the airing lasts until the end of the text has crossed the panel,
        # longer than the 0.3 s asked for.
        assert layout.seconds == layout.ticker.pass_seconds > 0.3
        await player.play(item)
        await player.shown()
        first = pygame.image.tobytes(player.frame, "RGB")
        presented = player.last_frame_at
        ended = await events.wait_for(EventType.ENDED, "tick", within=WAIT_S + layout.seconds)
        assert ended.position_s == pytest.approx(layout.seconds)
        # The heartbeat (30 s) never ran: the ticker's own ticks moved the text meanwhile.
        assert player.last_frame_at > presented
        assert pygame.image.tobytes(player.frame, "RGB") != first
    finally:
        await player.close()
