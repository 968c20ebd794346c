"""Reports that go up (issue #11 point 4): per-device outages and reboots in the monthly
report, a commune's submission (frozen, audited) and the province's view of who submitted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from hub.reports import SAME_BOOT_S, count_boots, silent_runs
from hub.testing import FakeClock, HubHarness, health_report, running_hub
from loa_contract import VN_TZ
from tests.browser import needs_chromium

JULY = datetime(2026, 7, 1, tzinfo=VN_TZ)
SLOT = timedelta(minutes=5)


def test_silent_runs() -> None:
    assert silent_runs(range(0), set()) == []
    assert silent_runs(range(5), {0, 1, 2, 3, 4}) == []
    assert silent_runs(range(5), set()) == [(0, None)]
    assert silent_runs(range(6), {0, 3}) == [(1, 3), (4, None)]
    assert silent_runs(range(2, 6), {1, 2, 5}) == [(3, 5)]


def test_count_boots_merges_a_moving_clock() -> None:
    start, end = JULY, JULY + timedelta(days=31)
    t = JULY.timestamp()
    assert count_boots([], start, end) == 0
    assert count_boots([t + 100, t + 100 + SAME_BOOT_S / 2], start, end) == 1
    assert count_boots([t + 100, t + 100 + SAME_BOOT_S + 1], start, end) == 2
    # A boot before the period is not counted, nor its wobble inside it.
    assert count_boots([t - 60, t + 60], start, end) == 0
    assert count_boots([end.timestamp() + 10], start, end) == 0


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock(datetime(2026, 8, 2, 9, 0, tzinfo=VN_TZ))


@pytest.fixture
async def hub(tmp_path: Path, clock: FakeClock) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path, clock=clock) as h:
        await h.commune("00001", name="Xã Tân Phước")
        await h.commune("00002", name="Xã Hoà Bình")
        yield h


async def test_outages_reboots_and_a_frozen_submission(hub: HubHarness) -> None:
    device = await hub.new_device("00001")
    await hub.backdate(JULY, device.id)
    first_boot = JULY.timestamp() - 30
    second_boot = (JULY + 9 * SLOT).timestamp()
    samples = []
    for seq, slot in enumerate((0, 1, 2, 10, 11), start=1):
        # The first boot's time moves by a minute when NTP sets the clock: still one boot.
        boot = first_boot + (60 if slot == 2 else 0) if slot < 10 else second_boot
        samples.append(health_report(seq, JULY + slot * SLOT, boot_time_seconds=boot))
    status, body = await device.report(samples)
    assert status == 200, body
    operator = await hub.user("xa1.op", "commune_operator", "00001")
    report = await operator.call("GET", "/api/v1/reports/monthly", params={"month": "2026-07"})
    [uptime] = report["uptime"]
    assert uptime["reboots"] == 1  # the first boot was just before the month
    outages = [(o["disconnected_at"], o["reconnected_at"]) for o in uptime["outages"]]

    assert len(outages) == 2
    assert datetime.fromisoformat(outages[0][0]) == JULY + 3 * SLOT
    assert datetime.fromisoformat(outages[0][1]) == JULY + 10 * SLOT
    assert datetime.fromisoformat(outages[1][0]) == JULY + 12 * SLOT
    assert outages[1][1] is None

    submitted = await operator.call(
        "POST", "/api/v1/reports/monthly/submit", params={"month": "2026-07"}, expect=201
    )
    assert submitted["submitted_by"] == "xa1.op"
    # Later reports about July change the live data, not the submitted report.
    late = health_report(6, JULY + 20 * SLOT, boot_time_seconds=second_boot)
    assert (await device.report([late]))[0] == 200
    frozen = await operator.call("GET", "/api/v1/reports/monthly", params={"month": "2026-07"})
    assert frozen == submitted
    again = await operator.call(
        "POST", "/api/v1/reports/monthly/submit", params={"month": "2026-07"}, expect=409
    )
    assert again["error"] == "submitted"
    audit = await hub.call("GET", "/api/v1/audit", params={"action": "report.submit"})
    assert [a["object"] for a in audit["items"]] == ["00001"]

    view = await hub.call("GET", "/api/v1/reports/submissions", params={"month": "2026-07"})
    by_scope = {c["scope"]: c["submitted_by"] for c in view["communes"]}
    assert by_scope == {"00001": "xa1.op", "00002": None}
    assert view["province"]["submitted_by"] is None
    province = await hub.call(
        "POST", "/api/v1/reports/monthly/submit", params={"month": "2026-07"}, expect=201
    )
    assert province["scope"] == "province" and province["submitted_by"] == "admin"
    view = await hub.call("GET", "/api/v1/reports/submissions", params={"month": "2026-07"})
    assert view["province"]["submitted_by"] == "admin"
    csv = await hub.client.get(
        "/api/v1/reports/monthly.csv", params={"month": "2026-07"}, headers=hub.auth
    )
    text = await csv.text()
    assert "disconnected_at" in text and "reboots" in text


async def test_who_submits_what_and_when(hub: HubHarness) -> None:
    operator = await hub.user("xa1.op", "commune_operator", "00001")
    running = await operator.call(
        "POST", "/api/v1/reports/monthly/submit", params={"month": "2026-08"}, expect=409
    )
    assert running["error"] == "period_not_over"
    await operator.call(
        "POST",
        "/api/v1/reports/monthly/submit",
        params={"month": "2026-07", "commune": "00002"},
        expect=403,
    )
    # The province does not submit on a commune's behalf.
    await hub.call(
        "POST",
        "/api/v1/reports/monthly/submit",
        params={"month": "2026-07", "commune": "00001"},
        expect=403,
    )
    technician = await hub.user("kt.vien", "technician", "00001")
    await technician.call(
        "POST", "/api/v1/reports/monthly/submit", params={"month": "2026-07"}, expect=403
    )
    await operator.call(
        "GET", "/api/v1/reports/submissions", params={"month": "2026-07"}, expect=403
    )


async def test_the_reports_page_submits_and_shows_who_submitted(hub: HubHarness) -> None:
    from tests.browser import ConsoleSession

    await hub.user("xa1.op", "commune_operator", "00001", new_password="Own-pass-2!")
    page = ConsoleSession(hub)
    admin = ConsoleSession(hub)
    try:
        await page.login("xa1.op", "Own-pass-2!")
        status, html = await page.get("/reports?month=2026-07")
        assert status == 200 and 'id="report-submit"' in html
        status, _, location = await page.post("/reports/submit", {"month": "2026-07"})
        assert (status, location) == (303, "/reports?month=2026-07")
        status, html = await page.get("/reports?month=2026-07")
        assert 'id="submitted"' in html and "xa1.op" in html
        status, _, _ = await page.post("/reports/submit", {"month": "2026-07"})
        assert status == 409
        status, _, _ = await page.post("/reports/submit", {"month": "July"})
        assert status == 422
        await admin.login("admin", "Chang3-me!now")
        status, html = await admin.get("/reports?month=2026-07")
        assert 'data-commune="00001" data-submitted="yes"' in html
        assert 'data-commune="00002" data-submitted="no"' in html
        assert 'id="report-submit"' in html  # the province's own report, not yet sent
    finally:
        await page.close()
        await admin.close()


@needs_chromium
async def test_browser_commune_submits_its_month(hub: HubHarness) -> None:
    from playwright.async_api import async_playwright, expect

    from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

    ARTIFACTS.mkdir(exist_ok=True)
    await hub.user("xa1.op", "commune_operator", "00001", new_password="Own-pass-2!")
    base = str(hub.client.make_url("/")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (await browser.new_context()).new_page()
            page.set_default_timeout(5000)
            await page.goto(f"{base}/login")
            await page.fill("input[name=username]", "xa1.op")
            await page.fill("input[name=password]", "Own-pass-2!")
            await page.click("button[type=submit].primary")
            await expect(page).to_have_url(f"{base}/")
            await page.goto(f"{base}/reports?month=2026-07")
            await page.click("#report-submit button[type=submit]")
            await expect(page).to_have_url(f"{base}/reports?month=2026-07")
            await expect(page.locator("#submitted")).to_contain_text("xa1.op")
            await expect(page.locator("#report-submit")).to_have_count(0)
            await page.screenshot(path=ARTIFACTS / "console-report-submitted.png", full_page=True)
        finally:
            await browser.close()
    view = await hub.call("GET", "/api/v1/reports/submissions", params={"month": "2026-07"})
    assert {c["scope"]: c["submitted_by"] for c in view["communes"]}["00001"] == "xa1.op"
