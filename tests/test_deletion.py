"""Deleting what was never published: drafts (and returned bulletins) and unused media, over
the API with its permission checks and in the console behind a confirmation step; published
bulletins are cancelled, never deleted."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_agent.tone import write_tone
from hub.media import media_path
from hub.testing import HubHarness, running_hub
from loa_contract import VN_TZ
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ConsoleSession, needs_chromium

PASSWORD = "Own-pass-2!"
LONG_TEXT = " ".join(["Thông báo lịch tiêm chủng cho trẻ em trong xã."] * 40)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001", name="Xã Tân Phước")
        yield harness


def body(**kw: Any) -> dict[str, Any]:
    now = datetime.now(VN_TZ)
    return {
        "title": "Tin",
        "kind": "text",
        "priority": "normal",
        "text": LONG_TEXT,
        "category": "other",
        "targets": {"communes": ["00001"]},
        "schedule": {
            "valid_from": (now - timedelta(minutes=1)).isoformat(),
            "valid_until": (now + timedelta(days=1)).isoformat(),
        },
        **kw,
    }


async def wav(tmp_path: Path, frequency: float) -> bytes:
    path = await asyncio.to_thread(
        write_tone, tmp_path / f"tone-{frequency}.wav", frequency=frequency, seconds=0.5
    )
    return await asyncio.to_thread(path.read_bytes)


async def audit_actions(hub: HubHarness) -> list[str]:
    audit = await hub.call("GET", "/api/v1/audit?limit=200")
    return [e["action"] for e in (audit["items"] if isinstance(audit, dict) else audit)]


async def test_only_never_published_bulletins_are_deleted_and_only_by_their_unit(
    hub: HubHarness,
) -> None:
    agency = await hub.user("bt.soyte", "contributor", "so-yte")
    other = await hub.user("bt.nn", "contributor", "so-nn")
    viewer = await hub.user("xem", "viewer", "province")
    reviewer = await hub.user("tt.lan", "reviewer")
    draft = await agency.call("POST", "/api/v1/bulletins", json=body(title="Nháp"), expect=201)
    returned = await agency.call("POST", "/api/v1/bulletins", json=body(title="Trả"), expect=201)
    await agency.call("POST", f"/api/v1/bulletins/{returned['id']}/submit")
    await reviewer.call(
        "POST", f"/api/v1/bulletins/{returned['id']}/return", json={"comment": "Sửa lại"}
    )
    submitted = await agency.call("POST", "/api/v1/bulletins", json=body(title="Gửi"), expect=201)
    await agency.call("POST", f"/api/v1/bulletins/{submitted['id']}/submit")
    published = await hub.call("POST", "/api/v1/bulletins", json=body(title="Phát"), expect=201)
    await hub.call("POST", f"/api/v1/bulletins/{published['id']}/publish")

    # Another agency, a viewer: refused, nothing changes.
    refused = await other.call("DELETE", f"/api/v1/bulletins/{draft['id']}", expect=403)
    assert refused["error"] == "out_of_scope"
    await viewer.call("DELETE", f"/api/v1/bulletins/{draft['id']}", expect=403)
    # Under review or published: refused with the way forward.
    under_review = await agency.call("DELETE", f"/api/v1/bulletins/{submitted['id']}", expect=409)
    assert "under review" in under_review["detail"]
    cancel_instead = await hub.call("DELETE", f"/api/v1/bulletins/{published['id']}", expect=409)
    assert "cancel it instead" in cancel_instead["detail"]
    assert (await hub.call("GET", f"/api/v1/bulletins/{published['id']}"))["state"] == "published"

    for bulletin in (draft, returned):
        gone = await agency.call("DELETE", f"/api/v1/bulletins/{bulletin['id']}")
        assert gone == {"id": bulletin["id"], "deleted": True}
        await agency.call("GET", f"/api/v1/bulletins/{bulletin['id']}", expect=404)
        await agency.call("DELETE", f"/api/v1/bulletins/{bulletin['id']}", expect=404)
    listed = {b["title"] for b in await agency.call("GET", "/api/v1/bulletins")}
    assert listed == {"Gửi"}
    assert {b["title"] for b in await hub.call("GET", "/api/v1/bulletins")} == {"Gửi", "Phát"}
    assert (await audit_actions(hub)).count("bulletin.delete") == 2


async def test_unused_media_is_deleted_used_media_is_kept(hub: HubHarness, tmp_path: Path) -> None:
    agency = await hub.user("bt.soyte", "contributor", "so-yte")
    other = await hub.user("bt.nn", "contributor", "so-nn")
    shared_bytes = await wav(tmp_path, 440.0)
    shared = (await agency.upload(shared_bytes, "audio/wav"))["sha256"]
    await other.upload(shared_bytes, "audio/wav")
    lone = (await agency.upload(await wav(tmp_path, 660.0), "audio/wav"))["sha256"]
    file = media_path(hub.config.media_dir, lone)
    assert file.exists()

    draft = await agency.call(
        "POST",
        "/api/v1/bulletins",
        json=body(kind="audio", text=None, media=lone, title="Âm thanh"),
        expect=201,
    )
    in_use = await agency.call("DELETE", f"/api/v1/media/{lone}", expect=409)
    assert in_use["error"] == "media_in_use"
    # Not this unit's upload: the same 404 as a download, nothing learnt.
    await other.call("DELETE", f"/api/v1/media/{lone}", expect=404)
    await agency.call("DELETE", f"/api/v1/media/{'0' * 64}", expect=404)
    await agency.call("DELETE", "/api/v1/media/not-a-sha", expect=404)

    # Deleting the draft frees its file.
    await agency.call("DELETE", f"/api/v1/bulletins/{draft['id']}")
    removed = await agency.call("DELETE", f"/api/v1/media/{lone}")
    assert removed == {"sha256": lone, "removed": True}
    assert not file.exists()
    await hub.call("GET", f"/api/v1/media/{lone}", expect=404)

    # Bytes two units uploaded: one unit's delete ends only its own hold on them.
    kept = await agency.call("DELETE", f"/api/v1/media/{shared}")
    assert kept == {"sha256": shared, "removed": False}
    await agency.call("GET", f"/api/v1/media/{shared}", expect=404)
    await other.call("GET", f"/api/v1/media/{shared}")
    assert media_path(hub.config.media_dir, shared).exists()
    assert (await audit_actions(hub)).count("media.delete") == 2

    # A published bulletin keeps its file for good.
    published = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json=body(kind="audio", text=None, media=shared, title="Phát"),
        expect=201,
    )
    await hub.call("POST", f"/api/v1/bulletins/{published['id']}/publish")
    await hub.call("DELETE", f"/api/v1/media/{shared}", expect=409)


async def test_console_deletes_after_a_confirmation_step(hub: HubHarness, tmp_path: Path) -> None:
    author = await hub.user("bt.soyte", "contributor", "so-yte", new_password=PASSWORD)
    agency = ConsoleSession(hub)
    await agency.login("bt.soyte", PASSWORD)
    try:
        uploaded = await author.upload(await wav(tmp_path, 550.0), "audio/wav")
        draft = await author.call(
            "POST", "/api/v1/bulletins", json=body(title="Nháp bỏ"), expect=201
        )
        _, page = await agency.get(f"/bulletins/{draft['id']}")
        assert 'id="delete"' in page and f'href="/bulletins/{draft["id"]}/delete"' in page
        # The link only asks; the GET deletes nothing.
        status, confirm = await agency.get(f"/bulletins/{draft['id']}/delete")
        assert status == 200 and "Nháp bỏ" in confirm and 'id="confirm"' in confirm
        await hub.call("GET", f"/api/v1/bulletins/{draft['id']}")
        status, _, _ = await agency.post(f"/bulletins/{draft['id']}/delete", {}, csrf=False)
        assert status == 403
        status, _, location = await agency.post(f"/bulletins/{draft['id']}/delete", {})
        assert status == 303 and location == "/bulletins?deleted=1"
        _, listing = await agency.get(location)
        assert "Đã xoá bản nháp." in listing and "Nháp bỏ" not in listing
        # A reload of the answer re-posts nothing: the 303 led to a GET.
        status, _ = await agency.get(f"/bulletins/{draft['id']}")
        assert status == 404

        status, library = await agency.get("/bulletins/media")
        assert status == 200 and uploaded["sha256"][:12] in library and "Chưa dùng" in library
        delete_link = f"/bulletins/media/{uploaded['sha256']}/delete"
        assert delete_link in library
        _, confirm = await agency.get(delete_link)
        assert "Không bản tin nào dùng tệp này" in confirm
        status, _, location = await agency.post(delete_link, {})
        assert status == 303 and location == "/bulletins/media?deleted=1"
        _, library = await agency.get(location)
        assert "Đã xoá tệp." in library and uploaded["sha256"][:12] not in library
    finally:
        await agency.close()


@needs_chromium
async def test_browser_deletes_a_draft_at_both_sizes(hub: HubHarness) -> None:
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    await hub.user("bt.soyte", "contributor", "so-yte", new_password=PASSWORD)
    author = HubHarness(hub.client, hub.config)
    await author.login("bt.soyte", PASSWORD)
    base = str(hub.client.make_url("/")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width, height in ((1366, 768), (390, 844)):
                draft = await author.call(
                    "POST", "/api/v1/bulletins", json=body(title=f"Nháp {width}"), expect=201
                )
                context = await browser.new_context(viewport={"width": width, "height": height})
                page = await context.new_page()
                page.set_default_timeout(10_000)
                await page.goto(f"{base}/login")
                await page.fill("input[name=username]", "bt.soyte")
                await page.fill("input[name=password]", PASSWORD)
                await page.click("button[type=submit].primary")
                await page.goto(f"{base}/bulletins/{draft['id']}")
                await page.click("#delete")
                await expect(page.locator("#delete-what")).to_have_text(f"Nháp {width}")
                wide = await page.evaluate("document.documentElement.scrollWidth")
                assert wide <= width, f"the confirmation is {wide} px wide at {width} px"
                await page.screenshot(
                    path=ARTIFACTS / f"console-delete-confirm-{width}.png", full_page=True
                )
                await page.click("#confirm")
                await expect(page).to_have_url(re.compile(r"/bulletins\?deleted=1$"))
                await expect(page.locator("#deleted-notice")).to_be_visible()
                await page.reload()  # a GET: nothing is posted again
                await expect(page.locator("#deleted-notice")).to_be_visible()
                await page.goto(f"{base}/bulletins/media")
                wide = await page.evaluate("document.documentElement.scrollWidth")
                assert wide <= width, f"the file list is {wide} px wide at {width} px"
                await context.close()
        finally:
            await browser.close()
