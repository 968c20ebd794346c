"""`edge-agent simulate`: a fleet of real agents against a hub, for capacity planning.

A province asks "how many loudspeakers can this hub carry, and how fast does an emergency
reach them?". This command answers by running the real agent core (the same Agent class as
on a Pi: scheduler, SQLite state, signed push, outbox) with null players, N of them spread
over K child processes, against the hub it is pointed at, and by reading the hub's own
process figures over its admin API (GET /api/v1/hub/process), so the hub may be remote.

Each child runs its share of agents in one event loop and talks to this (parent) process
in JSON lines over its stdin/stdout: the parent drives the scenario (fires emergencies,
restarts the hub), the children time what their agents see. All run on one machine, so
wall-clock times (time.time()) are comparable across processes.

Scenarios:
- emergency: several emergencies, each cancelled and every device idle before the next;
  per device, API call -> `emergency_start` received and API call -> playing.
- health: health every --interval seconds for --duration; hub CPU, hub memory per connected
  device, health report latency.
- outage: the hub is restarted (by --restart-cmd, or by the operator); time until every
  device is back and the hub's CPU peak during the reconnection storm.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import logging
import os
import re
import resource
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from loa_contract import Command, EmergencyCancel, EmergencyStart, Priority, utcnow

from .hubclient import HubClient, HubError
from .i18n import t
from .identity import Identity, IdentityError

SCENARIOS = ("emergency", "health", "outage")
#: Windows open all day, so the simulated commune's devices never wait for a window.
ALL_DAY = [["00:00", "12:00"], ["12:00", "00:00"]]
ALARM_SECONDS = 1.0
STATE_FILE = "simulate.json"
DEVICES_DIR = "devices"
REPORTS_PATH = "/api/v1/device/reports"
MANIFEST_PATH = "/api/v1/device/manifest"
#: After a cancel, how long each device gets to fetch its new manifest before the next round.
SETTLE_S = 30.0
#: aiohttp rounds a timer over this many seconds up to the whole second, so that a process's
#: timers share turns of its loop. Each simulated device must keep its own (its heartbeat
#: above all): rounded, a process's thousands of heartbeats were sent in the same turn and
#: reached the hub as one burst, where real devices, each with its own clock, spread them.
EXACT_TIMERS = 3600.0
#: The GIL's switch interval in a simulator process (see `_child`).
SWITCH_INTERVAL_S = 0.0005
#: Before each emergency, a process's loop has answered on time for this long (`idle`).
QUIET_FOR_S = 3.0
#: "On time": a short sleep woke at most this late.
QUIET_LAG_S = 0.025


def default_data_dir() -> Path:
    # Each real device writes to its own SD card; thousands of simulated ones sharing this
    # machine's disk would measure that disk's fsync queue, not the hub. tmpfs when there is one.
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() else Path(tempfile.gettempdir())
    return base / f"loa-simulate-{os.getuid()}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hub", required=True, help="hub URL, e.g. https://hub.example.vn")
    parser.add_argument("--devices", type=int, required=True, help="simulated devices")
    parser.add_argument("--procs", type=int, default=1, help="processes to spread them over")
    parser.add_argument("--scenario", choices=SCENARIOS, required=True)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument("--user", required=True, help="hub operator account (admin)")
    parser.add_argument(
        "--password-stdin", action="store_true", required=True, help="read the password on stdin"
    )
    parser.add_argument("--commune", default="mo-phong", help="commune of the simulated devices")
    parser.add_argument("--data", type=Path, default=None, help="identities and device state")
    parser.add_argument("--interval", type=float, default=60.0, help="health every S seconds")
    parser.add_argument("--duration", type=float, default=None, help="health: how long (s)")
    parser.add_argument("--emergencies", type=int, default=3, help="emergency: how many")
    parser.add_argument("--restart-cmd", default=None, help="outage: shell command restarting it")
    parser.add_argument(
        "--ramp",
        type=float,
        default=None,
        help="start the agents over S seconds (default: the health interval for health, one"
        " second per 100 devices otherwise)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait for a step")
    parser.add_argument(
        "--manifest-jitter",
        type=float,
        default=None,
        help="spread of the manifest fetches after an emergency start or cancel (s);"
        " default: the agent's own",
    )


# ---------------------------------------------------------------------------- pure figures


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-th percentile (0 <= q <= 100) of a non-empty sequence."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def shares(count: int, procs: int) -> list[range]:
    """Split `count` devices into `procs` contiguous shares whose sizes differ by at most one."""
    procs = max(1, min(procs, count))
    base, extra = divmod(count, procs)
    out: list[range] = []
    start = 0
    for i in range(procs):
        size = base + (1 if i < extra else 0)
        out.append(range(start, start + size))
        start += size
    return out


def cpu_percent(before: dict[str, Any], after: dict[str, Any]) -> float | None:
    """CPU use of one hub process between two /api/v1/hub/process answers, in % of one core."""
    if before["pid"] != after["pid"] or after["at"] <= before["at"]:
        return None
    used = (after["cpu_user_s"] + after["cpu_system_s"]) - (
        before["cpu_user_s"] + before["cpu_system_s"]
    )
    return 100.0 * float(used) / float(after["at"] - before["at"])


def peak_cpu(samples: Sequence[dict[str, Any]]) -> float | None:
    """The highest CPU use between consecutive samples of the same process."""
    spans = [cpu_percent(a, b) for a, b in itertools.pairwise(samples)]
    values = [v for v in spans if v is not None]
    return max(values) if values else None


def ramp_seconds(args: argparse.Namespace) -> float:
    """Over how long the agents start. Real devices boot at scattered times, and thousands of
    simulated ones starting in the same second would measure the simulator's own start-up
    (every agent opening its SQLite file, checking its cache) rather than the hub. Health
    spreads them over one interval so their reports do not align."""
    if args.ramp is not None:
        return float(args.ramp)
    if args.scenario == "health":
        return float(args.interval)
    return float(args.devices) / 100.0


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


#: A commune code as the hub takes it (hub/communes.py).
COMMUNE_CODE = r"[A-Za-z0-9_.-]{1,32}"


def check_options(args: argparse.Namespace) -> tuple[str, dict[str, Any]] | None:
    """The message key (and its values) for the first bad argument, None when all are good."""
    if not args.hub.startswith(("http://", "https://")):
        return "sim_bad_arg", {"name": "--hub", "reason": "http://… | https://…"}
    if args.devices < 1:
        return "sim_bad_arg", {"name": "--devices", "reason": ">= 1"}
    if args.procs < 1 or args.procs > args.devices:
        return "sim_bad_arg", {"name": "--procs", "reason": f"1..{args.devices}"}
    if args.interval <= 0:
        return "sim_bad_arg", {"name": "--interval", "reason": "> 0"}
    if args.duration is not None and args.duration <= 0:
        return "sim_bad_arg", {"name": "--duration", "reason": "> 0"}
    if args.emergencies < 1:
        return "sim_bad_arg", {"name": "--emergencies", "reason": ">= 1"}
    if args.ramp is not None and args.ramp < 0:
        return "sim_bad_arg", {"name": "--ramp", "reason": ">= 0"}
    if args.timeout <= 0:
        return "sim_bad_arg", {"name": "--timeout", "reason": "> 0"}
    if not re.fullmatch(COMMUNE_CODE, args.commune):
        # The hub's own rule for a commune code, said before anything is enrolled.
        return "sim_bad_arg", {"name": "--commune", "reason": COMMUNE_CODE}
    return None


# ---------------------------------------------------------------------------- the hub's API


class SimulationFailed(Exception):
    """A step that cannot go on; carries the message key and its values for the operator."""

    def __init__(self, key: str, **values: Any) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


class HubAdmin:
    """The operator's side: sign in, set up the commune, fire and cancel, read hub figures."""

    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        session: aiohttp.ClientSession,
        timeout_s: float = 300.0,
    ) -> None:
        self.url = url.rstrip("/")
        #: A hub under a storm may answer late; how late is itself a figure, not a failure.
        self.timeout_s = timeout_s
        self.user = user
        self._password = password
        self.session = session
        self._token: str | None = None

    async def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        auth: bool = True,
        ok: tuple[int, ...] = (200, 201),
    ) -> tuple[int, Any]:
        headers: dict[str, str] = {}
        if auth and self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if content_type:
            headers["Content-Type"] = content_type
        try:
            async with self.session.request(
                method,
                self.url + path,
                json=json_body,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            ) as response:
                text = await response.text()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SimulationFailed(
                "hub_unreachable", url=self.url, reason=f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = text
        if status not in ok:
            raise SimulationFailed(
                "sim_api_failed", call=f"{method} {path}", status=status, body=str(body)[:300]
            )
        return status, body

    async def login(self) -> None:
        try:
            _, body = await self.call(
                "POST",
                "/api/v1/auth/login",
                json_body={"username": self.user, "password": self._password},
                auth=False,
                ok=(200,),
            )
        except SimulationFailed as exc:
            if exc.key == "sim_api_failed" and exc.values["status"] in (401, 403, 423):
                raise SimulationFailed("sim_login_failed", user=self.user) from exc
            if exc.key == "sim_api_failed" and exc.values["status"] == 404:
                raise SimulationFailed(
                    "hub_unreachable", url=self.url, reason="not a Loa hub (404)"
                ) from exc
            raise
        if not isinstance(body, dict) or "token" not in body:
            raise SimulationFailed("hub_unreachable", url=self.url, reason="not a Loa hub")
        self._token = str(body["token"])

    async def ensure_commune(self, code: str) -> bool:
        """Create the commune (windows open all day) unless it exists; True if created."""
        status, _ = await self.call("GET", f"/api/v1/communes/{code}", ok=(200, 404))
        if status == 200:
            return False
        windows = {"speaker": ALL_DAY, "board": ALL_DAY}
        await self.call(
            "POST",
            "/api/v1/communes",
            json_body={"code": code, "name": f"Xã mô phỏng {code}", "windows": windows},
        )
        return True

    async def device_exists(self, device_id: str) -> bool:
        status, _ = await self.call("GET", f"/api/v1/devices/{device_id}", ok=(200, 404))
        return status == 200

    async def enroll(self, commune: str, name: str, directory: Path) -> Identity:
        """A new device slot, enrolled with its one-time code; the identity saved in `directory`."""
        _, slot = await self.call(
            "POST",
            "/api/v1/devices",
            json_body={
                "commune": commune,
                "name": name,
                "kind": "speaker",
                "profile": "speaker-cluster",
            },
        )
        client = HubClient(self.url, session=self.session)
        try:
            answer = await client.enroll(slot["enrollment_code"], name)
        except HubError as exc:
            raise SimulationFailed("enroll_failed", reason=exc) from exc
        identity = Identity(
            hub_url=self.url,
            device_id=answer.device_id,
            device_secret=answer.device_secret,
            device_kind=answer.device_kind,
            commune=answer.commune,
            profile="speaker-cluster",
            hub_keys=answer.hub_keys,
        )
        identity.save(directory)
        return identity

    async def process(self) -> dict[str, Any]:
        _, body = await self.call("GET", "/api/v1/hub/process", ok=(200,))
        return dict(body)

    async def process_or_none(self) -> dict[str, Any] | None:
        """The figures, or None while the hub is down; signs in again after a restart."""
        try:
            return await self.process()
        except SimulationFailed as exc:
            if exc.key == "sim_api_failed" and exc.values["status"] == 401:
                with contextlib.suppress(SimulationFailed):
                    await self.login()
            return None

    async def ensure_alarm(self, commune: str, state: dict[str, Any]) -> str:
        """The alarm sound, held on every device of the commune (as a province holds its alarm
        signals): a bulletin valid only from tomorrow, so it is cached and never evicted."""
        key = f"{self.url} {commune}"
        held = state.get("alarms", {}).get(key)
        if held is not None:
            status, body = await self.call(
                "GET", f"/api/v1/bulletins/{held['bulletin']}", ok=(200, 404)
            )
            if status == 200 and body.get("state") == "published":
                return str(held["sha256"])
        from .tone import write_tone

        with tempfile.TemporaryDirectory() as tmp:
            wav = write_tone(Path(tmp) / "alarm.wav", frequency=880.0, seconds=ALARM_SECONDS)
            payload = wav.read_bytes()
        _, media = await self.call("POST", "/api/v1/media", data=payload, content_type="audio/wav")
        tomorrow = utcnow() + timedelta(days=1)
        _, created = await self.call(
            "POST",
            "/api/v1/bulletins",
            json_body={
                "title": "Tín hiệu báo động (mô phỏng)",
                "kind": "audio",
                "priority": "normal",
                "media": media["sha256"],
                "targets": {"communes": [commune]},
                "schedule": {
                    "valid_from": tomorrow.isoformat(),
                    "valid_until": (tomorrow + timedelta(days=300)).isoformat(),
                },
            },
        )
        await self.call("POST", f"/api/v1/bulletins/{created['id']}/publish")
        state.setdefault("alarms", {})[key] = {
            "bulletin": created["id"],
            "sha256": media["sha256"],
        }
        return str(media["sha256"])

    async def fire(self, commune: str, sha256: str, title: str) -> str:
        _, body = await self.call(
            "POST",
            "/api/v1/emergencies",
            json_body={
                "title": title,
                "media": sha256,
                "targets": {"communes": [commune]},
                "repeats": 1,
                "valid_minutes": 10,
            },
        )
        return str(body["id"])

    async def cancel(self, bulletin_id: str) -> None:
        await self.call("POST", f"/api/v1/bulletins/{bulletin_id}/cancel")


# ---------------------------------------------------------------------------- the fleet on disk


def load_state(root: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((root / STATE_FILE).read_text()))
    except (OSError, ValueError):
        return {}


def save_state(root: Path, state: dict[str, Any]) -> None:
    tmp = root / f"{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, root / STATE_FILE)


def reusable(directory: Path, hub_url: str, commune: str) -> Identity | None:
    try:
        identity = Identity.load(directory)
    except IdentityError:
        return None
    if identity.hub_url.rstrip("/") != hub_url.rstrip("/") or identity.commune != commune:
        return None
    return identity


async def prepare_fleet(
    admin: HubAdmin, root: Path, count: int, commune: str, progress: Callable[[int, int], None]
) -> tuple[list[Path], int]:
    """`count` device folders with an identity the hub knows; returns them and how many were
    reused. Identities found under `root` are reused when the hub still knows the device;
    the rest are enrolled now."""
    devices = root / DEVICES_DIR
    devices.mkdir(parents=True, exist_ok=True)
    candidates = sorted(p for p in devices.iterdir() if p.is_dir())
    gate = asyncio.Semaphore(16)

    async def still_known(directory: Path) -> Path | None:
        identity = reusable(directory, admin.url, commune)
        if identity is None:
            return None
        async with gate:
            return directory if await admin.device_exists(identity.device_id) else None

    chosen: list[Path] = []
    for start in range(0, len(candidates), 512):
        if len(chosen) >= count:
            break
        found = await asyncio.gather(*(still_known(p) for p in candidates[start : start + 512]))
        chosen.extend(p for p in found if p is not None)
    chosen = chosen[:count]
    reused = len(chosen)
    taken = {p.name for p in candidates}
    missing = count - reused
    names: list[str] = []
    n = 0
    while len(names) < missing:
        name = f"{n:05d}"
        if name not in taken:
            names.append(name)
        n += 1
    done = 0

    async def enroll(name: str) -> Path:
        nonlocal done
        directory = devices / name
        async with gate:
            await admin.enroll(commune, f"mô phỏng {name}", directory)
        done += 1
        if done % 500 == 0 or done == missing:
            progress(done, missing)
        return directory

    chosen.extend(await asyncio.gather(*(enroll(name) for name in names)))
    return chosen, reused


# ---------------------------------------------------------------------------- a child process


@dataclass
class Recorder:
    """What one child's agents saw, by bulletin and device, in wall-clock seconds."""

    arrived: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    played: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    cancelled: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    manifest_answered: dict[str, float] = field(default_factory=dict)
    last_frame_at: dict[str, float] = field(default_factory=dict)
    report_latencies: list[float] = field(default_factory=list)
    report_failures: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (on what the agents report, not by polling) until `predicate()` holds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not predicate():
                    await self._changed.wait()
                return True
        return False

    def frame_seen(self, device_id: str) -> None:
        self.last_frame_at[device_id] = time.time()

    def command_seen(self, device_id: str, command: Command) -> None:
        now = time.time()
        if isinstance(command, EmergencyStart):
            # Arrival is when the frame reached the device, before the agent verified it: the
            # hub's delivery, timed apart from the agents' CPU (that is in API -> playing).
            arrived = self.last_frame_at.get(device_id, now)
            self.arrived[command.bulletin.id].setdefault(device_id, arrived)
        elif isinstance(command, EmergencyCancel):
            self.cancelled[command.bulletin_id].setdefault(device_id, now)
        self.note()

    def reply_seen(self, device_id: str, method: str, path: str, status: int, took: float) -> None:
        if path == REPORTS_PATH:
            if status < 300:
                self.report_latencies.append(took)
            else:
                self.report_failures += 1
        elif path == MANIFEST_PATH:
            self.manifest_answered[device_id] = time.time()
            self.note()


async def loop_settled(for_s: float, timeout: float, *, tick_s: float = 0.01) -> bool:
    """True once this process's event loop has woken every short sleep on time (within
    QUIET_LAG_S) for `for_s` in a row; False if it has not by `timeout`. Whatever the agents
    still do (downloads, hashing, first reports) shows as late wake-ups, whoever does it;
    with 10 ms sleeps, any hold of the loop past 35 ms does."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    calm_since = loop.time()
    while True:
        asked = loop.time()
        await asyncio.sleep(tick_s)
        woke = loop.time()
        if woke - asked - tick_s > QUIET_LAG_S:
            calm_since = woke
        elif woke - calm_since >= for_s:
            return True
        if woke >= give_up:
            return False


class EmergencyWindows:
    """`LOA_SIM_PROFILE=DIR`: where a child spends its CPU on the emergency path only, from
    the first of its agents verifying an emergency's start to the last of them playing it
    (summed over the emergencies): a cProfile (`child-PID.prof`) and the process's CPU
    seconds (all threads) per device and emergency and the garbage collector's pauses in
    the windows, by generation (`child-PID.json`). Start-up, health and the manifest fetches
    between the emergencies are left out, and so is the first window: the fleet's warm-up
    emergency, while agents still fetch their first manifest and media."""

    def __init__(self, directory: Path) -> None:
        import cProfile

        self.directory = directory
        self.profiler = cProfile.Profile()
        self._open: set[str] = set()
        self._warming_up = True
        self._cpu_at = 0.0
        self.cpu_s = 0.0
        self.windows = 0
        self._gc_at = 0.0
        #: Per generation: collections and seconds spent in them inside the windows.
        self.gc = {generation: [0, 0.0, 0] for generation in range(3)}
        gc.callbacks.append(self._collecting)

    def _collecting(self, phase: str, info: dict[str, int]) -> None:
        if not self._open or self._warming_up:
            return
        if phase == "start":
            self._gc_at = time.perf_counter()
        else:
            counted = self.gc[info["generation"]]
            counted[0] += 1
            counted[1] += time.perf_counter() - self._gc_at
            counted[2] += info["collected"]

    def started(self, bulletin_id: str) -> None:
        if bulletin_id in self._open:
            return
        if not self._open and not self._warming_up:
            self._cpu_at = time.process_time()
            self.profiler.enable()
        self._open.add(bulletin_id)

    def all_played(self, bulletin_id: str) -> None:
        if bulletin_id not in self._open:
            return
        self._open.discard(bulletin_id)
        if self._warming_up:
            self._warming_up = bool(self._open)
            return
        self.windows += 1
        if not self._open:
            self.profiler.disable()
            self.cpu_s += time.process_time() - self._cpu_at

    def dump(self, devices: int) -> None:
        pid = os.getpid()
        self.profiler.dump_stats(self.directory / f"child-{pid}.prof")
        per_device = 1000.0 * self.cpu_s / max(1, self.windows) / max(1, devices)
        gcs = self.gc.items()
        figures: dict[str, Any] = {
            "devices": devices,
            "emergencies": self.windows,
            "cpu_s": self.cpu_s,
            "cpu_ms_per_device_and_emergency": round(per_device, 3),
            "gc": {
                f"gen{g}": {"collections": n, "s": round(t, 3), "collected": c}
                for g, (n, t, c) in gcs
            },
            "gc_tracked_objects": len(gc.get_objects()),
        }
        (self.directory / f"child-{pid}.json").write_text(json.dumps(figures))


class ChildFleet:
    """The agents of one child process, sharing one HTTP connection pool."""

    def __init__(
        self,
        directories: list[Path],
        settings: dict[str, Any],
        windows: EmergencyWindows | None = None,
    ) -> None:
        self.directories = directories
        self.settings = settings
        self.windows = windows
        self.recorder = Recorder()
        self.agents: list[Any] = []
        self.session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # Imported here: the parent never runs an agent and need not load the whole core.
        from .agent import Agent, AgentConfig
        from .parts import LoopQuiet
        from .players.null import NullPlayer
        from .profile import load_profile

        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, timeout_ceil_threshold=EXACT_TIMERS)
        )
        # One watcher of this process's loop for all its agents (see LoopQuiet).
        quiet = LoopQuiet()
        profiles: dict[str, Any] = {}
        recorder = self.recorder
        for directory in self.directories:
            identity = Identity.load(directory)
            if identity.profile not in profiles:
                profiles[identity.profile] = load_profile(identity.profile)
            jitter = self.settings.get("manifest_jitter_s")
            config = AgentConfig(
                data_dir=directory,
                http_port=None,
                health_interval_s=self.settings["interval"],
                **({} if jitter is None else {"emergency_manifest_jitter_s": jitter}),
            )
            agent = Agent(
                config,
                identity,
                profiles[identity.profile],
                NullPlayer(default_duration_s=ALARM_SECONDS),
                session=self.session,
                quiet=quiet,
            )
            device_id = identity.device_id
            agent.on_command = lambda c, d=device_id: self._command_seen(d, c)
            agent.on_frame = lambda d=device_id: recorder.frame_seen(d)
            agent.client.on_reply = lambda m, p, s, took, d=device_id: recorder.reply_seen(
                d, m, p, s, took
            )
            agent.on_play_started = lambda item, d=device_id: self._play_started(d, item)
            self.agents.append(agent)
        stagger = float(self.settings.get("stagger_s", 0.0))

        async def start_one(i: int, agent: Any) -> None:
            if stagger > 0:
                # Real devices boot at scattered times: their health reports do not align.
                await asyncio.sleep(stagger * i / len(self.agents))
            await agent.start()

        await asyncio.gather(*(start_one(i, a) for i, a in enumerate(self.agents)))

    def _command_seen(self, device_id: str, command: Command) -> None:
        self.recorder.command_seen(device_id, command)
        if self.windows is not None and isinstance(command, EmergencyStart):
            self.windows.started(command.bulletin.id)

    def _play_started(self, device_id: str, item: Any) -> None:
        # Timed as the player starts, not when a watching task next gets its turn: among
        # thousands of agents in one loop that turn came up to a whole round of them later.
        if item.priority is Priority.EMERGENCY:
            played = self.recorder.played[item.bulletin_id]
            played.setdefault(device_id, time.time())
            self.recorder.note()
            if self.windows is not None and len(played) == len(self.agents):
                self.windows.all_played(item.bulletin_id)

    async def stop(self) -> None:
        await asyncio.gather(*(a.stop() for a in self.agents), return_exceptions=True)
        if self.session is not None:
            await self.session.close()

    async def connected(self, timeout: float) -> dict[str, Any]:
        results = await asyncio.gather(
            *(self._wait(a, a.status_connected, timeout) for a in self.agents)
        )
        return {"connected": sum(results), "at": time.time()}

    @staticmethod
    async def _wait(agent: Any, predicate: Callable[[], bool], timeout: float) -> bool:
        try:
            await agent.wait_until(predicate, timeout)
        except TimeoutError:
            return False
        return True

    def _ids(self) -> list[str]:
        return [a.identity.device_id for a in self.agents]

    async def played(self, bulletin_id: str, timeout: float) -> dict[str, Any]:
        ids = self._ids()
        played = self.recorder.played[bulletin_id]
        # Counted, not checked device by device: this runs at every play the fleet notes.
        await self.recorder.until(lambda: len(played) >= len(ids), timeout)
        arrived = self.recorder.arrived[bulletin_id]
        return {
            "played": [played[d] for d in ids if d in played],
            "arrived": [arrived[d] for d in ids if d in arrived],
            "missing": sum(1 for d in ids if d not in played),
        }

    async def idle(self, bulletin_id: str, timeout: float) -> dict[str, Any]:
        """Every agent has the cancel and plays nothing; and, within SETTLE_S more, has
        fetched its manifest since, so the next emergency is timed on a quiet fleet. A device
        that never got the cancel counts as `not_cancelled`; one whose manifest fetch did not
        come back in time only as `unsettled` (the fetch is jittered and may be retried)."""
        cancelled = self.recorder.cancelled[bulletin_id]
        answered = self.recorder.manifest_answered

        async def one(agent: Any) -> str:
            d = agent.identity.device_id
            if not await self.recorder.until(lambda: d in cancelled, timeout):
                return "not_cancelled"
            if not await self._wait(agent, lambda: agent.now_playing() is None, timeout):
                return "not_cancelled"
            settled = await self.recorder.until(
                lambda: answered.get(d, 0.0) > cancelled[d],
                SETTLE_S + agent.config.emergency_manifest_jitter_s,
            )
            return "idle" if settled else "unsettled"

        results = await asyncio.gather(*(one(a) for a in self.agents))
        # A fleet enrolled just now is still fetching and hashing its media and sending its
        # first reports when its manifests are in: at 5,000 fresh devices the first timed
        # emergency found its process busy for 25 s more, and was timed on that.
        started = time.monotonic()
        quiet = await loop_settled(QUIET_FOR_S, timeout)
        return {
            "not_cancelled": results.count("not_cancelled"),
            "unsettled": results.count("unsettled"),
            "quiet_after_s": round(time.monotonic() - started, 1) if quiet else None,
        }

    def health(self, reset: bool) -> dict[str, Any]:
        out = {
            "latencies": self.recorder.report_latencies,
            "failures": self.recorder.report_failures,
        }
        if reset:
            self.recorder.report_latencies = []
            self.recorder.report_failures = 0
        return out

    async def away_from(self, url: str, timeout: float) -> dict[str, Any]:
        """Wait until every agent is connected to a hub node other than `url` (a node that
        was killed): when each got there, and how many did not in time."""
        gone = url.rstrip("/")

        def elsewhere(agent: Any) -> Callable[[], bool]:
            return lambda: agent.status_connected() and agent.client.base_url.rstrip("/") != gone

        results = await asyncio.gather(*(self._wait(a, elsewhere(a), timeout) for a in self.agents))
        return {"moved": sum(results), "missing": results.count(False), "at": time.time()}

    async def outage(self, timeout: float) -> dict[str, Any]:
        """Wait for every agent to lose its push channel and get it back."""

        async def one(agent: Any) -> tuple[float, float] | None:
            if not await self._wait(agent, lambda: not agent.status_connected(), timeout):
                return None
            lost = time.time()
            if not await self._wait(agent, agent.status_connected, timeout):
                return None
            return lost, time.time()

        results = await asyncio.gather(*(one(a) for a in self.agents))
        done = [r for r in results if r is not None]
        return {
            "lost": [r[0] for r in done],
            "back": [r[1] for r in done],
            "missing": len(results) - len(done),
        }


def _raise_file_limit() -> None:
    # One socket (and a SQLite file) per simulated device: the default 1,024 is far too few.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1 << 20), hard))


def _reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def _child(reader: asyncio.StreamReader, windows: EmergencyWindows | None) -> int:
    first = json.loads(await reader.readline())
    # Thousands of agents' SQLite threads in one process, where a device has one: the loop's
    # thread, back from each socket read or stat(), waited for the GIL behind them up to
    # CPython's switch interval (5 ms) each time. A shorter one hands it back sooner.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    fleet = ChildFleet([Path(p) for p in first["directories"]], first, windows)
    await fleet.start()
    # Hundreds of agents' objects in one heap: the collector's full pass over them stopped
    # every agent of the process at once for 0.3-0.4 s, in the middle of an emergency (a
    # device's own heap is one agent's). What the fleet holds once started is set aside
    # from collection; what the agents make from now on is collected as usual.
    gc.collect()
    gc.freeze()
    _reply(await fleet.connected(first["timeout"]))
    try:
        while line := await reader.readline():
            order = json.loads(line)
            what = order["cmd"]
            timeout = float(order.get("timeout", 300.0))
            if what == "played":
                _reply(await fleet.played(order["id"], timeout))
            elif what == "idle":
                settled = await fleet.idle(order["id"], timeout)
                # The same again for what the fleet made since (first manifests, media,
                # sockets): a quiet fleet's heap, set aside before the next emergency.
                gc.collect()
                gc.freeze()
                # And no collection during the emergency: each pass walked what 2,500
                # agents had made since (a third of the process's CPU in the window, at
                # 2,500 per process, and none of it found garbage), where a device's own
                # collector walks one agent's. The fleet's garbage is collected here, at
                # each quiet point between emergencies.
                gc.disable()
                _reply(settled)
            elif what == "health":
                _reply(fleet.health(bool(order.get("reset"))))
            elif what == "outage":
                _reply(await fleet.outage(timeout))
            elif what == "connected":
                _reply(await fleet.connected(timeout))
            elif what == "away_from":
                _reply(await fleet.away_from(order["url"], timeout))
            elif what == "stop":
                break
            else:
                _reply({"error": f"unknown order {what!r}"})
    finally:
        await fleet.stop()
        if windows is not None:
            windows.dump(len(fleet.agents))
    _reply({"stopped": True})
    return 0


def child_main() -> int:
    """A child process: its agents in one event loop, orders on stdin, answers on stdout."""
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr)
    _raise_file_limit()

    profile_dir = os.environ.get("LOA_SIM_PROFILE")
    windows = EmergencyWindows(Path(profile_dir)) if profile_dir else None

    async def main() -> int:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 24)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        return await _child(reader, windows)

    return asyncio.run(main())


# ---------------------------------------------------------------------------- the parent


class Child:
    """One child process and its pipe; orders are answered one at a time, in order."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._lock = asyncio.Lock()

    @classmethod
    async def spawn(cls, directories: list[Path], settings: dict[str, Any]) -> Child:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "edge_agent.simulate",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
        )
        child = cls(process)
        await child._send({**settings, "directories": [str(d) for d in directories]})
        return child

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()

    async def _receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise SimulationFailed("sim_child_died", code=await self.process.wait())
        return dict(json.loads(line))

    async def ready(self) -> dict[str, Any]:
        async with self._lock:
            return await self._receive()

    async def ask(self, order: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            await self._send(order)
            return await self._receive()

    async def close(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ConnectionError, SimulationFailed, ValueError):
                await asyncio.wait_for(self.ask({"cmd": "stop"}), 30)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


class Fleet:
    """The children and what they answer, merged."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children

    @classmethod
    async def start(
        cls, directories: list[Path], procs: int, settings: dict[str, Any]
    ) -> tuple[Fleet, int]:
        """Start the agents; returns the fleet and how many agents connected to the hub."""
        children: list[Child] = []
        fleet = cls(children)
        try:
            for share in shares(len(directories), procs):
                children.append(await Child.spawn([directories[i] for i in share], settings))
            ready = await asyncio.gather(*(c.ready() for c in children))
        except BaseException:
            await fleet.close()
            raise
        return fleet, sum(int(r["connected"]) for r in ready)

    async def ask(self, order: dict[str, Any]) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(c.ask(order) for c in self.children)))

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.children), return_exceptions=True)


def _merged(replies: list[dict[str, Any]], key: str) -> list[float]:
    return [value for reply in replies for value in reply[key]]


async def run_emergency(
    admin: HubAdmin, fleet: Fleet, args: argparse.Namespace, alarm: str, say: Callable[[str], None]
) -> dict[str, Any]:
    to_playing: list[float] = []
    to_arrival: list[float] = []
    answers: list[float] = []
    missing = cancel_missed = unsettled = busy = 0
    # Round 0 warms up (alarm cached everywhere, connections open) and is not timed.
    for n in range(args.emergencies + 1):
        title = f"Báo động mô phỏng {n}" if n else "Báo động mô phỏng (khởi động)"
        fired = time.time()
        bulletin = await admin.fire(args.commune, alarm, title)
        answered = time.time() - fired
        replies = await fleet.ask({"cmd": "played", "id": bulletin, "timeout": args.timeout})
        # An emergency never cuts another: clear it off the air, then let the fleet settle.
        await admin.cancel(bulletin)
        quiet = await fleet.ask({"cmd": "idle", "id": bulletin, "timeout": args.timeout})
        cancel_missed += sum(int(r["not_cancelled"]) for r in quiet)
        round_unsettled = sum(int(r["unsettled"]) for r in quiet)
        unsettled += round_unsettled
        if n < args.emergencies and any(r["quiet_after_s"] is None for r in quiet):
            busy += 1  # the next emergency is timed on a process still busy
        if n == 0:
            warm_missed = sum(int(r["missing"]) for r in replies)
            if warm_missed:
                raise SimulationFailed("sim_warmup_failed", missing=warm_missed)
            continue
        answers.append(answered)
        to_playing += [at - fired for at in _merged(replies, "played")]
        to_arrival += [at - fired for at in _merged(replies, "arrived")]
        missing += sum(int(r["missing"]) for r in replies)
        say(
            t(
                "sim_round",
                args.lang,
                n=n,
                total=args.emergencies,
                p99=ms(percentile(to_playing, 99)) if to_playing else "—",
                idle=round_unsettled,
            )
        )
    if not to_playing:
        raise SimulationFailed("sim_nothing_played")
    return {
        "emergencies": args.emergencies,
        "p50_ms": ms(percentile(to_playing, 50)),
        "p99_ms": ms(percentile(to_playing, 99)),
        "max_ms": ms(max(to_playing)),
        "arrival_p50_ms": ms(percentile(to_arrival, 50)) if to_arrival else None,
        "arrival_p99_ms": ms(percentile(to_arrival, 99)) if to_arrival else None,
        "api_p50_ms": ms(percentile(answers, 50)),
        "cancel_missed": cancel_missed,
        "unsettled": unsettled,
        "busy_starts": busy,
        "api_max_ms": ms(max(answers)),
        "missed": missing,
    }


async def _sample_until(
    admin: HubAdmin, done: asyncio.Future[Any] | None, every_s: float, until: float | None
) -> list[tuple[float, dict[str, Any] | None]]:
    """Hub figures every `every_s` until `done` completes or the clock passes `until`."""
    samples: list[tuple[float, dict[str, Any] | None]] = []
    while True:
        samples.append((time.time(), await admin.process_or_none()))
        if done is not None and done.done():
            return samples
        if until is not None and time.time() >= until:
            return samples
        if done is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), every_s)
        else:
            await asyncio.sleep(min(every_s, max(0.0, until - time.time())) if until else every_s)


async def run_health(
    admin: HubAdmin, fleet: Fleet, args: argparse.Namespace, before: dict[str, Any]
) -> dict[str, Any]:
    duration = args.duration if args.duration is not None else 3 * args.interval
    await fleet.ask({"cmd": "health", "reset": True})
    first = await admin.process()
    samples = await _sample_until(
        admin, None, min(10.0, max(1.0, args.interval / 6)), time.time() + duration
    )
    last = await admin.process()
    replies = await fleet.ask({"cmd": "health", "reset": True})
    latencies = _merged(replies, "latencies")
    connected = last["connected_devices"] - before["connected_devices"]
    cpu = cpu_percent(first, last)
    if cpu is None:
        raise SimulationFailed("sim_hub_restarted")
    per_device = (last["rss_bytes"] - before["rss_bytes"]) / connected if connected > 0 else None
    return {
        "interval_s": args.interval,
        "duration_s": round(last["at"] - first["at"], 1),
        "connected": last["connected_devices"],
        "connected_before": before["connected_devices"],
        "hub_cpu_percent": round(cpu, 1),
        "hub_cpu_peak_percent": _round(peak_cpu([s for _, s in samples if s is not None])),
        "hub_rss_bytes": last["rss_bytes"],
        "hub_rss_before_bytes": before["rss_bytes"],
        "hub_rss_per_device_bytes": round(per_device) if per_device is not None else None,
        "health_reports": len(latencies),
        "health_failures": sum(int(r["failures"]) for r in replies),
        "health_p50_ms": ms(percentile(latencies, 50)) if latencies else None,
        "health_p99_ms": ms(percentile(latencies, 99)) if latencies else None,
    }


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


async def run_outage(
    admin: HubAdmin, fleet: Fleet, args: argparse.Namespace, say: Callable[[str], None]
) -> dict[str, Any]:
    watch = asyncio.ensure_future(fleet.ask({"cmd": "outage", "timeout": args.timeout}))
    monitor = asyncio.ensure_future(_sample_until(admin, watch, 0.5, None))
    if args.restart_cmd:
        say(t("sim_restarting", args.lang, cmd=args.restart_cmd))
        process = await asyncio.create_subprocess_shell(args.restart_cmd)
        code = await process.wait()
        if code != 0:
            watch.cancel()
            monitor.cancel()
            raise SimulationFailed("sim_restart_failed", cmd=args.restart_cmd, code=code)
    else:
        say(t("sim_waiting_restart", args.lang))
    replies = await watch
    samples = await monitor
    lost = _merged(replies, "lost")
    back = _merged(replies, "back")
    missing = sum(int(r["missing"]) for r in replies)
    if not back:
        raise SimulationFailed("sim_no_outage")
    down_at = min(lost)
    up = [(at, s) for at, s in samples if s is not None and at > down_at]
    up_at = up[0][0] if up else None
    peak = peak_cpu([s for _, s in up])
    return {
        "reconnected": len(back),
        "missed": missing,
        "all_back_after_hub_up_s": round(max(back) - up_at, 2) if up_at else None,
        "all_back_after_loss_s": round(max(back) - down_at, 2),
        "back_p50_after_loss_s": round(percentile([b - down_at for b in back], 50), 2),
        "hub_cpu_peak_percent": _round(peak),
    }


# ---------------------------------------------------------------------------- what it prints


def _n(value: Any) -> str:
    return "—" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def format_summary(result: dict[str, Any], lang: str) -> str:
    """The sizing summary a province reads (Vietnamese unless lang is "en")."""
    lines = [
        t(
            "sim_head",
            lang,
            devices=result["devices"],
            procs=result["procs"],
            hub=result["hub"],
            commune=result["commune"],
            reused=result["reused"],
        )
    ]
    if result.get("never_connected"):
        devices = result["devices"]
        connected = devices - result["never_connected"]
        lines.append(t("sim_partly_connected", lang, connected=connected, devices=devices))
    scenario = result["scenario"]
    if scenario == "emergency":
        lines.append(t("sim_emergency", lang, **{k: _n(v) for k, v in result.items()}))
        if result["missed"]:
            lines.append(t("sim_missed", lang, missed=result["missed"]))
        if result["cancel_missed"]:
            lines.append(t("sim_cancel_missed", lang, cancel_missed=result["cancel_missed"]))
        if result["busy_starts"]:
            lines.append(t("sim_busy_starts", lang, busy=result["busy_starts"]))
    elif scenario == "health":
        values = {k: _n(v) for k, v in result.items()}
        per_device = result["hub_rss_per_device_bytes"]
        values["kb"] = _n(round(per_device / 1024, 1)) if per_device is not None else "—"
        values["mb"] = _n(round(result["hub_rss_bytes"] / 2**20, 1))
        lines.append(t("sim_health", lang, **values))
        if result["connected"] > 0 and per_device is not None:
            # CPU grows with devices and with how often they report; memory with devices.
            scale = 10_000 / result["connected"] * result["interval_s"] / 60.0
            lines.append(
                t(
                    "sim_health_10k",
                    lang,
                    cpu=_n(round(result["hub_cpu_percent"] * scale, 1)),
                    mb=_n(round((result["hub_rss_before_bytes"] + per_device * 10_000) / 2**20)),
                )
            )
    else:
        lines.append(t("sim_outage", lang, **{k: _n(v) for k, v in result.items()}))
        if result["missed"]:
            lines.append(t("sim_missed_outage", lang, missed=result["missed"]))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- the command


async def simulate(
    args: argparse.Namespace, password: str, say: Callable[[str], None]
) -> dict[str, Any]:
    root: Path = args.data
    state = load_state(root)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        admin = HubAdmin(args.hub, args.user, password, session, args.timeout)
        await admin.login()
        await admin.ensure_commune(args.commune)
        alarm = (
            await admin.ensure_alarm(args.commune, state) if args.scenario == "emergency" else ""
        )
        save_state(root, state)
        directories, reused = await prepare_fleet(
            admin,
            root,
            args.devices,
            args.commune,
            lambda done, total: say(t("sim_enrolling", args.lang, done=done, total=total)),
        )
        before = await admin.process()
        settings = {
            "interval": args.interval,
            "timeout": args.timeout,
            "stagger_s": ramp_seconds(args),
            "manifest_jitter_s": args.manifest_jitter,
        }
        say(t("sim_starting", args.lang, devices=args.devices, procs=args.procs))
        started = time.time()
        fleet, connected = await Fleet.start(directories, args.procs, settings)
        try:
            if connected < args.devices:
                # An emergency timed on part of the fleet would flatter the hub; health and
                # outage figures are per connected device, and how many never connected is
                # itself the finding.
                if args.scenario == "emergency" or connected == 0:
                    raise SimulationFailed(
                        "sim_not_connected", connected=connected, devices=args.devices
                    )
                say(t("sim_partly_connected", args.lang, connected=connected, devices=args.devices))
            say(
                t(
                    "sim_connected",
                    args.lang,
                    devices=connected,
                    seconds=round(time.time() - started, 1),
                )
            )
            if args.scenario == "emergency":
                figures = await run_emergency(admin, fleet, args, alarm, say)
            elif args.scenario == "health":
                figures = await run_health(admin, fleet, args, before)
            else:
                figures = await run_outage(admin, fleet, args, say)
        finally:
            await fleet.close()
    return {
        "scenario": args.scenario,
        "never_connected": args.devices - connected,
        "hub": admin.url,
        "commune": args.commune,
        "devices": args.devices,
        "procs": min(args.procs, args.devices),
        "reused": reused,
        **figures,
    }


def run(args: argparse.Namespace) -> int:
    """`edge-agent simulate`: 0 when every device did what the scenario asked, 1 when some did
    not, 2 for bad arguments, 3 when the hub cannot be used."""
    lang = args.lang
    bad = check_options(args)
    if bad is not None:
        print(t(bad[0], lang, **bad[1]), file=sys.stderr)
        return 2
    # Never on the command line: it would sit in the shell history and in `ps`.
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print(t("sim_no_password", lang), file=sys.stderr)
        return 2
    _raise_file_limit()
    args.data = args.data or default_data_dir()
    args.data.mkdir(parents=True, exist_ok=True)

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        result = asyncio.run(simulate(args, password, say))
    except SimulationFailed as exc:
        print(t(exc.key, lang, **exc.values), file=sys.stderr)
        return 3 if exc.key in ("hub_unreachable", "sim_login_failed", "sim_api_failed") else 1
    except KeyboardInterrupt:
        return 130
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(format_summary(result, lang))
    failed = result["never_connected"] or result.get("missed") or result.get("cancel_missed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(child_main())
