"""Incidents (hub/incidents.py, hub/domain/incidents.py): opened by hand or by the hub for a
lasting device fault, closed, listed with age and who closed them, in the monthly report;
the console page, and a real browser reporting and closing one."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.domain.incidents import step
from hub.incidents import watch_faults
from hub.testing import (
    ADMIN,
    ADMIN_PASSWORD,
    FakeClock,
    HubHarness,
    health_report,
    running_hub,
)
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ConsoleSession, needs_chromium

OWN_PASSWORD = "Own-pass-2!"
T0 = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
async def hub(tmp_path: Path, clock: FakeClock) -> AsyncIterator[HubHarness]:
    # Sessions outlive the clock's jumps: the tests move it by hours.
    async with running_hub(
        tmp_path,
        clock=clock,
        incident_after=timedelta(minutes=30),
        session_idle=timedelta(days=1),
        session_lifetime=timedelta(days=2),
    ) as h:
        await h.commune("00001", name="Xã Tân Phước")
        await h.commune("00002", name="Xã Hoà Bình")
        yield h


# ---------------------------------------------------------------- the rule


def test_step_every_case() -> None:
    threshold = timedelta(minutes=30)
    now = T0
    for in_fault, since, open_incident, began_ago in itertools.product(
        (False, True),
        (None, now - timedelta(minutes=10), now - timedelta(minutes=45)),
        (False, True),
        (timedelta(0), timedelta(hours=2)),
    ):
        result = step(
            in_fault=in_fault,
            since=since,
            began=now - began_ago,
            open_incident=open_incident,
            now=now,
            threshold=threshold,
        )
        if not in_fault:
            assert result.since is None and not result.open
            assert result.close == open_incident
            continue
        expected_since = since if since is not None else now - began_ago
        assert result.since == expected_since and not result.close
        assert result.open == (not open_incident and now - expected_since >= threshold)


def test_a_fault_that_began_in_the_future_counts_from_now() -> None:
    result = step(
        in_fault=True,
        since=None,
        began=T0 + HOUR,
        open_incident=False,
        now=T0,
        threshold=timedelta(0),
    )
    assert result.since == T0 and result.open


# ---------------------------------------------------------------- by hand


async def test_commune_staff_open_and_the_province_sees_age_and_who_closed(
    hub: HubHarness, clock: FakeClock
) -> None:
    device = await hub.new_device("00001")
    operator = await hub.user("xa1.op", "commune_operator", "00001")
    opened = await operator.call(
        "POST",
        "/api/v1/incidents",
        json={
            "what": "Loa cụm 2 bị đổ do gió",
            "device_id": device.id,
            "since": (T0 - 2 * HOUR).isoformat(),
        },
        expect=201,
    )
    assert opened["commune"] == "00001" and opened["source"] == "manual"
    assert opened["opened_by"] == "xa1.op" and opened["age_s"] == 2 * 3600
    clock.advance(HOUR)
    listed = await hub.call("GET", "/api/v1/incidents", params={"state": "open"})
    assert [i["id"] for i in listed] == [opened["id"]] and listed[0]["age_s"] == 3 * 3600
    technician = await hub.user("kt.vien", "technician", "00001")
    closed = await technician.call(
        "POST",
        f"/api/v1/incidents/{opened['id']}/close",
        json={"resolution": "Dựng lại cột, thay loa"},
    )
    assert closed["closed_by"] == "kt.vien" and closed["resolution"] == "Dựng lại cột, thay loa"
    again = await technician.call(
        "POST", f"/api/v1/incidents/{opened['id']}/close", json={"resolution": "x"}, expect=409
    )
    assert again["error"] == "closed"
    assert await hub.call("GET", "/api/v1/incidents", params={"state": "open"}) == []
    done = await hub.call("GET", "/api/v1/incidents", params={"state": "closed"})
    assert done[0]["closed_by"] == "kt.vien"
    audit = await hub.call("GET", "/api/v1/audit", params={"action": "incident."})
    assert {a["action"] for a in audit["items"]} == {"incident.open", "incident.close"}


async def test_scope_and_bad_input(hub: HubHarness) -> None:
    other = await hub.new_device("00002")
    operator = await hub.user("xa1.op", "commune_operator", "00001")
    await operator.call(
        "POST", "/api/v1/incidents", json={"what": "x", "commune": "00002"}, expect=403
    )
    await operator.call(
        "POST", "/api/v1/incidents", json={"what": "x", "device_id": other.id}, expect=403
    )
    own = await operator.call("POST", "/api/v1/incidents", json={"what": "Mất điện"}, expect=201)
    assert own["commune"] == "00001"
    await operator.call("GET", "/api/v1/incidents", params={"commune": "00002"}, expect=403)
    neighbour = await hub.user("xa2.op", "commune_operator", "00002")
    assert await neighbour.call("GET", "/api/v1/incidents") == []
    await neighbour.call(
        "POST", f"/api/v1/incidents/{own['id']}/close", json={"resolution": "x"}, expect=403
    )
    contributor = await hub.user("so.yte", "contributor", "soyte")
    await contributor.call("GET", "/api/v1/incidents", expect=403)
    for body, field in (
        ({"what": ""}, "what"),
        ({"what": "x", "device_id": "nope"}, "device_id"),
        ({"what": "x", "commune": "99999"}, "commune"),
        ({"what": "x", "commune": "00001", "since": "2099-01-01T00:00:00+07:00"}, "since"),
        ({"what": "x"}, "commune"),  # a province account says where
    ):
        refused = await hub.call("POST", "/api/v1/incidents", json=body, expect=422)
        assert refused["detail"][0]["field"] == field, body


# ---------------------------------------------------------------- by the hub


async def test_a_lasting_fault_opens_an_incident_and_recovery_closes_it(
    hub: HubHarness, clock: FakeClock
) -> None:
    device = await hub.new_device("00001")
    healthy = await hub.new_device("00001")
    status, _ = await healthy.report([health_report(1, clock.now)])
    assert status == 200
    status, _ = await device.report([health_report(1, clock.now, player_state="error")])
    assert status == 200
    assert await watch_faults(hub.app) == (0, 0)
    clock.advance(timedelta(minutes=20))
    await healthy.report([health_report(2, clock.now)])
    await device.report([health_report(2, clock.now, player_state="error")])
    assert await watch_faults(hub.app) == (0, 0)  # 20 minutes: not yet
    clock.advance(timedelta(minutes=15))
    await healthy.report([health_report(3, clock.now)])
    await device.report([health_report(3, clock.now, player_state="error")])
    assert await watch_faults(hub.app) == (1, 0)
    assert await watch_faults(hub.app) == (0, 0)  # one incident, not one per look
    [incident] = await hub.call("GET", "/api/v1/incidents", params={"state": "open"})
    assert incident["source"] == "auto" and incident["opened_by"] == "system"
    assert incident["device_id"] == device.id and "player_error" in incident["what"]
    assert incident["since"] == T0.isoformat().replace("+00:00", "Z")
    clock.advance(timedelta(minutes=5))
    await healthy.report([health_report(4, clock.now)])
    await device.report([health_report(4, clock.now)])
    assert await watch_faults(hub.app) == (0, 1)
    [closed] = await hub.call("GET", "/api/v1/incidents", params={"state": "closed"})
    assert closed["closed_by"] == "system" and closed["age_s"] == 40 * 60


async def test_an_offline_device_counts_from_when_it_was_last_heard(
    hub: HubHarness, clock: FakeClock
) -> None:
    device = await hub.new_device("00001")
    await device.report([health_report(1, clock.now)])
    clock.advance(HOUR)  # silent for an hour: offline since it was last heard from
    assert await watch_faults(hub.app) == (1, 0)
    [incident] = await hub.call("GET", "/api/v1/incidents")
    assert "offline" in incident["what"] and incident["age_s"] == 3600


async def test_incidents_appear_in_the_monthly_report(hub: HubHarness, clock: FakeClock) -> None:
    operator = await hub.user("xa1.op", "commune_operator", "00001")
    await operator.call(
        "POST",
        "/api/v1/incidents",
        json={"what": "Mất điện", "since": (T0 - HOUR).isoformat()},
        expect=201,
    )
    await hub.call(
        "POST", "/api/v1/incidents", json={"what": "Cáp quang đứt", "commune": "00002"}, expect=201
    )
    report = await hub.call("GET", "/api/v1/reports/monthly", params={"month": "2026-07"})
    assert [i["what"] for i in report["incidents"]] == ["Mất điện", "Cáp quang đứt"]
    own = await operator.call("GET", "/api/v1/reports/monthly", params={"month": "2026-07"})
    assert [i["what"] for i in own["incidents"]] == ["Mất điện"]
    earlier = await hub.call("GET", "/api/v1/reports/monthly", params={"month": "2026-06"})
    assert earlier["incidents"] == []
    resp = await hub.client.get(
        "/api/v1/reports/monthly.csv", params={"month": "2026-07"}, headers=hub.auth
    )
    assert "Cáp quang đứt" in await resp.text()


# ---------------------------------------------------------------- the console


async def test_the_console_page_reports_and_closes(hub: HubHarness) -> None:
    await hub.user("xa1.op", "commune_operator", "00001", new_password=OWN_PASSWORD)
    page = ConsoleSession(hub)
    try:
        await page.login("xa1.op", OWN_PASSWORD)
        status, html = await page.get("/incidents")
        assert status == 200 and "Không có sự cố nào đang mở." in html
        status, html, _ = await page.post(
            "/incidents", {"what": "", "commune": "00001", "device_id": "", "since": ""}
        )
        assert status == 422 and "what" in html
        status, _, location = await page.post(
            "/incidents",
            {"what": "Loa không kêu", "commune": "00001", "device_id": "", "since": ""},
        )
        assert (status, location) == (303, "/incidents?saved=opened")
        [incident] = await hub.call("GET", "/api/v1/incidents")
        status, html = await page.get("/incidents")
        assert "Loa không kêu" in html and "Đã kéo dài" in html
        status, _, location = await page.post(
            f"/incidents/{incident['id']}/close", {"resolution": "Thay dây"}
        )
        assert (status, location) == (303, "/incidents?saved=closed")
        status, html = await page.get("/incidents")
        assert "Thay dây" in html and "xa1.op" in html
    finally:
        await page.close()


async def test_the_console_pages_through_closed_incidents(hub: HubHarness) -> None:
    for i in range(55):
        opened = await hub.call(
            "POST",
            "/api/v1/incidents",
            json={"what": f"Sự cố số {i:02d}", "commune": "00001"},
            expect=201,
        )
        await hub.call(
            "POST", f"/api/v1/incidents/{opened['id']}/close", json={"resolution": "Đã sửa"}
        )
    page = ConsoleSession(hub)
    try:
        await page.login(ADMIN, ADMIN_PASSWORD)
        # As after closing one: the flash is this page's, not the next one's.
        status, html = await page.get("/incidents?saved=closed")
        assert status == 200
        first = set(re.findall(r"Sự cố số (\d\d)", html))
        assert len(first) == 50
        older = re.search(r'href="([^"]+)" id="next-page"', html)
        assert older, "no link to the older ones"
        assert "saved=" not in older[1]
        status, html = await page.get(older[1].replace("&amp;", "&"))
        rest = set(re.findall(r"Sự cố số (\d\d)", html))
        assert len(rest) == 5 and first | rest == {f"{i:02d}" for i in range(55)}
        assert 'id="next-page"' not in html and 'id="first-page"' in html
    finally:
        await page.close()


@needs_chromium
async def test_browser_technician_reports_and_the_province_sees_it(hub: HubHarness) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    await hub.user("kt.vien", "technician", "00001", new_password=OWN_PASSWORD)
    base = str(hub.client.make_url("/")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 390, "height": 844})
            page = await context.new_page()
            page.set_default_timeout(5000)
            await page.goto(f"{base}/login")
            await page.fill("input[name=username]", "kt.vien")
            await page.fill("input[name=password]", OWN_PASSWORD)
            await page.click("button[type=submit].primary")
            await expect(page).to_have_url(f"{base}/")
            await page.click("nav a[href='/incidents']")
            await expect(page.locator("h1")).to_have_text("Sự cố")
            await page.fill("#incident-form input[name=what]", "Bộ khuếch đại cháy")
            await page.click("#incident-form button[type=submit]")
            await expect(page.locator("#saved")).to_have_text("Đã ghi nhận sự cố.")
            row = page.locator("#open tr[data-incident]")
            await expect(row).to_contain_text("Bộ khuếch đại cháy")
            await page.screenshot(path=ARTIFACTS / "console-incidents.png", full_page=True)
            await row.locator("input[name=resolution]").fill("Thay bộ khuếch đại")
            await row.locator("button[type=submit]").click()
            await expect(page.locator("#saved")).to_have_text("Đã đóng sự cố.")
            await expect(page.locator("#closed .closed-by")).to_have_text("kt.vien")
        finally:
            await browser.close()
