"""HubClient against fake hub routes: retry policy, errors, Date header, ETag, reports, push."""

from __future__ import annotations

import gc
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from edge_agent.hubclient import HubClient, HubRejected, HubUnavailable, parse_http_date
from loa_contract import (
    BulletinKind,
    DeviceKind,
    HubKey,
    PlayOutcome,
    Priority,
    ProofOfPlay,
    ReportBatch,
)

HUB_DATE = "Wed, 21 Oct 2015 07:28:00 GMT"
AUTH = "Device dev-1:s3cret"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FakeHub:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.failures_left = 0
        self.app = web.Application()
        self.app.router.add_post("/api/v1/enroll", self._count("enroll", self.enroll))
        self.app.router.add_get("/api/v1/device/manifest", self._count("manifest", self.manifest))
        self.app.router.add_post("/api/v1/device/reports", self._count("reports", self.reports))
        self.app.router.add_get("/api/v1/device/media/{sha}", self._count("media", self.media))
        self.app.router.add_get("/api/v1/device/ws", self._count("ws", self.ws))

    def _count(self, name: str, handler: Handler) -> Handler:
        async def counted(request: web.Request) -> web.StreamResponse:
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.failures_left > 0:
                self.failures_left -= 1
                return web.Response(status=503, text="hub restarting")
            return await handler(request)

        return counted

    async def enroll(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body["code"] != "ABC-123":
            return web.json_response({"error": "unknown code"}, status=400)
        assert "Authorization" not in request.headers
        return web.json_response(
            {
                "device_id": "dev-1",
                "device_secret": "s3cret",
                "device_kind": "speaker",
                "commune": "xa-a",
                "profile": "speaker-basic",
                "hub_keys": [{"key_id": "k1", "public_key": "AAAA"}],
            },
            status=201,
        )

    async def manifest(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != AUTH:
            return web.Response(status=401, text="who are you")
        headers = {"ETag": '"7"', "Date": HUB_DATE}
        if request.headers.get("If-None-Match") == '"7"':
            return web.Response(status=304, headers=headers)
        return web.Response(body=b'{"signed": "envelope"}', headers=headers)

    async def reports(self, request: web.Request) -> web.Response:
        batch = ReportBatch.model_validate_json(await request.read())
        return web.json_response({"acked": [r.seq for r in batch.reports]})

    async def media(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text="no such media")

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        if request.headers.get("Authorization") != AUTH:
            return web.Response(status=403, text="forbidden")  # type: ignore[return-value]
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("hello dev-1")
        await ws.close()
        return ws


@pytest.fixture
async def hub() -> AsyncIterator[tuple[FakeHub, str]]:
    fake = FakeHub()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    await server.close()


def device(url: str, attempts: int = 4) -> HubClient:
    # Tiny back-off keeps the retry tests fast; the policy's shape is what is under test.
    return HubClient(
        url, "dev-1", "s3cret", attempts=attempts, backoff_base=0.001, backoff_max=0.01
    )


async def test_retries_503_then_succeeds(hub) -> None:
    fake, url = hub
    fake.failures_left = 2
    client = device(url, attempts=4)
    fetched = await client.fetch_manifest(None)
    await client.close()
    assert fetched.envelope == b'{"signed": "envelope"}'
    assert fetched.etag == '"7"'
    assert fake.calls["manifest"] == 3


async def test_a_call_that_succeeds_leaves_no_garbage_cycles(hub) -> None:
    """The retry machinery is built only after a failure: its objects hold reference
    cycles, which hundreds of agents in one process made the collector pause on."""
    _fake, url = hub
    client = device(url)
    await client.fetch_manifest(None)  # the connection pool and its objects, made once
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            await client.fetch_manifest(None)
            await client.post_reports([])
        left = gc.collect()
    finally:
        gc.enable()
    await client.close()
    assert left < 20, f"{left} objects in reference cycles after 40 calls"


async def test_gives_up_after_bounded_attempts(hub) -> None:
    fake, url = hub
    fake.failures_left = 100
    client = device(url, attempts=3)
    with pytest.raises(HubUnavailable, match="503"):
        await client.fetch_manifest(None)
    assert fake.calls["manifest"] == 3
    with pytest.raises(HubUnavailable):
        await client.fetch_manifest(None, retrying=False)
    assert fake.calls["manifest"] == 4
    await client.close()


async def test_4xx_is_not_retried(hub) -> None:
    fake, url = hub
    client = HubClient(url, backoff_base=0.001)
    with pytest.raises(HubRejected) as caught:
        await client.enroll("WRONG-CODE", "pi-1")
    assert caught.value.status == 400
    assert "unknown code" in caught.value.body
    assert fake.calls["enroll"] == 1
    await client.close()

    stranger = HubClient(url, "dev-1", "wrong", backoff_base=0.001)
    with pytest.raises(HubRejected) as caught:
        await stranger.fetch_manifest(None)
    assert caught.value.status == 401
    assert fake.calls["manifest"] == 1
    await stranger.close()


async def test_enroll(hub) -> None:
    _fake, url = hub
    client = HubClient(url)
    answer = await client.enroll("ABC-123", "pi-1")
    await client.close()
    assert answer.device_id == "dev-1"
    assert answer.device_kind is DeviceKind.SPEAKER
    assert answer.hub_keys == [HubKey(key_id="k1", public_key="AAAA")]


async def test_304_and_no_time_taken_from_the_date_header(hub) -> None:
    _fake, url = hub
    client = device(url)
    assert client.last_ok_at is None
    fetched = await client.fetch_manifest('"7"')
    assert fetched.envelope is None
    assert fetched.etag == '"7"'
    # The fake hub's Date says 2015: nothing of it is kept (it is not signed).
    assert not hasattr(fetched, "hub_date") and not hasattr(client, "last_hub_date")
    assert client.last_ok_at is not None
    await client.close()


def test_parse_http_date() -> None:
    assert parse_http_date(HUB_DATE) == datetime(2015, 10, 21, 7, 28, tzinfo=UTC)
    assert parse_http_date("Wed, 21 Oct 2015 07:28:00 -0000") == datetime(
        2015, 10, 21, 7, 28, tzinfo=UTC
    )
    assert parse_http_date("not a date") is None
    assert parse_http_date(None) is None


async def test_post_reports_round_trip(hub) -> None:
    _fake, url = hub
    client = device(url)
    play = ProofOfPlay(
        seq=41,
        bulletin_id="b1",
        priority=Priority.NORMAL,
        kind=BulletinKind.AUDIO,
        started_at=datetime(2025, 3, 1, tzinfo=UTC),
        ended_at=datetime(2025, 3, 1, 0, 2, tzinfo=UTC),
        outcome=PlayOutcome.COMPLETED,
    )
    ack = await client.post_reports([play])
    await client.close()
    assert ack.acked == [41]


async def test_media_404_is_rejected(hub) -> None:
    fake, url = hub
    client = device(url)
    with pytest.raises(HubRejected) as caught:
        async with client.open_media("a" * 64, 100):
            pass
    assert caught.value.status == 404
    assert fake.calls["media"] == 1
    await client.close()


async def test_websocket_connects_with_heartbeat(hub) -> None:
    _fake, url = hub
    client = device(url)
    ws = await client.connect_ws(heartbeat=5.0)
    message = await ws.receive()
    assert message.type is aiohttp.WSMsgType.TEXT and message.data == "hello dev-1"
    await ws.close()
    await client.close()

    stranger = HubClient(url, "dev-1", "wrong")
    with pytest.raises(HubRejected) as caught:
        await stranger.connect_ws()
    assert caught.value.status == 403
    await stranger.close()


async def test_unreachable_hub_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = HubClient(
        f"http://127.0.0.1:{port}",
        "dev-1",
        "s3cret",
        attempts=2,
        backoff_base=0.001,
        backoff_max=0.01,
    )
    with pytest.raises(HubUnavailable):
        await client.fetch_manifest(None)
    with pytest.raises(HubUnavailable):
        await client.connect_ws()
    assert client.last_ok_at is None
    await client.close()


async def test_shared_session_is_left_open(hub) -> None:
    _fake, url = hub
    async with aiohttp.ClientSession() as session:
        client = HubClient(url, "dev-1", "s3cret", session=session)
        await client.fetch_manifest(None)
        await client.close()
        assert not session.closed
