"""Uploads checked by decoding (issue #12): real files of each kind, made here with ffmpeg,
sox, Pillow, python-docx and odfpy; damaged ones refused with the problem named; the
decoded facts stored and returned; the submit and publish rules that depend on them."""

from __future__ import annotations

import asyncio
import io
import shutil
import subprocess
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docx
import pytest
from odf.opendocument import OpenDocumentText
from odf.text import H, P
from PIL import Image

from hub.domain.lengths import recorded_length_problem, within
from hub.probe import truncated
from hub.testing import HubHarness, running_hub
from loa_contract import BulletinKind
from tests.real_files import cmyk_jpeg, exif_rotated_jpeg, mp4_bytes, scanned_pdf, text_pdf


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001")
        yield harness


def ffmpeg(out: Path, *args: str) -> bytes:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args, str(out)], check=True)
    return out.read_bytes()


def tone(out: Path, seconds: float, *codec: str) -> bytes:
    return ffmpeg(out, "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", *codec)


def sox_wav(out: Path, seconds: float, rate: int) -> bytes:
    subprocess.run(
        ["sox", "-n", "-r", str(rate), "-c", "1", "-b", "16", str(out), "synth", str(seconds)],
        check=True,
    )
    return out.read_bytes()


def refused_message(body: Any) -> str:
    detail = body["detail"]
    assert isinstance(detail, list) and detail[0]["field"] == "media", body
    return str(detail[0]["message"])


# ---------------------------------------------------------------- audio and video


async def test_audio_formats_are_probed_and_described(hub: HubHarness, tmp_path: Path) -> None:
    files = {
        "mp3": (tone(tmp_path / "a.mp3", 3, "-ac", "2", "-c:a", "libmp3lame"), "audio/mpeg"),
        "opus": (tone(tmp_path / "a.ogg", 3, "-c:a", "libopus"), "audio/ogg"),
        "m4a": (tone(tmp_path / "a.m4a", 3, "-c:a", "aac"), "audio/mp4"),
        "flac": (tone(tmp_path / "a.flac", 3, "-c:a", "flac"), "audio/flac"),
        "wav8k": (sox_wav(tmp_path / "a8.wav", 3, 8000), "audio/wav"),
        "wav48k": (sox_wav(tmp_path / "a48.wav", 3, 48000), "audio/wav"),
    }
    for name, (data, mime) in files.items():
        stored = await hub.upload(data)
        assert stored["mime"] == mime, name
        assert stored["duration_s"] == pytest.approx(3.0, abs=0.1), name
        assert stored["codec"] and stored["sample_rate"], name
    mp3 = await hub.upload(files["mp3"][0])
    assert (mp3["codec"], mp3["channels"]) == ("mp3", 2)
    assert (await hub.upload(files["wav8k"][0]))["sample_rate"] == 8000
    listed = {m["sha256"]: m for m in await hub.call("GET", "/api/v1/media")}
    assert listed[mp3["sha256"]]["duration_s"] == mp3["duration_s"]


async def test_video_is_probed_with_its_resolution(hub: HubHarness, tmp_path: Path) -> None:
    mp4 = await hub.upload(mp4_bytes(tmp_path, 2.0, "320x240"))
    assert (mp4["mime"], mp4["codec"], mp4["width"], mp4["height"]) == (
        "video/mp4",
        "h264",
        320,
        240,
    )
    assert mp4["duration_s"] == pytest.approx(2.0, abs=0.15) and mp4["channels"] == 1
    webm = tmp_path / "v.webm"
    data = ffmpeg(
        webm,
        *("-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=1"),
        *("-c:v", "libvpx-vp9", "-b:v", "100k"),
    )
    stored = await hub.upload(data)
    assert (stored["mime"], stored["codec"], stored["width"]) == ("video/webm", "vp9", 160)


async def test_truncated_and_corrupt_audio_are_refused(hub: HubHarness, tmp_path: Path) -> None:
    whole = tone(tmp_path / "t.mp3", 6, "-c:a", "libmp3lame", "-write_xing", "1")
    # A cut download: the Xing header still says 6 s, one second of frames follows.
    body = await hub.upload(whole[:16000], expect=422)
    assert body["error"] == "truncated"
    message = refused_message(body)
    assert "bị cắt cụt" in message and "6.0 giây" in message, message
    assert "truncated" in body["detail"][0]["message_en"]
    damaged = bytearray(whole)
    for i in range(2000, len(damaged), 97):
        damaged[i] ^= 0x5A
    body = await hub.upload(bytes(damaged), expect=422)
    assert body["error"] == "corrupt" and "bị hỏng" in refused_message(body)
    # A header and nothing behind it: the decoder's complaint, without the hub's own paths.
    body = await hub.upload(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 64, expect=422)
    assert body["error"] == "corrupt"
    assert str(hub.config.data_dir) not in str(body) and ".part" not in str(body), body
    # Nothing of any is stored.
    assert await hub.call("GET", "/api/v1/media") == []
    assert [p for p in hub.config.media_dir.iterdir() if p.is_file()] == []


async def test_a_wav_shorter_than_its_header_is_refused(hub: HubHarness, tmp_path: Path) -> None:
    data = sox_wav(tmp_path / "w.wav", 4, 16000)
    body = await hub.upload(data[: len(data) // 3 // 2 * 2], expect=422)
    assert body["error"] == "truncated", body


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
async def test_a_wav_streamed_with_a_placeholder_size_passes(
    hub: HubHarness, tmp_path: Path
) -> None:
    # espeak-ng --stdout (and any recorder writing to a pipe) cannot go back to write the
    # size: its header says about 2 GiB. That is not a truncated file.
    spoken = await asyncio.to_thread(
        subprocess.run,
        ["espeak-ng", "-v", "vi", "--stdout", "Xin chào bà con"],
        capture_output=True,
        check=True,
    )
    stored = await hub.upload(spoken.stdout)
    assert stored["mime"] == "audio/wav" and 0.5 < stored["duration_s"] < 5


def test_truncation_allows_rounding_only() -> None:
    assert not truncated(6.0, 6.034)  # encoder padding
    assert not truncated(99.0, 100.0)  # within 3 %
    assert truncated(0.97, 6.03)
    assert truncated(95.0, 100.0)
    assert not truncated(0.2, 0.6)  # half a second is always allowed


# ---------------------------------------------------------------- pictures


async def test_pictures_are_decoded_and_sized(hub: HubHarness, tmp_path: Path) -> None:
    cmyk = await hub.upload(cmyk_jpeg(tmp_path / "c.jpg").read_bytes())
    assert (cmyk["mime"], cmyk["width"], cmyk["height"]) == ("image/jpeg", 400, 300)
    # Stored as the phone wrote it; the board turns it by its EXIF tag (renditions.py).
    photo = await hub.upload(exif_rotated_jpeg(tmp_path / "e.jpg").read_bytes())
    assert (photo["width"], photo["height"]) == (400, 300)
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (10, 200, 30)).save(buffer, "JPEG", quality=90)
    body = await hub.upload(buffer.getvalue()[: len(buffer.getvalue()) // 2], expect=422)
    assert body["error"] == "corrupt" and "Ảnh bị hỏng" in refused_message(body)


async def test_a_picture_over_the_pixel_limit_is_refused_unread(
    hub: HubHarness, tmp_path: Path
) -> None:
    # 8000×8000 one-bit pixels: a few kilobytes on disk, 64 megapixels decoded.
    big = tmp_path / "big.png"
    await asyncio.to_thread(Image.new("1", (8000, 8000)).save, big, "PNG")
    body = await hub.upload(big.read_bytes(), expect=422)
    assert body["error"] == "too_many_pixels"
    message = refused_message(body)
    assert "8000×8000" in message and "64 megapixel" in message and "50" in message


# ---------------------------------------------------------------- documents


def word_file(path: Path, paragraphs: list[str]) -> bytes:
    document = docx.Document()
    document.add_heading(paragraphs[0], level=1)
    for text in paragraphs[1:]:
        document.add_paragraph(text)
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "Thôn Đông"
    table.cell(0, 1).text = "7 giờ 30"
    document.save(str(path))
    return path.read_bytes()


def odt_file(path: Path, paragraphs: list[str]) -> bytes:
    document = OpenDocumentText()
    document.text.addElement(H(outlinelevel=1, text=paragraphs[0]))
    for text in paragraphs[1:]:
        document.text.addElement(P(text=text))
    document.save(str(path))
    return path.read_bytes()


WORDS = ["Thông báo tiêm phòng", "Ủy ban nhân dân xã thông báo lịch tiêm vắc-xin cho trẻ em."]


async def test_word_and_opendocument_become_their_text(hub: HubHarness, tmp_path: Path) -> None:
    word = word_file(tmp_path / "a.docx", WORDS)
    stored = await hub.upload(word)
    assert stored["mime"] == "text/plain" and stored["source_sha256"]
    text = (await hub.call("GET", f"/api/v1/media/{stored['sha256']}")).decode()
    assert text == "\n".join([*WORDS, "Thôn Đông", "7 giờ 30"])
    assert stored["words"] == len(text.split())
    # The agency's own file is kept as sent.
    original = await hub.call("GET", f"/api/v1/media/{stored['source_sha256']}")
    assert original == word
    odt = await hub.upload(odt_file(tmp_path / "a.odt", WORDS))
    assert odt["mime"] == "text/plain"
    assert (await hub.call("GET", f"/api/v1/media/{odt['sha256']}")).decode() == "\n".join(WORDS)
    bulletin = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json=draft(media=odt["sha256"], targets={"communes": ["00001"]}),
        expect=201,
    )
    assert bulletin["media"]["mime"] == "text/plain"


async def test_office_files_that_cannot_air_are_refused(hub: HubHarness, tmp_path: Path) -> None:
    empty = tmp_path / "empty.docx"
    docx.Document().save(str(empty))
    body = await hub.upload(empty.read_bytes(), expect=422)
    assert body["error"] == "no_text" and "không có chữ" in refused_message(body)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(
            "word/document.xml", b"<w:document>" + b" " * 30_000_000 + b"</w:document>"
        )
    body = await hub.upload(bomb.getvalue(), expect=422)
    assert body["error"] == "zip_bomb" and "giới hạn an toàn" in refused_message(body)
    entities = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(word_file(tmp_path / "b.docx", WORDS))) as source:
        with zipfile.ZipFile(entities, "w") as archive:
            for item in source.infolist():
                data = source.read(item)
                if item.filename == "word/document.xml":
                    data = data.replace(
                        b"?>", b'?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>', 1
                    )
                archive.writestr(item, data)
    body = await hub.upload(entities.getvalue(), expect=422)
    assert body["error"] == "unsafe" and "DOCTYPE" in refused_message(body)
    plain_zip = io.BytesIO()
    with zipfile.ZipFile(plain_zip, "w") as archive:
        archive.writestr("readme.txt", "x")
    await hub.upload(plain_zip.getvalue(), expect=415)
    assert await hub.call("GET", "/api/v1/media") == []


async def test_pdf_words_are_counted(hub: HubHarness, tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "t.pdf", ["Một hai ba bốn năm", "sáu bảy"], [(1, 2, 3)] * 2)
    assert (await hub.upload(pdf.read_bytes()))["words"] == 7
    scan = scanned_pdf(tmp_path / "s.pdf", [(200, 30, 40)])
    assert (await hub.upload(scan.read_bytes()))["words"] == 0
    body = await hub.upload(pdf.read_bytes()[:400], expect=422)
    assert body["error"] == "corrupt" and "PDF" in refused_message(body)


# ---------------------------------------------------------------- submit and publish


def draft(**kw: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "title": "Thông báo",
        "kind": "document",
        "priority": "normal",
        "category": "socioeconomic_development",
        "schedule": {
            "valid_from": (now - timedelta(minutes=1)).isoformat(),
            "valid_until": (now + timedelta(days=1)).isoformat(),
        },
        **kw,
    }


async def test_a_document_with_no_words_never_goes_to_speakers(
    hub: HubHarness, tmp_path: Path
) -> None:
    scan = scanned_pdf(tmp_path / "s.pdf", [(200, 30, 40)])
    sha = (await hub.upload(scan.read_bytes()))["sha256"]
    board = await hub.device("00001", "board")
    speaker = await hub.device("00001", "speaker")
    for targets in ({"communes": ["00001"]}, {"devices": [speaker["id"]]}):
        made = await hub.call(
            "POST", "/api/v1/bulletins", json=draft(media=sha, targets=targets), expect=201
        )
        body = await hub.call("POST", f"/api/v1/bulletins/{made['id']}/publish", expect=422)
        assert "loa không có gì để phát" in refused_message(body)
        assert (await hub.call("GET", f"/api/v1/bulletins/{made['id']}"))["state"] == "draft"
    # Bound for a board only, its pages are what airs.
    made = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json=draft(media=sha, targets={"devices": [board["id"]]}),
        expect=201,
    )
    assert (await hub.call("POST", f"/api/v1/bulletins/{made['id']}/publish"))["targeted"] == 1
    # Words typed beside the scan are what a speaker reads.
    made = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json=draft(media=sha, text="Lịch cắt điện", targets={"communes": ["00001"]}),
        expect=201,
    )
    await hub.call("POST", f"/api/v1/bulletins/{made['id']}/publish")
    # An agency submitting it for speakers hears the same at submit.
    agency = await hub.user("bt.soyte", "contributor", "so-yte")
    made = await agency.call(
        "POST",
        "/api/v1/bulletins",
        json=draft(media=sha, targets={"communes": ["00001"]}),
        expect=201,
    )
    body = await agency.call("POST", f"/api/v1/bulletins/{made['id']}/submit", expect=422)
    assert "loa không có gì để phát" in refused_message(body)


async def test_an_agency_recording_is_judged_by_its_decoded_length(
    hub: HubHarness, tmp_path: Path
) -> None:
    agency = await hub.user("bt.soyte", "contributor", "so-yte")
    short = (await agency.upload(sox_wav(tmp_path / "s.wav", 30, 8000)))["sha256"]
    right = (await agency.upload(sox_wav(tmp_path / "r.wav", 150, 8000)))["sha256"]
    made = await agency.call(
        "POST", "/api/v1/bulletins", json=draft(kind="audio", media=short), expect=201
    )
    body = await agency.call("POST", f"/api/v1/bulletins/{made['id']}/submit", expect=422)
    assert refused_message(body) == "Bản tin thu âm dài 0.5 phút; quy định: 2–3 phút."
    made = await agency.call(
        "POST", "/api/v1/bulletins", json=draft(kind="audio", media=right), expect=201
    )
    assert (await agency.call("POST", f"/api/v1/bulletins/{made['id']}/submit"))[
        "state"
    ] == "submitted"


def test_recorded_length_rules() -> None:
    audio, video, text = BulletinKind.AUDIO, BulletinKind.VIDEO, BulletinKind.TEXT
    assert recorded_length_problem(audio, "agency", 150) is None
    assert recorded_length_problem(audio, "agency", 184) is None  # "about" 3 minutes
    assert recorded_length_problem(audio, "agency", 190) == (120, 180)
    assert recorded_length_problem(audio, "agency", 100) == (120, 180)
    assert recorded_length_problem(video, "agency", 10) is None  # no rule for an agency's video
    assert recorded_length_problem(audio, "newspaper", 290) is None
    assert recorded_length_problem(video, "newspaper", 30) == (120, 300)
    assert recorded_length_problem(audio, "province", 5) is None
    assert recorded_length_problem(audio, "agency", None) is None
    assert recorded_length_problem(text, "newspaper", 5) is None
    assert within(115, 120, 180) and not within(114.9, 120, 180)


async def test_uploads_are_decoded_a_few_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each decode may take a core for minutes: more uploads than `probe_concurrency` wait
    their turn (and all are stored), so a burst of uploads cannot starve the node."""
    import threading

    import hub.probe

    real = hub.probe.inspect
    running = 0
    most = 0
    lock = threading.Lock()

    def counted(path: Path, mime: str) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        try:
            return real(path, mime)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(hub.probe, "inspect", counted)
    files = [tone(tmp_path / f"t{n}.mp3", 1.0 + n / 10, "-c:a", "libmp3lame") for n in range(5)]
    async with running_hub(tmp_path / "hub", probe_concurrency=2) as harness:
        stored = await asyncio.gather(*(harness.upload(data) for data in files))
    assert len({s["sha256"] for s in stored}) == 5
    assert 1 <= most <= 2
