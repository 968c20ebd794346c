"""The agent's LAN page: JSON controls and their guards, then the page itself in chromium."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.e2e import LiveHub, enroll_agent, headless, schedule, tone_bytes

headless()

from edge_agent.agent import TEST_TONE_ID, Agent  # noqa: E402
from edge_agent.local_auth import password_problems, set_local_user  # noqa: E402
from edge_agent.local_http import create_local_app  # noqa: E402
from edge_agent.players.base import PlayItem  # noqa: E402
from edge_agent.players.vlc import VlcPlayer  # noqa: E402
from loa_contract import Priority, utcnow  # noqa: E402
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, needs_chromium  # noqa: E402

USER = "canbo.xa"
PASSWORD = "Loa-Xa-2025!"
TIMEOUT = 15.0


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Device:
    hub: LiveHub
    agent: Agent
    url: str
    time: FakeTime
    audio_sha: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def device(tmp_path: Path) -> AsyncIterator[Device]:
    hub = LiveHub(tmp_path / "hub")
    await hub.start()
    await hub.add_commune("xa-l")
    agent = await enroll_agent(
        hub,
        tmp_path / "speaker",
        commune="xa-l",
        kind="speaker",
        profile="speaker-cluster",
        player=VlcPlayer(["--aout=dummy"]),
    )
    assert agent.store is not None
    await set_local_user(agent.store, USER, PASSWORD, n=2**4)
    fake = FakeTime()
    runner = web.AppRunner(create_local_app(agent, auth_clock=fake), access_log=None)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    audio = await hub.upload(tone_bytes(tmp_path, "bulletin", 6.0), "audio/wav")
    try:
        yield Device(hub, agent, f"http://127.0.0.1:{port}", fake, audio["sha256"])
    finally:
        await runner.cleanup()
        await agent.stop()
        await hub.close()


async def _call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Any]:
    async with session.request(method, url, headers=headers, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def _next_play(agent: Agent) -> PlayItem:
    return await asyncio.wait_for(agent.play_started.get(), TIMEOUT)


def test_password_rules_match_the_hub() -> None:
    assert password_problems("Loa-Xa-2025!") == []
    assert password_problems("short1!") and password_problems("alllowercase1!")
    assert password_problems("NoDigits!!") and password_problems("NoSpecial123")
    assert password_problems("Canbo-2025!", "canbo")


async def test_json_controls_need_a_login_and_name_bad_fields(device: Device) -> None:
    url, agent = device.url, device.agent
    async with aiohttp.ClientSession() as anon:
        status, body = await _call(anon, "GET", url + "/api/status")
        assert status == 200 and body["device_id"] == agent.identity.device_id
        assert {"recent_plays", "plays_by_day", "uptime_hours_by_day", "system"} <= set(body)
        for path in ("/api/volume", "/api/stop", "/api/test-tone", "/api/resync"):
            status, body = await _call(anon, "POST", url + path, json={"volume": 10})
            assert status == 401 and body["error"] == "login_required", path
        status, body = await _call(anon, "POST", url + "/api/login", json={"username": USER})
        assert status == 422 and body["detail"][0]["field"] == "password"
        status, body = await _call(
            anon, "POST", url + "/api/login", json={"username": USER, "password": "Wrong-pass1"}
        )
        assert status == 401 and body["error"] == "bad_credentials"

    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as staff:
        async with staff.post(
            url + "/api/login", json={"username": USER, "password": PASSWORD}
        ) as response:
            assert response.status == 200
            csrf = (await response.json())["csrf_token"]
            cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        # A session cookie alone is not enough: the CSRF token must come with it.
        status, body = await _call(staff, "POST", url + "/api/volume", json={"volume": 40})
        assert status == 403 and body["error"] == "csrf"
        token = {"X-CSRF-Token": csrf}
        status, body = await _call(
            staff, "POST", url + "/api/volume", json={"volume": 140}, headers=token
        )
        assert status == 422 and body["detail"][0]["field"] == "volume"
        status, body = await _call(staff, "POST", url + "/api/volume", data=b"{nope", headers=token)
        assert status == 400 and body["error"] == "bad_json"
        status, body = await _call(
            staff, "POST", url + "/api/volume", json={"volume": 40}, headers=token
        )
        assert status == 200 and agent.volume() == 40

        # Idle for over 30 minutes: the session is gone.
        device.time.now += 31 * 60
        status, body = await _call(
            staff, "POST", url + "/api/volume", json={"volume": 50}, headers=token
        )
        assert status == 401

    # Scripts may use HTTP Basic instead of a session.
    basic = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    async with aiohttp.ClientSession() as script:
        status, body = await _call(script, "POST", url + "/api/test-tone", headers=basic)
        assert status == 200, body
        item = await _next_play(agent)
        assert item.bulletin_id == TEST_TONE_ID
        status, body = await _call(script, "POST", url + "/api/resync", headers=basic)
        assert status == 200


async def test_the_page_names_the_commune(device: Device) -> None:
    """The hub's manifest carries the commune's name; the page says it, not its code."""
    agent = device.agent
    await agent.wait_until(lambda: agent.manifest is not None, TIMEOUT)
    assert agent.commune_name() == "Xã xa-l"
    async with aiohttp.ClientSession() as anon, anon.get(device.url + "/") as response:
        html = await response.text()
    sub = re.search(r'<p class="sub">(.*?)</p>', html, re.S)
    assert sub is not None and "Xã xa-l ·" in sub[1] and "Xã Xã" not in sub[1]


async def test_an_emergency_cannot_be_stopped_locally(device: Device) -> None:
    url, agent, hub = device.url, device.agent, device.hub
    emergency = await hub.call(
        "POST",
        "/api/v1/emergencies",
        json={"title": "Cảnh báo lũ", "media": device.audio_sha},
        expect=201,
    )
    item = await _next_play(agent)
    assert item.bulletin_id == emergency["id"] and item.priority is Priority.EMERGENCY
    basic = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    async with aiohttp.ClientSession() as script:
        status, body = await _call(
            script, "POST", url + "/api/stop?lang=en", headers=basic, json={}
        )
    assert status == 409 and body["error"] == "emergency_on_air"
    assert "province" in body["message"]
    now = agent.now_playing()
    assert now is not None and now.bulletin_id == emergency["id"]


async def test_five_failed_logins_lock_the_account_for_fifteen_minutes(device: Device) -> None:
    url = device.url
    async with aiohttp.ClientSession() as session:
        for _ in range(5):
            status, _ = await _call(
                session, "POST", url + "/api/login", json={"username": USER, "password": "x"}
            )
        assert status == 429
        good = {"username": USER, "password": PASSWORD}
        status, body = await _call(session, "POST", url + "/api/login", json=good)
        assert status == 429 and body["error"] == "locked"
        device.time.now += 15 * 60 + 1
        status, _ = await _call(session, "POST", url + "/api/login", json=good)
        assert status == 200


# ---------------------------------------------------------------- the page in a browser


def _browse(url: str, shots: Path) -> dict[str, Any]:
    """Drive chromium through the page (sync API: this runs in a worker thread)."""
    from playwright.sync_api import expect, sync_playwright

    seen: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(url + "/")
            expect(page.locator("h1")).to_have_text("Trạng thái thiết bị")
            expect(page.locator("#now-title")).not_to_be_empty()
            expect(page.locator("#clock-badge")).to_have_text("Tin cậy")
            # The hub node in use: the enrolled one, so no standby note.
            expect(page.locator("#hub")).to_have_text(re.compile(r"^http://127\.0\.0\.1:\d+$"))
            # Read-only: no controls without a login, and the API refuses them.
            expect(page.locator("#stop-button")).to_have_count(0)
            seen["refused"] = page.evaluate(
                """async () => {
                    const r = await fetch('/api/stop', {method: 'POST'});
                    return [r.status, (await r.json()).message];
                }"""
            )
            # The page refreshes itself: the "updated" stamp changes without a reload.
            first = page.locator("body").get_attribute("data-updated")
            page.wait_for_function(
                "(first) => document.body.dataset.updated !== first", arg=first, timeout=10000
            )
            page.screenshot(path=str(shots / "local-page-readonly-vi.png"), full_page=True)

            page.click("#login-link")
            page.fill("#username", USER)
            page.fill("#password", PASSWORD)
            page.click("#login-form button[type=submit]")
            expect(page.locator("#stop-button")).to_be_visible()
            page.fill("#volume-input", "55")
            page.click("#volume-form button[type=submit]")
            expect(page.locator("#flash")).to_have_text("Đã đặt âm lượng 55.")
            expect(page.locator("#volume")).to_have_text("55%")
            page.click("#test-tone-button")
            expect(page.locator("#flash")).to_have_text("Đang phát tiếng thử loa.")
            page.screenshot(path=str(shots / "local-page-controls-vi.png"), full_page=True)

            page.goto(url + "/?lang=en")
            expect(page.locator("h1")).to_have_text("Device status")
            page.goto(url + "/")  # the cookie remembers the choice
            expect(page.locator("h1")).to_have_text("Device status")
            page.screenshot(path=str(shots / "local-page-en.png"), full_page=True)

            phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
            phone.goto(url + "/?lang=vi")
            expect(phone.locator("#clock-badge")).not_to_be_empty()
            seen["phone_overflow"] = phone.evaluate(
                "document.documentElement.scrollWidth > window.innerWidth"
            )
            phone.screenshot(path=str(shots / "local-page-phone-vi.png"), full_page=True)
        finally:
            browser.close()
    return seen


@needs_chromium
async def test_the_page_in_chromium(device: Device, tmp_path: Path) -> None:
    url, agent, hub = device.url, device.agent, device.hub
    published = await hub.publish(
        {
            "title": "Thông báo tiêm phòng dại cho chó, mèo",
            "kind": "audio",
            "priority": "normal",
            "media": device.audio_sha,
            "targets": {"communes": ["xa-l"]},
            "schedule": schedule(utcnow()),
        }
    )
    item = await _next_play(agent)
    assert item.bulletin_id == published["id"]
    ARTIFACTS.mkdir(exist_ok=True)
    seen = await asyncio.to_thread(_browse, url, ARTIFACTS)
    status, message = seen["refused"]
    assert status == 401 and message == "Cần đăng nhập để thực hiện thao tác này."
    assert seen["phone_overflow"] is False
    assert agent.volume() == 55
    played = []
    while not agent.play_started.empty():
        played.append(agent.play_started.get_nowait().bulletin_id)
    assert TEST_TONE_ID in played
