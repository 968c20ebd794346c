"""A bulletin's airings from proof of play (where, how often, how long), and the search over
bulletins' title and text with or without Vietnamese diacritics."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.airings import summarize
from hub.appkeys import DB
from hub.bulletins import fold_older_bulletins
from hub.domain.folding import fold, like_pattern, search_terms
from hub.store.reports import Play
from hub.testing import EnrolledDevice, HubHarness, running_hub
from loa_contract import BulletinKind, PlayOutcome, Priority
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ConsoleSession, needs_chromium
from tests.console_world import OWN_PASSWORD, bulletin

# ================================================================ folding


def test_fold_drops_every_vietnamese_mark() -> None:
    assert fold("Tiêm phòng dại cho chó, mèo") == "tiem phong dai cho cho, meo"
    assert fold("ĐƯỜNG ĐI  Đồng   ruộng") == "duong di dong ruong"
    assert fold("Ủy ban nhân dân xã Tân Phước") == "uy ban nhan dan xa tan phuoc"
    # Every tone on every vowel folds to the bare vowel.
    vowels = "aăâeêioôơuưy"
    for tone in ("\u0300", "\u0301", "\u0303", "\u0309", "\u0323"):
        for vowel in vowels:
            composed = unicodedata.normalize("NFC", vowel + tone)
            assert fold(composed) in "aeiouy", composed
            assert fold(composed.upper()) in "aeiouy", composed
    # Composed and decomposed input (a paste from another editor) fold the same.
    text = "Thông báo lịch cắt điện"
    assert fold(unicodedata.normalize("NFD", text)) == fold(text) == "thong bao lich cat dien"


def test_search_terms_and_like_patterns() -> None:
    assert search_terms("  Tiêm   PHÒNG ") == ["tiem", "phong"]
    assert search_terms("") == []
    assert like_pattern("tiem") == "%tiem%"
    # The user's % and _ are letters, not wildcards.
    assert like_pattern("50%_x\\") == "%50\\%\\_x\\\\%"


# ================================================================ airings, pure

T0 = datetime(2026, 3, 10, 1, 0, tzinfo=UTC)


def _play(device: str, minute: int, seconds: float, outcome: str = "completed") -> Play:
    start = T0 + timedelta(minutes=minute)
    return Play(
        id=minute,
        device_id=device,
        stream="",
        seq=minute,
        bulletin_id="b",
        priority=Priority.NORMAL,
        kind=BulletinKind.AUDIO,
        started_at=start,
        ended_at=start + timedelta(seconds=seconds),
        outcome=PlayOutcome(outcome),
        position_s=seconds,
        received_at=start,
    )


def test_summarize_sums_per_device_and_skips_failures() -> None:
    plays = [
        (_play("d2", 10, 90), "Loa thôn Hai", "00001"),
        (_play("d1", 0, 60), "Loa thôn Một", "00001"),
        (_play("d1", 30, 30), "Loa thôn Một", "00001"),
        (_play("d1", 40, 600, "failed"), "Loa thôn Một", "00001"),
        (_play("d3", 50, 5, "failed"), "Bảng tin", "00002"),
        # A device clock that jumped back: no negative minutes.
        (_play("d2", 20, -30), "Loa thôn Hai", "00001"),
        (_play("d2", 21, 3, "preempted"), "Loa thôn Hai", "00001"),
    ]
    got = summarize(plays)
    assert [d.device_id for d in got.devices] == ["d1", "d2"]
    one, two = got.devices
    assert (one.airings, one.minutes, one.first_at, one.last_at) == (
        2,
        1.5,
        T0,
        T0 + timedelta(minutes=30),
    )
    assert (two.airings, two.minutes) == (3, 1.6)
    assert got.airings == 5 and got.minutes == 3.1
    assert summarize([]).devices == [] and summarize([]).airings == 0


# ================================================================ over a hub


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.login()
        await harness.commune("00001", name="Xã Tân Phước")
        await harness.commune("00002", name="Xã Hoà Bình")
        yield harness


async def _published(hub: HubHarness, title: str, commune: str, **kw: Any) -> str:
    created = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json=bulletin(title, targets={"communes": [commune], "devices": []}, **kw),
        expect=201,
    )
    await hub.call("POST", f"/api/v1/bulletins/{created['id']}/publish")
    return str(created["id"])


def _report(seq: int, bulletin_id: str, started: datetime, seconds: float) -> dict[str, Any]:
    return {
        "type": "play",
        "seq": seq,
        "bulletin_id": bulletin_id,
        "priority": "normal",
        "kind": "text",
        "started_at": started.isoformat(),
        "ended_at": (started + timedelta(seconds=seconds)).isoformat(),
        "outcome": "completed",
        "position_s": seconds,
    }


async def _aired(hub: HubHarness, device: EnrolledDevice, items: list[dict[str, Any]]) -> None:
    status, body = await device.report(items)
    assert status == 200, body


async def _aired_in_two_communes(hub: HubHarness) -> tuple[str, EnrolledDevice, EnrolledDevice]:
    """A bulletin for both communes, aired twice by 00001's speaker and once by 00002's."""
    ours = await hub.new_device("00001")
    theirs = await hub.new_device("00002")
    both = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json=bulletin("Lịch tiêm phòng", targets={"communes": ["00001", "00002"], "devices": []}),
        expect=201,
    )
    await hub.call("POST", f"/api/v1/bulletins/{both['id']}/publish")
    since = datetime.now(UTC) - timedelta(days=1)
    for device in (ours, theirs):
        await hub.backdate(since, device.id, both["id"])
    started = datetime.now(UTC) - timedelta(hours=2)
    await _aired(
        hub,
        ours,
        [
            _report(1, both["id"], started, 120),
            _report(2, both["id"], started + timedelta(hours=1), 30),
        ],
    )
    await _aired(hub, theirs, [_report(1, both["id"], started, 45)])
    return str(both["id"]), ours, theirs


async def test_a_bulletins_airings_per_device_in_scope(hub: HubHarness) -> None:
    bulletin_id, ours, theirs = await _aired_in_two_communes(hub)
    both = {"id": bulletin_id}
    aired = await hub.call("GET", f"/api/v1/bulletins/{both['id']}/airings")
    assert aired["airings"] == 3 and aired["minutes"] == 3.3
    assert {d["device_id"]: d["airings"] for d in aired["devices"]} == {ours.id: 2, theirs.id: 1}
    # A commune's operator sees its own devices' airings, not the other commune's.
    operator = await hub.user("xa1", "commune_operator", "00001")
    mine = await operator.call("GET", f"/api/v1/bulletins/{both['id']}/airings")
    assert [d["device_id"] for d in mine["devices"]] == [ours.id] and mine["airings"] == 2
    # Another unit's draft: refused as the bulletin itself is.
    draft = await hub.call("POST", "/api/v1/bulletins", json=bulletin("Nháp"), expect=201)
    await operator.call("GET", f"/api/v1/bulletins/{draft['id']}/airings", expect=403)
    await hub.call("GET", "/api/v1/bulletins/nope/airings", expect=404)
    # The console's page says it in words and Vietnamese numbers.
    session = ConsoleSession(hub)
    try:
        await session.login("xa1", OWN_PASSWORD)
        status, html = await session.get(f"/bulletins/{both['id']}")
        assert status == 200
        section = re.search(r'id="aired".*?</section>', html, re.S)
        assert section is not None
        assert "1 thiết bị, 2 lượt phát, 2,5 phút" in section[0]
        assert "Xã Tân Phước" in section[0] and "Xã Hoà Bình" not in section[0]
    finally:
        await session.close()


async def test_search_with_and_without_diacritics(hub: HubHarness) -> None:
    vaccine = await _published(
        hub, "Tiêm phòng dại cho chó, mèo", "00001", text="Bà con đưa vật nuôi đến trạm."
    )
    power = await _published(
        hub, "Lịch cắt điện thôn Đông", "00001", text="Từ 8 giờ đến 11 giờ, vật nuôi an toàn."
    )
    await _published(hub, "Ngày hội 100% đại đoàn kết", "00002", text="Mời bà con, vật nuôi ở nhà.")

    async def found(q: str, harness: HubHarness = hub) -> set[str]:
        rows = await harness.call("GET", "/api/v1/bulletins", params={"q": q})
        return {r["title"] for r in rows}

    assert await found("tiem phong") == {"Tiêm phòng dại cho chó, mèo"}
    assert await found("TIÊM Phòng") == {"Tiêm phòng dại cho chó, mèo"}
    assert await found("dong dien") == {"Lịch cắt điện thôn Đông"}  # both words, any order
    assert await found("đông điện tiêm") == set()
    # In the text too.
    assert len(await found("vat nuoi")) == 3
    # % is a letter here, not "anything".
    assert await found("100%") == {"Ngày hội 100% đại đoàn kết"}
    assert await found("%") == {"Ngày hội 100% đại đoàn kết"}
    # A commune account searches only what it may see.
    operator = await hub.user("xa2", "commune_operator", "00002")
    assert await found("tiem", operator) == set()
    await hub.call("GET", "/api/v1/bulletins", params={"q": "x" * 201}, expect=422)
    # A bulletin written before search existed is folded when the hub starts.
    db = hub.app[DB]
    await db.execute("UPDATE bulletins SET search_text = NULL WHERE id IN (?, ?)", (vaccine, power))
    assert await found("tiem phong") == set()
    assert await fold_older_bulletins(db) == 2
    assert await found("tiem phong") == {"Tiêm phòng dại cho chó, mèo"}
    # An edit is searched by its new words.
    draft = await hub.call("POST", "/api/v1/bulletins", json=bulletin("Họp dân"), expect=201)
    await hub.call("PUT", f"/api/v1/bulletins/{draft['id']}", json=bulletin("Họp dân thôn Trung"))
    assert await found("hop dan trung") == {"Họp dân thôn Trung"}


@needs_chromium
async def test_search_in_the_console(hub: HubHarness) -> None:
    from playwright.async_api import async_playwright

    await _published(hub, "Tiêm phòng dại cho chó, mèo", "00001", text="Đưa vật nuôi đến.")
    await _published(hub, "Lịch cắt điện thôn Đông", "00001", text="Từ 8 giờ đến 11 giờ.")
    await hub.user("bientap", "reviewer")
    base = str(hub.client.make_url("/")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width, height in ((1366, 768), (390, 844)):
                context = await browser.new_context(viewport={"width": width, "height": height})
                page = await context.new_page()
                await page.goto(base + "/login")
                await page.fill("input[name=username]", "bientap")
                await page.fill("input[name=password]", OWN_PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_url(base + "/")
                await page.goto(base + "/bulletins")
                await page.fill("input[name=q]", "tiem phong")
                await page.press("input[name=q]", "Enter")
                await page.wait_for_url(re.compile(r"q=tiem"))
                titles = await page.locator("table.table tbody tr a").all_inner_texts()
                assert titles == ["Tiêm phòng dại cho chó, mèo"]
                await page.screenshot(path=ARTIFACTS / f"search-{width}.png", full_page=True)
                await context.close()
        finally:
            await browser.close()


@needs_chromium
async def test_airings_in_the_console(hub: HubHarness) -> None:
    from playwright.async_api import async_playwright, expect

    bulletin_id, _ours, _theirs = await _aired_in_two_communes(hub)
    await hub.user("bientap", "reviewer")
    base = str(hub.client.make_url("/")).rstrip("/")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width, height in ((1366, 768), (390, 844)):
                context = await browser.new_context(viewport={"width": width, "height": height})
                page = await context.new_page()
                await page.goto(base + "/login")
                await page.fill("input[name=username]", "bientap")
                await page.fill("input[name=password]", OWN_PASSWORD)
                await page.click("button[type=submit]")
                await page.wait_for_url(base + "/")
                await page.goto(f"{base}/bulletins/{bulletin_id}")
                aired = page.locator("#aired")
                await expect(aired).to_contain_text("2 thiết bị, 3 lượt phát, 3,3 phút")
                await expect(aired.locator("tbody tr")).to_have_count(2)
                await aired.scroll_into_view_if_needed()
                await page.screenshot(path=ARTIFACTS / f"airings-{width}.png", full_page=True)
                width_now = await page.evaluate("document.documentElement.scrollWidth")
                assert width_now <= width
                await context.close()
        finally:
            await browser.close()
