"""Maintenance and switch-over notices (issue #10 point 5): an admin announces one; every user
sees it on every console page until it ends; the Thái Nguyên 48-hour rule and the managing
unit's written consent are checked as warnings, never blocks; everything is audited."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.appkeys import DB
from hub.domain.maintenance import (
    GRACE,
    LONGEST,
    NOTICE_AHEAD,
    NoticeWarning,
    check_times,
    shown,
    warnings,
)
from hub.testing import ADMIN, ADMIN_PASSWORD, FakeClock, HubHarness, running_hub
from loa_contract import VN_TZ
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ConsoleSession, needs_chromium

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
PASSWORD = "Own-pass-2!"

# ------------------------------------------------------------------ the rules, pure


def test_times_a_notice_may_have() -> None:
    hour = timedelta(hours=1)
    assert check_times(NOW + hour, NOW + 2 * hour, NOW) is None
    assert check_times(NOW - GRACE, NOW + hour, NOW) is None  # "from now"
    assert check_times(NOW - GRACE - hour, NOW + hour, NOW).code == "past"  # type: ignore[union-attr]
    assert check_times(NOW + hour, NOW + hour, NOW).code == "end_before_start"  # type: ignore[union-attr]
    assert check_times(NOW + hour, NOW, NOW).field == "ends_at"  # type: ignore[union-attr]
    assert check_times(NOW, NOW + LONGEST, NOW) is None
    assert check_times(NOW, NOW + LONGEST + hour, NOW).code == "too_long"  # type: ignore[union-attr]
    assert check_times(NOW + timedelta(days=400), NOW + timedelta(days=401), NOW).code == "too_far"  # type: ignore[union-attr]


def test_the_48_hour_rule_and_the_consent_are_warnings() -> None:
    ahead = NOW + NOTICE_AHEAD
    assert warnings(ahead, NOW, "Công văn 12/STTTT") == []
    assert warnings(ahead - timedelta(seconds=1), NOW, "CV 12") == [NoticeWarning.SHORT_NOTICE]
    assert warnings(ahead, NOW, None) == [NoticeWarning.NO_CONSENT]
    assert warnings(ahead, NOW, "   ") == [NoticeWarning.NO_CONSENT]
    assert warnings(NOW, NOW, "") == [NoticeWarning.SHORT_NOTICE, NoticeWarning.NO_CONSENT]


def test_shown_until_its_end_unless_withdrawn() -> None:
    end = NOW + timedelta(hours=2)
    assert shown(end, False, NOW)
    assert not shown(end, False, end)
    assert not shown(end, True, NOW)


# ------------------------------------------------------------------ the API


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
async def hub(tmp_path: Path, clock: FakeClock) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path, clock=clock) as harness:
        await harness.commune("00001", name="Xã Tân Phước")
        yield harness


def body(start: datetime, hours: float = 4, **kw: object) -> dict[str, object]:
    return {
        "kind": "maintenance",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=hours)).isoformat(),
        "reason": "Nâng cấp máy chủ cơ sở dữ liệu; bảng điều khiển gián đoạn khoảng 2 giờ",
        **kw,
    }


async def audit_actions(hub: HubHarness) -> list[tuple[str, str | None]]:
    rows = await hub.app[DB].fetchall(
        "SELECT action, detail FROM audit WHERE action LIKE 'maintenance.%' ORDER BY id"
    )
    return [(r[0], r[1]) for r in rows]


async def test_an_admin_announces_with_warnings_and_withdraws(
    hub: HubHarness, clock: FakeClock
) -> None:
    late = await hub.call(
        "POST", "/api/v1/maintenance", json=body(NOW + timedelta(hours=3)), expect=201
    )
    assert late["warnings"] == ["short_notice", "no_consent"] and late["shown"]
    assert late["announced_by"] == ADMIN
    planned = await hub.call(
        "POST",
        "/api/v1/maintenance",
        json=body(NOW + timedelta(days=3), kind="switchover", consent_ref="CV 45/STTTT"),
        expect=201,
    )
    assert planned["warnings"] == [] and planned["kind"] == "switchover"

    listed = await hub.call("GET", "/api/v1/maintenance")
    assert [n["id"] for n in listed] == [late["id"], planned["id"]]  # soonest first

    withdrawn = await hub.call("POST", f"/api/v1/maintenance/{late['id']}/withdraw")
    assert withdrawn["withdrawn_by"] == ADMIN and not withdrawn["shown"]
    again = await hub.call("POST", f"/api/v1/maintenance/{late['id']}/withdraw", expect=409)
    assert again["error"] == "already_withdrawn"
    await hub.call("POST", "/api/v1/maintenance/nosuch/withdraw", expect=404)
    assert [n["id"] for n in await hub.call("GET", "/api/v1/maintenance")] == [planned["id"]]

    # Over once it ends; still in the history.
    clock.advance(timedelta(days=3, hours=5))
    await hub.login()  # the earlier session has idled out meanwhile
    assert await hub.call("GET", "/api/v1/maintenance") == []
    history = await hub.call("GET", "/api/v1/maintenance?all=true")
    assert {n["id"] for n in history} == {late["id"], planned["id"]}
    assert await audit_actions(hub) == [
        ("maintenance.announce", "short_notice, no_consent"),
        ("maintenance.announce", None),
        ("maintenance.withdraw", late["reason"]),
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"starts_at": (NOW - timedelta(hours=2)).isoformat()}, "starts_at"),
        ({"ends_at": NOW.isoformat()}, "ends_at"),
        ({"ends_at": (NOW + timedelta(days=20)).isoformat()}, "ends_at"),
        ({"starts_at": "2026-12-01T10:00:00"}, "starts_at"),  # no zone
        ({"kind": "holiday"}, "kind"),
        ({"reason": "  "}, "reason"),
        ({"reason": "x" * 1001}, "reason"),
        ({"consent_ref": 12}, "consent_ref"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_bad_notices_are_refused_naming_the_field_and_change_nothing(
    hub: HubHarness, change: dict[str, object], field: str
) -> None:
    answer = await hub.call(
        "POST",
        "/api/v1/maintenance",
        json={**body(NOW + timedelta(hours=1)), **change},
        expect=422,
    )
    assert any(d["field"].endswith(field) for d in answer["detail"]), answer
    assert await hub.call("GET", "/api/v1/maintenance?all=true") == []
    assert await audit_actions(hub) == []


async def test_only_admins_announce_but_everyone_reads(hub: HubHarness) -> None:
    roles = (("reviewer", None), ("commune_operator", "00001"), ("viewer", "00001"))
    for role, unit in roles:
        await hub.user(f"u-{role}", role, unit, new_password=PASSWORD)
    for role, _unit in roles:
        token = await hub.login(f"u-{role}", PASSWORD)
        headers = {"Authorization": f"Bearer {token}"}
        await hub.call(
            "POST",
            "/api/v1/maintenance",
            json=body(NOW + timedelta(hours=1)),
            headers=headers,
            auth=False,
            expect=403,
        )
        assert await hub.call("GET", "/api/v1/maintenance", headers=headers, auth=False) == []
    await hub.call("GET", "/api/v1/maintenance", auth=False, expect=401)


# ------------------------------------------------------------------ the console


async def test_every_users_pages_carry_the_notice_until_it_ends(
    hub: HubHarness, clock: FakeClock
) -> None:
    await hub.user("xa1.op", "commune_operator", "00001", new_password=PASSWORD)
    operator = ConsoleSession(hub)
    admin = ConsoleSession(hub)
    try:
        await operator.login("xa1.op", PASSWORD)
        await admin.login(ADMIN, ADMIN_PASSWORD)
        status, html = await operator.get("/")
        assert status == 200 and 'class="maintenance"' not in html
        assert 'href="/maintenance"' not in html  # the page is the admin's
        assert (await operator.get("/maintenance"))[0] == 403

        # The admin's form, in Vietnam's local time; a late notice is posted with its warning.
        await admin.get("/maintenance")
        start_local = (NOW + timedelta(hours=5)).astimezone(VN_TZ)
        status, page, location = await admin.post(
            "/maintenance",
            {
                "kind": "maintenance",
                "starts_at": start_local.strftime("%Y-%m-%dT%H:%M"),
                "ends_at": (start_local + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
                "reason": "Thay ổ đĩa máy chủ tỉnh",
                "consent_ref": "",
            },
        )
        assert status == 303 and location is not None, page
        status, page = await admin.get(location)
        assert 'data-warning="short_notice"' in page and 'data-warning="no_consent"' in page
        stored = await hub.call("GET", "/api/v1/maintenance")
        assert datetime.fromisoformat(stored[0]["starts_at"]) == NOW + timedelta(hours=5)

        for path in ("/", "/bulletins", "/communes"):
            status, html = await operator.get(path)
            assert status == 200 and "Thay ổ đĩa máy chủ tỉnh" in html, path
            assert start_local.strftime("%d/%m/%Y %H:%M") in html

        # A bad end is named on the form and posts nothing.
        status, page, _ = await admin.post(
            "/maintenance",
            {
                "kind": "switchover",
                "starts_at": start_local.strftime("%Y-%m-%dT%H:%M"),
                "ends_at": start_local.strftime("%Y-%m-%dT%H:%M"),
                "reason": "Chuyển sang máy dự phòng",
            },
        )
        assert status == 422 and "kết thúc phải sau lúc bắt đầu" in page
        assert len(await hub.call("GET", "/api/v1/maintenance?all=true")) == 1

        clock.advance(timedelta(hours=8))
        await operator.login("xa1.op", PASSWORD)  # the earlier session has idled out
        status, html = await operator.get("/")
        assert status == 200 and 'class="maintenance"' not in html
        assert "Thay ổ đĩa máy chủ tỉnh" not in html
    finally:
        await operator.close()
        await admin.close()


@needs_chromium
async def test_the_banner_fits_a_phone(hub: HubHarness, tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    await hub.call(
        "POST",
        "/api/v1/maintenance",
        json=body(
            NOW + timedelta(days=3),
            kind="switchover",
            consent_ref="Công văn số 1234/STTTT-BCVT ngày 28/11/2026",
            reason="Chuyển toàn bộ hệ thống sang máy chủ dự phòng tại Trung tâm dữ liệu tỉnh"
            " để nâng cấp hạ tầng mạng; các cụm loa vẫn phát theo lịch đã tải về.",
        ),
        expect=201,
    )
    base = str(hub.client.make_url("/")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width, height in ((390, 844), (1366, 768)):
                context = await browser.new_context(viewport={"width": width, "height": height})
                page = await context.new_page()
                page.set_default_timeout(5000)
                await page.goto(f"{base}/login")
                await page.fill("input[name=username]", ADMIN)
                await page.fill("input[name=password]", ADMIN_PASSWORD)
                await page.click("button[type=submit].primary")
                for path in ("/", "/maintenance"):
                    await page.goto(base + path)
                    banner = page.locator("section.maintenance .notice")
                    assert "Chuyển sang hệ thống dự phòng" in await banner.inner_text()
                    assert not await page.evaluate(
                        "document.documentElement.scrollWidth > window.innerWidth"
                    ), f"{path} wider than {width} px"
                await page.screenshot(
                    path=ARTIFACTS / f"console-maintenance-{width}.png", full_page=True
                )
                await context.close()
        finally:
            await browser.close()
