"""Agent memory while playing audio, against a bare `cvlc` playing the same file (target ≤ 1.5 ×).

Prepares an enrolled speaker with one cached audio bulletin (as bench/cold_start.py does), then
runs, one after the other, `edge-agent run` (hub unreachable, so it plays from cache) and
`cvlc` on the very file from the agent's cache, both with libVLC's dummy audio output. Each is
sampled while it plays; the figure is the peak resident set (RSS, what `top` shows) and the
proportional set (PSS, shared libraries split between the processes that map them).

    .venv/bin/python bench/memory.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from bench.cold_start import prepare, start_agent  # noqa: E402

TARGET = 1.5


def _peak(proc: psutil.Process, seconds: float) -> tuple[int, int]:
    """Peak memory of the process that plays: the deepest descendant (runuser → cvlc → vlc)."""
    rss = pss = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        player = ([proc, *proc.children(recursive=True)])[-1]
        info = player.memory_full_info()
        rss, pss = max(rss, info.rss), max(pss, getattr(info, "pss", info.rss))
        time.sleep(0.25)
    return rss, pss


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def agent_peak(data: Path, seconds: float) -> tuple[int, int]:
    proc = start_agent(data, 18291)
    assert proc.stderr is not None
    try:
        for line in proc.stderr:
            if " playing " in line:
                break
        else:
            raise RuntimeError(f"the agent exited ({proc.wait()}) without playing anything")
        return _peak(psutil.Process(proc.pid), seconds)
    finally:
        _stop(proc)


def cvlc_peak(media: Path, seconds: float) -> tuple[int, int]:
    cvlc = shutil.which("cvlc")
    if cvlc is None:
        raise SystemExit("cvlc is missing: apt-get install vlc-bin vlc-plugin-base")
    command = [cvlc, "--aout=dummy", "--no-video", "--intf=dummy", str(media)]
    if os.geteuid() == 0:
        # VLC refuses to run as root; as the agent's own service it would not be root either.
        runuser = shutil.which("runuser")
        if runuser is None:
            raise SystemExit("running as root needs runuser (util-linux) to start cvlc")
        command = [runuser, "-u", "nobody", "--", *command]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        # cvlc prints nothing when it starts playing; give it the moment the agent's
        # "playing" line stands for (libVLC open + first buffers) before sampling.
        time.sleep(1.0)
        if proc.poll() is not None:
            raise RuntimeError(f"cvlc exited ({proc.returncode}) at once")
        return _peak(psutil.Process(proc.pid), seconds)
    finally:
        _stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        data = asyncio.run(prepare(Path(tmp_name)))
        [cached] = [p for p in (data / "cache" / "objects").iterdir() if p.is_file()]
        # A world-readable copy, for cvlc running as another user (see cvlc_peak).
        media = Path(tmp_name) / "bulletin.wav"
        shutil.copyfile(cached, media)
        media.chmod(0o644)
        Path(tmp_name).chmod(0o755)
        agent_rss, agent_pss = agent_peak(data, args.seconds)
        vlc_rss, vlc_pss = cvlc_peak(media, args.seconds)
    mib = 1024 * 1024
    print("memory while playing the same audio file (libVLC, dummy audio output)")
    print(f"  cvlc        RSS {vlc_rss / mib:6.1f} MiB  PSS {vlc_pss / mib:6.1f} MiB")
    print(f"  edge-agent  RSS {agent_rss / mib:6.1f} MiB  PSS {agent_pss / mib:6.1f} MiB")
    ratio = agent_rss / vlc_rss
    print(f"  ratio (RSS) {ratio:.2f} x  (target <= {TARGET} x)")
    met = ratio <= TARGET
    print("  target met" if met else "  TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
