"""Build the playback backends a hardware profile calls for: the one place that chooses them."""

from __future__ import annotations

import os
from collections.abc import Sequence

from loa_contract import BulletinKind, DeviceKind

from .players.base import Player
from .players.null import NullPlayer
from .players.router import PlayerRouter
from .profile import HardwareProfile
from .speech import EspeakEngine, SpeechEngine

_STILL = {BulletinKind.TEXT, BulletinKind.DOCUMENT, BulletinKind.IMAGE}
_TIMED = {BulletinKind.AUDIO, BulletinKind.VIDEO}


def vlc_audio_args(profile: HardwareProfile) -> list[str]:
    audio = profile.audio
    if audio is None or audio.output is None:
        return ["--aout=dummy"]
    args = [f"--aout={audio.output}"]
    if audio.device and audio.output == "alsa":
        args.append(f"--alsa-audio-device={audio.device}")
    return args


def build_player(
    profile: HardwareProfile,
    *,
    player: str = "vlc",
    display: str = "pygame",
    vlc_args: Sequence[str] = (),
) -> Player:
    """One Player for the agent: libVLC for sound and video, pygame for stills, or null ones."""
    kinds = set(profile.kinds)
    # On a speaker, text is spoken: the agent hands the backend synthesized audio.
    if profile.device_kind is DeviceKind.SPEAKER:
        kinds = (kinds - _STILL) | {BulletinKind.AUDIO}
    backends: list[Player] = []
    timed = kinds & _TIMED
    if timed:
        if player == "vlc":
            from .players.vlc import VlcPlayer

            extra = list(vlc_args)
            # An explicit --aout from the command line wins over the profile's.
            base = [] if any(a.startswith("--aout") for a in extra) else vlc_audio_args(profile)
            backends.append(
                VlcPlayer(
                    [*base, *extra],
                    timed,
                    fullscreen=bool(profile.display and profile.display.fullscreen),
                )
            )
        else:
            backends.append(NullPlayer(kinds=timed))
    still = kinds & _STILL
    if still:
        if display == "pygame":
            from .players.display import DisplayPlayer

            assert profile.display is not None  # the profile model requires it for boards
            headless = os.environ.get("SDL_VIDEODRIVER") == "dummy"
            backends.append(
                DisplayPlayer.for_profile(
                    profile.display,
                    kinds=still,
                    fullscreen=profile.display.fullscreen and not headless,
                )
            )
        else:
            backends.append(NullPlayer(kinds=still))
    if len(backends) == 1:
        return backends[0]
    return PlayerRouter(backends)


def build_speech(profile: HardwareProfile) -> SpeechEngine | None:
    if profile.device_kind is not DeviceKind.SPEAKER:
        return None
    return EspeakEngine()
