"""Cursor pagination of the lists that grow (bulletins, devices, plays, audit, incidents,
device updates): every row once
across the pages, even between rows of equal timestamps; the unit's scope on every page; a bad
cursor is a 422 naming `before`. And a request reads back what it just wrote."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.appkeys import DB
from hub.paging import decode_cursor, encode_cursor
from hub.store import releases as releases_store
from hub.testing import HubHarness, running_hub
from loa_contract import VN_TZ
from tests.test_hub_device import publish

LONG_TEXT = " ".join(["Thông báo lịch tiêm chủng cho trẻ em trong xã."] * 40)
LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001")
        await harness.commune("00002")
        yield harness


def bulletin(**kw: Any) -> dict[str, Any]:
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


async def walk(hub: HubHarness, path: str, key: str | None = None) -> list[list[Any]]:
    """Every page of a list, following its Link header as a client would."""
    pages: list[list[Any]] = []
    url: str | None = path
    while url is not None:
        resp = await hub.client.get(url, headers=hub.auth)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        pages.append(body[key] if key else body)
        link = resp.headers.get("Link")
        assert (link is None) == (resp.headers.get("X-Next-Before") is None)
        if link is None:
            url = None
            continue
        found = LINK.match(link)
        assert found, link
        url = found["url"]
        assert f"before={resp.headers['X-Next-Before']}" in url
        assert len(pages) < 1000, "the pages never end"
    return pages


async def make_ties(hub: HubHarness, table: str, column: str, groups: int) -> None:
    """Give rows equal timestamps in `groups` runs: the id must break the ties."""
    db = hub.app[DB]
    # In the order made (the id breaks ties of times made in the same microsecond).
    rows = await db.fetchall(f"SELECT id FROM {table} ORDER BY {column}, id")
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    async with db.transaction() as conn:
        for i, row in enumerate(rows):
            at = (t0 + timedelta(minutes=i * groups // len(rows))).isoformat(
                timespec="microseconds"
            )
            await conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (at, row[0]))


def assert_bad_cursor(body: dict[str, Any]) -> None:
    assert body["error"] == "validation_error"
    assert [d["field"] for d in body["detail"]] == ["before"], body


async def test_bulletins_page_through_250_with_ties_once_each(hub: HubHarness) -> None:
    created = set()
    for i in range(250):
        body = bulletin(title=f"Tin {i}", targets={"communes": ["00001" if i % 5 else "00002"]})
        created.add((await hub.call("POST", "/api/v1/bulletins", json=body, expect=201))["id"])
    await make_ties(hub, "bulletins", "created_at", groups=9)

    pages = await walk(hub, "/api/v1/bulletins?limit=17")
    assert [len(p) for p in pages] == [17] * 14 + [12]
    ids = [b["id"] for page in pages for b in page]
    assert len(ids) == len(set(ids)) == 250 and set(ids) == created
    order = [(b["created_at"], b["id"]) for page in pages for b in page]
    assert order == sorted(order, reverse=True)
    # Every page of a bulletin carries its targets, as the unpaged list did.
    assert all(b["targets"]["communes"] for page in pages for b in page)
    # Without limit: the default page, and a body that is still a plain list.
    first = await hub.call("GET", "/api/v1/bulletins")
    assert isinstance(first, list) and len(first) == 100
    assert [b["id"] for b in first] == ids[:100]

    # Filters hold on every page: the Link keeps them.
    published_in_pages = await walk(hub, "/api/v1/bulletins?limit=40&state=draft&kind=text")
    assert sum(map(len, published_in_pages)) == 250


async def test_a_commune_sees_only_its_bulletins_on_every_page(hub: HubHarness) -> None:
    op = await hub.user("xa2.op", "commune_operator", "00002")
    theirs = set()
    for i in range(30):
        commune = "00002" if i % 3 == 0 else "00001"
        made = await hub.call(
            "POST",
            "/api/v1/bulletins",
            json=bulletin(title=f"Tin {i}", targets={"communes": [commune]}),
            expect=201,
        )
        await hub.call("POST", f"/api/v1/bulletins/{made['id']}/publish")
        if commune == "00002":
            theirs.add(made["id"])
    await make_ties(hub, "bulletins", "created_at", groups=2)
    pages = await walk(op, "/api/v1/bulletins?limit=3")
    assert {b["id"] for page in pages for b in page} == theirs
    assert sum(map(len, pages)) == len(theirs) == 10
    # A cursor taken from the province's list lets the commune see nothing more.
    province = await hub.client.get("/api/v1/bulletins?limit=1", headers=hub.auth)
    cursor = province.headers["X-Next-Before"]
    rest = await op.call("GET", f"/api/v1/bulletins?before={cursor}")
    assert {b["id"] for b in rest} <= theirs


async def test_devices_page_by_commune_and_name_with_filters_and_scope(hub: HubHarness) -> None:
    made: dict[str, str] = {}
    for i in range(250):
        commune = "00001" if i % 4 else "00002"
        kind = "board" if i % 7 == 0 else "speaker"
        # Names repeat: the id tells two devices of one name apart.
        slot = await hub.device(commune, kind, name=f"Cụm {i % 40:02d}")
        made[slot["id"]] = commune
    pages = await walk(hub, "/api/v1/devices?limit=33")
    listed = [d for page in pages for d in page]
    assert len(listed) == 250 and {d["id"] for d in listed} == set(made)
    keys = [(d["commune"], d["name"], d["id"]) for d in listed]
    assert keys == sorted(keys)
    boards = [d for page in await walk(hub, "/api/v1/devices?limit=5&kind=board") for d in page]
    assert {d["id"] for d in boards} == {d["id"] for d in listed if d["kind"] == "board"}
    # The verdict is computed, not stored: pages still fill and nothing is skipped.
    unknown = await walk(hub, "/api/v1/devices?limit=20&verdict=unknown&commune=00001")
    assert all(len(p) == 20 for p in unknown[:-1])
    assert sorted(d["id"] for p in unknown for d in p) == sorted(
        i for i, c in made.items() if c == "00001"
    )
    assert await walk(hub, "/api/v1/devices?limit=20&verdict=ok") == [[]]

    op = await hub.user("xa2.op", "commune_operator", "00002")
    theirs = [d for page in await walk(op, "/api/v1/devices?limit=9") for d in page]
    assert {d["id"] for d in theirs} == {i for i, c in made.items() if c == "00002"}
    assert len(theirs) == 63


async def test_plays_page_newest_first_and_audit_follows_its_link(hub: HubHarness) -> None:
    one = await hub.new_device("00001")
    two = await hub.new_device("00002")
    t0 = datetime(2026, 5, 1, 1, 0, tzinfo=UTC)
    # The hub credits airings only of what a device was sent while it was valid.
    b1 = (await publish(hub, targets={"communes": ["00001", "00002"]}))["id"]
    for dev in (one, two):
        await hub.backdate(t0 - timedelta(days=1), dev.id, b1)
    for dev in (one, two):
        reports = [
            {
                "type": "play",
                "seq": seq,
                "bulletin_id": b1,
                "priority": "normal",
                "kind": "text",
                # Ten plays start in each minute: equal started_at across both devices.
                "started_at": (t0 + timedelta(minutes=seq // 10)).isoformat(),
                "ended_at": (t0 + timedelta(minutes=seq // 10, seconds=30)).isoformat(),
                "outcome": "completed",
                "position_s": 30.0,
            }
            for seq in range(1, 126)
        ]
        status, _ = await dev.report(reports)
        assert status == 200
    pages = await walk(hub, "/api/v1/plays?limit=16")
    plays = [(p["device_id"], p["seq"]) for page in pages for p in page]
    assert len(plays) == len(set(plays)) == 250
    started = [p["started_at"] for page in pages for p in page]
    assert started == sorted(started, reverse=True)
    op = await hub.user("xa2.op", "commune_operator", "00002")
    theirs = [p for page in await walk(op, "/api/v1/plays?limit=16") for p in page]
    assert len(theirs) == 125 and {p["device_id"] for p in theirs} == {two.id}
    filtered = await walk(hub, f"/api/v1/plays?limit=50&device={one.id}")
    assert sum(map(len, filtered)) == 125

    # The audit log keeps its page object; its Link leads to the same next page.
    entries = [e["id"] for page in await walk(hub, "/api/v1/audit?limit=3", "items") for e in page]
    assert entries == sorted(set(entries), reverse=True)
    every = await hub.app[DB].fetchone("SELECT COUNT(*) FROM audit")
    assert len(entries) == every[0]


async def test_incidents_page_newest_first_with_ties_and_scope(hub: HubHarness) -> None:
    made: dict[str, str] = {}
    for i in range(40):
        commune = "00002" if i % 4 == 0 else "00001"
        opened = await hub.call(
            "POST",
            "/api/v1/incidents",
            json={"what": f"Mất điện {i}", "commune": commune},
            expect=201,
        )
        made[opened["id"]] = commune
    await make_ties(hub, "incidents", "opened_at", groups=3)
    pages = await walk(hub, "/api/v1/incidents?limit=7")
    assert [len(p) for p in pages] == [7] * 5 + [5]
    listed = [i["id"] for page in pages for i in page]
    assert len(listed) == len(set(listed)) == 40 and set(listed) == set(made)
    # The default page is the first 200, as before paging: a body that is still a list.
    assert [i["id"] for i in await hub.call("GET", "/api/v1/incidents")] == listed
    op = await hub.user("xa2.op", "commune_operator", "00002")
    theirs = [i["id"] for page in await walk(op, "/api/v1/incidents?limit=3") for i in page]
    assert set(theirs) == {i for i, c in made.items() if c == "00002"} and len(theirs) == 10
    closed = [i for page in await walk(hub, "/api/v1/incidents?state=closed&limit=5") for i in page]
    assert closed == []


async def device_updates(
    hub: HubHarness, commune: str, count: int, at: Callable[[int], datetime]
) -> list[str]:
    """`count` new devices of `commune`, each with its word on an update from 0.1.0: the
    n-th at `at(n)`, every third one "updated", the others "failed", to 0.2.0 or 0.3.0 by
    turns. Their ids, in the order made."""
    ids = [(await hub.device(commune))["id"] for _ in range(count)]
    async with hub.app[DB].transaction() as tx:
        for n, device_id in enumerate(ids):
            await releases_store.save_device_update(
                tx,
                device_id,
                running_version="0.1.0",
                state="failed" if n % 3 else "updated",
                target_version="0.2.0" if n % 2 else "0.3.0",
                reason=None,
                switch_silence_s=None,
                at=at(n),
            )
    return ids


async def test_device_updates_page_past_a_thousand_devices_worth(hub: HubHarness) -> None:
    t0 = datetime(2026, 5, 1, tzinfo=UTC)
    # Four devices a minute: ties the device id must break.
    ids = await device_updates(hub, "00001", 30, lambda n: t0 + timedelta(minutes=n // 4))
    pages = await walk(hub, "/api/v1/device-updates?limit=4")
    listed = [(u["reported_at"], u["device_id"]) for page in pages for u in page]
    assert len(listed) == len(set(listed)) == 30 and {d for _, d in listed} == set(ids)
    assert listed == sorted(listed, reverse=True)
    narrowed = await walk(hub, "/api/v1/device-updates?limit=4&version=0.2.0")
    assert sum(map(len, narrowed)) == 15


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/bulletins",
        "/api/v1/devices",
        "/api/v1/plays",
        "/api/v1/refused-reports",
        "/api/v1/incidents",
        "/api/v1/device-updates",
    ],
)
async def test_bad_cursors_are_422_naming_before(hub: HubHarness, path: str) -> None:
    def b64(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    bad = [
        "not-a-cursor",
        "%%%",
        b64({"a": 1}),
        b64(["2026-01-01", "x", "y", "z"]),
        b64([1, 2]),
        b64(["2026-01-01", 2**63]),
        b64(["x", 9223372036854775808]),
        b64([9223372036854775808]),
        "A" * 5000,
        base64.urlsafe_b64encode(b"[" * 700 + b"]" * 700).decode(),
    ]
    for cursor in bad:
        body = await hub.call("GET", path, params={"before": cursor}, expect=422)
        assert_bad_cursor(body)
    for limit in ("0", "1001", "x"):
        body = await hub.call("GET", path, params={"limit": limit}, expect=422)
        assert [d["field"] for d in body["detail"]] == ["limit"]


@pytest.mark.parametrize(
    "path",
    ["/api/v1/bulletins", "/api/v1/devices", "/api/v1/plays", "/api/v1/audit"],
)
async def test_a_parameter_given_twice_is_422_naming_it(hub: HubHarness, path: str) -> None:
    # Reading the first of limit=2&limit=500 would answer a question nobody asked.
    body = await hub.call("GET", f"{path}?limit=2&limit=500", expect=422)
    assert body["detail"] == [{"field": "limit", "message": "given more than once; give it once"}]
    body = await hub.call("GET", f"{path}?before=a&limit=2&before=a", expect=422)
    assert [d["field"] for d in body["detail"]] == ["before"]
    await hub.call("GET", f"{path}?limit=2")


async def test_audit_cursor_out_of_range_is_422_not_500(hub: HubHarness) -> None:
    for before in ("9223372036854775808", "0", "-1", "x"):
        body = await hub.call("GET", "/api/v1/audit", params={"before": before}, expect=422)
        assert_bad_cursor(body)
    assert (await hub.call("GET", "/api/v1/audit?before=9223372036854775807"))["items"]


def test_cursor_round_trip_and_shape() -> None:
    for key in [("2026-05-01T00:00:00.000000+00:00", "id"), ("00001", "Cụm loa", "x"), ("a", 7)]:
        shape = tuple(type(v) for v in key)
        assert decode_cursor(encode_cursor(key), shape) == key
    with pytest.raises(Exception, match="before"):
        decode_cursor(encode_cursor(("a", 7)), (str, str))
    with pytest.raises(Exception, match="before"):
        decode_cursor(encode_cursor(("a", True)), (str, int))


async def test_openapi_documents_the_paging(hub: HubHarness) -> None:
    doc = await hub.call("GET", "/api/v1/openapi.json", auth=False)
    for path in ("/api/v1/bulletins", "/api/v1/devices", "/api/v1/plays", "/api/v1/audit"):
        op = doc["paths"][path]["get"]
        names = {p["name"] for p in op["parameters"]}
        assert {"before", "limit"} <= names, path
        assert set(op["responses"]["200"]["headers"]) == {"Link", "X-Next-Before"}, path
        assert "422" in op["responses"], path


async def test_concurrent_creates_each_read_their_own_bulletin(hub: HubHarness) -> None:
    # A create answers with the row it just wrote, read back through the shared reader
    # connection, while other requests read through it too.
    async def create(i: int) -> int:
        body = bulletin(title=f"Tin {i}", targets={"communes": ["00001"]})
        resp = await hub.client.post("/api/v1/bulletins", json=body, headers=hub.auth)
        return resp.status

    async def browse() -> None:
        for _ in range(20):
            await hub.call("GET", "/api/v1/bulletins?limit=5")

    results = await asyncio.gather(*(create(i) for i in range(150)), *(browse() for _ in range(8)))
    assert results[:150] == [201] * 150
