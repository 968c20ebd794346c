"""A commune's special days in the console: weekdays with their own windows and dated
exceptions (a holiday, an event), saved through the API's checks, reaching the manifest."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hub.console_admin import parse_windows_text, windows_text
from hub.testing import ADMIN, ADMIN_PASSWORD, HubHarness, running_hub
from loa_contract import VN_TZ, BroadcastWindow
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ConsoleSession, needs_chromium

#: A date still to come (past exceptions are not signed into manifests).
HOLIDAY = (datetime.now(VN_TZ) + timedelta(days=30)).date().isoformat()


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001", name="Xã Tân Phước")
        yield harness


@pytest.fixture
async def admin(hub: HubHarness) -> AsyncIterator[ConsoleSession]:
    session = ConsoleSession(hub)
    await session.login(ADMIN, ADMIN_PASSWORD)
    try:
        yield session
    finally:
        await session.close()


def test_windows_as_people_write_them() -> None:
    assert parse_windows_text(" 5:30-6:30, 17:00 – 18:00;22:00—02:00 ", True) == [
        {"start": "05:30", "end": "06:30", "overnight": False},
        {"start": "17:00", "end": "18:00", "overnight": False},
        {"start": "22:00", "end": "02:00", "overnight": True},
    ]
    assert parse_windows_text("22:00-02:00", False) == [
        {"start": "22:00", "end": "02:00", "overnight": False}
    ]
    assert parse_windows_text("", False) == []
    for bad in ("7h-8h", "05:30", "05:30-06:30-07:00"):
        with pytest.raises(ValueError, match=re.escape(bad)):
            parse_windows_text(f"05:00-05:10, {bad}", False)
    windows = [
        BroadcastWindow(start="05:30", end="06:30"),
        BroadcastWindow(start="17:00", end="18:00"),
    ]
    assert parse_windows_text(windows_text(windows), False) == [
        w.model_dump() | {"overnight": False} for w in windows
    ]


async def test_weekdays_and_exceptions_are_saved_checked_and_signed(
    hub: HubHarness, admin: ConsoleSession
) -> None:
    device = await hub.new_device("00001")
    status, page = await admin.get("/communes/00001/days")
    assert status == 200 and "Thứ Hai" in page and "Chủ nhật" in page
    before = await hub.call("GET", "/api/v1/communes/00001")

    # Unreadable, unconfirmed past midnight, overlapping: refused, each named, nothing saved.
    for fields, named in (
        ({"own_7": "1", "speaker_7": "7h-9h"}, "windows.weekly.7.speaker"),
        ({"own_6": "1", "speaker_6": "22:00-02:00"}, "windows.weekly.6.speaker[0].overnight"),
        ({"own_7": "1", "board_7": "06:00-09:00, 08:00-10:00"}, "windows.weekly.7.board[1]"),
    ):
        status, html, _ = await admin.post("/communes/00001/days/weekly", fields)
        assert status == 422 and named in html, html
        # What was typed comes back to be corrected.
        typed = next(v for k, v in fields.items() if not k.startswith("own_"))
        assert f'value="{typed}"' in html
    assert await hub.call("GET", "/api/v1/communes/00001") == before

    status, _, location = await admin.post(
        "/communes/00001/days/weekly",
        {
            "own_7": "1",
            "speaker_7": "07:00-09:00",
            "board_7": "",
            "own_6": "1",
            "speaker_6": "05:30-06:30, 22:00-02:00",
            "overnight_6": "1",
            "speaker_1": "ignored: not its own",
        },
    )
    assert status == 303 and location == "/communes/00001/days?saved=weekly"
    status, _, location = await admin.post(
        "/communes/00001/days/exceptions",
        {"date": HOLIDAY, "note": "Quốc khánh", "speaker": "", "board": ""},
    )
    assert status == 303 and location == "/communes/00001/days?saved=exception"
    # A second exception on the same date, or none at all: refused.
    status, html, _ = await admin.post(
        "/communes/00001/days/exceptions", {"date": HOLIDAY, "speaker": "08:00-09:00"}
    )
    assert status == 422 and "ngày này đã có ngoại lệ" in html
    status, html, _ = await admin.post("/communes/00001/days/exceptions", {"date": ""})
    assert status == 422 and "hãy chọn ngày" in html

    saved = (await hub.call("GET", "/api/v1/communes/00001"))["windows"]
    assert saved["speaker"] == before["windows"]["speaker"]  # every day's are untouched
    assert saved["weekly"] == {
        "6": {
            "speaker": [
                {"start": "05:30", "end": "06:30"},
                {"start": "22:00", "end": "02:00", "overnight": True},
            ],
            "board": [],
        },
        "7": {"speaker": [{"start": "07:00", "end": "09:00"}], "board": []},
    }
    assert saved["exceptions"] == [
        {"speaker": [], "board": [], "date": HOLIDAY, "note": "Quốc khánh"}
    ]
    _, page = await admin.get(location)
    assert "Quốc khánh" in page and "chỉ khẩn cấp" in page and 'value="07:00–09:00"' in page

    # The device's manifest carries them (the exception is still to come on the hub's clock).
    manifest, _ = await device.manifest()
    assert [w.weekday for w in manifest.weekly_windows] == [6, 7]
    assert [e.date.isoformat() for e in manifest.window_exceptions] == [HOLIDAY]
    assert manifest.window_exceptions[0].windows == []

    # Saving the daily form keeps the special days.
    await admin.get("/communes/00001")
    status, _, _ = await admin.post(
        "/communes/00001",
        [
            ("name", "Xã Tân Phước"),
            ("volume", "70"),
            ("speaker_start", "05:00"),
            ("speaker_end", "06:00"),
            ("speaker_overnight", ""),
        ],
    )
    assert status == 303
    kept = (await hub.call("GET", "/api/v1/communes/00001"))["windows"]
    assert kept["weekly"] == saved["weekly"] and kept["exceptions"] == saved["exceptions"]

    await admin.get("/communes/00001/days")
    status, _, location = await admin.post(
        "/communes/00001/days/exceptions/remove", {"date": HOLIDAY}
    )
    assert status == 303 and location == "/communes/00001/days?saved=removed"
    assert (await hub.call("GET", "/api/v1/communes/00001"))["windows"]["exceptions"] == []
    status, _, _ = await admin.post("/communes/00001/days/exceptions/remove", {"date": HOLIDAY})
    assert status == 404


async def test_a_viewer_sees_the_days_but_cannot_change_them(hub: HubHarness) -> None:
    await hub.user("xem", "viewer", "province", new_password="Own-pass-2!")
    viewer = ConsoleSession(hub)
    await viewer.login("xem", "Own-pass-2!")
    try:
        status, page = await viewer.get("/communes/00001/days")
        assert status == 200 and 'id="exception-form"' not in page and "disabled" in page
        status, _, _ = await viewer.post("/communes/00001/days/exceptions", {"date": HOLIDAY})
        assert status == 403
    finally:
        await viewer.close()


@needs_chromium
async def test_browser_special_days_at_both_sizes(hub: HubHarness) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    base = str(hub.client.make_url("/")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width, height, day in ((1366, 768, HOLIDAY), (390, 844, "2099-04-30")):
                context = await browser.new_context(viewport={"width": width, "height": height})
                page = await context.new_page()
                page.set_default_timeout(10_000)
                await page.goto(f"{base}/login")
                await page.fill("input[name=username]", ADMIN)
                await page.fill("input[name=password]", ADMIN_PASSWORD)
                await page.click("button[type=submit].primary")
                await page.goto(f"{base}/communes/00001")
                await page.click("#special-days")
                sunday = page.locator("fieldset[data-day='7']")
                await sunday.locator("input[name=own_7]").check()
                await sunday.locator("input[name=speaker_7]").fill("07:00-09:00")
                await page.click("#save-weekly")
                await expect(page.locator("#saved")).to_be_visible()
                await page.fill("#exception-form input[name=date]", day)
                await page.fill("#exception-form input[name=note]", "Ngày lễ")
                await page.click("#add-exception")
                await expect(page.locator(f"tr[data-date='{day}']")).to_contain_text("Ngày lễ")
                wide = await page.evaluate("document.documentElement.scrollWidth")
                assert wide <= width, f"the special days page is {wide} px wide at {width} px"
                await page.screenshot(path=ARTIFACTS / f"console-days-{width}.png", full_page=True)
                await context.close()
        finally:
            await browser.close()
