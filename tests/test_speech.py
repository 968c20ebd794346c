"""espeak-ng speaks Vietnamese into a WAV that VLC plays."""

from __future__ import annotations

import array
import asyncio
import math
import os
import shutil
import wave
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import pytest

from edge_agent.players.base import EventType, PlaybackEvent, PlayerState, PlayItem
from edge_agent.players.vlc import VlcPlayer
from edge_agent.speech import EspeakEngine, SpeechError, speech_key
from loa_contract import BulletinKind, Priority

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None and not os.environ.get("CI"),
    reason="needs espeak-ng (Debian package espeak-ng)",
)

SHORT = "Xin chào bà con."
LONG = (
    "Thông báo: Ủy ban nhân dân xã tổ chức tiêm phòng dại cho chó, mèo vào sáng thứ Bảy "
    "tại nhà văn hóa thôn. Đề nghị các hộ gia đình đưa vật nuôi đến đúng giờ."
)


def wav_stats(path: Path) -> tuple[float, float]:
    """Duration in seconds and RMS (0–1) of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as wav:
        assert wav.getsampwidth() == 2
        frames = wav.getnframes()
        rate = wav.getframerate()
        samples = array.array("h", wav.readframes(frames))
    rms = math.sqrt(sum(s * s for s in samples) / max(1, len(samples))) / 32768
    return frames / rate, rms


def files_in(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir()]


@pytest.fixture
def engine() -> EspeakEngine:
    return EspeakEngine(voice="vi", speed=150)


async def test_speech_is_audible_and_grows_with_the_text(
    engine: EspeakEngine, tmp_path: Path
) -> None:
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    await asyncio.gather(engine.synthesize(SHORT, short), engine.synthesize(LONG, long))
    short_s, short_rms = wav_stats(short)
    long_s, long_rms = wav_stats(long)
    assert short_rms > 0.01 and long_rms > 0.01
    assert 0.5 < short_s < long_s
    assert long_s > 3 * short_s
    assert sorted(files_in(tmp_path)) == ["long.wav", "short.wav"]  # no temp files left


async def test_text_is_not_read_as_options(engine: EspeakEngine, tmp_path: Path) -> None:
    out = tmp_path / "dash.wav"
    await engine.synthesize("--help; rm -rf / && echo 'xin chào'", out)
    assert wav_stats(out)[1] > 0.01


async def test_failures_are_clear(tmp_path: Path) -> None:
    missing = EspeakEngine(executable="espeak-ng-that-is-not-installed")
    with pytest.raises(SpeechError, match="Debian package espeak-ng"):
        await missing.synthesize(SHORT, tmp_path / "x.wav")
    with pytest.raises(SpeechError, match="voice"):
        await EspeakEngine(voice="no-such-voice").synthesize(SHORT, tmp_path / "y.wav")
    with pytest.raises(SpeechError):
        await EspeakEngine().synthesize("   ", tmp_path / "z.wav")
    assert files_in(tmp_path) == []


def test_speech_key() -> None:
    key = speech_key("espeak-ng:vi:150", SHORT)
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == speech_key("espeak-ng:vi:150", SHORT)
    assert key != speech_key("espeak-ng:vi:160", SHORT)
    assert key != speech_key("espeak-ng:vi:150", SHORT + " ")
    assert EspeakEngine(speed=150).engine_id != EspeakEngine(speed=170).engine_id


async def test_vlc_plays_synthesized_speech(engine: EspeakEngine, tmp_path: Path) -> None:
    out = tmp_path / "speech.wav"
    await engine.synthesize(SHORT, out)
    duration, _ = wav_stats(out)
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[PlaybackEvent] = loop.create_future()

    def sink(event: PlaybackEvent) -> None:
        if event.type is EventType.ENDED and not ended.done():
            ended.set_result(event)

    player = VlcPlayer(["--aout=dummy"])
    player.set_event_sink(sink)
    try:
        await player.play(
            PlayItem(
                bulletin_id="tts",
                kind=BulletinKind.AUDIO,
                priority=Priority.NORMAL,
                title="TTS",
                path=out,
            )
        )
        assert player.state is PlayerState.PLAYING
        event = await asyncio.wait_for(ended, duration + 5)
        assert event.position_s == pytest.approx(duration, abs=0.2)
    finally:
        await player.close()
