"""Operator API: auth, communes, devices, media, bulletins, errors, OpenAPI."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub import pages
from hub.appkeys import DB
from hub.db import iso
from hub.testing import ADMIN, ADMIN_PASSWORD, HubHarness, running_hub
from loa_contract import VN_TZ
from tests.real_files import png_bytes, text_pdf, wav_bytes

PNG = png_bytes()
WAV = wav_bytes()
PUBLIC = {
    "/healthz",
    "/api/v1/openapi.json",
    "/api/v1/auth/login",
    "/api/v1/enroll",
    "/api/v1/cap/feed.atom",
    "/api/v1/exchange/keys",
}
#: The server-rendered console is not API (no OpenAPI, redirects to /login); its own tests
#: check every page needs a session.
CONSOLE = {path for _method, path, _handler in pages.PAGES}


def _console_route(path: str) -> bool:
    return path in CONSOLE or path.startswith("/static")


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        yield harness


def schedule(hours: int = 24, **kw: Any) -> dict[str, Any]:
    start = datetime.now(VN_TZ) - timedelta(minutes=1)
    return {
        "valid_from": start.isoformat(),
        "valid_until": (start + timedelta(hours=hours)).isoformat(),
        "times": ["07:00"],
        **kw,
    }


def fields(body: dict[str, Any]) -> list[str]:
    return [d["field"] for d in body["detail"]]


async def count(hub: HubHarness, table: str) -> int:
    row = await hub.app[DB].fetchone(f"SELECT COUNT(*) FROM {table}")
    return int(row[0])


# ---------------------------------------------------------------- auth and errors


async def test_login_good_and_bad(hub: HubHarness) -> None:
    body = await hub.call(
        "POST",
        "/api/v1/auth/login",
        auth=False,
        json={"username": ADMIN, "password": ADMIN_PASSWORD},
    )
    assert body["must_change_password"] is False
    assert body["role"] == "admin" and body["unit"] == "province"
    assert len(body["token"]) >= 32 and datetime.fromisoformat(body["expires_at"]).tzinfo
    bad = await hub.call(
        "POST",
        "/api/v1/auth/login",
        auth=False,
        expect=401,
        json={"username": ADMIN, "password": "wrong"},
    )
    assert bad["error"] == "invalid_credentials"
    nobody = await hub.call(
        "POST",
        "/api/v1/auth/login",
        auth=False,
        expect=401,
        json={"username": "ghost", "password": ADMIN_PASSWORD},
    )
    assert nobody == bad
    me = await hub.call(
        "GET", "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['token']}"}, auth=False
    )
    assert me["username"] == ADMIN
    # Tokens are stored hashed, never as given.
    row = await hub.app[DB].fetchone(
        "SELECT COUNT(*) FROM sessions WHERE token_hash = ?", (body["token"],)
    )
    assert row[0] == 0


async def test_idle_session_expires_and_logout(hub: HubHarness) -> None:
    await hub.call("GET", "/api/v1/communes")
    await hub.app[DB].execute(
        "UPDATE sessions SET last_used_at = ?", (iso(datetime.now(UTC) - timedelta(minutes=31)),)
    )
    body = await hub.call("GET", "/api/v1/communes", expect=401)
    assert body["error"] == "unauthorized"
    await hub.login()
    await hub.call("POST", "/api/v1/auth/logout")
    await hub.call("GET", "/api/v1/communes", expect=401)


async def test_every_non_public_route_needs_credentials(hub: HubHarness) -> None:
    checked = 0
    for route in hub.app.router.routes():
        path = route.resource.canonical
        if path in PUBLIC or route.method == "HEAD" or _console_route(path):
            continue
        url = re.sub(r"{(\w+)}", "x", path)
        for headers in (
            {},
            {"Authorization": "Bearer not-a-token"},
            {"Authorization": "Device x:y"},
        ):
            body = await hub.call(route.method, url, auth=False, headers=headers, expect=401)
            assert body["error"] == "unauthorized", (route.method, path)
        checked += 1
    assert checked >= 20


async def test_device_credentials_do_not_open_operator_routes(hub: HubHarness) -> None:
    await hub.commune()
    dev = await hub.new_device()
    resp = await hub.client.get("/api/v1/communes", headers=dev.headers)
    assert resp.status == 401
    resp = await hub.client.get("/api/v1/device/manifest", headers=hub.auth)
    assert resp.status == 401


async def test_errors_are_json(hub: HubHarness) -> None:
    body = await hub.call("GET", "/api/v1/nowhere", expect=404)
    assert body["error"] == "not_found"
    body = await hub.call("DELETE", "/api/v1/communes", expect=405)
    assert body["error"] == "method_not_allowed"
    body = await hub.call(
        "POST",
        "/api/v1/communes",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        expect=400,
    )
    assert body["error"] == "bad_json"
    body = await hub.call(
        "POST",
        "/api/v1/communes",
        data=b"",
        headers={"Content-Type": "application/json"},
        expect=400,
    )
    assert body["error"] == "bad_json"
    assert await hub.call("GET", "/healthz", auth=False) == {"ok": True}


async def test_openapi_lists_every_route(hub: HubHarness) -> None:
    doc = await hub.call("GET", "/api/v1/openapi.json", auth=False)
    assert doc["openapi"].startswith("3.")
    for route in hub.app.router.routes():
        path = route.resource.canonical
        if route.method == "HEAD" or _console_route(path):
            continue
        assert route.method.lower() in doc["paths"][path], (route.method, path)
    create = doc["paths"]["/api/v1/bulletins"]["post"]
    ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    schema = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert {"title", "kind", "priority", "targets", "schedule"} <= set(schema["properties"])
    assert "422" in create["responses"] and "401" in create["responses"]
    assert doc["paths"]["/api/v1/device/manifest"]["get"]["security"] == [{"device": []}]


# ---------------------------------------------------------------- communes


async def test_commune_create_list_update(hub: HubHarness) -> None:
    created = await hub.commune("00001")
    assert created["volume"] == 70
    assert created["windows"]["speaker"][0] == {"start": "05:30", "end": "06:30"}
    listed = await hub.call("GET", "/api/v1/communes")
    assert [c["code"] for c in listed] == ["00001"]
    updated = await hub.call(
        "PUT",
        "/api/v1/communes/00001",
        json={
            "volume": 40,
            "windows": {"speaker": [{"start": "22:00", "end": "02:00", "overnight": True}]},
        },
    )
    assert updated["volume"] == 40 and updated["windows"]["board"] == []
    assert updated["windows"]["speaker"] == [{"start": "22:00", "end": "02:00", "overnight": True}]
    await hub.call("PUT", "/api/v1/communes/99999", json={"volume": 4}, expect=404)
    assert (await hub.call("PUT", "/api/v1/communes/00001", json={}, expect=422))["error"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"windows": {"speaker": [["25:00", "06:00"]]}}, "windows.speaker[0].start"),
        ({"windows": {"speaker": [["05:00"]]}}, "windows.speaker[0]"),
        ({"windows": {"board": [["06:00", "06:00"]]}}, "windows.board[0]"),
        ({"volume": 101}, "volume"),
        ({"code": "bad code!"}, "code"),
        ({"name": ""}, "name"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_commune_validation_names_field(
    hub: HubHarness, payload: dict[str, Any], field: str
) -> None:
    body = {"code": "00002", "name": "Xã Hai", **payload}
    audited = await count(hub, "audit")  # the harness's login is audited
    resp = await hub.call("POST", "/api/v1/communes", json=body, expect=422)
    assert resp["error"] == "validation_error"
    assert field in fields(resp)
    assert await count(hub, "communes") == 0
    assert await count(hub, "audit") == audited


async def test_duplicate_commune_conflicts(hub: HubHarness) -> None:
    await hub.commune("00001")
    body = await hub.call(
        "POST", "/api/v1/communes", json={"code": "00001", "name": "x"}, expect=409
    )
    assert body["error"] == "exists"


# ---------------------------------------------------------------- devices


async def test_device_create_and_list(hub: HubHarness) -> None:
    await hub.commune()
    created = await hub.device(kind="board")
    assert created["profile"] == "led-board-p10"
    assert len(created["enrollment_code"].replace("-", "")) >= 10
    # The code is stored hashed only.
    row = await hub.app[DB].fetchone("SELECT enrollment_code_hash FROM devices")
    assert created["enrollment_code"] not in row[0]
    listed = await hub.call("GET", "/api/v1/devices")
    assert listed[0]["enrolled"] is False and listed[0]["online"] is False
    assert listed[0]["health"] is None and listed[0]["now_playing"] is None
    one = await hub.call("GET", f"/api/v1/devices/{created['id']}")
    assert one["kind"] == "board" and one["commune"] == "00001"


@pytest.mark.parametrize(
    ("payload", "field", "status"),
    [
        ({"commune": "nope"}, "commune", 422),
        ({"kind": "radio"}, "kind", 422),
        ({"profile": "Bad Profile"}, "profile", 422),
        ({"name": "  "}, "name", 422),
    ],
)
async def test_device_validation(
    hub: HubHarness, payload: dict[str, Any], field: str, status: int
) -> None:
    await hub.commune()
    body = {"commune": "00001", "name": "Loa 1", "kind": "speaker", **payload}
    resp = await hub.call("POST", "/api/v1/devices", json=body, expect=status)
    assert field in fields(resp)
    assert await count(hub, "devices") == 0


async def test_command_to_offline_device_is_not_delivered(hub: HubHarness) -> None:
    await hub.commune()
    dev = await hub.device()
    body = await hub.call(
        "POST",
        f"/api/v1/devices/{dev['id']}/commands",
        json={"type": "set_volume", "volume": 50},
        expect=202,
    )
    assert body["delivered"] is False
    bad = await hub.call(
        "POST",
        f"/api/v1/devices/{dev['id']}/commands",
        json={"type": "set_volume", "volume": 500},
        expect=422,
    )
    assert any(f.endswith("volume") for f in fields(bad))
    await hub.call("POST", "/api/v1/devices/nope/commands", json={"type": "stop"}, expect=404)


# ---------------------------------------------------------------- media


async def test_media_upload_sniffs_and_dedupes(hub: HubHarness) -> None:
    first = await hub.upload(PNG, content_type="audio/mpeg")
    assert first["mime"] == "image/png" and first["size"] == len(PNG)
    again = await hub.upload(PNG)
    assert again == first
    stored = [p.name for p in hub.config.media_dir.iterdir() if p.is_file()]
    assert stored == [first["sha256"]]
    assert await count(hub, "media") == 1
    text = await hub.upload("Thông báo lịch tiêm chủng\n".encode(), content_type="image/png")
    assert text["mime"] == "text/plain"


async def test_media_unknown_type_is_refused(hub: HubHarness) -> None:
    body = await hub.upload(b"\x00\x01\x02\x03" * 100, expect=415)
    assert body["error"] == "unsupported_media_type"
    body = await hub.upload("caf\xe9".encode("latin-1"), expect=415)
    assert await count(hub, "media") == 0
    assert [p for p in hub.config.media_dir.rglob("*") if p.is_file()] == []


async def test_media_size_limit(tmp_path: Path) -> None:
    async with running_hub(tmp_path, media_max_bytes=1000) as hub:
        body = await hub.upload(b"a" * 1001, expect=413)
        assert body["error"] == "too_large"

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
            for _ in range(4):
                yield b"b" * 400

        await hub.call("POST", "/api/v1/media", data=chunks(), expect=413)
        assert await count(hub, "media") == 0
        assert [p for p in hub.config.media_dir.rglob("*") if p.is_file()] == []
        ok = await hub.upload(b"c" * 1000)
        assert ok["size"] == 1000


# ---------------------------------------------------------------- bulletins


async def _bulletin(hub: HubHarness, expect: int = 201, **kw: Any) -> Any:
    payload = {
        "title": "Lịch tiêm chủng",
        "kind": "text",
        "priority": "normal",
        "text": "Thông báo...",
        "targets": {"communes": ["00001"]},
        "schedule": schedule(),
        **kw,
    }
    return await hub.call("POST", "/api/v1/bulletins", json=payload, expect=expect)


async def test_bulletin_create_publish_cancel(hub: HubHarness) -> None:
    await hub.commune()
    created = await _bulletin(hub)
    assert created["state"] == "draft" and created["targets"]["communes"] == ["00001"]
    assert (await hub.call("GET", f"/api/v1/bulletins/{created['id']}"))["id"] == created["id"]
    await hub.call("POST", f"/api/v1/bulletins/{created['id']}/cancel", expect=409)
    published = await hub.call("POST", f"/api/v1/bulletins/{created['id']}/publish")
    assert published["state"] == "published" and published["published_at"]
    again = await hub.call("POST", f"/api/v1/bulletins/{created['id']}/publish", expect=409)
    assert again["error"] == "illegal_transition"
    cancelled = await hub.call("POST", f"/api/v1/bulletins/{created['id']}/cancel")
    assert cancelled["state"] == "cancelled"
    await hub.call("POST", f"/api/v1/bulletins/{created['id']}/cancel", expect=409)
    await hub.call("POST", "/api/v1/bulletins/nope/publish", expect=404)
    listed = await hub.call("GET", "/api/v1/bulletins?state=cancelled")
    assert [b["id"] for b in listed] == [created["id"]]
    assert await hub.call("GET", "/api/v1/bulletins?state=draft") == []
    bad = await hub.call("GET", "/api/v1/bulletins?state=bogus", expect=422)
    assert fields(bad) == ["state"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": schedule(hours=-2)}, "schedule.valid_until"),
        (
            {
                "schedule": {
                    "valid_from": "2030-01-01T08:00:00",
                    "valid_until": "2030-01-02T08:00:00+07:00",
                }
            },
            "schedule.valid_from",
        ),
        ({"schedule": schedule(times=["7h"])}, "schedule.times[0]"),
        (
            {"schedule": {**schedule(), "valid_until": "2000-01-01T00:00:00+07:00"}},
            "schedule.valid_until",
        ),
        ({"targets": {"communes": ["00001", "77777"]}}, "targets.communes[1]"),
        ({"targets": {"devices": ["ghost"]}}, "targets.devices[0]"),
        ({"targets": {}}, "targets"),
        ({"text": None}, "text"),
        ({"kind": "audio", "text": None}, "media"),
        ({"kind": "audio", "media": "0" * 64}, "media"),
        ({"kind": "video", "media": "PNG"}, "media"),
        ({"kind": "image", "media": "WAV"}, "media"),
        ({"kind": "document", "media": "PNG"}, "media"),
        ({"priority": "urgent"}, "priority"),
        ({"title": ""}, "title"),
        ({"display_seconds": 0}, "display_seconds"),
    ],
)
async def test_bulletin_validation_names_field(
    hub: HubHarness, change: dict[str, Any], field: str
) -> None:
    await hub.commune()
    media = {"PNG": (await hub.upload(PNG))["sha256"], "WAV": (await hub.upload(WAV))["sha256"]}
    if change.get("media") in media:
        change = {**change, "media": media[change["media"]]}
    before = await count(hub, "audit")
    body = await _bulletin(hub, expect=422, **change)
    assert field in fields(body), body
    if field == "targets.communes[1]":
        assert "77777" in str(body["detail"])
    assert await count(hub, "bulletins") == 0
    assert await count(hub, "bulletin_communes") == 0
    assert await count(hub, "audit") == before


async def test_bulletin_kinds_match_media(hub: HubHarness, tmp_path: Path) -> None:
    await hub.commune()
    png = (await hub.upload(PNG))["sha256"]
    wav = (await hub.upload(WAV))["sha256"]
    made = text_pdf(tmp_path / "a.pdf", ["Thông báo"], [(200, 30, 40)])
    pdf = (await hub.upload(made.read_bytes()))["sha256"]
    assert (await _bulletin(hub, kind="image", media=png, text=None))["media"][
        "mime"
    ] == "image/png"
    assert (await _bulletin(hub, kind="audio", media=wav))["media"]["mime"] == "audio/wav"
    assert (await _bulletin(hub, kind="document", media=pdf, text=None))["kind"] == "document"


async def test_emergency_without_targets_is_province_wide(hub: HubHarness) -> None:
    await hub.commune("00001")
    await hub.commune("00002")
    await hub.device("00001")
    await hub.device("00002")
    body = await hub.call(
        "POST", "/api/v1/emergencies", expect=201, json={"title": "Bão số 3", "text": "Sơ tán ngay"}
    )
    assert body["state"] == "published" and body["priority"] == "emergency"
    assert body["targets"]["all_communes"] is True
    assert body["targeted"] == 2 and body["pushed"] == 0  # nobody is connected
    until = datetime.fromisoformat(body["schedule"]["valid_until"])
    assert timedelta(minutes=59) < until - datetime.now(UTC) <= timedelta(minutes=60)
    # The province's warning airs three times, half a minute apart, unless told otherwise.
    assert body["schedule"]["repeats"] == 3 and body["schedule"]["interval_s"] == 30
    assert body["schedule"]["until_cancelled"] is False
    bad = await hub.call("POST", "/api/v1/emergencies", json={"title": "x"}, expect=422)
    assert fields(bad) == ["text"]
    bad = await hub.call(
        "POST",
        "/api/v1/emergencies",
        expect=422,
        json={"title": "x", "text": "y", "targets": {"communes": ["zz"]}},
    )
    assert fields(bad) == ["targets.communes[0]"]
    assert await count(hub, "bulletins") == 1


async def test_emergency_airings_are_chosen_and_bounded(hub: HubHarness) -> None:
    await hub.commune("00001")
    body = await hub.call(
        "POST",
        "/api/v1/emergencies",
        expect=201,
        json={"title": "Cháy rừng", "text": "Tránh xa", "repeats": 5, "interval_s": 120},
    )
    assert body["schedule"]["repeats"] == 5 and body["schedule"]["interval_s"] == 120
    body = await hub.call(
        "POST",
        "/api/v1/emergencies",
        expect=201,
        json={"title": "Đê vỡ", "text": "Sơ tán", "until_cancelled": True, "interval_s": 0},
    )
    assert body["schedule"]["until_cancelled"] is True and body["schedule"]["interval_s"] == 0
    for wrong, field in (
        ({"repeats": 0}, "repeats"),
        ({"repeats": 21}, "repeats"),
        ({"interval_s": -1}, "interval_s"),
        ({"interval_s": 3601}, "interval_s"),
        ({"until_cancelled": "maybe"}, "until_cancelled"),
    ):
        bad = await hub.call(
            "POST",
            "/api/v1/emergencies",
            expect=422,
            json={"title": "x", "text": "y", **wrong},
        )
        assert fields(bad) == [field], wrong
    assert await count(hub, "bulletins") == 2
