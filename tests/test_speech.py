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
from edge_agent.speech import EspeakEngine, SpeechError, speech_key, spoken_text
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


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("🚓 Cảnh báo lũ 🌊", "Cảnh báo lũ"),
        ("Lũ🌊lớn", "Lũ lớn"),  # words either side of an emoji stay apart
        ("⚠️ Khẩn cấp! 👨‍👩‍👧 🇻🇳 👍🏽", "Khẩn cấp!"),
        ("Nhiệt độ 30°C, độ ẩm 80%, trẻ ≥ 6 tuổi", "Nhiệt độ 30°C, độ ẩm 80%, trẻ ≥ 6 tuổi"),
        ("Gọi 1️⃣1️⃣4️⃣ khi cháy → chạy ra ngoài ★", "Gọi 114 khi cháy chạy ra ngoài"),
        ("U\u0309y ban\n\n  xã\u200b ", "Ủy ban\nxã"),  # NFC, blank lines out
        ("🚓🚒", ""),
    ],
)
def test_emoji_and_symbols_are_not_read_aloud(text: str, spoken: str) -> None:
    assert spoken_text(text) == spoken


async def test_espeak_is_never_given_an_emoji_s_name(engine: EspeakEngine, tmp_path: Path) -> None:
    plain, with_emoji = tmp_path / "plain.wav", tmp_path / "emoji.wav"
    await engine.synthesize("Cảnh báo lũ", plain)
    await engine.synthesize("🚓 Cảnh báo lũ 🌊🚒", with_emoji)
    assert wav_stats(with_emoji)[0] == pytest.approx(wav_stats(plain)[0], abs=0.02)
    # What it would have said: espeak-ng itself reads the names of emoji out loud.
    raw = tmp_path / "raw.wav"
    proc = await asyncio.create_subprocess_exec(
        "espeak-ng", "-v", "vi", "-s", "150", "-b", "1", "-w", str(raw), "🚓 Cảnh báo lũ 🌊🚒"
    )
    assert await proc.wait() == 0
    assert wav_stats(raw)[0] > wav_stats(plain)[0] + 1.0
    with pytest.raises(SpeechError, match="nothing to say"):
        await engine.synthesize("🚓🚒", tmp_path / "none.wav")
