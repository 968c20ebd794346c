"""Device side: enrollment, signed manifests, media with Range, WebSocket pushes, reports."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.appkeys import CONNECTIONS, DB, KEYRING
from hub.db import iso
from hub.push import command_fields
from hub.testing import EnrolledDevice, FakeClock, HubHarness, health_report, running_hub
from loa_contract import (
    EmergencyCancel,
    EmergencyStart,
    HubSigner,
    Manifest,
    ManifestReady,
    Resync,
    SetVolume,
    SignatureError,
    TrustedKeys,
    utcnow,
)
from tests.real_files import png_bytes, wav_bytes

PNG = png_bytes((16, 16))
WAV = wav_bytes(0.5)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001")
        await harness.commune("00002")
        yield harness


def _schedule() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "valid_from": (now - timedelta(minutes=1)).isoformat(),
        "valid_until": (now + timedelta(days=2)).isoformat(),
    }


async def publish(hub: HubHarness, **kw: Any) -> dict[str, Any]:
    payload = {
        "title": "Bản tin",
        "kind": "text",
        "priority": "normal",
        "text": "Xin chào",
        "targets": {"communes": ["00001"]},
        "schedule": _schedule(),
        **kw,
    }
    created = await hub.call("POST", "/api/v1/bulletins", json=payload, expect=201)
    result: dict[str, Any] = await hub.call("POST", f"/api/v1/bulletins/{created['id']}/publish")
    return result


# ---------------------------------------------------------------- enrollment


async def test_enroll_is_single_use(hub: HubHarness) -> None:
    slot = await hub.device(kind="board")
    # People type codes in lower case and without dashes.
    dev = await hub.enroll(slot["enrollment_code"].replace("-", "").lower())
    assert dev.id == slot["id"] and dev.enrollment.device_kind == "board"
    assert dev.enrollment.commune == "00001" and dev.enrollment.profile == "led-board-p10"
    assert len(dev.enrollment.device_secret) >= 43  # 32 random bytes, base64url
    assert dev.enrollment.hub_keys == [hub.app[KEYRING].signer.hub_key()]
    # A used code and an unknown one get the very same answer: guessing learns nothing.
    used = await hub.client.post("/api/v1/enroll", json={"code": slot["enrollment_code"]})
    unknown = await hub.client.post("/api/v1/enroll", json={"code": "ZZZZ-ZZZZ-ZZZZ"})
    assert used.status == unknown.status == 403
    assert await used.json() == await unknown.json()
    assert (await used.json())["error"] == "invalid_code"
    audit = await hub.call("GET", "/api/v1/audit", params={"action": "device.enroll_failed"})
    reasons = {e["detail"] for e in audit["items"]}
    assert reasons == {"unknown code", f"code of device {dev.id} already used"}
    resp = await hub.client.post("/api/v1/enroll", json={"code": "x"})
    assert resp.status == 422
    row = await hub.app[DB].fetchone("SELECT secret_hash FROM devices WHERE id = ?", (dev.id,))
    assert row[0] != dev.enrollment.device_secret
    listed = await hub.call("GET", "/api/v1/devices")
    assert listed[0]["enrolled"] is True and listed[0]["online"] is True


async def test_enroll_code_expires(hub: HubHarness) -> None:
    slot = await hub.device()
    await hub.app[DB].execute(
        "UPDATE devices SET enrollment_expires_at = ?",
        (iso(datetime.now(UTC) - timedelta(seconds=1)),),
    )
    resp = await hub.client.post("/api/v1/enroll", json={"code": slot["enrollment_code"]})
    assert resp.status == 403 and (await resp.json())["error"] == "invalid_code"
    # A re-issued code works and revokes nothing that was never granted.
    fresh = await hub.call("POST", f"/api/v1/devices/{slot['id']}/enrollment", expect=201)
    dev = await hub.enroll(fresh["enrollment_code"])
    assert dev.id == slot["id"]


async def test_guessing_enrollment_codes_is_slowed_down(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_hub(tmp_path / "hub", clock=clock) as hub:
        await _guess_codes(hub, clock)


async def _guess_codes(hub: HubHarness, clock: FakeClock) -> None:
    await hub.commune()
    slot = await hub.device()
    for n in range(10):
        resp = await hub.client.post("/api/v1/enroll", json={"code": f"GUESS-{n:04d}-0000"})
        assert resp.status == 403
    # The eleventh try within the minute is refused before the code is even looked at, so
    # a right guess does not get through either.
    resp = await hub.client.post("/api/v1/enroll", json={"code": slot["enrollment_code"]})
    assert resp.status == 429 and (await resp.json())["error"] == "too_many_attempts"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    row = await hub.app[DB].fetchone(
        "SELECT enrollment_used_at FROM devices WHERE id = ?", (slot["id"],)
    )
    assert row[0] is None  # nothing changed
    clock.advance(timedelta(seconds=61))
    dev = await hub.enroll(slot["enrollment_code"])
    assert dev.id == slot["id"]


async def test_reenrollment_revokes_old_secret(hub: HubHarness) -> None:
    dev = await hub.new_device()
    assert (await dev.get("/api/v1/device/manifest")).status == 200
    fresh = await hub.call("POST", f"/api/v1/devices/{dev.id}/enrollment", expect=201)
    assert (await dev.get("/api/v1/device/manifest")).status == 401
    again = await hub.enroll(fresh["enrollment_code"])
    assert (await again.get("/api/v1/device/manifest")).status == 200


async def test_wrong_secret_is_refused(hub: HubHarness) -> None:
    dev = await hub.new_device()
    resp = await hub.client.get(
        "/api/v1/device/manifest", headers={"Authorization": f"Device {dev.id}:wrong"}
    )
    assert resp.status == 401 and (await resp.json())["error"] == "unauthorized"


# ---------------------------------------------------------------- manifest


async def test_manifest_signed_etag_and_versions(hub: HubHarness) -> None:
    dev = await hub.new_device()
    manifest, etag = await dev.manifest()
    assert etag == f'"{manifest.version}"'
    assert manifest.device_id == dev.id and manifest.device_kind == "speaker"
    assert [(w.start, w.end) for w in manifest.windows] == [("05:30", "06:30"), ("17:00", "18:00")]
    assert manifest.volume == 70 and manifest.bulletins == []
    assert manifest.expires_at - manifest.issued_at == timedelta(days=14)

    resp = await dev.get("/api/v1/device/manifest")
    assert "Date" in resp.headers  # the agent's clock-trust source
    other = TrustedKeys([HubSigner.generate().hub_key()])
    with pytest.raises(SignatureError):
        other.open(await resp.read(), Manifest)

    resp = await dev.get("/api/v1/device/manifest", headers={"If-None-Match": etag})
    assert resp.status == 304 and resp.headers["ETag"] == etag

    bulletin = await publish(hub)
    published, etag2 = await dev.manifest()
    assert published.version > manifest.version and etag2 != etag
    assert [b.id for b in published.bulletins] == [bulletin["id"]]
    resp = await dev.get("/api/v1/device/manifest", headers={"If-None-Match": etag})
    assert resp.status == 200

    await hub.call("POST", f"/api/v1/bulletins/{bulletin['id']}/cancel")
    cancelled, _ = await dev.manifest()
    assert cancelled.version > published.version and cancelled.bulletins == []
    assert cancelled.cancelled == []  # only emergencies are listed as cancelled

    await hub.call("PUT", "/api/v1/communes/00001", json={"volume": 30})
    changed, _ = await dev.manifest()
    assert changed.version > cancelled.version and changed.volume == 30


async def test_manifest_is_cached_per_version(hub: HubHarness) -> None:
    dev = await hub.new_device()
    first = await (await dev.get("/api/v1/device/manifest")).read()
    second = await (await dev.get("/api/v1/device/manifest")).read()
    assert first == second  # same bytes: not re-signed, not re-issued


async def test_manifest_kind_filtering(hub: HubHarness) -> None:
    speaker = await hub.new_device(kind="speaker")
    board = await hub.new_device(kind="board")
    elsewhere = await hub.new_device("00002", kind="speaker")
    png = (await hub.upload(PNG))["sha256"]
    wav = (await hub.upload(WAV))["sha256"]
    text = await publish(hub)
    audio = await publish(hub, kind="audio", media=wav, text=None)
    image = await publish(hub, kind="image", media=png, text=None)
    direct = await publish(hub, targets={"devices": [elsewhere.id]})

    s, _ = await speaker.manifest()
    b, _ = await board.manifest()
    e, _ = await elsewhere.manifest()
    assert {x.id for x in s.bulletins} == {text["id"], audio["id"]}
    assert {x.id for x in b.bulletins} == {text["id"], image["id"]}
    assert {x.id for x in e.bulletins} == {direct["id"]}
    assert [(w.start, w.end) for w in b.windows] == [("06:00", "22:00")]
    media = {x.id: x.media for x in s.bulletins}
    assert media[audio["id"]] is not None and media[audio["id"]].sha256 == wav
    assert media[audio["id"]].size == len(WAV) and media[audio["id"]].mime == "audio/wav"


async def test_manifest_reissued_before_expiry(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.commune()
        dev = await hub.new_device()
        first, etag = await dev.manifest()
        await hub.app[DB].execute(
            "UPDATE device_manifests SET signed_at = ?",
            (iso(datetime.now(UTC) - timedelta(days=8)),),
        )
        resp = await dev.get("/api/v1/device/manifest", headers={"If-None-Match": etag})
        assert resp.status == 200
        second = dev.keys.open(await resp.read(), Manifest)
        assert second.version > first.version and second.expires_at > first.expires_at


# ---------------------------------------------------------------- media


async def test_media_range_and_resume(hub: HubHarness) -> None:
    dev = await hub.new_device()
    sha = (await hub.upload(WAV))["sha256"]
    await publish(hub, kind="audio", media=sha, text=None)
    url = f"/api/v1/device/media/{sha}"
    whole = await dev.get(url)
    assert whole.status == 200 and await whole.read() == WAV
    assert whole.headers["Content-Type"] == "audio/wav"
    head = await dev.get(url, headers={"Range": "bytes=0-999"})
    assert head.status == 206
    got = await head.read()
    assert got == WAV[:1000]
    # A cut download resumes from what it has and ends with exactly the remaining bytes.
    rest = await dev.get(url, headers={"Range": f"bytes={len(got)}-"})
    assert rest.status == 206
    remaining = await rest.read()
    assert remaining == WAV[len(got) :]
    assert hashlib.sha256(got + remaining).hexdigest() == sha
    assert rest.headers["Content-Range"] == f"bytes 1000-{len(WAV) - 1}/{len(WAV)}"


async def test_media_scoped_to_device_bulletins(hub: HubHarness) -> None:
    speaker = await hub.new_device()
    board = await hub.new_device(kind="board")
    elsewhere = await hub.new_device("00002")
    wav = (await hub.upload(WAV))["sha256"]
    draft_only = (await hub.upload(PNG))["sha256"]
    await publish(hub, kind="audio", media=wav, text=None)
    await hub.call(
        "POST",
        "/api/v1/bulletins",
        expect=201,
        json={
            "title": "draft",
            "kind": "image",
            "priority": "normal",
            "media": draft_only,
            "targets": {"communes": ["00001"]},
            "schedule": _schedule(),
        },
    )
    assert (await speaker.get(f"/api/v1/device/media/{wav}")).status == 200
    for dev, sha in (
        (elsewhere, wav),
        (board, wav),
        (board, draft_only),
        (speaker, "0" * 64),
        (speaker, "not-a-hash"),
    ):
        resp = await dev.get(f"/api/v1/device/media/{sha}")
        assert resp.status == 404 and (await resp.json())["error"] == "not_found"


# ---------------------------------------------------------------- WebSocket


async def test_ws_emergency_start_reconnect_and_cancel(hub: HubHarness) -> None:
    dev: EnrolledDevice = await hub.new_device()
    board = await hub.new_device(kind="board")
    async with dev.socket() as ws, board.socket() as board_ws:
        hello = await ws.command()
        assert isinstance(hello, ManifestReady) and hello.device_id == dev.id
        assert isinstance(await board_ws.command(), ManifestReady)

        body = await hub.call(
            "POST",
            "/api/v1/emergencies",
            expect=201,
            json={
                "title": "Lũ quét",
                "text": "Di chuyển lên vùng cao",
                "targets": {"communes": ["00001"]},
            },
        )
        assert body["pushed"] == 2 and body["targeted"] == 2
        start = await ws.command()
        assert isinstance(start, EmergencyStart)
        assert start.bulletin.id == body["id"] and start.scope.communes == ["00001"]
        assert start.command_id == body["command_id"]
        assert start.addressed_to(dev.id, "00001") and not start.addressed_to(dev.id, "00002")
        assert start.expires_at == start.bulletin.schedule.valid_until
        # The board gets the very same signed frame (text plays on boards), and neither gets
        # a manifest nudge after it: the start itself says the manifest changed.
        board_start = await board_ws.command()
        assert isinstance(board_start, EmergencyStart)
        assert board_start.command_id == start.command_id
        await hub.call(
            "POST",
            f"/api/v1/devices/{dev.id}/commands",
            json={"type": "set_volume", "volume": 40},
            expect=202,
        )
        assert isinstance(await ws.command(), SetVolume)  # nothing came between

    listed = {d["id"]: d for d in await hub.call("GET", "/api/v1/devices")}
    assert listed[dev.id]["online"] is True  # seen moments ago, though disconnected

    async with dev.socket() as ws:
        ready = await ws.command()
        assert isinstance(ready, ManifestReady) and ready.version > hello.version
        again = await ws.command()
        assert isinstance(again, EmergencyStart) and again.bulletin.id == body["id"]
        # The frame signed at publish, kept: nothing re-signed, and the device knows the id.
        assert again.command_id == start.command_id
        manifest, _ = await dev.manifest()
        assert manifest.version == ready.version
        assert [b.id for b in manifest.bulletins] == [body["id"]]

        connected = {d["id"]: d for d in await hub.call("GET", "/api/v1/devices")}
        assert connected[dev.id]["connected"] is True

        cancelled = await hub.call("POST", f"/api/v1/bulletins/{body['id']}/cancel")
        cancel = await ws.command()
        assert isinstance(cancel, EmergencyCancel) and cancel.bulletin_id == body["id"]
        assert cancel.command_id == cancelled["command_id"]
        manifest, _ = await dev.manifest()
        assert manifest.bulletins == [] and manifest.cancelled == [body["id"]]

    async with dev.socket() as ws:  # a cancelled emergency is not restarted on reconnect
        assert isinstance(await ws.command(), ManifestReady)
        result = await hub.call(
            "POST",
            f"/api/v1/devices/{dev.id}/commands",
            json={"type": "set_volume", "volume": 55},
            expect=202,
        )
        assert result["delivered"] is True
        command = await ws.command()
        assert isinstance(command, SetVolume) and command.volume == 55
        assert command.command_id == result["command_id"]


async def test_the_emergency_answer_does_not_wait_for_delivery(hub: HubHarness) -> None:
    dev = await hub.new_device()
    connections = hub.app[CONNECTIONS]
    async with dev.socket() as ws:
        assert isinstance(await ws.command(), ManifestReady)
        # The device stops reading (a stalled 3G link): small socket buffers on both ends, and
        # the hub's own buffer for it filled, so nothing written to it now can arrive yet.
        ws.ws.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        conn = connections.connection(dev.id)
        assert conn is not None
        conn.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
        )
        filler = connections.sign(Resync(**command_fields(dev.id, utcnow(), timedelta(minutes=1))))
        for _ in range(100_000):
            if conn.transport.get_write_buffer_size() > 100_000:
                break
            assert connections.write(conn, filler.frame)
        assert conn.transport.get_write_buffer_size() > 100_000

        body = await hub.call(
            "POST", "/api/v1/emergencies", expect=201, json={"title": "Lũ", "text": "Sơ tán"}
        )
        assert body["pushed"] == 1 and body["command_id"]
        # Released: the device reads again, and behind the backlog comes the start the
        # answer named.
        command = await ws.command()
        while isinstance(command, Resync):
            command = await ws.command()
        assert isinstance(command, EmergencyStart) and command.command_id == body["command_id"]
        assert connections.is_online(dev.id)


async def test_active_emergencies_are_resent_after_a_hub_restart(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.commune("00001")
        await hub.commune("00002")
        here = await hub.new_device("00001")
        there = await hub.new_device("00002")
        flood = await hub.call(
            "POST", "/api/v1/emergencies", expect=201, json={"title": "Lũ", "text": "Sơ tán"}
        )
        fire = await hub.call(
            "POST",
            "/api/v1/emergencies",
            expect=201,
            json={"title": "Cháy", "text": "Tránh xa", "targets": {"communes": ["00001"]}},
        )
        stopped = await hub.call(
            "POST", "/api/v1/emergencies", expect=201, json={"title": "Thử", "text": "Thử"}
        )
        await hub.call("POST", f"/api/v1/emergencies/{stopped['id']}/cancel")
    async with running_hub(tmp_path) as hub:
        # After the outage each device hears what is in force for it, oldest first; the
        # cancelled one is not restarted.
        here, there = EnrolledDevice(hub, here.enrollment), EnrolledDevice(hub, there.enrollment)
        async with here.socket() as ws:
            assert isinstance(await ws.command(), ManifestReady)
            first, second = await ws.command(), await ws.command()
            assert isinstance(first, EmergencyStart) and isinstance(second, EmergencyStart)
            assert [first.bulletin.id, second.bulletin.id] == [flood["id"], fire["id"]]
        async with there.socket() as ws:
            assert isinstance(await ws.command(), ManifestReady)
            again = await ws.command()
            assert isinstance(again, EmergencyStart) and again.bulletin.id == flood["id"]
            await hub.call(
                "POST", f"/api/v1/devices/{there.id}/commands", json={"type": "stop"}, expect=202
            )
            assert (await ws.command()).type == "stop"  # nothing else came before it


async def test_a_long_emergency_frame_arrives_whole(hub: HubHarness) -> None:
    dev = await hub.new_device()
    text = "Khẩn cấp: sơ tán ngay. " * 2000  # 46,000 characters: a frame over 64 KiB
    async with dev.socket() as ws:
        await ws.command()
        body = await hub.call(
            "POST", "/api/v1/emergencies", expect=201, json={"title": "Bão", "text": text}
        )
        start = await ws.command()
        assert isinstance(start, EmergencyStart) and start.bulletin.text == text
        assert start.command_id == body["command_id"]


async def test_audio_emergency_skips_boards(hub: HubHarness) -> None:
    speaker = await hub.new_device()
    board = await hub.new_device(kind="board")
    wav = (await hub.upload(WAV))["sha256"]
    async with speaker.socket() as sws, board.socket() as bws:
        await sws.command()
        await bws.command()
        body = await hub.call(
            "POST", "/api/v1/emergencies", expect=201, json={"title": "Cháy rừng", "media": wav}
        )
        assert body["kind"] == "audio" and body["targeted"] == 1 and body["pushed"] == 1
        assert isinstance(await sws.command(), EmergencyStart)
        # The board only receives the next thing sent to it: prove the emergency was skipped.
        await hub.call(
            "POST", f"/api/v1/devices/{board.id}/commands", json={"type": "test_tone"}, expect=202
        )
        assert (await bws.command()).type == "test_tone"


async def test_commune_update_pushes_manifest_ready(hub: HubHarness) -> None:
    dev = await hub.new_device()
    async with dev.socket() as ws:
        first = await ws.command()
        await hub.call("PUT", "/api/v1/communes/00001", json={"name": "Xã Mới"})
        nudge = await ws.command()
        assert isinstance(nudge, ManifestReady) and nudge.version == first.version + 1


# ---------------------------------------------------------------- reports


def _play(seq: int, bulletin: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "type": "play",
        "seq": seq,
        "bulletin_id": bulletin,
        "priority": "normal",
        "kind": "text",
        "started_at": (now - timedelta(seconds=30)).isoformat(),
        "ended_at": now.isoformat(),
        "outcome": "completed",
        "position_s": 30.0,
    }


def _health(seq: int, at: datetime, bulletin: str | None = None) -> dict[str, Any]:
    if not bulletin:
        return health_report(seq, at, player_state="playing")
    now_playing = {
        "bulletin_id": bulletin,
        "priority": "normal",
        "kind": "text",
        "title": "Bản tin",
        "started_at": at.isoformat(),
    }
    return health_report(seq, at, player_state="playing", now_playing=now_playing)


async def test_a_device_that_lost_its_state_file_keeps_reporting(hub: HubHarness) -> None:
    """Its seq starts at 1 again under a new stream: new reports are kept, retries are not."""
    dev = await hub.new_device()
    bulletin = await publish(hub)
    first, second = "a1" * 16, "b2" * 16
    assert (await dev.report([_play(1, bulletin["id"]), _play(2, bulletin["id"])], first))[0] == 200
    assert (await dev.report([_play(1, bulletin["id"])], second))[0] == 200
    assert (await dev.report([_play(1, bulletin["id"])], second))[0] == 200  # a retry
    plays = await hub.call("GET", f"/api/v1/plays?device={dev.id}")
    assert len(plays) == 3
    status, body = await dev.report([_play(3, bulletin["id"])], "NOT-HEX")
    assert status == 422 and body["detail"][0]["field"] == "stream"


async def test_reports_are_idempotent(hub: HubHarness) -> None:
    dev = await hub.new_device()
    bulletin = await publish(hub)
    now = datetime.now(UTC)
    batch = [_play(1, bulletin["id"]), _play(2, bulletin["id"]), _health(3, now, bulletin["id"])]
    status, ack = await dev.report(batch)
    assert status == 200 and ack == {"acked": [1, 2, 3]}
    status, ack = await dev.report(batch)  # the agent retried: nothing is counted twice
    assert status == 200 and ack == {"acked": [1, 2, 3]}
    status, ack = await dev.report(
        [_play(2, bulletin["id"]), _play(4, bulletin["id"]), _health(5, now - timedelta(minutes=5))]
    )
    assert ack == {"acked": [2, 4, 5]}

    plays = await hub.call("GET", f"/api/v1/plays?device={dev.id}")
    assert sorted(p["seq"] for p in plays) == [1, 2, 4]
    assert await hub.call("GET", f"/api/v1/plays?bulletin={bulletin['id']}") == plays
    assert await hub.call("GET", "/api/v1/plays?bulletin=other") == []
    row = await hub.app[DB].fetchone("SELECT COUNT(*) FROM health")
    assert row[0] == 2

    listed = await hub.call("GET", "/api/v1/devices")
    assert listed[0]["online"] is True
    # The older sample (seq 5) arrived later but does not replace the newest.
    assert listed[0]["health"]["seq"] == 3
    assert listed[0]["now_playing"]["bulletin_id"] == bulletin["id"]


async def test_bad_report_changes_nothing(hub: HubHarness) -> None:
    dev = await hub.new_device()
    bad = [_play(1, "b"), {**_play(2, "b"), "outcome": "exploded"}]
    status, body = await dev.report(bad)
    assert status == 422 and body["detail"][0]["field"].startswith("reports[1]")
    assert await hub.call("GET", "/api/v1/plays") == []


# ---------------------------------------------------------------- verdict


async def test_verdict_from_reported_health(hub: HubHarness) -> None:
    slot = await hub.device(name="not yet enrolled")
    old_agent = await hub.new_device()
    weak_supply = await hub.new_device()
    now = datetime.now(UTC)
    # An older agent's sample (none of the Pi fields) still validates and judges "ok".
    assert (await old_agent.report([_health(1, now)]))[0] == 200
    status, _ = await weak_supply.report(
        [
            {
                **_health(1, now),
                "under_voltage": True,
                "under_voltage_since_boot": True,
                "throttled": True,
                "filesystem_readonly": False,
                "ext4_errors_total": 0,
                "sd_write_ok": True,
                "sd_write_seconds": 0.02,
                "relay_on": True,
                "player_stuck_stops_total": 0,
            }
        ]
    )
    assert status == 200

    listed = {d["id"]: d for d in await hub.call("GET", "/api/v1/devices")}
    assert listed[slot["id"]]["verdict"] == "unknown"
    assert listed[slot["id"]]["verdict_reasons"] == ["not_enrolled"]
    assert listed[old_agent.id]["verdict"] == "ok"
    assert listed[old_agent.id]["verdict_reasons"] == []
    weak = listed[weak_supply.id]
    assert weak["verdict"] == "fault"
    assert weak["verdict_reasons"] == ["under_voltage", "throttled"]
    assert weak["health"]["under_voltage"] is True and weak["health"]["relay_on"] is True
    one = await hub.call("GET", f"/api/v1/devices/{weak_supply.id}")
    assert one["verdict"] == "fault" and one["verdict_reasons"] == weak["verdict_reasons"]

    faults = await hub.call("GET", "/api/v1/devices?verdict=fault")
    assert [d["id"] for d in faults] == [weak_supply.id]
    assert [d["id"] for d in await hub.call("GET", "/api/v1/devices?verdict=ok")] == [old_agent.id]
    body = await hub.call("GET", "/api/v1/devices?verdict=broken", expect=422)
    assert body["detail"][0]["field"] == "verdict"

    # Silent for longer than the hub's offline-after: offline is a fault, and the last
    # report's reasons stay as the clue to why.
    await hub.app[DB].execute(
        "UPDATE devices SET last_seen = ?", (iso(datetime.now(UTC) - timedelta(hours=1)),)
    )
    listed = {d["id"]: d for d in await hub.call("GET", "/api/v1/devices")}
    assert listed[old_agent.id]["verdict_reasons"] == ["offline"]
    assert listed[weak_supply.id]["verdict_reasons"] == ["offline", "under_voltage", "throttled"]


async def test_health_sample_refuses_unknown_fields(hub: HubHarness) -> None:
    # The contract stays strict (extra=forbid): a typo in a new field is an error, not lost.
    dev = await hub.new_device()
    status, body = await dev.report([{**_health(1, datetime.now(UTC)), "under_voltag": True}])
    assert status == 422 and "under_voltag" in body["detail"][0]["field"]
