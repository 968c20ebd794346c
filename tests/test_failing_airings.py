"""A loudspeaker whose sound card is gone, end to end: a real hub on 127.0.0.1 and a speaker
running the real agent core with real libVLC, its ALSA output pointed at a card that does not
exist (`hw:9,9`: what an unplugged USB card or a dead codec looks like to libVLC).

libVLC plays on in silence when its output cannot open, to Playing and Ended as if all were
well. Before this was caught, every screen said "ok" and each airing was credited as heard.
And with an emergency aired every 0 s until cancelled, a failing airing came back at once,
so a dead output was retried in a loop, a failed play written each time; with a number of
airings, failures used them up, and a card back in place later aired nothing.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from itertools import pairwise
from pathlib import Path

import pytest
from aiohttp import web

from edge_agent.local_http import create_local_app
from edge_agent.players.vlc import VlcPlayer
from edge_agent.scheduler import failure_backoff
from hub.appkeys import CONNECTIONS
from loa_contract import PlayOutcome
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, needs_chromium
from tests.e2e import LiveHub, enroll_agent, live_hub, tone_bytes

TIMEOUT = 20.0


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as live:
        yield live


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _faults_on_the_page(url: str, shot: Path) -> dict[str, str]:
    """What the local page's faults card says (sync API: this runs in a worker thread)."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(url + "/")
            item = page.locator("#fault-list li[data-fault=audio_output_failed]")
            expect(item).to_have_count(1)
            page.screenshot(path=str(shot), full_page=True)
            vietnamese = item.inner_text()
            # Tries that were not heard are not airings: the day's count leaves them out.
            expect(page.locator("#plays-today")).to_have_text("Lượt phát hôm nay: 0")
            page.goto(url + "/?lang=en")
            english = page.locator("#fault-list li[data-fault=audio_output_failed]").inner_text()
            return {"vi": vietnamese, "en": english}
        finally:
            browser.close()


@needs_chromium
@pytest.mark.parametrize(
    "airings",
    [
        # Once: a failure is not an airing heard, so it is tried again (not "done").
        {"repeats": 1},
        # Every 0 s until cancelled: each failure used to come back at once, in a loop.
        {"until_cancelled": True, "interval_s": 0},
    ],
)
async def test_a_speaker_without_its_sound_card_says_so_and_credits_nothing(
    hub: LiveHub, tmp_path: Path, airings: dict[str, object]
) -> None:
    await hub.add_commune("xa-f")
    speaker = await enroll_agent(
        hub,
        tmp_path / "speaker",
        commune="xa-f",
        kind="speaker",
        profile="speaker-cluster",
        player=VlcPlayer(["--aout=alsa", "--alsa-audio-device=hw:9,9"]),
        health_interval_s=0.5,
    )
    device_id = speaker.identity.device_id
    try:
        await speaker.wait_until(speaker.status_connected, TIMEOUT)
        alarm = await hub.upload(tone_bytes(tmp_path, "alarm", 2.0, 880.0), "audio/wav")
        emergency = await hub.call(
            "POST",
            "/api/v1/emergencies",
            json={"title": "Cảnh báo lũ", "media": alarm["sha256"], **airings},
            expect=201,
        )
        bulletin_id = emergency["id"]
        programme = speaker.programme
        await speaker.wait_until(lambda: programme.failures.get(bulletin_id, 0) >= 3, TIMEOUT)

        assert speaker.store is not None
        plays = sorted(
            (p for p in await speaker.store.recent_plays(500) if p.bulletin_id == bulletin_id),
            key=lambda p: p.started_at,
        )
        # Three tries, not hundreds: each waits out its hold, 2 s then 4 s.
        assert [p.outcome for p in plays] == [PlayOutcome.FAILED] * 3
        for n, (before, after) in enumerate(pairwise(plays), start=1):
            assert after.started_at - before.ended_at >= failure_backoff(n)

        async def reported() -> bool:
            device = await hub.call("GET", f"/api/v1/devices/{device_id}")
            return "audio_output_failed" in device["verdict_reasons"]

        await speaker.wait_until(reported, TIMEOUT)
        device = await hub.call("GET", f"/api/v1/devices/{device_id}")
        assert device["verdict"] == "fault"
        assert "hw:9,9" in device["health"]["fault_details"]["audio_output_failed"]

        async def failures_reached_the_hub() -> bool:
            got = await hub.call("GET", f"/api/v1/plays?device={device_id}")
            return len(got) >= 3

        await speaker.wait_until(failures_reached_the_hub, TIMEOUT)
        got = await hub.call("GET", f"/api/v1/plays?device={device_id}")
        assert {p["outcome"] for p in got} == {"failed"}, "nothing unheard is credited"

        # And the commune's technician at the device sees it too, in their words.
        runner = web.AppRunner(create_local_app(speaker), access_log=None)
        await runner.setup()
        port = _free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / f"local-page-audio-fault-{len(airings)}.png"
            said = await asyncio.to_thread(_faults_on_the_page, f"http://127.0.0.1:{port}", shot)
        finally:
            await runner.cleanup()
        assert said["vi"].startswith("Không phát được ra loa") and "hw:9,9" in said["vi"]
        assert said["en"].startswith("The sound card could not be opened")
    finally:
        await speaker.stop()


async def test_a_test_tone_into_a_dead_card_is_answered_as_failed(
    hub: LiveHub, tmp_path: Path
) -> None:
    """The technician's own check: libVLC says "playing" before it knows the sound is lost,
    so the answer waits for the tone to be heard out, or to fail."""
    await hub.add_commune("xa-t")
    speaker = await enroll_agent(
        hub,
        tmp_path / "speaker",
        commune="xa-t",
        kind="speaker",
        profile="speaker-cluster",
        player=VlcPlayer(["--aout=alsa", "--alsa-audio-device=hw:9,9"]),
    )
    device_id = speaker.identity.device_id
    try:
        await speaker.wait_until(speaker.status_connected, TIMEOUT)
        sent = await hub.call(
            "POST", f"/api/v1/devices/{device_id}/commands", json={"type": "test_tone"}, expect=202
        )
        async with asyncio.timeout(TIMEOUT):
            await hub.app[CONNECTIONS].wait_answer(sent["command_id"])
        answer = await hub.call("GET", f"/api/v1/devices/{device_id}/commands/{sent['command_id']}")
        assert (answer["status"], answer["reason"]) == ("refused", "play_failed"), answer
        assert "hw:9,9" in answer["detail"]
        assert speaker.programme.current is None
    finally:
        await speaker.stop()
