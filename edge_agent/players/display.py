"""Text and images on a board's screen, through pygame.

pygame (SDL) wants one thread, so everything here runs on the asyncio loop's thread: build
the player on that thread and call it only from there. A frame is rendered once per item
(milliseconds, even at 1080p) and then only re-presented by a heartbeat that also pumps
SDL's events, so a real window is never marked "not responding" and `last_frame_at` keeps
moving while the loop is healthy — a stale value means a frozen screen.

SDL_VIDEODRIVER=dummy gives the same code path without a screen (tests, headless doctor).
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pygame

from loa_contract import BulletinKind, Priority

from ..fonts import VIETNAMESE_LETTERS, find_font
from .base import EventSink, EventType, PlaybackEvent, PlayerError, PlayerState, PlayItem

Colour = tuple[int, int, int]

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
        missing = self._missing_glyphs(self.font_path) or self._missing_glyphs(self.bold_font_path)
        if missing:
            raise PlayerError(
                f"font {self.font_path} lacks Vietnamese letters {missing!r}; "
                "install the Debian package fonts-dejavu-core"
            )
        self._screen: pygame.Surface | None = None
        if window:
            pygame.display.init()
            flags = pygame.FULLSCREEN if fullscreen else 0
            self._screen = pygame.display.set_mode(self.size, flags)
            pygame.display.set_caption("Loa")
            if fullscreen:
                pygame.mouse.set_visible(False)
        self.heartbeat_s = heartbeat_s
        # After a still item ends the next one usually follows at once; blanking only if it
        # does not avoids a black flash between slides while never leaving a stale bulletin up.
        self.blank_after_s = blank_after_s
        self._sink: EventSink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._item: PlayItem | None = None
        self._state = PlayerState.IDLE
        self._token = 0
        self._started_at = 0.0
        self._last_position = 0.0
        self._end_timer: asyncio.TimerHandle | None = None
        self._blank_timer: asyncio.TimerHandle | None = None
        self._heartbeat: asyncio.TimerHandle | None = None
        self._closed = False
        #: Always 0: kept so health code can read it from any backend.
        self.stuck_stops = 0
        self._frame = pygame.Surface(self.size)
        self._frame.fill(IDLE_BACKGROUND)
        #: time.monotonic() when a frame last reached the screen (or was rendered, headless).
        self.last_frame_at = time.monotonic()
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
        """Largest font size (binary search) whose wrapped text fits the box, and its lines."""
        hi = max(_MIN_FONT_PX, min(height, max_px or height))
        lo = _MIN_FONT_PX
        best = (lo, self.wrap(text, self.font(lo, bold=bold), width))
        while lo <= hi:
            mid = (lo + hi) // 2
            font = self.font(mid, bold=bold)
            lines = self.wrap(text, font, width)
            fits = len(lines) * font.get_linesize() <= height and all(
                font.size(line)[0] <= width for line in lines
            )
            if fits:
                best = (mid, lines)
                lo = mid + 1
            else:
                hi = mid - 1
        return best

    def _draw_lines(
        self,
        surface: pygame.Surface,
        lines: list[str],
        font: pygame.font.Font,
        colour: Colour,
        area: pygame.Rect,
        *,
        centre: bool,
    ) -> int:
        y = area.top
        step = font.get_linesize()
        for line in lines:
            if y + step > area.bottom + 1:
                break  # at the smallest size some text may not fit: never draw off the box
            glyphs = font.render(line, True, colour)
            x = area.left + (area.width - glyphs.get_width()) // 2 if centre else area.left
            surface.blit(glyphs, (x, y))
            y += step
        return y

    def _draw_banner(self, surface: pygame.Surface, style: FrameStyle) -> int:
        if style.banner is None:
            return 0
        width, height = self.size
        banner_h = max(_MIN_FONT_PX + 4, round(height * 0.16))
        surface.fill(style.banner_background, pygame.Rect(0, 0, width, banner_h))
        size, lines = self.fit(style.banner, width - 4, round(banner_h * 0.95), bold=True)
        font = self.font(size, bold=True)
        top = (banner_h - len(lines) * font.get_linesize()) // 2
        self._draw_lines(
            surface,
            lines,
            font,
            style.banner_text,
            pygame.Rect(2, top, width - 4, banner_h),
            centre=True,
        )
        return banner_h

    # ------------------------------------------------------------------ rendering

    def render_frame(self, item: PlayItem) -> pygame.Surface:
        """The frame for `item`, without touching the screen or any timer."""
        style = STYLES[item.priority]
        surface = pygame.Surface(self.size)
        surface.fill(style.background)
        top = self._draw_banner(surface, style)
        if item.kind is BulletinKind.IMAGE:
            self._draw_image(surface, item, pygame.Rect(0, top, self.size[0], self.size[1] - top))
        else:
            if not item.text or not item.text.strip():
                raise PlayerError(f"{item.kind.value} item {item.bulletin_id} has no text to show")
            self._draw_text(surface, item, style, top)
        return surface

    def _draw_text(
        self, surface: pygame.Surface, item: PlayItem, style: FrameStyle, top: int
    ) -> None:
        width, height = self.size
        margin = max(2, round(min(width, height) * 0.04))
        box = pygame.Rect(margin, top + margin, width - 2 * margin, height - top - 2 * margin)
        # NFC: text from other systems often arrives decomposed (U + combining marks), which
        # SDL_ttf places badly; every Vietnamese letter exists precomposed in the font.
        title = unicodedata.normalize("NFC", item.title).strip()
        body = unicodedata.normalize("NFC", item.text or "").strip()
        title_px: int | None = None
        if title:
            size, lines = self.fit(
                title, box.width, max(_MIN_FONT_PX, round(box.height * 0.28)), bold=True
            )
            font = self.font(size, bold=True)
            bottom = self._draw_lines(surface, lines, font, style.title, box, centre=True)
            gap = max(2, margin // 2)
            pygame.draw.line(
                surface,
                style.title,
                (box.left, bottom + gap // 2),
                (box.right - 1, bottom + gap // 2),
                max(1, size // 16),
            )
            box = pygame.Rect(box.left, bottom + gap, box.width, box.bottom - bottom - gap)
            title_px = size
        if body and box.height >= _MIN_FONT_PX:
            # The body never outgrows the title, so the headline stays the headline.
            size, lines = self.fit(body, box.width, box.height, max_px=title_px)
            self._draw_lines(surface, lines, self.font(size), style.text, box, centre=False)

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

    def _present(self) -> None:
        if self._screen is not None:
            self._screen.blit(self._frame, (0, 0))
            pygame.display.flip()
        self.last_frame_at = time.monotonic()

    def _show(self, frame: pygame.Surface) -> None:
        self._frame = frame
        self._present()

    def _blank(self) -> None:
        self._blank_timer = None
        if self._state is not PlayerState.PLAYING:
            frame = pygame.Surface(self.size)
            frame.fill(IDLE_BACKGROUND)
            self._show(frame)

    def _beat(self) -> None:
        self._heartbeat = None
        if self._closed or self._loop is None:
            return
        # Draining the queue (not just pumping) keeps it from filling with input events.
        pygame.event.get()
        self._present()
        self._heartbeat = self._loop.call_later(self.heartbeat_s, self._beat)

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
            frame = self.render_frame(item)
        except PlayerError:
            await self.stop()  # never leave the replaced item up as if nothing happened
            raise
        self._cancel_timers()
        self._token += 1
        token = self._token
        self._item = item
        self._state = PlayerState.PLAYING
        self._started_at = loop.time()
        self._last_position = item.start_at_s
        self._show(frame)
        remaining = max(0.0, item.display_seconds - item.start_at_s)
        self._end_timer = loop.call_later(remaining, self._finish, token)
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
        self._blank_timer = self._loop.call_later(self.blank_after_s, self._blank)
        if self._sink is not None:
            self._sink(PlaybackEvent(EventType.ENDED, self._item.bulletin_id, self._last_position))

    def _cancel_timers(self) -> None:
        for timer in (self._end_timer, self._blank_timer):
            if timer is not None:
                timer.cancel()
        self._end_timer = self._blank_timer = None

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
