"""Push fan-out speed, mime sniffing, CLI and key file."""

from __future__ import annotations

import asyncio
import io
import stat
import struct
import wave
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

import hub.db as hub_db
import hub.testing as hub_testing
from hub.cli import main
from hub.config import HubConfig
from hub.keys import load_keyring
from hub.media import sniff_mime
from hub.node_bus import EventKind, LocalBus
from hub.push import BROADCAST_SLICE, Connections
from hub.testing import database_for_tests, running_hub
from loa_contract import (
    BulletinKind,
    CommandDocument,
    DeviceKind,
    EmergencyStart,
    HubSigner,
    ManifestBulletin,
    MediaRef,
    Priority,
    Schedule,
    Scope,
    TrustedKeys,
    utcnow,
)
from tests.real_files import mp4_bytes


class FakeSocket:
    def __init__(self) -> None:
        self.closed = False

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        self.closed = True
        return True


class FakeTransport:
    """A transport whose peer reads everything at once (the kernel takes every write)."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.frames.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


class StuckTransport(FakeTransport):
    """A peer that stopped reading: every byte stays in the transport's buffer."""

    def get_write_buffer_size(self) -> int:
        return sum(len(f) for f in self.frames)


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _payload(frame: bytes) -> str:
    """The text of one server WebSocket frame (RFC 6455 §5.2), checked as a client would."""
    assert frame[0] == 0x81  # final text frame, no extension bits
    size, offset = frame[1], 2
    assert size & 0x80 == 0  # a server never masks
    if size == 126:
        (size,), offset = struct.unpack("!H", frame[2:4]), 4
    elif size == 127:
        (size,), offset = struct.unpack("!Q", frame[2:10]), 10
    assert len(frame) == offset + size
    return frame[offset:].decode("utf-8")


def _emergency(text: str = "Sơ tán") -> ManifestBulletin:
    now = utcnow()
    return ManifestBulletin(
        id="b1",
        title="Bão",
        kind=BulletinKind.TEXT,
        priority=Priority.EMERGENCY,
        text=text,
        schedule=Schedule(valid_from=now, valid_until=now + timedelta(hours=1)),
    )


async def test_one_signed_frame_serves_every_targeted_device() -> None:
    signer = HubSigner.generate()
    connections = Connections(signer)
    transports = {f"dev-{i}": FakeTransport() for i in range(1000)}
    for device_id, transport in transports.items():
        connections.register(device_id, FakeSocket(), transport)
    scope = Scope(communes=["xa-a"])
    start = connections.emergency_start(_emergency(), scope)
    # No task, lock, timer or drain per send: the fan-out yields to the loop only between
    # its slices of BROADCAST_SLICE writes (500: once for these 1,000 and one absent).
    fan_out = connections.push_emergency_start([*transports, "absent"], start)
    yields = 0
    with pytest.raises(StopIteration) as done:
        while True:
            fan_out.send(None)
            yields += 1
    assert yields == 1000 // BROADCAST_SLICE
    assert done.value.value == 1000
    # Signed once: every device gets the very same bytes, naming the scope, not a device.
    frames = {t.frames[0] for t in transports.values()}
    assert frames == {start.signed.frame}
    command = TrustedKeys([signer.hub_key()]).open(_payload(frames.pop()), CommandDocument).command
    assert isinstance(command, EmergencyStart) and command.scope == scope
    assert command.command_id == start.signed.command_id
    assert command.addressed_to("dev-7", "xa-a")
    assert not command.addressed_to("dev-7", "xa-b")


async def test_an_emergency_is_committed_in_one_hop_and_pushed_with_no_read_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every device's push waits for the emergency's commit: its two dozen statements reach
    SQLite's writer thread in one hop, not one hop each (each a thread hand-over, dear while
    1,000 devices load the CPU), and the answer is read inside that commit, so neither the
    push nor the answer waits for a read after it."""
    if database_for_tests() is not None:
        pytest.skip("SQLite's writer thread")
    steps: list[str] = []
    on_thread = hub_db._on_thread

    async def noted(conn: Any, fn: Any, *args: Any) -> Any:
        steps.append(fn.__name__)
        return await on_thread(conn, fn, *args)

    push = Connections.push_emergency_start

    def noted_push(self: Connections, *args: Any) -> Any:
        steps.append("push")
        return push(self, *args)

    monkeypatch.setattr(hub_db, "_on_thread", noted)
    monkeypatch.setattr(Connections, "push_emergency_start", noted_push)
    async with running_hub(tmp_path) as hub:
        await hub.commune("00001")
        await hub.new_device()
        steps.clear()
        body = await hub.call(
            "POST",
            "/api/v1/emergencies",
            json={"title": "Lũ quét", "text": "Sơ tán ngay", "valid_minutes": 30},
            expect=201,
        )
    assert body["command_id"]
    # The operator's session, then the whole emergency in one hop, then the push.
    assert steps == ["_fetchone", "_in_group", "push"]


async def test_a_stuck_socket_does_not_hold_up_the_rest() -> None:
    clock = Monotonic()
    connections = Connections(HubSigner.generate(), stall_s=5.0, monotonic=clock)
    good, stuck = FakeTransport(), StuckTransport()
    connections.register("good", FakeSocket(), good)
    connections.register("stuck", FakeSocket(), stuck)
    first = connections.emergency_start(_emergency(), Scope(province=True))
    assert await connections.push_emergency_start(["good", "stuck", "absent"], first) == 2
    # Its frame sits unsent; within the stall limit the socket is kept (a slow 3G link).
    clock.now += 4.0
    cancel = connections.emergency_cancel("b1", Scope(province=True), timedelta(minutes=10))
    assert await connections.broadcast(["good", "stuck"], cancel.frame) == 2
    # Nothing has left it for longer than the limit: dropped, aborted, not waited for.
    clock.now += 2.0
    again = connections.emergency_start(_emergency(), Scope(province=True))
    assert await connections.push_emergency_start(["good", "stuck"], again) == 1
    assert stuck.aborted and not connections.is_online("stuck")
    assert len(stuck.frames) == 2
    assert good.frames == [first.signed.frame, cancel.frame, again.signed.frame]


async def test_a_socket_over_its_backlog_bound_is_dropped_at_once() -> None:
    connections = Connections(HubSigner.generate(), max_backlog_bytes=16384, monotonic=Monotonic())
    good, stuck = FakeTransport(), StuckTransport()
    connections.register("good", FakeSocket(), good)
    connections.register("stuck", FakeSocket(), stuck)
    # A long warning: each start frame is over half the bound.
    start = connections.emergency_start(_emergency("Sơ tán " * 700), Scope(province=True))
    assert 8192 < len(start.signed.frame) < 16384
    sent = [await connections.push_emergency_start(["good", "stuck"], start) for _ in range(3)]
    assert sent == [2, 2, 1]  # the third write finds more than 16 KiB unsent
    assert stuck.aborted and not connections.is_online("stuck")
    assert len(good.frames) == 3


async def test_a_cancelled_emergency_is_not_started_by_a_late_push() -> None:
    connections = Connections(HubSigner.generate())
    transport = FakeTransport()
    connections.register("d", FakeSocket(), transport)
    start = connections.emergency_start(_emergency(), Scope(province=True))
    connections.emergency_cancel("b1", Scope(province=True), timedelta(minutes=10))
    assert await connections.push_emergency_start(["d"], start) == 0
    assert transport.frames == []
    assert connections.emergencies.due_for("d", "xa-a", DeviceKind.SPEAKER, utcnow()) == []


def _fleet(connections: Connections, size: int) -> dict[str, FakeTransport]:
    transports = {f"dev-{i}": FakeTransport() for i in range(size)}
    for device_id, transport in transports.items():
        connections.register(device_id, FakeSocket(), transport)
    return transports


async def test_a_request_is_served_between_the_slices_of_a_fan_out() -> None:
    connections = Connections(HubSigner.generate())
    transports = _fleet(connections, 3 * BROADCAST_SLICE)
    start = connections.emergency_start(_emergency(), Scope(province=True))
    served_after: list[int] = []

    async def request() -> None:  # an operator's next call, arriving with the fan-out
        served_after.append(sum(len(t.frames) for t in transports.values()))

    fan_out = asyncio.create_task(connections.push_emergency_start(list(transports), start))
    await asyncio.gather(fan_out, request())
    # Served after the first slice, not after all 1,500 writes.
    assert served_after == [BROADCAST_SLICE]
    assert fan_out.result() == 3 * BROADCAST_SLICE


async def test_a_cancel_during_the_fan_out_stops_the_start_and_follows_it_everywhere() -> None:
    connections = Connections(HubSigner.generate())
    transports = _fleet(connections, 3 * BROADCAST_SLICE)
    scope = Scope(province=True)
    start = connections.emergency_start(_emergency(), scope)
    fan_out = asyncio.create_task(connections.push_emergency_start(list(transports), start))
    await asyncio.sleep(0)  # the first slice is written
    cancel = connections.emergency_cancel("b1", scope, timedelta(minutes=10))
    cancelled = asyncio.create_task(
        connections.push_emergency_cancel("b1", list(transports), cancel)
    )
    assert await fan_out == BROADCAST_SLICE  # not one start after the cancel
    assert await cancelled == 3 * BROADCAST_SLICE
    for i, transport in enumerate(transports.values()):
        expected = [start.signed.frame, cancel.frame] if i < BROADCAST_SLICE else [cancel.frame]
        assert transport.frames == expected


class SharedBus(LocalBus):
    """Another node is there: what this one hands it is kept."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[str] = []

    @property
    def shared(self) -> bool:
        return True

    async def publish(self, kind: EventKind, body: dict[str, Any]) -> None:
        self.published.append(kind)


async def test_a_start_cancelled_during_its_fan_out_is_not_handed_to_other_nodes() -> None:
    bus = SharedBus()
    connections = Connections(HubSigner.generate(), bus=bus)
    transports = _fleet(connections, 2 * BROADCAST_SLICE)
    start = connections.emergency_start(_emergency(), Scope(province=True))
    fan_out = asyncio.create_task(connections.push_emergency_start(list(transports), start))
    await asyncio.sleep(0)  # the first slice is written
    connections.emergency_cancel("b1", Scope(province=True), timedelta(minutes=10))
    assert await fan_out == BROADCAST_SLICE
    assert bus.published == []
    # Not cancelled: handed on once written here.
    second = connections.emergency_start(_emergency().model_copy(update={"id": "b2"}), start.scope)
    await connections.push_emergency_start(list(transports), second)
    assert bus.published == ["emergency_start"]


async def test_every_device_hears_two_emergencies_in_the_same_order() -> None:
    connections = Connections(HubSigner.generate())
    transports = _fleet(connections, 2 * BROADCAST_SLICE + 1)
    first = connections.emergency_start(_emergency("Lũ"), Scope(province=True))
    second_bulletin = _emergency("Cháy rừng thôn Đông").model_copy(update={"id": "b2"})
    second = connections.emergency_start(second_bulletin, Scope(communes=["xa-a"]))
    await asyncio.gather(
        connections.push_emergency_start(list(transports), first),
        connections.push_emergency_start(list(reversed(transports)), second),
    )
    assert {tuple(t.frames) for t in transports.values()} == {
        (first.signed.frame, second.signed.frame)
    }


def test_reconnecting_devices_get_the_kept_start_frames_in_scope() -> None:
    connections = Connections(HubSigner.generate())
    flood = connections.emergency_start(_emergency(), Scope(province=True))
    now = utcnow()
    later = now + timedelta(hours=2)
    fire = _emergency().model_copy(
        update={
            "id": "b2",
            "schedule": Schedule(valid_from=later, valid_until=later + timedelta(minutes=5)),
        }
    )
    audio = _emergency().model_copy(
        update={
            "id": "b3",
            "kind": BulletinKind.AUDIO,
            "text": None,
            "media": MediaRef(sha256="a" * 64, size=1, mime="audio/wav"),
        }
    )
    fire_frame = connections.emergency_start(fire, Scope(communes=["xa-a"]))
    audio_frame = connections.emergency_start(audio, Scope(devices=["spk"]))
    due = connections.emergencies.due_for
    assert due("spk", "xa-b", DeviceKind.SPEAKER, now) == [flood.signed, audio_frame.signed]
    assert due("brd", "xa-a", DeviceKind.BOARD, now) == [flood.signed]  # a board airs no audio
    # The commune's fire alert starts in two hours, when the flood warning has expired.
    at_fire = later + timedelta(seconds=1)
    assert due("brd", "xa-a", DeviceKind.BOARD, at_fire) == [fire_frame.signed]
    assert due("brd", "xa-b", DeviceKind.BOARD, at_fire) == []
    assert len(connections.emergencies) == 1  # expired frames are forgotten


async def test_background_pushes_finish_or_are_cancelled_and_failures_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    connections = Connections(HubSigner.generate())
    done: list[str] = []

    async def quick() -> None:
        await asyncio.sleep(0)
        done.append("quick")

    async def broken() -> None:
        raise RuntimeError("no such device")

    async def stuck() -> None:
        await asyncio.Event().wait()

    connections.in_background(quick(), "quick push")
    connections.in_background(broken(), "broken push")
    connections.in_background(stuck(), "stuck push")
    with caplog.at_level("WARNING", logger="hub.push"):
        await connections.finish_background(grace_s=0.2)
    assert done == ["quick"]
    failed = [r for r in caplog.records if r.getMessage() == "broken push failed"]
    assert failed and failed[0].exc_info and "no such device" in str(failed[0].exc_info[1])
    assert "stuck push still running at shutdown; cancelled" in caplog.messages
    await connections.finish_background(grace_s=0.2)  # nothing left: returns at once


async def test_reconnect_replaces_old_socket() -> None:
    connections = Connections(HubSigner.generate())
    old_conn, _ = connections.register("d", FakeSocket(), FakeTransport())
    new_conn, replaced = connections.register("d", FakeSocket(), FakeTransport())
    assert replaced is old_conn
    connections.unregister(old_conn)  # the old handler ending must not drop the new socket
    assert connections.is_online("d") and len(connections) == 1
    connections.unregister(new_conn)
    assert not connections.is_online("d")


def _wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)
    return buf.getvalue()


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


EBML = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\xf2\x81\x04\x42\xf3\x81\x08"


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (_wav(), "audio/wav"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 32, "audio/mpeg"),
        (b"\xff\xfb\x90\x64" + b"\x00" * 100, "audio/mpeg"),
        (b"OggS\x00\x02" + b"\x00" * 22 + b"OpusHead\x01\x02", "audio/ogg"),
        (b"OggS\x00\x02" + b"\x00" * 22 + b"\x80theora", "video/ogg"),
        (b"fLaC\x00\x00\x00\x22" + b"\x00" * 34, "audio/flac"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00M4A mp42isom", "audio/mp4"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", "video/mp4"),
        (EBML + b"\x42\x82\x84webm", "video/webm"),
        (EBML + b"\x42\x82\x88matroska", "video/x-matroska"),
        (_png(), "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"RIFF\x1a\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "application/pdf"),
        ("Thông báo: lịch cắt điện\n".encode(), "text/plain"),
    ],
)
def test_sniff(data: bytes, mime: str) -> None:
    try:
        data.decode("utf-8")
        text = True
    except UnicodeDecodeError:
        text = False
    assert sniff_mime(data[:4096], utf8_text=text) == mime


@pytest.mark.parametrize(
    "data",
    [b"\x00\x01\x02\x03", b"\xff\xf1\x50\x80", b"RIFF\x00\x00\x00\x00AVI ", b"MZ\x90\x00", b""],
)
def test_sniff_unknown(data: bytes) -> None:
    assert sniff_mime(data, utf8_text=False) is None


async def test_sniffed_types_upload(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        assert (await hub.upload(_wav(), "image/png"))["mime"] == "audio/wav"
        assert (await hub.upload(mp4_bytes(tmp_path)))["mime"] == "video/mp4"


def test_signing_key_created_private_and_reused(tmp_path: Path) -> None:
    config = HubConfig(data_dir=tmp_path)
    first = load_keyring(config.key_path, config.extra_keys_dir)
    assert stat.S_IMODE(config.key_path.stat().st_mode) == 0o600
    again = load_keyring(config.key_path, config.extra_keys_dir)
    assert again.signer.key_id == first.signer.key_id
    # A rotation key placed beside it is handed to agents too.
    config.extra_keys_dir.mkdir()
    nxt = HubSigner.generate()
    (config.extra_keys_dir / "next.pem").write_bytes(
        nxt.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    rotated = load_keyring(config.key_path, config.extra_keys_dir)
    assert [k.key_id for k in rotated.hub_keys()] == [first.signer.key_id, nxt.key_id]


async def test_cli_user_add_then_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("S3cret-pass!\n"))
    await asyncio.to_thread(
        main,
        ["user", "add", "chief", "--role", "admin", "--password-stdin", "--data", str(tmp_path)],
    )
    async with running_hub(tmp_path) as hub:
        token = await hub.login("chief", "S3cret-pass!")
        assert token
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    with pytest.raises(SystemExit):
        await asyncio.to_thread(
            main, ["user", "add", "x", "--password-stdin", "--data", str(tmp_path)]
        )


async def test_a_hub_that_hangs_at_shutdown_fails_naming_what_it_waits_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def stuck_pushes(self: Connections, grace_s: float) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(Connections, "finish_background", stuck_pushes)
    monkeypatch.setattr(hub_testing, "SHUTDOWN_LIMIT_S", 0.5)
    with pytest.raises(AssertionError, match="did not shut down") as failed:
        async with running_hub(tmp_path):
            pass
    assert "stuck_pushes" in str(failed.value)
