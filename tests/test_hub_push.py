"""Push fan-out speed, mime sniffing, CLI and key file."""

from __future__ import annotations

import asyncio
import io
import stat
import struct
import time
import wave
import zlib
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from hub.cli import main
from hub.config import HubConfig
from hub.keys import load_keyring
from hub.media import sniff_mime
from hub.push import Connections
from hub.testing import running_hub
from loa_contract import (
    BulletinKind,
    CommandDocument,
    EmergencyStart,
    HubSigner,
    ManifestBulletin,
    Priority,
    Schedule,
    Scope,
    TrustedKeys,
    utcnow,
)


class FakeSocket:
    def __init__(self) -> None:
        self.frames: list[str] = []
        self.closed = False

    async def send_str(self, data: str, compress: int | None = None) -> None:
        self.frames.append(data)

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        self.closed = True
        return True


class StuckSocket(FakeSocket):
    async def send_str(self, data: str, compress: int | None = None) -> None:
        await asyncio.Event().wait()


def _emergency() -> ManifestBulletin:
    now = utcnow()
    return ManifestBulletin(
        id="b1",
        title="Bão",
        kind=BulletinKind.TEXT,
        priority=Priority.EMERGENCY,
        text="Sơ tán",
        schedule=Schedule(valid_from=now, valid_until=now + timedelta(hours=1)),
    )


async def test_one_signed_frame_serves_every_targeted_device() -> None:
    signer = HubSigner.generate()
    connections = Connections(signer)
    sockets = {f"dev-{i}": FakeSocket() for i in range(1000)}
    for device_id, sock in sockets.items():
        connections.register(device_id, sock)
    bulletin = _emergency()
    scope = Scope(communes=["xa-a"])
    started = time.perf_counter()
    delivered = await connections.push_emergency_start(sockets, bulletin, scope)
    elapsed = time.perf_counter() - started
    assert delivered == 1000
    assert elapsed < 0.5, f"1,000 pushes took {elapsed:.3f} s"
    # Signed once: every device gets the very same bytes, naming the scope, not a device.
    frames = {s.frames[0] for s in sockets.values()}
    assert len(frames) == 1
    command = TrustedKeys([signer.hub_key()]).open(frames.pop(), CommandDocument).command
    assert isinstance(command, EmergencyStart) and command.scope == scope
    assert command.addressed_to("dev-7", "xa-a")
    assert not command.addressed_to("dev-7", "xa-b")


async def test_a_stuck_socket_does_not_hold_up_the_rest() -> None:
    connections = Connections(HubSigner.generate(), send_timeout_s=0.05)
    good, stuck = FakeSocket(), StuckSocket()
    connections.register("good", good)
    connections.register("stuck", stuck)
    delivered = await connections.push_emergency_start(
        ["good", "stuck", "absent"], _emergency(), Scope(province=True)
    )
    assert delivered == 1 and len(good.frames) == 1
    assert stuck.closed and not connections.is_online("stuck")


async def test_reconnect_replaces_old_socket() -> None:
    connections = Connections(HubSigner.generate())
    old_conn, _ = connections.register("d", FakeSocket())
    new_conn, replaced = connections.register("d", FakeSocket())
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
        assert (await hub.upload(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64))["mime"] == "video/mp4"


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
