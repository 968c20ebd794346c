"""Text, documents and pictures on a board's screen, through pygame.

pygame (SDL) wants its screen driven from one thread: everything that touches the screen or
a timer runs on the asyncio loop's thread. What is slow does not: an item is laid out
(fonts, wrapping, pictures loaded and placed: tens of milliseconds at 1080p, several times
that on a Pi) in a worker thread, one layout at a time, while the loop goes on. `play`
returns at once and the frame follows, with a STARTED event, when it is ready; an emergency
arriving meanwhile is not kept waiting, and a layout overtaken by the next item is abandoned
at its next step. Pictures were decoded, turned upright and fitted to this screen when they
were cached (edge_agent/renditions.py): nothing big is decoded here.

An item is laid out once into a `Layout`; a frame is then a pure function of the time since
the item began (`render_frame(item, t)`), which is what lets a ticker, a document's pages or
an animation be checked pixel by pixel at chosen times without waiting. A still frame is
only re-presented by a heartbeat that also pumps SDL's events, so a real window is never
marked "not responding" and `last_frame_at` keeps moving while the loop is healthy — a stale
value means a frozen screen. A ticker or an animation additionally redraws its own box.

Text that would need letters smaller than the panel's legible size (`min_text_px`) is not
shrunk into an unreadable block: it scrolls. LED panels crawl one line right to left, as
every LED message board does; LCDs roll the page upwards like credits. Both start with the
beginning of the text at rest for a moment so a passer-by can start reading.

How long an item airs is its layout's to say (`Layout.seconds`): its display_seconds at
least, and as long as it takes to be seen whole — a ticker one whole pass, a document all
its pages, an animation one loop. That is also what its position and proof of play say.

Emoji are drawn from the colour emoji font (Noto Color Emoji: one bitmap size, scaled to
each line); anything neither font can draw is left out, never shown as a box.

SDL_VIDEODRIVER=dummy gives the same code path without a screen (tests, headless doctor).
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import functools
import itertools
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import pygame

from loa_contract import BulletinKind, Fault, Priority

from ..fonts import VIETNAMESE_LETTERS, find_emoji_font, find_font
from .base import (
    EventSink,
    EventType,
    PlaybackEvent,
    PlayerError,
    PlayerHealth,
    PlayerState,
    PlayItem,
    self_check,
    slide_times,
)

if TYPE_CHECKING:
    from ..profile import DisplayProfile

Colour = tuple[int, int, int]
_Result = TypeVar("_Result")
TickerDirection = Literal["horizontal", "vertical"]

EMERGENCY_LABEL = "KHẨN CẤP"
PRIORITY_LABEL = "ƯU TIÊN"
IDLE_BACKGROUND: Colour = (0, 0, 0)


@dataclass(frozen=True)
class FrameStyle:
    background: Colour
    title: Colour
    text: Colour
    banner: str | None = None
    banner_background: Colour = (0, 0, 0)
    banner_text: Colour = (255, 255, 255)


STYLES: dict[Priority, FrameStyle] = {
    Priority.EMERGENCY: FrameStyle(
        background=(200, 0, 0),
        title=(255, 255, 255),
        text=(255, 255, 255),
        banner=EMERGENCY_LABEL,
        banner_background=(255, 221, 0),
        banner_text=(150, 0, 0),
    ),
    Priority.PRIORITY: FrameStyle(
        background=(14, 22, 38),
        title=(255, 200, 40),
        text=(245, 245, 245),
        banner=PRIORITY_LABEL,
        banner_background=(255, 170, 0),
        banner_text=(14, 22, 38),
    ),
    Priority.NORMAL: FrameStyle(
        background=(14, 22, 38), title=(255, 200, 40), text=(245, 245, 245)
    ),
}

_MIN_FONT_PX = 8
_FONT_CACHE_LIMIT = 96
#: A crawl line is cut into pieces about this wide: no giant surface for a long document,
#: and each frame blits only the few pieces in view.
_PIECE_PX = 512
#: Between paragraphs of a crawl, and between the title and the body.
_CRAWL_SEPARATOR = "•"
#: Text made only of these is drawn by the text font in one go (Latin with every Vietnamese
#: letter, punctuation, currency); anything else is looked at letter by letter for emoji
#: and for characters no font here draws.
_NOT_PLAIN = re.compile(
    "[^\t\n\x20-\x7e\xa0-\u024f\u0300-\u036f\u1e00-\u1eff\u2010-\u2027\u2030-\u205e\u20a0-\u20c0]"
)
_ZWJ = "\u200d"
#: The emoji font's one bitmap size: SDL_ttf draws it whatever size is asked for.
_EMOJI_STRIKE_PX = 109
_EMOJI_CACHE_LIMIT = 512


def has_glyph(font: pygame.font.Font, ch: str) -> bool:
    """Whether `font` has a glyph for `ch`. SDL_ttf answers a character it lacks with the
    font's "missing" box and that box's metrics, never with an error; astral characters
    (emoji) it cannot measure at all."""
    if ord(ch) > 0xFFFF:
        return False
    metrics = font.metrics(ch)
    if not metrics or metrics[0] is None:
        return False
    missing = "\uffff"  # a noncharacter: no font has it, every font shows its box for it
    if metrics != font.metrics(missing):
        return True
    try:
        drawn = font.render(ch, True, (255, 255, 255))
    except pygame.error:
        return True  # zero width (a joiner, a space): nothing to draw, nothing missing
    box = font.render(missing, True, (255, 255, 255))
    return pygame.image.tobytes(drawn, "RGBA") != pygame.image.tobytes(box, "RGBA")


def _joins_emoji(ch: str) -> bool:
    """A character that belongs to the emoji before it: a presentation selector, a keycap,
    a skin tone, a tag (subdivision flags)."""
    code = ord(ch)
    return ch in "\ufe0f\ufe0e\u20e3" or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F


def _regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF  # two of them make a flag


class _Abandoned(Exception):
    """A layout overtaken by the next item: nobody will show it."""


@dataclass(frozen=True)
class TextRun:
    """One run of text a frame shows: the words, where, and with which font.

    `rect` is where the rendered run sits (a ticker's runs move and may hang outside their
    box); `visible` is the part of it actually on screen.
    """

    text: str
    rect: pygame.Rect
    font_px: int
    bold: bool
    colour: Colour
    visible: pygame.Rect
    baseline: int  # y of the baseline the letters stand on


@dataclass(frozen=True)
class _Piece:
    along: int  # offset from the strip's start along the scroll axis
    across: int  # offset from the box's edge across it
    surface: pygame.Surface
    run: TextRun  # with its rect relative to the strip's origin


@dataclass
class Ticker:
    """Text scrolling through `box` at `px_per_s`, looping with `gap_px` of space."""

    box: pygame.Rect
    direction: TickerDirection
    px_per_s: float
    hold_s: float
    gap_px: int
    length_px: int
    pieces: list[_Piece]

    @property
    def period_px(self) -> int:
        return self.length_px + self.gap_px

    def offset_at(self, t: float) -> int:
        """How far (whole pixels: a panel has no half pixels) the strip has moved at `t`."""
        moved = max(0.0, t - self.hold_s) * self.px_per_s
        return int(moved) % self.period_px

    def placed(self, t: float) -> Iterator[tuple[_Piece, pygame.Rect]]:
        """The pieces in view at `t` and where they are; the strip's tail and, after the
        gap, its head again can both be in view."""
        moved = self.offset_at(t)
        box = self.box
        for start in (-moved, self.period_px - moved):
            for piece in self.pieces:
                width, height = piece.surface.get_size()
                if self.direction == "horizontal":
                    rect = pygame.Rect(
                        box.left + start + piece.along, box.top + piece.across, width, height
                    )
                else:
                    rect = pygame.Rect(
                        box.left + piece.across, box.top + start + piece.along, width, height
                    )
                if rect.colliderect(box):
                    yield piece, rect

    @property
    def pass_seconds(self) -> float:
        """From the start until the end of the text has crossed the box once."""
        return self.hold_s + self.length_px / self.px_per_s


def _index_at(starts: list[float], t: float) -> int:
    return max(0, bisect.bisect_right(starts, t) - 1)


@dataclass
class Animation:
    """An animated picture's frames, each shown for its own time, looping, in `rect`."""

    rect: pygame.Rect
    frames: list[pygame.Surface]
    times: list[float]
    starts: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self.starts = list(itertools.accumulate(self.times, initial=0.0))[:-1]

    @property
    def loop_s(self) -> float:
        return sum(self.times)

    def index_at(self, t: float) -> int:
        return _index_at(self.starts, max(0.0, t) % self.loop_s)

    def next_change(self, t: float) -> float:
        """Seconds from `t` until the next frame is due."""
        within = max(0.0, t) % self.loop_s
        index = _index_at(self.starts, within)
        return self.starts[index] + self.times[index] - within


@dataclass
class Pages:
    """A document's pages (pictures made at cache time), each shown once for its time."""

    box: pygame.Rect
    paths: list[Path]
    times: list[float]
    starts: list[float] = field(init=False)

    def __post_init__(self) -> None:
        self.starts = list(itertools.accumulate(self.times, initial=0.0))[:-1]

    def index_at(self, t: float) -> int:
        return min(len(self.paths) - 1, _index_at(self.starts, t))

    def next_change(self, t: float) -> float | None:
        """Seconds from `t` until the next page is due; None on the last page."""
        index = self.index_at(t)
        if index + 1 >= len(self.paths):
            return None
        return max(0.0, self.starts[index + 1] - t)

    def draw(self, surface: pygame.Surface, index: int) -> None:
        """Load page `index` and place it in the box (blocking: a worker thread's job)."""
        _place(surface, _load_picture(self.paths[index]), self.box)


@dataclass
class Layout:
    """An item laid out for one screen: the unchanging background and, maybe, a ticker, an
    animation or a document's pages; and how long the item airs (`seconds`)."""

    base: pygame.Surface
    background: Colour
    runs: list[TextRun] = field(default_factory=list)
    ticker: Ticker | None = None
    animation: Animation | None = None
    pages: Pages | None = None
    seconds: float = 15.0

    def frame_at(self, t: float) -> pygame.Surface:
        """The whole frame at `t` (a document's page is loaded: not on the event loop)."""
        frame = self.base.copy()
        if self.pages is not None:
            self.pages.draw(frame, self.pages.index_at(t))
        self.draw_moving(frame, t)
        return frame

    @property
    def moving_box(self) -> pygame.Rect | None:
        """The part of the screen that changes by itself (a ticker's or an animation's)."""
        if self.ticker is not None:
            return self.ticker.box
        if self.animation is not None:
            return self.animation.rect
        return None

    def draw_moving(self, surface: pygame.Surface, t: float) -> None:
        """Redraw only the moving box of `surface` for time `t`."""
        self.draw_ticker(surface, t)
        animation = self.animation
        if animation is not None:
            surface.blit(self.base, animation.rect, animation.rect)
            surface.blit(animation.frames[animation.index_at(t)], animation.rect)

    def draw_ticker(self, surface: pygame.Surface, t: float) -> None:
        """Redraw only the ticker's box of `surface` for time `t`."""
        ticker = self.ticker
        if ticker is None:
            return
        surface.blit(self.base, ticker.box, ticker.box)
        clip = surface.get_clip()
        surface.set_clip(ticker.box)
        for piece, rect in ticker.placed(t):
            surface.blit(piece.surface, rect)
        surface.set_clip(clip)

    def runs_at(self, t: float) -> list[TextRun]:
        """Every run of text the frame at `t` shows, static ones first."""
        runs = list(self.runs)
        if self.ticker is not None:
            box = self.ticker.box
            runs.extend(
                replace(
                    piece.run,
                    rect=rect,
                    visible=rect.clip(box),
                    baseline=piece.run.baseline + rect.top - piece.run.rect.top,
                )
                for piece, rect in self.ticker.placed(t)
            )
        return runs


def _load_picture(path: Path) -> pygame.Surface:
    """A picture file as a 32-bit surface (pygame decodes it without holding the GIL)."""
    try:
        picture = pygame.image.load(str(path))
    except (pygame.error, OSError) as exc:
        raise PlayerError(f"cannot load picture {path.name}: {exc}") from exc
    if picture.get_bitsize() not in (24, 32):
        # smoothscale needs 24/32-bit pixels; convert() would need a video mode.
        full = pygame.Surface(picture.get_size(), pygame.SRCALPHA, 32)
        full.blit(picture, (0, 0))
        picture = full
    return picture


def _fitted(picture: pygame.Surface, box: pygame.Rect) -> pygame.Surface:
    """`picture` scaled to fit `box`, never stretched; untouched when it already fits
    exactly, as pictures fitted to the screen at cache time do on a full-screen box."""
    width, height = picture.get_size()
    if width == 0 or height == 0 or box.width <= 0 or box.height <= 0:
        return picture
    scale = min(box.width / width, box.height / height)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    if target == (width, height):
        return picture
    return pygame.transform.smoothscale(picture, target)


def _centred(size: tuple[int, int], box: pygame.Rect) -> pygame.Rect:
    return pygame.Rect(
        box.left + (box.width - size[0]) // 2, box.top + (box.height - size[1]) // 2, *size
    )


def _place(surface: pygame.Surface, picture: pygame.Surface, box: pygame.Rect) -> None:
    """Letterbox: one scale for both axes, centred in `box`."""
    fitted = _fitted(picture, box)
    surface.blit(fitted, _centred(fitted.get_size(), box))


def _is_uniform(surface: pygame.Surface) -> bool:
    """Every pixel the same colour (within a hair): nothing is drawn."""
    width, height = surface.get_size()
    reference = surface.get_at((0, 0))
    mask = pygame.mask.from_threshold(surface, reference, (4, 4, 4, 255))
    return mask.count() == width * height


class DisplayPlayer:
    """A Player for boards: text, documents (text or pages) and pictures (still or
    animated) as full-screen frames."""

    def __init__(
        self,
        size: tuple[int, int] = (1920, 1080),
        *,
        fullscreen: bool = False,
        font_path: Path | None = None,
        bold_font_path: Path | None = None,
        emoji_font_path: Path | Literal["find"] | None = "find",
        kinds: Iterable[BulletinKind] = (
            BulletinKind.TEXT,
            BulletinKind.DOCUMENT,
            BulletinKind.IMAGE,
        ),
        window: bool = True,
        heartbeat_s: float = 1.0,
        blank_after_s: float = 1.0,
        min_text_px: int | None = None,
        ticker: TickerDirection | None = None,
        ticker_px_per_s: float | None = None,
        ticker_hold_s: float = 1.0,
        ticker_fps: float = 30.0,
        frozen_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kinds: frozenset[BulletinKind] = frozenset(kinds)
        self.size = (int(size[0]), int(size[1]))
        if self.size[0] < 16 or self.size[1] < 16:
            raise PlayerError(f"screen size {self.size} is too small")
        pygame.font.init()
        self.font_path = font_path or find_font()
        self.bold_font_path = bold_font_path or (
            find_font(bold=True) if font_path is None else font_path
        )
        self._fonts: dict[tuple[bool, int], pygame.font.Font] = {}
        self._rises: dict[tuple[bool, int], int] = {}
        #: Which characters the text font draws, as they are met.
        self._drawable_chars: dict[str, bool] = {}
        self.emoji_font_path = find_emoji_font() if emoji_font_path == "find" else emoji_font_path
        self._emoji_font = (
            pygame.font.Font(str(self.emoji_font_path), _EMOJI_STRIKE_PX)
            if self.emoji_font_path is not None
            else None
        )
        #: Each emoji as the font draws it (None: it has no picture for it), and scaled.
        self._emoji_drawn: dict[str, pygame.Surface | None] = {}
        self._emoji_scaled: dict[tuple[str, int], pygame.Surface | None] = {}
        #: One layout at a time: fonts and these caches are shared. Per worker thread, the
        #: token of the item it lays out, for it to notice that the item was replaced.
        self._layout_lock = threading.Lock()
        self._job = threading.local()
        missing = self._missing_glyphs(self.font_path) or self._missing_glyphs(self.bold_font_path)
        if missing:
            raise PlayerError(
                f"font {self.font_path} lacks Vietnamese letters {missing!r}; "
                "install the Debian package fonts-dejavu-core"
            )
        # Legible from where people stand: about a thirtieth of the screen's height unless
        # the profile knows its panel better.
        self.min_text_px = max(_MIN_FONT_PX, min_text_px or round(self.size[1] / 30))
        # Small panels (LED) crawl a line; tall screens (LCD) roll the page.
        self.ticker: TickerDirection = ticker or (
            "horizontal" if self.size[1] < 240 else "vertical"
        )
        self.ticker_px_per_s = float(ticker_px_per_s or 60.0)
        if self.ticker_px_per_s <= 0:
            raise PlayerError("ticker speed must be positive")
        self.ticker_hold_s = ticker_hold_s
        # No point redrawing faster than the text moves by a pixel.
        self._tick_s = max(1.0 / ticker_fps, 1.0 / self.ticker_px_per_s)
        self._clock = clock
        self._screen: pygame.Surface | None = None
        if window:
            pygame.display.init()
            flags = pygame.FULLSCREEN if fullscreen else 0
            self._screen = pygame.display.set_mode(self.size, flags)
            pygame.display.set_caption("Loa")
            if fullscreen:
                pygame.mouse.set_visible(False)
        self.heartbeat_s = heartbeat_s
        #: A frame older than this while an item plays means the screen is frozen.
        self.frozen_after_s = frozen_after_s or max(5.0, 3 * heartbeat_s)
        # After a still item ends the next one usually follows at once; blanking only if it
        # does not avoids a black flash between slides while never leaving a stale bulletin up.
        self.blank_after_s = blank_after_s
        self._sink: EventSink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._item: PlayItem | None = None
        self._layout: Layout | None = None
        self._cached: tuple[PlayItem, Layout] | None = None
        self._state = PlayerState.IDLE
        self._token = 0
        self._started_at = 0.0
        self._last_position = 0.0
        self._end_timer: asyncio.TimerHandle | None = None
        self._blank_timer: asyncio.TimerHandle | None = None
        self._tick_timer: asyncio.TimerHandle | None = None
        self._page_timer: asyncio.TimerHandle | None = None
        #: Work in worker threads (layouts, the next page), waited for at close.
        self._work: set[asyncio.Future[Any]] = set()
        #: The board's own workers: its layouts never queue behind a cache re-hash or a
        #: document being rendered in the loop's default executor. Three: a layout being
        #: abandoned, the emergency's, and a page being composed.
        self._workers = concurrent.futures.ThreadPoolExecutor(
            max_workers=3, thread_name_prefix="board-layout"
        )
        #: Set once the current item's first frame is on screen (or it failed).
        self._shown = asyncio.Event()
        self._heartbeat: asyncio.TimerHandle | None = None
        self._closed = False
        self._frame = pygame.Surface(self.size)
        self._frame.fill(IDLE_BACKGROUND)
        #: clock() when a frame last reached the screen (or was rendered, headless).
        self.last_frame_at = self._clock()
        self._present()

    @classmethod
    def for_profile(
        cls,
        display: DisplayProfile,
        *,
        kinds: Iterable[BulletinKind] = (
            BulletinKind.TEXT,
            BulletinKind.DOCUMENT,
            BulletinKind.IMAGE,
        ),
        window: bool = True,
        fullscreen: bool | None = None,
    ) -> DisplayPlayer:
        """The screen a board profile describes: its size (turned for portrait), legible
        letters and ticker. Without a window it only lays out and renders frames (the hub's
        previews and expected airing lengths use it so)."""
        return cls(
            display.screen_size,
            fullscreen=display.fullscreen if fullscreen is None else fullscreen,
            kinds=kinds,
            window=window,
            min_text_px=display.min_text_px,
            ticker=display.ticker,
            ticker_px_per_s=display.ticker_px_per_s,
        )

    # ------------------------------------------------------------------ fonts and layout

    def font(self, size: int, *, bold: bool = False) -> pygame.font.Font:
        key = (bold, size)
        font = self._fonts.get(key)
        if font is None:
            if len(self._fonts) >= _FONT_CACHE_LIMIT:
                self._fonts.clear()
            font = pygame.font.Font(str(self.bold_font_path if bold else self.font_path), size)
            self._fonts[key] = font
        return font

    def rise(self, px: int, *, bold: bool = False) -> int:
        """How far the tallest Vietnamese letter (Ỗ, Ẳ: a capital with stacked marks)
        reaches above the font's ascent: room every line keeps on top, so such marks never
        touch the line above."""
        key = (bold, px)
        rise = self._rises.get(key)
        if rise is None:
            font = self.font(px, bold=bold)
            tops = [m[3] for m in font.metrics(VIETNAMESE_LETTERS) if m is not None]
            rise = self._rises[key] = max(0, max(tops, default=0) - font.get_ascent())
        return rise

    def line_step(self, px: int, *, bold: bool = False) -> int:
        return self.font(px, bold=bold).get_linesize() + self.rise(px, bold=bold)

    def _checkpoint(self) -> None:
        """In a worker: let the event loop's thread have the GIL if it wants it, and give
        up when the item has been replaced (an emergency cut in: its layout waits for the
        lock this one holds).

        A thread busy in Python keeps the GIL for up to 5 ms (sys.getswitchinterval) each
        time the loop asks for it back, and the loop asks at every system call; yielding at
        each step keeps an emergency's path from paying that again and again."""
        token = getattr(self._job, "token", None)
        if token is None:
            return
        time.sleep(0)
        if token != self._token:
            raise _Abandoned

    def _drawable(self, ch: str) -> bool:
        """Whether the text font has a glyph for `ch` (`has_glyph`), remembered."""
        known = self._drawable_chars.get(ch)
        if known is None:
            if len(self._drawable_chars) >= 4096:
                self._drawable_chars.clear()
            known = self._drawable_chars[ch] = has_glyph(self.font(24), ch)
        return known

    def runs(self, text: str) -> list[tuple[str, bool]]:
        """`text` cut into runs of letters the text font draws and emoji (True): an emoji
        with what joins it (a skin tone, a selector, a keycap, ZWJ and the next, the second
        letter of a flag). A character no font draws is an "emoji" the emoji font has no
        picture for: it takes no room and draws nothing."""
        if _NOT_PLAIN.search(text) is None:
            return [(text, False)] if text else []
        found: list[tuple[str, bool]] = []
        plain: list[str] = []
        index, end = 0, len(text)
        while index < end:
            ch = text[index]
            after = index + 1
            joined = after < end and (_joins_emoji(text[after]) or text[after] == _ZWJ)
            if not joined and self._drawable(ch):
                plain.append(ch)
                index = after
                continue
            if _regional(ch) and after < end and _regional(text[after]):
                after += 1
            while after < end:
                if _joins_emoji(text[after]):
                    after += 1
                elif text[after] == _ZWJ and after + 1 < end:
                    after += 2
                else:
                    break
            if plain:
                found.append(("".join(plain), False))
                plain = []
            found.append((text[index:after], True))
            index = after
        if plain:
            found.append(("".join(plain), False))
        return found

    def _emoji(self, cluster: str, px: int) -> pygame.Surface | None:
        """The emoji as tall as the text font's capitals at `px`, or None when the emoji
        font has no picture for it (so it is left out, not drawn as a box)."""
        key = (cluster, px)
        if key in self._emoji_scaled:
            return self._emoji_scaled[key]
        if cluster not in self._emoji_drawn:
            drawn: pygame.Surface | None = None
            if self._emoji_font is not None:
                try:
                    drawn = self._emoji_font.render(cluster, True, (255, 255, 255))
                except pygame.error:
                    drawn = None  # "Text has zero width": a tag or selector on its own
                # A character the font lacks comes out as a clear box, not an error.
                if drawn is not None and pygame.mask.from_surface(drawn).count() == 0:
                    drawn = None
            if len(self._emoji_drawn) >= _EMOJI_CACHE_LIMIT:
                self._emoji_drawn.clear()
            self._emoji_drawn[cluster] = drawn
        drawn = self._emoji_drawn[cluster]
        scaled = None
        if drawn is not None:
            height = max(1, self.font(px).get_ascent())
            width = max(1, round(drawn.get_width() * height / drawn.get_height()))
            scaled = pygame.transform.smoothscale(drawn, (width, height))
        if len(self._emoji_scaled) >= _EMOJI_CACHE_LIMIT:
            self._emoji_scaled.clear()
        self._emoji_scaled[key] = scaled
        return scaled

    def measure(self, text: str, px: int, *, bold: bool = False) -> int:
        """How wide `text` is drawn at `px`, emoji included."""
        font = self.font(px, bold=bold)
        width = 0
        for run, emoji in self.runs(text):
            if emoji:
                picture = self._emoji(run, px)
                width += picture.get_width() if picture is not None else 0
            else:
                width += font.size(run)[0]
        return width

    def _glyphs(
        self, text: str, px: int, bold: bool, colour: Colour
    ) -> tuple[pygame.Surface, int, int]:
        """`text` rendered, the offset of its top below its line box's top, and of its baseline.

        SDL_ttf lowers the baseline inside the surface by however far a letter rises above
        the ascent (a line with Ủ or Ễ in it comes out lower than one without); undoing that
        keeps every line and every ticker piece on one baseline. Emoji stand on it too.
        """
        font = self.font(px, bold=bold)
        ascent = font.get_ascent()
        runs = self.runs(text)
        if len(runs) == 1 and not runs[0][1]:
            if font.size(text)[0] == 0:
                # Only zero-width characters: SDL_ttf refuses to render them.
                surface = pygame.Surface((0, font.get_height()), pygame.SRCALPHA)
            else:
                surface = font.render(text, True, colour)
            tops = [m[3] for m in font.metrics(text) if m is not None]
            lowered = max(0, max(tops, default=0) - ascent)
        else:
            surface, lowered = self._mixed(runs, font, px, colour)
        top = self.rise(px, bold=bold) - lowered
        return surface, top, top + lowered + ascent

    def _mixed(
        self, runs: list[tuple[str, bool]], font: pygame.font.Font, px: int, colour: Colour
    ) -> tuple[pygame.Surface, int]:
        """Runs of letters and emoji drawn side by side on one baseline, and how far that
        baseline sits below the font's ascent."""
        ascent = font.get_ascent()
        parts: list[tuple[pygame.Surface, int | None]] = []  # (picture, lowered; None: emoji)
        for run, emoji in runs:
            if emoji:
                picture = self._emoji(run, px)
                if picture is not None:
                    parts.append((picture, None))
            elif font.size(run)[0] > 0:
                tops = [m[3] for m in font.metrics(run) if m is not None]
                parts.append(
                    (font.render(run, True, colour), max(0, max(tops, default=0) - ascent))
                )
        lowered = max((low for _, low in parts if low is not None), default=0)
        placed: list[tuple[pygame.Surface, int]] = []
        for picture, low in parts:
            # Letters keep their baseline; an emoji's foot stands on it.
            y = lowered - low if low is not None else lowered + ascent - picture.get_height()
            placed.append((picture, y))
        width = sum(picture.get_width() for picture, _ in placed)
        height = max([font.get_height() + lowered] + [y + p.get_height() for p, y in placed])
        surface = pygame.Surface((width, height), pygame.SRCALPHA)
        x = 0
        for picture, y in placed:
            # The parts never overlap: copied, not blended over the clear surface.
            surface.blit(picture, (x, y), special_flags=pygame.BLEND_RGBA_MAX)
            x += picture.get_width()
        return surface, lowered

    @staticmethod
    def _missing_glyphs(path: Path) -> str:
        font = pygame.font.Font(str(path), 24)
        return "".join(ch for ch in VIETNAMESE_LETTERS if not has_glyph(font, ch))

    def _units(self, word: str) -> list[str]:
        """The pieces a word too long for a line may be cut between: letters, whole emoji."""
        units: list[str] = []
        for run, emoji in self.runs(word):
            units.extend([run] if emoji else list(run))
        return units

    def wrap(self, text: str, px: int, width: int, *, bold: bool = False) -> list[str]:
        """Greedy word wrap at `px`; a word wider than the line is cut between letters."""
        lines: list[str] = []
        for paragraph in text.split("\n"):
            line = ""
            for word in paragraph.split():
                self._checkpoint()
                candidate = f"{line} {word}" if line else word
                if self.measure(candidate, px, bold=bold) <= width:
                    line = candidate
                    continue
                if line:
                    lines.append(line)
                line = ""
                for unit in self._units(word):
                    if line and self.measure(line + unit, px, bold=bold) > width:
                        lines.append(line)
                        line = ""
                    line += unit
            lines.append(line)
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def fit(
        self, text: str, width: int, height: int, *, bold: bool = False, max_px: int | None = None
    ) -> tuple[int, list[str]]:
        """Largest font size (binary search) whose wrapped text fits the box, and its lines.

        When nothing fits, the smallest size and its (overflowing) lines: see `fits`.
        """
        hi = max(_MIN_FONT_PX, min(height, max_px or height))
        lo = _MIN_FONT_PX
        best = (lo, self.wrap(text, lo, width, bold=bold))
        while lo <= hi:
            mid = (lo + hi) // 2
            lines = self.wrap(text, mid, width, bold=bold)
            if self.fits(lines, mid, width, height, bold=bold):
                best = (mid, lines)
                lo = mid + 1
            else:
                hi = mid - 1
        return best

    def fits(
        self, lines: list[str], px: int, width: int, height: int, *, bold: bool = False
    ) -> bool:
        return len(lines) * self.line_step(px, bold=bold) <= height and all(
            self.measure(line, px, bold=bold) <= width for line in lines
        )

    def _legible(self, fitted: tuple[int, list[str]], box: pygame.Rect, *, bold: bool) -> bool:
        size, lines = fitted
        return size >= self.min_text_px and self.fits(lines, size, box.width, box.height, bold=bold)

    def _draw_lines(
        self,
        surface: pygame.Surface,
        lines: list[str],
        px: int,
        colour: Colour,
        area: pygame.Rect,
        runs: list[TextRun],
        *,
        bold: bool = False,
        centre: bool,
    ) -> int:
        y = area.top
        step = self.line_step(px, bold=bold)
        for line in lines:
            if y + step > area.bottom + 1:
                break  # at the smallest size some text may not fit: never draw off the box
            if line.strip():
                glyphs, top, baseline = self._glyphs(line, px, bold, colour)
                x = area.left + (area.width - glyphs.get_width()) // 2 if centre else area.left
                rect = surface.blit(glyphs, (x, y + top))
                placed = pygame.Rect((x, y + top), glyphs.get_size())
                runs.append(TextRun(line, placed, px, bold, colour, rect, y + baseline))
            y += step
        return y

    def _draw_banner(self, surface: pygame.Surface, style: FrameStyle, runs: list[TextRun]) -> int:
        if style.banner is None:
            return 0
        width, height = self.size
        banner_h = max(_MIN_FONT_PX + 4, round(height * 0.16))
        surface.fill(style.banner_background, pygame.Rect(0, 0, width, banner_h))
        size, lines = self.fit(style.banner, width - 4, round(banner_h * 0.95), bold=True)
        top = (banner_h - len(lines) * self.line_step(size, bold=True)) // 2
        self._draw_lines(
            surface,
            lines,
            size,
            style.banner_text,
            pygame.Rect(2, top, width - 4, banner_h),
            runs,
            bold=True,
            centre=True,
        )
        return banner_h

    # ------------------------------------------------------------------ rendering

    def layout(self, item: PlayItem) -> Layout:
        """`item` laid out for this screen (the last one is kept: the live ticker reuses it).

        Blocking (fonts, pictures): the player itself calls it in a worker thread."""
        with self._layout_lock:
            return self._layout_locked(item)

    def _layout_locked(self, item: PlayItem, picture: pygame.Surface | None = None) -> Layout:
        if self._cached is not None and self._cached[0] == item:
            return self._cached[1]
        layout = self._lay_out(item, picture)
        self._cached = (item, layout)
        return layout

    def _lay_out(self, item: PlayItem, picture: pygame.Surface | None = None) -> Layout:
        """`item` laid out; a still picture's decoded file may come with it (`picture`)."""
        style = STYLES[item.priority]
        base = pygame.Surface(self.size)
        base.fill(style.background)
        layout = Layout(base, style.background, seconds=item.display_seconds)
        top = self._draw_banner(base, style, layout.runs)
        box = pygame.Rect(0, top, self.size[0], self.size[1] - top)
        if item.kind is BulletinKind.DOCUMENT and item.slides:
            times = list(slide_times(item))
            layout.pages = Pages(box, [slide.path for slide in item.slides], times)
            layout.seconds = max(item.display_seconds, sum(times))
        elif item.kind is BulletinKind.IMAGE and item.slides:
            layout.animation = self._animation(item, box)
            layout.seconds = max(item.display_seconds, layout.animation.loop_s)
        elif item.kind is BulletinKind.IMAGE:
            if item.path is None:
                raise PlayerError(f"image item {item.bulletin_id} has no file")
            _place(base, picture or _load_picture(item.path), box)
        else:
            if not item.text or not item.text.strip():
                raise PlayerError(f"{item.kind.value} item {item.bulletin_id} has no text to show")
            self._lay_out_text(layout, item, style, top)
            if layout.ticker is not None:
                # Shown whole: until the end of the text has crossed the screen once.
                layout.seconds = max(item.display_seconds, layout.ticker.pass_seconds)
        return layout

    def _animation(self, item: PlayItem, box: pygame.Rect) -> Animation:
        """The frames, all loaded now (the renditions kept them within a memory budget),
        scaled alike to fit `box` if they do not already."""
        frames = []
        for slide in item.slides:
            self._checkpoint()
            frames.append(_fitted(_load_picture(slide.path), box))
        rect = _centred(frames[0].get_size(), box)
        return Animation(rect, frames, [max(0.01, slide.seconds) for slide in item.slides])

    def render_frame(self, item: PlayItem, t: float = 0.0) -> pygame.Surface:
        """The frame for `item` `t` seconds into it, without touching the screen or a timer."""
        return self.layout(item).frame_at(t)

    def _lay_out_text(self, layout: Layout, item: PlayItem, style: FrameStyle, top: int) -> None:
        width, height = self.size
        margin = max(2, round(min(width, height) * 0.04))
        box = pygame.Rect(margin, top + margin, width - 2 * margin, height - top - 2 * margin)
        # NFC: text from other systems often arrives decomposed (U + combining marks), which
        # SDL_ttf places badly; every Vietnamese letter exists precomposed in the font.
        title = unicodedata.normalize("NFC", item.title).strip()
        body = unicodedata.normalize("NFC", item.text or "").strip()
        gap = max(2, margin // 2)
        title_fit: tuple[int, list[str]] | None = None
        body_box = box
        if title:
            band = pygame.Rect(
                box.left, box.top, box.width, max(_MIN_FONT_PX, round(box.height * 0.28))
            )
            title_fit = self.fit(title, band.width, band.height, bold=True)
            size, lines = title_fit
            title_bottom = box.top + len(lines) * self.line_step(size, bold=True)
            body_box = pygame.Rect(
                box.left, title_bottom + gap, box.width, box.bottom - title_bottom - gap
            )
        body_fit: tuple[int, list[str]] | None = None
        legible = True
        if body and body_box.height >= _MIN_FONT_PX:
            cap = title_fit[0] if title_fit else None
            floor = self.min_text_px
            # Tried at the legible size first: a long document then skips the search.
            floor_lines = self.wrap(body, floor, body_box.width)
            if (cap is not None and cap < floor) or not self.fits(
                floor_lines, floor, body_box.width, body_box.height
            ):
                legible = False
            else:
                body_fit = self.fit(body, body_box.width, body_box.height, max_px=cap)
        if legible:
            # Everything fits legibly: one still frame, as large as the screen allows.
            self._draw_static(layout, style, box, body_box, title_fit, body_fit)
            return
        title_static = title_fit is not None and self._legible(
            title_fit,
            pygame.Rect(box.left, box.top, box.width, body_box.top - gap - box.top),
            bold=True,
        )
        if title_static:
            self._draw_static(layout, style, box, body_box, title_fit, None)
            # Clear of the rule under the headline: text is cut off by space, not by a line.
            ticker_box = pygame.Rect(
                body_box.left, body_box.top + gap // 2, body_box.width, body_box.height - gap // 2
            )
            lead = ""
        else:
            # A headline that is itself too long to read leads the scrolling text instead.
            ticker_box, lead = box, title
        layout.ticker = self._make_ticker(ticker_box, style, lead, body)

    def _draw_static(
        self,
        layout: Layout,
        style: FrameStyle,
        box: pygame.Rect,
        body_box: pygame.Rect,
        title_fit: tuple[int, list[str]] | None,
        body_fit: tuple[int, list[str]] | None,
    ) -> None:
        surface = layout.base
        if title_fit is not None:
            size, lines = title_fit
            bottom = self._draw_lines(
                surface, lines, size, style.title, box, layout.runs, bold=True, centre=True
            )
            gap = body_box.top - bottom
            pygame.draw.line(
                surface,
                style.title,
                (box.left, bottom + gap // 2),
                (box.right - 1, bottom + gap // 2),
                max(1, size // 16),
            )
        if body_fit is not None:
            # The body never outgrows the title (fit's max_px), so the headline stays the headline.
            size, lines = body_fit
            self._draw_lines(surface, lines, size, style.text, body_box, layout.runs, centre=False)

    def _make_ticker(self, box: pygame.Rect, style: FrameStyle, lead: str, body: str) -> Ticker:
        paragraphs = [p.strip() for p in body.split("\n") if p.strip()]
        if self.ticker == "horizontal":
            return self._crawl(box, style, lead, paragraphs)
        return self._roll(box, style, lead, paragraphs)

    def _crawl(
        self, box: pygame.Rect, style: FrameStyle, lead: str, paragraphs: list[str]
    ) -> Ticker:
        """One line crawling right to left, its letters as tall as the box allows."""
        # Filling the box, but never a wall of giant letters on a big screen.
        ceiling = max(self.min_text_px, round(self.size[1] * 0.5))
        px = _MIN_FONT_PX
        lo, hi = _MIN_FONT_PX, max(_MIN_FONT_PX, min(box.height, ceiling))
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.line_step(mid, bold=True) <= box.height:
                px, lo = mid, mid + 1
            else:
                hi = mid - 1
        segments: list[tuple[str, bool, Colour]] = []
        if lead:
            segments.append((lead, True, style.title))
        for paragraph in paragraphs:
            if segments:
                segments.append((_CRAWL_SEPARATOR, False, style.text))
            segments.append((paragraph, False, style.text))
        pieces: list[_Piece] = []
        x = 0
        for text, bold, colour in segments:
            line_top = (box.height - self.line_step(px, bold=bold)) // 2
            space = self.measure(" ", px, bold=bold)
            chunk = ""
            for word in [*text.split(), ""]:
                candidate = f"{chunk} {word}" if chunk else word
                if word and (not chunk or self.measure(candidate, px, bold=bold) <= _PIECE_PX):
                    chunk = candidate
                    continue
                self._checkpoint()
                surface, top, baseline = self._glyphs(chunk, px, bold, colour)
                across = line_top + top
                rect = pygame.Rect((x, across), surface.get_size())
                run = TextRun(chunk, rect, px, bold, colour, rect, line_top + baseline)
                pieces.append(_Piece(x, across, surface, run))
                x += surface.get_width() + space
                chunk = word
        gap = max(box.width // 2, 4 * self.measure(" ", px))
        return Ticker(box, "horizontal", self.ticker_px_per_s, self.ticker_hold_s, gap, x, pieces)

    def _roll(
        self, box: pygame.Rect, style: FrameStyle, lead: str, paragraphs: list[str]
    ) -> Ticker:
        """The page, wrapped at the legible size, rolling upwards."""
        pieces: list[_Piece] = []
        y = 0

        def add(lines: list[str], px: int, bold: bool, colour: Colour, centre: bool) -> None:
            nonlocal y
            for line in lines:
                if line.strip():
                    self._checkpoint()
                    surface, top, baseline = self._glyphs(line, px, bold, colour)
                    across = (box.width - surface.get_width()) // 2 if centre else 0
                    rect = pygame.Rect((across, y + top), surface.get_size())
                    run = TextRun(line, rect, px, bold, colour, rect, y + baseline)
                    pieces.append(_Piece(y + top, across, surface, run))
                y += self.line_step(px, bold=bold)

        px = self.min_text_px
        if lead:
            title_px = round(px * 1.25)
            add(
                self.wrap(lead, title_px, box.width, bold=True),
                title_px,
                True,
                style.title,
                True,
            )
            y += px // 2
        for index, paragraph in enumerate(paragraphs):
            if index:
                y += px // 2
            add(self.wrap(paragraph, px, box.width), px, False, style.text, False)
        gap = max(box.height // 2, 2 * px)
        return Ticker(box, "vertical", self.ticker_px_per_s, self.ticker_hold_s, gap, y, pieces)

    def save_frame(self, path: Path) -> Path:
        """Write what the screen shows now as a PNG (doctor's test pattern, tests)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(self._frame, str(path))
        return path

    @property
    def frame(self) -> pygame.Surface:
        return self._frame

    def _present(self, area: pygame.Rect | None = None) -> None:
        if self._screen is not None:
            if area is None:
                self._screen.blit(self._frame, (0, 0))
                pygame.display.flip()
            else:
                # A ticker's tick: only its box changed, so only that goes to the screen.
                self._screen.blit(self._frame, area, area)
                pygame.display.update(area)
        self.last_frame_at = self._clock()

    def refresh(self) -> None:
        """Present the current frame again (the heartbeat does this every `heartbeat_s`)."""
        if not self._closed:
            self._present()

    def _show(self, frame: pygame.Surface) -> None:
        self._frame = frame
        self._present()

    def _blank(self) -> None:
        self._blank_timer = None
        if self._state is not PlayerState.PLAYING:
            frame = pygame.Surface(self.size)
            frame.fill(IDLE_BACKGROUND)
            self._layout = None
            self._show(frame)

    def _beat(self) -> None:
        self._heartbeat = None
        if self._closed or self._loop is None:
            return
        # Draining the queue (not just pumping) keeps it from filling with input events.
        pygame.event.get()
        self._present()
        self._heartbeat = self._loop.call_later(self.heartbeat_s, self._beat)

    def _tick(self, token: int) -> None:
        self._tick_timer = None
        layout = self._layout
        box = layout.moving_box if layout is not None else None
        if token != self._token or layout is None or box is None or self._loop is None:
            return
        # The same pure function of elapsed time the tests check: the loop only ticks it.
        at = self.position()
        layout.draw_moving(self._frame, at)
        self._present(box)
        self._tick_timer = self._loop.call_later(self._tick_after(layout, at), self._tick, token)

    def _tick_after(self, layout: Layout, at: float) -> float:
        if layout.animation is not None:
            # Just after the next frame is due, so it is the one drawn.
            return layout.animation.next_change(at) + 0.001
        return self._tick_s

    def _next_page(self, token: int) -> None:
        """Have the next page composed in a worker now, and shown when its time comes."""
        layout, loop = self._layout, self._loop
        if layout is None or layout.pages is None or loop is None:
            return
        pages = layout.pages
        at = self.position()
        delay = pages.next_change(at)
        if delay is None:
            return  # the last page stays until the item ends
        index = pages.index_at(at) + 1
        work = self._in_worker(layout.frame_at, pages.starts[index])
        self._page_timer = loop.call_later(delay, self._turn_page, token, work)

    def _turn_page(self, token: int, work: asyncio.Future[pygame.Surface]) -> None:
        self._page_timer = None
        if token != self._token:
            return
        if work.done():
            self._page_ready(token, work)
        else:
            work.add_done_callback(functools.partial(self._page_ready, token))

    def _page_ready(self, token: int, work: asyncio.Future[pygame.Surface]) -> None:
        if token != self._token or work.cancelled():
            return
        error = work.exception()
        if error is not None:
            self._fail(token, f"a page could not be shown: {error}")
            return
        self._show(work.result())
        self._next_page(token)

    # ------------------------------------------------------------------ health

    def screen_fault(self) -> Fault | None:
        """What is wrong with the screen while an item should be on it, if anything.

        SCREEN_FROZEN: no frame reached the screen for `frozen_after_s` (the heartbeat or
        the loop behind it is stuck; only a real display presents). SCREEN_BLANK: what the
        screen shows is one flat colour although an item plays (and is laid out).
        """
        if self._closed or self._state is not PlayerState.PLAYING:
            return None
        if self._screen is not None and self._clock() - self.last_frame_at > self.frozen_after_s:
            return Fault.SCREEN_FROZEN
        if self._layout is None:
            return None  # its first frame is being made
        try:
            shown = self._screen if self._screen is not None else self._frame
            return Fault.SCREEN_BLANK if _is_uniform(shown) else None
        except pygame.error:
            return Fault.SCREEN_BLANK  # the display surface is gone: nothing can be showing

    def health(self) -> PlayerHealth:
        # A screen's stop only cancels timers and blanks: it cannot hang.
        return PlayerHealth(self._state, 0, self_check(self.screen_fault, "screen"))

    # ------------------------------------------------------------------ Player interface

    def set_event_sink(self, sink: EventSink) -> None:
        self._sink = sink

    @property
    def state(self) -> PlayerState:
        return self._state

    def position(self) -> float:
        """Seconds into the item shown so far: its start until its first frame is up, then
        the time on screen, up to the layout's airing length."""
        item, layout, loop = self._item, self._layout, self._loop
        if self._state is PlayerState.PLAYING and item is not None and loop is not None:
            if layout is None:
                return item.start_at_s
            elapsed = item.start_at_s + loop.time() - self._started_at
            return min(elapsed, layout.seconds)
        return self._last_position

    def airing_seconds(self) -> float | None:
        """How long the item on screen airs in all (None while it is being laid out)."""
        return self._layout.seconds if self._layout is not None else None

    async def shown(self) -> None:
        """Wait until the item last played is on screen (or has failed, or was stopped)."""
        await self._shown.wait()

    async def play(self, item: PlayItem) -> None:
        """Start `item`: it is laid out in a worker thread and appears, with a STARTED
        event, when ready (or an ERROR event says why it cannot). Returns at once, so an
        emergency behind it never waits for a long text or a picture to be laid out."""
        if self._closed:
            raise PlayerError("player is closed")
        if item.kind not in self.kinds:
            raise PlayerError(f"this display does not show {item.kind.value}")
        loop = self._loop = asyncio.get_running_loop()
        self._cancel_timers()
        self._token += 1
        token = self._token
        self._item = item
        self._layout = None
        self._state = PlayerState.PLAYING
        self._started_at = loop.time()
        self._last_position = item.start_at_s
        self._shown.clear()
        work = self._in_worker(self._lay_out_for, item, token)
        work.add_done_callback(functools.partial(self._laid_out, item, token))
        if self._screen is not None and self._heartbeat is None:
            self._heartbeat = loop.call_later(self.heartbeat_s, self._beat)

    def _in_worker(self, job: Callable[..., _Result], *args: object) -> asyncio.Future[_Result]:
        assert self._loop is not None
        work = self._loop.run_in_executor(self._workers, job, *args)
        self._work.add(work)
        work.add_done_callback(self._work_done)
        return work

    def _work_done(self, work: asyncio.Future[Any]) -> None:
        self._work.discard(work)
        if not work.cancelled():
            work.exception()  # retrieved: a failure nobody waits for any more is not news

    def _lay_out_for(self, item: PlayItem, token: int) -> tuple[Layout, pygame.Surface]:
        """In a worker: the item's layout and its first frame (a resumed ticker carries on
        from where it was cut off, a resumed document from its page)."""
        # A picture is decoded before taking the lock (no font is involved, and pygame lets
        # go of the GIL meanwhile): an emergency's layout never waits for a photo to load.
        picture = None
        if item.kind is BulletinKind.IMAGE and not item.slides and item.path is not None:
            picture = _load_picture(item.path)
        with self._layout_lock:
            self._job.token = token
            try:
                self._checkpoint()
                layout = self._layout_locked(item, picture)
            finally:
                self._job.token = None
        if token != self._token:
            raise _Abandoned
        # Surfaces only from here: no lock (a document's page is loaded and placed).
        return layout, layout.frame_at(item.start_at_s)

    def _laid_out(
        self, item: PlayItem, token: int, work: asyncio.Future[tuple[Layout, pygame.Surface]]
    ) -> None:
        if work.cancelled() or token != self._token or self._closed or self._loop is None:
            return  # overtaken by the next item (or a stop): nobody shows it
        error = work.exception()
        if error is not None:
            detail = str(error) if isinstance(error, PlayerError) else repr(error)
            self._fail(token, detail)
            return
        layout, frame = work.result()
        loop = self._loop
        self._layout = layout
        self._started_at = loop.time()
        self._show(frame)
        self._shown.set()
        remaining = max(0.0, layout.seconds - item.start_at_s)
        self._end_timer = loop.call_later(remaining, self._finish, token)
        if layout.moving_box is not None:
            delay = self._tick_after(layout, item.start_at_s)
            self._tick_timer = loop.call_later(delay, self._tick, token)
        if layout.pages is not None:
            self._next_page(token)
        if self._sink is not None:
            self._sink(PlaybackEvent(EventType.STARTED, item.bulletin_id, item.start_at_s))

    def _fail(self, token: int, detail: str) -> None:
        """The item cannot be shown: the screen goes blank (never the replaced item left up
        as if nothing happened) and an ERROR event says why."""
        item = self._item
        position = self.position()
        self._cancel_timers()
        self._state = PlayerState.ERROR
        self._last_position = position
        self._layout = None
        frame = pygame.Surface(self.size)
        frame.fill(IDLE_BACKGROUND)
        self._show(frame)
        self._shown.set()
        if self._sink is not None and item is not None and token == self._token:
            self._sink(PlaybackEvent(EventType.ERROR, item.bulletin_id, position, detail))

    def _finish(self, token: int) -> None:
        self._end_timer = None
        if token != self._token or self._item is None or self._loop is None:
            return
        self._last_position = self.position()
        self._state = PlayerState.IDLE
        for timer in (self._tick_timer, self._page_timer):
            if timer is not None:
                timer.cancel()
        self._tick_timer = self._page_timer = None
        self._blank_timer = self._loop.call_later(self.blank_after_s, self._blank)
        if self._sink is not None:
            self._sink(PlaybackEvent(EventType.ENDED, self._item.bulletin_id, self._last_position))

    def _cancel_timers(self) -> None:
        for timer in (self._end_timer, self._blank_timer, self._tick_timer, self._page_timer):
            if timer is not None:
                timer.cancel()
        self._end_timer = self._blank_timer = self._tick_timer = self._page_timer = None

    async def stop(self) -> float:
        position = self.position()
        self._last_position = position
        self._token += 1  # a layout under way gives up at its next step
        # An ended item still on screen (its blanking pending) must go too.
        on_screen = self._state is not PlayerState.IDLE or self._blank_timer is not None
        self._cancel_timers()
        self._state = PlayerState.IDLE
        self._shown.set()
        if on_screen and not self._closed:
            self._blank()
        return position

    async def set_volume(self, volume: int) -> None:
        """A screen has no volume; a board's sound goes through its audio player."""

    async def close(self) -> None:
        if self._closed:
            return
        await self.stop()
        self._closed = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if self._work:
            # A layout gives up at its next step; none may run on once the display is gone.
            await asyncio.wait(set(self._work), timeout=10)
        self._workers.shutdown(wait=False)
        if self._screen is not None:
            self._screen = None
            pygame.display.quit()
