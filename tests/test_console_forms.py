"""Forms that help: every problem at once, next to its field, in Vietnamese (never
pydantic's English); counters that say what is needed before they turn red; the kind the
person chose never changed behind their back; the lockout's end said in the message."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.appkeys import CLOCK
from hub.form_errors import explain, limits_of
from hub.testing import ADMIN, ADMIN_PASSWORD, FakeClock, HubHarness, running_hub
from loa_contract import VN_TZ
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ConsoleSession, needs_chromium
from tests.console_world import OWN_PASSWORD

ENGLISH = re.compile(r"String should|Input should|Field required|Value error|valid integer")


def test_explain_says_each_refusal_in_words() -> None:
    cases = [
        ("string_too_short", {"min_length": 2}, "cần ít nhất 2 ký tự."),
        ("string_too_long", {"max_length": 300}, "tối đa 300 ký tự."),
        ("missing", {}, "cần điền."),
        ("literal_error", {}, "hãy chọn một mục trong danh sách."),
        ("enum", {}, "hãy chọn một mục trong danh sách."),
        ("int_parsing", {}, "cần một số nguyên."),
        ("int_from_float", {}, "cần một số nguyên."),
        ("greater_than_equal", {"ge": 1}, "không được nhỏ hơn 1."),
        ("less_than_equal", {"le": 1440}, "không được lớn hơn 1440."),
        ("less_than_equal", {"le": 2.5}, "không được lớn hơn 2,5."),
        ("greater_than", {"gt": 0.0}, "phải lớn hơn 0."),
        ("string_pattern_mismatch", {}, "có ký tự không dùng được ở đây"),
        # Unknown types and missing limits: a plain Vietnamese refusal, never English.
        ("some_future_type", {}, "giá trị không hợp lệ."),
        ("string_too_short", {}, "giá trị không hợp lệ."),
        (None, {}, "giá trị không hợp lệ."),
    ]
    for problem, limits, expected in cases:
        assert explain(problem, limits, "vi").startswith(expected), (problem, limits)
        assert explain(problem, limits, "en")  # every key has its English twin
    assert explain("string_too_short", {"min_length": 2}, "en") == ("needs at least 2 characters.")
    assert limits_of({"min_length": 2, "pattern": "^x$"}) == (("min_length", 2),)
    assert limits_of(None) == ()


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path, clock=FakeClock()) as harness:
        await harness.login()
        await harness.commune("00001", name="Xã Tân Phước")
        yield harness


@pytest.fixture
async def admin(hub: HubHarness) -> AsyncIterator[ConsoleSession]:
    session = ConsoleSession(hub)
    await session.login(ADMIN, ADMIN_PASSWORD)
    yield session
    await session.close()


async def test_account_form_lists_every_problem_in_vietnamese(
    hub: HubHarness, admin: ConsoleSession
) -> None:
    await admin.get("/users")
    status, html, _ = await admin.post(
        "/users", {"username": "a", "role": "chief", "unit": "", "password": "x"}
    )
    assert status == 422
    errors = re.search(r'class="error field-errors".*?</div>', html, re.S)
    assert errors is not None
    assert 'data-field="username"' in errors[0] and 'data-field="role"' in errors[0]
    assert "cần ít nhất 2 ký tự." in errors[0]
    assert "hãy chọn một mục trong danh sách." in errors[0]
    assert not ENGLISH.search(html), ENGLISH.search(html)
    # Nothing was made.
    assert "chief" not in str(await hub.call("GET", "/api/v1/users"))


async def test_save_and_submit_shows_every_problem_at_once(hub: HubHarness) -> None:
    await hub.user("bt.baotinh", "contributor", "baotinh")
    session = ConsoleSession(hub)
    try:
        await session.login("bt.baotinh", OWN_PASSWORD)
        status, form = await session.get("/bulletins/new")
        # An empty form says what is needed, and nothing is red yet.
        assert status == 200 and "cần 300–500 từ" in form
        assert re.search(r'<p class="warning" id="word-warning"\s+hidden', form)
        fields = re.findall(r'name="(valid_from|valid_until)" [^>]*value="([^"]*)"', form)
        status, html, _ = await session.post(
            "/bulletins/new",
            [
                ("title", ""),
                ("kind", "text"),
                ("text", ""),
                ("priority", "normal"),
                ("category", ""),
                ("times", ""),
                ("action", "submit"),
                *fields,
            ],
        )
        assert status == 422
        shown = set(re.findall(r'<li data-field="([^"]+)"', html))
        assert {"title", "text", "category"} <= shown, shown
        assert not ENGLISH.search(html)
        # The problems list says it; the "can be saved as a draft" warning does not contradict.
        assert re.search(r'<p class="warning" id="word-warning"\s+hidden', html)
        assert await hub.call("GET", "/api/v1/bulletins") == []
    finally:
        await session.close()


async def test_lockout_message_says_when_the_account_opens(hub: HubHarness) -> None:
    clock = hub.app[CLOCK]
    session = ConsoleSession(hub)
    try:
        await session.get("/login")
        status, html, _ = await session.post(
            "/login", {"username": ADMIN, "password": "wrong", "next": "/"}
        )
        assert status == 401
        # The latest moment any temporarily locked account opens: now + the lockout.
        opens = (clock() + hub.config.lockout).astimezone(VN_TZ).strftime("%H:%M %d/%m/%Y")
        assert f"mở lại chậm nhất lúc {opens}" in html
        minutes = int(hub.config.lockout.total_seconds() // 60)
        assert f"bị khoá {minutes} phút" in html
    finally:
        await session.close()


@needs_chromium
async def test_bulletin_form_in_a_browser(hub: HubHarness, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    await hub.user("bt.baotinh", "contributor", "baotinh")
    not_audio = tmp_path / "thong-bao.wav"
    not_audio.write_text("Đây là một văn bản, không phải âm thanh.\n", encoding="utf-8")
    base = str(hub.client.make_url("/")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width, height in ((1366, 768), (390, 844)):
                context = await browser.new_context(viewport={"width": width, "height": height})
                page = await context.new_page()
                page.set_default_timeout(15_000)
                await page.goto(base + "/login")
                await page.fill("input[name=username]", "bt.baotinh")
                await page.fill("input[name=password]", OWN_PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_url(base + "/")
                await page.goto(base + "/bulletins/new")
                # Empty: the need is said, nothing is red.
                await expect(page.locator(".bn-words")).to_contain_text("cần 300–500 từ")
                await expect(page.locator("#word-warning")).to_be_hidden()
                await page.fill("textarea[name=text]", "Chỉ vài từ")
                await expect(page.locator("#word-warning")).to_be_visible()
                await page.fill("textarea[name=text]", "")
                await expect(page.locator("#word-warning")).to_be_hidden()
                await page.screenshot(path=ARTIFACTS / f"form-empty-{width}.png", full_page=True)
                # A file that is not audio under "Âm thanh": refused, the kind kept.
                await page.select_option("#kind", "audio")
                await page.set_input_files("#file", str(not_audio))
                await expect(page.locator("#upload-status")).to_contain_text("không khớp")
                await expect(page.locator("#kind")).to_have_value("audio")
                await expect(page.locator("#media")).to_have_value("")
                await page.screenshot(
                    path=ARTIFACTS / f"form-kind-kept-{width}.png", full_page=True
                )
                # Save and submit with nothing: every problem listed, in Vietnamese.
                await page.select_option("#kind", "text")
                await page.click("#save-submit")
                problems = page.locator("#problems li")
                await expect(problems.first).to_be_visible()
                fields = await problems.evaluate_all("els => els.map(e => e.dataset.field)")
                assert {"title", "text", "category"} <= set(fields), fields
                assert not ENGLISH.search(await page.content())
                await page.screenshot(path=ARTIFACTS / f"form-problems-{width}.png", full_page=True)
                await context.close()
        finally:
            await browser.close()


async def test_an_admin_moves_an_account_to_another_post(
    hub: HubHarness, admin: ConsoleSession
) -> None:
    await hub.commune("00002", name="Xã Hoà Bình")
    staff = await hub.user("tran.binh", "commune_operator", "00001")
    # Over the API: checked like a new account's post, audited, the old sessions ended.
    await hub.call(
        "POST",
        "/api/v1/users/tran.binh/move",
        json={"role": "commune_operator", "unit": "09999"},
        expect=422,
    )
    moved = await hub.call(
        "POST", "/api/v1/users/tran.binh/move", json={"role": "viewer", "unit": "00002"}
    )
    assert (moved["role"], moved["unit"]) == ("viewer", "00002")
    await staff.call("GET", "/api/v1/bulletins", expect=401)
    entries = (await hub.call("GET", "/api/v1/audit", params={"action": "user.move"}))["items"]
    assert len(entries) == 1
    assert entries[0]["before"] == {"role": "commune_operator", "unit": "00001"}
    assert entries[0]["after"] == {"role": "viewer", "unit": "00002"}
    # The province keeps a usable admin.
    await hub.call(
        "POST",
        f"/api/v1/users/{ADMIN}/move",
        json={"role": "viewer", "unit": "province"},
        expect=409,
    )
    # In the console: the unit chosen by name, the move said on the page and in the log.
    status, page = await admin.get("/users/tran.binh")
    assert status == 200 and '<option value="00001"' in page and ">Xã Tân Phước<" in page
    status, _, location = await admin.post(
        "/users/tran.binh/move", {"role": "commune_operator", "unit": "00001", "unit_new": ""}
    )
    assert status == 303 and location == "/users/tran.binh?done=move"
    account = await hub.call("GET", "/api/v1/users/tran.binh")
    assert (account["role"], account["unit"]) == ("commune_operator", "00001")
    status, html, _ = await admin.post(
        "/users/tran.binh/move", {"role": "commune_operator", "unit": "", "unit_new": ""}
    )
    assert status == 422 and 'data-field="unit"' in html
    # The audit log in words, the code small beside it.
    status, log = await admin.get("/audit?action=user.move")
    assert "Chuyển tài khoản sang đơn vị hoặc vai trò khác" in log
    assert "1 phiên kết thúc" in log
    status, log = await admin.get("/audit?action=auth.login")
    assert "qua bảng điều khiển" in log and ">cookie<" not in log


async def test_temporary_passwords_are_hidden_until_asked(
    hub: HubHarness, admin: ConsoleSession
) -> None:
    await hub.user("ng.an", "viewer", "province")
    for path in ("/users", "/users/ng.an"):
        status, html = await admin.get(path)
        assert status == 200
        field = re.search(r'<input name="password"[^>]*>', html)
        assert field is not None and 'type="password"' in field[0], field
        assert "data-reveal=" in html and "data-copy=" in html


@needs_chromium
async def test_account_forms_in_a_browser(hub: HubHarness) -> None:
    from playwright.async_api import async_playwright, expect

    base = str(hub.client.make_url("/")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width, height in ((1366, 768), (390, 844)):
                context = await browser.new_context(viewport={"width": width, "height": height})
                page = await context.new_page()
                page.set_default_timeout(15_000)
                await page.goto(base + "/login")
                await page.fill("input[name=username]", ADMIN)
                await page.fill("input[name=password]", ADMIN_PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_url(base + "/")
                await page.goto(base + "/users")
                secret = page.locator("#create-password")
                await secret.fill("Tam-thoi-2026!")
                await expect(secret).to_have_attribute("type", "password")
                await page.click("[data-reveal=create-password]")
                await expect(secret).to_have_attribute("type", "text")
                await expect(page.locator("[data-reveal=create-password]")).to_have_text("Ẩn")
                await page.click("[data-reveal=create-password]")
                await expect(secret).to_have_attribute("type", "password")
                username = f"cb.{width}"
                await page.fill("#user-create input[name=username]", username)
                await page.select_option("#user-create select[name=role]", "commune_operator")
                await page.select_option("#create-unit", "00001")
                await page.click("#user-create button[type=submit]")
                await page.wait_for_url(f"{base}/users/{username}?done=created")
                await page.select_option("#move-form select[name=role]", "viewer")
                await page.select_option("#move-unit", "province")
                await page.click("#move-submit")
                await page.wait_for_url(f"{base}/users/{username}?done=move")
                await expect(page.locator("#done")).to_have_text("Đã chuyển tài khoản.")
                await page.screenshot(path=ARTIFACTS / f"account-move-{width}.png", full_page=True)
                await page.goto(base + "/audit?action=user.")
                await expect(page.locator("#audit")).to_contain_text("Chuyển tài khoản")
                await page.screenshot(path=ARTIFACTS / f"audit-words-{width}.png", full_page=True)
                await context.close()
        finally:
            await browser.close()
