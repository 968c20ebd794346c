"""Previews before approval (issue #12): what a bulletin will become on each kind of device,
made on the hub by the devices' own code, and how long it will air.

- Speakers: a text or document bulletin's words spoken by the engine a speaker builds
  (`edge_agent.backends.build_speech`: espeak-ng, Vietnamese), so a reviewer hears the very
  voice, speed and the emoji left out; an audio bulletin's length as decoded at upload.
- Boards: for each board profile in firmware_profiles/ that airs the kind, the frames its
  screen will show, at its real resolution: a document's pages and a picture made by
  edge_agent/renditions.py, the item built by `edge_agent.airing.rendition_item` and laid
  out by the board's own player (`DisplayPlayer.for_profile`, pygame, no window); the
  airing length is that layout's, the one the agent airs (`Layout.seconds`, which for text
  is `edge_agent.airing.text_airing_seconds`'s answer). A video's length is its decoded one.

A preview is made once per content: its key hashes everything that changes it (the kind,
title, priority, words, media, display time, the profiles, the renderers' and the speech
engine's versions), its files go to a folder named by that key, written under a temporary
name and renamed whole, and an index written last. All of it runs off the event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
import wave
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from edge_agent.airing import rendition_item
from edge_agent.backends import build_speech
from edge_agent.players.base import PlayItem, slide_times
from edge_agent.profile import PROFILES_DIR, HardwareProfile, load_profile
from edge_agent.renditions import RENDER_VERSION, RenditionError, make_document, make_image
from loa_contract import BulletinKind, DeviceKind, ManifestBulletin

#: Part of every key: a change in how previews are made makes new ones.
PREVIEW_VERSION = 1
#: The most frames a board's preview shows (a document's pages beyond are left out).
MAX_FRAMES = 12
#: Previews not asked for in this long are removed when a new one is made (a bulletin's
#: review takes days, not months; asked again, it is made again).
KEEP_S = 30 * 86400
#: A preview's file names, as the routes accept them.
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}$")


@dataclass(frozen=True)
class BoardPreview:
    profile: str
    width: int
    height: int
    #: How long one airing lasts on this board.
    seconds: float
    #: PNG files of the frames, in the order shown, with the moment of the airing each is.
    frames: list[str] = field(default_factory=list)
    at_s: list[float] = field(default_factory=list)
    #: Why the board cannot show it (the devices' own words), when it cannot.
    problem: str | None = None


@dataclass(frozen=True)
class Preview:
    key: str
    #: The speech a speaker airs (a WAV in the preview's folder), and its length.
    speech: str | None = None
    #: How long one airing lasts on a speaker (speech or decoded audio); None: not aired.
    speaker_seconds: float | None = None
    speaker_problem: str | None = None
    boards: list[BoardPreview] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> Preview:
        data = json.loads(raw)
        boards = [BoardPreview(**b) for b in data.pop("boards")]
        return cls(boards=boards, **data)


def profiles(directory: Path = PROFILES_DIR) -> list[HardwareProfile]:
    """The hardware profiles shipped with Loa, by name."""
    return [load_profile(str(p)) for p in sorted(directory.glob("*.toml"))]


def preview_key(
    bulletin: ManifestBulletin,
    duration_s: float | None,
    shipped: list[HardwareProfile],
    engine_id: str,
) -> str:
    digest = hashlib.sha256()
    parts: dict[str, Any] = {
        "v": PREVIEW_VERSION,
        "render": RENDER_VERSION,
        "engine": engine_id,
        "kind": bulletin.kind.value,
        "priority": bulletin.priority.value,
        "title": bulletin.title,
        "text": bulletin.text,
        "media": bulletin.media.sha256 if bulletin.media else None,
        "duration": duration_s,
        "display_seconds": bulletin.display_seconds,
        "profiles": [p.model_dump(mode="json") for p in shipped],
    }
    digest.update(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def _common(bulletin: ManifestBulletin) -> dict[str, Any]:
    return {
        "bulletin_id": bulletin.id,
        "priority": bulletin.priority,
        "title": bulletin.title,
        "display_seconds": bulletin.display_seconds,
    }


def words_of(bulletin: ManifestBulletin, source: Path | None, work: Path) -> str:
    """The words a text or document bulletin airs as: a document's file read as the devices
    read it (its typed text when the file has none), else the text."""
    typed = (bulletin.text or "").strip()
    if bulletin.kind is BulletinKind.DOCUMENT and source is not None:
        try:
            found = make_document(source, "words", work, None).text or ""
        except RenditionError:
            found = ""
        return found if found.strip() else typed
    return typed


def board_preview(
    bulletin: ManifestBulletin,
    profile: HardwareProfile,
    source: Path | None,
    words: str,
    duration_s: float | None,
    out: Path,
) -> BoardPreview:
    """What the board of `profile` shows, laid out by its own player; blocking."""
    import pygame

    from edge_agent.players.display import DisplayPlayer

    display = profile.display
    assert display is not None
    width, height = display.screen_size
    name = profile.name
    if bulletin.kind is BulletinKind.VIDEO:
        # Played by VLC as it is: its length is what was decoded at upload.
        return BoardPreview(name, width, height, duration_s or 0.0)
    common = _common(bulletin)
    item: PlayItem | None = None
    try:
        if bulletin.kind is BulletinKind.IMAGE and source is not None:
            made = make_image(source, f"{name}-image", out, display.screen_size)
            item = rendition_item(made, out, display, common)
        elif bulletin.kind is BulletinKind.DOCUMENT and source is not None and display.shows_pages:
            made = make_document(source, f"{name}-doc", out, display.screen_size)
            if made.pages and (words.strip() or not made.text):
                item = rendition_item(made, out, display, common)
    except RenditionError as exc:
        return BoardPreview(name, width, height, 0.0, problem=str(exc))
    if item is None:
        if not words.strip():
            return BoardPreview(name, width, height, 0.0, problem="no words to show")
        item = PlayItem(kind=BulletinKind.TEXT, text=words, **common)
    screen = DisplayPlayer.for_profile(display, window=False)
    layout = screen.layout(item)
    moments = _moments(item, layout.seconds, layout.ticker is not None)
    frames = []
    for number, t in enumerate(moments, start=1):
        file = f"{name}-{number}.png"
        pygame.image.save(layout.frame_at(t), str(out / file))
        frames.append(file)
    return BoardPreview(name, width, height, round(layout.seconds, 1), frames, moments)


def _moments(item: PlayItem, seconds: float, moving: bool) -> list[float]:
    """When in the airing to take the frames: each page's start, a moving text's start,
    middle and end, else the start."""
    if item.kind is BulletinKind.DOCUMENT and item.slides:
        starts, at = [], 0.0
        for t in slide_times(item)[:MAX_FRAMES]:
            starts.append(round(at, 2))
            at += t
        return starts
    if moving:
        return [0.0, round(seconds / 2, 2), round(max(0.0, seconds - 0.05), 2)]
    return [0.0]


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


async def make_preview(
    bulletin: ManifestBulletin,
    source: Path | None,
    duration_s: float | None,
    folder: Path,
    now: datetime,
) -> Preview:
    """The bulletin's preview, from the cache in `folder` or made now (off the loop); `now`
    (the hub's clock) marks it as asked for."""
    import asyncio

    shipped = await asyncio.to_thread(profiles)
    speaker = next((p for p in shipped if p.device_kind is DeviceKind.SPEAKER), None)
    engine = build_speech(speaker) if speaker is not None else None
    key = preview_key(bulletin, duration_s, shipped, engine.engine_id if engine else "")
    done = folder / key
    index = done / "index.json"
    if await asyncio.to_thread(index.exists):
        with contextlib.suppress(OSError):
            stamp = now.timestamp()  # asked for: kept by `prune`
            await asyncio.to_thread(os.utime, index, (stamp, stamp))
        return Preview.from_json(await asyncio.to_thread(index.read_text, "utf-8"))
    work = folder / f".{key}.{uuid.uuid4().hex}"
    await asyncio.to_thread(work.mkdir, parents=True)
    try:
        words = ""
        if bulletin.kind in (BulletinKind.TEXT, BulletinKind.DOCUMENT):
            words = await asyncio.to_thread(words_of, bulletin, source, work)
        speech = speaker_seconds = speaker_problem = None
        if bulletin.kind is BulletinKind.AUDIO:
            speaker_seconds = duration_s
        elif words.strip() and engine is not None:
            try:
                # espeak-ng keeps the output's path in a 200-byte buffer: a short one first.
                with tempfile.TemporaryDirectory(prefix="loa-speech-") as short:
                    await engine.synthesize(words, Path(short) / "speech.wav")
                    await asyncio.to_thread(
                        shutil.move, Path(short) / "speech.wav", work / "speech.wav"
                    )
                speech = "speech.wav"
                speaker_seconds = round(await asyncio.to_thread(wav_seconds, work / speech), 1)
            except Exception as exc:  # the engine's own error says why (missing, failed)
                speaker_problem = str(exc)
        elif bulletin.kind in (BulletinKind.TEXT, BulletinKind.DOCUMENT):
            speaker_problem = "no words to read"
        boards = []
        for profile in shipped:
            if profile.device_kind is DeviceKind.BOARD and bulletin.kind in profile.kinds:
                boards.append(
                    await asyncio.to_thread(
                        board_preview, bulletin, profile, source, words, duration_s, work
                    )
                )
        preview = Preview(key, speech, speaker_seconds, speaker_problem, boards)
        await asyncio.to_thread(_finish, work, done, preview, now.timestamp())
        await asyncio.to_thread(prune, folder, now.timestamp() - KEEP_S)
        return preview
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)


def _finish(work: Path, done: Path, preview: Preview, stamp: float) -> None:
    keep = {f for b in preview.boards for f in b.frames} | ({preview.speech} - {None})
    for path in work.iterdir():
        if path.name not in keep:
            path.unlink()
    (work / "index.json").write_text(preview.to_json(), "utf-8")
    os.utime(work / "index.json", (stamp, stamp))  # made, by the hub's clock
    with contextlib.suppress(OSError):  # another request made the same preview first
        os.replace(work, done)


def prune(folder: Path, before: float) -> int:
    """Remove the previews last asked for before `before` (seconds since the epoch)."""
    removed = 0
    for path in folder.iterdir():
        index = path / "index.json"
        with contextlib.suppress(FileNotFoundError):
            if not path.name.startswith(".") and index.stat().st_mtime < before:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
    return removed
