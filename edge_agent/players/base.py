"""The one small interface every playback backend obeys.

The core decides; a backend plays what it is told, reports state events, and never decides
anything itself. Events reach the asyncio loop through `loop.call_soon_threadsafe` — never
act on a backend from inside its own callback thread (libvlc deadlocks: python-vlc #77).

Each backend also says how it is (`health()`): the agent's health sample takes the player's
part from there, never from a backend's private attributes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from loa_contract import BulletinKind, Fault, Priority

log = logging.getLogger(__name__)


class PlayerState(StrEnum):
    IDLE = "idle"
    PLAYING = "playing"
    ERROR = "error"


@dataclass(frozen=True)
class Slide:
    """One picture made ahead at cache time (edge_agent/renditions.py): a document's page or
    an animation's frame, at the screen's size, and how long it stays up."""

    path: Path
    seconds: float


@dataclass(frozen=True)
class PlayItem:
    bulletin_id: str
    kind: BulletinKind
    priority: Priority
    title: str
    path: Path | None = None  # verified cache file (audio, video, image, synthesized speech)
    text: str | None = None  # text for a board
    #: How long a still item stays up at least: long text, a document's pages and an
    #: animation's loop may need longer, and then get it (`still_seconds`).
    display_seconds: float = 15.0
    start_at_s: float = 0.0
    #: A document's pages (shown once, in turn) or an animated image's frames (looped).
    slides: tuple[Slide, ...] = ()


def slide_times(item: PlayItem) -> tuple[float, ...]:
    """How long each of the item's slides stays up in one pass.

    A document's pages keep their own times, stretched evenly when together they are
    shorter than the item's `display_seconds`; an animation's frames keep theirs (it loops
    for as long as it airs).
    """
    times = tuple(slide.seconds for slide in item.slides)
    total = sum(times)
    if item.kind is BulletinKind.DOCUMENT and 0 < total < item.display_seconds:
        stretch = item.display_seconds / total
        return tuple(t * stretch for t in times)
    return times


def still_seconds(item: PlayItem) -> float:
    """How long a still item airs, as far as it is known without laying it out: a document
    all its pages, an animation at least one whole loop, anything else `display_seconds`
    (a board's text may need longer to be shown whole: DisplayPlayer knows by its layout)."""
    if item.slides:
        return max(item.display_seconds, sum(slide_times(item)))
    return item.display_seconds


class EventType(StrEnum):
    STARTED = "started"
    ENDED = "ended"  # reached its natural end
    ERROR = "error"


@dataclass(frozen=True)
class PlaybackEvent:
    type: EventType
    bulletin_id: str
    position_s: float
    detail: str = ""


EventSink = Callable[[PlaybackEvent], None]


class PlayerError(Exception):
    pass


@dataclass(frozen=True)
class PlayerHealth:
    """A player's part of the health sample."""

    state: PlayerState
    #: Stops that missed their deadline so the backend was replaced, since the player was
    #: made (python-vlc #74); the wire's `player_stuck_stops_total`.
    stuck_stops: int = 0
    #: What the player finds wrong with its own output now, each once, in a stable order.
    faults: tuple[Fault, ...] = ()
    #: Why, for those of `faults` the player can say more of (the hub shows it).
    reasons: Mapping[Fault, str] = field(default_factory=dict)


def self_check(check: Callable[[], Fault | None], backend: str) -> tuple[Fault, ...]:
    """The fault `check` finds, if any. A check that raises is a fault of its own (and
    logged): a broken probe must never cost the rest of the health sample."""
    try:
        fault = check()
    except Exception:
        log.exception("%s: its self-check failed", backend)
        return (Fault.PLAYER_CHECK_FAILED,)
    return (fault,) if fault is not None else ()


class Player(Protocol):
    """A playback backend. `on_event` is called on the asyncio loop's thread only."""

    kinds: frozenset[BulletinKind]

    def set_event_sink(self, sink: EventSink) -> None: ...

    async def play(self, item: PlayItem) -> None:
        """Start `item`, replacing anything this backend plays; return once it is playing."""

    async def stop(self) -> float:
        """Stop; return the position (s) it had reached. Never hangs (a stuck backend is reset)."""

    def position(self) -> float: ...

    @property
    def state(self) -> PlayerState: ...

    async def set_volume(self, volume: int) -> None: ...

    def health(self) -> PlayerHealth:
        """How the player is now. Never raises: a check that fails is reported as a fault."""

    async def close(self) -> None: ...
