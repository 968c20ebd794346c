"""Device socket handshakes pass a bounded gate (hub.push.HANDSHAKES_AT_ONCE): a reconnection
storm is set up a few devices at a time, so the short-lived objects of thousands of handshakes
in flight do not leave holes between the sockets' long-lived ones (issue #8, the hub's memory
per device). Every path out of a handshake gives its place back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import hub.device_api as device_api
import hub.push as push
import hub.routing as routing
from hub.push import Connections
from hub.testing import EnrolledDevice, running_hub
from loa_contract import HubSigner, ManifestReady


async def test_admission_lets_the_gate_width_in_and_each_leave_frees_one_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(push, "HANDSHAKES_AT_ONCE", 2)
    connections = Connections(HubSigner.generate())
    first = await connections.admit()
    await connections.admit()
    third = asyncio.ensure_future(connections.admit())
    await asyncio.sleep(0)
    assert not third.done() and connections.handshakes_waiting == 1
    first.leave()
    first.leave()  # given back once, however often asked
    admitted = await third
    assert connections.handshakes_waiting == 0
    fourth = asyncio.ensure_future(connections.admit())
    await asyncio.sleep(0)
    assert not fourth.done()
    admitted.leave()
    (await fourth).leave()


async def _catch_up(device: EnrolledDevice) -> ManifestReady:
    # The time limit only bounds a failing test (a place never given back).
    async with asyncio.timeout(5.0), device.socket() as sock:
        command = await sock.command()
    assert isinstance(command, ManifestReady)
    return command


async def test_one_place_serves_devices_in_turn_whatever_became_of_the_one_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket that stays open, a refused secret and a device gone before its upgrade each
    give the only place back: the next device still hears its catch-up."""
    monkeypatch.setattr(push, "HANDSHAKES_AT_ONCE", 1)
    async with running_hub(tmp_path) as hub:
        await hub.commune("00001")
        devices = [await hub.new_device() for _ in range(3)]
        async with devices[0].socket() as held:
            assert isinstance(await held.command(), ManifestReady)
            # The first socket is still open: its handshake, not its life, held the place.
            await _catch_up(devices[1])
            wrong = {"Authorization": f"Device {devices[2].id}:not-the-secret"}
            refused = await hub.client.get("/api/v1/device/ws", headers=wrong)
            assert refused.status == 401
            await _catch_up(devices[2])


async def test_a_reconnection_storm_is_set_up_a_few_devices_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(push, "HANDSHAKES_AT_ONCE", 2)
    in_flight = 0
    most = 0
    authenticate = routing.authenticate_device
    catch_up = device_api._catch_up

    async def counted_authentication(request: Any) -> Any:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        for _ in range(5):  # room for the other handshakes to overtake, were they let in
            await asyncio.sleep(0)
        return await authenticate(request)

    async def counted_catch_up(*args: Any) -> None:
        nonlocal in_flight
        try:
            await catch_up(*args)
        finally:
            in_flight -= 1

    monkeypatch.setattr(routing, "authenticate_device", counted_authentication)
    monkeypatch.setattr(device_api, "_catch_up", counted_catch_up)
    async with running_hub(tmp_path) as hub:
        await hub.commune("00001")
        devices = [await hub.new_device() for _ in range(12)]
        heard = await asyncio.gather(*(_catch_up(device) for device in devices))
    assert len(heard) == 12
    assert most == 2
