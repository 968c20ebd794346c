"""The commune's say over other units' bulletins (hub/offers.py): the API, the manifests it
changes, the console section, and a real browser declining a bulletin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.offers import offer_state
from hub.testing import EnrolledDevice, HubHarness, running_hub
from loa_contract import Priority
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ConsoleSession, needs_chromium
from tests.cap_samples import when

OWN_PASSWORD = "Own-pass-2!"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001", name="Xã Tân Phước")
        await harness.commune("00002", name="Xã Hoà Bình")
        yield harness


async def bulletin(
    hub: HubHarness, title: str, priority: str = "normal", communes: list[str] | None = None
) -> str:
    made = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json={
            "title": title,
            "kind": "text",
            "priority": priority,
            "text": f"Nội dung {title}",
            "targets": {"communes": communes or ["00001"]},
            "schedule": {
                "valid_from": when(-timedelta(minutes=1)),
                "valid_until": when(timedelta(hours=3)),
                "times": ["07:00"],
            },
        },
        expect=201,
    )
    await hub.call("POST", f"/api/v1/bulletins/{made['id']}/publish")
    return str(made["id"])


async def airing(device: EnrolledDevice) -> list[str]:
    manifest, _ = await device.manifest()
    return [b.id for b in manifest.bulletins]


def states(offers: dict[str, Any]) -> dict[str, str]:
    return {o["bulletin"]["id"]: o["state"] for o in offers["offers"]}


def test_the_rule_in_one_place() -> None:
    for mode in ("auto", "offer"):
        for choice in (None, "accepted", "declined"):
            for priority in Priority:
                state = offer_state(priority, mode, choice)
                if priority is not Priority.NORMAL:
                    assert state == "required"
                elif choice is not None:
                    assert state == choice
                else:
                    assert state == ("airing" if mode == "auto" else "offered")


async def test_auto_airs_until_declined_and_priority_cannot_be_declined(hub: HubHarness) -> None:
    device = await hub.new_device("00001")
    news = await bulletin(hub, "Lịch tiêm chủng")
    urgent = await bulletin(hub, "Lịch cắt điện", "priority")
    operator = await hub.user("xa1.op", "commune_operator", "00001")
    own = await bulletin(operator, "Tin của xã")
    offers = await operator.call("GET", "/api/v1/communes/00001/offers")
    assert offers["province_normal"] == "auto"
    assert states(offers) == {news: "airing", urgent: "required"}  # its own is not offered
    assert set(await airing(device)) == {news, urgent, own}
    declined = await operator.call("POST", f"/api/v1/communes/00001/offers/{news}/decline")
    assert states(declined)[news] == "declined"
    assert set(await airing(device)) == {urgent, own}
    refused = await operator.call(
        "POST", f"/api/v1/communes/00001/offers/{urgent}/decline", expect=409
    )
    assert refused["error"] == "not_declinable"
    await operator.call("POST", f"/api/v1/communes/00001/offers/{own}/decline", expect=404)
    # Changing its mind: accepting airs it again.
    await operator.call("POST", f"/api/v1/communes/00001/offers/{news}/accept")
    assert news in await airing(device)
    audit = await hub.call("GET", "/api/v1/audit", params={"object": "00001"})
    actions = [a["action"] for a in audit["items"]]
    assert actions[:2] == ["commune.offer_accept", "commune.offer_decline"]


async def test_offer_mode_waits_for_the_commune_and_accepting_orders_it(hub: HubHarness) -> None:
    device = await hub.new_device("00001")
    changed = await hub.call("PUT", "/api/v1/communes/00001", json={"province_normal": "offer"})
    assert changed["province_normal"] == "offer"
    first = await bulletin(hub, "Thông báo một")
    second = await bulletin(hub, "Thông báo hai", communes=["00001", "00002"])
    assert await airing(device) == []
    other = await hub.new_device("00002")
    assert await airing(other) == [second]  # 00002 airs province bulletins on its own
    operator = await hub.user("xa1.op", "commune_operator", "00001")
    assert states(await operator.call("GET", "/api/v1/communes/00001/offers")) == {
        first: "offered",
        second: "offered",
    }
    await operator.call("POST", f"/api/v1/communes/00001/offers/{second}/accept")
    await operator.call("POST", f"/api/v1/communes/00001/offers/{first}/accept")
    order = await operator.call("GET", "/api/v1/communes/00001/order")
    assert order["bulletins"] == [second, first]
    manifest, _ = await device.manifest()
    assert {b.id: b.order for b in manifest.bulletins} == {second: 1, first: 2}
    # The commune reorders them like its priority bulletins.
    await operator.call("PUT", "/api/v1/communes/00001/order", json={"bulletins": [first, second]})
    manifest, _ = await device.manifest()
    assert {b.id: b.order for b in manifest.bulletins} == {first: 1, second: 2}
    # A normal bulletin it has not accepted cannot be placed.
    third = await bulletin(hub, "Thông báo ba")
    refused = await operator.call(
        "PUT", "/api/v1/communes/00001/order", json={"bulletins": [third]}, expect=422
    )
    assert refused["detail"][0]["field"] == "bulletins[0]"
    # Declining takes it out of the running order too.
    await operator.call("POST", f"/api/v1/communes/00001/offers/{first}/decline")
    assert (await operator.call("GET", "/api/v1/communes/00001/order"))["bulletins"] == [second]


async def test_who_may_choose(hub: HubHarness) -> None:
    news = await bulletin(hub, "Tin tỉnh", communes=["00001", "00002"])
    neighbour = await hub.user("xa2.op", "commune_operator", "00002")
    await neighbour.call("GET", "/api/v1/communes/00001/offers", expect=403)
    await neighbour.call("POST", f"/api/v1/communes/00001/offers/{news}/decline", expect=403)
    technician = await hub.user("kt.vien", "technician", "00001")
    await technician.call("POST", f"/api/v1/communes/00001/offers/{news}/decline", expect=403)
    await hub.call("GET", "/api/v1/communes/99999/offers", expect=404)
    await hub.call("POST", "/api/v1/communes/00001/offers/nope/accept", expect=404)
    bad = await hub.call(
        "PUT", "/api/v1/communes/00001", json={"province_normal": "sometimes"}, expect=422
    )
    assert bad["detail"][0]["field"] == "province_normal"


async def test_the_console_section_accepts_and_declines(hub: HubHarness) -> None:
    await hub.call("PUT", "/api/v1/communes/00001", json={"province_normal": "offer"})
    news = await bulletin(hub, "Lịch tiêm chủng")
    urgent = await bulletin(hub, "Lịch cắt điện", "priority")
    await hub.user("xa1.op", "commune_operator", "00001", new_password=OWN_PASSWORD)
    page = ConsoleSession(hub)
    try:
        await page.login("xa1.op", OWN_PASSWORD)
        status, html = await page.get("/communes/00001")
        assert status == 200
        assert "Chờ xã quyết định" in html and "Bắt buộc phát" in html
        assert f"/offers/{urgent}/decline" not in html
        status, _, location = await page.post(f"/communes/00001/offers/{news}/accept")
        assert status == 303 and location == "/communes/00001?saved=say#say"
        status, html = await page.get("/communes/00001")
        assert "Xã đã nhận" in html
        status, _, _ = await page.post(f"/communes/00001/offers/{urgent}/decline")
        assert status == 409
        status, _, _ = await page.post(f"/communes/00001/offers/{news}/decline", csrf=False)
        assert status == 403
        status, _, location = await page.post("/communes/00001/say", {"province_normal": "auto"})
        assert status == 303
        assert (await hub.call("GET", "/api/v1/communes/00001"))["province_normal"] == "auto"
    finally:
        await page.close()


@needs_chromium
async def test_browser_commune_declines_a_province_bulletin(hub: HubHarness) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    device = await hub.new_device("00001")
    news = await bulletin(hub, "Lịch tiêm chủng")
    await bulletin(hub, "Lịch cắt điện", "priority")
    await hub.user("xa1.op", "commune_operator", "00001", new_password=OWN_PASSWORD)
    base = str(hub.client.make_url("/")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await (
                await browser.new_context(viewport={"width": 390, "height": 844})
            ).new_page()
            page.set_default_timeout(5000)
            await page.goto(f"{base}/login")
            await page.fill("input[name=username]", "xa1.op")
            await page.fill("input[name=password]", OWN_PASSWORD)
            await page.click("button[type=submit].primary")
            await expect(page).to_have_url(f"{base}/")
            await page.goto(f"{base}/communes/00001")
            offer = page.locator(f"#say li.offer[data-bulletin='{news}']")
            await expect(offer).to_contain_text("Đang phát (tự động)")
            required = page.locator("#say li.offer[data-state=required]")
            await expect(required).to_contain_text("Bắt buộc phát")
            await expect(required.locator("button.decline")).to_have_count(0)
            await offer.locator("button.decline").click()
            await expect(page.locator("#saved")).to_have_text("Đã lưu lựa chọn của xã.")
            await expect(offer).to_contain_text("Xã đã từ chối")
            await page.screenshot(path=ARTIFACTS / "console-commune-say.png", full_page=True)
        finally:
            await browser.close()
    assert news not in await airing(device)
