"""Every shipped hardware profile loads; a bad one is refused with the field at fault named."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.profile import PROFILES_DIR, ProfileError, load_profile
from loa_contract import DeviceKind

SHIPPED = sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))

GOOD_SPEAKER = """
name = "t"
device_kind = "speaker"
kinds = ["text", "audio"]
[audio]
output = "alsa"
[relay]
gpio_pin = 17
"""


def test_the_three_profiles_ship() -> None:
    assert {"speaker-cluster", "led-board-p10", "lcd-board-1080p"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    if profile.device_kind is DeviceKind.SPEAKER:
        assert profile.audio is not None
    else:
        assert profile.display is not None


def test_speaker_cluster_has_its_relay_and_volume_limits() -> None:
    profile = load_profile("speaker-cluster")
    assert profile.relay is not None and profile.relay.gpio_pin == 17
    assert profile.relay.pre_roll_s > 0 and profile.relay.idle_off_s > 0
    assert profile.audio is not None
    assert profile.audio.volume_min <= profile.audio.emergency_volume <= 100


@pytest.mark.parametrize(
    ("replace", "by", "field"),
    [
        ("gpio_pin = 17", "gpio_pin = 99", "relay.gpio_pin"),
        ('output = "alsa"', 'output = "alsa"\nvolume_max = 150', "audio.volume_max"),
        ('kinds = ["text", "audio"]', 'kinds = ["text", "hologram"]', "kinds.1"),
        ("[relay]", "[relay]\nwarmup = 3", "relay.warmup"),
        ('device_kind = "speaker"', 'device_kind = "toaster"', "device_kind"),
    ],
)
def test_a_bad_profile_names_the_field(tmp_path: Path, replace: str, by: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(GOOD_SPEAKER.replace(replace, by))
    with pytest.raises(ProfileError) as err:
        load_profile(str(path), tmp_path)
    assert field in str(err.value)
    assert str(path) in str(err.value)


def test_a_speaker_without_audio_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "mute.toml"
    path.write_text('name = "m"\ndevice_kind = "speaker"\nkinds = ["text"]\n')
    with pytest.raises(ProfileError, match=r"\[audio\]"):
        load_profile(str(path), tmp_path)


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="speaker-cluster"):
        load_profile("no-such-board")


def test_the_agent_refuses_a_bad_profile_at_start(tmp_path: Path) -> None:
    from edge_agent.cli import main
    from edge_agent.identity import Identity

    Identity(
        hub_url="http://127.0.0.1:9",
        device_id="d1",
        device_secret="s",
        device_kind=DeviceKind.SPEAKER,
        commune="x",
        profile="no-such-board",
        hub_keys=[],
    ).save(tmp_path)
    assert main(["--lang", "en", "run", "--data", str(tmp_path), "--player", "null"]) == 2


GOOD_BOARD = """
name = "b"
device_kind = "board"
kinds = ["text", "document", "image"]
[display]
width = 1920
height = 1080
"""


@pytest.mark.parametrize(
    ("by", "field"),
    [
        ("page_min_s = 30\npage_max_s = 10", "page_min_s must not exceed page_max_s"),
        ("reading_chars_per_s = 0", "display.reading_chars_per_s"),
        ("page_max_s = -1", "display.page_max_s"),
        ('document_view = "slideshow"', "display.document_view"),
    ],
)
def test_a_board_s_reading_pace_is_checked(tmp_path: Path, by: str, field: str) -> None:
    path = tmp_path / "board.toml"
    path.write_text(GOOD_BOARD + by + "\n")
    with pytest.raises(ProfileError) as err:
        load_profile(str(path), tmp_path)
    assert field in str(err.value)


def test_documents_show_as_pages_on_screens_and_as_text_on_small_panels(tmp_path: Path) -> None:
    lcd, led = load_profile("lcd-board-1080p").display, load_profile("led-board-p10").display
    assert lcd is not None and led is not None
    assert lcd.shows_pages and not led.shows_pages
    path = tmp_path / "portrait.toml"
    path.write_text(GOOD_BOARD + 'orientation = "portrait"\ndocument_view = "text"\n')
    portrait = load_profile(str(path), tmp_path).display
    assert portrait is not None
    assert portrait.screen_size == (1080, 1920) and not portrait.shows_pages
