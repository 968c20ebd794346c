"""Finding a font that draws every Vietnamese letter.

A font without the stacked diacritics (ắ, ề, ỗ, ự …) draws boxes or drops marks, and a
bulletin with "ủy ban" shown as "uy ban" is wrong, not ugly. DejaVu Sans (Debian package
fonts-dejavu-core) and Noto Sans (fonts-noto-core) both cover Vietnamese completely.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

#: Every Vietnamese vowel with every tone mark, plus đ: what a font must draw.
VIETNAMESE_LETTERS = (
    "aàáảãạăằắẳẵặâầấẩẫậeèéẻẽẹêềếểễệiìíỉĩịoòóỏõọôồốổỗộơờớởỡợuùúủũụưừứửữựyỳýỷỹỵđ"
    "AÀÁẢÃẠĂẰẮẲẴẶÂẦẤẨẪẬEÈÉẺẼẸÊỀẾỂỄỆIÌÍỈĨỊOÒÓỎÕỌÔỒỐỔỖỘƠỜỚỞỠỢUÙÚỦŨỤƯỪỨỬỮỰYỲÝỶỸỴĐ"
)

_REGULAR = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/opentype/noto/NotoSans-Regular.ttf",
)
_BOLD = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf",
    "/usr/share/fonts/opentype/noto/NotoSans-Bold.ttf",
)
# fc-match always answers with something, so it is asked only for families known to cover
# Vietnamese; anything else it might fall back to could lack the glyphs.
_FC_FAMILIES = ("DejaVu Sans", "Noto Sans")


class FontNotFound(RuntimeError):
    pass


def _fc_match(family: str, bold: bool) -> Path | None:
    exe = shutil.which("fc-match")
    if exe is None:
        return None
    pattern = f"{family}:lang=vi" + (":bold" if bold else "")
    try:
        result = subprocess.run(
            [exe, "-f", "%{family}\n%{file}", pattern],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = result.stdout.splitlines()
    if result.returncode != 0 or len(lines) < 2:
        return None
    matched_family, file = lines[0], lines[1]
    if family.lower() not in matched_family.lower():
        return None
    path = Path(file)
    return path if path.is_file() else None


def find_font(*, bold: bool = False) -> Path:
    """A TrueType/OpenType font with full Vietnamese coverage, or a clear error."""
    for candidate in _BOLD if bold else _REGULAR:
        path = Path(candidate)
        if path.is_file():
            return path
    for family in _FC_FAMILIES:
        matched = _fc_match(family, bold)
        if matched is not None:
            return matched
    if bold:
        # A regular face still draws every letter; a missing bold must not blank the board.
        return find_font(bold=False)
    raise FontNotFound(
        "no font with Vietnamese glyphs found (looked for DejaVu Sans and Noto Sans); "
        "install the Debian package fonts-dejavu-core (apt install fonts-dejavu-core)"
    )


#: Debian's fonts-noto-color-emoji: colour bitmaps at one size (CBDT), which SDL_ttf draws
#: and the board scales to each line's size.
_EMOJI = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",
)


def find_emoji_font() -> Path | None:
    """The colour emoji font, or None: a board without it leaves emoji out (never boxes)."""
    for candidate in _EMOJI:
        path = Path(candidate)
        if path.is_file():
            return path
    return None
