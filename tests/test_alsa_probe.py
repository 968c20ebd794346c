"""Whether the ALSA device a speaker plays to is there, read from the kernel's /proc/asound
(a tree laid out as the kernel does in a temporary folder), and the player's health with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.players.alsa_probe import missing_playback_device
from edge_agent.players.vlc import VlcPlayer
from loa_contract import Fault


def card(proc: Path, number: int, ident: str, *pcms: str) -> None:
    folder = proc / f"card{number}"
    for pcm in pcms:
        (folder / pcm).mkdir(parents=True)
    folder.mkdir(parents=True, exist_ok=True)
    (proc / ident).symlink_to(folder.name)


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "asound"
    root.mkdir()
    card(root, 0, "Headphones", "pcm0p")
    card(root, 2, "Microphone", "pcm0c")  # capture only
    return root


@pytest.mark.parametrize(
    ("device", "missing"),
    [
        ("default", None),
        ("sysdefault:CARD=Headphones", None),
        ("dmix", None),
        ("hw:0,0", None),
        ("hw:0", None),
        ("plughw:0,0", None),
        ("hw:CARD=Headphones,DEV=0", None),
        ("plughw:CARD=Headphones", None),
        ("hw:1,0", "sound card 1 is not there (ALSA device hw:1,0)"),
        ("hw:CARD=Gone,DEV=0", "sound card Gone is not there (ALSA device hw:CARD=Gone,DEV=0)"),
        ("hw:0,1", "sound card 0 has no playback device 1 (ALSA device hw:0,1)"),
        ("hw:2,0", "sound card 2 has no playback device 0 (ALSA device hw:2,0)"),
    ],
)
def test_a_device_is_there_or_named_missing(proc: Path, device: str, missing: str | None) -> None:
    assert missing_playback_device(device, proc) == missing


def test_no_card_at_all_or_none_that_plays(tmp_path: Path) -> None:
    assert "missing" in (missing_playback_device("default", tmp_path / "nothing") or "")
    only_capture = tmp_path / "asound"
    card(only_capture.parent / "asound", 0, "Mic", "pcm0c")
    assert missing_playback_device("default", only_capture) == (
        "no sound card with a playback device (/proc/asound)"
    )


async def test_the_player_names_a_card_unplugged_while_nothing_plays(proc: Path) -> None:
    """A USB card unplugged outside the windows: seen at the next health sample, not at the
    evening's emergency; plugged back, the fault goes."""
    player = VlcPlayer(["--aout=alsa", "--alsa-audio-device=hw:1,0"], proc_asound=proc)
    try:
        health = player.health()
        assert health.faults == (Fault.AUDIO_OUTPUT_FAILED,)
        assert health.reasons[Fault.AUDIO_OUTPUT_FAILED] == (
            "sound card 1 is not there (ALSA device hw:1,0)"
        )
        card(proc, 1, "Device", "pcm0p")  # plugged back in
        assert player.health().faults == ()
    finally:
        await player.close()


@pytest.mark.parametrize(
    ("args", "device"),
    [
        (["--aout=dummy"], None),
        ([], None),
        (["--aout=pulse"], None),
        (["--aout=alsa"], "default"),
        (["--aout=alsa", "--alsa-audio-device=hw:1,0"], "hw:1,0"),
        (["--aout=alsa", "--aout=dummy"], None),  # the last word wins, as in libvlc
    ],
)
async def test_only_an_alsa_output_is_looked_for(
    proc: Path, args: list[str], device: str | None
) -> None:
    player = VlcPlayer(args, proc_asound=proc)
    try:
        assert player.alsa_device == device
    finally:
        await player.close()
