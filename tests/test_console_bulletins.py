"""The console's bulletin pages: the list with filters, create (upload with progress, preview),
the detail page with its history and actions, the reviewers' queue; bad input changes nothing.
A real browser walks contribute → return → edit → resubmit → approve with an audio upload."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from edge_agent.tone import write_tone
from hub.appkeys import DB
from hub.testing import HubHarness, running_hub
from loa_contract.models import VN_TZ
from tests.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, ConsoleSession, needs_chromium
from tests.real_files import png_bytes, scanned_pdf, wav_bytes

PASSWORD = "Own-pass-2!"
LONG_TEXT = " ".join(["Thông báo lịch tiêm chủng cho trẻ em trong xã."] * 40)  # 400 words
PNG = png_bytes()


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001", name="Xã Tân Phước")
        await harness.commune("00002", name="Xã Hoà Bình")
        yield harness


@pytest.fixture
def tone(tmp_path: Path) -> Path:
    # An agency's recorded bulletin lasts 2-3 minutes (hub/domain/lengths.py), by the hub's
    # decoding of it: a shorter one cannot be submitted.
    return write_tone(tmp_path / "ban-tin.wav", frequency=440.0, seconds=130.0, rate=8000)


@pytest.fixture
async def people(hub: HubHarness) -> AsyncIterator[dict[str, ConsoleSession]]:
    await hub.user("bt.soyte", "contributor", "so-yte", new_password=PASSWORD)
    await hub.user("bt.nongnghiep", "contributor", "so-nn", new_password=PASSWORD)
    await hub.user("tt.lan", "reviewer", new_password=PASSWORD)
    await hub.user("xa1.op", "commune_operator", "00001", new_password=PASSWORD)
    await hub.user("xa2.op", "commune_operator", "00002", new_password=PASSWORD)
    consoles: dict[str, ConsoleSession] = {}
    try:
        for name in ("bt.soyte", "bt.nongnghiep", "tt.lan", "xa1.op", "xa2.op"):
            consoles[name] = ConsoleSession(hub)
            await consoles[name].login(name, PASSWORD)
        yield consoles
    finally:
        for console in consoles.values():
            await console.close()


def local(dt: datetime) -> str:
    return dt.astimezone(VN_TZ).strftime("%Y-%m-%dT%H:%M")


def form(**kw: Any) -> list[tuple[str, str]]:
    """A bulletin form as the browser sends it; `communes` may repeat."""
    now = datetime.now(VN_TZ)
    values: dict[str, Any] = {
        "title": "Lịch tiêm chủng tháng 6",
        "kind": "text",
        "priority": "normal",
        "text": LONG_TEXT,
        "media": "",
        "media_mime": "",
        "category": "socioeconomic_development",
        "valid_from": local(now - timedelta(minutes=5)),
        "valid_until": local(now + timedelta(days=3)),
        "times": "",
        "repeats": "1",
        "display_seconds": "",
        "action": "draft",
        "communes": [],
        **kw,
    }
    fields: list[tuple[str, str]] = []
    for key, value in values.items():
        for item in value if isinstance(value, list) else [value]:
            fields.append((key, str(item)))
    return fields


async def count(hub: HubHarness, sql: str, *params: Any) -> int:
    row = await hub.app[DB].fetchone(sql, params)
    return int(row[0])


def bulletin_id(location: str | None) -> str:
    assert location is not None
    found = re.fullmatch(r"/bulletins/([0-9a-f-]{36})", location)
    assert found, location
    return found[1]


def actions_in(html: str) -> list[str]:
    return re.findall(r'class="bn-event" data-action="(\w+)"', html)


def api_body(**kw: Any) -> dict[str, Any]:
    now = datetime.now(VN_TZ)
    return {
        "title": "Tin",
        "kind": "text",
        "priority": "normal",
        "text": LONG_TEXT,
        "category": "other",
        "schedule": {
            "valid_from": (now - timedelta(minutes=1)).isoformat(),
            "valid_until": (now + timedelta(days=1)).isoformat(),
        },
        **kw,
    }


# ---------------------------------------------------------------- list


async def test_list_filters_by_state_priority_and_kind_and_links_rows(hub: HubHarness) -> None:
    png = (await hub.upload(PNG))["sha256"]
    text = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json=api_body(title="Tin chữ", targets={"communes": ["00001"]}),
        expect=201,
    )
    await hub.call("POST", f"/api/v1/bulletins/{text['id']}/publish")
    image = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json=api_body(
            title="Ảnh áp phích",
            kind="image",
            text=None,
            media=png,
            priority="priority",
            targets={"communes": ["00002"]},
        ),
        expect=201,
    )
    admin = ConsoleSession(hub)
    try:
        await admin.login("admin", "Chang3-me!now")
        status, html = await admin.get("/bulletins")
        assert status == 200
        assert f'href="/bulletins/{text["id"]}"' in html
        assert f'href="/bulletins/{image["id"]}"' in html
        assert 'href="/bulletins/new"' in html
        _, html = await admin.get("/bulletins?state=draft")
        assert "Ảnh áp phích" in html and "Tin chữ" not in html
        _, html = await admin.get("/bulletins?priority=priority")
        assert "Ảnh áp phích" in html and "Tin chữ" not in html
        _, html = await admin.get("/bulletins?kind=text")
        assert "Tin chữ" in html and "Ảnh áp phích" not in html
        assert '<option value="text" selected>' in html
        # Unknown filter values are ignored, never a 500.
        status, html = await admin.get("/bulletins?kind=hologram&priority=x&state=y")
        assert status == 200 and "Tin chữ" in html and "Ảnh áp phích" in html
        # Every cell carries its label for the phone layout.
        assert 'data-label="Tiêu đề"' in html
        _, english = await admin.get("/bulletins?lang=en")
        assert "New bulletin" in english and "Filter" in english
    finally:
        await admin.close()


# ---------------------------------------------------------------- create


async def test_new_form_shows_what_the_role_may_choose(
    hub: HubHarness, people: dict[str, ConsoleSession]
) -> None:
    status, html = await people["bt.soyte"].get("/bulletins/new")
    assert status == 200
    for needle in (
        'id="word-count"',
        'id="upload-progress"',
        'id="preview-audio"',
        'name="category"',
        'value="socioeconomic_development"',
        'id="save-submit"',
        'src="/static/bulletins.js"',
        "Đề xuất nơi phát",  # an agency proposes; the province decides
    ):
        assert needle in html, needle
    assert 'value="emergency"' not in html
    assert 'value="00001"' in html and 'value="00002"' in html
    # A commune operator sees and pre-chooses only its own commune.
    _, html = await people["xa1.op"].get("/bulletins/new")
    assert 'value="00001" checked' in html and 'value="00002"' not in html
    assert "Đề xuất nơi phát" not in html
    # A viewer may not write bulletins at all.
    await hub.user("xem", "viewer", "province", new_password=PASSWORD)
    viewer = ConsoleSession(hub)
    try:
        await viewer.login("xem", PASSWORD)
        status, html = await viewer.get("/bulletins/new")
        assert status == 403 and 'role="alert"' in html
    finally:
        await viewer.close()


async def test_create_refuses_bad_input_naming_the_field_and_stores_nothing(
    hub: HubHarness, people: dict[str, ConsoleSession]
) -> None:
    agency = people["bt.soyte"]
    await agency.get("/bulletins/new")
    status, html, _ = await agency.post("/bulletins/new", form(), csrf=False)
    assert status == 403 and "Biểu mẫu đã hết hạn" in html
    status, html, _ = await agency.post("/bulletins/new", form(title=""))
    assert status == 422
    assert 'data-field="title"' in html and "Tiêu đề" in html and "cần nhập" in html
    # The form comes back with what was typed.
    assert "Thông báo lịch tiêm chủng" in html
    status, html, _ = await agency.post("/bulletins/new", form(kind="audio", text=""))
    assert status == 422 and 'data-field="media"' in html
    status, html, _ = await agency.post("/bulletins/new", form(valid_until="tomorrow"))
    assert status == 422 and 'data-field="schedule.valid_until"' in html
    status, html, _ = await agency.post("/bulletins/new", form(times="7h"))
    assert status == 422 and 'data-field="schedule.times[0]"' in html and "Giờ phát" in html
    status, html, _ = await agency.post("/bulletins/new", form(priority="emergency"))
    assert status == 422 and 'data-field="priority"' in html
    status, html, _ = await agency.post("/bulletins/new", form(category="gossip"))
    assert status == 422 and 'data-field="category"' in html
    status, html, _ = await agency.post(
        "/bulletins/new",
        form(
            valid_from=local(datetime.now(VN_TZ) + timedelta(days=2)),
            valid_until=local(datetime.now(VN_TZ) + timedelta(days=1)),
        ),
    )
    assert status == 422 and 'data-field="schedule.valid_until"' in html
    # A commune operator cannot target another commune: the API's 403, as a page.
    await people["xa1.op"].get("/bulletins/new")
    status, html, _ = await people["xa1.op"].post("/bulletins/new", form(communes=["00002"]))
    assert status == 403 and 'role="alert"' in html
    assert await count(hub, "SELECT COUNT(*) FROM bulletins") == 0
    assert await count(hub, "SELECT COUNT(*) FROM audit WHERE action LIKE 'bulletin.%'") == 0


async def test_save_as_draft_and_save_and_submit(
    hub: HubHarness, people: dict[str, ConsoleSession]
) -> None:
    agency = people["bt.soyte"]
    await agency.get("/bulletins/new")
    status, _, location = await agency.post("/bulletins/new", form(communes=["00001"]))
    assert status == 303
    draft = await hub.call("GET", f"/api/v1/bulletins/{bulletin_id(location)}")
    assert draft["state"] == "draft" and draft["unit"] == "so-yte"
    assert draft["targets"]["communes"] == ["00001"]
    assert draft["schedule"]["repeats"] == 1 and draft["category"] == "socioeconomic_development"
    before = await count(hub, "SELECT COUNT(*) FROM bulletins")
    # "Save and submit" is one step: what the review would refuse creates no draft, however
    # often the failed form is sent again (a reload re-posts it).
    for _ in range(2):
        status, html, _ = await agency.post(
            "/bulletins/new", form(title="Ngắn", text="Quá ngắn", action="submit")
        )
        assert status == 422 and 'data-field="text"' in html
        assert "đã được lưu nháp" not in html
        assert 'action="/bulletins/new"' in html
    assert await count(hub, "SELECT COUNT(*) FROM bulletins") == before
    # A priority proposal needs its air time.
    status, html, _ = await agency.post(
        "/bulletins/new", form(title="Ưu tiên", priority="priority", action="submit")
    )
    assert status == 422 and 'data-field="schedule.times"' in html
    assert await count(hub, "SELECT COUNT(*) FROM bulletins") == before
    # Editing the saved draft: saved, the refused submit shown on the draft's own edit page
    # (post/redirect/get), where a reload sends nothing again.
    draft_id = draft["id"]
    await agency.get(f"/bulletins/{draft_id}/edit")
    status, _, location = await agency.post(
        f"/bulletins/{draft_id}/edit", form(title="Ngắn lại", text="Quá ngắn", action="submit")
    )
    assert status == 303 and location == f"/bulletins/{draft_id}/edit?not_submitted=1"
    status, html = await agency.get(location)
    assert status == 200
    assert "đã được lưu nháp nhưng chưa gửi" in html and 'data-field="text"' in html
    saved = await hub.call("GET", f"/api/v1/bulletins/{draft_id}")
    assert saved["state"] == "draft" and saved["title"] == "Ngắn lại"
    status, _, location = await agency.post(
        "/bulletins/new",
        form(title="Ưu tiên", priority="priority", times="07:00, 17:30", action="submit"),
    )
    assert status == 303
    submitted = await hub.call("GET", f"/api/v1/bulletins/{bulletin_id(location)}")
    assert submitted["state"] == "submitted"
    assert submitted["schedule"]["times"] == ["07:00", "17:30"]
    status, html = await agency.get(location or "")
    assert status == 200 and actions_in(html) == ["create", "submit"]


# ---------------------------------------------------------------- media


async def test_upload_endpoint_checks_csrf_and_session_and_answers_json(
    hub: HubHarness, people: dict[str, ConsoleSession], tone: Path
) -> None:
    agency = people["bt.soyte"]
    await agency.get("/bulletins/new")
    url = agency.base + "/bulletins/media"
    wav = await asyncio.to_thread(tone.read_bytes)
    async with agency.http.post(url, data=wav) as resp:
        assert resp.status == 403
        body = await resp.json()
        assert body["error"] == "csrf" and body["field"] == "media"
    async with (
        aiohttp.ClientSession() as stranger,
        stranger.post(url, data=wav, headers={"X-CSRF-Token": agency.csrf}) as resp,
    ):
        assert resp.status == 401 and (await resp.json())["field"] == "media"
    assert await count(hub, "SELECT COUNT(*) FROM media") == 0
    headers = {"X-CSRF-Token": agency.csrf, "Content-Type": "audio/wav"}
    async with agency.http.post(url, data=b"\x00\x01 not media", headers=headers) as resp:
        assert resp.status == 415
        body = await resp.json()
        assert body["field"] == "media" and "âm thanh" in body["message"]
    # A file refused once decoded: the hub's own words name the problem.
    cut = wav[: len(wav) // 4 // 2 * 2]
    async with agency.http.post(url, data=cut, headers=headers) as resp:
        assert resp.status == 422
        body = await resp.json()
        assert body["error"] == "truncated" and "bị cắt cụt" in body["message"], body
    async with agency.http.post(url, data=wav, headers=headers) as resp:
        assert resp.status == 201
        stored = await resp.json()
    assert stored["mime"] == "audio/wav" and stored["size"] == len(wav)
    assert stored["kind"] == "audio" and stored["url"] == f"/bulletins/media/{stored['sha256']}"
    # The upload is audited with the uploader's unit.
    row = await hub.app[DB].fetchone(
        "SELECT actor, unit FROM audit WHERE action = 'media.upload' AND target = ?",
        (stored["sha256"],),
    )
    assert row is not None and (row["actor"], row["unit"]) == ("bt.soyte", "so-yte")
    # The preview plays it from the console, with Range for seeking.
    async with agency.http.get(agency.base + stored["url"]) as resp:
        assert resp.status == 200 and resp.content_type == "audio/wav"
        assert await resp.read() == wav
    async with agency.http.get(
        agency.base + stored["url"], headers={"Range": "bytes=0-11"}
    ) as resp:
        assert resp.status == 206 and await resp.read() == wav[:12]
    # Another agency can neither fetch it nor list it; the province can.
    status, html = await people["bt.nongnghiep"].get(stored["url"])
    assert status == 404 and 'role="alert"' in html
    status, _ = await people["bt.nongnghiep"].get("/bulletins/media/not-a-sha")
    assert status == 404
    status, _ = await people["tt.lan"].get(stored["url"])
    assert status == 200


async def test_media_list_is_scoped_to_the_unit(hub: HubHarness) -> None:
    one = await hub.user("m.one", "contributor", "so-yte")
    two = await hub.user("m.two", "contributor", "so-nn")
    viewer = await hub.user("m.view", "viewer", "province")
    mine = (await one.upload(PNG))["sha256"]
    theirs = (await two.upload(png_bytes(colour=(1, 2, 3))))["sha256"]
    assert [m["sha256"] for m in await one.call("GET", "/api/v1/media")] == [mine]
    assert [m["sha256"] for m in await two.call("GET", "/api/v1/media")] == [theirs]
    assert {m["sha256"] for m in await viewer.call("GET", "/api/v1/media")} == {mine, theirs}
    # The same bytes uploaded again by another unit become that unit's too.
    assert (await two.upload(PNG))["sha256"] == mine
    assert {m["sha256"] for m in await two.call("GET", "/api/v1/media")} == {mine, theirs}
    await one.call("GET", f"/api/v1/media/{theirs}", expect=404)
    assert await one.call("GET", f"/api/v1/media/{mine}") == PNG
    uploads = await hub.call("GET", "/api/v1/audit", params={"action": "media.upload"})
    assert len(uploads["items"]) == 3


async def test_commune_hears_province_media_published_to_it(hub: HubHarness) -> None:
    op1 = await hub.user("o.one", "commune_operator", "00001")
    op2 = await hub.user("o.two", "commune_operator", "00002")
    wav = (await hub.upload(wav_bytes()))["sha256"]
    draft = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json=api_body(kind="audio", text=None, media=wav, targets={"communes": ["00001"]}),
        expect=201,
    )
    # A draft is not the commune's business yet.
    await op1.call("GET", f"/api/v1/media/{wav}", expect=404)
    await hub.call("POST", f"/api/v1/bulletins/{draft['id']}/publish")
    await op1.call("GET", f"/api/v1/media/{wav}")
    await op2.call("GET", f"/api/v1/media/{wav}", expect=404)
    assert await op1.call("GET", "/api/v1/media") == []


# ---------------------------------------------------------------- detail, actions, review


async def test_detail_actions_follow_the_workflow(
    hub: HubHarness, people: dict[str, ConsoleSession]
) -> None:
    agency, reviewer = people["bt.soyte"], people["tt.lan"]
    await agency.get("/bulletins/new")
    _, _, location = await agency.post("/bulletins/new", form(communes=["00002"], action="submit"))
    bid = bulletin_id(location)
    page = f"/bulletins/{bid}"

    async def state() -> str:
        return str((await hub.call("GET", f"/api/v1/bulletins/{bid}"))["state"])

    status, html = await agency.get(page)
    assert status == 200
    assert 'id="edit"' not in html and 'id="return-form"' not in html  # under review now
    status, html = await reviewer.get(page)
    assert 'id="return-form"' in html and 'id="approve-form"' in html
    assert 'id="edit"' in html  # a reviewer may edit while reviewing
    # No CSRF: refused, nothing changes.
    status, html, _ = await reviewer.post(f"{page}/return", {"comment": "x"}, csrf=False)
    assert status == 403 and await state() == "submitted"
    # No comment: the page names the field, nothing changes.
    status, html, _ = await reviewer.post(f"{page}/return", {"comment": "  "})
    assert status == 422 and 'data-field="comment"' in html and "Ý kiến thẩm định" in html
    assert await state() == "submitted"
    # An agency cannot review: the error page, not a 500.
    status, html, _ = await agency.post(f"{page}/return", {"comment": "tự trả"})
    assert status == 403 and 'role="alert"' in html
    status, _, back = await reviewer.post(f"{page}/return", {"comment": "Thiếu nguồn tin"})
    assert status == 303 and back == page and await state() == "returned"
    # Illegal transitions: an error page (409), never a 500.
    status, html, _ = await reviewer.post(f"{page}/return", {"comment": "lần nữa"})
    assert status == 409 and "Trạng thái đã thay đổi" in html
    status, html, _ = await reviewer.post(f"{page}/approve", form(communes=["00001"]))
    assert status == 409
    # The agency sees the comment, edits and resubmits.
    status, html = await agency.get(page)
    assert "Thiếu nguồn tin" in html and 'id="edit"' in html and 'id="submit"' in html
    status, html = await agency.get(f"{page}/edit")
    assert status == 200 and "Lịch tiêm chủng tháng 6" in html and "Thiếu nguồn tin" in html
    assert 'value="00002" checked' in html
    status, html, _ = await agency.post(f"{page}/edit", form(title="", action="submit"))
    assert status == 422 and 'data-field="title"' in html and await state() == "returned"
    status, _, back = await agency.post(
        f"{page}/edit", form(title="Lịch tiêm chủng (sửa)", communes=["00002"], action="submit")
    )
    assert status == 303 and back == page and await state() == "submitted"
    # The agency cannot edit what is under review; the page says so.
    status, html = await agency.get(f"{page}/edit")
    assert status == 409
    # Approval without targets names the field and publishes nothing.
    status, html, _ = await reviewer.post(f"{page}/approve", form(communes=[]))
    assert status == 422 and 'data-field="targets"' in html and await state() == "submitted"
    status, html, _ = await reviewer.post(f"{page}/approve", form(category=""), csrf=False)
    assert status == 403 and await state() == "submitted"
    status, _, back = await reviewer.post(
        f"{page}/approve",
        form(communes=["00001"], priority="priority", times="06:00", comment="Đồng ý"),
    )
    assert status == 303 and await state() == "published"
    published = await hub.call("GET", f"/api/v1/bulletins/{bid}")
    assert published["targets"]["communes"] == ["00001"] and published["priority"] == "priority"
    assert published["schedule"]["times"] == ["06:00"] and published["review_comment"] == "Đồng ý"
    status, html = await agency.get(page)
    assert actions_in(html) == ["create", "submit", "return", "edit", "submit", "approve"]
    assert "tt.lan" in html and "Thiếu nguồn tin" in html and 'id="cancel"' not in html
    status, html = await reviewer.get(page)
    assert 'id="cancel"' in html
    status, html, _ = await reviewer.post(f"{page}/cancel", {})
    assert status == 303 and await state() == "cancelled"
    status, html, _ = await reviewer.post(f"{page}/cancel", {})
    assert status == 409 and await state() == "cancelled"
    status, html = await reviewer.get(page)
    assert actions_in(html)[-1] == "cancel" and 'id="actions"' not in html
    status, html = await reviewer.get("/bulletins/no-such-id")
    assert status == 404 and 'role="alert"' in html


async def test_commune_operator_publishes_its_own_and_cannot_open_another_communes(
    hub: HubHarness, people: dict[str, ConsoleSession]
) -> None:
    op1, op2 = people["xa1.op"], people["xa2.op"]
    await op1.get("/bulletins/new")
    status, _, location = await op1.post(
        "/bulletins/new", form(title="Họp dân thôn Một", communes=["00001"])
    )
    assert status == 303
    page = location or ""
    status, html = await op1.get(page)
    assert 'id="publish"' in html and 'id="return-form"' not in html
    status, html = await op2.get(page)
    assert status == 403 and "không có quyền" in html
    status, html, _ = await op2.post(f"{page}/publish", {})
    assert status == 403
    status, _, back = await op1.post(f"{page}/publish", {})
    assert status == 303 and back == page
    status, html = await op1.get(page)
    assert "Đã phát hành" in html and actions_in(html) == ["create", "publish"]
    assert 'id="cancel"' in html
    status, html = await op2.get(page)
    assert status == 403


async def test_review_queue_is_for_reviewers_oldest_first(
    hub: HubHarness, people: dict[str, ConsoleSession]
) -> None:
    agency = people["bt.soyte"]
    await agency.get("/bulletins/new")
    ids = []
    for title in ("Bản tin thứ nhất", "Bản tin thứ hai"):
        _, _, location = await agency.post("/bulletins/new", form(title=title, action="submit"))
        ids.append(bulletin_id(location))
    await agency.post("/bulletins/new", form(title="Nháp chưa gửi"))
    reviewer = people["tt.lan"]
    status, html = await reviewer.get("/review")
    assert status == 200
    found = re.findall(r'class="bn-open" href="/bulletins/([0-9a-f-]{36})"', html)
    assert found == ids
    # Returned and resubmitted: it joins the queue again at the back.
    await reviewer.get(f"/bulletins/{ids[0]}")
    await reviewer.post(f"/bulletins/{ids[0]}/return", {"comment": "Sửa tiêu đề"})
    await agency.get(f"/bulletins/{ids[0]}")
    status, _, _ = await agency.post(f"/bulletins/{ids[0]}/submit", {})
    assert status == 303
    status, html = await reviewer.get("/review")
    found = re.findall(r'class="bn-open" href="/bulletins/([0-9a-f-]{36})"', html)
    assert found == [ids[1], ids[0]] and "Gửi lại" in html
    assert "Nháp chưa gửi" not in html and "400 từ" in html
    status, html = await agency.get("/review")
    assert status == 403 and 'role="alert"' in html
    status, html = await people["xa1.op"].get("/review")
    assert status == 403


async def test_pages_switch_to_english(hub: HubHarness, people: dict[str, ConsoleSession]) -> None:
    agency, reviewer = people["bt.soyte"], people["tt.lan"]
    await agency.get("/bulletins/new")
    _, _, location = await agency.post("/bulletins/new", form(action="submit"))
    page = location or ""
    status, html = await agency.get("/bulletins/new?lang=en")
    assert status == 200 and "Save and submit for review" in html and "Preview" in html
    status, html = await reviewer.get(f"{page}?lang=en")
    assert status == 200 and "History" in html and "Approve and publish" in html
    assert "Submitted" in html and "Awaiting review" in html
    status, html, _ = await reviewer.post(f"{page}/return", {"comment": ""})
    assert status == 422 and "Review comment" in html and "is required" in html
    status, html = await reviewer.get("/review")
    assert status == 200 and "Bulletins awaiting review" in html


# ---------------------------------------------------------------- a real browser


async def _audio_duration(page: Any, selector: str) -> float:
    """The element's duration once its metadata loaded: the browser fetched and decoded it."""
    duration = await page.evaluate(
        """(selector) => new Promise((resolve, reject) => {
            const audio = document.querySelector(selector);
            if (audio.readyState >= 1) { resolve(audio.duration); return; }
            audio.addEventListener("loadedmetadata", () => resolve(audio.duration), {once: true});
            audio.addEventListener("error", () => reject(new Error(
                "media error " + (audio.error ? audio.error.code : "?"))), {once: true});
            if (audio.preload === "none") { audio.load(); }
        })""",
        selector,
    )
    return float(duration)


# Under CI a missing browser is a failure, not a skip: the walkthrough must run there.
@needs_chromium
async def test_browser_contribute_review_return_resubmit_approve(
    hub: HubHarness, tone: Path
) -> None:
    from playwright.async_api import Browser, Page, async_playwright, expect

    ARTIFACTS.mkdir(exist_ok=True)
    await hub.user("bt.soyte", "contributor", "so-yte", new_password=PASSWORD)
    await hub.user("tt.lan", "reviewer", new_password=PASSWORD)
    await hub.user("xa2.op", "commune_operator", "00002", new_password=PASSWORD)
    base = str(hub.client.make_url("/")).rstrip("/")

    async def signed_in(browser: Browser, username: str) -> Page:
        context = await browser.new_context(viewport={"width": 390, "height": 844})
        page = await context.new_page()
        page.set_default_timeout(10_000)
        await page.goto(f"{base}/login")
        await page.fill("input[name=username]", username)
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit].primary")
        await expect(page).to_have_url(f"{base}/")
        return page

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            agency = await signed_in(browser, "bt.soyte")
            await agency.goto(f"{base}/bulletins")
            await agency.click("#new-bulletin")
            await expect(agency).to_have_url(f"{base}/bulletins/new")
            # The live word count warns outside 300–500 words; it does not block typing.
            await agency.fill("textarea[name=text]", "Chỉ vài từ thôi")
            await expect(agency.locator("#word-count")).to_have_text("4")
            await expect(agency.locator("#word-warning")).to_be_visible()
            await expect(agency.locator("#preview-text")).to_have_text("Chỉ vài từ thôi")
            await agency.fill("textarea[name=text]", LONG_TEXT)
            await expect(agency.locator("#word-count")).to_have_text("400")
            await expect(agency.locator("#word-warning")).to_be_hidden()

            await agency.fill("input[name=title]", "Thông báo tiêm chủng mở rộng")
            await agency.select_option("#kind", "audio")
            await expect(agency.locator("#text-part")).to_be_hidden()
            await expect(agency.locator("#upload-percent")).to_have_text("0 %")
            await agency.set_input_files("#file", str(tone))
            await expect(agency.locator("#upload-percent")).to_have_text("100 %")
            await expect(agency.locator("#upload-progress")).to_have_js_property("value", 100)
            audio = agency.locator("#preview-audio")
            await expect(audio).to_be_visible()
            await expect(audio).to_have_attribute(
                "src", re.compile(r"^/bulletins/media/[0-9a-f]{64}$")
            )
            duration = await _audio_duration(agency, "#preview-audio")
            assert 129.9 < duration < 130.1, duration
            await expect(agency.locator("#upload-status")).to_contain_text("2:10")
            await agency.select_option("#priority", "priority")
            await agency.fill("#times", "07:00")
            await agency.select_option("select[name=category]", "socioeconomic_development")
            await agency.check("input[name=communes][value='00001']")
            await agency.screenshot(path=ARTIFACTS / "console-bulletin-new.png", full_page=True)
            await agency.click("#save-submit")
            await expect(agency).to_have_url(re.compile(r"/bulletins/[0-9a-f-]{36}$"))
            bid = agency.url.rsplit("/", 1)[1]
            detail = f"{base}/bulletins/{bid}"
            await expect(agency.locator("#bulletin-state")).to_have_text("Chờ thẩm định")
            assert await _audio_duration(agency, "#detail-audio") > 1.9

            reviewer = await signed_in(browser, "tt.lan")
            await reviewer.click("nav a[href='/review']")
            await expect(reviewer.locator("#queue")).to_contain_text("Thông báo tiêm chủng")
            await reviewer.screenshot(path=ARTIFACTS / "console-review.png", full_page=True)
            await reviewer.click(f"a.bn-open[href='/bulletins/{bid}']")
            await expect(reviewer).to_have_url(detail)
            await expect(reviewer.locator("#detail-audio")).to_be_visible()
            await reviewer.fill("#return-comment", "Cần ghi rõ địa điểm tiêm")
            await reviewer.click("#return")
            await expect(reviewer.locator("#bulletin-state")).to_have_text("Bị trả lại")

            await agency.goto(detail)
            await expect(agency.locator("#review-comment")).to_contain_text(
                "Cần ghi rõ địa điểm tiêm"
            )
            await agency.click("#edit")
            await expect(agency).to_have_url(f"{detail}/edit")
            # The uploaded file is still there, ready to hear again.
            await expect(agency.locator("#preview-audio")).to_be_visible()
            await expect(agency.locator("#upload-percent")).to_have_text("100 %")
            await agency.fill("input[name=title]", "Thông báo tiêm chủng tại trạm y tế xã")
            await agency.click("#save-submit")
            await expect(agency).to_have_url(detail)
            await expect(agency.locator("#bulletin-state")).to_have_text("Chờ thẩm định")

            await reviewer.goto(f"{base}/review")
            await reviewer.click(f"a.bn-open[href='/bulletins/{bid}']")
            form = reviewer.locator("#approve-form")
            await expect(form.locator("input[name=communes][value='00001']")).to_be_checked()
            await expect(form.locator("input[name=times]")).to_have_value("07:00")
            await form.locator("textarea[name=comment]").fill("Đồng ý phát")
            await reviewer.click("#approve")
            await expect(reviewer.locator("#bulletin-state")).to_have_text("Đã phát hành")
            events = reviewer.locator("#history tr.bn-event")
            await expect(events).to_have_count(6)
            assert await events.evaluate_all("rows => rows.map(r => r.dataset.action)") == [
                "create",
                "submit",
                "return",
                "edit",
                "submit",
                "approve",
            ]
            await expect(reviewer.locator("#history")).to_contain_text("Cần ghi rõ địa điểm tiêm")
            await expect(reviewer.locator("#targets")).to_contain_text("Xã Tân Phước")
            await reviewer.screenshot(
                path=ARTIFACTS / "console-bulletin-detail.png", full_page=True
            )

            # Another commune's operator gets the error page, not the bulletin.
            outsider = await signed_in(browser, "xa2.op")
            response = await outsider.goto(detail)
            assert response is not None and response.status == 403
            await expect(outsider.locator("[role=alert]")).to_contain_text("không có quyền")
            await expect(outsider.locator("body")).not_to_contain_text("Thông báo tiêm chủng")
        finally:
            await browser.close()


@needs_chromium
async def test_browser_pages_through_the_list_keeping_its_filters(hub: HubHarness) -> None:
    from playwright.async_api import async_playwright, expect

    from hub.console_bulletins import PAGE_ROWS

    texts = []
    for i in range(PAGE_ROWS + 3):
        body = api_body(title=f"Tin số {i:02d}", targets={"communes": ["00001"]})
        texts.append((await hub.call("POST", "/api/v1/bulletins", json=body, expect=201))["id"])
    png = (await hub.upload(PNG))["sha256"]
    image = api_body(title="Ảnh", kind="image", text=None, media=png)
    image["targets"] = {"communes": ["00001"]}
    await hub.call("POST", "/api/v1/bulletins", json=image, expect=201)
    # Two bulletins made in the same microsecond sit across the page break: the id orders them.
    db = hub.app[DB]
    tie = (await db.fetchone("SELECT created_at FROM bulletins WHERE id = ?", (texts[3],)))[0]
    await db.execute("UPDATE bulletins SET created_at = ? WHERE id = ?", (tie, texts[2]))
    base = str(hub.client.make_url("/")).rstrip("/")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(10_000)
            await page.goto(f"{base}/login")
            await page.fill("input[name=username]", "admin")
            await page.fill("input[name=password]", "Chang3-me!now")
            await page.click("button[type=submit].primary")
            await expect(page).to_have_url(f"{base}/")
            await page.goto(f"{base}/bulletins")
            await page.select_option("select[name=kind]", "text")
            await page.click("form.filter button[type=submit]")
            rows = page.locator("a.bn-row-link")
            await expect(rows).to_have_count(PAGE_ROWS)
            await expect(page.locator("#first-page")).to_have_count(0)
            first = await rows.evaluate_all("links => links.map(a => a.getAttribute('href'))")
            await expect(page.locator("#next-page")).to_have_text("Cũ hơn →")
            await page.click("#next-page")
            await expect(page).to_have_url(re.compile(r"/bulletins\?.*kind=text.*&before="))
            await expect(rows).to_have_count(3)
            # The filter is still chosen on the next page, and nothing came twice.
            await expect(page.locator("select[name=kind]")).to_have_value("text")
            second = await rows.evaluate_all("links => links.map(a => a.getAttribute('href'))")
            assert sorted(first + second) == sorted(f"/bulletins/{b}" for b in texts)
            await expect(page.locator("#next-page")).to_have_count(0)
            await page.click("#first-page")
            await expect(rows).to_have_count(PAGE_ROWS)
            await expect(page.locator("select[name=kind]")).to_have_value("text")
        finally:
            await browser.close()


async def test_refusals_the_hub_words_itself_are_shown_in_the_pages_language(
    hub: HubHarness, people: dict[str, ConsoleSession], tmp_path: Path
) -> None:
    """A recording of the wrong length and a document with no words are refused by rules
    that write their own sentence in both languages (hub/bulletins.py): the console shows
    the one of its language, never the Vietnamese on an English page."""
    agency, reviewer = people["bt.soyte"], people["tt.lan"]
    when = {
        "valid_from": datetime.now(VN_TZ).isoformat(),
        "valid_until": (datetime.now(VN_TZ) + timedelta(days=1)).isoformat(),
    }
    writer = await hub.user("bt.soyte2", "contributor", "so-yte")
    short = await writer.upload(wav_bytes(30.0, rate=8000))
    made = await writer.call(
        "POST",
        "/api/v1/bulletins",
        json={"title": "Tin ngắn", "kind": "audio", "priority": "normal",
              "category": "socioeconomic_development", "media": short["sha256"],
              "schedule": when},
        expect=201,
    )  # fmt: skip
    page = f"/bulletins/{made['id']}"
    await agency.get(f"{page}?lang=en")
    status, html, _ = await agency.post(f"{page}/submit")
    assert status == 422, html
    assert "the recording lasts 0.5 minutes; the rule is 2–3 minutes" in html
    assert "Bản tin thu âm dài" not in html
    await agency.get(f"{page}?lang=vi")
    status, html, _ = await agency.post(f"{page}/submit")
    assert status == 422 and "Bản tin thu âm dài 0.5 phút; quy định: 2–3 phút." in html

    await hub.device("00001", "speaker")
    scan = scanned_pdf(tmp_path / "scan.pdf", [(200, 30, 40)])
    sha = (await hub.upload(scan.read_bytes()))["sha256"]
    made = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json={"title": "Lịch cắt điện", "kind": "document", "priority": "normal",
              "category": "socioeconomic_development", "media": sha,
              "targets": {"communes": ["00001"]}, "schedule": when},
        expect=201,
    )  # fmt: skip
    page = f"/bulletins/{made['id']}"
    await reviewer.get(f"{page}?lang=en")
    status, html, _ = await reviewer.post(f"{page}/publish")
    assert status == 422, html
    assert "the document has no words to read (a photo or a scan)" in html
    assert "loa không có gì để phát" not in html
    await reviewer.get(f"{page}?lang=vi")
    status, html, _ = await reviewer.post(f"{page}/publish")
    assert status == 422 and "loa không có gì để phát" in html
