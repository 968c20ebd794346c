"""Content store: files named by their sha256; the type comes from the bytes, not the header.

Every upload is audited (`media.upload`, the sha256 as target, the uploader's unit) and
recorded in `media_uploads` by unit, which scopes media: an account that is not province-wide
lists only its own unit's uploads, and downloads those or the media of a bulletin it may see.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import hashlib
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from aiohttp import web
from pydantic import BaseModel

from . import probe
from .appkeys import PROBES
from .auth import Permission
from .errors import ApiError
from .node_objects import object_response
from .routing import Ctx, RouteTable
from .store import media

routes = RouteTable("media")

_SNIFF_BYTES = 4096
_WRITE_CHUNK = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def sniff_mime(head: bytes, *, utf8_text: bool) -> str | None:
    """The media type from magic bytes; `utf8_text` says the whole file decoded as text."""
    if head.startswith(b"RIFF") and len(head) >= 12:
        if head[8:12] == b"WAVE":
            return "audio/wav"
        if head[8:12] == b"WEBP":
            return "image/webp"
        return None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        # Word and OpenDocument files are ZIP archives: their members say which (probe.py).
        return probe.ZIP_MIME
    if head.startswith(b"fLaC"):
        return "audio/flac"
    if head.startswith(b"OggS"):
        # The first page names the codec: Theora is video, Opus/Vorbis/FLAC audio.
        return "video/ogg" if b"\x80theora" in head[:512] else "audio/ogg"
    if head.startswith(b"ID3"):
        return "audio/mpeg"
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B ", b"M4P ", b"F4A "):
            return "audio/mp4"
        return "video/mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm" if b"webm" in head[:64] else "video/x-matroska"
    if _is_mpeg_audio_frame(head):
        return "audio/mpeg"
    if utf8_text and head:
        return "text/plain"
    return None


def _is_mpeg_audio_frame(head: bytes) -> bool:
    """An MP3 without ID3 starts with a frame header: 11 sync bits, a layer, a bitrate."""
    if len(head) < 4 or head[0] != 0xFF or (head[1] & 0xE0) != 0xE0:
        return False
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    bitrate = head[2] >> 4
    rate = (head[2] >> 2) & 0b11
    # layer 00 is AAC ADTS, version 01 reserved; bitrate 1111 and rate 11 are invalid.
    return version != 0b01 and layer != 0 and bitrate != 0b1111 and rate != 0b11


class _TextCheck:
    """Decides while streaming whether the whole upload is plain UTF-8 text."""

    _ALLOWED_CONTROLS = frozenset("\t\n\r\f")

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.ok = True

    def feed(self, chunk: bytes, final: bool = False) -> None:
        if not self.ok:
            return
        try:
            text = self._decoder.decode(chunk, final)
        except UnicodeDecodeError:
            self.ok = False
            return
        if any(c < " " and c not in self._ALLOWED_CONTROLS for c in text) or "\x7f" in text:
            self.ok = False


def media_path(media_dir: Path, sha256: str) -> Path:
    if not _SHA256.match(sha256):
        raise ValueError("not a sha256")
    return media_dir / sha256


class MediaOut(BaseModel):
    """A stored file and what decoding it at upload found (None: not known, or not of its
    kind: no duration for a picture)."""

    sha256: str
    size: int
    mime: str
    #: Audio and video: the length as decoded, in seconds.
    duration_s: float | None = None
    codec: str | None = None
    channels: int | None = None
    sample_rate: int | None = None
    #: Pictures and video: pixels.
    width: int | None = None
    height: int | None = None
    #: Documents: the words devices read or show.
    words: int | None = None
    #: A Word or OpenDocument upload is stored as the text taken out of it (what devices
    #: air); this names the original file, kept as sent.
    source_sha256: str | None = None

    @classmethod
    def of(cls, m: media.Media) -> MediaOut:
        return cls(
            sha256=m.sha256,
            size=m.size,
            mime=m.mime,
            duration_s=m.duration_s,
            codec=m.codec,
            channels=m.channels,
            sample_rate=m.sample_rate,
            width=m.width,
            height=m.height,
            words=m.words,
            source_sha256=m.source_sha256,
        )


def _record(sha: str, size: int, mime: str, found: probe.Probe, source: str | None) -> media.Media:
    return media.Media(
        sha,
        size,
        mime,
        duration_s=found.duration_s,
        codec=found.codec,
        channels=found.channels,
        sample_rate=found.sample_rate,
        width=found.width,
        height=found.height,
        words=found.words,
        source_sha256=source,
    )


def _store_text(media_dir: Path, text: str) -> tuple[str, int]:
    """Store extracted text as a UTF-8 file named by its sha256 (atomically)."""
    data = text.encode("utf-8")
    sha = hashlib.sha256(data).hexdigest()
    final = media_path(media_dir, sha)
    if not final.exists():
        tmp = media_dir / "tmp" / f"{uuid.uuid4().hex}.part"
        fh = tmp.open("wb")
        try:
            fh.write(data)
            _finish_file(fh, tmp, final)
        finally:
            fh.close()
            tmp.unlink(missing_ok=True)
    return sha, len(data)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _finish_file(fh: BinaryIO, tmp: Path, final: Path) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()
    os.replace(tmp, final)
    _fsync_dir(final.parent)


@routes.post(
    "/api/v1/media",
    summary="Upload a media file (raw body); the type is sniffed from the bytes and the file"
    " decoded: a damaged, truncated or too large file is refused (422, the problem named in"
    " Vietnamese). A Word or OpenDocument file is stored as the text taken out of it (the"
    " answer's sha256; source_sha256 names the original)",
    permission=Permission.MEDIA_WRITE,
    response=MediaOut,
    status=201,
    raw_body=[
        "application/octet-stream",
        "audio/*",
        "image/*",
        "video/*",
        "application/pdf",
        "text/plain",
        probe.DOCX_MIME,
        probe.ODT_MIME,
    ],
    errors=[413, 415, 422],
)
async def upload_media(ctx: Ctx) -> MediaOut:
    config = ctx.config
    limit = config.media_max_bytes
    request = ctx.request
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"media is limited to {limit} bytes")
    media_dir = config.media_dir
    tmp_dir = media_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
    digest = hashlib.sha256()
    text = _TextCheck()
    head = b""
    size = 0
    fh = await asyncio.to_thread(open, tmp, "wb")
    moved = False
    try:
        pending: list[bytes] = []
        pending_len = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "too_large", f"media is limited to {limit} bytes")
            digest.update(chunk)
            text.feed(chunk)
            if len(head) < _SNIFF_BYTES:
                head += chunk[: _SNIFF_BYTES - len(head)]
            pending.append(chunk)
            pending_len += len(chunk)
            if pending_len >= _WRITE_CHUNK:
                await asyncio.to_thread(fh.write, b"".join(pending))
                pending, pending_len = [], 0
        if pending:
            await asyncio.to_thread(fh.write, b"".join(pending))
        text.feed(b"", final=True)
        if size == 0:
            raise ApiError(422, "empty", "the body is empty")
        mime = sniff_mime(head, utf8_text=text.ok)
        if mime == probe.ZIP_MIME:
            await asyncio.to_thread(fh.flush)
            mime = await asyncio.to_thread(probe.office_mime, tmp)
        if mime is None:
            raise ApiError(
                415,
                "unsupported_media_type",
                "not a recognised audio, image, video, PDF, Word, OpenDocument or UTF-8 text file",
            )
        await asyncio.to_thread(fh.flush)
        try:
            async with ctx.app[PROBES]:
                found = await asyncio.to_thread(probe.inspect, tmp, mime)
        except probe.Unfit as exc:
            raise ApiError(422, exc.code, exc.detail()) from None
        sha = digest.hexdigest()
        final = media_path(media_dir, sha)
        if final.exists():
            await asyncio.to_thread(fh.close)
        else:
            await asyncio.to_thread(_finish_file, fh, tmp, final)
            moved = True
        stored = _record(sha, size, mime, found, None)
        original: media.Media | None = None
        if found.extracted_text is not None:
            # Devices have no office suite: what airs is the text, kept as a text file;
            # the original stays stored (and audited) as the agency sent it.
            text_sha, text_size = await asyncio.to_thread(
                _store_text, media_dir, found.extracted_text
            )
            original = stored
            stored = _record(text_sha, text_size, "text/plain", found, sha)
        async with ctx.db.transaction() as tx:
            if original is not None:
                await media.add(tx, original, unit=ctx.user.unit, at=ctx.now)
                await ctx.audit(
                    tx, "media.upload", sha, after={"sha256": sha, "size": size, "mime": mime}
                )
            await media.add(tx, stored, unit=ctx.user.unit, at=ctx.now)
            await ctx.audit(
                tx,
                "media.upload",
                stored.sha256,
                after={
                    "sha256": stored.sha256,
                    "size": stored.size,
                    "mime": stored.mime,
                    **({"source_sha256": sha} if stored.source_sha256 else {}),
                },
            )
        # The other nodes copy it now: it outlives this node.
        for kept in (original, stored):
            if kept is not None:
                await ctx.connections.bus.publish(
                    "object_stored", {"store": "media", "sha256": kept.sha256}
                )
        return MediaOut.of(stored)
    finally:
        if not fh.closed:
            await asyncio.to_thread(fh.close)
        if not moved:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


@routes.get(
    "/api/v1/media",
    summary="List stored media: everything for province-wide accounts, else the unit's uploads",
    response=list[MediaOut],
)
async def list_media(ctx: Ctx) -> list[MediaOut]:
    return [MediaOut.of(m) for m in await media.uploads(ctx.db, ctx.user)]


@routes.get(
    "/api/v1/media/{sha256}",
    summary="Download a stored file the caller may see (its unit's uploads, or the media of a"
    " bulletin it may see); supports Range",
    errors=[404],
    response_content={
        "200": {
            "description": "The file",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        "206": {"description": "Partial content (Range)"},
    },
)
async def get_media(ctx: Ctx) -> web.StreamResponse:
    sha = ctx.path("sha256")
    # The same 404 for "missing" and "not yours": nobody learns what other units uploaded.
    missing = ApiError(404, "not_found", "no such media")
    if not _SHA256.match(sha):
        raise missing
    mime = await media.readable_mime(ctx.db, sha, ctx.user)
    if mime is None:
        raise missing
    return await object_response(ctx, "media", sha, mime)


@dataclass(frozen=True)
class Kept:
    sha256: str
    size: int
    #: None: not kept (not a type the hub takes, or `problem`).
    mime: str | None
    #: What to record (`hub.store.media.add`), with what decoding found.
    record: media.Media | None = None
    #: Why the bytes were not kept, when decoding refused them (English).
    problem: str | None = None


def keep_bytes(media_dir: Path, data: bytes) -> Kept:
    """Store bytes fetched by the hub itself (a CAP alert's audio, an upper hub's media) as
    uploads are stored: sniffed, decoded whole (hub/probe.py: a damaged or truncated file is
    not kept), named by sha256, written to a temporary name, synced, then renamed. Blocking:
    run it off the event loop."""
    text = _TextCheck()
    text.feed(data, final=True)
    mime = sniff_mime(data[:_SNIFF_BYTES], utf8_text=text.ok)
    sha = hashlib.sha256(data).hexdigest()
    if mime is None or mime == probe.ZIP_MIME:
        return Kept(sha256=sha, size=len(data), mime=None)
    tmp_dir = media_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
    try:
        fh = open(tmp, "wb")
        fh.write(data)
        fh.flush()
        try:
            found = probe.inspect(tmp, mime)
        except probe.Unfit as exc:
            fh.close()
            return Kept(sha256=sha, size=len(data), mime=None, problem=exc.en)
        final = media_path(media_dir, sha)
        if final.exists():
            fh.close()
        else:
            _finish_file(fh, tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    record = _record(sha, len(data), mime, found, None)
    return Kept(sha256=sha, size=len(data), mime=mime, record=record)


class MediaDeleted(BaseModel):
    sha256: str
    #: The bytes are gone from the hub; False when another unit that uploaded the same
    #: file still holds it (only this unit's hold on it ended).
    removed: bool


@routes.delete(
    "/api/v1/media/{sha256}",
    summary="Delete an uploaded file no bulletin uses (a unit ends its own hold on it; the"
    " bytes go when no unit holds them, or at once for a province-wide account)",
    permission=Permission.MEDIA_WRITE,
    response=MediaDeleted,
    errors=[403, 404, 409],
)
async def delete_media(ctx: Ctx) -> MediaDeleted:
    sha = ctx.path("sha256")
    user = ctx.user
    # The same 404 for "missing" and "not yours", as for a download.
    missing = ApiError(404, "not_found", "no such media")
    if not _SHA256.match(sha):
        raise missing
    async with ctx.db.transaction() as tx:
        units = await media.uploaders(tx, sha)
        if await media.mime_of(tx, sha) is None or not (user.province_wide or user.unit in units):
            raise missing
        used = (await media.uses(tx, [sha])).get(sha, 0)
        if used:
            raise ApiError(
                409,
                "media_in_use",
                f"{used} bulletin(s) use this file; a published bulletin keeps its media for"
                " its history (delete the drafts that use it first)",
            )
        removed = user.province_wide or units == [user.unit]
        if removed:
            await media.remove(tx, sha)
        else:
            await media.forget_upload(tx, sha, user.unit)
        await ctx.audit(tx, "media.delete", sha, f"removed={int(removed)}", before={"units": units})
    if removed:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(media_path(ctx.config.media_dir, sha).unlink)
    return MediaDeleted(sha256=sha, removed=removed)
