"""Text and images on a board's screen, through pygame.

pygame (SDL) wants one thread, so everything here runs on the asyncio loop's thread: build
the player on that thread and call it only from there. An item is laid out once (fonts,
wrapping, images: milliseconds even at 1080p) into a `Layout`; a frame is then a pure
function of the time since the item began (`render_frame(item, t)`), which is what lets a
ticker be checked pixel by pixel at chosen times without waiting. A still frame is only
re-presented by a heartbeat that also pumps SDL's events, so a real window is never marked
"not responding" and `last_frame_at` keeps moving while the loop is healthy — a stale value
means a frozen screen. A ticker additionally redraws its own strip every tick.

Text that would need letters smaller than the panel's legible size (`min_text_px`) is not
shrunk into an unreadable block: it scrolls. LED panels crawl one line right to left, as
every LED message board does; LCDs roll the page upwards like credits. Both loop, with a
gap, until the item's display time ends, and start with the beginning of the text at rest
for a moment so a passer-by can start reading.

SDL_VIDEODRIVER=dummy gives the same code path without a screen (tests, headless doctor).
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pygame

from loa_contract import BulletinKind, Fault, Priority

from ..fonts import VIETNAMESE_LETTERS, find_font
from .base import (
    EventSink,
    EventType,
    PlaybackEvent,
    PlayerError,
    PlayerHealth,
    PlayerState,
    PlayItem,
    self_check,
)

Colour = tuple[int, int, int]
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


@dataclass
class Layout:
    """An item laid out for one screen: the unchanging background and, maybe, a ticker."""

    base: pygame.Surface
    background: Colour
    runs: list[TextRun] = field(default_factory=list)
    ticker: Ticker | None = None

    def frame_at(self, t: float) -> pygame.Surface:
        frame = self.base.copy()
        self.draw_ticker(frame, t)
        return frame

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


def _is_uniform(surface: pygame.Surface) -> bool:
    """Every pixel the same colour (within a hair): nothing is drawn."""
    width, height = surface.get_size()
    reference = surface.get_at((0, 0))
    mask = pygame.mask.from_threshold(surface, reference, (4, 4, 4, 255))
    return mask.count() == width * height


class DisplayPlayer:
    """A Player for boards: TEXT, DOCUMENT-with-text and IMAGE items as full-screen frames."""

    def __init__(
        self,
        size: tuple[int, int] = (1920, 1080),
        *,
        fullscreen: bool = False,
        font_path: Path | None = None,
        bold_font_path: Path | None = None,
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
        self._heartbeat: asyncio.TimerHandle | None = None
        self._closed = False
        self._frame = pygame.Surface(self.size)
        self._frame.fill(IDLE_BACKGROUND)
        #: clock() when a frame last reached the screen (or was rendered, headless).
        self.last_frame_at = self._clock()
        self._present()

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

    def _glyphs(
        self, text: str, px: int, bold: bool, colour: Colour
    ) -> tuple[pygame.Surface, int, int]:
        """`text` rendered, the offset of its top below its line box's top, and of its baseline.

        SDL_ttf lowers the baseline inside the surface by however far a letter rises above
        the ascent (a line with Ủ or Ễ in it comes out lower than one without); undoing that
        keeps every line and every ticker piece on one baseline.
        """
        font = self.font(px, bold=bold)
        if font.size(text)[0] == 0:
            # Only zero-width characters: SDL_ttf refuses to render them; they draw nothing.
            surface = pygame.Surface((0, font.get_height()), pygame.SRCALPHA)
        else:
            surface = font.render(text, True, colour)
        tops = [m[3] for m in font.metrics(text) if m is not None]
        lowered = max(0, max(tops, default=0) - font.get_ascent())
        top = self.rise(px, bold=bold) - lowered
        return surface, top, top + lowered + font.get_ascent()

    @staticmethod
    def _missing_glyphs(path: Path) -> str:
        font = pygame.font.Font(str(path), 24)
        metrics = font.metrics(VIETNAMESE_LETTERS)
        return "".join(ch for ch, m in zip(VIETNAMESE_LETTERS, metrics, strict=True) if m is None)

    @staticmethod
    def wrap(text: str, font: pygame.font.Font, width: int) -> list[str]:
        """Greedy word wrap; a word wider than the line is cut between letters."""
        lines: list[str] = []
        for paragraph in text.split("\n"):
            line = ""
            for word in paragraph.split():
                candidate = f"{line} {word}" if line else word
                if font.size(candidate)[0] <= width:
                    line = candidate
                    continue
                if line:
                    lines.append(line)
                line = ""
                for ch in word:
                    if line and font.size(line + ch)[0] > width:
                        lines.append(line)
                        line = ""
                    line += ch
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
        best = (lo, self.wrap(text, self.font(lo, bold=bold), width))
        while lo <= hi:
            mid = (lo + hi) // 2
            lines = self.wrap(text, self.font(mid, bold=bold), width)
            if self.fits(lines, mid, width, height, bold=bold):
                best = (mid, lines)
                lo = mid + 1
            else:
                hi = mid - 1
        return best

    def fits(
        self, lines: list[str], px: int, width: int, height: int, *, bold: bool = False
    ) -> bool:
        font = self.font(px, bold=bold)
        return len(lines) * self.line_step(px, bold=bold) <= height and all(
            font.size(line)[0] <= width for line in lines
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
        """`item` laid out for this screen (the last one is kept: the live ticker reuses it)."""
        if self._cached is not None and self._cached[0] == item:
            return self._cached[1]
        style = STYLES[item.priority]
        base = pygame.Surface(self.size)
        base.fill(style.background)
        layout = Layout(base, style.background)
        top = self._draw_banner(base, style, layout.runs)
        if item.kind is BulletinKind.IMAGE:
            self._draw_image(base, item, pygame.Rect(0, top, self.size[0], self.size[1] - top))
        else:
            if not item.text or not item.text.strip():
                raise PlayerError(f"{item.kind.value} item {item.bulletin_id} has no text to show")
            self._lay_out_text(layout, item, style, top)
        self._cached = (item, layout)
        return layout

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
            floor_lines = self.wrap(body, self.font(floor), body_box.width)
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
            font = self.font(px, bold=bold)
            line_top = (box.height - self.line_step(px, bold=bold)) // 2
            space = font.size(" ")[0]
            chunk = ""
            for word in [*text.split(), ""]:
                candidate = f"{chunk} {word}" if chunk else word
                if word and (not chunk or font.size(candidate)[0] <= _PIECE_PX):
                    chunk = candidate
                    continue
                surface, top, baseline = self._glyphs(chunk, px, bold, colour)
                across = line_top + top
                rect = pygame.Rect((x, across), surface.get_size())
                run = TextRun(chunk, rect, px, bold, colour, rect, line_top + baseline)
                pieces.append(_Piece(x, across, surface, run))
                x += surface.get_width() + space
                chunk = word
        gap = max(box.width // 2, 4 * self.font(px).size(" ")[0])
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
                self.wrap(lead, self.font(title_px, bold=True), box.width),
                title_px,
                True,
                style.title,
                True,
            )
            y += px // 2
        for index, paragraph in enumerate(paragraphs):
            if index:
                y += px // 2
            add(self.wrap(paragraph, self.font(px), box.width), px, False, style.text, False)
        gap = max(box.height // 2, 2 * px)
        return Ticker(box, "vertical", self.ticker_px_per_s, self.ticker_hold_s, gap, y, pieces)

    def _draw_image(self, surface: pygame.Surface, item: PlayItem, box: pygame.Rect) -> None:
        if item.path is None:
            raise PlayerError(f"image item {item.bulletin_id} has no file")
        try:
            image = pygame.image.load(str(item.path))
        except (pygame.error, OSError) as exc:
            raise PlayerError(f"cannot load image {item.path}: {exc}") from exc
        iw, ih = image.get_size()
        if iw == 0 or ih == 0 or box.width <= 0 or box.height <= 0:
            return
        # Letterbox: one scale for both axes, never stretched.
        scale = min(box.width / iw, box.height / ih)
        target = (max(1, round(iw * scale)), max(1, round(ih * scale)))
        if image.get_bitsize() not in (24, 32):
            # smoothscale needs 24/32-bit pixels; convert() would need a video mode.
            full = pygame.Surface((iw, ih), pygame.SRCALPHA, 32)
            full.blit(image, (0, 0))
            image = full
        scaled = pygame.transform.smoothscale(image, target)
        surface.blit(
            scaled,
            (box.left + (box.width - target[0]) // 2, box.top + (box.height - target[1]) // 2),
        )

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
        if token != self._token or layout is None or layout.ticker is None or self._loop is None:
            return
        # The same pure function of elapsed time the tests check: the loop only ticks it.
        layout.draw_ticker(self._frame, self.position())
        self._present(layout.ticker.box)
        self._tick_timer = self._loop.call_later(self._tick_s, self._tick, token)

    # ------------------------------------------------------------------ health

    def screen_fault(self) -> Fault | None:
        """What is wrong with the screen while an item should be on it, if anything.

        SCREEN_FROZEN: no frame reached the screen for `frozen_after_s` (the heartbeat or
        the loop behind it is stuck; only a real display presents). SCREEN_BLANK: what the
        screen shows is one flat colour although an item plays.
        """
        if self._closed or self._state is not PlayerState.PLAYING:
            return None
        if self._screen is not None and self._clock() - self.last_frame_at > self.frozen_after_s:
            return Fault.SCREEN_FROZEN
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
        if self._state is PlayerState.PLAYING and self._item is not None and self._loop is not None:
            elapsed = self._item.start_at_s + self._loop.time() - self._started_at
            return min(elapsed, self._item.display_seconds)
        return self._last_position

    async def play(self, item: PlayItem) -> None:
        if self._closed:
            raise PlayerError("player is closed")
        if item.kind not in self.kinds:
            raise PlayerError(f"this display does not show {item.kind.value}")
        loop = self._loop = asyncio.get_running_loop()
        try:
            layout = self.layout(item)
        except PlayerError:
            await self.stop()  # never leave the replaced item up as if nothing happened
            raise
        self._cancel_timers()
        self._token += 1
        token = self._token
        self._item = item
        self._layout = layout
        self._state = PlayerState.PLAYING
        self._started_at = loop.time()
        self._last_position = item.start_at_s
        # A resumed ticker carries on from where it was cut off.
        self._show(layout.frame_at(item.start_at_s))
        remaining = max(0.0, item.display_seconds - item.start_at_s)
        self._end_timer = loop.call_later(remaining, self._finish, token)
        if layout.ticker is not None:
            self._tick_timer = loop.call_later(self._tick_s, self._tick, token)
        if self._screen is not None and self._heartbeat is None:
            self._heartbeat = loop.call_later(self.heartbeat_s, self._beat)
        if self._sink is not None:
            self._sink(PlaybackEvent(EventType.STARTED, item.bulletin_id, item.start_at_s))

    def _finish(self, token: int) -> None:
        self._end_timer = None
        if token != self._token or self._item is None or self._loop is None:
            return
        self._last_position = self._item.display_seconds
        self._state = PlayerState.IDLE
        if self._tick_timer is not None:
            self._tick_timer.cancel()
            self._tick_timer = None
        self._blank_timer = self._loop.call_later(self.blank_after_s, self._blank)
        if self._sink is not None:
            self._sink(PlaybackEvent(EventType.ENDED, self._item.bulletin_id, self._last_position))

    def _cancel_timers(self) -> None:
        for timer in (self._end_timer, self._blank_timer, self._tick_timer):
            if timer is not None:
                timer.cancel()
        self._end_timer = self._blank_timer = self._tick_timer = None

    async def stop(self) -> float:
        position = self.position()
        self._last_position = position
        self._token += 1
        # An ended item still on screen (its blanking pending) must go too.
        on_screen = self._state is PlayerState.PLAYING or self._blank_timer is not None
        self._cancel_timers()
        self._state = PlayerState.IDLE
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
        if self._screen is not None:
            self._screen = None
            pygame.display.quit()
