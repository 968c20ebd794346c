"""Hub-to-hub exchange (hub/exchange.py, docs/exchange.md) between two real hubs on
127.0.0.1: a central hub offers bulletins down, signed; a province hub takes them by its
policy, follows cancellations, and sends its submitted monthly report up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hub.appkeys import DB
from hub.cli import main as hub_main
from hub.exchange import ExchangeFeed, add_downstream, poll_upstream
from hub.outbound import OutboundError
from hub.store import exchange as exchange_store
from hub.testing import HubHarness, running_hub
from loa_contract import VN_TZ, HubSigner, utcnow
from tests.cap_samples import when
from tests.real_files import wav_bytes

WAV = wav_bytes()  # a real recording: the hub decodes what it keeps
LOOPBACK = ("127.0.0.1/32",)

#: Two hubs, each with its own database: the PostgreSQL run gives a test one database.
pytestmark = pytest.mark.sqlite_only("two hubs need two databases")


@asynccontextmanager
async def two_hubs(tmp_path: Path, policy: str) -> AsyncIterator[tuple[HubHarness, HubHarness]]:
    async with (
        running_hub(tmp_path / "central", cap_sender="htttn-tw") as upper,
        running_hub(tmp_path / "province", outbound_allowed_networks=LOOPBACK) as lower,
    ):
        await upper.commune("TW", name="Toàn quốc")
        await lower.commune("00001", name="Xã Tân Phước")
        await lower.commune("00002", name="Xã Hoà Bình")
        token = await add_downstream(upper.app[DB], "hai-phong", now=utcnow())
        url = str(upper.client.make_url("")).rstrip("/")
        added = await asyncio.to_thread(
            hub_main,
            [
                "upstream",
                "add",
                url,
                f"--token={token}",
                "--policy",
                policy,
                "--data",
                str(lower.config.data_dir),
            ],
        )
        assert added == 0
        yield upper, lower


async def poll(lower: HubHarness) -> list[str]:
    [upstream] = await exchange_store.upstreams(lower.app[DB])
    return await poll_upstream(lower.app, upstream)


async def publish(upper: HubHarness, **fields: Any) -> str:
    body = {
        "kind": "text",
        "priority": "normal",
        "targets": {"communes": ["TW"]},
        "schedule": {"valid_from": when(), "valid_until": when(timedelta(hours=6))},
        **fields,
    }
    made = await upper.call("POST", "/api/v1/bulletins", json=body, expect=201)
    await upper.call("POST", f"/api/v1/bulletins/{made['id']}/publish")
    return str(made["id"])


async def test_bulletins_flow_down_by_policy_and_emergencies_straight_through(
    tmp_path: Path,
) -> None:
    async with two_hubs(tmp_path, "review") as (upper, lower):
        news = await publish(upper, title="Thông tin trung ương", text="Nội dung")
        sound = (await upper.upload(WAV))["sha256"]
        radio = await publish(
            upper, title="Bản tin phát thanh", kind="audio", priority="priority", media=sound
        )
        emergency = await upper.call(
            "POST",
            "/api/v1/emergencies",
            json={"title": "Bão số 5", "text": "Gió giật cấp 12"},
            expect=201,
        )
        outcomes = await poll(lower)
        assert sorted(outcomes) == sorted(
            [f"{news}: review", f"{radio}: review", f"{emergency['id']}: published"]
        )
        taken = {b["title"]: b for b in await lower.call("GET", "/api/v1/bulletins")}
        assert taken["Thông tin trung ương"]["state"] == "submitted"
        assert taken["Thông tin trung ương"]["targets"]["communes"] == ["00001", "00002"]
        assert taken["Bản tin phát thanh"]["media"]["sha256"] == sound
        storm = taken["Bão số 5"]
        assert storm["state"] == "published" and storm["targets"]["all_communes"] is True
        assert {b["source_level"] for b in taken.values()} == {"central"}
        assert storm["created_by"].startswith("upstream:")
        assert await poll(lower) == []  # taken once
        # A cancellation above stops it below.
        await upper.call("POST", f"/api/v1/emergencies/{emergency['id']}/cancel")
        assert await poll(lower) == [f"{emergency['id']}: cancelled"]
        storm = await lower.call("GET", f"/api/v1/bulletins/{storm['id']}")
        assert storm["state"] == "cancelled"
        # The lower hub's own bulletins do not go back up.
        own = await lower.call(
            "POST",
            "/api/v1/bulletins",
            json={
                "title": "Tin tỉnh",
                "kind": "text",
                "priority": "normal",
                "text": "x",
                "targets": {"communes": ["00001"]},
                "schedule": {"valid_from": when(), "valid_until": when(timedelta(hours=1))},
            },
            expect=201,
        )
        await lower.call("POST", f"/api/v1/bulletins/{own['id']}/publish")
        feed_resp = await lower.client.get("/api/v1/exchange/feed", headers=lower.auth)
        envelope = await feed_resp.json()
        keys = await lower.call("GET", "/api/v1/exchange/keys", auth=False)
        from loa_contract import HubKey, TrustedKeys

        feed = TrustedKeys([HubKey.model_validate(k) for k in keys]).open(
            envelope_bytes(envelope), ExchangeFeed
        )
        assert [i.title for i in feed.items] == ["Tin tỉnh"]  # not what it took from above
        audit = await lower.call("GET", "/api/v1/audit", params={"action": "exchange."})
        actions = {a["action"] for a in audit["items"]}
        assert {"exchange.take", "exchange.key_pinned", "exchange.upstream_add"} <= actions


def envelope_bytes(envelope: dict[str, Any]) -> bytes:
    import json

    return json.dumps(envelope).encode()


async def test_auto_policy_publishes_and_the_feed_carries_cap(tmp_path: Path) -> None:
    async with two_hubs(tmp_path, "auto") as (upper, lower):
        await publish(upper, title="Lịch tiêm chủng", text="Tiêm ngày 5")
        await upper.call(
            "POST", "/api/v1/emergencies", json={"title": "Lũ", "text": "Sơ tán"}, expect=201
        )
        await poll(lower)
        states = {b["title"]: b["state"] for b in await lower.call("GET", "/api/v1/bulletins")}
        assert states == {"Lịch tiêm chủng": "published", "Lũ": "published"}
        # The feed's emergencies also speak CAP 1.2, valid by the same validator.
        resp = await upper.client.get("/api/v1/exchange/feed", headers=upper.auth)
        feed = upper_feed(upper, await resp.read())
        import defusedxml.ElementTree as SafeET

        from hub.domain import cap as capdef

        [flood] = [i for i in feed.items if i.cap]
        assert capdef.validate(SafeET.fromstring(flood.cap)) == []


def upper_feed(upper: HubHarness, body: bytes) -> ExchangeFeed:
    from hub.appkeys import KEYRING
    from loa_contract import TrustedKeys

    return TrustedKeys(upper.app[KEYRING].hub_keys()).open(body, ExchangeFeed)


async def test_reports_go_up_once(tmp_path: Path) -> None:
    async with two_hubs(tmp_path, "review") as (upper, lower):
        today = datetime.now(VN_TZ).date()
        previous = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
        await lower.call(
            "POST", "/api/v1/reports/monthly/submit", params={"month": previous}, expect=201
        )
        outcomes = await poll(lower)
        assert outcomes == [f"report {date.fromisoformat(previous + '-01')}: sent"]
        assert await poll(lower) == []
        [received] = await upper.call("GET", "/api/v1/exchange/reports")
        assert received["downstream"] == "hai-phong" and received["scope"] == "province"
        assert received["report"]["submitted_by"] == "admin"
        # Only a lower hub sends reports; the upper hub's own admin cannot.
        refused = await upper.call(
            "POST", "/api/v1/exchange/reports", json=received["report"], expect=403
        )
        assert refused["error"] == "forbidden"
        resp = await upper.client.get("/api/v1/exchange/feed")
        assert resp.status == 401


@asynccontextmanager
async def web_server(app: web.Application) -> AsyncIterator[TestServer]:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def test_a_feed_signed_by_another_key_is_refused(tmp_path: Path) -> None:
    pinned, forger = HubSigner.generate(), HubSigner.generate()
    forged = forger.sign(ExchangeFeed(hub="x", generated_at=utcnow(), items=[]))
    fake = web.Application()

    async def keys(request: web.Request) -> web.Response:
        return web.json_response([pinned.hub_key().model_dump()])

    async def feed(request: web.Request) -> web.Response:
        return web.Response(body=forged.model_dump_json(), content_type="application/json")

    for prefix in ("", "/other"):
        fake.router.add_get(f"{prefix}/api/v1/exchange/keys", keys)
        fake.router.add_get(f"{prefix}/api/v1/exchange/feed", feed)
    async with (
        web_server(fake) as server,
        running_hub(tmp_path, outbound_allowed_networks=LOOPBACK) as lower,
    ):
        await lower.commune("00001")
        url = str(server.make_url("")).rstrip("/")
        db = lower.app[DB]
        from hub.exchange import add_upstream

        await add_upstream(db, url, "t", "auto", None, now=utcnow())
        [upstream] = await exchange_store.upstreams(db)
        with pytest.raises(OutboundError, match="signature"):
            await poll_upstream(lower.app, upstream)
        [upstream] = await exchange_store.upstreams(db)
        assert upstream.key_id == pinned.key_id  # pinned at first contact
        await add_upstream(db, url + "/other", "t", "auto", "not-its-key", now=utcnow())
        other = next(u for u in await exchange_store.upstreams(db) if u.url.endswith("/other"))
        with pytest.raises(OutboundError, match="does not offer key not-its-key"):
            await poll_upstream(lower.app, other)
        assert await lower.call("GET", "/api/v1/bulletins") == []
