"""Frames for every board profile, checked by pixels and saved under tests/artifacts/.

Each shipped board profile's screen is built the way the agent builds it (`build_player`),
at the profile's size, orientation, legible size and ticker settings. For each one:
Vietnamese text whose every run of letters is pixel-identical to the same words drawn with
DejaVu Sans (a font known to have every Vietnamese letter) and carries visibly more ink above
the x-height than the same text with its marks stripped; an emergency that is mostly red; a
square picture letterboxed with its circle still round; a ticker at two moments, moved by
exactly its speed times the time between them.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import unicodedata
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame
import pytest

from edge_agent.airing import text_airing_seconds
from edge_agent.backends import build_player
from edge_agent.players.base import Player, PlayItem
from edge_agent.players.display import DisplayPlayer, Layout, TextRun
from edge_agent.players.router import PlayerRouter
from edge_agent.profile import PROFILES_DIR, HardwareProfile, load_profile
from loa_contract import BulletinKind, DeviceKind, Priority
from tests.real_files import LONG_NOTICE, LONG_NOTICE_END

ARTIFACTS = Path(__file__).parent / "artifacts"
#: The reference: fonts-dejavu-core, which draws every Vietnamese letter.
DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
DEJAVU_BOLD = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")

BOARDS = sorted(
    p.stem
    for p in PROFILES_DIR.glob("*.toml")
    if load_profile(p.stem).device_kind is DeviceKind.BOARD
)

TITLE = "Thông báo của UBND xã"
TEXT = (
    "Thông báo khẩn: Ủy ban nhân dân xã Đắk Nông đề nghị bà con không qua suối khi nước lũ "
    "dâng; mỗi hộ giữ liên lạc với tổ trưởng, chuẩn bị áo phao, đèn pin. Những nhà gần bờ "
    "suối chuyển đồ đạc, gia súc lên chỗ cao; học sinh nghỉ học ngày mai. "
    "Ghi nhớ: ỗ ữ ặ ẵ ậ ễ ợ ỹ ự ẩn."
)
#: A long document: more than even the LCD shows at its legible size.
DOCUMENT = "\n".join([TEXT] * 12)


def strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def text_item(text: str, *, title: str = TITLE, priority: Priority = Priority.NORMAL) -> PlayItem:
    return PlayItem(
        bulletin_id="b",
        kind=BulletinKind.TEXT,
        priority=priority,
        title=title,
        text=text,
        display_seconds=600,
    )


def screen_of(player: Player) -> DisplayPlayer:
    if isinstance(player, PlayerRouter):
        player = player.backend_for(BulletinKind.TEXT)
    assert isinstance(player, DisplayPlayer)
    return player


@pytest.fixture(params=BOARDS)
async def board(request: pytest.FixtureRequest) -> Iterator[tuple[HardwareProfile, DisplayPlayer]]:
    profile = load_profile(request.param)
    player = build_player(profile, player="null")
    try:
        yield profile, screen_of(player)
    finally:
        await player.close()


def save(surface: pygame.Surface, profile: HardwareProfile, case: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    pygame.image.save(surface, str(ARTIFACTS / f"board-{profile.name}-{case}.png"))


def ink(surface: pygame.Surface, area: pygame.Rect, background: tuple[int, int, int]) -> int:
    """Pixels in `area` that are not the background."""
    area = area.clip(surface.get_rect())
    if area.width <= 0 or area.height <= 0:
        return 0
    flat = pygame.mask.from_threshold(surface.subsurface(area), background, (8, 8, 8, 255))
    return area.width * area.height - flat.count()


def assert_drawn_like_dejavu(
    frame: pygame.Surface, run: TextRun, background: tuple[int, int, int]
) -> None:
    """The run's visible pixels are exactly those DejaVu draws for the same words."""
    font = pygame.font.Font(str(DEJAVU_BOLD if run.bold else DEJAVU), run.font_px)
    reference = pygame.Surface(run.rect.size)
    reference.fill(background)
    glyphs = font.render(run.text, True, run.colour)
    assert glyphs.get_size() == run.rect.size, run.text
    reference.blit(glyphs, (0, 0))
    shown = frame.subsurface(run.visible)
    expected = reference.subsurface(run.visible.move(-run.rect.left, -run.rect.top))
    assert pygame.image.tobytes(shown, "RGB") == pygame.image.tobytes(expected, "RGB"), (
        f"{run.text!r} is not drawn as DejaVu Sans draws it"
    )


def ink_above_x_height(
    frame: pygame.Surface, runs: list[TextRun], player: DisplayPlayer, background: tuple
) -> int:
    """Ink between the top of each line and its x-height: capitals, ascenders and marks."""
    total = 0
    for run in runs:
        x_height = player.font(run.font_px, bold=run.bold).metrics("x")[0][3]
        x_line = run.baseline - x_height
        band = pygame.Rect(run.visible.left, run.visible.top, run.visible.width, 0)
        band.height = max(0, x_line - run.visible.top)
        total += ink(frame, band, background)
    return total


def sample_times(layout: Layout) -> list[float]:
    """Moments at which every pixel of the text has been in view (one for a still frame)."""
    ticker = layout.ticker
    if ticker is None:
        return [0.0]
    box_px = ticker.box.width if ticker.direction == "horizontal" else ticker.box.height
    step_s = 0.8 * box_px / ticker.px_per_s
    end_s = ticker.hold_s + ticker.period_px / ticker.px_per_s
    times, t = [], 0.0
    while t <= end_s:
        times.append(t)
        t += step_s
    return times


def test_every_board_profile_is_tested() -> None:
    assert {"led-board-p10", "lcd-board-1080p"} <= set(BOARDS)


async def test_vietnamese_text_draws_every_diacritic(
    board: tuple[HardwareProfile, DisplayPlayer],
) -> None:
    profile, player = board
    assert profile.display is not None
    size = (profile.display.width, profile.display.height)
    if profile.display.orientation == "portrait":
        size = size[::-1]
    assert player.size == size
    assert player.font_path == DEJAVU

    item = text_item(TEXT)
    layout = player.layout(item)
    frame = player.render_frame(item)
    save(frame, profile, "text")
    # Every run of text, at every moment it is in view, is exactly DejaVu's drawing of it.
    shown_text = ""
    for t in sample_times(layout):
        at_t = layout.frame_at(t)
        for run in layout.runs_at(t):
            assert_drawn_like_dejavu(at_t, run, layout.background)
            if run.text not in shown_text:
                shown_text += " " + run.text
    for word in TEXT.split():
        assert word in shown_text, f"{word!r} never shown"

    # The marks are really there: far more ink above the x-height than without them.
    plain_item = text_item(strip_marks(TEXT), title=strip_marks(TITLE))
    plain_layout = player.layout(plain_item)
    plain = plain_layout.frame_at(0.0)
    save(plain, profile, "text-without-marks")
    marked_ink = ink_above_x_height(frame, layout.runs_at(0.0), player, layout.background)
    plain_ink = ink_above_x_height(plain, plain_layout.runs_at(0.0), player, layout.background)
    print(f"\n{profile.name}: ink above x-height {marked_ink} with marks, {plain_ink} without")
    assert marked_ink > 1.15 * plain_ink


async def test_emergency_takes_the_screen_in_red(
    board: tuple[HardwareProfile, DisplayPlayer],
) -> None:
    profile, player = board
    for case, text in (
        ("emergency", "Lũ quét: di chuyển lên chỗ cao ngay."),
        ("emergency-long", TEXT),
    ):
        item = text_item(text, title="Cảnh báo lũ quét", priority=Priority.EMERGENCY)
        frame = player.render_frame(item, 2.0)
        save(frame, profile, case)
        width, height = frame.get_size()
        red = total = 0
        for x in range(0, width, max(1, width // 96)):
            for y in range(0, height, max(1, height // 54)):
                r, g, b, *_ = frame.get_at((x, y))
                total += 1
                red += r > 150 and g < 80 and b < 80
        assert red / total > 0.5, f"{case}: only {red / total:.0%} red"
        # The yellow KHẨN CẤP banner runs across the top.
        assert tuple(frame.get_at((1, 1)))[:3] == (255, 221, 0)
        assert tuple(frame.get_at((width - 2, 1)))[:3] == (255, 221, 0)


async def test_image_is_letterboxed_and_its_circle_stays_round(
    board: tuple[HardwareProfile, DisplayPlayer], tmp_path: Path
) -> None:
    profile, player = board
    picture = pygame.Surface((300, 300))
    picture.fill((0, 160, 70))
    pygame.draw.circle(picture, (230, 20, 20), (150, 150), 130)
    path = tmp_path / "circle.png"
    pygame.image.save(picture, str(path))
    item = PlayItem(
        bulletin_id="img",
        kind=BulletinKind.IMAGE,
        priority=Priority.NORMAL,
        title="Infographic",
        path=path,
    )
    frame = player.render_frame(item)
    save(frame, profile, "image")
    width, height = frame.get_size()
    assert width > height, "every shipped board is landscape: the square needs side bars"

    def extent(match: tuple[int, int, int]) -> tuple[int, int, int, int]:
        mask = pygame.mask.from_threshold(frame, match, (40, 40, 40, 255))
        rects = mask.get_bounding_rects()
        assert rects, f"no {match} in the frame"
        box = rects[0].unionall(rects[1:])
        return box.left, box.top, box.width, box.height

    left, _, picture_w, picture_h = extent((0, 160, 70))
    assert picture_h == height and abs(picture_w - picture_h) <= 1
    # Bars of background on both sides, equal within a pixel.
    assert abs(left - (width - left - picture_w)) <= 1 and left > 0
    background = frame.get_at((0, height // 2))
    assert all(frame.get_at((x, height // 2)) == background for x in range(left - 1))
    # The circle is a circle: a stretched picture would make it an ellipse.
    _, _, circle_w, circle_h = extent((230, 20, 20))
    assert abs(circle_w - circle_h) <= 1
    assert circle_h == pytest.approx(height * 260 / 300, abs=2)


async def test_long_text_scrolls_as_a_ticker(
    board: tuple[HardwareProfile, DisplayPlayer],
) -> None:
    profile, player = board
    assert profile.display is not None
    # Too long to read on this panel at its legible size: it must scroll, not shrink.
    text = TEXT if profile.display.height < 240 else DOCUMENT
    item = text_item(text)
    layout = player.layout(item)
    ticker = layout.ticker
    assert ticker is not None
    assert ticker.direction == (profile.display.ticker or ticker.direction)
    assert ticker.px_per_s == profile.display.ticker_px_per_s
    assert min(run.font_px for run in layout.runs_at(0.0)) >= player.min_text_px

    t1, t2 = ticker.hold_s + 1.0, ticker.hold_s + 2.5
    first, second = player.render_frame(item, t1), player.render_frame(item, t2)
    save(first, profile, f"ticker-{t1:g}s")
    save(second, profile, f"ticker-{t2:g}s")
    # A pure function of time: the same moment gives the same pixels.
    assert pygame.image.tobytes(player.render_frame(item, t1), "RGB") == pygame.image.tobytes(
        first, "RGB"
    )
    moved = round((t2 - t1) * ticker.px_per_s)
    assert ticker.offset_at(t2) - ticker.offset_at(t1) == moved
    box = ticker.box
    # What was `moved` pixels further along at t1 is exactly where the text is at t2:
    # right to left for a crawl, bottom to top for a rolling page.
    if ticker.direction == "horizontal":
        now = pygame.Rect(box.left, box.top, box.width - moved, box.height)
        before = now.move(moved, 0)
    else:
        now = pygame.Rect(box.left, box.top, box.width, box.height - moved)
        before = now.move(0, moved)
    assert ink(second, now, layout.background) > 0
    assert pygame.image.tobytes(second.subsurface(now), "RGB") == pygame.image.tobytes(
        first.subsurface(before), "RGB"
    )
    assert pygame.image.tobytes(second, "RGB") != pygame.image.tobytes(first, "RGB")
    # Outside the ticker nothing moves (a static headline stays put).
    outside = second.copy()
    outside.blit(first, box, box)
    assert pygame.image.tobytes(outside, "RGB") == pygame.image.tobytes(first, "RGB")
    # It loops: one whole period later the frame is the same again.
    period_s = ticker.period_px / ticker.px_per_s
    again = player.render_frame(item, t1 + period_s)
    assert pygame.image.tobytes(again, "RGB") == pygame.image.tobytes(first, "RGB")


async def test_a_long_notice_airs_until_it_has_been_shown_whole(
    board: tuple[HardwareProfile, DisplayPlayer],
) -> None:
    """A notice of 5,000 characters is not cut at display_seconds and reported complete:
    its airing lasts one whole pass of the ticker, in which its last words are shown."""
    profile, player = board
    assert profile.display is not None
    item = dataclasses.replace(text_item(LONG_NOTICE), display_seconds=15.0)
    layout = player.layout(item)
    ticker = layout.ticker
    assert ticker is not None
    assert layout.seconds == pytest.approx(ticker.pass_seconds) and layout.seconds > 15.0
    # The hub asks the same question without pygame on its side of the import, and gets the
    # same answer.
    assert text_airing_seconds(
        LONG_NOTICE, profile.display, title=TITLE, display_seconds=15.0
    ) == pytest.approx(layout.seconds)
    # The end of the text is on screen before the airing ends, fully inside the box.
    last_word = LONG_NOTICE_END.split()[-1]
    shown_at = None
    for t in sample_times(layout):
        if t > layout.seconds:
            break
        for run in layout.runs_at(t):
            # Its end in view, top to bottom (a crawl's piece may be wider than the panel).
            whole_end = run.visible.right == run.rect.right and run.visible.left < run.rect.right
            upright = run.visible.top == run.rect.top and run.visible.bottom == run.rect.bottom
            if run.text.endswith(last_word) and whole_end and upright:
                shown_at = t
                break
        if shown_at is not None:
            break
    assert shown_at is not None, "the last words were never shown whole"
    frame = layout.frame_at(shown_at)
    save(frame, profile, "long-notice-end")
    end_run = next(r for r in layout.runs_at(shown_at) if r.text.endswith(last_word))
    assert_drawn_like_dejavu(frame, end_run, layout.background)
    # A short text stays its display_seconds (600 s here), even if it crawls: it has been
    # shown whole many times over by then.
    assert player.layout(text_item("Họp thôn lúc 8 giờ.")).seconds == 600


def test_the_airing_length_can_be_asked_without_pygame() -> None:
    """The hub imports edge_agent.airing to show a bulletin's expected length: importing it
    loads neither pygame nor Pillow."""
    probe = (
        "import sys, edge_agent.airing; "
        "assert 'pygame' not in sys.modules and 'PIL' not in sys.modules, sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=Path(__file__).parent.parent)
