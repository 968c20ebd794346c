"""The console's admin pages over a real hub: communes (windows editor, running order), users,
the audit log, reports with SVG charts. Every change goes through the API's handlers, so these
tests check the page's side: forms, CSRF, errors naming the field, refusals as pages, nothing
changed by bad input. Then a real browser walks it as an admin and as a commune operator."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.appkeys import DB
from hub.testing import ADMIN, ADMIN_PASSWORD, HubHarness, running_hub
from loa_contract import VN_TZ
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ConsoleSession, needs_chromium

OWN_PASSWORD = "Own-pass-2!"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001", name="Xã Tân Phước")
        await harness.commune("00002", name="Xã Hoà Bình")
        yield harness


@pytest.fixture
async def admin(hub: HubHarness) -> AsyncIterator[ConsoleSession]:
    browser = ConsoleSession(hub)
    await browser.login(ADMIN, ADMIN_PASSWORD)
    yield browser
    await browser.close()


async def as_user(
    hub: HubHarness, username: str, role: str, unit: str | None = None
) -> ConsoleSession:
    await hub.user(username, role, unit, new_password=OWN_PASSWORD)
    browser = ConsoleSession(hub)
    await browser.login(username, OWN_PASSWORD)
    return browser


async def audit_count(hub: HubHarness, action: str | None = None) -> int:
    sql = "SELECT COUNT(*) FROM audit" + (" WHERE action = ?" if action else "")
    row = await hub.app[DB].fetchone(sql, (action,) if action else ())
    return int(row[0])


def window_form(
    speaker: list[tuple[str, ...]],
    board: list[tuple[str, ...]],
    *,
    name: str = "Xã Tân Phước",
    volume: str = "70",
) -> list[tuple[str, str]]:
    """The windows form as a browser posts it; a row (start, end, "1") runs past midnight."""
    fields = [("name", name), ("volume", volume)]
    for kind, rows in (("speaker", speaker), ("board", board)):
        for start, end, *night in rows:
            fields += [
                (f"{kind}_start", start),
                (f"{kind}_end", end),
                (f"{kind}_overnight", night[0] if night else ""),
            ]
    return fields


def assert_csp_clean(html: str) -> None:
    """CSP is default-src 'self': no inline style, no inline script, no event handlers."""
    assert "style=" not in html
    assert re.search(r"\son[a-z]+=", html) is None
    for tag in re.findall(r"<script[^>]*>", html):
        assert "src=" in tag, tag


# ================================================================ communes


async def test_communes_list_and_create(hub: HubHarness, admin: ConsoleSession) -> None:
    status, html = await admin.get("/communes")
    assert status == 200 and "Xã Tân Phước" in html and "Xã Hoà Bình" in html
    assert 'href="/communes/00001"' in html and 'action="/communes"' in html
    assert_csp_clean(html)
    status, html, _ = await admin.post("/communes", {"code": "bad code!", "name": "Xã Mới"})
    assert status == 422 and "Mã xã" in html and 'data-field="code"' in html
    status, html, _ = await admin.post("/communes", {"code": "00001", "name": "Trùng"})
    assert status == 409 and 'data-field="code"' in html
    assert "mã xã này đã có" in html
    status, _, _ = await admin.post("/communes", {"code": "00003", "name": "Xã Mới"}, csrf=False)
    assert status == 403
    assert [c["code"] for c in await hub.call("GET", "/api/v1/communes")] == ["00001", "00002"]
    status, _, location = await admin.post("/communes", {"code": "00003", "name": "Xã Mới"})
    assert status == 303 and location == "/communes/00003?saved=created"
    assert (await hub.call("GET", "/api/v1/communes/00003"))["name"] == "Xã Mới"


async def test_windows_editor_saves_and_refuses_bad_input(
    hub: HubHarness, admin: ConsoleSession
) -> None:
    status, html = await admin.get("/communes/00001")
    assert status == 200
    assert 'name="speaker_start" value="05:30"' in html and 'name="board_end" value="22:00"' in html
    assert_csp_clean(html)
    before = await hub.call("GET", "/api/v1/communes/00001")
    audits = await audit_count(hub)

    bad = window_form([("05:30", "06:30"), ("25:00", "18:00")], [("06:00", "22:00")])
    status, html, _ = await admin.post("/communes/00001", bad)
    assert status == 422
    assert "windows.speaker[1].start" in html
    assert "Khung giờ cho loa — dòng 2" in html
    assert 'value="25:00"' in html  # the form comes back as typed
    assert 'class="window-row invalid"' in html
    same = window_form([("05:30", "05:30")], [("06:00", "22:00")])
    status, html, _ = await admin.post("/communes/00001", same)
    assert status == 422 and "windows.speaker[0]" in html and "dòng 1" in html
    half = window_form([("05:30", "")], [])
    status, html, _ = await admin.post("/communes/00001", half)
    assert status == 422 and "windows.speaker[0].end" in html
    loud = window_form([("05:30", "06:30")], [], volume="150")
    status, html, _ = await admin.post("/communes/00001", loud)
    assert status == 422 and 'data-field="volume"' in html
    status, html, _ = await admin.post("/communes/00001", window_form([], [], name=""))
    assert status == 422 and 'data-field="name"' in html
    good = window_form([("05:00", "06:00")], [("07:00", "21:00")])
    status, _, _ = await admin.post("/communes/00001", good, csrf=False)
    assert status == 403
    # 20:00 → 19:00 is not saved as a 23-hour window unless it is confirmed.
    status, html, _ = await admin.post("/communes/00001", window_form([("20:00", "19:00")], []))
    assert status == 422 and "windows.speaker[0].overnight" in html
    assert "hãy chọn “qua nửa đêm”" in html
    status, html, _ = await admin.post(
        "/communes/00001", window_form([("05:00", "07:00"), ("06:30", "08:00")], [])
    )
    assert status == 422 and "windows.speaker[1]" in html and "trùng với một khung giờ" in html
    status, html, _ = await admin.post(
        "/communes/00001", window_form([("22:00", "02:00", "1"), ("01:00", "03:00")], [])
    )
    # An overnight window holds the small hours too: 01:00–03:00 overlaps 22:00–02:00.
    assert status == 422 and "windows.speaker[1]" in html and "trùng với một khung giờ" in html
    # None of that changed anything, nor wrote to the audit log.
    assert await hub.call("GET", "/api/v1/communes/00001") == before
    assert await audit_count(hub) == audits

    # Blank rows are dropped: that is how a window is removed without JavaScript.
    fields = window_form(
        [("05:00", "06:00"), ("", ""), ("17:30", "18:30")],
        [("22:00", "05:00", "1")],
        volume="55",
    )
    status, _, location = await admin.post("/communes/00001", fields)
    assert status == 303 and location == "/communes/00001?saved=windows"
    after = await hub.call("GET", "/api/v1/communes/00001")
    assert after["windows"] == {
        "speaker": [
            {"start": "05:00", "end": "06:00"},
            {"start": "17:30", "end": "18:30"},
        ],
        "board": [{"start": "22:00", "end": "05:00", "overnight": True}],
        "weekly": {},
        "exceptions": [],
    }
    assert after["volume"] == 55
    [entry] = (
        await hub.call(
            "GET", "/api/v1/audit", params={"action": "commune.update", "object": "00001"}
        )
    )["items"]
    assert entry["actor"] == ADMIN and entry["after"]["volume"] == 55
    status, html = await admin.get(location)
    assert "Đã lưu" in html and 'value="17:30"' in html


async def test_commune_operator_is_refused_another_commune(hub: HubHarness) -> None:
    op = await as_user(hub, "xa1.op", "commune_operator", "00001")
    try:
        status, html = await op.get("/communes")
        assert status == 200 and "Xã Tân Phước" in html and "Xã Hoà Bình" not in html
        assert 'action="/communes"' not in html  # no create form for a commune
        status, html = await op.get("/communes/00002")
        assert status == 403 and "Tài khoản của bạn không có quyền này." in html
        assert "Xã Hoà Bình" not in html
        before = await hub.call("GET", "/api/v1/communes/00002")
        good = window_form([("05:00", "06:00")], [], name="Chiếm")
        status, _ = await op.get("/communes/00001")  # a valid token of its own session
        status, html, _ = await op.post("/communes/00002", good)
        assert status == 403 and "không có quyền" in html
        status, _, _ = await op.post("/communes/00002/order", {"bulletin": "x", "move": "up"})
        assert status == 403
        status, _, _ = await op.post("/communes", {"code": "00009", "name": "Xã Lạ"})
        assert status == 403
        assert await hub.call("GET", "/api/v1/communes/00002") == before
        assert len(await hub.call("GET", "/api/v1/communes")) == 2
        # Its own commune it may edit.
        status, _, location = await op.post(
            "/communes/00001", window_form([("05:00", "06:00")], [], name="Xã Tân Phước")
        )
        assert status == 303 and location == "/communes/00001?saved=windows"
        # Users and the audit log are the admin's.
        assert (await op.get("/users"))[0] == 403
        assert (await op.get("/audit"))[0] == 403
        assert (await op.get("/audit.csv"))[0] == 403
    finally:
        await op.close()


def _schedule() -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "valid_from": (now - timedelta(minutes=1)).isoformat(),
        "valid_until": (now + timedelta(days=1)).isoformat(),
        "times": ["07:00"],
    }


async def _aired_bulletins(
    hub: HubHarness, device_id: str, priorities: tuple[str, ...], since: datetime
) -> list[str]:
    """Published text bulletins for commune 00001, valid and the device enrolled since `since`:
    the hub credits proof of play only for what it sent, while it was valid."""
    ids = []
    for n, priority in enumerate(priorities):
        created = await hub.call(
            "POST",
            "/api/v1/bulletins",
            json={
                "title": f"Bản tin {n}",
                "kind": "text",
                "priority": priority,
                "text": " ".join(["thông báo"] * 200),  # long enough to read for minutes
                "targets": {"communes": ["00001"]},
                "schedule": _schedule(),
            },
            expect=201,
        )
        await hub.call("POST", f"/api/v1/bulletins/{created['id']}/publish")
        ids.append(created["id"])
    await hub.backdate(since - timedelta(hours=1), device_id, *ids)
    return ids


async def test_running_order_moves_up_and_down(hub: HubHarness) -> None:
    op = await as_user(hub, "xa1.op", "commune_operator", "00001")
    opapi = HubHarness(hub.client, hub.config)
    await opapi.login("xa1.op", OWN_PASSWORD)
    ids = []
    for who, title in ((hub, "Tin của tỉnh"), (opapi, "Tin của xã")):
        created = await who.call(
            "POST",
            "/api/v1/bulletins",
            json={
                "title": title,
                "kind": "text",
                "priority": "priority",
                "text": "Nội dung",
                "category": "other",
                "targets": {"communes": ["00001"]},
                "schedule": _schedule(),
            },
            expect=201,
        )
        await who.call("POST", f"/api/v1/bulletins/{created['id']}/publish")
        ids.append(created["id"])
    try:
        status, html = await op.get("/communes/00001")
        assert status == 200
        assert html.index("Tin của tỉnh") < html.index("Tin của xã")
        status, _, location = await op.post(
            "/communes/00001/order", {"bulletin": ids[0], "move": "down"}
        )
        assert status == 303 and location == "/communes/00001?saved=order#order"
        order = await hub.call("GET", "/api/v1/communes/00001/order")
        assert order["bulletins"] == [ids[1], ids[0]]
        status, html = await op.get("/communes/00001")
        assert html.index("Tin của xã") < html.index("Tin của tỉnh")
        status, _, _ = await op.post("/communes/00001/order", {"bulletin": ids[0], "move": "up"})
        assert (await hub.call("GET", "/api/v1/communes/00001/order"))["bulletins"] == ids
        status, _, _ = await op.post("/communes/00001/order", {"bulletin": "gone", "move": "up"})
        assert status == 409
        status, _, _ = await op.post(
            "/communes/00001/order", {"bulletin": ids[0], "move": "down"}, csrf=False
        )
        assert status == 403
        assert (await hub.call("GET", "/api/v1/communes/00001/order"))["bulletins"] == ids
        entry = (await hub.call("GET", "/api/v1/audit", params={"action": "commune.order"}))[
            "items"
        ][0]
        assert entry["actor"] == "xa1.op"
    finally:
        await op.close()


# ================================================================ users


async def test_users_create_lock_reset_disable(hub: HubHarness, admin: ConsoleSession) -> None:
    status, html = await admin.get("/users")
    assert status == 200 and 'data-user="admin"' in html and "Quản trị hệ thống" in html
    assert "Ít nhất 8 ký tự" in html  # the policy is shown next to the form
    assert_csp_clean(html)
    created = {"username": "nguyenvana", "role": "reviewer", "unit": ""}
    status, html, _ = await admin.post("/users", {**created, "password": "weak"})
    assert status == 422 and 'data-field="password"' in html
    assert "mật khẩu chưa đủ mạnh" in html and 'value="nguyenvana"' in html
    status, html, _ = await admin.post(
        "/users", {"username": "root", "role": "admin", "password": "Temp-pass1!"}
    )
    assert status == 422 and 'data-field="username"' in html
    assert "không dùng tên chung" in html
    status, html, _ = await admin.post(
        "/users",
        {"username": "xa9", "role": "commune_operator", "unit": "09999", "password": "Temp-pass1!"},
    )
    assert status == 422 and 'data-field="unit"' in html
    status, html, _ = await admin.post(
        "/users", {"username": "admin", "role": "reviewer", "password": "Temp-pass1!"}
    )
    assert status == 409 and "tên đăng nhập này đã có" in html
    status, _, _ = await admin.post("/users", {**created, "password": "Temp-pass1!"}, csrf=False)
    assert status == 403
    assert [u["username"] for u in await hub.call("GET", "/api/v1/users")] == ["admin"]

    status, _, location = await admin.post("/users", {**created, "password": "Temp-pass1!"})
    assert status == 303 and location == "/users/nguyenvana?done=created"
    status, html = await admin.get(location)
    assert "Phải đổi mật khẩu" in html and "Chưa đăng nhập" in html
    status, html = await admin.get("/users")
    assert 'data-user="nguyenvana"' in html
    # The admin's own row shows its last login.
    assert "Chưa đăng nhập" in html

    status, _, location = await admin.post("/users/nguyenvana/lock", {})
    assert status == 303 and location == "/users/nguyenvana?done=lock"
    assert (await hub.call("GET", "/api/v1/users/nguyenvana"))["locked"] is True
    status, html = await admin.get(location)
    assert "Đã khoá" in html and 'id="unlock"' in html
    await admin.post("/users/nguyenvana/unlock", {})
    assert (await hub.call("GET", "/api/v1/users/nguyenvana"))["locked"] is False

    status, html, _ = await admin.post("/users/nguyenvana/password", {"password": "short"})
    assert status == 422 and 'data-field="password"' in html
    status, _, location = await admin.post(
        "/users/nguyenvana/password", {"password": "New-temp-3!"}
    )
    assert status == 303 and location == "/users/nguyenvana?done=password"

    status, html, _ = await admin.post("/users/nguyenvana/disable", {})
    assert status == 400 and "hãy đánh dấu ô xác nhận" in html
    assert (await hub.call("GET", "/api/v1/users/nguyenvana"))["disabled"] is False
    status, _, _ = await admin.post("/users/nguyenvana/disable", {"confirm": "yes"})
    assert status == 303
    assert (await hub.call("GET", "/api/v1/users/nguyenvana"))["disabled"] is True
    status, html = await admin.get("/users/nguyenvana")
    assert "Đã vô hiệu hoá" in html and 'id="disable"' not in html

    # The last admin can neither be locked nor disabled; the page says so.
    status, html, _ = await admin.post("/users/admin/lock", {})
    assert status == 409 and "ít nhất một quản trị viên" in html
    assert (await hub.call("GET", "/api/v1/users/admin"))["locked"] is False
    assert (await admin.get("/users/ghost"))[0] == 404
    actions = [
        e["action"]
        for e in (await hub.call("GET", "/api/v1/audit", params={"object": "nguyenvana"}))["items"]
    ]
    assert actions == [
        "user.disable",
        "user.password_reset",
        "user.unlock",
        "user.lock",
        "user.create",
    ]


async def test_last_login_is_listed(hub: HubHarness, admin: ConsoleSession) -> None:
    await hub.user("tt.lan", "reviewer", new_password=OWN_PASSWORD)
    status, html = await admin.get("/users/tt.lan")
    assert status == 200 and "Chưa đăng nhập" not in html
    listed = await hub.call("GET", "/api/v1/users/tt.lan")
    assert listed["last_login_at"] is not None


async def test_only_admins_open_user_and_audit_pages(hub: HubHarness) -> None:
    reviewer = await as_user(hub, "tt.lan", "reviewer")
    try:
        for path in ("/users", "/users/admin", "/audit", "/audit.csv"):
            status, html = await reviewer.get(path)
            assert status == 403 and "không có quyền" in html, path
        await reviewer.get("/")
        status, _, _ = await reviewer.post(
            "/users", {"username": "x1", "role": "viewer", "password": "Temp-pass1!"}
        )
        assert status == 403
        status, _, _ = await reviewer.post("/users/admin/lock", {})
        assert status == 403
        assert (await hub.call("GET", "/api/v1/users/admin"))["locked"] is False
        # Reports are the fleet's: a reviewer reads them, an agency does not.
        assert (await reviewer.get("/reports"))[0] == 200
    finally:
        await reviewer.close()
    agency = await as_user(hub, "bt.soyte", "contributor", "so-yte")
    try:
        assert (await agency.get("/reports"))[0] == 403
        assert (await agency.get("/reports.csv"))[0] == 403
        status, html = await agency.get("/communes/00001")
        assert status == 200 and 'id="save-windows"' not in html
    finally:
        await agency.close()


# ================================================================ audit


async def test_audit_page_filters_pages_and_exports(hub: HubHarness, admin: ConsoleSession) -> None:
    for i in range(55):
        await hub.commune(f"1{i:04d}")
    status, html = await admin.get("/audit?action=commune.create")
    assert status == 200 and html.count('class="audit-entry"') == 50
    assert_csp_clean(html)
    assert "10054" in html and ">10004<" not in html
    older = re.search(r'href="(/audit\?[^"]*before=\d+)" id="older"', html)
    assert older is not None
    status, html = await admin.get(older[1].replace("&amp;", "&"))
    assert html.count('class="audit-entry"') == 7  # 10004..10000 and the fixture's two
    assert 'id="older"' not in html and 'id="newest"' in html
    status, html = await admin.get("/audit?object=10007")
    assert html.count('class="audit-entry"') == 1 and "Xã 10007" in html
    status, html = await admin.get("/audit?action=user.&actor=admin")
    assert 'class="audit-entry"' not in html and "Không có bản ghi nào." in html
    today = datetime.now(VN_TZ).date()
    status, html = await admin.get(f"/audit?since={today + timedelta(days=1)}")
    assert status == 200 and 'class="audit-entry"' not in html
    status, html = await admin.get(f"/audit?until={today}&action=commune.create")
    assert html.count('class="audit-entry"') == 50
    status, html = await admin.get("/audit?since=yesterday")
    assert status == 422 and 'data-field="since"' in html
    assert 'class="audit-entry"' not in html

    status, html = await admin.get("/audit?action=commune.")
    assert 'href="/audit.csv?action=commune."' in html
    async with admin.http.get(admin.base + "/audit.csv?action=commune.") as resp:
        assert resp.status == 200 and resp.content_type == "text/csv"
        console_csv = await resp.read()
    api_resp = await hub.client.get(
        "/api/v1/audit.csv", params={"action": "commune."}, headers=hub.auth
    )
    # One CSV writer: the console's export is the API's, byte for byte.
    assert console_csv == await api_resp.read()
    rows = list(csv.reader(io.StringIO(console_csv.decode("utf-8-sig"))))
    assert rows[0][:3] == ["id", "at", "actor"] and len(rows) == 1 + 57
    assert (await admin.get("/audit.csv?since=nope"))[0] == 422


# ================================================================ reports


async def test_reports_page_draws_charts(hub: HubHarness, admin: ConsoleSession) -> None:
    device = await hub.new_device("00001")
    started = datetime.now(UTC) - timedelta(minutes=10)
    (aired,) = await _aired_bulletins(hub, device.id, ("priority",), started)
    status, body = await device.report(
        [
            {
                "type": "play",
                "seq": 1,
                "bulletin_id": aired,
                "priority": "priority",
                "kind": "text",
                "started_at": started.isoformat(),
                "ended_at": (started + timedelta(minutes=3)).isoformat(),
                "outcome": "completed",
                "position_s": 180,
            }
        ]
    )
    assert status == 200, body
    month = started.astimezone(VN_TZ).strftime("%Y-%m")
    status, html = await admin.get(f"/reports?month={month}")
    assert status == 200
    assert_csp_clean(html)
    for chart in ("chart-per-day", "chart-priority", "chart-uptime"):
        assert f'id="{chart}"' in html
    assert html.count("<svg") == 3
    heights = [float(h) for h in re.findall(r'class="bar"[^>]*height="([0-9.]+)"', html)]
    assert any(h > 0 for h in heights)
    assert 'id="total-minutes">3,0<' in html and 'id="quotas"' in html
    assert f'href="/reports.csv?month={month}"' in html
    async with admin.http.get(f"{admin.base}/reports.csv?month={month}") as resp:
        assert resp.status == 200 and resp.content_type == "text/csv"
        assert "total,total,1,1,180.0,3.0" in (await resp.text())
    # A bad month on the export shows the page with the field named, not a file.
    status, html = await admin.get("/reports.csv?month=2026-13")
    assert status == 422 and "month" in html and "<h1>" in html
    status, html = await admin.get(f"/reports?month={month}&commune=00002")
    assert status == 200 and 'id="total-minutes">0,0<' in html and 'id="quotas"' not in html
    status, html = await admin.get("/reports?month=2025-13")
    assert status == 422 and 'data-field="month"' in html and "<svg" not in html
    status, html = await admin.get("/reports?month=2025-03&commune=09999")
    assert status == 404

    op = await as_user(hub, "xa2.op", "commune_operator", "00002")
    try:
        status, html = await op.get(f"/reports?month={month}")
        assert status == 200 and 'name="commune"' not in html
        assert 'id="total-minutes">0,0<' in html
        status, html = await op.get(f"/reports?month={month}&commune=00001")
        assert status == 403 and "không có quyền" in html
        assert (await op.get(f"/reports.csv?month={month}&commune=00001"))[0] == 403
    finally:
        await op.close()


async def test_english_labels(hub: HubHarness, admin: ConsoleSession) -> None:
    for path, heading in (
        ("/communes?lang=en", "Communes"),
        ("/users", "Accounts"),
        ("/audit", "Audit log"),
        ("/reports", "Activity report"),
        ("/communes/00001", "Daily broadcast windows"),
    ):
        status, html = await admin.get(path)
        assert status == 200 and heading in html, path


# ================================================================ a real browser


# Under CI a missing browser is a failure, not a skip: the walkthrough must run there.
@needs_chromium
async def test_browser_admin_walkthrough(hub: HubHarness) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    speaker = await hub.new_device("00001")
    started = datetime.now(UTC) - timedelta(minutes=20)
    priorities = ("normal", "priority", "normal")
    aired = await _aired_bulletins(hub, speaker.id, priorities, started)
    status, body = await speaker.report(
        [
            {
                "type": "play",
                "seq": i + 1,
                "bulletin_id": aired[i],
                "priority": priority,
                "kind": "text",
                "started_at": (started + timedelta(minutes=4 * i)).isoformat(),
                "ended_at": (started + timedelta(minutes=4 * i + 2)).isoformat(),
                "outcome": "completed",
                "position_s": 120,
            }
            for i, priority in enumerate(priorities)
        ]
    )
    assert status == 200, body
    await hub.call(
        "POST",
        "/api/v1/users",
        json={"username": "tranthib", "role": "admin", "password": "Temp-pass1!"},
        expect=201,
    )
    base = str(hub.client.make_url("/")).rstrip("/")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 390, "height": 844})
            page = await context.new_page()
            page.set_default_timeout(5000)
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("dialog", _accept)

            await page.goto(f"{base}/login")
            await page.fill("input[name=username]", "tranthib")
            await page.fill("input[name=password]", "Temp-pass1!")
            await page.click("button[type=submit].primary")
            await expect(page).to_have_url(f"{base}/password")
            await page.fill("input[name=old_password]", "Temp-pass1!")
            await page.fill("input[name=new_password]", OWN_PASSWORD)
            await page.fill("input[name=repeat_password]", OWN_PASSWORD)
            await page.click("button[type=submit].primary")
            await expect(page).to_have_url(f"{base}/")

            # An account for the commune's operator: a weak password first, named on the page.
            await page.click("nav a[href='/users']")
            await expect(page.locator("h1")).to_have_text("Tài khoản")
            await page.fill("#user-create input[name=username]", "xa1.op")
            await page.select_option("#user-create select[name=role]", "commune_operator")
            await page.select_option("#user-create select[name=unit]", "00001")
            await page.fill("#user-create input[name=password]", "yeu")
            await page.click("#user-create button[type=submit]")
            await expect(page.locator(".field-errors li")).to_have_attribute(
                "data-field", "password"
            )
            await page.fill("#user-create input[name=password]", "Temp-pass1!")
            await page.click("#user-create button[type=submit]")
            await expect(page).to_have_url(f"{base}/users/xa1.op?done=created")
            await expect(page.locator("#state")).to_contain_text("Phải đổi mật khẩu")
            await page.goto(f"{base}/users")
            await expect(page.locator("tr[data-user='xa1.op']")).to_contain_text("Cán bộ xã")
            await page.screenshot(path=ARTIFACTS / "console-users.png", full_page=True)

            # The commune's windows: add a speaker row with JavaScript, remove a board row.
            await page.click("nav a[href='/communes']")
            await page.click("a[href='/communes/00001'] >> nth=1")
            await expect(page.locator("h1")).to_contain_text("Xã Tân Phước")
            speaker_rows = page.locator("#rows-speaker .window-row")
            await expect(speaker_rows).to_have_count(3)  # two windows and the blank row
            await page.click("[data-add-row=speaker]")
            await expect(speaker_rows).to_have_count(4)
            await speaker_rows.nth(3).locator("input[name=speaker_start]").fill("20:00")
            await speaker_rows.nth(3).locator("input[name=speaker_end]").fill("19:00")
            await speaker_rows.nth(2).locator("[data-remove-row]").click()
            await expect(speaker_rows).to_have_count(3)
            await (
                page.locator("#rows-board .window-row").nth(0).locator("[data-remove-row]").click()
            )
            await page.fill("input[name=volume]", "65")
            await page.click("#save-windows")
            # 20:00 → 19:00 is not silently a 23-hour window: it must be confirmed.
            await expect(page.locator(".field-errors")).to_contain_text("qua nửa đêm")
            await page.screenshot(path=ARTIFACTS / "console-windows-overnight.png", full_page=True)
            assert (await hub.call("GET", "/api/v1/communes/00001"))["volume"] != 65
            # Confirmed, a 23-hour window still overlaps the morning one: corrected and saved.
            last = page.locator("#rows-speaker .window-row").nth(2)
            await last.locator("select[name=speaker_overnight]").select_option("1")
            await last.locator("input[name=speaker_end]").fill("04:00")
            await page.click("#save-windows")
            await expect(page.locator("#saved")).to_be_visible()
            saved = await hub.call("GET", "/api/v1/communes/00001")
            assert saved["windows"]["speaker"][-1] == {
                "start": "20:00",
                "end": "04:00",
                "overnight": True,
            }
            assert saved["windows"]["board"] == [] and saved["volume"] == 65
            # A bad time from a script or an old browser: refused, the row marked, named.
            await (
                page.locator("#rows-speaker .window-row")
                .nth(0)
                .locator("input[name=speaker_end]")
                .evaluate("e => { e.type = 'text'; e.value = '24:61'; }")
            )
            await page.click("#save-windows")
            await expect(page.locator(".field-errors li")).to_have_attribute(
                "data-field", "windows.speaker[0].end"
            )
            await expect(page.locator(".window-row.invalid")).to_have_count(1)
            assert await hub.call("GET", "/api/v1/communes/00001") == saved
            await page.screenshot(path=ARTIFACTS / "console-communes.png", full_page=True)

            # The audit log, filtered to that change.
            await page.click("nav a[href='/audit']")
            await page.fill("#audit-filter input[name=action]", "commune.update")
            await page.fill("#audit-filter input[name=object]", "00001")
            await page.click("#audit-filter button[type=submit]")
            entries = page.locator("tr.audit-entry")
            await expect(entries).to_have_count(1)
            await expect(entries.first).to_contain_text("tranthib")
            await entries.first.locator("summary").click()
            await expect(entries.first.locator("pre.json").last).to_contain_text("20:00")
            csv_href = await page.locator("#audit-csv").get_attribute("href")
            assert csv_href == "/audit.csv?action=commune.update&object=00001"
            await page.screenshot(path=ARTIFACTS / "console-audit.png", full_page=True)

            # Reports with their charts.
            await page.click("nav a[href='/reports']")
            await expect(page.locator("h1")).to_have_text("Báo cáo hoạt động")
            await expect(page.locator("#total-airings")).to_have_text("3")
            bars = page.locator("#chart-per-day svg rect.bar")
            await expect(bars).not_to_have_count(0)
            heights = [
                float(h or 0)
                for h in await bars.evaluate_all("rs => rs.map(r => r.getAttribute('height'))")
            ]
            assert any(h > 0 for h in heights)
            await expect(page.locator("#chart-priority svg rect.bar")).to_have_count(3)
            await expect(page.locator("#chart-uptime svg rect.bar")).to_have_count(1)
            await page.screenshot(path=ARTIFACTS / "console-reports.png", full_page=True)
            # No CSP refusal and no script error (failed loads are the 4xx pages above and
            # the favicon).
            assert not [e for e in errors if "Failed to load resource" not in e], errors
            await page.click("button.link")
            await expect(page).to_have_url(f"{base}/login")

            # The commune operator: its own commune opens, another is refused.
            await page.fill("input[name=username]", "xa1.op")
            await page.fill("input[name=password]", "Temp-pass1!")
            await page.click("button[type=submit].primary")
            await expect(page).to_have_url(f"{base}/password")
            await page.fill("input[name=old_password]", "Temp-pass1!")
            await page.fill("input[name=new_password]", OWN_PASSWORD)
            await page.fill("input[name=repeat_password]", OWN_PASSWORD)
            await page.click("button[type=submit].primary")
            await expect(page).to_have_url(f"{base}/")
            await page.goto(f"{base}/communes")
            await expect(page.locator("#communes tbody tr")).to_have_count(1)
            response = await page.goto(f"{base}/communes/00002")
            assert response is not None and response.status == 403
            await expect(page.locator(".error")).to_have_text(
                "Tài khoản của bạn không có quyền này."
            )
            await expect(page.locator("body")).not_to_contain_text("Xã Hoà Bình")
            response = await page.goto(f"{base}/communes/00001")
            assert response is not None and response.status == 200
        finally:
            await browser.close()


async def _accept(dialog: Any) -> None:
    await dialog.accept()
