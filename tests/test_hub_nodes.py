"""Hub nodes on one database: each registers its public URL, manifests list the live ones,
and a change of nodes re-issues every manifest once, not at every heartbeat."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hub.appkeys import DB
from hub.config import HubConfig
from hub.nodes import beat, hub_urls
from hub.testing import EnrolledDevice, FakeClock, HubHarness, running_hub

A = "http://hub-a.example.gov.vn:8443"
B = "https://hub-b.example.gov.vn/loa"
FRESH = HubConfig.model_fields["node_fresh"].default


async def manifest_from(hub: HubHarness, device: EnrolledDevice) -> tuple[int, list[str]]:
    """The device's manifest as `hub` serves it: its version and the nodes it lists."""
    manifest, _ = await EnrolledDevice(hub, device.enrollment).manifest()
    return manifest.version, manifest.hub_urls


async def test_a_hub_without_a_public_url_names_no_nodes(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.commune("00001")
        device = await hub.new_device()
        assert await manifest_from(hub, device) == (1, [])
        assert await hub.app[DB].fetchall("SELECT * FROM hub_nodes") == []


async def test_a_second_node_is_announced_once_and_listed_alike_by_both(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_hub(tmp_path, clock=clock, public_url=A + "/") as a:
        await a.commune("00001")
        device = await a.new_device()
        assert await manifest_from(a, device) == (1, [A])
        async with running_hub(tmp_path, clock=clock, public_url=B) as b:
            # B's start announced the pair: one new version for every device, from either node.
            assert await manifest_from(a, device) == (2, [A, B])
            assert await manifest_from(b, device) == (2, [A, B])
            db = a.app[DB]
            for _ in range(3):
                clock.advance(timedelta(seconds=30))
                assert await beat(db, A, clock(), FRESH) is None
                assert await beat(db, B, clock(), FRESH) is None
            assert await manifest_from(b, device) == (2, [A, B])


async def test_a_node_gone_quiet_is_dropped_once_and_announced_again_when_back(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    async with running_hub(tmp_path, clock=clock, public_url=A) as a:
        await a.commune("00001")
        device = await a.new_device()
        db = a.app[DB]
        assert await beat(db, B, clock(), FRESH) == {device.id: 2}
        assert await hub_urls(db) == [A, B]
        # B says nothing for longer than node_fresh: A's next heartbeat drops it, once.
        clock.advance(FRESH + timedelta(seconds=1))
        assert await beat(db, A, clock(), FRESH) == {device.id: 3}
        assert await beat(db, A, clock(), FRESH) is None
        assert await manifest_from(a, device) == (3, [A])
        # B comes back.
        assert await beat(db, B, clock(), FRESH) == {device.id: 4}
        assert await manifest_from(a, device) == (4, [A, B])


async def test_devices_connected_to_a_node_hear_of_a_node_another_announced(
    tmp_path: Path,
) -> None:
    heartbeat = timedelta(milliseconds=50)
    async with running_hub(tmp_path, public_url=A, node_heartbeat=heartbeat) as a:
        await a.commune("00001")
        device = await a.new_device()
        async with device.socket() as socket:
            first = await socket.command()
            assert first.type == "manifest_ready" and first.version == 1
            # B announces itself (in its own process, it would be its start); A notices at its
            # next heartbeat and tells the devices connected to it.
            async with running_hub(tmp_path, public_url=B):
                ready = await socket.command()
                assert ready.type == "manifest_ready" and ready.version == 2
        assert await manifest_from(a, device) == (2, [A, B])
