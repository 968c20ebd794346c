"""Device groups: created, filled and listed within the caller's scope; a command to a group
is one batch whose every device's answer is tracked, over the API and in the console."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.appkeys import CONNECTIONS
from hub.testing import ADMIN, ADMIN_PASSWORD, DeviceSocket, HubHarness, running_hub
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ConsoleSession, needs_chromium


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001", name="Xã Tân Phước")
        await harness.commune("00002", name="Xã Hoà Bình")
        yield harness


async def operator_command(socket: DeviceSocket) -> Any:
    """The next operator command, past the manifest nudges the hub sends on connect."""
    while True:
        command = await socket.command()
        if command.type != "manifest_ready":
            return command


async def answered(hub: HubHarness, *command_ids: str) -> None:
    async with asyncio.timeout(10):
        for command_id in command_ids:
            await hub.app[CONNECTIONS].wait_answer(command_id)


async def test_groups_are_scoped_and_a_group_command_tracks_each_device(hub: HubHarness) -> None:
    east = await hub.new_device("00001")
    west = await hub.new_device("00001")
    quiet = await hub.new_device("00001")  # never connects
    other = await hub.new_device("00002")
    operator = await hub.user("xa1.op", "commune_operator", "00001")
    viewer = await hub.user("xem", "viewer", "province")

    # A commune operator's group is its own commune's; another commune's is refused.
    own = await operator.call(
        "POST", "/api/v1/device-groups", json={"name": "Ven sông"}, expect=201
    )
    assert own["commune"] == "00001" and own["devices"] == 0
    await operator.call(
        "POST", "/api/v1/device-groups", json={"name": "Lạ", "commune": "00002"}, expect=403
    )
    await viewer.call("POST", "/api/v1/device-groups", json={"name": "Xem"}, expect=403)
    await hub.call("POST", "/api/v1/device-groups", json={"name": " "}, expect=422)
    province = await hub.call(
        "POST", "/api/v1/device-groups", json={"name": "Toàn tỉnh"}, expect=201
    )
    assert province["commune"] is None
    assert [g["name"] for g in await operator.call("GET", "/api/v1/device-groups")] == ["Ven sông"]
    assert [g["name"] for g in await hub.call("GET", "/api/v1/device-groups")] == [
        "Toàn tỉnh",
        "Ven sông",
    ]
    await operator.call("GET", f"/api/v1/device-groups/{province['id']}", expect=404)

    # Members: only devices of the group's commune, each named when refused.
    refused = await operator.call(
        "PUT",
        f"/api/v1/device-groups/{own['id']}/devices",
        json={"devices": [east.id, other.id, "no-such"]},
        expect=422,
    )
    assert [d["field"] for d in refused["detail"]] == ["devices[1]", "devices[2]"]
    filled = await operator.call(
        "PUT",
        f"/api/v1/device-groups/{own['id']}/devices",
        json={"devices": [east.id, west.id, quiet.id, east.id]},
    )
    assert sorted(filled["members"]) == sorted([east.id, west.id, quiet.id])
    assert filled["devices"] == 3
    await hub.call(
        "PUT",
        f"/api/v1/device-groups/{province['id']}/devices",
        json={"devices": [east.id, other.id]},
    )

    async with east.socket() as east_ws, west.socket() as west_ws:
        sent = await operator.call(
            "POST",
            f"/api/v1/device-groups/{own['id']}/commands",
            json={"type": "test_tone"},
            expect=202,
        )
        by_device = {r["device_id"]: r for r in sent["results"]}
        assert {d: r["status"] for d, r in by_device.items()} == {
            east.id: "sent",
            west.id: "sent",
            quiet.id: "undelivered",
        }
        east_tone, west_tone = await operator_command(east_ws), await operator_command(west_ws)
        assert east_tone.command_id != west_tone.command_id  # each device its own command
        await east_ws.ack(east_tone.command_id, "applied")
        await west_ws.ack(west_tone.command_id, "refused", "emergency_on_air", "e1 on air")
        await answered(hub, east_tone.command_id, west_tone.command_id)
    batch = await operator.call(
        "GET", f"/api/v1/device-groups/{own['id']}/commands?batch={sent['batch_id']}"
    )
    assert {c["device_id"]: (c["status"], c["reason"]) for c in batch} == {
        east.id: ("applied", None),
        west.id: ("refused", "emergency_on_air"),
        quiet.id: ("undelivered", "offline"),
    }
    assert {c["batch_id"] for c in batch} == {sent["batch_id"]}
    # The same commands in each device's own history.
    [east_history] = await hub.call("GET", f"/api/v1/devices/{east.id}/commands")
    assert east_history["group_id"] == own["id"] and east_history["status"] == "applied"

    # A province group commanded by a commune operator would reach only its own devices; it
    # cannot even see that group.
    await operator.call(
        "POST",
        f"/api/v1/device-groups/{province['id']}/commands",
        json={"type": "resync"},
        expect=404,
    )
    await viewer.call(
        "POST", f"/api/v1/device-groups/{own['id']}/commands", json={"type": "resync"}, expect=403
    )
    deleted = await operator.call("DELETE", f"/api/v1/device-groups/{own['id']}")
    assert deleted["id"] == own["id"]
    await operator.call("GET", f"/api/v1/device-groups/{own['id']}", expect=404)
    # The devices keep their command history.
    assert len(await hub.call("GET", f"/api/v1/devices/{west.id}/commands")) == 1


async def test_console_groups_create_fill_and_command(hub: HubHarness) -> None:
    east = await hub.new_device("00001")
    west = await hub.new_device("00001")
    admin = ConsoleSession(hub)
    await admin.login(ADMIN, ADMIN_PASSWORD)
    try:
        status, page = await admin.get("/devices/groups")
        assert status == 200 and "Chưa có nhóm nào." in page
        status, _, location = await admin.post("/devices/groups", {"name": "", "commune": ""})
        assert status == 303 and location == "/devices/groups?error=name"
        assert await hub.call("GET", "/api/v1/device-groups") == []
        status, _, location = await admin.post(
            "/devices/groups", {"name": "Loa ven sông", "commune": "00001"}
        )
        assert status == 303 and location is not None
        group_id = location.rsplit("/", 1)[1]
        status, page = await admin.get(location)
        assert status == 200 and "Loa ven sông" in page and 'name="device"' in page
        status, _, saved = await admin.post(
            f"/devices/groups/{group_id}/devices", [("device", east.id), ("device", west.id)]
        )
        assert status == 303 and saved == f"/devices/groups/{group_id}?saved=1"
        _, device_page = await admin.get(f"/devices/{east.id}")
        assert f'<a href="/devices/groups/{group_id}">Loa ven sông</a>' in device_page
        async with east.socket() as east_ws:
            _, page = await admin.get(saved)
            assert 'id="group-test-tone"' in page
            status, _, batch_page = await admin.post(
                f"/devices/groups/{group_id}/commands", {"type": "test_tone"}
            )
            assert status == 303 and batch_page is not None and "?batch=" in batch_page
            tone = await operator_command(east_ws)
            await east_ws.ack(tone.command_id, "applied")
            await answered(hub, tone.command_id)
            _, page = await admin.get(batch_page)
            assert "Lệnh “Phát âm thử”: 2 / 2 thiết bị đã có kết quả." in page
            batch = re.search(r'data-refresh="([^"]+)"', page)
            assert batch is not None
            _, fragment = await admin.get(batch[1].replace("&amp;", "&"))
            assert 'data-status="applied"' in fragment and 'data-status="undelivered"' in fragment
    finally:
        await admin.close()


@needs_chromium
async def test_browser_group_command_at_both_sizes(hub: HubHarness) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    device = await hub.new_device("00001")
    base = str(hub.client.make_url("/")).rstrip("/")
    async with device.socket() as socket, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width, height in ((1366, 768), (390, 844)):
                context = await browser.new_context(viewport={"width": width, "height": height})
                page = await context.new_page()
                page.set_default_timeout(10_000)
                await page.goto(f"{base}/login")
                await page.fill("input[name=username]", ADMIN)
                await page.fill("input[name=password]", ADMIN_PASSWORD)
                await page.click("button[type=submit].primary")
                await page.goto(f"{base}/devices")
                await page.click("#device-groups")
                await page.fill("#group-create input[name=name]", f"Nhóm {width}")
                await page.select_option("#group-create select[name=commune]", "00001")
                await page.click("#create-group")
                await page.check(f"input[name=device][value='{device.id}']")
                await page.click("#save-members")
                await expect(page.locator("#saved")).to_be_visible()
                await page.click("#group-resync")
                resync = await operator_command(socket)
                summary = page.locator("#batch-summary")
                await expect(summary).to_have_attribute("data-answered", "0")
                await socket.ack(resync.command_id, "applied")
                # The answer shows up without a reload (the batch refreshes itself).
                await expect(summary).to_have_attribute("data-answered", "1")
                await expect(page.locator(f"tr[data-device='{device.id}']")).to_contain_text(
                    "Đã thực hiện"
                )
                wide = await page.evaluate("document.documentElement.scrollWidth")
                assert wide <= width, f"the group page is {wide} px wide at {width} px"
                await page.screenshot(path=ARTIFACTS / f"console-group-{width}.png", full_page=True)
                await context.close()
        finally:
            await browser.close()
