"""The review workflow, unit scoping, a commune's running order, emergencies device by device,
and the audit log's browsing and export."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hub.appkeys import DB
from hub.testing import HubHarness, running_hub

LONG_TEXT = " ".join(["Thông báo lịch tiêm chủng cho trẻ em trong xã."] * 40)  # 400 words


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001")
        await harness.commune("00002")
        yield harness


def schedule(**kw: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "valid_from": (now - timedelta(minutes=1)).isoformat(),
        "valid_until": (now + timedelta(days=1)).isoformat(),
        **kw,
    }


def bulletin(**kw: Any) -> dict[str, Any]:
    return {
        "title": "Tiêm chủng",
        "kind": "text",
        "priority": "normal",
        "text": LONG_TEXT,
        "category": "socioeconomic_development",
        "schedule": schedule(),
        **kw,
    }


async def count(hub: HubHarness, sql: str) -> int:
    row = await hub.app[DB].fetchone(sql)
    return int(row[0])


# ---------------------------------------------------------------- review workflow


async def test_contribute_return_resubmit_approve(hub: HubHarness) -> None:
    agency = await hub.user("bt.soyte", "contributor", "so-yte")
    reviewer = await hub.user("tt.lan", "reviewer")
    draft = await agency.call("POST", "/api/v1/bulletins", json=bulletin(), expect=201)
    assert draft["state"] == "draft" and draft["unit"] == "so-yte"
    assert draft["targets"] == {"communes": [], "devices": [], "all_communes": False}
    bid = draft["id"]
    # Agencies propose; they neither publish nor cancel.
    await agency.call("POST", f"/api/v1/bulletins/{bid}/publish", expect=403)
    # Nor may a reviewer publish a draft the agency never submitted: that skips its checks.
    skipped = await reviewer.call("POST", f"/api/v1/bulletins/{bid}/publish", expect=409)
    assert skipped["error"] == "not_submitted"
    assert (await reviewer.call("GET", f"/api/v1/bulletins/{bid}"))["state"] == "draft"
    # The reviewer's own draft it may publish directly.
    own = await reviewer.call(
        "POST", "/api/v1/bulletins", json=bulletin(targets={"communes": ["00001"]}), expect=201
    )
    await reviewer.call("POST", f"/api/v1/bulletins/{own['id']}/publish")
    await reviewer.call(
        "POST", f"/api/v1/bulletins/{bid}/return", json={"comment": "x"}, expect=409
    )
    submitted = await agency.call("POST", f"/api/v1/bulletins/{bid}/submit")
    assert submitted["state"] == "submitted"
    await agency.call("POST", f"/api/v1/bulletins/{bid}/submit", expect=409)
    await agency.call("PUT", f"/api/v1/bulletins/{bid}", json=bulletin(), expect=409)
    queue = await reviewer.call("GET", "/api/v1/bulletins?state=submitted")
    assert [b["id"] for b in queue] == [bid]
    await reviewer.call("POST", f"/api/v1/bulletins/{bid}/return", json={}, expect=422)
    returned = await reviewer.call(
        "POST", f"/api/v1/bulletins/{bid}/return", json={"comment": "Thiếu nguồn tin"}
    )
    assert returned["state"] == "returned" and returned["review_comment"] == "Thiếu nguồn tin"
    await reviewer.call("POST", f"/api/v1/bulletins/{bid}/approve", json={}, expect=409)
    edited = await agency.call(
        "PUT", f"/api/v1/bulletins/{bid}", json=bulletin(title="Tiêm chủng (sửa)")
    )
    assert edited["title"] == "Tiêm chủng (sửa)" and edited["state"] == "returned"
    await agency.call("POST", f"/api/v1/bulletins/{bid}/submit")
    # Approval without targets has nowhere to go.
    bad = await reviewer.call("POST", f"/api/v1/bulletins/{bid}/approve", json={}, expect=422)
    assert bad["detail"][0]["field"] == "targets"
    assert (await reviewer.call("GET", f"/api/v1/bulletins/{bid}"))["state"] == "submitted"
    approved = await reviewer.call(
        "POST",
        f"/api/v1/bulletins/{bid}/approve",
        json={
            "targets": {"communes": ["00001"]},
            "priority": "priority",
            "schedule": schedule(times=["07:00"]),
            "comment": "Đồng ý",
        },
    )
    assert approved["state"] == "published" and approved["priority"] == "priority"
    assert approved["targets"]["communes"] == ["00001"]
    await reviewer.call("POST", f"/api/v1/bulletins/{bid}/approve", json={}, expect=409)
    await agency.call("POST", f"/api/v1/bulletins/{bid}/cancel", expect=403)
    await agency.call("PUT", f"/api/v1/bulletins/{bid}", json=bulletin(), expect=409)
    history = await agency.call("GET", f"/api/v1/bulletins/{bid}/history")
    assert [(h["action"], h["from_state"], h["to_state"], h["actor"]) for h in history] == [
        ("create", None, "draft", "bt.soyte"),
        ("submit", "draft", "submitted", "bt.soyte"),
        ("return", "submitted", "returned", "tt.lan"),
        ("edit", "returned", "returned", "bt.soyte"),
        ("submit", "returned", "submitted", "bt.soyte"),
        ("approve", "submitted", "published", "tt.lan"),
    ]
    assert history[2]["comment"] == "Thiếu nguồn tin" and history[2]["unit"] == "province"
    cancelled = await reviewer.call("POST", f"/api/v1/bulletins/{bid}/cancel")
    assert cancelled["state"] == "cancelled"
    await reviewer.call("POST", f"/api/v1/bulletins/{bid}/cancel", expect=409)
    page = await hub.call("GET", "/api/v1/audit", params={"object": bid, "action": "bulletin."})
    got = [e["action"] for e in reversed(page["items"])]
    assert got == [
        "bulletin.create",
        "bulletin.submit",
        "bulletin.return",
        "bulletin.edit",
        "bulletin.submit",
        "bulletin.targets",
        "bulletin.approve",
        "bulletin.cancel",
    ]
    entry = next(e for e in page["items"] if e["action"] == "bulletin.return")
    assert entry["before"] == {"state": "submitted"} and entry["after"] == {"state": "returned"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"text": "Quá ngắn"}, "text"),
        ({"category": None}, "category"),
        ({"priority": "priority"}, "schedule.times"),
    ],
)
async def test_submit_checks_the_proposal(
    hub: HubHarness, change: dict[str, Any], field: str
) -> None:
    agency = await hub.user("bt.bao", "contributor", "bao-hp")
    draft = await agency.call("POST", "/api/v1/bulletins", json=bulletin(**change), expect=201)
    body = await agency.call("POST", f"/api/v1/bulletins/{draft['id']}/submit", expect=422)
    assert field in [d["field"] for d in body["detail"]]
    assert (await agency.call("GET", f"/api/v1/bulletins/{draft['id']}"))["state"] == "draft"


async def test_category_comes_from_the_list(hub: HubHarness) -> None:
    categories = await hub.call("GET", "/api/v1/categories")
    assert {"code", "vi", "en"} == set(categories[0])
    assert "disaster_emergency" in {c["code"] for c in categories}
    body = await hub.call(
        "POST",
        "/api/v1/bulletins",
        expect=422,
        json=bulletin(category="gossip", targets={"communes": ["00001"]}),
    )
    assert body["detail"][0]["field"] == "category"
    direct = await hub.call(
        "POST",
        "/api/v1/bulletins",
        expect=201,
        json=bulletin(category=None, targets={"communes": ["00001"]}),
    )
    published = await hub.call("POST", f"/api/v1/bulletins/{direct['id']}/publish")
    assert published["category"] == "other"


async def test_agencies_see_only_their_own(hub: HubHarness) -> None:
    one = await hub.user("a.one", "contributor", "so-yte")
    two = await hub.user("a.two", "contributor", "so-nn")
    mine = await one.call("POST", "/api/v1/bulletins", json=bulletin(), expect=201)
    assert await two.call("GET", "/api/v1/bulletins") == []
    await two.call("GET", f"/api/v1/bulletins/{mine['id']}", expect=403)
    await two.call("POST", f"/api/v1/bulletins/{mine['id']}/submit", expect=403)
    await two.call("GET", "/api/v1/devices", expect=403)
    assert (await one.call("GET", f"/api/v1/bulletins/{mine['id']}"))["state"] == "draft"


# ---------------------------------------------------------------- commune scoping


async def test_commune_operator_is_confined_to_its_commune(hub: HubHarness) -> None:
    op = await hub.user("xa1.op", "commune_operator", "00001")
    own_dev = await op.call(
        "POST",
        "/api/v1/devices",
        json={"commune": "00001", "name": "Loa", "kind": "speaker"},
        expect=201,
    )
    other_dev = await hub.device("00002")
    province_draft = await hub.call(
        "POST", "/api/v1/bulletins", json=bulletin(targets={"communes": ["00002"]}), expect=201
    )
    province_pub = await hub.call(
        "POST", "/api/v1/bulletins", json=bulletin(targets={"communes": ["00002"]}), expect=201
    )
    await hub.call("POST", f"/api/v1/bulletins/{province_pub['id']}/publish")
    before = {
        t: await count(hub, f"SELECT COUNT(*) FROM {t}")
        for t in ("bulletins", "devices", "bulletin_events", "commune_order")
    }
    refused = [
        ("POST", "/api/v1/devices", {"commune": "00002", "name": "x", "kind": "speaker"}),
        ("PUT", "/api/v1/communes/00002", {"volume": 5}),
        ("GET", "/api/v1/communes/00002", None),
        ("GET", f"/api/v1/devices/{other_dev['id']}", None),
        ("POST", f"/api/v1/devices/{other_dev['id']}/enrollment", None),
        ("POST", f"/api/v1/devices/{other_dev['id']}/commands", {"type": "stop"}),
        ("POST", "/api/v1/bulletins", bulletin(targets={"communes": ["00002"]})),
        ("POST", "/api/v1/bulletins", bulletin(targets={"devices": [other_dev["id"]]})),
        (
            "POST",
            "/api/v1/emergencies",
            {"title": "x", "text": "y", "targets": {"communes": ["00002"]}},
        ),
        ("GET", f"/api/v1/bulletins/{province_draft['id']}", None),
        ("POST", f"/api/v1/bulletins/{province_draft['id']}/publish", None),
        ("POST", f"/api/v1/bulletins/{province_pub['id']}/cancel", None),
        ("PUT", "/api/v1/communes/00002/order", {"bulletins": []}),
        ("GET", "/api/v1/communes/00002/order", None),
        ("POST", "/api/v1/communes", {"code": "00003", "name": "x"}),
        (
            "POST",
            "/api/v1/users",
            {"username": "zz", "role": "viewer", "unit": "00002", "password": "Temp-pass1!"},
        ),
    ]
    for method, path, payload in refused:
        kw = {"json": payload} if payload is not None else {}
        body = await op.call(method, path, expect=403, **kw)
        assert body["error"] in ("out_of_scope", "forbidden"), (method, path, body)
    after = {
        t: await count(hub, f"SELECT COUNT(*) FROM {t}")
        for t in ("bulletins", "devices", "bulletin_events", "commune_order")
    }
    assert after == before
    assert (await hub.call("GET", "/api/v1/communes/00002"))["volume"] == 70
    assert (await hub.call("GET", f"/api/v1/bulletins/{province_pub['id']}"))["state"] == (
        "published"
    )
    # What it may see is its own.
    assert [c["code"] for c in await op.call("GET", "/api/v1/communes")] == ["00001"]
    assert [d["id"] for d in await op.call("GET", "/api/v1/devices")] == [own_dev["id"]]
    assert await op.call("GET", "/api/v1/bulletins") == []
    # Its own commune's bulletin goes out directly, as a commune bulletin.
    own = await op.call(
        "POST", "/api/v1/bulletins", json=bulletin(targets={"communes": ["00001"]}), expect=201
    )
    published = await op.call("POST", f"/api/v1/bulletins/{own['id']}/publish")
    assert published["source_level"] == "commune" and published["unit"] == "00001"
    await op.call("PUT", "/api/v1/communes/00001", json={"volume": 55})
    # A province bulletin published to it becomes visible; another commune's does not.
    to_us = await hub.call(
        "POST", "/api/v1/bulletins", json=bulletin(targets={"communes": ["00001"]}), expect=201
    )
    await hub.call("POST", f"/api/v1/bulletins/{to_us['id']}/publish")
    seen = {b["id"] for b in await op.call("GET", "/api/v1/bulletins")}
    assert seen == {own["id"], to_us["id"]}
    # ...but cancelling the province's bulletin is the province's call.
    await op.call("POST", f"/api/v1/bulletins/{to_us['id']}/cancel", expect=403)


async def test_commune_emergency_defaults_to_its_commune(hub: HubHarness) -> None:
    op = await hub.user("xa1.op", "commune_operator", "00001")
    await hub.device("00001")
    await hub.device("00002")
    body = await op.call(
        "POST", "/api/v1/emergencies", json={"title": "Lũ", "text": "Sơ tán"}, expect=201
    )
    assert body["targets"] == {"communes": ["00001"], "devices": [], "all_communes": False}
    assert body["targeted"] == 1 and body["unit"] == "00001"
    assert body["schedule"]["repeats"] == 2  # a commune's own alert: twice by default
    cancelled = await op.call("POST", f"/api/v1/emergencies/{body['id']}/cancel")
    assert cancelled["state"] == "cancelled" and cancelled["command_id"]
    actions = [
        e["action"]
        for e in (await hub.call("GET", "/api/v1/audit", params={"object": body["id"]}))["items"]
    ]
    assert "emergency.start" in actions and "bulletin.cancel" in actions


async def test_viewer_and_technician_permissions(hub: HubHarness) -> None:
    viewer = await hub.user("xem", "viewer", "province")
    tech = await hub.user("kt.xa2", "technician", "00002")
    await viewer.call("GET", "/api/v1/devices")
    await viewer.call("POST", "/api/v1/bulletins", json=bulletin(), expect=403)
    await viewer.call("POST", "/api/v1/emergencies", json={"title": "x", "text": "y"}, expect=403)
    await tech.call(
        "POST",
        "/api/v1/devices",
        json={"commune": "00002", "name": "Loa", "kind": "speaker"},
        expect=201,
    )
    await tech.call(
        "POST",
        "/api/v1/devices",
        json={"commune": "00001", "name": "Loa", "kind": "speaker"},
        expect=403,
    )
    await tech.call("POST", "/api/v1/emergencies", json={"title": "x", "text": "y"}, expect=403)
    await tech.call("PUT", "/api/v1/communes/00002", json={"volume": 1}, expect=403)


# ---------------------------------------------------------------- running order, emergencies


async def test_commune_orders_its_priority_bulletins(hub: HubHarness) -> None:
    op = await hub.user("xa1.op", "commune_operator", "00001")
    dev = await hub.new_device("00001")
    ids = []
    for title in ("Tỉnh", "Xã"):
        who = hub if title == "Tỉnh" else op
        created = await who.call(
            "POST",
            "/api/v1/bulletins",
            expect=201,
            json=bulletin(
                title=title,
                priority="priority",
                targets={"communes": ["00001"]},
                schedule=schedule(times=["07:00"]),
            ),
        )
        await who.call("POST", f"/api/v1/bulletins/{created['id']}/publish")
        ids.append(created["id"])
    normal = await hub.call(
        "POST", "/api/v1/bulletins", json=bulletin(targets={"communes": ["00001"]}), expect=201
    )
    await hub.call("POST", f"/api/v1/bulletins/{normal['id']}/publish")
    bad = await op.call(
        "PUT", "/api/v1/communes/00001/order", json={"bulletins": [normal["id"]]}, expect=422
    )
    assert bad["detail"][0]["field"] == "bulletins[0]"
    manifest, _ = await dev.manifest()
    version = manifest.version
    order = await op.call(
        "PUT", "/api/v1/communes/00001/order", json={"bulletins": [ids[1], ids[0]]}
    )
    assert order["bulletins"] == [ids[1], ids[0]]
    manifest, _ = await dev.manifest()
    assert manifest.version > version
    by_id = {b.id: b.order for b in manifest.bulletins}
    assert by_id[ids[1]] < by_id[ids[0]]
    entry = (await hub.call("GET", "/api/v1/audit", params={"action": "commune.order"}))["items"]
    assert entry[0]["after"] == {"bulletins": [ids[1], ids[0]]} and entry[0]["actor"] == "xa1.op"


async def test_emergency_status_device_by_device(hub: HubHarness) -> None:
    one = await hub.new_device("00001")
    two = await hub.new_device("00002")
    body = await hub.call(
        "POST", "/api/v1/emergencies", json={"title": "Bão", "text": "Sơ tán"}, expect=201
    )
    status = await hub.call("GET", f"/api/v1/emergencies/{body['id']}")
    assert status["targeted"] == 2 and status["started"] == 0
    now = datetime.now(UTC)
    code, _ = await one.report(
        [
            {
                "type": "play",
                "seq": 1,
                "bulletin_id": body["id"],
                "priority": "emergency",
                "kind": "text",
                "started_at": now.isoformat(),
                "ended_at": (now + timedelta(seconds=5)).isoformat(),
                "outcome": "completed",
            }
        ]
    )
    assert code == 200
    status = await hub.call("GET", f"/api/v1/emergencies/{body['id']}")
    by_device = {d["device_id"]: d for d in status["devices"]}
    assert by_device[one.id]["started"] is True and by_device[one.id]["outcome"] == "completed"
    assert by_device[two.id]["started"] is False
    assert status["started"] == 1
    # Aired again (repeats): the first start stays, the outcome is the latest airing's.
    code, _ = await two.report(
        [
            {
                "type": "play",
                "seq": seq,
                "bulletin_id": body["id"],
                "priority": "emergency",
                "kind": "text",
                "started_at": (now + timedelta(seconds=start)).isoformat(),
                "ended_at": (now + timedelta(seconds=start + 4)).isoformat(),
                "outcome": outcome,
            }
            for seq, start, outcome in ((1, 0, "preempted"), (2, 40, "completed"))
        ]
    )
    assert code == 200
    status = await hub.call("GET", f"/api/v1/emergencies/{body['id']}")
    by_device = {d["device_id"]: d for d in status["devices"]}
    assert by_device[two.id]["outcome"] == "completed"
    assert datetime.fromisoformat(by_device[two.id]["started_at"]) == now
    assert status["started"] == 2
    op = await hub.user("xa2.op", "commune_operator", "00002")
    scoped = await op.call("GET", f"/api/v1/emergencies/{body['id']}")
    assert [d["device_id"] for d in scoped["devices"]] == [two.id]
    normal = await hub.call(
        "POST", "/api/v1/bulletins", json=bulletin(targets={"communes": ["00001"]}), expect=201
    )
    await hub.call("GET", f"/api/v1/emergencies/{normal['id']}", expect=404)


# ---------------------------------------------------------------- audit


async def test_audit_filters_pages_and_csv(hub: HubHarness) -> None:
    for i in range(5):
        await hub.commune(f"1000{i}")
    page = await hub.call("GET", "/api/v1/audit", params={"action": "commune.create", "limit": "2"})
    assert len(page["items"]) == 2 and page["next_before"]
    codes = [e["object"] for e in page["items"]]
    while page["next_before"]:
        page = await hub.call(
            "GET",
            "/api/v1/audit",
            params={"action": "commune.create", "limit": "2", "before": page["next_before"]},
        )
        codes += [e["object"] for e in page["items"]]
    assert codes == ["10004", "10003", "10002", "10001", "10000", "00002", "00001"]
    entry = (await hub.call("GET", "/api/v1/audit", params={"object": "10004"}))["items"][0]
    assert entry["actor"] == "admin" and entry["address"] == "127.0.0.1"
    assert entry["after"]["name"] == "Xã 10004"
    later = datetime.now(UTC) + timedelta(hours=1)
    empty = await hub.call("GET", "/api/v1/audit", params={"since": later.isoformat()})
    assert empty["items"] == []
    until = await hub.call("GET", "/api/v1/audit", params={"until": later.isoformat()})
    assert len(until["items"]) >= 8
    bad = await hub.call("GET", "/api/v1/audit", params={"since": "yesterday"}, expect=422)
    assert bad["detail"][0]["field"] == "since"
    resp = await hub.client.get(
        "/api/v1/audit.csv", params={"action": "commune."}, headers=hub.auth
    )
    assert resp.status == 200 and resp.content_type == "text/csv"
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert rows[0][:3] == ["id", "at", "actor"]
    assert [r[6] for r in rows[1:]] == [
        "00001",
        "00002",
        "10000",
        "10001",
        "10002",
        "10003",
        "10004",
    ]


#: How each backend refuses a change to an append-only table.
REFUSED = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)


async def test_audit_has_no_delete_or_edit(hub: HubHarness) -> None:
    for method in ("DELETE", "PUT", "PATCH"):
        resp = await hub.client.request(method, "/api/v1/audit", headers=hub.auth)
        assert resp.status == 405
    await hub.call(
        "POST", "/api/v1/bulletins", json=bulletin(targets={"communes": ["00001"]}), expect=201
    )
    db = hub.app[DB]
    with pytest.raises(REFUSED, match="append-only"):
        await db.execute("DELETE FROM audit")
    with pytest.raises(REFUSED, match="append-only"):
        await db.execute("UPDATE audit SET actor = 'x'")
    with pytest.raises(REFUSED, match="append-only"):
        await db.execute("DELETE FROM bulletin_events")
