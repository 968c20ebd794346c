"""The console's device pages: the status table with verdicts and filters (and the fragment
it refreshes itself from), new slots with their one-time enrollment code, a device's page
with its health chart and proof-of-play, signed commands reaching a connected agent, the
unit scope, and a real browser walking through it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hub import console
from hub.appkeys import CONNECTIONS
from hub.console_devices import Fmt, hardware_profiles
from hub.i18n import CATALOGUE
from hub.testing import ADMIN, ADMIN_PASSWORD, DeviceSocket, EnrolledDevice, HubHarness, running_hub
from hub.verdict import REASON_CODES
from loa_contract import Fault
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ConsoleSession, needs_chromium
from tests.test_hub_device import publish

CODE = re.compile(r'id="enrollment-code">([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})<')


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        yield harness


async def browser(
    hub: HubHarness, username: str = ADMIN, role: str | None = None, unit: str | None = None
) -> ConsoleSession:
    """A logged-in console session; for another role, the account is created first."""
    person = ConsoleSession(hub)
    if role is None:
        await person.login(ADMIN, ADMIN_PASSWORD)
        return person
    await hub.call(
        "POST",
        "/api/v1/users",
        json={"username": username, "role": role, "unit": unit, "password": "Temp-pass1!"},
        expect=201,
    )
    await person.login(username, "Temp-pass1!", "Own-pass-2!")
    return person


def health(seq: int, at: datetime | None = None, **fields: Any) -> dict[str, Any]:
    at = at or datetime.now(UTC)
    return {
        "type": "health",
        "seq": seq,
        "at": at.isoformat(),
        "cpu_percent": 12.5,
        "memory_used_bytes": 300_000_000,
        "memory_total_bytes": 1_000_000_000,
        "filesystem_avail_bytes": 12_300_000_000,
        "filesystem_size_bytes": 31_000_000_000,
        "temperature_celsius": 48.5,
        "boot_time_seconds": (at - timedelta(days=2, hours=3)).timestamp(),
        "player_state": "idle",
        "volume": 70,
        **fields,
    }


def playing(title: str) -> dict[str, Any]:
    return {
        "bulletin_id": "b-1",
        "priority": "normal",
        "kind": "text",
        "title": title,
        "started_at": datetime.now(UTC).isoformat(),
    }


async def next_command(socket: DeviceSocket) -> Any:
    """The next operator command, past the manifest nudges the hub sends on connect."""
    for _ in range(10):
        command = await socket.command()
        if command.type != "manifest_ready":
            return command
    raise AssertionError("no operator command arrived")


def no_inline_code(html: str) -> None:
    """The console's CSP is default-src 'self': nothing inline may be needed."""
    assert "style=" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"\son[a-z]+=", html)


async def fleet(hub: HubHarness) -> tuple[EnrolledDevice, dict[str, Any]]:
    await hub.commune("00001", name="Xã Tân Phước")
    await hub.commune("00002", name="Xã Mỹ An")
    speaker = await hub.enroll((await hub.device("00001", name="Loa thôn Đông"))["enrollment_code"])
    board = await hub.device("00002", kind="board", name="Bảng tin chợ")
    status, _ = await speaker.report([health(1, now_playing=playing("Lịch tiêm chủng"))])
    assert status == 200
    return speaker, board


# ---------------------------------------------------------------- helpers


def test_reason_labels_fall_back_to_the_code() -> None:
    vi, en = Fmt("vi", datetime.now(UTC)), Fmt("en", datetime.now(UTC))
    assert vi.reason("under_voltage") == "Nguồn điện yếu (thiếu áp)"
    assert en.reason("sd_read_only") == "SD card has gone read-only"
    for code in ("offline", "not_enrolled", "disk_low", "clock_offset", "screen_frozen"):
        assert vi.reason(code) != code and en.reason(code) != code
    # Every Fault (so every reason the hub's verdict can give) has a label in both
    # languages …
    labelled = {key.removeprefix("dv.reason.") for key in CATALOGUE if key.startswith("dv.reason.")}
    assert set(REASON_CODES) <= labelled == set(Fault)
    for fault in Fault:
        labels = CATALOGUE[f"dv.reason.{fault}"]
        assert labels["vi"] and labels["en"] and labels["vi"] != labels["en"], fault
    # … but a newer hub or agent may name something this console has no label for yet.
    assert vi.reason("flux_capacitor") == "flux_capacitor"
    assert vi.num(1234.5, 1) == "1.234,5" and en.num(1234.5, 1) == "1,234.5"
    assert vi.size(12_300_000_000) == "12,3 GB"
    assert en.duration(2 * 86400 + 3 * 3600 + 5) == "2 d 3 h"


def test_verdict_badge_renders_unknown_reason_codes() -> None:
    device = SimpleNamespace(
        verdict="fault", verdict_reasons=["under_voltage", "brand_new_problem"]
    )
    html = console._env.get_template("device_verdict.html").render(
        t=lambda key: {"dv.verdict.fault": "Có lỗi"}[key],
        d=device,
        fmt=Fmt("vi", datetime.now(UTC)),
    )
    assert "dv-verdict-fault" in html and "Có lỗi" in html
    assert "Nguồn điện yếu (thiếu áp)" in html
    assert ">brand_new_problem</li>" in html


def test_profiles_are_read_from_firmware_profiles() -> None:
    kinds = {p.name: p.kind for p in hardware_profiles()}
    assert kinds["speaker-cluster"] == "speaker"
    assert kinds["led-board-p10"] == "board"


# ---------------------------------------------------------------- the status table


async def test_status_table_with_verdicts_health_and_filters(hub: HubHarness) -> None:
    speaker, _board = await fleet(hub)
    api_fleet = {d["name"]: d for d in await hub.call("GET", "/api/v1/devices")}
    admin = await browser(hub)
    try:
        status, html = await admin.get("/devices")
        assert status == 200
        no_inline_code(html)
        assert '<script src="/static/devices.js" defer></script>' in html
        assert 'data-refresh="/devices/table?"' in html
        for name in ("Loa thôn Đông", "Bảng tin chợ"):
            verdict = api_fleet[name]["verdict"]
            assert f"dv-verdict-{verdict}" in html
            for code in api_fleet[name]["verdict_reasons"]:
                assert f'data-reason="{code}"' in html
        assert "Xã Tân Phước" in html and "Xã Mỹ An" in html
        assert "48,5 °C" in html and "70 %" in html and "12,3 GB" in html
        assert "Lịch tiêm chủng" in html
        assert f'href="/devices/{speaker.id}"' in html
        assert 'href="/devices/new"' in html

        _, boards = await admin.get("/devices?kind=board")
        assert "Bảng tin chợ" in boards and "Loa thôn Đông" not in boards
        _, commune = await admin.get("/devices?commune=00001")
        assert "Loa thôn Đông" in commune and "Bảng tin chợ" not in commune
        verdict = api_fleet["Loa thôn Đông"]["verdict"]
        _, same = await admin.get(f"/devices?verdict={verdict}")
        assert "Loa thôn Đông" in same
        other = next(v for v in ("ok", "warning", "fault", "unknown") if v != verdict)
        if other != api_fleet["Bảng tin chợ"]["verdict"]:
            _, none = await admin.get(f"/devices?verdict={other}")
            assert "Loa thôn Đông" not in none and "Bảng tin chợ" not in none
        # A filter value the page does not know is "all", not an error.
        status, everything = await admin.get("/devices?kind=toaster&verdict=%3Cx%3E")
        assert status == 200 and "Bảng tin chợ" in everything and "Loa thôn Đông" in everything

        # The fragment devices.js fetches: the table alone, same filters, never cached.
        async with admin.http.get(admin.base + "/devices/table?kind=board") as resp:
            assert resp.status == 200
            assert resp.headers["Cache-Control"] == "no-store"
            fragment = await resp.text()
        assert "<html" not in fragment and 'id="fleet-table"' in fragment
        assert "Bảng tin chợ" in fragment and "Loa thôn Đông" not in fragment

        _, english = await admin.get("/devices?lang=en")
        assert "Condition" in english and "Disk free" in english
    finally:
        await admin.close()


async def test_status_table_pages_keeping_filters_and_counting_the_whole_fleet(
    hub: HubHarness,
) -> None:
    from hub.console_devices import PAGE_ROWS

    await hub.commune("00001")
    await hub.commune("00002")
    speakers = {
        (await hub.device("00001", "speaker", name=f"Cụm {i % 7}"))["id"]
        for i in range(PAGE_ROWS + 4)
    }
    await hub.device("00001", "board")
    await hub.device("00002", "speaker")
    person = await browser(hub)
    try:
        status, html = await person.get("/devices?commune=00001&kind=speaker")
        assert status == 200
        first = set(re.findall(r'href="/devices/([0-9a-f-]{36})"', html))
        assert len(first) == PAGE_ROWS and first <= speakers
        # The total counts every device, the tiles every one under the filters: not a page.
        assert f"{PAGE_ROWS}/{PAGE_ROWS + 6}" in html
        assert re.search(rf'<span class="num">{PAGE_ROWS + 4}</span>', html)
        found = re.search(r'href="([^"]+)" id="next-page"', html)
        assert found and 'id="first-page"' not in html
        next_url = found[1].replace("&amp;", "&")
        assert next_url.startswith("/devices?") and "commune=00001" in next_url
        assert "kind=speaker" in next_url and "before=" in next_url
        # The table refreshes itself from the same page of the same filters.
        assert 'data-refresh="/devices/table?commune=00001&amp;kind=speaker"' in html
        _, html = await person.get(next_url)
        second = set(re.findall(r'href="/devices/([0-9a-f-]{36})"', html))
        assert first | second == speakers and not first & second
        assert 'id="next-page"' not in html and 'id="first-page"' in html
        assert 'data-refresh="/devices/table?commune=00001&amp;kind=speaker&amp;before=' in html
        _, fragment = await person.get("/devices/table?" + next_url.split("?", 1)[1])
        assert set(re.findall(r'href="/devices/([0-9a-f-]{36})"', fragment)) == second
        status, _ = await person.get("/devices?before=not-a-cursor")
        assert status == 422
    finally:
        await person.close()


async def test_fragment_without_a_session_sends_to_login(hub: HubHarness) -> None:
    resp = await hub.client.get("/devices/table", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login")


# ---------------------------------------------------------------- new slots


async def test_technician_creates_a_slot_and_gets_a_working_code(hub: HubHarness) -> None:
    await hub.commune("00001", name="Xã Tân Phước")
    tech = await browser(hub, "kythuat", "technician", "province")
    try:
        status, form = await tech.get("/devices/new")
        assert (
            status == 200 and ">Xã Tân Phước</option>" in form
        )  # by name; a code only to tell two apart
        assert 'value="speaker-cluster"' in form and 'value="led-board-p10"' in form
        fields = {"commune": "00001", "name": "Loa thôn Tây", "kind": "speaker", "profile": ""}

        status, _, _ = await tech.post("/devices/new", fields, csrf=False)
        assert status == 403
        status, html, _ = await tech.post("/devices/new", {**fields, "name": "  "})
        assert status == 422 and "Tên thiết bị: bắt buộc" in html
        status, html, _ = await tech.post("/devices/new", {**fields, "profile": "led-board-p10"})
        assert status == 422 and "Cấu hình phần cứng" in html
        status, html, _ = await tech.post("/devices/new", {**fields, "commune": "99999"})
        assert status == 422 and "Xã, phường: hãy chọn" in html
        status, html, _ = await tech.post("/devices/new", {**fields, "kind": "toaster"})
        assert status == 422 and "Loại thiết bị" in html
        assert await hub.call("GET", "/api/v1/devices") == []

        status, _, location = await tech.post("/devices/new", fields)
        [slot] = await hub.call("GET", "/api/v1/devices")
        # Post/redirect/get: the code has its own address, so a reload creates nothing.
        assert status == 303 and location == f"/devices/{slot['id']}/code"
        status, html = await tech.get(location)
        assert status == 200
        no_inline_code(html)
        found = CODE.search(html)
        assert found, html
        code = found[1]
        hub_url = tech.base
        assert f"edge-agent enroll --hub {hub_url} --code {code}" in html
        assert f"--profile speaker-cluster --hub {hub_url} --code {code}" in html
        status, again_html = await tech.get(location)
        assert status == 200 and CODE.search(again_html)[1] == code  # type: ignore[index]
        assert len(await hub.call("GET", "/api/v1/devices")) == 1
        assert slot["name"] == "Loa thôn Tây" and slot["profile"] == "speaker-cluster"
        assert not slot["enrolled"]
        # Another browser (another person) is not shown the code: it may issue a new one.
        other = await browser(hub, "kythuat2", "technician", "province")
        try:
            status, html = await other.get(location)
            assert status == 200 and not CODE.search(html) and 'id="code-gone"' in html
        finally:
            await other.close()

        # The code on the page is the real one-time code.
        device = await hub.enroll(code)
        assert device.id == slot["id"]

        # A replaced SD card: a new code; the old secret no longer opens the hub.
        await tech.get(f"/devices/{slot['id']}")
        status, _, _ = await tech.post(f"/devices/{slot['id']}/enrollment", {}, csrf=False)
        assert status == 403
        # Once used, the code is no longer shown.
        status, html = await tech.get(location)
        assert not CODE.search(html) and 'id="code-gone"' in html
        status, _, reissued = await tech.post(f"/devices/{slot['id']}/enrollment", {})
        assert status == 303 and reissued == location
        _, html = await tech.get(location)
        found = CODE.search(html)
        assert found and found[1] != code
        assert "Mã đăng ký mới cho" in html
        assert (await device.get("/api/v1/device/manifest")).status == 401
        again = await hub.enroll(found[1])
        assert again.id == slot["id"]
    finally:
        await tech.close()


async def test_viewer_cannot_create_slots_or_send_commands(hub: HubHarness) -> None:
    speaker, _ = await fleet(hub)
    viewer = await browser(hub, "xem", "viewer", "province")
    try:
        status, html = await viewer.get("/devices/new")
        assert status == 403 and "không có quyền" in html
        status, page = await viewer.get(f"/devices/{speaker.id}")
        assert status == 200 and 'id="commands"' not in page and 'id="enrollment"' not in page
        _, listing = await viewer.get("/devices")
        assert 'href="/devices/new"' not in listing
        status, _, _ = await viewer.post(f"/devices/{speaker.id}/commands", {"type": "test_tone"})
        assert status == 403
    finally:
        await viewer.close()


# ---------------------------------------------------------------- one device


async def test_device_page_health_chart_plays_and_commands(hub: HubHarness) -> None:
    speaker, _ = await fleet(hub)
    now = datetime.now(UTC)
    # Hourly samples over the last six hours, then three hours of silence: two stretches.
    samples = [
        health(
            10 + i, now - timedelta(hours=9 - i), cpu_percent=10.0 + i, temperature_celsius=40.0 + i
        )
        for i in range(6)
    ] + [
        health(
            20,
            faults=["under_voltage", "flux_capacitor", "disk_full"],
            fault_details={"disk_full": "media 3f2a (150.0 MiB) does not fit: 40.0 MiB free"},
        )
    ]
    schedule = await publish(hub, title="Lịch tiêm chủng", priority="priority", text="lịch " * 150)
    await hub.backdate(now - timedelta(hours=1), speaker.id, schedule["id"])
    play = {
        "type": "play",
        "seq": 30,
        "bulletin_id": schedule["id"],
        "priority": "priority",
        "kind": "text",
        "started_at": (now - timedelta(minutes=10)).isoformat(),
        "ended_at": (now - timedelta(minutes=8)).isoformat(),
        "outcome": "completed",
    }
    # Not a bulletin this device was sent: refused, and said so on its page.
    forged = {**play, "seq": 31, "bulletin_id": "b-hacked"}
    status, _ = await speaker.report([*samples, play, forged])
    assert status == 200
    admin = await browser(hub)
    try:
        status, html = await admin.get(f"/devices/{speaker.id}")
        assert status == 200
        no_inline_code(html)
        assert "Loa thôn Đông" in html and "<td>Xã Tân Phước</td>" in html
        assert 'Cụm loa <span class="muted">(speaker-cluster)</span>' in html
        # The last sample, readable: units, local decimals, reasons by name.
        assert "Nhiệt độ bộ xử lý" in html and "48,5 °C" in html
        assert "12,3 GB / 31,0 GB (40 %)" in html
        assert "2 ngày 3 giờ" in html
        assert "Nguồn điện yếu (thiếu áp); flux_capacitor; Hết bộ nhớ" in html
        # The device's own reason, next to the fault it explains.
        assert "(media 3f2a (150.0 MiB) does not fit: 40.0 MiB free)" in html
        # The chart: inline SVG, a break where the device was silent.
        chart = html[html.index("<svg") : html.index("</svg>")]
        temperature = re.findall(
            r'<polyline points="[^"]+"[^>]*data-series="dv.chart.temperature"', chart
        )
        dots = re.findall(r'<circle [^>]*data-series="dv.chart.temperature"', chart)
        assert len(temperature) + len(dots) == 2, chart
        assert "Nhiệt độ (°C)" in html
        # Proof of play, newest first.
        plays = html[html.index('id="plays"') :]
        assert "Lịch tiêm chủng" in plays and "Đã phát xong" in plays and "2 phút" in plays
        assert "b-hacked" not in plays
        refused = html[html.index('id="refused-reports"') :]
        refused = refused[: refused.index("</p>")]
        assert "Bằng chứng phát bị từ chối: 1, lần gần nhất" in refused
        assert "không phải bản tin nào" in refused and "&#39;b-hacked&#39;" in refused
        assert 'data-reason="reports_refused"' in html
        assert 'id="cmd-test-tone"' in html and 'id="cmd-resync"' in html
        assert re.search(
            r'data-confirm="[^"]+"[^>]*>\s*<input[^>]*>\s*<input[^>]*value="stop"', html
        )

        async with speaker.socket() as socket:
            status, _, _ = await admin.post(
                f"/devices/{speaker.id}/commands", {"type": "test_tone"}, csrf=False
            )
            assert status == 403
            status, html, _ = await admin.post(
                f"/devices/{speaker.id}/commands", {"type": "set_volume", "volume": "150"}
            )
            assert status == 422
            assert "Âm lượng: hãy nhập một số nguyên từ 0 đến 100" in html
            assert 'value="150"' in html and 'aria-invalid="true"' in html
            status, html, _ = await admin.post(
                f"/devices/{speaker.id}/commands", {"type": "reboot"}
            )
            assert status == 422 and "Lệnh không hợp lệ" in html

            status, _, location = await admin.post(
                f"/devices/{speaker.id}/commands", {"type": "test_tone"}
            )
            assert status == 303
            # Neither refused command went out: the first one the agent gets is the tone.
            tone = await next_command(socket)
            assert tone.type == "test_tone"
            assert location == f"/devices/{speaker.id}?command={tone.command_id}#history"
            # Sent is not done: until the device answers, the page says it waits.
            _, page = await admin.get(location)
            assert "Đã gửi lệnh “Phát âm thử”, đang chờ thiết bị trả lời." in page
            assert 'data-status="sent"' in page and "dv-ok" not in page
            await socket.ack(tone.command_id, "refused", "emergency_on_air", "emergency b1")
            async with asyncio.timeout(10):
                await hub.app[CONNECTIONS].wait_answer(tone.command_id)
            # Reloading the same address shows the answer, and sends nothing again.
            _, page = await admin.get(location)
            assert "Thiết bị từ chối lệnh “Phát âm thử”:" in page
            assert "đang phát bản tin khẩn cấp (emergency b1)" in page
            _, fragment = await admin.get(
                f"/devices/{speaker.id}/commands?command={tone.command_id}"
            )
            assert 'data-status="refused"' in fragment and "<html" not in fragment

            status, _, _ = await admin.post(
                f"/devices/{speaker.id}/commands", {"type": "set_volume", "volume": "35"}
            )
            assert status == 303
            command = await next_command(socket)
            assert command.type == "set_volume" and command.volume == 35
            status, _, _ = await admin.post(f"/devices/{speaker.id}/commands", {"type": "stop"})
            assert status == 303
            assert (await next_command(socket)).type == "stop"

        # Not connected: the page says so plainly; nothing pretends to be queued.
        status, _, location = await admin.post(
            f"/devices/{speaker.id}/commands", {"type": "resync"}
        )
        assert status == 303 and location is not None
        _, page = await admin.get(location)
        assert "chưa tới được thiết bị" in page
        history = await hub.call("GET", f"/api/v1/devices/{speaker.id}/commands")
        assert [c["status"] for c in history] == ["undelivered", "sent", "sent", "refused"]
        assert [c["type"] for c in history] == ["resync", "stop", "set_volume", "test_tone"]
        assert {c["issued_by"] for c in history} == {ADMIN}
        assert history[3]["reason"] == "emergency_on_air"
        audit = await hub.call("GET", "/api/v1/audit")
        actions = [e["action"] for e in (audit["items"] if isinstance(audit, dict) else audit)]
        assert actions.count("device.command.set_volume") == 1

        status, page = await admin.get("/devices/no-such-device")
        assert status == 404 and "Không tìm thấy" in page
    finally:
        await admin.close()


async def test_commune_operator_is_confined_to_its_commune(hub: HubHarness) -> None:
    _speaker, board = await fleet(hub)
    own = await hub.enroll((await hub.device("00001", name="Loa chợ"))["enrollment_code"])
    operator = await browser(hub, "xa1", "commune_operator", "00001")
    try:
        _, listing = await operator.get("/devices")
        assert "Loa thôn Đông" in listing and "Bảng tin chợ" not in listing
        assert "Xã Mỹ An" not in listing
        status, html = await operator.get(f"/devices/{board['id']}")
        assert status == 403 and "Tài khoản của bạn không có quyền này." in html
        status, page = await operator.get(f"/devices/{own.id}")
        assert status == 200 and 'id="commands"' in page

        _, form = await operator.get("/devices/new")
        assert "00001" in form and "00002" not in form
        status, html, _ = await operator.post(
            "/devices/new", {"commune": "00002", "name": "Loa lạ", "kind": "speaker"}
        )
        assert status == 403 and "không có quyền" in html
        names = {d["name"] for d in await hub.call("GET", "/api/v1/devices")}
        assert "Loa lạ" not in names
        status, _, location = await operator.post(
            "/devices/new", {"commune": "00001", "name": "Loa mới", "kind": "speaker"}
        )
        assert status == 303 and location is not None
        _, html = await operator.get(location)
        assert CODE.search(html)

        await operator.get(f"/devices/{own.id}")
        for path, data in (
            (f"/devices/{board['id']}/commands", {"type": "test_tone"}),
            (f"/devices/{board['id']}/enrollment", {}),
        ):
            status, html, _ = await operator.post(path, data)
            assert status == 403, path
    finally:
        await operator.close()


# ---------------------------------------------------------------- a real browser


# Under CI a missing browser is a failure, not a skip.
@needs_chromium
async def test_browser_devices_walkthrough(hub: HubHarness) -> None:
    from playwright.async_api import Dialog, async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    speaker, _board = await fleet(hub)
    await hub.call(
        "POST",
        "/api/v1/users",
        json={
            "username": "kythuat",
            "role": "technician",
            "unit": "province",
            "password": "Temp-pass1!",
        },
        expect=201,
    )
    base = str(hub.client.make_url("/")).rstrip("/")

    async with speaker.socket() as socket, async_playwright() as pw:
        browser_ = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # A technician on a phone: a new slot and its code.
            context = await browser_.new_context(viewport={"width": 390, "height": 844})
            page = await context.new_page()
            page.set_default_timeout(5000)
            await page.goto(f"{base}/devices/new")
            await page.fill("input[name=username]", "kythuat")
            await page.fill("input[name=password]", "Temp-pass1!")
            await page.click("button[type=submit].primary")
            await page.fill("input[name=old_password]", "Temp-pass1!")
            await page.fill("input[name=new_password]", "Own-pass-2!")
            await page.fill("input[name=repeat_password]", "Own-pass-2!")
            await page.click("button[type=submit].primary")
            await expect(page).to_have_url(f"{base}/")
            await page.goto(f"{base}/devices")
            await page.click("#new-device")
            await expect(page).to_have_url(f"{base}/devices/new")
            await page.select_option("select[name=commune]", "00002")
            await page.fill("input[name=name]", "Bảng tin nhà văn hoá")
            await page.check("input[name=kind][value=board]")
            await page.select_option("select[name=profile]", "lcd-board-1080p")
            await page.screenshot(path=ARTIFACTS / "console-device-new-form.png", full_page=True)
            await page.click("#create")
            code = page.locator("#enrollment-code")
            await expect(code).to_have_text(re.compile(r"^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$"))
            text = await code.inner_text()
            await expect(page.locator("#enroll-command")).to_have_text(
                f"edge-agent enroll --hub {base} --code {text} --data /var/lib/loa/agent"
            )
            await page.screenshot(path=ARTIFACTS / "console-device-new.png", full_page=True)
            # A reload shows the same code again and creates no second slot.
            await page.reload()
            await expect(code).to_have_text(text)
            slots = await hub.call("GET", "/api/v1/devices?commune=00002")
            assert [d["name"] for d in slots].count("Bảng tin nhà văn hoá") == 1
            await context.close()

            # An admin at a desk: the table refreshes itself, then a device's page and a tone.
            context = await browser_.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            page.set_default_timeout(5000)
            await page.clock.install()
            await page.goto(f"{base}/login")
            await page.fill("input[name=username]", ADMIN)
            await page.fill("input[name=password]", ADMIN_PASSWORD)
            await page.click("button[type=submit].primary")
            await expect(page).to_have_url(f"{base}/")
            await page.goto(f"{base}/devices")
            rows = page.locator("#fleet-table tbody tr")
            await expect(rows).to_have_count(3)
            await expect(page.locator("#fleet-table")).not_to_contain_text("Loa hội trường")
            # A device added elsewhere shows up without a reload once the timer fires.
            await hub.device("00001", name="Loa hội trường")
            await page.clock.fast_forward(16_000)
            await expect(rows).to_have_count(4)
            await expect(page.locator("#fleet-table")).to_contain_text("Loa hội trường")
            # Left alone past half the idle limit it stops, so the session can still idle out;
            # any input starts it again.
            await page.clock.fast_forward(901_000)
            await expect(page.locator("#fleet-paused")).to_be_visible()
            await page.keyboard.press("Shift")
            await expect(page.locator("#fleet-paused")).to_be_hidden()
            await page.select_option("select[name=kind]", "board")
            await expect(page).to_have_url(re.compile(r"kind=board"))
            await expect(rows).to_have_count(2)
            await page.goto(f"{base}/devices")
            await page.screenshot(path=ARTIFACTS / "console-devices.png", full_page=True)

            await page.click(f"a[href='/devices/{speaker.id}']")
            await expect(page.locator("h1")).to_have_text("Loa thôn Đông")
            await expect(page.locator("#health")).to_contain_text("48,5 °C")
            dialogs: list[str] = []

            async def dismiss(dialog: Dialog) -> None:
                dialogs.append(dialog.message)
                await dialog.dismiss()

            page.on("dialog", dismiss)
            # Stop asks first; dismissed, nothing is sent.
            await page.click("#cmd-stop")
            assert dialogs == ["Dừng bản tin đang phát trên thiết bị này?"]
            await page.click("#cmd-test-tone")
            await expect(page.locator("#command-result")).to_contain_text("Phát âm thử")
            assert (await next_command(socket)).type == "test_tone"
            await page.screenshot(path=ARTIFACTS / "console-device.png", full_page=True)
        finally:
            await browser_.close()


async def test_enrollment_command_uses_the_hubs_public_address(tmp_path: Path) -> None:
    """Behind a TLS reverse proxy the browser's origin is the internal one: the configured
    public address is what a technician on the pole must type."""
    async with running_hub(tmp_path, public_url="https://loa.example.gov.vn/") as hub:
        await hub.commune("00001")
        tech = await browser(hub, "kythuat", "technician", "province")
        try:
            await tech.get("/devices/new")
            fields = {"commune": "00001", "name": "Loa", "kind": "speaker", "profile": ""}
            status, _, location = await tech.post("/devices/new", fields)
            assert status == 303 and location is not None
            _, html = await tech.get(location)
            found = CODE.search(html)
            assert found, html
            assert f"edge-agent enroll --hub https://loa.example.gov.vn --code {found[1]}" in html
        finally:
            await tech.close()
