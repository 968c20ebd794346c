"""Previews before approval (issue #12): the speech and the board frames a bulletin becomes,
made on the hub by the devices' own code, checked by their samples and pixels; and the
expected airing length, the one the board's layout gives."""

from __future__ import annotations

import io
import os
import shutil
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from edge_agent.airing import text_airing_seconds
from edge_agent.profile import load_profile
from hub.previews import prune
from hub.testing import HubHarness, running_hub
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, needs_chromium
from tests.real_files import LONG_NOTICE, LONG_NOTICE_END, cmyk_jpeg, text_pdf

RED, BLUE = (220, 30, 40), (30, 60, 220)
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001")
        yield harness


def draft(**kw: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "title": "Thông báo",
        "priority": "normal",
        "category": "socioeconomic_development",
        "targets": {"communes": ["00001"]},
        "schedule": {
            "valid_from": (now - timedelta(minutes=1)).isoformat(),
            "valid_until": (now + timedelta(days=1)).isoformat(),
        },
        **kw,
    }


async def fetch_picture(hub: HubHarness, url: str, name: str) -> Image.Image:
    data = await hub.call("GET", url)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_bytes(data)
    return Image.open(io.BytesIO(data)).convert("RGB")


def close(pixel: tuple[int, ...], wanted: tuple[int, int, int], slack: int = 40) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(pixel, wanted, strict=False))


@needs_espeak
async def test_a_long_text_previews_as_speech_and_as_each_board_shows_it(
    hub: HubHarness,
) -> None:
    made = await hub.call(
        "POST", "/api/v1/bulletins", json=draft(kind="text", text=LONG_NOTICE), expect=201
    )
    preview = await hub.call("GET", f"/api/v1/bulletins/{made['id']}/preview")
    # The speech a speaker airs: the speaker's own engine, minutes of it.
    assert preview["speech"], preview
    speech = await hub.call("GET", preview["speech"])
    with wave.open(io.BytesIO(speech)) as wav:
        seconds = wav.getnframes() / wav.getframerate()
    assert seconds > 60 and preview["speaker_seconds"] == pytest.approx(seconds, abs=0.1)
    boards = {b["profile"]: b for b in preview["boards"]}
    assert set(boards) == {"lcd-board-1080p", "led-board-p10"}
    for name, board in boards.items():
        profile = load_profile(name)
        assert profile.display is not None
        assert (board["width"], board["height"]) == profile.display.screen_size
        # The airing length is the board's own, computed once, in one place.
        expected = text_airing_seconds(LONG_NOTICE, profile.display, title="Thông báo")
        assert board["seconds"] == pytest.approx(expected, abs=0.1)
        assert board["seconds"] > 60  # shown whole, not 15 s of it
        assert len(board["frames"]) == 3 and board["at_s"][0] == 0.0
        pictures = [
            await fetch_picture(hub, url, f"preview-text-{name}-{i}.png")
            for i, url in enumerate(board["frames"])
        ]
        assert all(p.size == profile.display.screen_size for p in pictures)
        # The text moves: the start and the end of its pass differ.
        assert pictures[0].tobytes() != pictures[-1].tobytes()
    # Made once: asked again, the same files come back from the cache.
    again = await hub.call("GET", f"/api/v1/bulletins/{made['id']}/preview")
    assert again == preview
    assert LONG_NOTICE_END  # the notice's words reach the board whole (its length says so)


async def test_a_pdf_previews_its_pages_at_the_board_s_resolution(
    hub: HubHarness, tmp_path: Path
) -> None:
    pdf = text_pdf(tmp_path / "t.pdf", ["Trang một: lịch tiêm", "Trang hai: địa điểm"], [RED, BLUE])
    media = await hub.upload(pdf.read_bytes())
    made = await hub.call(
        "POST", "/api/v1/bulletins", json=draft(kind="document", media=media["sha256"]), expect=201
    )
    preview = await hub.call("GET", f"/api/v1/bulletins/{made['id']}/preview")
    lcd = next(b for b in preview["boards"] if b["profile"] == "lcd-board-1080p")
    assert (lcd["width"], lcd["height"]) == (1920, 1080) and len(lcd["frames"]) == 2
    pages = [
        await fetch_picture(hub, u, f"preview-pdf-{i}.png") for i, u in enumerate(lcd["frames"])
    ]
    for page, mark in zip(pages, (RED, BLUE), strict=True):
        assert page.size == (1920, 1080)
        # The page's coloured band, as poppler drew it, somewhere in the top of the page.
        band = [page.getpixel((960, y)) for y in range(0, 540, 4)]
        assert any(close(p, mark) for p in band), band[:20]
    assert lcd["at_s"][1] > 0 and lcd["seconds"] >= sum([8.0, 8.0])
    # The LED panel shows documents as their text: one crawl.
    led = next(b for b in preview["boards"] if b["profile"] == "led-board-p10")
    assert led["frames"] and led["seconds"] >= 15.0


async def test_a_cmyk_photo_previews_red_on_every_board(hub: HubHarness, tmp_path: Path) -> None:
    media = await hub.upload(cmyk_jpeg(tmp_path / "c.jpg").read_bytes())
    made = await hub.call(
        "POST", "/api/v1/bulletins", json=draft(kind="image", media=media["sha256"]), expect=201
    )
    preview = await hub.call("GET", f"/api/v1/bulletins/{made['id']}/preview")
    assert preview["speech"] is None and preview["speaker_seconds"] is None
    for board in preview["boards"]:
        picture = await fetch_picture(
            hub, board["frames"][0], f"preview-cmyk-{board['profile']}.png"
        )
        w, h = picture.size
        assert close(picture.getpixel((w // 2, h // 2 + h // 10)), (237, 28, 36), 60), board
        assert board["seconds"] == 15.0


async def test_preview_files_are_only_the_preview_s(hub: HubHarness) -> None:
    made = await hub.call(
        "POST", "/api/v1/bulletins", json=draft(kind="text", text="Chào"), expect=201
    )
    base = f"/api/v1/bulletins/{made['id']}/preview"
    await hub.call("GET", f"{base}/..%2Fhub.sqlite3", expect=404)
    await hub.call("GET", f"{base}/index.json", expect=404)
    await hub.call("GET", "/api/v1/bulletins/nope/preview", expect=404)


# ---------------------------------------------------------------- in the reviewer's browser

PASSWORD = "Own-pass-2!"


@needs_chromium
@needs_espeak
async def test_a_reviewer_previews_a_submitted_document_in_the_browser(
    hub: HubHarness, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    agency = await hub.user("bt.soyte", "contributor", "so-yte", new_password=PASSWORD)
    await hub.user("tt.lan", "reviewer", new_password=PASSWORD)
    pdf = text_pdf(tmp_path / "t.pdf", ["Lịch tiêm phòng vắc-xin tại trạm y tế xã"], [RED])
    media = await agency.upload(pdf.read_bytes())
    made = await agency.call(
        "POST", "/api/v1/bulletins", json=draft(kind="document", media=media["sha256"]), expect=201
    )
    await agency.call("POST", f"/api/v1/bulletins/{made['id']}/submit")
    base = str(hub.client.make_url("/")).rstrip("/")
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(30_000)
            await page.goto(f"{base}/login")
            await page.fill("input[name=username]", "tt.lan")
            await page.fill("input[name=password]", PASSWORD)
            await page.click("button[type=submit].primary")
            await expect(page).to_have_url(f"{base}/")
            await page.goto(f"{base}/review")
            await page.click(f"#queue a.bn-preview-link[href='/bulletins/{made['id']}/preview']")
            await expect(page).to_have_url(f"{base}/bulletins/{made['id']}/preview")
            # The speech a speaker will air, decoded by the browser.
            seconds = await _media_duration(page, "#preview-speech")
            assert seconds > 1.0
            await expect(page.locator("#speaker-length")).to_contain_text("giây")
            # The LCD board's page at 1920×1080, its red band drawn by poppler.
            lcd = page.locator(".preview-board[data-profile='lcd-board-1080p'] img.preview-frame")
            await expect(lcd).to_have_count(1)
            found = await page.evaluate(
                """(img) => new Promise((resolve) => {
                    const check = () => {
                        const canvas = document.createElement("canvas");
                        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
                        const g = canvas.getContext("2d");
                        g.drawImage(img, 0, 0);
                        const column = [];
                        for (let y = 0; y < 540; y += 6) {
                            column.push(Array.from(g.getImageData(960, y, 1, 1).data));
                        }
                        resolve({w: img.naturalWidth, h: img.naturalHeight, column});
                    };
                    if (img.complete && img.naturalWidth) { check(); }
                    else { img.addEventListener("load", check, {once: true}); }
                })""",
                await lcd.element_handle(),
            )
            assert (found["w"], found["h"]) == (1920, 1080)
            assert any(close(tuple(p[:3]), RED) for p in found["column"]), found["column"][:10]
            led = page.locator(".preview-board[data-profile='led-board-p10'] .board-length")
            await expect(led).to_be_visible()
            await page.screenshot(path=str(ARTIFACTS / "preview-review-page.png"), full_page=True)
        finally:
            await browser.close()


async def _media_duration(page: Any, selector: str) -> float:
    duration = await page.evaluate(
        """(selector) => new Promise((resolve, reject) => {
            const media = document.querySelector(selector);
            if (media.readyState >= 1) { resolve(media.duration); return; }
            media.addEventListener("loadedmetadata", () => resolve(media.duration), {once: true});
            media.addEventListener("error", () => reject(new Error("media error")), {once: true});
        })""",
        selector,
    )
    return float(duration)


def test_previews_not_asked_for_a_month_are_removed(tmp_path: Path) -> None:
    old, recent, unfinished = tmp_path / "a", tmp_path / "b", tmp_path / ".c"
    for folder in (old, recent, unfinished):
        folder.mkdir()
        (folder / "index.json").write_text("{}")
    os.utime(old / "index.json", (1000.0, 1000.0))
    os.utime(unfinished / "index.json", (1000.0, 1000.0))
    assert prune(tmp_path, 2000.0) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".c", "b"]
