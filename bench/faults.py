"""Faults: kill -9, a full disk, a cut link and clock steps, against real processes.

A real hub (`hub serve`, SQLite in a temp folder) and real agents (`python -m edge_agent.cli
run`, libVLC with its dummy audio output for the speakers, null players for the boards), all on
127.0.0.1; each agent reaches the hub only through its own TCP proxy (`Link`), which can slow,
cut or black-hole the line. In order:

1. agent kills: N times SIGKILL of a speaker at a random moment of one phase, the phases taken
   in turn: during a manifest fetch (a new bulletin just published: killed at a random moment
   of the fetch's jitter), a media download (a 2 MB object over a 1 MB/s line, killed while the
   agent reports it in progress), speech synthesis (a new text, killed while espeak-ng runs),
   mid-airing, at the start of an item (as its "playing" line is written) and at its end
   (within a fraction of a second of its known length). It is restarted at once; it must be
   connected, on the hub's manifest version and hold every object and spoken text it needs
   within the recovery timeout.
2. hub kills: N times SIGKILL of the hub while agents post their plays (two boards airing a
   one-second text each second, and the speaker), every other kill right after a restart,
   when the agents replay what piled up while it was down; restarted on the same data and
   port each time. Every agent's outbox must drain within the recovery timeout.
3. link cut: a 6 MB object over a 2 MB/s line is cut (every connection closed) at about a
   third, then black-holed (bytes held, connections open) at about two thirds for longer
   than the agent's read timeout, then restored; the download must complete, verified, and
   the line must have carried at most 1.05 x the object's bytes (DESIGN.md §5).
4. clock steps: the speaker's system clock is stepped +1 day, back, -1 day and back, with a
   kill -9 and restart while it is a day off. No libfaketime here, so the honest seam is
   the one the agent has: `edge_agent.cli.main(system_clock=...)`, the only wall clock its
   `ClockJudge` reads. This bench starts that agent through itself (`faults.py agent FILE
   ...`), with a system clock that is the machine's plus the offset written in FILE. After
   each step, an airing that started after it must be credited by the hub (not refused)
   within the recovery timeout.
5. full disk: a speaker whose data folder is a 24 MiB tmpfs (mounted directly as root, else
   with `unshare -rm` in a user namespace for the agent alone) is sent a 32 MiB object; while
   the disk is full a new text is published; then the tmpfs grows to 96 MiB ("space
   returns"). The agent must fetch both and air again within the recovery timeout.

Then every agent runs once more, the commune's broadcast windows are closed (the day's
programme ends: whatever plays is stopped and reported), every outbox must drain, the agents
are stopped, and from the hub's database, the agents' databases, logs and caches:

- corrupt files: a cached object whose sha256 is not its name; a file in an agent's data
  folder left half-written: a temporary file (`*.tmp`, `*.tmp.wav`) anywhere, a `.part`
  outside `cache/partial/` (inside it they are resumable downloads), or a spoken-text file
  in `cache/derived/` whose WAV header disagrees with its length; a file in the hub's media
  store whose sha256 is not its name.
- lost plays: a play of an agent's `plays` table (open or closed) that is not among the
  hub's credited plays (`plays`, by device, report stream and seq): still in the agent's
  outbox, refused by the hub (its reason is printed), or missing; and, for each bulletin,
  the starts the agent's log shows ("playing <id>" lines, written only after the play row is
  committed) beyond the hub's credited plays of it from that device.
- double-counted plays: two credited plays on the hub of one device, bulletin and start time,
  or of one device, stream and seq across the credited and the refused tables.
- unverified plays: a play (credited or refused on the hub, or in an agent's table) of a
  bulletin this bench never sent to that device, or starting before the bench published it;
  and an airing during which the file the speaker's player had open did not hash to what the
  bulletin's signed manifest entry says (the bench hashes the object, or checks the spoken
  file, as each "playing" line appears).

Each must be 0. The bench exits non-zero if any is not, or if any step did not recover within
its timeout (it says which). `--quick` runs 10 agent kills and 3 hub kills.

    .venv/bin/python bench/faults.py [--agent-kills 100] [--hub-kills 20] [--seed 1] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
import wave
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import ADMIN, ENV, PASSWORD, HubServer, free_port  # noqa: E402

T = TypeVar("T")
#: Any step not back to normal within this is a failure of the bench.
RECOVERY_S = 60.0
#: A speaker whose disk filled must go on airing its cached programme within this.
FULL_DISK_AIRING_S = 30.0
#: Speakers' lines: fast enough for a bench, slow enough that a kill lands mid-download.
SPEAKER_RATE = 1_000_000
LINK_RATE = 2_000_000
MIB = 1024 * 1024
CLOCK_SLACK = timedelta(minutes=5)
_PLAYING = re.compile(r" edge_agent: playing (\S+) ")
_SHA = re.compile(r"^[0-9a-f]{64}$")
_REPORTS = b"POST /api/v1/device/reports "
KILL_PHASES = ("manifest fetch", "download", "speech", "mid-airing", "item start", "item end")
#: What fills the full-disk speaker's tmpfs to its last byte.
BALLAST = "ballast.bin"


class StepFailed(Exception):
    """A fault the system did not recover from within its timeout."""


async def until(what: str, check: Callable[[], Awaitable[T | None]], timeout: float) -> T:
    """Poll `check` until it returns something true; StepFailed after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise StepFailed(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(0.05)


# ----------------------------------------------------------------------------- the line


class Link:
    """A TCP proxy between one agent and the hub, the agent's only way to it: it can pace the
    hub's bytes to `rate` bytes/s, `cut` every connection (and refuse new ones) or
    `blackhole` them (accept, hold every byte, answer nothing) until `restore`."""

    def __init__(self, hub_port: int, rate: float | None = None) -> None:
        self.hub_port = hub_port
        self.rate = rate
        self.bytes_down = 0
        self.mode = "open"
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        #: Called when a proof-of-play batch passes towards the hub.
        self.on_report: Callable[[], None] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()

    def cut(self) -> None:
        self.mode = "cut"
        self._flowing.set()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def blackhole(self) -> None:
        self.mode = "blackhole"
        self._flowing.clear()

    def restore(self) -> None:
        self.mode = "open"
        self._flowing.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "cut":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.hub_port)
        except OSError:
            writer.transport.abort()  # the hub is down: the agent sees a refused connection
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(
                self._pump(reader, up_writer, paced=False),
                self._pump(up_reader, writer, paced=True),
            )
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, paced: bool
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(16 * 1024):
                await self._flowing.wait()
                if writer.transport.is_closing():
                    return
                writer.write(data)
                await writer.drain()
                if not paced and self.on_report is not None and _REPORTS in data:
                    self.on_report()
                if paced:
                    self.bytes_down += len(data)
                    if self.rate:
                        await asyncio.sleep(len(data) / self.rate)
        # One side closed: close the other's write side so the peer sees the end too.
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()


# ----------------------------------------------------------------------------- the hub's API


@dataclass
class Sent:
    """A bulletin this bench published: what a device may air and where its bytes come from."""

    id: str
    kind: str
    devices: frozenset[str]
    published_at: datetime
    media: str | None = None
    text: str | None = None
    seconds: float | None = None


class Api:
    def __init__(self, hub: HubServer) -> None:
        self.hub = hub
        self.session = aiohttp.ClientSession()
        self.token = ""
        self.sent: dict[str, Sent] = {}

    async def close(self) -> None:
        await self.session.close()

    async def login(self) -> None:
        body = await self.call(
            "POST", "/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD}
        )
        self.token = body["token"]

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        async with self.session.request(
            method, self.hub.url + path, headers=headers, **kw
        ) as response:
            body = await response.json(content_type=None)
            if response.status >= 400:
                raise StepFailed(f"hub refused {method} {path}: {response.status} {body}")
            return body

    async def upload_wav(self, payload: bytes) -> str:
        body = await self.call(
            "POST", "/api/v1/media", data=payload, headers={"Content-Type": "audio/wav"}
        )
        return str(body["sha256"])

    async def publish(
        self,
        devices: list[Agent],
        title: str,
        *,
        kind: str,
        media: str | None = None,
        text: str | None = None,
        seconds: float | None = None,
        repeats: int = 1,
        display_seconds: float | None = None,
    ) -> Sent:
        from tests.e2e import schedule

        now = datetime.now(UTC)
        bulletin: dict[str, Any] = {
            "title": title,
            "kind": kind,
            "priority": "normal",
            "targets": {"communes": [], "devices": [a.device_id for a in devices]},
            "schedule": schedule(now, repeats=repeats),
        }
        if media is not None:
            bulletin["media"] = media
        if text is not None:
            bulletin["text"] = text
        if display_seconds is not None:
            bulletin["display_seconds"] = display_seconds
        created = await self.call("POST", "/api/v1/bulletins", json=bulletin)
        await self.call("POST", f"/api/v1/bulletins/{created['id']}/publish")
        sent = Sent(
            created["id"],
            kind,
            frozenset(a.device_id for a in devices),
            now,
            media=media,
            text=text,
            seconds=seconds,
        )
        self.sent[sent.id] = sent
        return sent

    async def manifest_version(self, device_id: str) -> int:
        return int((await self.call("GET", f"/api/v1/devices/{device_id}"))["manifest_version"])


def noise_wav(rng: random.Random, seconds: float, rate: int = 48_000) -> bytes:
    """A stereo WAV of noise: many bytes a second, made at once, unique to its seed."""
    import io

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(rng.randbytes(int(seconds * rate) * 4))
    return out.getvalue()


def wav_seconds(payload: bytes) -> float:
    import io

    with wave.open(io.BytesIO(payload)) as w:
        return w.getnframes() / w.getframerate()


# ----------------------------------------------------------------------------- an agent


@dataclass
class Airing:
    """One "playing" line as the bench saw it, and what the player had open then."""

    bulletin_id: str
    #: When the bench read the line (monotonic seconds).
    seen_at: float = field(default_factory=time.monotonic)
    #: "ok", "mismatch", "error" (the check itself failed), or None: not seen open.
    file: str | None = None
    detail: str = ""


@dataclass
class Agent:
    name: str
    data: Path
    profile: str
    link: Link
    log: Path
    clock_file: Path | None = None
    device_id: str = ""
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    airings: list[Airing] = field(default_factory=list)
    #: Wraps the command line (an `unshare` for the tmpfs disk when not root).
    wrap: list[str] = field(default_factory=list)
    _log_offset: int = 0
    _checks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def speaker(self) -> bool:
        return self.profile.startswith("speaker")

    def command(self) -> list[str]:
        if self.clock_file is not None:
            head = [sys.executable, str(Path(__file__).resolve()), "agent", str(self.clock_file)]
        else:
            head = [sys.executable, "-m", "edge_agent.cli"]
        run = [
            *head, "--lang", "en", "run", "--data", str(self.data), "--http-host", "127.0.0.1",
            "--http-port", str(self.http_port), "--health-interval", "5",
        ]  # fmt: skip
        if self.speaker:
            run += ["--vlc-arg=--aout=dummy"]
        else:
            run += ["--player", "null", "--display", "null"]
        return [*self.wrap, *run]

    def start(self) -> None:
        env = {**ENV, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.command(), env=env, stdout=out, stderr=out, start_new_session=True
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        # What SIGKILL leaves of VLC or espeak-ng children would hold files open.
        self._reap()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reap()

    def _reap(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def status(self, session: aiohttp.ClientSession) -> dict[str, Any] | None:
        if not self.alive():
            return None
        try:
            async with session.get(
                f"http://127.0.0.1:{self.http_port}/api/status",
                timeout=aiohttp.ClientTimeout(total=5),
            ) as response:
                return dict(await response.json()) if response.status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    def children(self) -> list[str]:
        if not self.alive():
            return []
        assert self.process is not None
        try:
            return [c.name() for c in psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.Error:
            return []

    def new_log_lines(self) -> list[str]:
        if not self.log.exists():
            return []  # never started yet
        with self.log.open("rb") as fh:
            fh.seek(self._log_offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1
        self._log_offset += end
        return chunk[:end].decode("utf-8", "replace").splitlines()

    def watch(self, sent: dict[str, Sent]) -> int:
        """Read new log lines; for each airing, check (in the background) the file the
        player has open. Returns how many airings started."""
        started = 0
        for line in self.new_log_lines():
            match = _PLAYING.search(line)
            if match is None:
                continue
            airing = Airing(match.group(1))
            self.airings.append(airing)
            started += 1
            if self.speaker and self.alive():
                task = asyncio.create_task(self._check_open_file(airing, sent))
                self._checks.add(task)
                task.add_done_callback(self._checks.discard)
        return started

    async def _check_open_file(self, airing: Airing, sent: dict[str, Sent]) -> None:
        """The file libVLC opened for this airing must be the one the manifest signed."""
        try:
            await self._find_open_file(airing, sent)
        except Exception as exc:
            airing.file, airing.detail = "error", repr(exc)

    async def _find_open_file(self, airing: Airing, sent: dict[str, Sent]) -> None:
        """Judge the file the player opened for this airing, once it is seen open. The bench
        reads the log a little late: the file of the airing before (libVLC releases it after
        the next starts) or after (a short item already over) may be the one open. Only a
        file of neither neighbour, open while this airing's own never was, is a mismatch."""
        assert self.process is not None
        bulletin = sent.get(airing.bulletin_id)
        cache = (self.data / "cache").resolve()
        deadline = time.monotonic() + 1.5
        others: set[Path] = set()
        while time.monotonic() < deadline:
            try:
                files = psutil.Process(self.process.pid).open_files()
            except psutil.Error:
                return
            opened = [Path(f.path) for f in files if Path(f.path).is_relative_to(cache)]
            opened = [p for p in opened if p.parent.name in ("objects", "derived")]
            own = [p for p in opened if bulletin is not None and file_of(p, bulletin)]
            if own or (opened and bulletin is None):
                airing.file, airing.detail = await asyncio.to_thread(
                    judge_open_file, (own or opened)[0], bulletin
                )
                return
            others.update(opened)
            await asyncio.sleep(0.02)
        neighbours = self._neighbours(airing, sent)
        strangers = [p for p in others if not any(file_of(p, n) for n in neighbours)]
        if strangers:
            airing.file = "mismatch"
            airing.detail = (
                f"{strangers[0].name} open while airing {airing.bulletin_id}, whose own file"
                " never was"
            )

    def _neighbours(self, airing: Airing, sent: dict[str, Sent]) -> list[Sent]:
        at = self.airings.index(airing)
        ids = [a.bulletin_id for a in self.airings[max(0, at - 1) : at + 2] if a is not airing]
        return [sent[i] for i in ids if i in sent]


@functools.cache
def _speech_engine_id() -> str:
    from edge_agent.speech import EspeakEngine

    return EspeakEngine().engine_id


def file_of(path: Path, bulletin: Sent) -> bool:
    """Whether `path` is the bulletin's object or the speech made of its text (by name)."""
    from edge_agent.speech import speech_key

    if path.parent.name == "objects":
        return bulletin.media == path.name
    return bulletin.text is not None and path.name.startswith(
        speech_key(_speech_engine_id(), bulletin.text)
    )


def judge_open_file(path: Path, bulletin: Sent | None) -> tuple[str, str]:
    """("ok" | "mismatch", why) for the file a player had open while airing `bulletin`."""
    from edge_agent.speech import EspeakEngine, speech_key

    if bulletin is None:
        return "mismatch", f"{path.name}: the bench never sent this bulletin"
    try:
        payload = path.read_bytes()
    except OSError as exc:
        return "ok", f"{path.name} gone before it could be read ({exc})"  # nothing to judge
    if path.parent.name == "objects":
        digest = hashlib.sha256(payload).hexdigest()
        if bulletin.media != path.name or digest != path.name:
            return "mismatch", f"{path.name}: sha256 {digest}, bulletin's {bulletin.media}"
        return "ok", ""
    expected = speech_key(EspeakEngine().engine_id, bulletin.text or "")
    if not path.name.startswith(expected) or not wav_complete(payload):
        return "mismatch", f"{path.name}: not the whole spoken text of {bulletin.id}"
    return "ok", ""


def wav_complete(payload: bytes) -> bool:
    """A RIFF file whose header's length is the file's length (a cut write is shorter)."""
    if len(payload) < 12 or payload[:4] != b"RIFF" or payload[8:12] != b"WAVE":
        return False
    return struct.unpack("<I", payload[4:8])[0] + 8 == len(payload)


# ----------------------------------------------------------------------------- the bench


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(line, flush=True)

    def fail(self, what: str) -> None:
        self.failures.append(what)
        self.say(f"  FAILED: {what}")


class Bench:
    def __init__(self, tmp: Path, seed: int, *, blackhole_s: float) -> None:
        self.tmp = tmp
        self.rng = random.Random(seed)
        self.hub = HubServer(tmp / "hub", log=tmp / "hub.log")
        self.api = Api(self.hub)
        self.http = aiohttp.ClientSession()
        self.report = Report()
        self.agents: list[Agent] = []
        self.blackhole_s = blackhole_s
        self.commune = "xa-thu-loi"
        self._watching: asyncio.Task[None] | None = None
        self.disk: TmpfsDisk | None = None
        self._edge: Agent | None = None

    # -------------------------------------------------------------- set-up

    async def setup(self) -> None:
        from tests.e2e import window_around

        self.hub.add_admin()
        await self.hub.start()
        await self.api.login()
        around = window_around(datetime.now(UTC), after=timedelta(hours=3))
        await self.api.call(
            "POST",
            "/api/v1/communes",
            json={
                "code": self.commune,
                "name": "Xã Thử Lỗi",
                "windows": {"speaker": [around], "board": [around]},
            },
        )
        self._watching = asyncio.create_task(self._watch())
        self.speaker = await self.new_speaker("speaker", rate=SPEAKER_RATE)

    async def new_speaker(
        self,
        name: str,
        *,
        rate: float | None,
        clock_file: Path | None = None,
        data: Path | None = None,
        wrap: list[str] | None = None,
    ) -> Agent:
        """An enrolled speaker with a programme of its own: three short tones and a spoken
        text, twenty airings each in the window."""
        agent = await self.enroll(
            name, "speaker-cluster", rate=rate, clock_file=clock_file, data=data
        )
        agent.wrap = wrap or []
        for n, freq in enumerate((440.0, 550.0, 660.0)):
            await self.short_tone([agent], f"Bản tin {n + 1}", freq)
        await self.api.publish(
            [agent], "Thông báo của xã", kind="text", text=spoken_text(0), repeats=20
        )
        return agent

    async def new_boards(self) -> list[Agent]:
        """Two boards airing three one-second texts in turn: a play each second each."""
        boards = [await self.enroll(f"board-{n}", "lcd-board-1080p", rate=None) for n in (1, 2)]
        for n in range(3):
            await self.api.publish(
                boards,
                f"Dòng chữ {n + 1}",
                kind="text",
                text=f"Bảng tin số {n + 1}: lịch tiêm phòng tuần này.",
                repeats=20,
                display_seconds=1.0,
            )
        return boards

    async def edge_speaker(self) -> Agent:
        """The speaker behind a slower line whose system clock the bench can step."""
        if self._edge is None:
            clock_file = self.tmp / "clock-offset"
            clock_file.write_text("0")
            self._edge = await self.new_speaker("edge", rate=LINK_RATE, clock_file=clock_file)
        return self._edge

    async def short_tone(self, devices: list[Agent], title: str, freq: float) -> Sent:
        from tests.e2e import tone_bytes

        payload = tone_bytes(self.tmp, f"tone-{freq:.0f}", 1.5, freq)
        sha = await self.api.upload_wav(payload)
        return await self.api.publish(
            devices, title, kind="audio", media=sha, seconds=wav_seconds(payload), repeats=20
        )

    async def noise(self, devices: list[Agent], title: str, size: int) -> Sent:
        payload = noise_wav(self.rng, size / 192_000)
        sha = await self.api.upload_wav(payload)
        return await self.api.publish(
            devices, title, kind="audio", media=sha, seconds=wav_seconds(payload)
        )

    async def enroll(
        self,
        name: str,
        profile: str,
        *,
        rate: float | None,
        clock_file: Path | None = None,
        data: Path | None = None,
    ) -> Agent:
        kind = "speaker" if profile.startswith("speaker") else "board"
        device = await self.api.call(
            "POST",
            "/api/v1/devices",
            json={"commune": self.commune, "name": name, "kind": kind, "profile": profile},
        )
        link = Link(self.hub.port, rate)
        await link.start()
        agent = Agent(
            name, data or self.tmp / name, profile, link, self.tmp / f"{name}.log", clock_file
        )
        # Not subprocess.run: the link it enrolls through runs on this event loop.
        enrolling = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "edge_agent.cli", "--lang", "en", "enroll", "--hub", link.url,
            "--code", device["enrollment_code"], "--data", str(agent.data),
            env=ENV, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        if await enrolling.wait() != 0:
            raise StepFailed(f"edge-agent enroll of {name} failed")
        agent.device_id = device["id"]
        self.agents.append(agent)
        return agent

    async def _watch(self) -> None:
        try:
            while True:
                for agent in self.agents:
                    agent.watch(self.api.sent)
                await asyncio.sleep(0.01)
        except Exception as exc:
            # The audit counts airings from here: a watcher that stops must not go unseen.
            self.report.fail(f"the bench's log watcher died: {exc!r}")
            raise

    async def close(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
        for agent in self.agents:
            agent.stop()
            await agent.link.close()
        self.hub.stop()
        await self.api.close()
        await self.http.close()
        if self.disk is not None:
            self.disk.unmount()

    # -------------------------------------------------------------- conditions

    async def in_sync(self, agent: Agent) -> dict[str, Any] | None:
        """The agent's status once it is connected, on the hub's manifest version and holds
        everything that manifest asks of it (objects and spoken texts); else None."""
        status = await agent.status(self.http)
        if status is None or not status["hub_connected"] or status["downloads"]:
            return None
        if status["manifest_version"] != await self.api.manifest_version(agent.device_id):
            return None
        if missing_content(agent, self.api.sent.values()):
            return None
        return status

    async def recover(self, agent: Agent, what: str) -> float:
        started = time.monotonic()
        await until(f"{agent.name} {what}: back in sync", lambda: self.in_sync(agent), RECOVERY_S)
        return time.monotonic() - started

    async def airing(self, agent: Agent) -> dict[str, Any] | None:
        status = await agent.status(self.http)
        return status if status is not None and status["now_playing"] else None

    # -------------------------------------------------------------- 1. agent kills

    async def agent_kills(self, count: int, phases: tuple[str, ...] = KILL_PHASES) -> None:
        agent = self.speaker
        say = self.report.say
        say(f"agent kill -9: {count} times, speaker '{agent.name}' (libVLC, dummy audio)")
        agent.start()
        await self.recover(agent, "first start")
        done: Counter[str] = Counter()
        recovery: list[float] = []
        notes: Counter[str] = Counter()
        for n in range(count):
            phase = phases[n % len(phases)]
            try:
                note = await self._kill_during(agent, phase, n)
                notes[f"{phase}: {note}"] += 1
                agent.start()
                recovery.append(await self.recover(agent, f"kill {n + 1} ({phase})"))
                done[phase] += 1
            except StepFailed as exc:
                self.report.fail(str(exc))
                agent.kill()
                agent.start()
                with contextlib.suppress(StepFailed):
                    await self.recover(agent, "restart after a failure")
        say(f"  kills by phase: {dict(done)}")
        say(f"  seen at the kill: {dict(sorted(notes.items()))}")
        if recovery:
            say(
                f"  back in sync after a restart: median {sorted(recovery)[len(recovery) // 2]:.1f}"
                f" s, slowest {max(recovery):.1f} s (timeout {RECOVERY_S:.0f} s)"
            )
        agent.stop()

    async def _kill_during(self, agent: Agent, phase: str, n: int) -> str:
        rng = self.rng
        if phase == "manifest fetch":
            before = (await self.in_sync(agent) or {}).get("manifest_version")
            await self.short_tone([agent], f"Bản tin ngắn {n}", 300.0 + 7 * n)
            # The agent fetches within its jitter (up to 3 s) of the hub's push.
            await asyncio.sleep(rng.uniform(0.0, 3.2))
            status = await agent.status(self.http) or {}
            agent.kill()
            return "new version adopted" if status.get("manifest_version") != before else "not yet"
        if phase == "download":
            await self.noise([agent], f"Phát thanh {n}", 2 * MIB)
            status = await until(
                "download under way",
                lambda: self._downloading(agent),
                RECOVERY_S,
            )
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            agent.kill()
            done, total = next(iter(status["downloads"].values())).values()
            return f"under way ({'<' if done < total / 2 else '>='}50 % when seen)"
        if phase == "speech":
            await self.api.publish([agent], f"Thông báo {n}", kind="text", text=spoken_text(n + 1))
            seen = await self._espeak_running(agent, 6.0)
            await asyncio.sleep(rng.uniform(0.0, 0.15))
            agent.kill()
            return "espeak-ng running" if seen else "espeak-ng not seen"
        if phase == "mid-airing":
            await self._ensure_programme(agent, n)
            await until("an airing", lambda: self.airing(agent), RECOVERY_S)
            await asyncio.sleep(rng.uniform(0.1, 1.2))
            agent.kill()
            return "airing"
        if phase == "item start":
            await self._ensure_programme(agent, n)
            before = len(agent.airings)
            await until("a start", lambda: _true(len(agent.airings) > before), RECOVERY_S)
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            agent.kill()
            return "playing line written"
        # item end: an item whose length the bench knows, killed around its end.
        await self._ensure_programme(agent, n)
        status = await until("an audio airing", lambda: self._known_length(agent), RECOVERY_S)
        bulletin = self.api.sent[status["now_playing"]["bulletin_id"]]
        assert bulletin.seconds is not None
        left = bulletin.seconds - (status["position_s"] or 0.0)
        await asyncio.sleep(max(0.0, left + rng.uniform(-0.3, 0.3)))
        agent.kill()
        return "around the end"

    async def _downloading(self, agent: Agent) -> dict[str, Any] | None:
        status = await agent.status(self.http)
        return status if status is not None and status["downloads"] else None

    async def _espeak_running(self, agent: Agent, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any("espeak" in name for name in agent.children()):
                return True
            await asyncio.sleep(0.005)
        return False

    async def _known_length(self, agent: Agent) -> dict[str, Any] | None:
        status = await self.airing(agent)
        if status is None:
            return None
        bulletin = self.api.sent.get(status["now_playing"]["bulletin_id"])
        return status if bulletin is not None and bulletin.seconds else None

    async def _ensure_programme(self, agent: Agent, n: int) -> None:
        """Something to air: a fresh short tone when the programme has run out."""
        status = await until("a status", lambda: agent.status(self.http), RECOVERY_S)
        if len(status["queue"]) < 2:
            await self.short_tone([agent], f"Bản tin bổ sung {n}", 350.0 + 5 * n)
            await self.recover(agent, "new programme")

    # -------------------------------------------------------------- 2. hub kills

    async def hub_kills(self, count: int) -> None:
        say = self.report.say
        posting = [*await self.new_boards(), self.speaker]
        say(f"hub kill -9: {count} times while {len(posting)} agents post their plays")
        for agent in posting:
            agent.start()
        for agent in posting:
            await self.recover(agent, "start")
        restarts: list[float] = []
        backlog_at_kill: list[int] = []
        in_ingest = 0
        for n in range(count):
            backlog = 0
            for agent in posting:
                status = await agent.status(self.http)
                backlog += status["outbox"]["plays"] if status else 0
            backlog_at_kill.append(backlog)
            # The moment: a report batch has just reached the hub's socket (after a restart,
            # typically the backlog piled up while it was down), then 0-30 ms more, so the
            # kill lands before, during or after the batch's write, before or after its ack.
            posted = asyncio.Event()
            for agent in posting:
                agent.link.on_report = posted.set
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECOVERY_S):
                    await posted.wait()
                    in_ingest += 1
            for agent in posting:
                agent.link.on_report = None
            await asyncio.sleep(self.rng.uniform(0.0, 0.03))
            self.hub.kill()
            await asyncio.sleep(self.rng.uniform(0.5, 2.0))  # plays pile up meanwhile
            try:
                restarts.append(await self.hub.start(RECOVERY_S))
            except SystemExit as exc:
                self.report.fail(f"hub restart {n + 1}: {exc}")
                return
        await self.api.login()
        drained: list[float] = []
        for agent in posting:
            started = time.monotonic()
            try:
                await until(
                    f"{agent.name}: outbox drained after the hub kills",
                    lambda agent=agent: self._drained(agent),
                    RECOVERY_S,
                )
                drained.append(time.monotonic() - started)
            except StepFailed as exc:
                self.report.fail(str(exc))
        if restarts:
            say(
                f"  hub back (healthz 200) in: median {sorted(restarts)[len(restarts) // 2]:.1f} s,"
                f" slowest {max(restarts):.1f} s; {in_ingest} of {count} kills 0-30 ms after a"
                f" report batch reached the hub; plays in the agents' outboxes just before:"
                f" {backlog_at_kill}"
            )
        if drained:
            say(f"  every outbox drained {max(drained):.1f} s after the last restart")
        for agent in posting:
            agent.stop()

    async def _drained(self, agent: Agent) -> bool:
        status = await agent.status(self.http)
        return bool(status and status["hub_connected"] and status["outbox"]["plays"] == 0)

    # -------------------------------------------------------------- 3. link cut

    async def link_cut(self) -> None:
        agent = await self.edge_speaker()
        link = agent.link
        say = self.report.say
        agent.start()
        await self.recover(agent, "start")
        size = 6 * MIB
        say(f"link cut mid-download: a {size / MIB:.0f} MiB object over {LINK_RATE / 1e6:.0f} MB/s")
        carried_before = link.bytes_down
        big = await self.noise([agent], "Phát thanh dài", size)
        try:
            await until("a third downloaded", lambda: self._progress(agent, 0.33), RECOVERY_S)
            link.cut()
            await asyncio.sleep(1.0)
            link.restore()
            await until("two thirds downloaded", lambda: self._progress(agent, 0.66), RECOVERY_S)
            link.blackhole()
            await asyncio.sleep(self.blackhole_s)
            link.restore()
            restored = time.monotonic()
            await until(
                "the object verified in the cache",
                lambda: _true((agent.data / "cache" / "objects" / (big.media or "")).exists()),
                RECOVERY_S,
            )
            took = time.monotonic() - restored
            await self.recover(agent, "link restored")
        except StepFailed as exc:
            link.restore()
            self.report.fail(str(exc))
            agent.stop()
            return
        carried = link.bytes_down - carried_before
        ratio = carried / size
        say(
            f"  cut at 1/3 for 1 s, black-holed at 2/3 for {self.blackhole_s:.0f} s: complete"
            f" {took:.1f} s after the line came back; the line carried {ratio:.3f} x the"
            f" object's bytes, all traffic included (target <= 1.05 x)"
        )
        if ratio > 1.05:
            self.report.fail(f"resumed download carried {ratio:.3f} x its bytes")

    async def _progress(self, agent: Agent, share: float) -> bool:
        status = await agent.status(self.http)
        if status is None:
            return False
        return any(d["done"] >= share * d["total"] for d in status["downloads"].values())

    # -------------------------------------------------------------- 4. clock steps

    async def clock_steps(self) -> None:
        agent = await self.edge_speaker()
        assert agent.clock_file is not None
        say = self.report.say
        say("clock steps of the speaker's system clock: +1 day, back, -1 day, back")
        if not agent.alive():
            agent.start()
            await self.recover(agent, "start")
        for label, offset, restart in (
            ("+1 day", 86_400, True),
            ("back", 0, False),
            ("-1 day", -86_400, True),
            ("back", 0, False),
        ):
            agent.clock_file.write_text(str(offset))
            stepped = datetime.now(UTC)
            try:
                took = await self._credited_airing(agent, stepped, f"clock {label}")
                line = f"  {label}: an airing credited by the hub {took:.1f} s after the step"
                if restart:
                    agent.kill()
                    agent.start()
                    killed = datetime.now(UTC)
                    again = await self._credited_airing(agent, killed, f"clock {label}, restart")
                    line += f"; after a kill -9 and restart, {again:.1f} s"
                say(line)
            except StepFailed as exc:
                self.report.fail(str(exc))
        agent.clock_file.write_text("0")
        agent.stop()

    async def _credited_airing(self, agent: Agent, since: datetime, what: str) -> float:
        """Seconds until the hub credits this device with an airing started after `since`."""
        from hub.db import iso

        started = time.monotonic()
        await self._ensure_programme(agent, int(time.time()) % 1000)

        async def credited() -> bool:
            rows = hub_rows(
                self.hub.data,
                "SELECT started_at FROM plays WHERE device_id = ? AND started_at >= ?",
                (agent.device_id, iso(since)),
            )
            return bool(rows)

        await until(f"{what}: an airing credited by the hub", credited, RECOVERY_S)
        return time.monotonic() - started

    # -------------------------------------------------------------- 5. full disk

    async def full_disk(self) -> None:
        disk = self.disk = TmpfsDisk(self.tmp / "disk-speaker", 24 * MIB)
        disk.mount()
        agent = await self.new_speaker("disk", rate=None, data=disk.path, wrap=disk.wrap())
        say = self.report.say
        agent.start()
        await self.recover(agent, "start")
        big_size = 32 * MIB
        say(
            f"full disk: a {disk.size // MIB} MiB tmpfs data folder ({disk.how}) is sent a"
            f" {big_size // MIB} MiB object, then filled to the last byte by another writer,"
            f" then sent a new text; then the filler goes and the tmpfs grows to"
            f" {4 * disk.size // MIB} MiB"
        )
        big = await self.noise([agent], "Phát thanh rất dài", big_size)
        part = agent.data / "cache" / "partial" / f"{big.media}.part"
        try:
            # The agent refuses what does not fit, or downloads until the disk is full.
            await until(
                "the big object refused or the disk full",
                lambda: self._refused_or_full(agent, disk, big),
                RECOVERY_S,
            )
            say(
                f"  the {big_size // MIB} MiB object: {disk.free() // 1024} KiB left free,"
                f" its part file {part.stat().st_size if part.exists() else 0} bytes"
            )
            disk.fill()
            full_at = datetime.now(UTC)
            filled = time.monotonic()
            await self.api.publish(
                [agent], "Thông báo khi đầy đĩa", kind="text", text=spoken_text(999)
            )
            # Its cached programme must go on while the disk is full.
            try:
                await until(
                    "an airing on a full disk",
                    lambda: _true(any(a.seen_at > filled for a in agent.airings)),
                    FULL_DISK_AIRING_S,
                )
                await asyncio.sleep(3.0)  # and go on
            except StepFailed as exc:
                self.report.fail(str(exc))
            status = await agent.status(self.http)
            aired = sum(1 for a in agent.airings if a.seen_at > filled)
            say(
                f"  while full: {aired} airings began in {time.monotonic() - filled:.0f} s;"
                f" agent {'answering' if status else 'NOT answering'}; faults in its last"
                f" health: {last_faults(self.hub.data, agent.device_id)}"
            )
            disk.empty()
            disk.grow(4 * disk.size)
            grown = time.monotonic()
            await self.recover(agent, "space returned")
            took = time.monotonic() - grown
            await self._credited_airing(agent, full_at, "after space returned")
            say(
                f"  space returned: in sync {took:.1f} s later (the {big_size // MIB} MiB"
                " object and the new text held), airings credited again"
            )
        except StepFailed as exc:
            self.report.fail(str(exc))
        agent.stop()

    async def _refused_or_full(self, agent: Agent, disk: TmpfsDisk, big: Sent) -> bool:
        if disk.free() < MIB:
            return True
        status = await agent.status(self.http)
        # Adopted, and no download under way: a refusal before writing.
        return bool(
            status
            and status["manifest_version"] == await self.api.manifest_version(agent.device_id)
            and not status["downloads"]
            and big.media not in status["downloads"]
        )

    # -------------------------------------------------------------- the end of the day

    async def close_the_day(self) -> None:
        """Every agent once more; the windows close, whatever plays stops and is reported,
        every outbox drains; then the agents stop."""
        # Only agents that ever ran have anything to report.
        ran = [agent for agent in self.agents if agent.process is not None]
        for agent in ran:
            if not agent.alive():
                agent.start()
        for agent in ran:
            try:
                await self.recover(agent, "final start")
            except StepFailed as exc:
                self.report.fail(str(exc))
        shut = [["00:00", "00:01"]]
        await self.api.call(
            "PUT",
            f"/api/v1/communes/{self.commune}",
            json={"windows": {"speaker": shut, "board": shut}},
        )

        async def quiet(agent: Agent) -> bool:
            status = await self.in_sync(agent)
            return bool(status and not status["now_playing"] and status["outbox"]["plays"] == 0)

        for agent in ran:
            try:
                await until(
                    f"{agent.name}: off air with its outbox drained",
                    lambda a=agent: quiet(a),
                    RECOVERY_S,
                )
            except StepFailed as exc:
                self.report.fail(str(exc))
        for agent in self.agents:
            agent.stop()
        await asyncio.sleep(0.1)
        for agent in self.agents:
            agent.watch(self.api.sent)


def _true(value: bool) -> Awaitable[bool]:
    future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


def spoken_text(n: int) -> str:
    return (
        f"Thông báo số {n} của Ủy ban nhân dân xã. Sáng mai, trạm y tế xã tiêm phòng cho trẻ"
        " em dưới năm tuổi tại nhà văn hoá thôn. Đề nghị các gia đình đưa trẻ đến đúng giờ,"
        " mang theo sổ tiêm chủng. Xin cảm ơn bà con."
    )


def missing_content(agent: Agent, sent: Any) -> list[str]:
    """What the agent should hold and does not: objects and spoken texts of bulletins sent
    to it (all are valid for a day from their publication)."""
    from edge_agent.speech import EspeakEngine, speech_key

    cache = agent.data / "cache"
    missing = []
    engine = EspeakEngine().engine_id
    for bulletin in sent:
        if agent.device_id not in bulletin.devices:
            continue
        if bulletin.media and not (cache / "objects" / bulletin.media).exists():
            missing.append(bulletin.media)
        if bulletin.text and agent.speaker:
            key = speech_key(engine, bulletin.text)
            if not (cache / "derived" / f"{key}.wav").exists():
                missing.append(key)
    return missing


# ----------------------------------------------------------------------------- the disk


class TmpfsDisk:
    """A small tmpfs as an agent's data folder: mounted here as root, else in a user and
    mount namespace that only the agent's process lives in (`unshare -rm`)."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.root = os.geteuid() == 0
        self.how = "tmpfs, mounted as root" if self.root else "tmpfs in a user namespace"
        self._holder: subprocess.Popen[bytes] | None = None

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if self.root:
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path)],
                check=True,
            )
            return
        # A namespace that outlives the agent's restarts: a sleeping holder owns it, and the
        # agent (and `grow`) enter it with nsenter.
        if shutil.which("unshare") is None or shutil.which("nsenter") is None:
            raise SystemExit(
                "faults: the full-disk step needs root or util-linux's unshare and nsenter"
            )
        self._holder = subprocess.Popen(
            ["unshare", "-rm", "sh", "-c",
             f"mount -t tmpfs -o size={self.size} tmpfs '{self.path}' && exec sleep infinity"],
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while "tmpfs" not in self._in_ns(["findmnt", "-no", "FSTYPE", str(self.path)]):
            if self._holder.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    "faults: could not mount a tmpfs, neither as root nor with `unshare -rm`"
                    " (user namespaces disabled?): the full-disk step cannot run"
                )
            time.sleep(0.05)

    def _in_ns(self, command: list[str]) -> str:
        assert self._holder is not None
        done = subprocess.run(
            ["nsenter", "-t", str(self._holder.pid), "-U", "-m", "--preserve-credentials",
             *command],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return done.stdout

    def wrap(self) -> list[str]:
        if self.root:
            return []
        assert self._holder is not None
        return ["nsenter", "-t", str(self._holder.pid), "-U", "-m", "--preserve-credentials"]

    def _run(self, command: list[str]) -> None:
        if self.root:
            subprocess.run(command, check=False, capture_output=True)
        else:
            self._in_ns(command)

    def fill(self) -> None:
        """Another writer takes every byte left (logs, a technician's copy...)."""
        self._run(["sh", "-c", f"cat /dev/zero > '{self.path / BALLAST}'"])

    def empty(self) -> None:
        self._run(["rm", "-f", str(self.path / BALLAST)])

    def free(self) -> int:
        if self.root:
            return shutil.disk_usage(self.path).free
        return int(self._in_ns(["df", "--output=avail", "-B1", str(self.path)]).split()[-1])

    def grow(self, size: int) -> None:
        command = ["mount", "-o", f"remount,size={size}", str(self.path)]
        if self.root:
            subprocess.run(command, check=True)
        else:
            self._in_ns(command)
        self.size = size

    def unmount(self) -> None:
        if self.root:
            subprocess.run(["umount", "-l", str(self.path)], check=False)
        elif self._holder is not None:
            self._holder.kill()
            self._holder.wait()


# ----------------------------------------------------------------------------- the audit


def hub_rows(data: Path, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    db = sqlite3.connect(f"file:{data / 'hub.sqlite3'}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def agent_rows(data: Path, sql: str) -> list[sqlite3.Row]:
    path = data / "agent.sqlite3"
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def last_faults(hub_data: Path, device_id: str) -> list[str]:
    rows = hub_rows(hub_data, "SELECT last_health_json FROM devices WHERE id = ?", (device_id,))
    if not rows or rows[0][0] is None:
        return []
    return list(json.loads(rows[0][0]).get("faults") or [])


def corrupt_files(data: Path) -> list[str]:
    """Half-written or wrong files in an agent's data folder (see the module doc)."""
    found = []
    cache = data / "cache"
    for path in sorted(p for p in data.rglob("*") if p.is_file()):
        rel = path.relative_to(data)
        name = path.name
        if name.endswith(".tmp") or ".tmp." in name:
            found.append(f"{rel}: temporary file left behind")
        elif name.endswith(".part") and path.parent != cache / "partial":
            found.append(f"{rel}: partial file outside cache/partial")
        elif path.parent == cache / "objects":
            if not _SHA.match(name):
                found.append(f"{rel}: not named by a sha256")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != name:
                found.append(f"{rel}: bytes do not hash to the name")
        elif path.parent == cache / "derived" and name.endswith(".wav"):
            if not wav_complete(path.read_bytes()):
                found.append(f"{rel}: WAV header disagrees with its length")
    return found


def hub_corrupt_media(hub_data: Path) -> list[str]:
    found = []
    for path in sorted(p for p in hub_data.rglob("*") if p.is_file() and _SHA.match(p.name)):
        if hashlib.sha256(path.read_bytes()).hexdigest() != path.name:
            found.append(f"hub {path.relative_to(hub_data)}: bytes do not hash to the name")
    return found


@dataclass
class Audit:
    corrupt: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    double: list[str] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    credited: int = 0
    refused: int = 0
    airings: int = 0
    files_checked: int = 0


def audit_plays(
    device_id: str,
    agent_plays: list[dict[str, Any]],
    outbox_seqs: set[int],
    stream: str,
    logged_starts: Counter[str],
    credited: list[dict[str, Any]],
    refused: list[dict[str, Any]],
    sent: dict[str, Sent],
) -> Audit:
    """The play figures for one device, from plain rows (pure; see the module doc).

    `agent_plays`: the agent's `plays` rows (bulletin_id, started_at, seq: None if open);
    `credited` and `refused`: the hub's rows for this device (stream, seq, bulletin_id,
    started_at; refused rows also reason)."""
    out = Audit(credited=len(credited), refused=len(refused))
    on_hub = {(r["stream"], r["seq"]) for r in credited}
    refused_by_key = {(r["stream"], r["seq"]): r for r in refused}
    for row in agent_plays:
        seq = row["seq"]
        what = f"{device_id} play of {row['bulletin_id']} at {row['started_at']}"
        if seq is None:
            out.lost.append(f"{what}: still open")
        elif (stream, seq) in on_hub:
            continue
        elif (stream, seq) in refused_by_key:
            out.lost.append(f"{what}: refused ({refused_by_key[(stream, seq)]['reason']})")
        elif seq in outbox_seqs:
            out.lost.append(f"{what}: still in the outbox")
        else:
            out.lost.append(f"{what}: seq {seq} never reached the hub")
    per_bulletin = Counter(r["bulletin_id"] for r in credited)
    for bulletin_id, starts in sorted(logged_starts.items()):
        if starts > per_bulletin[bulletin_id]:
            out.lost.append(
                f"{device_id}: the log shows {starts} starts of {bulletin_id},"
                f" the hub credits {per_bulletin[bulletin_id]}"
            )
    same_airing = Counter((r["bulletin_id"], r["started_at"]) for r in credited)
    out.double += [
        f"{device_id}: {bulletin_id} started {at} credited {n} times"
        for (bulletin_id, at), n in sorted(same_airing.items())
        if n > 1
    ]
    keys = Counter((r["stream"], r["seq"]) for r in [*credited, *refused])
    out.double += [
        f"{device_id}: stream {s!r} seq {q} stored {n} times"
        for (s, q), n in sorted(keys.items())
        if n > 1
    ]
    for row in [*credited, *refused, *agent_plays]:
        bulletin = sent.get(row["bulletin_id"])
        if bulletin is None or device_id not in bulletin.devices:
            out.unverified.append(f"{device_id}: {row['bulletin_id']} was never sent to it")
            continue
        started = datetime.fromisoformat(row["started_at"])
        if started < bulletin.published_at - CLOCK_SLACK:
            out.unverified.append(
                f"{device_id}: {row['bulletin_id']} aired at {started}, published"
                f" {bulletin.published_at}"
            )
    return out


def audit(bench: Bench) -> Audit:
    total = Audit()
    total.corrupt += hub_corrupt_media(bench.hub.data)
    for agent in bench.agents:
        total.corrupt += corrupt_files(agent.data)
        plays = [dict(r) for r in agent_rows(agent.data, "SELECT * FROM plays")]
        outbox = {r[0] for r in agent_rows(agent.data, "SELECT seq FROM outbox WHERE type='play'")}
        state = agent_rows(agent.data, "SELECT value FROM state WHERE key = 'report_stream'")
        stream = str(state[0][0]) if state else ""
        credited = [
            dict(r)
            for r in hub_rows(
                bench.hub.data,
                "SELECT stream, seq, bulletin_id, started_at FROM plays WHERE device_id = ?",
                (agent.device_id,),
            )
        ]
        refused = [
            dict(r) | {"started_at": json.loads(r["report_json"])["started_at"]}
            for r in hub_rows(
                bench.hub.data,
                "SELECT stream, seq, bulletin_id, reason, report_json FROM refused_reports"
                " WHERE device_id = ?",
                (agent.device_id,),
            )
        ]
        logged = Counter(a.bulletin_id for a in agent.airings)
        one = audit_plays(
            agent.device_id, plays, outbox, stream, logged, credited, refused, bench.api.sent
        )
        for airing in agent.airings:
            if airing.file == "mismatch":
                one.unverified.append(f"{agent.name}: aired {airing.detail}")
            elif airing.file == "error":
                bench.report.fail(f"checking an airing's open file failed: {airing.detail}")
        total.lost += one.lost
        total.double += one.double
        total.unverified += one.unverified
        total.credited += one.credited
        total.refused += one.refused
        total.airings += len(agent.airings)
        total.files_checked += sum(1 for a in agent.airings if a.file is not None)
    return total


# ----------------------------------------------------------------------------- main


async def run(
    agent_kills: int, hub_kills: int, seed: int, blackhole_s: float, keep: bool = False
) -> int:
    tmp_name = tempfile.mkdtemp(prefix="loa-faults-")
    if keep:
        print(f"the run's folder (kept): {tmp_name}", flush=True)
    try:
        return await _run(Path(tmp_name), agent_kills, hub_kills, seed, blackhole_s)
    finally:
        if not keep:
            shutil.rmtree(tmp_name, ignore_errors=True)


async def _run(tmp: Path, agent_kills: int, hub_kills: int, seed: int, blackhole_s: float) -> int:
    bench = Bench(tmp, seed, blackhole_s=blackhole_s)
    report = bench.report
    try:
        await bench.setup()
        await bench.agent_kills(agent_kills)
        await bench.hub_kills(hub_kills)
        await bench.clock_steps()
        await bench.link_cut()
        await bench.full_disk()
        await bench.close_the_day()
        found = audit(bench)
    except StepFailed as exc:
        report.fail(str(exc))
        found = audit(bench)
    finally:
        await bench.close()
    say = report.say
    say(
        f"audit: {found.airings} airings started, {found.files_checked} of them with the"
        f" player's open file checked; the hub credits {found.credited} plays and refused"
        f" {found.refused}"
    )
    for name, items in (
        ("corrupt files", found.corrupt),
        ("lost plays", found.lost),
        ("double-counted plays", found.double),
        ("unverified plays", found.unverified),
    ):
        say(f"  {name}: {len(items)}  (target 0)")
        for item in items[:10]:
            say(f"    {item}")
        if len(items) > 10:
            say(f"    … and {len(items) - 10} more")
    bad = found.corrupt or found.lost or found.double or found.unverified
    if report.failures or bad:
        say(f"  TARGET MISSED ({len(report.failures)} steps did not recover)")
        return 1
    say("  target met")
    return 0


def agent_with_clock(clock_file: Path, argv: list[str]) -> int:
    """`edge-agent` whose system clock is the machine's plus the seconds in `clock_file`,
    read again whenever the file changes (see the module doc, clock steps)."""
    from edge_agent.cli import main as agent_main
    from loa_contract import utcnow

    seen: dict[str, Any] = {"stamp": None, "offset": 0.0}

    def system_clock() -> datetime:
        with contextlib.suppress(OSError, ValueError):
            stamp = clock_file.stat().st_mtime_ns
            if stamp != seen["stamp"]:
                seen["offset"] = float(clock_file.read_text() or 0)
                seen["stamp"] = stamp
        return utcnow() + timedelta(seconds=seen["offset"])

    return agent_main(argv, system_clock=system_clock)


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "agent":
        return agent_with_clock(Path(sys.argv[2]), sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent-kills", type=int)
    parser.add_argument("--hub-kills", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="10 agent kills, 3 hub kills")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs, data)")
    args = parser.parse_args()
    agent_kills = args.agent_kills if args.agent_kills is not None else (10 if args.quick else 100)
    hub_kills = args.hub_kills if args.hub_kills is not None else (3 if args.quick else 20)
    blackhole_s = 3.0 if args.quick else 12.0
    print(f"faults: seed {args.seed}, {agent_kills} agent kills, {hub_kills} hub kills", flush=True)
    return asyncio.run(run(agent_kills, hub_kills, args.seed, blackhole_s, args.keep))


if __name__ == "__main__":
    raise SystemExit(main())
