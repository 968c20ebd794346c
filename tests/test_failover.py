"""Devices fail over between hub nodes sharing one database (issue #10, point 4).

The order a device tries nodes in is pure logic, tested exhaustively; the hub list it holds
comes only from verified manifests and survives restarts; a download cut on one node resumes
on the next. End to end: two `hub serve` processes on one database, one killed with kill -9,
every device on the survivor within seconds, an emergency fired there airing everywhere,
every proof of play on the hub once; the killed node comes back and its devices return.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from edge_agent.agent import Agent, AgentConfig
from edge_agent.cache import MediaCache
from edge_agent.hubclient import HubClient
from edge_agent.hubs import after_failure, failover_order
from edge_agent.identity import Identity
from edge_agent.players.null import NullPlayer
from edge_agent.profile import load_profile
from edge_agent.speech import EspeakEngine
from edge_agent.sync import HUB_LIST_SETTING
from loa_contract import DeviceKind, HubSigner, Manifest, utcnow
from tests.e2e import ADMIN_PASSWORD, LiveHub, enroll_agent, fast_config, schedule
from tests.test_cache import FakeMedia, payload

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
#: A personal name: `hub user add` refuses shared admin names.
OPERATOR = "nguyenvanan"
#: The issue's bound on a fail-over (DESIGN.md §5) ...
FAILOVER_LIMIT_S = 30.0
#: ... and what this run must stay under: at the devices' own reconnect pace (one jittered
#: wait of up to 1 s, a refused connect, a poll of the survivor, another wait) it takes 1–2 s.
FAILOVER_EXPECTED_S = 10.0
DEVICE_DEFAULTS = AgentConfig.model_fields

# ---------------------------------------------------------------- the order of nodes


def test_the_enrolled_hub_comes_first_and_every_other_listed_node_once() -> None:
    order = failover_order(
        "https://a.example/",
        ["https://c.example", "https://a.example", "https://b.example/", "https://c.example/"],
        "dev-1",
    )
    assert order[0] == "https://a.example"
    assert sorted(order[1:]) == ["https://b.example", "https://c.example"]
    assert failover_order("https://a.example", [], "dev-1") == ["https://a.example"]


def test_the_devices_of_a_dead_node_spread_over_the_survivors() -> None:
    survivors = ["https://b.example", "https://c.example", "https://d.example"]
    firsts = [failover_order("https://a.example", survivors, f"dev-{i}")[1] for i in range(600)]
    for node in survivors:
        assert firsts.count(node) > 600 / len(survivors) * 0.7, (node, firsts.count(node))
    # The same device always tries them in the same order.
    assert failover_order("https://a.example", survivors, "dev-7") == failover_order(
        "https://a.example", list(reversed(survivors)), "dev-7"
    )


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_after_failures_every_node_is_tried_in_turn_and_a_full_round_is_told(size: int) -> None:
    order = [f"https://n{i}.example" for i in range(size)]
    for start in order:
        current = start
        tried = []
        for failures in range(1, 3 * size + 1):
            tried.append(current)
            current, round_failed = after_failure(order, current, failures)
            assert round_failed == (failures % size == 0)
            if round_failed:
                assert sorted(tried) == sorted(order)
                tried = []
    # A node no longer listed sends the device home.
    assert after_failure(order, "https://gone.example", 1) == (order[0], True)


# ---------------------------------------------------------------- media across nodes


@contextlib.asynccontextmanager
async def media_node(fake: FakeMedia) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/api/v1/device/media/{sha}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_a_download_cut_on_one_node_resumes_on_the_next(tmp_path: Path) -> None:
    """Media is named by its sha256, so the bytes already on the card are kept: the next
    attempt asks the node the agent has switched to for the rest only."""
    data = payload(1_000_000)
    node_a, node_b = FakeMedia(), FakeMedia()
    ref = node_a.add(data)
    node_b.add(data)
    node_a.cut_next_at_half = True
    async with media_node(node_a) as url_a, media_node(node_b) as url_b:
        client = HubClient(url_a, "dev-1", "s3cret", backoff_base=0.001, backoff_max=0.01)

        def progress(done: int, total: int) -> None:
            if done >= total // 2 and not node_a.half_received.is_set():
                # Node A is going down: the push loop moves the agent to B meanwhile.
                client.switch_to(url_b + "/")
                node_a.half_received.set()

        try:
            path = await MediaCache(tmp_path / "cache").fetch(client, ref, progress)
        finally:
            await client.close()
    assert path.read_bytes() == data
    assert node_a.ranges == [None]
    assert len(node_b.ranges) == 1 and node_b.ranges[0] == f"bytes={len(data) // 2}-"
    assert node_a.bytes_sent + node_b.bytes_sent <= 1.05 * len(data)


# ---------------------------------------------------------------- the list the agent keeps


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _signed_manifest(signer: HubSigner, version: int, hub_urls: list[str]) -> bytes:
    now = utcnow()
    manifest = Manifest(
        device_id="dev-1",
        version=version,
        issued_at=now,
        expires_at=now + timedelta(days=1),
        device_kind=DeviceKind.BOARD,
        commune="00001",
        windows=[],
        volume=70,
        profile="led-board-p10",
        bulletins=[],
        hub_urls=hub_urls,
    )
    return signer.sign(manifest).model_dump_json().encode()


async def test_the_hub_list_comes_from_verified_manifests_and_survives_restarts(
    tmp_path: Path,
) -> None:
    signer = HubSigner.generate()
    home = f"http://127.0.0.1:{_closed_port()}"  # no hub: manifests come by hand
    others = ["https://b.example", "https://c.example"]
    identity = Identity(
        hub_url=home,
        device_id="dev-1",
        device_secret="s" * 43,
        device_kind="board",
        commune="00001",
        profile="led-board-p10",
        hub_keys=[signer.hub_key()],
    )

    async def started() -> Agent:
        agent = Agent(
            fast_config(tmp_path / "agent", require_clock_confirmation=False),
            identity,
            load_profile("led-board-p10"),
            NullPlayer(),
        )
        await agent.start()
        return agent

    agent = await started()
    try:
        assert agent.sync.hub_order == [home]
        assert await agent.apply_manifest(_signed_manifest(signer, 1, others))
        assert agent.sync.hub_order[0] == home and sorted(agent.sync.hub_order[1:]) == others
        assert (await agent.status())["hub_urls"] == agent.sync.hub_order
        # A manifest naming no nodes (an older hub, a hub of one node) forgets none.
        assert await agent.apply_manifest(_signed_manifest(signer, 2, []))
        assert sorted(agent.sync.hub_order[1:]) == others
        # A manifest not signed by the pinned key names nothing.
        intruder = HubSigner.generate()
        assert not await agent.apply_manifest(_signed_manifest(intruder, 3, ["https://x.example"]))
        assert "https://x.example" not in agent.sync.hub_order
    finally:
        await agent.stop()

    # The manifest in force names none: the kept signed copy is verified again at start.
    agent = await started()
    try:
        assert sorted(agent.sync.hub_order[1:]) == others
    finally:
        await agent.stop()

    # The copy at rest replaced by one signed with another key: not used.
    with sqlite3.connect(tmp_path / "agent" / "agent.sqlite3") as db:
        db.execute(
            "UPDATE settings SET value = ? WHERE key = ?",
            (_signed_manifest(intruder, 9, ["https://x.example"]).decode(), HUB_LIST_SETTING),
        )
    agent = await started()
    try:
        assert agent.sync.hub_order == [home]
    finally:
        await agent.stop()


# ---------------------------------------------------------------- two nodes, one killed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubNode:
    """`hub serve` as its own process on its own port, sharing the --data of the others."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = _free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self._drain: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", "serve", "--data", str(self.data),
            "--host", "127.0.0.1", "--port", str(self.port), "--public-url", self.url,
            "--log-level", "warning",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=ENV,
        )  # fmt: skip
        assert self.process.stdout is not None
        async with asyncio.timeout(30):
            while "Running on" not in (self.output[-1] if self.output else ""):
                line = await self.process.stdout.readline()
                if not line:
                    raise AssertionError("the hub node ended:\n" + "".join(self.output))
                self.output.append(line.decode(errors="replace"))
        # Read on, so the node never blocks on a full pipe.
        self._drain = asyncio.create_task(self._read_rest())

    async def _read_rest(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            self.output.append(line.decode(errors="replace"))

    async def kill(self) -> None:
        """kill -9: no shutdown, no goodbye to any socket."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()
        if self._drain is not None:
            await self._drain

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                async with asyncio.timeout(20):
                    await self.process.wait()
            except TimeoutError:
                await self.kill()
        if self._drain is not None:
            await self._drain


async def outbox_empty(agent: Agent) -> bool:
    assert agent.store is not None
    return sum((await agent.store.backlog()).values()) == 0


async def hub_plays(hub: LiveHub, agent: Agent) -> list[tuple[int, str]]:
    rows = await hub.call("GET", f"/api/v1/plays?device={agent.identity.device_id}")
    return sorted((row["seq"], row["bulletin_id"]) for row in rows)


async def agent_plays(agent: Agent) -> list[tuple[int, str]]:
    assert agent.store is not None
    return sorted((p.seq, p.bulletin_id) for p in await agent.store.recent_plays(100))


async def test_devices_fail_over_to_the_surviving_node_and_return(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    adding = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", "user", "add", OPERATOR, "--role", "admin",
        "--password-stdin", "--data", str(data),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, env=ENV,
    )  # fmt: skip
    await adding.communicate(f"{ADMIN_PASSWORD}\n".encode())
    assert adding.returncode == 0
    node_a, node_b = HubNode(data), HubNode(data)
    via_a, via_b = LiveHub(data, port=node_a.port), LiveHub(data, port=node_b.port)
    agents: list[Agent] = []
    try:
        # B starts after A: its start announces the pair, before any device enrolls.
        await node_a.start()
        await node_b.start()
        await via_a.login(OPERATOR)
        await via_b.login(OPERATOR)
        await via_a.add_commune("xa-f")
        normal = await via_a.publish(
            {
                "title": "Bản tin sáng",
                "kind": "text",
                "priority": "normal",
                "text": "Bản tin buổi sáng.",
                "targets": {"communes": ["xa-f"]},
                "schedule": schedule(utcnow()),
            }
        )
        speech = EspeakEngine()
        for i in range(4):
            agents.append(
                await enroll_agent(
                    via_a,
                    tmp_path / f"loa-{i}",
                    commune="xa-f",
                    kind="speaker",
                    profile="speaker-cluster",
                    player=NullPlayer(default_duration_s=0.3),
                    speech=speech,
                    # A device's own pace of reconnecting, not a test's: the time measured is
                    # what a province would see.
                    reconnect_min_s=DEVICE_DEFAULTS["reconnect_min_s"].default,
                    reconnect_max_s=DEVICE_DEFAULTS["reconnect_max_s"].default,
                    home_probe_s=0.5,
                )
            )
        nodes = sorted([node_a.url, node_b.url])

        async def served_by(agent: Agent, url: str) -> bool:
            return agent.status_connected() and agent.client.base_url == url

        async def settled(agent: Agent) -> bool:
            plays = await agent_plays(agent)
            return (
                agent.manifest is not None
                and agent.manifest.hub_urls == nodes
                and normal["id"] in {b for _, b in plays}
                and await outbox_empty(agent)
            )

        # Each device airs the normal bulletin and reports it to A, its enrolled hub.
        async with asyncio.timeout(30):
            await asyncio.gather(*(a.wait_until(lambda a=a: settled(a), 30) for a in agents))
        for agent in agents:
            assert await served_by(agent, node_a.url)
            assert agent.sync.hub_order[0] == node_a.url
            assert (await agent.status())["hub_url"] == node_a.url
        before = {a.identity.device_id: await agent_plays(a) for a in agents}

        await node_a.kill()
        killed_at = time.monotonic()
        await asyncio.gather(
            *(a.wait_until(lambda a=a: served_by(a, node_b.url), FAILOVER_LIMIT_S) for a in agents)
        )
        failover_s = time.monotonic() - killed_at
        print(f"all {len(agents)} devices on the surviving node {failover_s:.2f} s after kill -9")
        assert failover_s < FAILOVER_EXPECTED_S
        status = await agents[0].status()
        assert status["hub_url"] == node_b.url and status["hub_home"] == node_a.url

        # An emergency fired on B airs on every device.
        draft = await via_b.call(
            "POST",
            "/api/v1/bulletins",
            json={
                "title": "Cảnh báo lũ",
                "kind": "text",
                "priority": "emergency",
                "text": "Nước lũ đang lên, di chuyển lên vùng cao.",
                "targets": {"communes": ["xa-f"]},
                "schedule": schedule(utcnow()),
            },
        )
        await via_b.call("POST", f"/api/v1/bulletins/{draft['id']}/publish")

        async def aired_and_reported(agent: Agent) -> bool:
            aired = draft["id"] in {b for _, b in await agent_plays(agent)}
            return aired and await outbox_empty(agent)

        await asyncio.gather(*(a.wait_until(lambda a=a: aired_and_reported(a), 30) for a in agents))

        # Every proof of play is on the hub once: those reported to A before the kill and
        # those reported to B after it.
        for agent in agents:
            made = await agent_plays(agent)
            assert set(before[agent.identity.device_id]) < set(made)
            assert await hub_plays(via_b, agent) == made
        assert await via_b.call("GET", "/api/v1/refused-reports") == []

        # A batch A stored but whose acknowledgement never arrived, sent again to B: acknowledged,
        # counted once.
        first = agents[0]
        assert first.store is not None
        resent = [p for p in await first.store.recent_plays(100) if p.bulletin_id == normal["id"]]
        client = HubClient(node_b.url, first.identity.device_id, first.identity.device_secret)
        try:
            ack = await client.post_reports(resent, stream=await first.store.report_stream())
        finally:
            await client.close()
        assert ack.acked == sorted(p.seq for p in resent)
        assert await hub_plays(via_b, first) == await agent_plays(first)

        # A comes back: its devices go home.
        await node_a.start()
        await asyncio.gather(
            *(a.wait_until(lambda a=a: served_by(a, node_a.url), 30) for a in agents)
        )
    finally:
        for agent in agents:
            await agent.stop()
        await via_a.close()
        await via_b.close()
        await node_b.stop()
        await node_a.stop()
