"""The regulations' lengths for what agencies and the newspaper submit, as pure rules.

Hải Phòng's rules (seeds/): an agency sends "a text of about 300 to 500 words or a recorded
bulletin of about 2 to 3 minutes"; the newspaper sends texts or finished audio "of 2 to 5
minutes". A text is judged by its words (hub/bulletins.py, SUBMIT_WORDS); recorded audio and
video by their length as the hub decoded it at upload (hub/probe.py), never by what the file
claims. "About" is `LENGTH_TOLERANCE_S` either way.
"""

from __future__ import annotations

from typing import Literal

from loa_contract import BulletinKind

#: Slack on measured audio/video lengths (a 3:02 recording is a "3-minute" bulletin).
LENGTH_TOLERANCE_S = 5.0
#: An agency's recorded bulletin, and the newspaper's bulletins, in seconds.
AGENCY_AUDIO_S = (120.0, 180.0)
NEWSPAPER_S = (120.0, 300.0)

Provider = Literal["province", "newspaper", "agency"]


def within(seconds: float, low: float, high: float) -> bool:
    return low - LENGTH_TOLERANCE_S <= seconds <= high + LENGTH_TOLERANCE_S


def recorded_length_problem(
    kind: BulletinKind, provider: Provider, duration_s: float | None
) -> tuple[float, float] | None:
    """The bounds a submitted recording misses, or None when it meets them (or no rule
    applies: the province's own, a text, a picture; or the length is not known, a file
    stored before uploads were decoded)."""
    if duration_s is None or provider == "province":
        return None
    if provider == "agency" and kind is BulletinKind.AUDIO:
        bounds = AGENCY_AUDIO_S
    elif provider == "newspaper" and kind in (BulletinKind.AUDIO, BulletinKind.VIDEO):
        bounds = NEWSPAPER_S
    else:
        return None
    return None if within(duration_s, *bounds) else bounds
