"""What the fleet benches share: a real `hub serve` process, `edge-agent simulate` as an
operator runs it, and the bare-aiohttp floor (a WebSocket server and its clients, each in its
own process, as the hub and the simulated devices are)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
ADMIN, PASSWORD = "dodac", "Bench-Fleet-2026!"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
FRAME_BYTES = 1024


def raise_file_limit() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1 << 20), hard))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    from edge_agent.simulate import percentile as nearest_rank

    return nearest_rank(values, q)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class HubServer:
    """`hub serve` in its own process on a port that stays the same across restarts, so a
    hub killed with SIGKILL comes back, on the same data, where its devices look for it."""

    def __init__(self, data: Path, *, log: Path | None = None, args: tuple[str, ...] = ()) -> None:
        """`args` go to its `hub serve` (e.g. --database URL --public-url URL)."""
        self.data = data
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def add_admin(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "hub.cli", "user", "add", ADMIN, "--role", "admin",
             "--password-stdin", "--data", str(self.data)],
            input=PASSWORD.encode(), check=True, stdout=subprocess.DEVNULL, env=ENV,
        )  # fmt: skip

    async def start(self, timeout_s: float = 30.0) -> float:
        """Start it and wait until /healthz answers 200; returns the seconds that took."""
        started = time.monotonic()
        out = self.log.open("ab") if self.log is not None else None
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "hub.cli", "serve", "--data", str(self.data), "--host",
                 "127.0.0.1", "--port", str(self.port), "--log-level", "warning", *self.args],
                env=ENV, stdout=out, stderr=out,
            )  # fmt: skip
        finally:
            if out is not None:
                out.close()
        async with aiohttp.ClientSession() as session:
            while time.monotonic() - started < timeout_s:
                if self.process.poll() is not None:
                    raise SystemExit(f"the hub exited ({self.process.returncode}) at start")
                try:
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return time.monotonic() - started
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise SystemExit(f"the hub did not answer /healthz within {timeout_s:.0f} s")

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as a power cut would leave it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@asynccontextmanager
async def hub_process(tmp: Path) -> AsyncIterator[str]:
    """`hub serve` in its own process, with an admin account; yields its URL."""
    hub = HubServer(tmp / "hub")
    hub.add_admin()
    try:
        await hub.start()
        yield hub.url
    finally:
        hub.stop()


async def simulate(url: str, data: Path, *args: str) -> dict[str, Any]:
    """`edge-agent simulate ... --json` in its own process; its progress goes to our stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "edge_agent.cli", "--lang", "en", "simulate", "--hub", url,
        "--user", ADMIN, "--password-stdin", "--data", str(data), "--json", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=ENV,
    )  # fmt: skip
    out, _ = await process.communicate(f"{PASSWORD}\n".encode())
    if not out.strip():
        raise SystemExit(f"edge-agent simulate failed (exit {process.returncode})")
    return dict(json.loads(out))


# ---------------------------------------------------------------------------- the floor


async def _serve_floor() -> None:
    """The floor's server: accepts WebSockets; on stdin "round R" broadcasts one 1 KB text
    frame stamped with its send time, the bare aiohttp way; "stats" prints RSS and count."""
    clients: set[web.WebSocketResponse] = set()

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20.0)
        await ws.prepare(request)
        clients.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            clients.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        if line[0] == "round":
            sent = time.time()
            frame = f"{int(line[1]):06d} {sent:.6f} ".ljust(FRAME_BYTES, "x")
            for ws in list(clients):
                await ws.send_str(frame)
            print(json.dumps({"sent": sent}), flush=True)
        elif line[0] == "stats":
            print(json.dumps({"rss": rss_bytes(os.getpid()), "clients": len(clients)}), flush=True)
    await runner.cleanup()


async def _floor_clients(url: str, count: int) -> None:
    """`count` WebSocket clients of the floor server; after each round, one line: the
    latencies (receive - send, seconds) of every client."""
    raise_file_limit()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    arrivals: dict[int, list[float]] = {}
    done = asyncio.Event()

    async def client() -> None:
        async with session.ws_connect(url, heartbeat=20.0) as ws:
            ready.append(1)
            if len(ready) == count:
                print(json.dumps({"ready": count}), flush=True)
            async for message in ws:
                now = time.time()
                text = message.data
                got = arrivals.setdefault(int(text[:6]), [])
                got.append(now - float(text[7:24]))
                if len(got) == count:
                    print(json.dumps({"round": int(text[:6]), "latencies": got}), flush=True)
                if done.is_set():
                    break

    ready: list[int] = []
    tasks = [asyncio.create_task(client()) for _ in range(count)]
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.readline()  # any line, or EOF: stop
    done.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()


async def _device_clients(url: str, listing: str) -> None:
    """The floor's clients, but each an enrolled device on the hub's push socket (the
    identities in the folders listed in `listing`): they stamp a frame as it arrives and
    only then look inside, so the hub's delivery is timed as the floor's is, with the same
    client code, not with the agents' CPU. Lines on stdin: "report BID" answers the
    arrival times of bulletin BID's emergency_start once every client has it (or 30 s);
    "report cancel:BID" those of its emergency_cancel."""
    raise_file_limit()
    folders = [Path(line) for line in Path(listing).read_text().split()]
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    arrivals: dict[str, list[float]] = {}
    #: Frames stamped and not yet looked inside: decoded when asked, as the floor's clients
    #: do no more than stamp a frame while the broadcast is on.
    unread: list[tuple[float, str]] = []
    #: How many unread frames the report waits for: the stamping clients wake it only then,
    #: not at every frame (the report is asked as soon as the API answers, which it does
    #: before the hub's fan-out; a wake-up per frame would slow the stamps being timed).
    wanted = math.inf
    changed = asyncio.Event()
    ready: list[int] = []

    def look_inside() -> None:
        frames = unread[:]
        unread.clear()
        for at, data in frames:
            payload = base64.b64decode(json.loads(data)["payload"])
            command = json.loads(payload)["command"]
            if command["type"] == "emergency_start":
                arrivals.setdefault(command["bulletin"]["id"], []).append(at)
            elif command["type"] == "emergency_cancel":
                arrivals.setdefault(f"cancel:{command['bulletin_id']}", []).append(at)

    async def client(folder: Path) -> None:
        identity = json.loads((folder / "identity.json").read_text())
        auth = f"Device {identity['device_id']}:{identity['device_secret']}"
        async with session.ws_connect(
            url, headers={"Authorization": auth}, heartbeat=20.0, compress=0
        ) as ws:
            ready.append(1)
            if len(ready) == len(folders):
                print(json.dumps({"ready": len(folders)}), flush=True)
            async for message in ws:
                unread.append((time.time(), message.data))
                if len(unread) >= wanted:
                    changed.set()

    tasks = [asyncio.create_task(client(folder)) for folder in folders]
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).decode().split():
        bulletin = line[1]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(30):
                while True:
                    # Counted, not decoded, while frames come in: looking inside one delays
                    # the stamps of the frames behind it.
                    changed.clear()
                    wanted = len(folders) - len(arrivals.get(bulletin, []))
                    if wanted <= 0:
                        break
                    if len(unread) >= wanted:
                        look_inside()  # other frames may be among them: count again
                        continue
                    await changed.wait()
        wanted = math.inf
        look_inside()
        print(json.dumps({"at": arrivals.get(bulletin, [])}), flush=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()


#: How often a device asks for an update (AgentConfig.update_check_s).
UPDATE_EVERY_S = 300.0


def health_sample(seq: int, boot: float) -> Any:
    """A health report as a speaker's agent sends it: the same fields, plausible values."""
    from loa_contract import HealthSample, utcnow

    return HealthSample(
        seq=seq,
        at=utcnow(),
        cpu_percent=7.5,
        memory_used_bytes=212 * 2**20,
        memory_total_bytes=926 * 2**20,
        filesystem_avail_bytes=21 * 2**30,
        filesystem_size_bytes=29 * 2**30,
        temperature_celsius=48.3,
        boot_time_seconds=boot,
        network_receive_bytes_total=9_876_543,
        network_transmit_bytes_total=1_234_567,
        player_state="idle",
        volume=80,
        manifest_version=1,
        cache_bytes=48 * 2**20,
        cache_objects=12,
        clock_offset_seconds=0.02,
        under_voltage=False,
        under_voltage_since_boot=False,
    )


async def _protocol_devices(url: str, listing: str, interval: float) -> None:
    """Enrolled devices as the hub sees them, without an agent behind each: each holds its
    push socket, sends a health report every `interval` seconds (first at a random point of
    the interval, as devices boot at scattered times) and asks for an update every 300 s,
    with the agent's own wire models. So a province's whole fleet fits on the bench machine
    beside the hub, where a real agent per device does not (see bench/hub_load.py).
    Lines on stdin: "stats" answers the report latencies (seconds) since the last "stats"
    and the failures; the first line out, {"ready": n}, once every socket is open."""
    import random
    import secrets

    from edge_agent.simulate import EXACT_TIMERS
    from loa_contract import ReportBatch
    from loa_contract.releases import UpdateReport

    raise_file_limit()
    folders = [Path(line) for line in Path(listing).read_text().split()]
    # Each device's heartbeat on its own timer, as in the simulator (see EXACT_TIMERS).
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, timeout_ceil_threshold=EXACT_TIMERS)
    )
    base = url.rstrip("/")
    ws_url = base.replace("http", "ws", 1) + "/api/v1/device/ws"
    latencies: list[float] = []
    #: Which "stats" period a report was sent in: one sent before the last "stats" (in the
    #: connection storm, say) is not timed as this period's.
    stats_asked = 0
    failures = 0
    ready: list[int] = []
    update = UpdateReport(running_version="0.1.0").model_dump_json().encode()
    json_type = {"Content-Type": "application/json"}

    async def device(folder: Path) -> None:
        nonlocal failures
        identity = json.loads((folder / "identity.json").read_text())
        auth = {"Authorization": f"Device {identity['device_id']}:{identity['device_secret']}"}
        stream, seq, boot = secrets.token_hex(8), 0, time.time() - 3600

        async def reports() -> None:
            nonlocal failures, seq
            # On the device's own cadence, as the agent samples health, whatever the hub's
            # replies took: a device that waited `interval` after each reply would, after
            # one slow spell, stay in step with every other device it delayed.
            loop = asyncio.get_running_loop()
            due = loop.time() + random.uniform(0, interval)
            while True:
                await asyncio.sleep(due - loop.time())
                due += interval
                seq += 1
                body = ReportBatch(stream=stream, reports=[health_sample(seq, boot)])
                sent = time.monotonic()
                period = stats_asked
                try:
                    async with session.post(
                        f"{base}/api/v1/device/reports",
                        data=body.model_dump_json().encode(),
                        headers={**auth, **json_type},
                    ) as reply:
                        await reply.read()
                        ok = reply.status in (200, 201)
                except (aiohttp.ClientError, OSError):
                    ok = False
                if ok:
                    if period == stats_asked:  # sent since the last "stats": this period's
                        latencies.append(time.monotonic() - sent)
                else:
                    failures += 1

        async def updates() -> None:
            await asyncio.sleep(random.uniform(0, UPDATE_EVERY_S))
            while True:
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with session.post(
                        f"{base}/api/v1/device/update", data=update, headers={**auth, **json_type}
                    ) as reply:
                        await reply.read()
                await asyncio.sleep(UPDATE_EVERY_S)

        async with session.ws_connect(ws_url, headers=auth, heartbeat=20.0, compress=0) as ws:
            ready.append(1)
            if len(ready) == len(folders):
                # Thousands of devices' objects, made once: kept out of the collector's full
                # walks, as the simulator does, so its pauses are not timed as the hub's.
                gc.collect()
                gc.freeze()
                print(json.dumps({"ready": len(folders)}), flush=True)
            talking = [asyncio.create_task(reports()), asyncio.create_task(updates())]
            try:
                async for _ in ws:
                    pass
            finally:
                for task in talking:
                    task.cancel()

    tasks = [asyncio.create_task(device(folder)) for folder in folders]
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while (await reader.readline()).strip():
        taken, latencies = latencies, []
        stats_asked += 1
        print(json.dumps({"latencies": taken, "failures": failures}), flush=True)
        failures = 0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await session.close()


class Floor:
    """A bare aiohttp WebSocket server with `devices` clients spread over `procs` processes."""

    def __init__(self) -> None:
        self.server: asyncio.subprocess.Process | None = None
        self.clients: list[asyncio.subprocess.Process] = []
        self.rounds = 0  # the clients count arrivals by round number: never reused

    async def _line(self, process: asyncio.subprocess.Process) -> dict[str, Any]:
        assert process.stdout is not None
        line = await process.stdout.readline()
        if not line:
            raise SystemExit("a floor process died")
        return dict(json.loads(line))

    async def start(self, devices: int, procs: int) -> None:
        from edge_agent.simulate import shares

        self.server = await spawn("serve")
        assert self.server.stdout is not None
        port = int(await self.server.stdout.readline())
        url = f"http://127.0.0.1:{port}/ws"
        for share in shares(devices, procs) if devices else []:
            self.clients.append(await spawn("clients", url, str(len(share))))
        await asyncio.gather(*(self._line(c) for c in self.clients))

    async def broadcast(self, rounds: int) -> list[float]:
        assert self.server is not None and self.server.stdin is not None
        latencies: list[float] = []
        for _ in range(rounds):
            self.rounds += 1
            self.server.stdin.write(f"round {self.rounds}\n".encode())
            await self.server.stdin.drain()
            await self._line(self.server)
            for reply in await asyncio.gather(*(self._line(c) for c in self.clients)):
                latencies += reply["latencies"]
        return latencies

    async def stats(self) -> dict[str, Any]:
        assert self.server is not None and self.server.stdin is not None
        self.server.stdin.write(b"stats\n")
        await self.server.stdin.drain()
        return await self._line(self.server)

    async def close(self) -> None:
        for process in [*self.clients, self.server]:
            if process is not None and process.stdin is not None:
                process.stdin.close()
        for process in [*self.clients, self.server]:
            if process is not None:
                try:
                    await asyncio.wait_for(process.wait(), 30)
                except TimeoutError:
                    process.kill()


async def spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).resolve()), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=ENV, limit=1 << 24,
    )  # fmt: skip


@asynccontextmanager
async def floor(devices: int, procs: int) -> AsyncIterator[Floor]:
    running = Floor()
    try:
        await running.start(devices, procs)
        yield running
    finally:
        await running.close()


def temp_dirs() -> tuple[tempfile.TemporaryDirectory[str], tempfile.TemporaryDirectory[str]]:
    """The hub's data on disk; the simulated devices' state on tmpfs where there is one."""
    shm = Path("/dev/shm")
    return (
        tempfile.TemporaryDirectory(),
        tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None),
    )


@dataclass
class PushArrivals:
    """What `push_arrivals` measured, in seconds."""

    #: API call -> emergency_start received, every device of every emergency (inf: never).
    latencies: list[float]
    #: Each emergency's API answer, the hub delivering nothing else meanwhile.
    answers: list[float]
    #: The answer to an emergency fired as soon as the previous one's cancel was answered,
    #: while the hub writes that cancel to the fleet.
    answer_during_fan_out: float


async def push_arrivals(
    url: str, devices_dir: Path, procs: int, emergencies: int, commune: str
) -> PushArrivals:
    """API call -> emergency_start received on every device of `devices_dir`, over `procs`
    processes of the floor's kind of client, for `emergencies` emergencies, each fired once
    the last one's cancel has reached every device; and how long each API call took to
    answer, with that fleet connected. Then one more, fired during a cancel's fan-out."""
    from edge_agent.simulate import shares

    folders = sorted(str(p.parent) for p in devices_dir.glob("**/identity.json"))
    clients: list[asyncio.subprocess.Process] = []
    latencies: list[float] = []
    answers: list[float] = []
    try:
        for share in shares(len(folders), procs):
            listing = devices_dir / f"listing-{len(clients)}.txt"
            listing.write_text("\n".join(folders[i] for i in share) + "\n")
            ws_url = url.replace("http", "ws", 1) + "/api/v1/device/ws"
            clients.append(await spawn("devices", ws_url, str(listing)))
        for process in clients:
            assert process.stdout is not None
            await process.stdout.readline()  # {"ready": n}
        async with aiohttp.ClientSession() as http:
            async with http.post(
                f"{url}/api/v1/auth/login", json={"username": ADMIN, "password": PASSWORD}
            ) as r:
                auth = {"Authorization": f"Bearer {(await r.json())['token']}"}

            async def fire(n: int) -> tuple[str, float, float]:
                sent = time.time()
                async with http.post(
                    f"{url}/api/v1/emergencies",
                    headers=auth,
                    json={
                        "title": f"Thử báo động {n}",
                        "text": "Đây là bản tin thử nghiệm hệ thống cảnh báo.",
                        "targets": {"communes": [commune]},
                        "repeats": 1,
                    },
                ) as r:
                    return (await r.json())["id"], sent, time.time() - sent

            async def arrivals(key: str) -> list[float]:
                got: list[float] = []
                for process in clients:
                    assert process.stdin is not None and process.stdout is not None
                    process.stdin.write(f"report {key}\n".encode())
                    await process.stdin.drain()
                    got += json.loads(await process.stdout.readline())["at"]
                return got

            async def cancel(bulletin: str) -> None:
                async with http.post(
                    f"{url}/api/v1/emergencies/{bulletin}/cancel", headers=auth
                ) as r:
                    assert r.status == 200, await r.text()

            for n in range(emergencies + 1):  # the first is a warm-up
                bulletin, sent, answered = await fire(n)
                got = await arrivals(bulletin)
                if n > 0:
                    answers.append(answered)
                    latencies += [at - sent for at in got]
                    latencies += [float("inf")] * (len(folders) - len(got))  # never arrived
                await cancel(bulletin)
                if n < emergencies:
                    await arrivals(f"cancel:{bulletin}")
            bulletin, _, during_fan_out = await fire(emergencies + 1)
            await arrivals(bulletin)
            await cancel(bulletin)
            await arrivals(f"cancel:{bulletin}")
    finally:
        await end(clients)
    return PushArrivals(latencies, answers, during_fan_out)


async def end(processes: list[asyncio.subprocess.Process]) -> None:
    """Close the client processes' stdin (their signal to stop) and wait for them."""
    for process in processes:
        if process.stdin is not None:
            process.stdin.close()
    for process in processes:
        await process.wait()


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.setswitchinterval(0.0005)
    if sys.argv[1] == "serve":
        asyncio.run(_serve_floor())
    elif sys.argv[1] == "devices":
        asyncio.run(_device_clients(sys.argv[2], sys.argv[3]))
    elif sys.argv[1] == "protocol":
        asyncio.run(_protocol_devices(sys.argv[2], sys.argv[3], float(sys.argv[4])))
    else:
        asyncio.run(_floor_clients(sys.argv[2], int(sys.argv[3])))
