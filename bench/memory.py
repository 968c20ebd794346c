"""Agent memory while playing audio, against a bare `cvlc` playing the same file (target ≤ 1.5 ×).

Prepares an enrolled speaker with one cached audio bulletin (as bench/cold_start.py does), then
runs, one after the other, the agent (hub unreachable, so it plays from cache) and `cvlc` on the
same bytes, both with libVLC's dummy audio output. The agent runs as deployed: the command
systemd starts (`edge-agent-launch run`, which execs the agent in the same process) with the
`Environment=` lines of systemd/loa-agent.service (MALLOC_ARENA_MAX among them); the bench only
adds, as /etc/default/loa-agent may, the page's address and the dummy audio output.

cvlc plays only, as the agent does: `--no-auto-preparse`. By default cvlc's playlist also
preparses the file (meta data, cover art) in a thread that races the playback, and when it
wins it loads the demuxers it probes (mkv, ts, avformat with libavcodec and x265, ...): the
same command then settles at ~36 MiB one run and ~14 MiB the next. The agent never preparses
(it plays through a libVLC media player), so that work is not the floor; the default cvlc is
measured too and printed beside it, with how many libVLC plugins each process has mapped.

Both are measured the same way: once the process has the media file open (libVLC's input has
started) its resident set is sampled every 0.25 s until it stops growing (four samples in a row
within 1 % of each other), and only then the peak over the next `--seconds` is taken. The
figures are RSS (what `top` shows; the target is stated on it) and PSS (shared libraries split
between the processes that map them).

A third process is measured as well: the stack floor, Python with the libraries the agent is
built on, used as the agent must use them (one pydantic model, aiohttp's server imported),
playing the same file through python-vlc and nothing else. It shows how much of the
ratio is the agent's own code and how much the chosen stack costs before any of it runs.

    .venv/bin/python bench/memory.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from bench.cold_start import prepare  # noqa: E402
from bench.support import free_port  # noqa: E402

TARGET = 1.5
PERIOD_S = 0.25
STEADY_SAMPLES = 4
STEADY_GROWTH = 0.01
START_TIMEOUT_S = 20.0
MIB = 1024 * 1024
UNIT = ROOT / "systemd" / "loa-agent.service"
LAUNCHER = Path(sys.executable).parent / "edge-agent-launch"


@dataclass(frozen=True)
class Reading:
    rss: int
    pss: int
    #: From the first sample with the media file open to the start of the measured window.
    settle_s: float
    #: libVLC plugins the process has mapped: shows which work libVLC did.
    plugins: int


def _player(proc: psutil.Process, media: Path) -> psutil.Process | None:
    """The process that plays: the one holding the media file open (the agent itself; for
    cvlc started through runuser, its child). Not merely the deepest child: the agent runs
    short-lived helpers (timedatectl, espeak-ng) that must not be measured in its place."""
    for candidate in [proc, *proc.children(recursive=True)]:
        try:
            if any(Path(f.path) == media for f in candidate.open_files()):
                return candidate
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return None


def measure(proc: psutil.Process, media: Path, seconds: float) -> Reading:
    """Wait for the media to be open and the RSS to settle, then the peak RSS/PSS over `seconds`."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while (player := _player(proc, media)) is None:
        if not proc.is_running() or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.name()} never opened {media}")
        time.sleep(PERIOD_S / 5)
    opened = time.monotonic()
    recent: list[int] = []
    while True:
        recent = [*recent, player.memory_info().rss][-STEADY_SAMPLES:]
        if len(recent) == STEADY_SAMPLES and max(recent) <= recent[0] * (1 + STEADY_GROWTH):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{player.name()}'s memory never settled: {recent}")
        time.sleep(PERIOD_S)
    settled = time.monotonic()
    rss = pss = 0
    while time.monotonic() < settled + seconds:
        if _player(proc, media) != player:
            raise RuntimeError(f"{player.name()} stopped playing {media} while measured")
        info = player.memory_full_info()
        rss, pss = max(rss, info.rss), max(pss, getattr(info, "pss", info.rss))
        time.sleep(PERIOD_S)
    plugins = {m.path for m in player.memory_maps() if "/vlc/plugins/" in m.path}
    return Reading(rss, pss, settled - opened, len(plugins))


def _stop(proc: subprocess.Popen[Any]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def unit_environment(unit: Path) -> dict[str, str]:
    """The variables a systemd unit's `Environment=` lines set (quoted or bare assignments)."""
    env: dict[str, str] = {}
    for line in unit.read_text().splitlines():
        if line.startswith("Environment="):
            for assignment in shlex.split(line.removeprefix("Environment=")):
                name, _, value = assignment.partition("=")
                env[name] = value
    return env


def agent_reading(data: Path, media: Path, seconds: float) -> Reading:
    deployed = unit_environment(UNIT)
    print(f"  agent environment from {UNIT.name}: {deployed}", file=sys.stderr)
    proc = subprocess.Popen(
        [
            str(LAUNCHER),
            "run",
            "--data",
            str(data),
            "--http-host",
            "127.0.0.1",
            "--http-port",
            str(free_port()),
            "--vlc-arg=--aout=dummy",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **deployed},
    )
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if " playing " in line:
                break
        else:
            raise RuntimeError(f"the agent exited ({proc.wait()}) without playing anything")
        return measure(psutil.Process(proc.pid), media, seconds)
    finally:
        _stop(proc)


def cvlc_reading(media: Path, seconds: float, *, preparse: bool) -> Reading:
    cvlc = shutil.which("cvlc")
    if cvlc is None:
        raise SystemExit("cvlc is missing: apt-get install vlc-bin vlc-plugin-base")
    command = [cvlc, "--aout=dummy", "--no-video", "--intf=dummy", str(media)]
    if not preparse:
        command.insert(1, "--no-auto-preparse")
    if os.geteuid() == 0:
        # VLC refuses to run as root; as the agent's own service it would not be root either.
        runuser = shutil.which("runuser")
        if runuser is None:
            raise SystemExit("running as root needs runuser (util-linux) to start cvlc")
        command = [runuser, "-u", "nobody", "--", *command]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        return measure(psutil.Process(proc.pid), media, seconds)
    finally:
        _stop(proc)


#: The floor of the brief's own stack: Python with the libraries the agent must use (aiohttp,
#: aiosqlite, pydantic, psutil, python-vlc over libVLC), playing the same file and doing
#: nothing else. What the agent adds is its own cost; what this adds over cvlc is the stack's.
#: Used as the agent must use them: `import pydantic` alone loads next to nothing until a
#: first model is defined, and the agent serves its page with aiohttp's server.
STACK_FLOOR = """
import sys, time
import aiohttp, aiosqlite, psutil, pydantic, vlc
from aiohttp import web  # the agent's local page is an aiohttp server


class Used(pydantic.BaseModel):  # the first model loads pydantic's machinery (~5 MiB)
    path: str


Used(path=sys.argv[1])
instance = vlc.Instance(["--aout=dummy", "--no-video"])
player = instance.media_player_new()
player.set_media(instance.media_new(sys.argv[1]))
player.play()
time.sleep(3600)
"""


def stack_reading(media: Path, seconds: float) -> Reading:
    proc = subprocess.Popen(
        [sys.executable, "-c", STACK_FLOOR, str(media)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        return measure(psutil.Process(proc.pid), media, seconds)
    finally:
        _stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        data = asyncio.run(prepare(Path(tmp_name)))
        [cached] = [p for p in (data / "cache" / "objects").iterdir() if p.is_file()]
        # A world-readable copy, for cvlc running as another user (see cvlc_reading), under
        # the cache's own name: libVLC picks demuxers by the name's extension first.
        media = Path(tmp_name) / cached.name
        shutil.copyfile(cached, media)
        media.chmod(0o644)
        Path(tmp_name).chmod(0o755)
        agent = agent_reading(data, cached.resolve(), args.seconds)
        vlc = cvlc_reading(media.resolve(), args.seconds, preparse=False)
        defaults = [cvlc_reading(media.resolve(), 1.0, preparse=True) for _ in range(3)]
        stack = stack_reading(media.resolve(), args.seconds)
    print("memory while playing the same audio file (libVLC, dummy audio output)")
    for name, reading in (
        ("cvlc", vlc),
        ("stack floor", stack),
        ("edge-agent", agent),
    ):
        print(
            f"  {name:<11} RSS {reading.rss / MIB:6.1f} MiB  PSS {reading.pss / MIB:6.1f} MiB"
            f"  (steady after {reading.settle_s:.1f} s, peak over {args.seconds:g} s,"
            f" {reading.plugins} libVLC plugins)"
        )
    # Not the floor (see the docstring); printed so that the older figures can be read.
    print(
        "  cvlc without --no-auto-preparse, 3 runs: RSS "
        + ", ".join(f"{r.rss / MIB:.1f} MiB ({r.plugins} plugins)" for r in defaults)
        + f"; edge-agent / the largest {agent.rss / max(r.rss for r in defaults):.2f} x"
    )
    ratio = agent.rss / vlc.rss
    print(f"  ratio (RSS) {ratio:.2f} x  (target <= {TARGET} x)")
    print(f"  ratio (PSS) {agent.pss / vlc.pss:.2f} x")
    # The stack floor is Python + aiohttp + aiosqlite + pydantic + psutil + python-vlc playing
    # the file and nothing else: the part of the ratio no agent on this stack can avoid.
    print(f"  stack floor / cvlc (RSS) {stack.rss / vlc.rss:.2f} x  (the libraries alone)")
    print(f"  edge-agent / stack floor (RSS) {agent.rss / stack.rss:.2f} x  (the agent's own)")
    met = ratio <= TARGET
    print("  target met" if met else "  TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
