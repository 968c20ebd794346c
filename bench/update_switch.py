"""Silence of an agent release switch (issue #14 point 4; target <= 10 s) against its floor,
a plain restart of the same agent.

Builds one release with scripts/release.py (as tests/test_fleet_updates.py does) and records
it on a real hub. Each run enrolls a fresh speaker and starts it the way a Pi does:
`edge_agent.launch run` under tests/restarter.py, a stand-in for systemd's `Restart=always`
waiting the unit's own `RestartSec=` (systemd/loa-agent.service) before each start, with a
real libVLC player (dummy audio output) or the null one. Then, per run:

- floor: SIGTERM to the running agent (what `systemctl restart` does), timed from the signal
  to the next start's "programme loop running" line: stop, RestartSec, launcher, imports,
  agent start, the same version;
- switch: a roll-out of the release to that device alone; the device downloads and installs
  it beside the running one, then switches (nothing is due: it is quiet); timed from the old
  agent's "update: switch" line (it stops its programme for the switch there) to the new
  release's "programme loop running" line. The silence the device reports itself (shown on the
  console's releases page) is printed beside it.

Times are taken as each line reaches the bench through the agent's stderr pipe.

    .venv/bin/python bench/update_switch.py [--runs 3] [--player vlc|null]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import free_port  # noqa: E402
from hub.cli import main as hub_main  # noqa: E402
from scripts.release import build_release  # noqa: E402
from tests.e2e import LiveHub, enroll_identity  # noqa: E402
from tests.restarter import Restarter  # noqa: E402

TARGET_S = 10.0
RELEASE = "0.2.0"
PROGRAMME = r"programme loop running"
SWITCH = r"update: switch$"
STEP_TIMEOUT_S = 180.0


def unit_restart_sec() -> float:
    """RestartSec= of the agent's systemd unit: the pause systemd makes before each start."""
    unit = (ROOT / "systemd" / "loa-agent.service").read_text()
    found = re.search(r"^RestartSec=(\d+(?:\.\d+)?)s?$", unit, re.M)
    if found is None:
        raise SystemExit("systemd/loa-agent.service has no RestartSec=")
    return float(found[1])


class TimedRestarter(Restarter):
    """The stand-in for systemd, noting when each line of the agent's log reached it."""

    def __init__(self, command: Sequence[str], env: dict[str, str], restart_s: float) -> None:
        super().__init__(command, env, restart_s=restart_s)
        self.times: list[float] = []

    async def _note(self, line: str) -> None:
        self.times.append(time.monotonic())
        await super()._note(line)

    async def wait_timed(self, pattern: str, *, after: int) -> tuple[int, float]:
        """The index and arrival time of the first line from `after` on matching `pattern`."""
        await self.wait_for(pattern, STEP_TIMEOUT_S, after=after)
        wanted = re.compile(pattern)
        index = next(i for i in range(after, len(self.lines)) if wanted.search(self.lines[i]))
        return index, self.times[index]


def agent_command(data: Path, player: str) -> list[str]:
    command = [
        sys.executable, "-m", "edge_agent.launch", "run", "--data", str(data),
        "--player", player, "--display", "null", "--http-host", "127.0.0.1",
        "--http-port", str(free_port()), "--update-check", "0.5", "--probation", "60",
    ]  # fmt: skip
    if player == "vlc":
        command.append("--vlc-arg=--aout=dummy")
    return command


async def reported_silence(hub: LiveHub, device_id: str) -> float:
    """The silence the device reported once its new release proved itself."""
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        for entry in await hub.call("GET", "/api/v1/device-updates"):
            if entry["device_id"] == device_id and entry["state"] == "updated":
                return float(entry["switch_silence_s"])
        await asyncio.sleep(0.2)  # the hub's record has no event to wait on from here
    raise TimeoutError(f"device {device_id} never reported its update")


async def one_run(
    hub: LiveHub, data: Path, player: str, restart_s: float
) -> tuple[float, float, float]:
    identity = await enroll_identity(
        hub, data, commune="bench", kind="speaker", profile="speaker-cluster"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SDL_VIDEODRIVER": "dummy", "LOA_LANG": "en"}
    device = TimedRestarter(agent_command(data, player), env, restart_s)
    device.start()
    try:
        await device.wait_timed(PROGRAMME, after=0)
        # Floor: a plain restart of the same version.
        mark = device.mark()
        signalled = time.monotonic()
        device.kill(signal.SIGTERM)
        await device.wait_timed(r"\[restarter\] start", after=mark)
        _, running = await device.wait_timed(PROGRAMME, after=mark)
        floor = running - signalled
        # The switch: this device alone is offered the release.
        mark = device.mark()
        await hub.call(
            "POST",
            "/api/v1/rollouts",
            json={"version": RELEASE, "percent": 100, "devices": [identity.device_id]},
        )
        at, switched = await device.wait_timed(SWITCH, after=mark)
        _, running = await device.wait_timed(PROGRAMME, after=at)
        reported = await reported_silence(hub, identity.device_id)
        return floor, running - switched, reported
    except TimeoutError as exc:
        raise SystemExit(f"{exc}\nthe device's log:\n{device.log()}") from None
    finally:
        await device.stop()


async def bench(runs: int, player: str) -> int:
    restart_s = unit_restart_sec()
    results: list[tuple[float, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        release = await asyncio.to_thread(build_release, ROOT, RELEASE, tmp / "releases")
        hub = LiveHub(tmp / "hub")
        await hub.start()
        try:
            await hub.add_commune("bench")
            added = await asyncio.to_thread(
                hub_main, ["release", "add", str(release), "--data", str(hub.data_dir)]
            )
            if added != 0:
                raise SystemExit("the hub refused the release built for the bench")
            for n in range(runs):
                results.append(await one_run(hub, tmp / f"pi-{n}", player, restart_s))
        finally:
            await hub.close()
    floors = [r[0] for r in results]
    switches = [r[1] for r in results]
    reported = [r[2] for r in results]

    def runs_of(values: list[float]) -> str:
        return ", ".join(f"{v:.2f}" for v in values)

    ratio = statistics.median(switches) / statistics.median(floors)
    print(
        f"silence of a release switch (launcher under a Restart=always stand-in,"
        f" RestartSec={restart_s:g} s as the unit; {player} player), {runs} runs"
    )
    print(f"  floor  (plain restart, same version): median {statistics.median(floors):.2f} s"
          f"  runs: {runs_of(floors)}")  # fmt: skip
    print(f"  switch (old programme stopped -> new programme running): median"
          f" {statistics.median(switches):.2f} s  max {max(switches):.2f} s"
          f"  runs: {runs_of(switches)}")  # fmt: skip
    print(f"  as the devices reported it (console): {runs_of(reported)}")
    print(f"  ratio switch / floor: {ratio:.2f} x   target: switch <= {TARGET_S:g} s")
    met = max(max(switches), max(reported)) <= TARGET_S
    print("  target met" if met else "  TARGET MISSED")
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--player", choices=["vlc", "null"], default="vlc")
    args: Any = parser.parse_args()
    return asyncio.run(bench(args.runs, args.player))


if __name__ == "__main__":
    raise SystemExit(main())
