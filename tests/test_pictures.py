"""Pictures as people take them, and emoji, on every board profile (issue #12).

Real files made with Pillow (tests/real_files.py): a CMYK JPEG (pygame alone shows its red
as blue), a phone photo stored sideways with an EXIF orientation, an animated GIF, pictures
far bigger than any screen. Each is made into its rendition as the agent does at cache time
(edge_agent/renditions.py) and shown by the real pygame renderer; frames are checked by
their pixels and saved under tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame
import pytest
from PIL import Image

from edge_agent.players.base import PlayItem, Slide
from edge_agent.players.display import DisplayPlayer
from edge_agent.profile import PROFILES_DIR, HardwareProfile, load_profile
from edge_agent.renditions import (
    ANIMATION_PIXELS,
    MAX_ANIMATION_FRAMES,
    MAX_DECODED_PIXELS,
    Rendition,
    RenditionError,
    fit,
    make_image,
)
from loa_contract import BulletinKind, DeviceKind, Priority
from tests.real_files import animated_gif, big_png, cmyk_jpeg, exif_rotated_jpeg

ARTIFACTS = Path(__file__).parent / "artifacts"
RED, GREEN, BLUE = (220, 30, 40), (30, 160, 70), (30, 60, 220)
BOARDS = sorted(
    p.stem
    for p in PROFILES_DIR.glob("*.toml")
    if load_profile(p.stem).device_kind is DeviceKind.BOARD
)


@pytest.fixture(params=BOARDS)
async def board(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[HardwareProfile, DisplayPlayer]]:
    profile = load_profile(request.param)
    assert profile.display is not None
    screen = DisplayPlayer.for_profile(profile.display, window=False)
    try:
        yield profile, screen
    finally:
        await screen.close()


def close_to(actual: tuple[int, ...], wanted: tuple[int, int, int], within: int = 16) -> bool:
    return all(abs(a - w) <= within for a, w in zip(actual[:3], wanted, strict=True))


def save(frame: pygame.Surface, profile: HardwareProfile, case: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    pygame.image.save(frame, str(ARTIFACTS / f"picture-{profile.name}-{case}.png"))


def picture_item(made: Rendition, folder: Path, **extra: object) -> PlayItem:
    settings: dict[str, object] = {
        "bulletin_id": "pic",
        "kind": BulletinKind.IMAGE,
        "priority": Priority.NORMAL,
        "title": "Ảnh",
    }
    if made.frames:
        settings["slides"] = tuple(Slide(folder / f.file, f.ms / 1000) for f in made.frames)
    else:
        assert made.image is not None
        settings["path"] = folder / made.image
    settings.update(extra)
    return PlayItem(**settings)  # type: ignore[arg-type]


def picture_box(frame: pygame.Surface, background: tuple[int, int, int]) -> pygame.Rect:
    """Where the picture is on the frame: everything that is not the background."""
    mask = pygame.mask.from_threshold(frame, background, (6, 6, 6, 255))
    mask.invert()
    rects = mask.get_bounding_rects()
    assert rects, "nothing but background"
    return rects[0].unionall(rects[1:])


async def test_a_cmyk_photo_keeps_its_red(
    board: tuple[HardwareProfile, DisplayPlayer], tmp_path: Path
) -> None:
    profile, screen = board
    source = cmyk_jpeg(tmp_path / "print-shop.jpg")
    # What the board did before: SDL_image reads CMYK as if it were RGB, red comes out blue.
    raw = pygame.image.load(str(source)).get_at((5, 5))
    assert not close_to(tuple(raw), (255, 0, 0)), "SDL_image now reads CMYK: rethink this test"
    made = make_image(source, "img-cmyk", tmp_path, screen.size)
    frame = screen.render_frame(picture_item(made, tmp_path))
    save(frame, profile, "cmyk")
    centre = (screen.size[0] // 2, screen.size[1] // 2)
    assert close_to(tuple(frame.get_at(centre)), (255, 0, 0)), frame.get_at(centre)
    # Fitted once, at cache time, to the screen: 4:3 on a wide screen fills its height.
    box = picture_box(frame, (14, 22, 38))
    assert box.size == fit((400, 300), screen.size)


async def test_a_phone_photo_stands_upright(
    board: tuple[HardwareProfile, DisplayPlayer], tmp_path: Path
) -> None:
    profile, screen = board
    source = exif_rotated_jpeg(tmp_path / "phone.jpg")
    assert Image.open(source).size == (400, 300), "stored sideways, as the sensor saw it"
    made = make_image(source, "img-phone", tmp_path, screen.size)
    frame = screen.render_frame(picture_item(made, tmp_path))
    save(frame, profile, "exif-upright")
    box = picture_box(frame, (14, 22, 38))
    # Portrait, as it was taken: taller than wide, red on top and blue below.
    assert box.height == screen.size[1] and box.width < box.height
    assert close_to(tuple(frame.get_at((box.centerx, box.top + box.height // 8))), RED)
    assert close_to(tuple(frame.get_at((box.centerx, box.bottom - box.height // 8))), BLUE)


async def test_an_animated_gif_animates_and_airs_at_least_one_loop(
    board: tuple[HardwareProfile, DisplayPlayer], tmp_path: Path
) -> None:
    profile, screen = board
    source = animated_gif(tmp_path / "info.gif", [RED, GREEN, BLUE], [200, 300, 500])
    made = make_image(source, "img-gif", tmp_path, screen.size)
    assert [frame.ms for frame in made.frames] == [200, 300, 500]
    item = picture_item(made, tmp_path, display_seconds=0.5)
    layout = screen.layout(item)
    assert layout.animation is not None
    assert layout.seconds == pytest.approx(1.0), "one whole loop, though 0.5 s was asked"
    centre = (screen.size[0] // 2, screen.size[1] // 2)
    for at, colour in ((0.05, RED), (0.25, GREEN), (0.6, BLUE), (1.05, RED), (1.3, GREEN)):
        frame = screen.render_frame(item, at)
        save(frame, profile, f"gif-{at:g}s")
        assert close_to(tuple(frame.get_at(centre)), colour), (at, frame.get_at(centre))
    assert layout.animation.next_change(0.25) == pytest.approx(0.25)
    long = screen.layout(picture_item(made, tmp_path, display_seconds=30.0))
    assert long.seconds == 30.0


async def test_an_animation_plays_live_frame_by_frame(tmp_path: Path) -> None:
    screen = DisplayPlayer((320, 180), heartbeat_s=30)
    try:
        source = animated_gif(tmp_path / "live.gif", [RED, GREEN, BLUE], [60, 60, 60])
        made = make_image(source, "img-live", tmp_path, screen.size)
        await screen.play(picture_item(made, tmp_path, display_seconds=0.1))
        await screen.shown()
        seen: list[tuple[int, int, int]] = []
        deadline = time.monotonic() + 5
        # The frames change by the animation's own ticks (the heartbeat is 30 s away).
        while len(seen) < 4 and time.monotonic() < deadline:
            colour = tuple(screen.frame.get_at((160, 90)))[:3]
            if not seen or colour != seen[-1]:
                seen.append(colour)  # type: ignore[arg-type]
            await asyncio.sleep(0.005)
        assert [c for c in (RED, GREEN, BLUE) if any(close_to(s, c) for s in seen)] == [
            RED,
            GREEN,
            BLUE,
        ]
    finally:
        await screen.close()


def test_a_picture_bigger_than_any_screen_is_fitted_once(tmp_path: Path) -> None:
    source = big_png(tmp_path / "poster.png", (8000, 6000))
    made = make_image(source, "img-big", tmp_path, (1920, 1080))
    assert made.image is not None and made.image.endswith(".png")  # a drawing stays sharp
    with Image.open(tmp_path / made.image) as fitted:
        assert fitted.size == (1440, 1080)
        assert close_to(fitted.getpixel((720, 540)), (230, 20, 20))  # type: ignore[arg-type]
        assert close_to(fitted.getpixel((5, 5)), (0, 160, 70))  # type: ignore[arg-type]


def test_pictures_a_board_cannot_hold_are_refused_with_the_reason(tmp_path: Path) -> None:
    side = int((MAX_DECODED_PIXELS / 0.875) ** 0.5) + 1  # just over the limit, 8:7
    huge = big_png(tmp_path / "huge.png", (side, side * 7 // 8))
    with pytest.raises(RenditionError, match="megapixels"):
        make_image(huge, "img-huge", tmp_path, (1920, 1080))
    many = animated_gif(
        tmp_path / "many.gif",
        [(n % 256, 0, 0) for n in range(MAX_ANIMATION_FRAMES + 1)],
        [40] * (MAX_ANIMATION_FRAMES + 1),
    )
    with pytest.raises(RenditionError, match="send it as a video"):
        make_image(many, "img-many", tmp_path, (1920, 1080))
    # Within the frame count but too many pixels to hold at a visible size.
    heavy_frames = int(ANIMATION_PIXELS / (120 * 90) / 16 * 4) + 1
    heavy = animated_gif(
        tmp_path / "heavy.gif", [(0, n % 256, 0) for n in range(heavy_frames)], [40] * heavy_frames
    )
    if heavy_frames <= MAX_ANIMATION_FRAMES:
        with pytest.raises(RenditionError, match="too many to hold"):
            make_image(heavy, "img-heavy", tmp_path, (1920, 1080))
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    with pytest.raises(RenditionError, match="cannot be decoded"):
        make_image(junk, "img-junk", tmp_path, (1920, 1080))


def test_palette_and_transparent_pictures_convert_right(tmp_path: Path) -> None:
    palette = Image.new("P", (60, 40))
    palette.putpalette([220, 30, 40, 30, 60, 220] + [0] * 762)
    palette.paste(1, (0, 20, 60, 40))
    palette.save(tmp_path / "palette.png")
    made = make_image(tmp_path / "palette.png", "img-pal", tmp_path, (300, 200))
    with Image.open(tmp_path / str(made.image)) as shown:
        assert shown.mode == "RGB"
        assert close_to(shown.getpixel((150, 40)), RED)  # type: ignore[arg-type]
        assert close_to(shown.getpixel((150, 160)), BLUE)  # type: ignore[arg-type]
    Image.new("LA", (40, 40), (200, 0)).save(tmp_path / "clear.png")
    made = make_image(tmp_path / "clear.png", "img-la", tmp_path, (100, 100))
    with Image.open(tmp_path / str(made.image)) as shown:
        assert shown.mode == "RGBA" and shown.getpixel((50, 50))[3] == 0  # type: ignore[index]


# ---------------------------------------------------------------------- emoji


def saturated(frame: pygame.Surface) -> int:
    """Pixels of strong colour: the board's text is white on dark blue, emoji are not."""
    width, height = frame.get_size()
    count = 0
    for x in range(0, width, 2):
        for y in range(0, height, 2):
            r, g, b, *_ = frame.get_at((x, y))
            count += max(r, g, b) - min(r, g, b) > 90
    return count


def text_item(text: str) -> PlayItem:
    return PlayItem(
        bulletin_id="t", kind=BulletinKind.TEXT, priority=Priority.NORMAL, title="", text=text
    )


async def test_emoji_are_drawn_in_colour_and_nothing_becomes_a_box(
    board: tuple[HardwareProfile, DisplayPlayer],
) -> None:
    profile, screen = board
    assert screen.emoji_font_path is not None, "Debian's fonts-noto-color-emoji is missing"
    plain = screen.render_frame(text_item("Cảnh báo lũ"))
    assert saturated(plain) == 0
    with_emoji = screen.render_frame(text_item("Cảnh báo lũ 🚓🌊 ⚠️ 👍🏽 🇻🇳"))
    save(with_emoji, profile, "emoji")
    assert saturated(with_emoji) > 20, "the emoji were not drawn in colour"
    # Emoji are measured as what they are: a family (ZWJ) or a flag is one picture.
    px = screen.min_text_px
    one = screen.measure("👍", px)
    assert one > 0 and screen.measure("👨‍👩‍👧", px) == one == screen.measure("🇻🇳", px)
    # Characters no font here draws take no room and leave no box.
    for stranger in ("中", "\U000f0001", "\ufe0f"):
        assert screen.measure(stranger, px) == 0
        frame = screen.render_frame(text_item(f"Cảnh báo lũ {stranger}"))
        assert pygame.image.tobytes(frame, "RGB") == pygame.image.tobytes(plain, "RGB"), stranger


async def test_without_the_emoji_font_emoji_are_left_out_cleanly() -> None:
    screen = DisplayPlayer((640, 360), window=False, emoji_font_path=None)
    try:
        plain = screen.render_frame(text_item("Cảnh báo lũ"))
        dropped = screen.render_frame(text_item("Cảnh báo lũ 🚓🌊"))
        assert pygame.image.tobytes(dropped, "RGB") == pygame.image.tobytes(plain, "RGB")
    finally:
        await screen.close()
