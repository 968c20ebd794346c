"""How long a bulletin airs on a board: the one answer for the agent and the hub.

A board shows a text, a document or a picture for its `display_seconds` at least, and as
long as it takes to be seen whole: a long text one whole pass of its ticker at the panel's
speed, a document each page for its letters at the panel's reading pace (between the
profile's least and most per page), an animation one loop. The agent airs items so; the hub
imports these to show the expected length before publishing, and to judge a reported
airing.

Importing this module imports neither pygame nor Pillow: `text_airing_seconds` lays the text
out with the board's own renderer (edge_agent/players/display.py, pygame) only when called.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loa_contract import BulletinKind, Priority

from .players.base import PlayItem, Slide
from .profile import DisplayProfile

if TYPE_CHECKING:
    from .renditions import Rendition

if TYPE_CHECKING:
    from .players.display import DisplayPlayer


def rendition_item(
    rendition: Rendition, folder: Path, display: DisplayProfile | None, common: dict[str, Any]
) -> PlayItem:
    """A board's item for a document's pages, an animation's frames or a still picture made
    by edge_agent/renditions.py into `folder` (the agent's programme and the hub's previews
    both build it so). `common`: the item's other fields (bulletin_id, priority, title...)."""
    if rendition.pages:
        assert display is not None  # pages are made only for boards with a display
        pages = tuple(
            Slide(folder / page.file, page_seconds(page.chars, display)) for page in rendition.pages
        )
        return PlayItem(kind=BulletinKind.DOCUMENT, slides=pages, **common)
    if rendition.frames:
        frames = tuple(Slide(folder / f.file, f.ms / 1000) for f in rendition.frames)
        return PlayItem(kind=BulletinKind.IMAGE, slides=frames, **common)
    assert rendition.image is not None
    return PlayItem(kind=BulletinKind.IMAGE, path=folder / rendition.image, **common)


def page_seconds(chars: int, display: DisplayProfile) -> float:
    """How long one page stays up: its letters at the reading pace, within the bounds (a
    page of pictures only gets the least)."""
    reading = chars / display.reading_chars_per_s
    return min(display.page_max_s, max(display.page_min_s, reading))


def document_airing_seconds(
    page_chars: Sequence[int], display: DisplayProfile, display_seconds: float
) -> float:
    """A document shown as pages: every page in turn, and `display_seconds` at least."""
    return max(display_seconds, sum(page_seconds(chars, display) for chars in page_chars))


def animation_airing_seconds(frame_ms: Sequence[int], display_seconds: float) -> float:
    """An animated picture: `display_seconds`, and at least one whole loop."""
    return max(display_seconds, sum(frame_ms) / 1000)


def text_airing_seconds(
    text: str,
    display: DisplayProfile,
    *,
    title: str = "",
    priority: Priority = Priority.NORMAL,
    display_seconds: float = 15.0,
    screen: DisplayPlayer | None = None,
) -> float:
    """How long a text (or a document shown as text) airs on a board with this display:
    `display_seconds` when it fits the screen legibly, else one whole pass of its ticker.

    Lays the text out as the board does (pygame and its fonts: tens of milliseconds for a
    long text, so a server calls it in a worker thread). A caller timing many texts for one
    profile passes its own `screen`, `DisplayPlayer.for_profile(display, window=False)`.
    """
    if screen is None:
        from .players.display import DisplayPlayer

        screen = DisplayPlayer.for_profile(display, window=False)
    item = PlayItem(
        bulletin_id="airing-length",
        kind=BulletinKind.TEXT,
        priority=priority,
        title=title,
        text=text,
        display_seconds=display_seconds,
    )
    return screen.layout(item).seconds
