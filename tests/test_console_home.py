"""Each role's home page says what that person has to do or watch, and nothing false."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from hub import bulletins
from hub.console_home import airs_on, by_state
from hub.domain.waiting import Waiting, waited
from hub.testing import ADMIN, ADMIN_PASSWORD, running_hub
from loa_contract import VN_TZ
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ConsoleSession, needs_chromium
from tests.console_world import COMMUNE, OTHER, OWN_PASSWORD, World, build

T0 = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def test_waited_uses_the_largest_whole_unit() -> None:
    cases = [
        (timedelta(0), Waiting(0, "home.minutes")),
        (timedelta(seconds=59), Waiting(0, "home.minutes")),
        (timedelta(minutes=59, seconds=59), Waiting(59, "home.minutes")),
        (timedelta(hours=1), Waiting(1, "home.hours")),
        (timedelta(hours=47, minutes=59), Waiting(47, "home.hours")),
        (timedelta(days=2), Waiting(2, "home.days")),
        (timedelta(days=30, hours=23), Waiting(30, "home.days")),
        # A clock a little behind the stored time: not "-1 minutes".
        (-timedelta(seconds=5), Waiting(0, "home.minutes")),
    ]
    for delta, expected in cases:
        assert waited(T0, T0 + delta) == expected, delta


def _bulletin(
    ident: str,
    *,
    start: datetime,
    end: datetime,
    communes: list[str] | None = None,
    devices: list[str] | None = None,
    everywhere: bool = False,
    state: str = "published",
    priority: str = "normal",
) -> bulletins.BulletinOut:
    return bulletins.BulletinOut.model_validate(
        {
            "id": ident,
            "title": ident,
            "kind": "text",
            "priority": priority,
            "text": "x",
            "media": None,
            "targets": {
                "communes": communes or [],
                "devices": devices or [],
                "all_communes": everywhere,
            },
            "schedule": {"valid_from": start.isoformat(), "valid_until": end.isoformat()},
            "display_seconds": 10,
            "category": None,
            "source_level": "province",
            "state": state,
            "unit": "province",
            "review_comment": None,
            "created_by": None,
            "created_at": start.isoformat(),
            "published_at": start.isoformat(),
            "cancelled_at": None,
        }
    )


def test_airs_on_keeps_what_reaches_the_commune_on_that_day() -> None:
    day = date(2026, 3, 10)
    midnight = datetime(2026, 3, 10, tzinfo=VN_TZ)
    week = (midnight - timedelta(days=3), midnight + timedelta(days=3))
    rows = [
        _bulletin("ours", start=week[0], end=week[1], communes=[COMMUNE]),
        _bulletin("theirs", start=week[0], end=week[1], communes=[OTHER]),
        _bulletin("province", start=week[0], end=week[1], everywhere=True, priority="priority"),
        _bulletin("our-device", start=week[0], end=week[1], devices=["d1"]),
        _bulletin("other-device", start=week[0], end=week[1], devices=["d9"]),
        # Ended exactly at midnight: not today. Starts exactly at the next midnight: not today.
        _bulletin("yesterday", start=week[0], end=midnight, communes=[COMMUNE]),
        _bulletin("tomorrow", start=midnight + timedelta(days=1), end=week[1], everywhere=True),
        # One minute of today is enough.
        _bulletin(
            "last-minute",
            start=midnight + timedelta(hours=23, minutes=59),
            end=week[1],
            communes=[COMMUNE],
        ),
        _bulletin("cancelled", start=week[0], end=week[1], communes=[COMMUNE], state="cancelled"),
        _bulletin(
            "alert",
            start=midnight + timedelta(hours=9),
            end=midnight + timedelta(hours=10),
            everywhere=True,
            priority="emergency",
        ),
    ]
    found = [b.id for b in airs_on(rows, COMMUNE, {"d1"}, day)]
    assert found == ["alert", "province", "ours", "our-device", "last-minute"]


def test_by_state_names_every_state() -> None:
    midnight = datetime(2026, 3, 10, tzinfo=VN_TZ)
    rows = [
        _bulletin(str(i), start=midnight, end=midnight + timedelta(days=1), state=state)
        for i, state in enumerate(["draft", "draft", "returned"])
    ]
    counts = by_state(rows)
    assert counts["draft"] == 2 and counts["returned"] == 1
    assert set(counts) == {"draft", "submitted", "returned", "published", "cancelled"}
    assert sum(counts.values()) == 3


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running_hub(tmp_path) as hub:
        await hub.login()
        yield await build(hub)


async def _home(world: World, username: str, password: str = OWN_PASSWORD) -> str:
    session = ConsoleSession(world.hub)
    try:
        await session.login(username, password)
        status, html = await session.get("/")
        assert status == 200
        return html
    finally:
        await session.close()


async def test_each_role_gets_its_own_home(world: World) -> None:
    contributor = await _home(world, "tranvanbinh")
    # Its bulletins by state (one draft, one queued, one returned) and the reviewer's words.
    own = re.search(r'id="home-own".*?</section>', contributor, re.S)
    assert own is not None
    assert re.search(r'<span class="num">1</span> Bị trả lại', own[0])
    assert re.search(r'<span class="num">1</span> Chờ thẩm định', own[0])
    assert "Thiếu giờ làm việc buổi chiều" in own[0]
    # No claim it cannot back: an agency cannot see the day's emergencies nor the fleet.
    assert "không xem được thiết bị" not in contributor
    assert "chưa có tin khẩn cấp" not in contributor and 'id="home-emergencies"' not in contributor
    # Its unit by the register's name, never the code.
    assert "</strong> · Báo Hải Phòng</p>" in contributor and "baotinh" not in contributor

    operator = await _home(world, "phamthimai")
    today = re.search(r'id="home-today".*?</section>', operator, re.S)
    assert today is not None
    assert "Hôm nay phát tại Xã Tân Phước" in today[0]
    assert "Lịch tiêm phòng dại" in today[0] and "Cảnh báo lũ quét" in today[0]
    # Its commune's own unsent draft or another's bulletin is not "airing".
    assert "Bản nháp chưa gửi" not in today[0]
    assert "</strong> · Xã Tân Phước</p>" in operator and "(00001)" not in operator

    reviewer = await _home(world, "lethihoa")
    queue = re.search(r'id="home-queue".*?</section>', reviewer, re.S)
    assert queue is not None
    assert "Thu gom rác thải nhựa" in queue[0] and "đã chờ 0 phút" in queue[0]
    # The returned one is no longer in the queue.
    assert "Làm căn cước" not in queue[0]
    assert "</strong> · Tỉnh (Sở)</p>" in reviewer

    viewer = await _home(world, "vuthilan")
    assert 'id="home-emergencies"' in viewer and "Cảnh báo lũ quét" in viewer
    assert 'id="home-queue"' not in viewer and 'id="home-own"' not in viewer

    admin = await _home(world, ADMIN, ADMIN_PASSWORD)
    assert 'id="home-queue"' in admin and 'id="home-own"' not in admin


@needs_chromium
async def test_homes_in_a_browser(world: World) -> None:
    from playwright.async_api import async_playwright

    base = str(world.hub.client.make_url("/")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width, height in ((1366, 768), (390, 844)):
                for username in ("tranvanbinh", "phamthimai", "lethihoa"):
                    context = await browser.new_context(viewport={"width": width, "height": height})
                    page = await context.new_page()
                    await page.goto(base + "/login")
                    await page.fill("input[name=username]", username)
                    await page.fill("input[name=password]", OWN_PASSWORD)
                    await page.click("button[type=submit]")
                    await page.wait_for_url(base + "/")
                    # The skip link is the first stop of the keyboard and lands on the content.
                    await page.keyboard.press("Tab")
                    focused = await page.evaluate("document.activeElement.className")
                    assert focused == "skip"
                    await page.keyboard.press("Enter")
                    assert await page.evaluate("document.activeElement.id") == "main"
                    await page.screenshot(
                        path=ARTIFACTS / f"home-{username}-{width}.png", full_page=True
                    )
                    await context.close()
        finally:
            await browser.close()
