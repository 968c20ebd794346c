"""The operator console: every page behind a session (labels: tests/test_i18n.py), and a real
browser walking login → forced password change → dashboard → emergency → cancel → English."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hub import pages
from hub.testing import ADMIN, ADMIN_PASSWORD, DeviceSocket, HubHarness, running_hub
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, needs_chromium


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        yield harness


async def test_every_page_needs_a_session(hub: HubHarness) -> None:
    for method, path, _handler in pages.PAGES:
        if path == "/login":
            continue
        url = re.sub(r"{sha256[^}]*}", "0" * 64, path)
        url = re.sub(r"{(\w+)(:[^}]*)?}", "some-id", url)
        resp = await hub.client.request(method, url, allow_redirects=False)
        assert resp.status in (302, 303, 401), (method, url, resp.status)
        if resp.status != 401:
            assert resp.headers["Location"].startswith("/login"), (method, url)


async def test_login_form_refuses_a_forged_post(hub: HubHarness) -> None:
    resp = await hub.client.post(
        "/login", data={"username": "admin", "password": "x", "csrf": "forged"}
    )
    assert resp.status == 403
    assert "text/html" in resp.content_type


async def test_commune_operator_sees_only_its_commune(hub: HubHarness) -> None:
    await hub.commune("00001")
    await hub.commune("00002")
    await hub.device("00001", name="Loa thôn Một")
    await hub.device("00002", name="Loa thôn Hai")
    await hub.call(
        "POST",
        "/api/v1/users",
        json={
            "username": "xa1",
            "role": "commune_operator",
            "unit": "00001",
            "password": "Temp-pass1!",
        },
        expect=201,
    )
    client = hub.client
    page = await client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert token is not None
    resp = await client.post(
        "/login",
        data={"username": "xa1", "password": "Temp-pass1!", "csrf": token[1], "next": "/"},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/password"
    page = await client.get("/password")
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert token is not None
    resp = await client.post(
        "/password",
        data={
            "old_password": "Temp-pass1!",
            "new_password": "Own-pass-2!",
            "repeat_password": "Own-pass-2!",
            "csrf": token[1],
        },
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/"
    html = await (await client.get("/devices")).text()
    assert "Loa thôn Một" in html and "Loa thôn Hai" not in html
    # A commune operator's emergency defaults to its commune, never the province.
    form = await (await client.get("/emergency")).text()
    assert "Toàn bộ xã của bạn" in form
    # A commune's alert airs twice, 30 s apart, unless the operator says otherwise.
    assert 'name="repeats" type="number" min="1" max="20" value="2"' in form
    assert 'name="interval_s" type="number" min="0" max="3600" value="30"' in form
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    fields = {"title": "Lũ", "text": "Di dời ngay", "csrf": token[1]}
    # Without the server-side confirmation nothing is sent, whatever the browser did.
    unconfirmed = await client.post("/emergency", data=fields)
    assert unconfirmed.status == 400
    assert await hub.call("GET", "/api/v1/bulletins") == []
    # Out-of-range airings are refused by field, the form kept as typed, nothing sent.
    wrong = await client.post(
        "/emergency", data={**fields, "confirm": "yes", "repeats": "2", "interval_s": "9000"}
    )
    assert wrong.status == 422
    page = await wrong.text()
    assert 'data-field="interval_s"' in page and "Cách nhau (giây)" in page
    assert 'value="9000"' in page
    # Said in words, with the limit, never in pydantic's English.
    assert "không được lớn hơn 3600." in page and "Input should" not in page
    typo = await client.post("/emergency", data={**fields, "confirm": "yes", "repeats": "hai"})
    assert typo.status == 422 and "cần một số nguyên." in await typo.text()
    assert await hub.call("GET", "/api/v1/bulletins") == []
    sent = await client.post("/emergency", data={**fields, "confirm": "yes"}, allow_redirects=False)
    assert sent.status == 303
    [emergency] = await hub.call("GET", "/api/v1/bulletins")
    assert emergency["targets"]["communes"] == ["00001"]
    assert emergency["schedule"]["repeats"] == 2 and emergency["schedule"]["interval_s"] == 30
    assert sent.headers["Location"] == f"/emergency/{emergency['id']}"


def _health(seq: int, bulletin_id: str, title: str) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "type": "health",
        "seq": seq,
        "at": now,
        "cpu_percent": 3.5,
        "memory_used_bytes": 1,
        "memory_total_bytes": 2,
        "filesystem_avail_bytes": 3,
        "filesystem_size_bytes": 4,
        "boot_time_seconds": 5.0,
        "player_state": "playing",
        "now_playing": {
            "bulletin_id": bulletin_id,
            "priority": "emergency",
            "kind": "text",
            "title": title,
            "started_at": now,
        },
        "volume": 70,
    }


async def _next_of(socket: DeviceSocket, kind: str) -> Any:
    """Skip manifest nudges: only the emergency commands matter here."""
    for _ in range(10):
        command = await socket.command()
        if command.type == kind:
            return command
    raise AssertionError(f"no {kind} among the next 10 commands")


# Under CI a missing browser is a failure, not a skip: the walkthrough must run there.
@needs_chromium
async def test_browser_walkthrough(hub: HubHarness) -> None:
    from playwright.async_api import Dialog, async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    await hub.commune("00001", name="Xã Tân Phước")
    await hub.device("00001", kind="board", name="Bảng tin chợ")
    speaker = await hub.new_device("00001")
    await hub.call(
        "POST",
        "/api/v1/users",
        json={"username": "thamdinh", "role": "reviewer", "password": "Temp-pass1!"},
        expect=201,
    )
    base = str(hub.client.make_url("/")).rstrip("/")

    async with speaker.socket() as socket, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 390, "height": 844})
            page = await context.new_page()
            page.set_default_timeout(5000)

            await page.goto(f"{base}/")
            await expect(page).to_have_url(re.compile(r"/login\?next="))
            await page.screenshot(path=ARTIFACTS / "console-login.png", full_page=True)
            await page.fill("input[name=username]", "thamdinh")
            await page.fill("input[name=password]", "Temp-pass1!")
            await page.click("button[type=submit].primary")
            await expect(page).to_have_url(f"{base}/password")
            await expect(page.locator(".notice")).to_contain_text("đổi mật khẩu")
            await page.fill("input[name=old_password]", "Temp-pass1!")
            await page.fill("input[name=new_password]", "Own-pass-2!")
            await page.fill("input[name=repeat_password]", "Own-pass-2!")
            await page.click("button[type=submit].primary")
            await expect(page).to_have_url(f"{base}/")
            await expect(page.locator("h1")).to_have_text("Tổng quan")
            await expect(page.locator(".stat.ok .num")).to_have_text("1")
            await page.screenshot(path=ARTIFACTS / "console-dashboard.png", full_page=True)

            await page.goto(f"{base}/emergency")
            await page.fill("input[name=title]", "Cảnh báo lũ quét")
            await page.fill("textarea[name=text]", "Bà con khẩn trương di dời đến nơi an toàn.")
            # The province's default is three airings, 30 s apart; this one repeats until
            # stopped, a minute apart.
            await expect(page.locator("input[name=repeats]")).to_have_value("3")
            await expect(page.locator("input[name=interval_s]")).to_have_value("30")
            await page.fill("input[name=interval_s]", "60")
            await page.check("input[name=until_cancelled]")
            await page.check("input[name=confirm]")
            await page.screenshot(path=ARTIFACTS / "console-emergency.png", full_page=True)
            dialogs: list[str] = []

            async def accept(dialog: Dialog) -> None:
                dialogs.append(dialog.message)
                await dialog.accept()

            page.on("dialog", accept)
            await page.click("#fire")
            await expect(page).to_have_url(re.compile(r"/emergency/[0-9a-f-]+$"))
            assert dialogs == ["Phát tin khẩn cấp ngay bây giờ?"]
            emergency_id = page.url.rsplit("/", 1)[1]
            start = await _next_of(socket, "emergency_start")
            assert start.bulletin.id == emergency_id
            assert start.bulletin.schedule.until_cancelled
            assert start.bulletin.schedule.interval_s == 60
            await expect(page.locator("#airings")).to_contain_text("lặp lại đến khi dừng")
            await expect(page.locator("#airings")).to_contain_text("60")

            # The speaker reports it is playing: the page shows it started, device by device.
            await expect(page.locator("#started")).to_have_text("0")
            status, _ = await speaker.report([_health(1, emergency_id, "Cảnh báo lũ quét")])
            assert status == 200
            # No reload: the page's live part fetches itself and shows it within seconds.
            await expect(page.locator("#started")).to_have_text("1", timeout=10_000)
            assert await page.locator("#em-live").get_attribute("data-refreshed-at")
            await expect(page.locator("#targeted")).to_have_text("2")
            await page.screenshot(path=ARTIFACTS / "console-emergency-status.png", full_page=True)

            await page.goto(f"{base}/emergency")
            await expect(page.locator(f"a[href='/emergency/{emergency_id}']")).to_be_visible()
            await page.goto(f"{base}/")
            await expect(page.locator("body")).to_contain_text("Cảnh báo lũ quét")

            await page.goto(f"{base}/emergency/{emergency_id}")
            await page.click("#cancel")
            await expect(page.locator(".state-cancelled")).to_be_visible()
            assert len(dialogs) == 2
            await _next_of(socket, "emergency_cancel")

            await page.goto(f"{base}/devices")
            await page.screenshot(path=ARTIFACTS / "console-devices-phone.png", full_page=True)
            await page.click("a.lang")
            await expect(page.locator("h1")).to_have_text("Devices")
            # The choice sticks (cookie) on the next page without ?lang.
            await page.goto(f"{base}/bulletins")
            await expect(page.locator("h1")).to_have_text("Bulletins")
            await expect(page.locator("table")).to_contain_text("Cancelled")
            await page.screenshot(path=ARTIFACTS / "console-bulletins-en.png", full_page=True)

            await page.click("button.link")
            await expect(page).to_have_url(f"{base}/login")
            await page.goto(f"{base}/devices")
            await expect(page).to_have_url(re.compile(r"/login\?next="))
        finally:
            await browser.close()


async def test_the_header_names_the_account_and_its_unit_without_nested_brackets(
    hub: HubHarness,
) -> None:
    """The header once read "admin (Tỉnh (Sở))": a unit's own name may carry brackets."""
    page = await hub.client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert token is not None
    resp = await hub.client.post(
        "/login",
        data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf": token[1], "next": "/"},
    )
    assert resp.status == 200
    who = re.search(r'<p class="who">(.*?)</p>', await resp.text())
    assert who is not None
    assert who[1] == f"Đang đăng nhập: <strong>{ADMIN}</strong> · Tỉnh (Sở)", who[1]
