"""Pushes across hub nodes (issue #10 point 3): two hub nodes on one PostgreSQL database, an
agent connected to node B, the operator on node A. An emergency fired on A airs on B's agent,
its cancel stops it there, a test tone sent from A is delivered by B and its answer is seen
from A; media uploaded on A is copied to B, and fetched by B when a device asks for what B
missed. Then the bus itself: events arrive in order, a node never hears its own, and a
listening connection cut by the server is replaced and what was written meanwhile is read.

The agents here poll their manifest only once an hour: what they play arrives by push.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bench.support import free_port
from edge_agent.agent import TEST_TONE_ID
from edge_agent.players.null import NullPlayer
from edge_agent.speech import EspeakEngine
from hub.appkeys import CONFIG, CONNECTIONS, NODE_OBJECTS
from hub.node_bus import NodeEvent, frame_text
from hub.push import Connections, text_frame
from hub.store.node_events import LISTENER_NAME, PostgresBus
from hub.store.postgres import PostgresDatabase
from hub.testing import database_for_tests
from loa_contract import (
    BulletinKind,
    HubSigner,
    ManifestBulletin,
    Priority,
    Schedule,
    Scope,
    utcnow,
)
from tests.conftest import on_postgres
from tests.e2e import LiveHub, enroll_agent, schedule, tone_bytes, window_around
from tests.test_hub_push import FakeSocket, FakeTransport

TIMEOUT = 30.0

postgres_only = pytest.mark.skipif(
    not on_postgres(), reason="several hub nodes share a PostgreSQL database"
)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 200_000])
def test_a_frame_gives_back_the_text_it_carries(size: int) -> None:
    text = "ầ" * (size // 3) + "x" * (size % 3)
    assert frame_text(text_frame(text)) == text


@pytest.mark.parametrize(
    "frame", [b"\x82\x01x", b"\x81\x81abcdx", b"\x81\x05abc", text_frame("abc") + b"d"]
)
def test_what_is_not_one_server_text_frame_is_refused(frame: bytes) -> None:
    with pytest.raises(ValueError):
        frame_text(frame)


@asynccontextmanager
async def two_nodes(tmp_path: Path) -> AsyncIterator[tuple[LiveHub, LiveHub]]:
    """Nodes A and B as behind one proxy: one public URL, each its own node URL and data
    folder, one database, one signing key (B's folder gets A's key file, as `hub key import`
    would put it there)."""
    nodes: list[LiveHub] = []
    try:
        for name in ("a", "b"):
            port = free_port()
            node = LiveHub(
                tmp_path / name,
                port=port,
                config={
                    "public_url": "https://loa.example.invalid",
                    "node_url": f"http://127.0.0.1:{port}",
                },
            )
            if nodes:
                node.data_dir.mkdir(parents=True)
                key = nodes[0].app[CONFIG].key_path
                shutil.copy(key, node.data_dir / key.name)
            await node.start()
            nodes.append(node)
        yield nodes[0], nodes[1]
    finally:
        for node in reversed(nodes):
            await node.close()


async def listening(node: LiveHub) -> None:
    bus = node.app[CONNECTIONS].bus
    assert isinstance(bus, PostgresBus)
    async with asyncio.timeout(TIMEOUT):
        await bus.listening.wait()


@postgres_only
async def test_an_emergency_a_cancel_and_a_command_made_on_a_reach_an_agent_on_b(
    tmp_path: Path,
) -> None:
    async with two_nodes(tmp_path) as (node_a, node_b):
        now = utcnow()
        await node_a.add_commune("xa-n", speaker=[window_around(now)])
        agent = await enroll_agent(
            node_b,
            tmp_path / "loa",
            commune="xa-n",
            kind="speaker",
            profile="speaker-cluster",
            # The test tone is answered once heard out: it lasts what the real one does.
            player=NullPlayer(default_duration_s=60.0, durations={TEST_TONE_ID: 2.0}),
            speech=EspeakEngine(),
            poll_interval_s=3600,
        )
        try:
            await agent.wait_until(agent.status_connected, TIMEOUT)
            assert agent.client.base_url == node_b.url
            await listening(node_b)
            assert not node_a.app[CONNECTIONS].is_online(agent.identity.device_id)
            # Node A's console shows it online all the same, once B has said it holds it.
            bus_b = node_b.app[CONNECTIONS].bus
            assert isinstance(bus_b, PostgresBus)
            await bus_b.tell_presence()
            seen = await node_a.call("GET", f"/api/v1/devices/{agent.identity.device_id}")
            assert seen["online"] is True

            emergency = await node_a.call(
                "POST",
                "/api/v1/emergencies",
                json={"title": "Cảnh báo lũ", "text": "Nước lũ đang lên.", "repeats": 1},
                expect=201,
            )

            def on_air() -> bool:
                playing = agent.now_playing()
                return (
                    playing is not None
                    and playing.priority is Priority.EMERGENCY
                    and playing.bulletin_id == emergency["id"]
                )

            await agent.wait_until(on_air, TIMEOUT)
            # B keeps the start for its devices that reconnect while it lasts.
            assert emergency["id"] in node_b.app[CONNECTIONS].emergencies

            await node_a.call("POST", f"/api/v1/emergencies/{emergency['id']}/cancel")
            await agent.wait_until(lambda: not on_air(), TIMEOUT)
            assert emergency["id"] not in node_b.app[CONNECTIONS].emergencies

            device_id = agent.identity.device_id
            sent = await node_a.call(
                "POST",
                f"/api/v1/devices/{device_id}/commands",
                json={"type": "test_tone"},
                expect=202,
            )
            assert sent["delivered"] is True and sent["status"] == "sent"
            async with asyncio.timeout(TIMEOUT):
                await node_a.app[CONNECTIONS].wait_answer(sent["command_id"])
            answer = await node_a.call(
                "GET", f"/api/v1/devices/{device_id}/commands/{sent['command_id']}"
            )
            assert answer["status"] == "applied"

            # A device connected to no node: undelivered, said as soon as B has replied.
            idle = await enroll_agent(
                node_a,
                tmp_path / "idle",
                commune="xa-n",
                kind="speaker",
                profile="speaker-cluster",
                player=NullPlayer(),
                start=False,
            )
            gone = await node_a.call(
                "POST",
                f"/api/v1/devices/{idle.identity.device_id}/commands",
                json={"type": "resync"},
                expect=202,
            )
            assert gone["delivered"] is False and gone["status"] == "undelivered"
        finally:
            await agent.stop()


class Heard:
    """What one bus delivered, and a way to wait for more of it."""

    def __init__(self) -> None:
        self.events: list[NodeEvent] = []
        self._more = asyncio.Condition()

    async def receive(self, event: NodeEvent) -> None:
        async with self._more:
            self.events.append(event)
            self._more.notify_all()

    async def count(self, size: int) -> list[Any]:
        async with asyncio.timeout(TIMEOUT), self._more:
            await self._more.wait_for(lambda: len(self.events) >= size)
        return [e.body["command_id"] for e in self.events]


@asynccontextmanager
async def bus(
    heard: Heard, url: str | None, connected: set[str] | None = None
) -> AsyncIterator[PostgresBus]:
    database = database_for_tests()
    assert database is not None
    db = await PostgresDatabase.open(database)
    node = PostgresBus(db, clock=utcnow, url=url, check_s=0.2)
    await node.start(heard.receive, lambda: set(connected or ()))
    try:
        yield node
    finally:
        await node.close()
        await db.close()


@postgres_only
async def test_events_arrive_in_order_and_after_the_listener_is_cut() -> None:
    heard_a, heard_b = Heard(), Heard()
    async with bus(heard_a, "http://a.invalid") as a, bus(heard_b, None) as b:
        await a.listening.wait()
        await b.listening.wait()
        # Each the other's peer; B gave no address (it holds devices, no objects to give).
        assert await a.peers() == [None] and await b.peers() == ["http://a.invalid"]
        for i in range(5):
            await a.publish("answered", {"command_id": f"c{i}"})
        assert await heard_b.count(5) == [f"c{i}" for i in range(5)]
        assert {e.node for e in heard_b.events} == {a.node_id}

        # The server ends both listeners; events written before they are back are read then.
        admin = await asyncpg.connect(database_for_tests())
        try:
            cut = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                LISTENER_NAME,
            )
        finally:
            await admin.close()
        assert cut == 2
        for i in range(5, 8):
            await a.publish("answered", {"command_id": f"c{i}"})
        assert await heard_b.count(8) == [f"c{i}" for i in range(8)]
        await b.publish("answered", {"command_id": "from-b"})
        # A hears B's event and none of its own.
        assert await heard_a.count(1) == ["from-b"]
    # Closed, a node is at once no one's peer.
    async with bus(Heard(), "http://c.invalid") as c:
        assert await c.peers() == []


@postgres_only
async def test_each_node_knows_which_devices_the_others_hold() -> None:
    held = {"d1", "d2"}
    async with bus(Heard(), "http://a.invalid", held) as a:
        await a.tell_presence()
        async with bus(Heard(), None) as b:
            assert await b.online_elsewhere() == {"d1", "d2"}
            assert await a.online_elsewhere() == set()
        held -= {"d1"}
        held |= {"d3"}
        await a.tell_presence()
        async with bus(Heard(), None) as b:
            assert await b.online_elsewhere() == {"d2", "d3"}
    async with bus(Heard(), None) as b:
        assert await b.online_elsewhere() == set()


@postgres_only
async def test_media_uploaded_on_a_is_copied_to_b_and_fetched_there_when_missing(
    tmp_path: Path,
) -> None:
    async with two_nodes(tmp_path) as (node_a, node_b):
        now = utcnow()
        await node_a.add_commune("xa-m", speaker=[window_around(now)])
        await listening(node_b)
        audio = await node_a.upload(tone_bytes(tmp_path, "tin", 1.0), "audio/wav")
        sha = audio["sha256"]
        b_objects = node_b.app[NODE_OBJECTS]
        # B copies it as soon as A says it stored it (or fetches it now, if not yet).
        assert await b_objects.ensure("media", sha)
        b_copy = b_objects.directory("media") / sha
        assert b_copy.read_bytes() == (node_a.app[CONFIG].media_dir / sha).read_bytes()
        # A node that missed it (down when it was stored) fetches it when a device asks.
        b_copy.unlink()

        agent = await enroll_agent(
            node_b,
            tmp_path / "loa",
            commune="xa-m",
            kind="speaker",
            profile="speaker-cluster",
            player=NullPlayer(default_duration_s=0.2),
            poll_interval_s=3600,
        )
        try:
            await agent.wait_until(agent.status_connected, TIMEOUT)
            bulletin = await node_a.publish(
                {
                    "title": "Tiêm phòng",
                    "kind": "audio",
                    "priority": "normal",
                    "media": sha,
                    "targets": {"communes": ["xa-m"]},
                    "schedule": schedule(now),
                }
            )

            async def aired() -> bool:
                assert agent.store is not None
                return bulletin["id"] in {p.bulletin_id for p in await agent.store.recent_plays(10)}

            await agent.wait_until(aired, TIMEOUT)
            assert agent.client.base_url == node_b.url
            assert b_copy.read_bytes() == (node_a.app[CONFIG].media_dir / sha).read_bytes()
        finally:
            await agent.stop()


async def test_a_start_that_arrives_after_its_cancel_does_not_start() -> None:
    """Node A publishes a start in the background after its API answered; a cancel made on
    node B meanwhile may reach node C first. C never starts what it saw cancelled."""
    signer = HubSigner.generate()
    a, c = Connections(signer), Connections(signer)
    transport = FakeTransport()
    c.register("d", FakeSocket(), transport)
    now = utcnow()
    bulletin = ManifestBulletin(
        id="b1",
        title="Bão",
        kind=BulletinKind.TEXT,
        priority=Priority.EMERGENCY,
        text="Sơ tán",
        schedule=Schedule(valid_from=now, valid_until=now + timedelta(hours=1)),
    )
    start = a.emergency_start(bulletin, Scope(province=True))
    cancel = a.emergency_cancel("b1", Scope(province=True), timedelta(minutes=10))
    started = {
        "bulletin_id": "b1",
        "kind": "text",
        "scope": {"province": True},
        "valid_from": now.isoformat(),
        "valid_until": (now + timedelta(hours=1)).isoformat(),
        "command_id": start.signed.command_id,
        "envelope": frame_text(start.signed.frame),
        "devices": ["d"],
    }
    cancelled = {
        "bulletin_id": "b1",
        "command_id": cancel.command_id,
        "envelope": frame_text(cancel.frame),
        "devices": ["d"],
    }
    await c.on_node_event(NodeEvent("emergency_cancel", cancelled, "b"))
    await c.on_node_event(NodeEvent("emergency_start", started, "a"))
    assert transport.frames == [cancel.frame]
    assert "b1" not in c.emergencies
    # In the usual order the start is written and kept, then the cancel ends it.
    other = FakeTransport()
    fresh = Connections(signer)
    fresh.register("d", FakeSocket(), other)
    await fresh.on_node_event(NodeEvent("emergency_start", started, "a"))
    assert "b1" in fresh.emergencies
    await fresh.on_node_event(NodeEvent("emergency_cancel", cancelled, "b"))
    assert other.frames == [start.signed.frame, cancel.frame]
    assert "b1" not in fresh.emergencies


@postgres_only
async def test_a_node_that_cannot_hear_the_others_says_why_until_it_can() -> None:
    """A node whose listening connection cannot come back would miss every emergency fired
    on another node: /healthz answers 503 with this reason (hub/app.py) until it is back."""
    async with bus(Heard(), "http://a.invalid") as a:
        await a.listening.wait()
        assert a.trouble() is None
        url = database_for_tests()
        assert url is not None
        base, name = url.rsplit("/", 1)
        admin = await asyncpg.connect(f"{base}/postgres")
        try:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = $1",
                LISTENER_NAME,
            )
            await asyncio.wait_for(a.deaf.wait(), 60)
            assert "not hearing the other hub nodes" in (a.trouble() or "")
            assert not a.listening.is_set()
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await admin.close()
        await asyncio.wait_for(a.listening.wait(), 60)
        assert a.trouble() is None
