"""The register of units that send bulletins (hub/units.py): agencies and newspapers by name,
over the API, the command line and the console; the console shows names, never a registered
code; the report's newspaper quota comes from the register's kind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub.cli import main
from hub.console import UnitNames, commune_choice, unit_label
from hub.store.units import Unit
from hub.testing import ADMIN, ADMIN_PASSWORD, HubHarness, database_for_tests, running_hub
from hub.units import newspaper_units
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ConsoleSession, needs_chromium

AT = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001", name="Xã Tân An")
        yield harness


def registered(code: str, kind: str) -> Unit:
    return Unit(
        code=code, name=code.upper(), kind=kind, created_at=AT, created_by="x", updated_at=AT
    )


def test_newspapers_come_from_the_register_and_the_default_only_for_others() -> None:
    default = frozenset({"baotinh", "baocu"})
    assert newspaper_units([], default) == default
    register = [registered("baotinh", "agency"), registered("dai", "newspaper")]
    # The register decides for its units (baotinh registered as an agency is one); a unit it
    # does not hold keeps the configured default.
    assert newspaper_units(register, default) == {"dai", "baocu"}
    assert newspaper_units(register, frozenset()) == {"dai"}


def test_labels_name_units_and_show_a_communes_code_only_when_its_name_is_shared() -> None:
    names = UnitNames({"00001": "Xã Tân An", "baotinh": "Báo Hải Phòng"}, frozenset({"00002"}))
    assert unit_label("baotinh", names, "vi") == "Báo Hải Phòng"
    assert unit_label("00001", names, "vi") == "Xã Tân An"
    assert unit_label("province", names, "vi") == "Tỉnh (Sở)"
    assert unit_label("so-moi", names, "vi") == "so-moi"  # not named yet: its code
    assert unit_label(None, names, "vi") == "—"
    assert commune_choice("00001", "Xã Tân An", names) == "Xã Tân An"
    assert commune_choice("00002", "Xã Tân An", names) == "Xã Tân An (00002)"


async def test_the_register_over_the_api(hub: HubHarness) -> None:
    paper = await hub.call(
        "POST",
        "/api/v1/units",
        json={"code": "baotinh", "name": " Báo Hải Phòng ", "kind": "newspaper"},
        expect=201,
    )
    assert (paper["code"], paper["name"], paper["kind"]) == (
        "baotinh",
        "Báo Hải Phòng",
        "newspaper",
    )
    assert paper["created_by"] == ADMIN
    agency = await hub.call(
        "POST", "/api/v1/units", json={"code": "kttv", "name": "Trung tâm Khí tượng Thủy văn"},
        expect=201,
    )  # fmt: skip
    assert agency["kind"] == "agency"  # the default
    assert [u["code"] for u in await hub.call("GET", "/api/v1/units")] == ["baotinh", "kttv"]

    # Bad input names its field and changes nothing.
    for body, field in (
        ({"code": "bad code", "name": "Sở X"}, "code"),
        ({"code": "x" * 33, "name": "Sở X"}, "code"),
        ({"code": "so-x", "name": " "}, "name"),
        ({"code": "so-x", "name": "Sở X", "kind": "radio"}, "kind"),
        ({"code": "so-x", "name": "Sở X", "extra": 1}, "extra"),
    ):
        refused = await hub.call("POST", "/api/v1/units", json=body, expect=422)
        assert [d["field"] for d in refused["detail"]] == [field], body
    # Duplicates: the register's, a commune's and the province's codes are taken.
    for code in ("baotinh", "00001", "province"):
        taken = await hub.call(
            "POST", "/api/v1/units", json={"code": code, "name": "Trùng"}, expect=409
        )
        assert taken["error"] == "exists" and taken["detail"][0]["field"] == "code"
    assert len(await hub.call("GET", "/api/v1/units")) == 2
    # Nor may a new commune take a registered agency's code.
    taken = await hub.call(
        "POST", "/api/v1/communes", json={"code": "kttv", "name": "Xã Trùng"}, expect=409
    )
    assert taken["detail"][0]["field"] == "code"

    # Rename, change kind; 404 for an unknown one; an empty change is refused.
    renamed = await hub.call(
        "PUT", "/api/v1/units/kttv", json={"name": "Đài Khí tượng Thủy văn Hải Phòng"}
    )
    assert renamed["name"] == "Đài Khí tượng Thủy văn Hải Phòng" and renamed["kind"] == "agency"
    changed = await hub.call("PUT", "/api/v1/units/kttv", json={"kind": "newspaper"})
    assert changed["kind"] == "newspaper" and changed["name"] == renamed["name"]
    await hub.call("PUT", "/api/v1/units/none", json={"name": "Không có"}, expect=404)
    await hub.call("GET", "/api/v1/units/none", expect=404)
    empty = await hub.call("PUT", "/api/v1/units/kttv", json={}, expect=422)
    assert empty["error"] == "validation_error"
    assert (await hub.call("GET", "/api/v1/units/kttv"))["kind"] == "newspaper"

    # Only an admin registers or renames; anyone signed in reads the names.
    reviewer = await hub.user("bt.vien", "reviewer", "province")
    assert len(await reviewer.call("GET", "/api/v1/units")) == 2
    await reviewer.call(
        "POST", "/api/v1/units", json={"code": "so-y", "name": "Sở Y tế"}, expect=403
    )
    await reviewer.call("PUT", "/api/v1/units/kttv", json={"name": "Khác"}, expect=403)

    audit = await hub.call("GET", "/api/v1/audit?action=unit.update")
    [first, second] = sorted(audit["items"], key=lambda e: e["id"])
    assert first["object"] == "kttv" and first["before"]["name"] == "Trung tâm Khí tượng Thủy văn"
    assert second["after"]["kind"] == "newspaper"
    created = await hub.call("GET", "/api/v1/audit?action=unit.create")
    assert {e["object"] for e in created["items"]} == {"baotinh", "kttv"}


async def test_the_report_holds_a_unit_to_its_registered_kind(hub: HubHarness) -> None:
    # "baotinh" is a newspaper by the configured default; registered as an agency, it is one.
    await hub.user("bt.bao", "contributor", "baotinh")
    await hub.user("kt.tv", "contributor", "kttv")
    quotas = {q["unit"]: q for q in (await hub.call("GET", "/api/v1/reports/monthly"))["quotas"]}
    assert (quotas["baotinh"]["provider"], quotas["kttv"]["provider"]) == ("newspaper", "agency")
    await hub.call("POST", "/api/v1/units", json={"code": "baotinh", "name": "Báo A"}, expect=201)
    await hub.call(
        "POST", "/api/v1/units", json={"code": "kttv", "name": "Đài B", "kind": "newspaper"},
        expect=201,
    )  # fmt: skip
    # A registered unit without an account owes its quota too.
    await hub.call("POST", "/api/v1/units", json={"code": "so-yte", "name": "Sở Y tế"}, expect=201)
    report = await hub.call("GET", "/api/v1/reports/monthly")
    quotas = {q["unit"]: q for q in report["quotas"]}
    assert list(quotas) == ["province", "baotinh", "kttv", "so-yte"]
    assert [quotas[u]["provider"] for u in ("baotinh", "kttv", "so-yte")] == [
        "agency",
        "newspaper",
        "agency",
    ]
    assert (quotas["kttv"]["required"], quotas["baotinh"]["required"]) == (4, 1)


async def test_cli_registers_and_lists_units(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = database_for_tests()
    where = ["--data", str(tmp_path), *(["--database", url] if url else [])]

    def run(*argv: str) -> int:
        return main([*argv, *where])

    assert await asyncio.to_thread(
        run, "unit", "add", "baotinh", "--name", "Báo Hải Phòng", "--newspaper"
    ) == 0  # fmt: skip
    assert "unit baotinh (newspaper) registered: Báo Hải Phòng" in capsys.readouterr().out
    assert await asyncio.to_thread(run, "unit", "add", "kttv", "--name", "Trung tâm KTTV") == 0
    capsys.readouterr()
    assert await asyncio.to_thread(run, "unit", "add", "baotinh", "--name", "Trùng") == 1
    assert "code: unit 'baotinh' is already registered" in capsys.readouterr().err
    assert await asyncio.to_thread(run, "unit", "add", "có dấu", "--name", "Sở X") == 1
    assert capsys.readouterr().err.startswith("code: ")
    assert await asyncio.to_thread(run, "unit", "list") == 0
    assert capsys.readouterr().out.splitlines() == [
        "baotinh\tnewspaper\tBáo Hải Phòng",
        "kttv\tagency\tTrung tâm KTTV",
    ]
    # The hub sees what the command registered, and its audit record.
    async with running_hub(tmp_path) as started:
        [paper, _] = await started.call("GET", "/api/v1/units")
        assert paper["created_by"] == "cli"


async def test_console_shows_names_and_registers_from_the_account_form(hub: HubHarness) -> None:
    await hub.commune("00002", name="Xã Tân An")  # a second commune of the same name
    await hub.commune("00003", name="Xã Hoà Bình")
    await hub.user("bt.bao", "contributor", "baotinh")
    admin = ConsoleSession(hub)
    await admin.login(ADMIN, ADMIN_PASSWORD)
    try:
        # A code accounts carry that nobody named is offered for naming.
        status, page = await admin.get("/units")
        assert status == 200 and 'data-unit="baotinh"' in page and "/units?code=baotinh" in page
        _, page = await admin.get("/units?code=baotinh")
        assert 'name="code" required maxlength="32"' in page and 'value="baotinh"' in page
        status, page, _ = await admin.post("/units", {"code": "baotinh", "name": "", "kind": "x"})
        assert status == 422 and 'data-field="name"' in page and 'data-field="kind"' in page
        assert await hub.call("GET", "/api/v1/units") == []
        status, _, location = await admin.post(
            "/units", {"code": "baotinh", "name": "Báo Hải Phòng", "kind": "newspaper"}
        )
        assert status == 303 and location == "/units?done=created#unit-baotinh"
        status, page, _ = await admin.post(
            "/units", {"code": "00001", "name": "Trùng", "kind": "agency"}
        )
        assert status == 409 and 'data-field="code"' in page
        status, _, location = await admin.post(
            "/units/baotinh", {"name": "Báo và Phát thanh Hải Phòng", "kind": "newspaper"}
        )
        assert status == 303 and location == "/units?done=saved#unit-baotinh"
        status, page, _ = await admin.post("/units/baotinh", {"name": "", "kind": "agency"})
        assert status == 422 and 'data-field="name"' in page

        _, english = await admin.get("/units?lang=en")
        assert "Agencies and newspapers" in english and "Newspaper or broadcaster" in english
        await admin.get("/units?lang=vi")
        # Everywhere: the name, not the code; communes by name, the code only when shared.
        _, users_page = await admin.get("/users")
        assert "Báo và Phát thanh Hải Phòng" in users_page and ">baotinh<" not in users_page
        assert 'value="baotinh" >Báo và Phát thanh Hải Phòng</option>' in users_page
        assert ">Xã Hoà Bình</option>" in users_page
        assert ">Xã Tân An (00001)</option>" in users_page
        assert ">Xã Tân An (00002)</option>" in users_page
        _, audit_page = await admin.get("/audit")
        assert "Sửa tên hoặc loại cơ quan" in audit_page

        # An account for a new agency: its name is asked for, then both are made.
        form = {
            "username": "so.yte",
            "role": "contributor",
            "unit": "",
            "unit_new": "so-yte",
            "unit_new_name": "",
            "password": "Tam-thoi-2026!",
        }
        status, page, _ = await admin.post("/users", form)
        assert status == 422 and 'data-field="unit_new_name"' in page
        assert [u["code"] for u in await hub.call("GET", "/api/v1/units")] == ["baotinh"]
        status, page, _ = await admin.post("/users", {**form, "unit_new": "00003", "role": "x"})
        assert status == 422 and 'data-field="role"' in page  # a commune's code: no name asked
        # The account refused (its name is taken): the agency named with it stays registered,
        # so sending the form again with another name does not ask for it twice.
        status, page, _ = await admin.post(
            "/users", {**form, "username": "bt.bao", "unit_new_name": "Sở Y tế"}
        )
        assert status == 409 and 'data-field="username"' in page
        assert [u["code"] for u in await hub.call("GET", "/api/v1/units")] == ["baotinh", "so-yte"]
        status, _, location = await admin.post("/users", {**form, "unit_new_name": "Sở Y tế"})
        assert status == 303 and location == "/users/so.yte?done=created"
        unit = await hub.call("GET", "/api/v1/units/so-yte")
        assert (unit["name"], unit["kind"]) == ("Sở Y tế", "agency")
        _, page = await admin.get("/users/so.yte")
        assert "(Sở Y tế)" in page or "Sở Y tế</option>" in page
        # A new code the register refuses comes back against the form's field.
        status, page, _ = await admin.post(
            "/users", {**form, "username": "khac", "unit_new": "có dấu", "unit_new_name": "Khác"}
        )
        assert status == 422 and 'data-field="unit_new"' in page
    finally:
        await admin.close()


@needs_chromium
async def test_browser_register_page_at_both_sizes(hub: HubHarness) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    base = str(hub.client.make_url("/")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width, height in ((1366, 768), (390, 844)):
                code = f"bao{width}"
                context = await browser.new_context(viewport={"width": width, "height": height})
                page = await context.new_page()
                page.set_default_timeout(10_000)
                await page.goto(f"{base}/login")
                await page.fill("input[name=username]", ADMIN)
                await page.fill("input[name=password]", ADMIN_PASSWORD)
                await page.click("button[type=submit].primary")
                await page.goto(f"{base}/users")
                await page.click("#units-link")
                form = page.locator("#unit-create-form")
                await form.locator("input[name=code]").fill(code)
                await form.locator("input[name=name]").fill(f"Báo {width}")
                await form.locator("select[name=kind]").select_option("newspaper")
                await form.locator("button[type=submit]").click()
                await expect(page.locator("#done")).to_be_visible()
                row = page.locator(f"tr[data-unit='{code}']")
                await expect(row).to_contain_text("Báo, đài")
                await row.locator("input[name=name]").fill(f"Báo Hải Phòng {width}")
                await row.locator("select[name=kind]").select_option("agency")
                await row.locator("button[type=submit]").click()
                await expect(page.locator("#done")).to_contain_text("Đã lưu")
                row = page.locator(f"tr[data-unit='{code}']")
                await expect(row).to_contain_text(f"Báo Hải Phòng {width}")
                await expect(row).to_contain_text("Cơ quan, đơn vị")
                wide = await page.evaluate("document.documentElement.scrollWidth")
                assert wide <= width, f"the units page is {wide} px wide at {width} px"
                await page.screenshot(path=ARTIFACTS / f"console-units-{width}.png", full_page=True)
                # The account form offers it by name.
                await page.goto(f"{base}/users")
                option = page.locator(f"#create-unit option[value='{code}']")
                await expect(option).to_have_text(f"Báo Hải Phòng {width}")
                await context.close()
        finally:
            await browser.close()
