"""Operator commands answered by a real agent: applied, or refused with its reason (an
emergency on air refuses a test tone), stored by the hub and shown on the device's page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, needs_chromium
from tests.e2e import ADMIN, ADMIN_PASSWORD, LiveHub, enroll_agent, headless, live_hub, tone_bytes
from tests.e2e import window_around as window

headless()

from edge_agent.agent import Agent  # noqa: E402
from edge_agent.players.vlc import VlcPlayer  # noqa: E402
from hub.appkeys import CONNECTIONS  # noqa: E402
from loa_contract import Priority, utcnow  # noqa: E402

TIMEOUT = 20.0


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as live:
        yield live


async def command(hub: LiveHub, agent: Agent, body: dict[str, Any]) -> dict[str, Any]:
    """Send a command through the API and wait for the agent's answer to be stored."""
    device_id = agent.identity.device_id
    sent = await hub.call("POST", f"/api/v1/devices/{device_id}/commands", json=body, expect=202)
    assert sent["status"] == "sent" and sent["delivered"] is True
    async with asyncio.timeout(TIMEOUT):
        await hub.app[CONNECTIONS].wait_answer(sent["command_id"])
    answered: dict[str, Any] = await hub.call(
        "GET", f"/api/v1/devices/{device_id}/commands/{sent['command_id']}"
    )
    return answered


@needs_chromium
async def test_a_real_agent_answers_and_refuses_a_tone_during_an_emergency(
    hub: LiveHub, tmp_path: Path
) -> None:
    await hub.add_commune("xa-a", speaker=[window(utcnow())], board=[window(utcnow())])
    speaker = await enroll_agent(
        hub,
        tmp_path / "speaker",
        commune="xa-a",
        kind="speaker",
        profile="speaker-cluster",
        player=VlcPlayer(["--aout=dummy"]),
    )
    try:
        await speaker.wait_until(speaker.status_connected, TIMEOUT)
        volume = await command(hub, speaker, {"type": "set_volume", "volume": 40})
        assert volume["status"] == "applied" and volume["reason"] is None
        assert speaker.volume() == 40

        idle_tone = await command(hub, speaker, {"type": "test_tone"})
        assert idle_tone["status"] == "applied"
        await speaker.wait_until(lambda: speaker.now_playing() is None, TIMEOUT)

        alarm = await hub.upload(tone_bytes(tmp_path, "alarm", 30.0, 880.0), "audio/wav")
        emergency = await hub.call(
            "POST",
            "/api/v1/emergencies",
            json={"title": "Cảnh báo lũ", "media": alarm["sha256"], "repeats": 1},
            expect=201,
        )

        def on_air() -> bool:
            playing = speaker.now_playing()
            return playing is not None and playing.priority is Priority.EMERGENCY

        await speaker.wait_until(on_air, TIMEOUT)
        refused = await command(hub, speaker, {"type": "test_tone"})
        assert refused["status"] == "refused"
        assert refused["reason"] == "emergency_on_air"
        assert emergency["id"] in refused["detail"]
        assert on_air(), "the refused tone did not touch the emergency"

        resync = await command(hub, speaker, {"type": "resync"})
        assert resync["status"] == "applied"

        history = await hub.call("GET", f"/api/v1/devices/{speaker.identity.device_id}/commands")
        assert [c["status"] for c in history] == ["applied", "refused", "applied", "applied"]
        assert [c["type"] for c in history] == ["resync", "test_tone", "test_tone", "set_volume"]

        await browser_shows_the_refusal(hub, speaker)
        # Stop is the province's word: it ends even the emergency's airing, and says so.
        stop = await command(hub, speaker, {"type": "stop"})
        assert stop["status"] == "applied"
    finally:
        await speaker.stop()


async def browser_shows_the_refusal(hub: LiveHub, speaker: Agent) -> None:
    """At a desk and on a phone: the tone is sent, the page waits, then shows the refusal."""
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    device_id = speaker.identity.device_id
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width, height in ((1366, 768), (390, 844)):
                context = await browser.new_context(viewport={"width": width, "height": height})
                page = await context.new_page()
                page.set_default_timeout(int(TIMEOUT * 1000))
                await page.goto(f"{hub.url}/login")
                await page.fill("input[name=username]", ADMIN)
                await page.fill("input[name=password]", ADMIN_PASSWORD)
                await page.click("button[type=submit].primary")
                await expect(page).to_have_url(f"{hub.url}/")
                await page.goto(f"{hub.url}/devices/{device_id}")
                await page.click("#cmd-test-tone")
                result = page.locator("#command-result")
                # The answer arrives on its own (the history refreshes itself): no reload.
                await expect(result).to_have_attribute("data-status", "refused")
                await expect(result).to_contain_text("Thiết bị từ chối lệnh “Phát âm thử”")
                await expect(result).to_contain_text("đang phát bản tin khẩn cấp")
                await expect(page.locator("#command-history-table tbody tr")).not_to_have_count(0)
                wide = await page.evaluate("document.documentElement.scrollWidth")
                assert wide <= width, f"the device page is {wide} px wide at {width} px"
                await page.screenshot(
                    path=ARTIFACTS / f"console-command-refused-{width}.png", full_page=True
                )
                await context.close()
        finally:
            await browser.close()
