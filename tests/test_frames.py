"""A board's screen as a small picture on its device page: encoded off the agent's loop,
posted at most once a frame interval, checked by the hub as a whole PNG or JPEG before it is
kept, shown only to those who may see the device."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image

from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, needs_chromium
from tests.e2e import (
    ADMIN,
    ADMIN_PASSWORD,
    LiveHub,
    enroll_agent,
    headless,
    live_hub,
    schedule,
)
from tests.e2e import window_around as window

headless()

import pygame  # noqa: E402

from edge_agent.frames import MAX_BYTES, WIDTH, display_of, encode_frame  # noqa: E402
from edge_agent.players.display import DisplayPlayer  # noqa: E402
from edge_agent.players.null import NullPlayer  # noqa: E402
from edge_agent.players.router import PlayerRouter  # noqa: E402
from hub.frames import inspect_picture  # noqa: E402
from hub.testing import FakeClock, HubHarness, running_hub  # noqa: E402
from loa_contract import utcnow  # noqa: E402


def picture(kind: str, size: tuple[int, int] = (64, 36)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 40)).save(out, kind)
    return out.getvalue()


def test_the_hub_keeps_only_whole_pngs_and_jpegs_of_a_sane_size() -> None:
    assert inspect_picture(picture("PNG")) == ("image/png", 64, 36)
    assert inspect_picture(picture("JPEG")) == ("image/jpeg", 64, 36)
    for bad, why in (
        (picture("GIF"), "PNG or JPEG only"),
        (picture("PNG")[:40], "not a readable image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not a readable image"),
        (b"", "not a readable image"),
        (picture("PNG", (2000, 10)), "at most 1024 px"),
    ):
        with pytest.raises(ValueError, match=why):
            inspect_picture(bad)


def test_a_screen_becomes_a_small_jpeg() -> None:
    screen = pygame.Surface((1920, 1080))
    screen.fill((10, 120, 200))
    for i in range(0, 1920, 7):  # detail, so the JPEG is not trivially small
        pygame.draw.line(screen, (i % 255, 255 - i % 255, 90), (i, 0), (1920 - i, 1080), 3)
    data = encode_frame(screen)
    assert len(data) <= MAX_BYTES
    assert inspect_picture(data) == ("image/jpeg", WIDTH, 180)
    tight = encode_frame(screen, max_bytes=6_000)
    assert len(tight) <= 6_000 and inspect_picture(tight)[1] < WIDTH


def test_the_screen_is_found_among_the_players() -> None:
    display = DisplayPlayer((320, 160))
    null = NullPlayer()
    assert display_of(display) is display
    assert display_of(PlayerRouter([null, display])) is display
    assert display_of(null) is None


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    clock = FakeClock()
    async with running_hub(tmp_path, clock=clock) as harness:
        harness.clock = clock  # type: ignore[attr-defined]
        await harness.commune("00001")
        await harness.commune("00002")
        yield harness


async def post(hub: HubHarness, headers: dict[str, str], body: bytes, mime: str) -> int:
    resp = await hub.client.post(
        "/api/v1/device/frame", data=body, headers={**headers, "Content-Type": mime}
    )
    return resp.status


async def test_boards_post_pictures_at_most_once_a_minute(hub: HubHarness) -> None:
    board = await hub.new_device("00001", kind="board")
    speaker = await hub.new_device("00001")
    manifest, _ = await board.manifest()
    assert manifest.frame_interval_s == 60
    assert (await speaker.manifest())[0].frame_interval_s is None
    jpeg = picture("JPEG")
    headers = board.headers
    assert await post(hub, headers, jpeg, "image/png") == 422  # says png, is jpeg
    assert await post(hub, headers, jpeg, "image/gif") == 415
    assert await post(hub, headers, b"\xff\xd8" + b"\x00" * 100, "image/jpeg") == 422
    assert await post(hub, headers, b"\x00" * (64 * 1024 + 1), "image/jpeg") == 413
    assert await post(hub, {}, jpeg, "image/jpeg") == 401
    await hub.call("GET", f"/api/v1/devices/{board.id}/frame", expect=404)

    assert await post(hub, headers, jpeg, "image/jpeg") == 201
    assert await post(hub, headers, picture("PNG"), "image/png") == 429
    kept = await hub.call("GET", f"/api/v1/devices/{board.id}/frame")
    assert kept == jpeg
    hub.clock.now += timedelta(seconds=55)  # type: ignore[attr-defined]
    assert await post(hub, headers, picture("PNG"), "image/png") == 201
    assert await hub.call("GET", f"/api/v1/devices/{board.id}/frame") == picture("PNG")

    # Only those who may see the board see its screen.
    other = await hub.user("xa2.op", "commune_operator", "00002")
    await other.call("GET", f"/api/v1/devices/{board.id}/frame", expect=403)
    agency = await hub.user("bt.soyte", "contributor", "so-yte")
    await agency.call("GET", f"/api/v1/devices/{board.id}/frame", expect=403)


def shows_something(display: DisplayPlayer) -> bool:
    frame = display.frame
    width, height = frame.get_size()
    colours = {tuple(frame.get_at((x, y))) for x in range(0, width, 8) for y in range(0, height, 8)}
    return len(colours) > 1


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as hub:
        yield hub


@needs_chromium
async def test_a_real_board_sends_its_screen_to_its_device_page(
    live: LiveHub, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    await live.add_commune("xa-a", speaker=[window(utcnow())], board=[window(utcnow())])
    display = DisplayPlayer((640, 360), window=True)
    board = await enroll_agent(
        live,
        tmp_path / "board",
        commune="xa-a",
        kind="board",
        profile="led-board-p10",
        player=display,
    )
    try:
        await live.publish(
            {
                "title": "Lịch tiêm phòng",
                "kind": "text",
                "priority": "normal",
                "text": "Tiêm phòng dại cho chó, mèo vào sáng thứ Bảy tại nhà văn hoá.",
                "targets": {"communes": ["xa-a"]},
                "schedule": schedule(utcnow()),
            }
        )
        # Something on the screen: the picture shows the bulletin, not an idle board.
        await asyncio.wait_for(board.play_started.get(), 15)
        # Laid out in a worker, then shown: the screen is no longer one colour.
        await board.wait_until(lambda: shows_something(display), 15)
        assert board.frames.due()
        assert await board.frames.maybe_send()
        assert not board.frames.due()  # not again within the interval
        device_id = board.identity.device_id
        assert live.session is not None
        async with live.session.get(
            f"{live.url}/api/v1/devices/{device_id}/frame",
            headers={"Authorization": f"Bearer {live.token}"},
        ) as response:
            assert response.status == 200 and response.content_type == "image/jpeg"
            stored = await response.read()
        assert inspect_picture(stored) == ("image/jpeg", WIDTH, 180)
        with Image.open(io.BytesIO(stored)) as shown:
            colours = shown.convert("RGB").getcolors(maxcolors=320 * 180)
            assert colours is not None and len(colours) > 8, "the picture is not blank"

        ARTIFACTS.mkdir(exist_ok=True)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                for width, height in ((1366, 768), (390, 844)):
                    context = await browser.new_context(viewport={"width": width, "height": height})
                    page = await context.new_page()
                    page.set_default_timeout(15_000)
                    await page.goto(f"{live.url}/login")
                    await page.fill("input[name=username]", ADMIN)
                    await page.fill("input[name=password]", ADMIN_PASSWORD)
                    await page.click("button[type=submit].primary")
                    await page.goto(f"{live.url}/devices/{device_id}")
                    frame = page.locator("#frame")
                    await expect(frame).to_be_visible()
                    loaded = await frame.evaluate("img => img.complete && img.naturalWidth")
                    assert loaded == WIDTH
                    wide = await page.evaluate("document.documentElement.scrollWidth")
                    assert wide <= width, f"the device page is {wide} px wide at {width} px"
                    await page.locator("#screen").screenshot(
                        path=ARTIFACTS / f"console-board-screen-{width}.png"
                    )
                    await context.close()
            finally:
                await browser.close()
    finally:
        await board.stop()
