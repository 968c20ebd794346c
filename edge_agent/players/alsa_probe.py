"""Whether the ALSA playback device a speaker plays to is there, without playing anything.

A failed airing proves the sound card gone (vlc_log.py), but a speaker outside its windows
may air nothing for a day: a USB card unplugged at noon would show only when the evening's
emergency failed. The kernel lists its sound cards under /proc/asound; reading it costs no
sound and no ALSA handle, so the health sample looks every time.
"""

from __future__ import annotations

import re
from pathlib import Path

PROC_ASOUND = Path("/proc/asound")
#: hw:0,0 · hw:1 · plughw:CARD=Headphones,DEV=0 · hw:CARD=sndrpihifiberry
_HW_NAME = re.compile(r"(?:plug)?hw:(?:CARD=)?([^,]+)(?:,(?:DEV=)?(\d+))?")


def missing_playback_device(device: str, proc_asound: Path = PROC_ASOUND) -> str | None:
    """Why the ALSA playback device `device` is not there now, or None when it is.

    A hw/plughw name is checked down to its card and device; any other name (default,
    sysdefault, dmix, a name of the card's own configuration) needs some card with a
    playback device, which is what it ends up on."""
    if not proc_asound.is_dir():
        return "no sound card: the kernel lists no ALSA devices (/proc/asound is missing)"
    if not any(proc_asound.glob("card[0-9]*/pcm[0-9]*p")):
        return "no sound card with a playback device (/proc/asound)"
    name = _HW_NAME.fullmatch(device)
    if name is None:
        return None
    card, number = name[1], int(name[2] or 0)
    # A card's id (/proc/asound/Headphones) is a link to its numbered folder.
    folder = proc_asound / (f"card{card}" if card.isdigit() else card)
    if not folder.is_dir():
        return f"sound card {card} is not there (ALSA device {device})"
    if not (folder / f"pcm{number}p").is_dir():
        return f"sound card {card} has no playback device {number} (ALSA device {device})"
    return None
