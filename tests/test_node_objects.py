"""Media and release files on every hub node (issue #10 point 3): a node lacking an object
fetches it by sha256 from another live node, keeps it only when the bytes match, fetches it
once however many ask; the route nodes fetch from answers only another node of this hub.
(Two real nodes on PostgreSQL: tests/test_node_bus.py.)"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestServer

from hub.appkeys import CLOCK, NODE_SECRET
from hub.node_objects import NodeObjects
from hub.node_secret import SKEW, authorization, node_secret, verify
from hub.testing import running_hub
from loa_contract import HubSigner, utcnow


def test_nodes_with_one_key_share_a_secret_and_other_keys_do_not() -> None:
    signer = HubSigner.generate()
    again = HubSigner.from_pem(signer.to_pem())
    assert node_secret(signer) == node_secret(again)
    assert node_secret(signer) != node_secret(HubSigner.generate())
    assert len(node_secret(signer)) == 32


def test_a_node_header_holds_for_a_few_minutes_only() -> None:
    secret = node_secret(HubSigner.generate())
    now = utcnow()
    header = authorization(secret, now)
    assert verify(secret, header, now)
    assert verify(secret, header, now + SKEW - timedelta(seconds=1))
    assert verify(secret, header, now - SKEW + timedelta(seconds=1))
    assert not verify(secret, header, now + SKEW + timedelta(seconds=2))
    assert not verify(secret, header, now - SKEW - timedelta(seconds=2))
    assert not verify(node_secret(HubSigner.generate()), header, now)
    at, mac = header.split(" ", 1)[1].split(".")
    assert "." not in mac
    for bad in (
        None,
        "",
        header.replace("LoaNode", "Bearer"),
        f"LoaNode {int(at) + 1}.{mac}",
        f"LoaNode {at}.{mac[:-1]}",
        f"LoaNode x{at}.{mac}",
        "LoaNode .",
        f"LoaNode {'9' * 40}.{mac}",
    ):
        assert not verify(secret, bad, now), bad


class Peer:
    """A node holding objects (or lying about them), as the fetching node sees it."""

    def __init__(self, secret: bytes, objects: dict[str, bytes]) -> None:
        self.secret = secret
        self.objects = objects
        self.asked: list[str] = []
        self.release = asyncio.Event()
        self.release.set()
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert verify(self.secret, request.headers.get("Authorization"), utcnow())
        sha = request.match_info["sha"]
        self.asked.append(sha)
        self.arrived.set()
        await self.release.wait()
        if sha not in self.objects:
            raise web.HTTPNotFound()
        return web.Response(body=self.objects[sha])


@asynccontextmanager
async def peer(p: Peer) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/api/v1/node/objects/{store}/{sha}", p.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def test_a_node_keeps_only_verified_bytes_and_fetches_each_object_once(
    tmp_path: Path,
) -> None:
    secret = node_secret(HubSigner.generate())
    good = b"RIFF" + b"\x01" * 200_000
    sha = hashlib.sha256(good).hexdigest()
    missing = hashlib.sha256(b"nobody has it").hexdigest()
    liar = Peer(secret, {sha: b"RIFF" + b"\x02" * 200_000})
    honest = Peer(secret, {sha: good})
    media_dir = tmp_path / "media"
    async with peer(liar) as liar_url, peer(honest) as honest_url:

        async def peers() -> list[str | None]:
            # The liar first; a node with no address holds devices but no objects to give.
            return [liar_url, None, honest_url]

        objects = NodeObjects(
            directories={"media": media_dir, "releases": tmp_path / "releases"},
            secret=secret,
            clock=utcnow,
            peers=peers,
        )
        try:
            honest.release.clear()
            asking = [asyncio.create_task(objects.ensure("media", sha)) for _ in range(5)]
            async with asyncio.timeout(30):
                await honest.arrived.wait()
            honest.release.set()
            assert await asyncio.gather(*asking) == [True] * 5
            assert (media_dir / sha).read_bytes() == good
            assert liar.asked == [sha] and honest.asked == [sha]
            # Nothing half-written left behind, nothing asked again.
            assert sorted(p.name for p in media_dir.iterdir()) == [sha]
            assert await objects.ensure("media", sha)
            assert honest.asked == [sha]
            assert not await objects.ensure("media", missing)
            assert not (media_dir / missing).exists()
        finally:
            await objects.close()


async def test_the_node_route_answers_only_another_node_of_this_hub(tmp_path: Path) -> None:
    async with running_hub(tmp_path / "hub") as hub:
        data = b"Th\xc3\xb4ng b\xc3\xa1o c\xe1\xbb\xa7a x\xc3\xa3."
        sha = (await hub.upload(data, "text/plain"))["sha256"]
        path = f"/api/v1/node/objects/media/{sha}"
        secret = hub.app[NODE_SECRET]
        now = hub.app[CLOCK]()
        await hub.commune()
        device = await hub.new_device()
        other = node_secret(HubSigner.generate())
        for headers in (
            {},
            hub.auth,
            device.headers,
            {"Authorization": authorization(other, now)},
            {"Authorization": authorization(secret, now - 2 * SKEW)},
        ):
            resp = await hub.client.get(path, headers=headers)
            assert resp.status == 401, (headers, await resp.text())
        node = {"Authorization": authorization(secret, now)}
        resp = await hub.client.get(path, headers=node)
        assert resp.status == 200 and await resp.read() == data
        # What this node does not hold, it does not go and ask for.
        resp = await hub.client.get("/api/v1/node/objects/releases/" + sha, headers=node)
        assert resp.status == 404
        # A node's header opens no operator's nor device's route.
        for other_route in ("/api/v1/devices", "/api/v1/device/manifest", f"/api/v1/media/{sha}"):
            assert (await hub.client.get(other_route, headers=node)).status == 401
