"""Hub under a province's whole fleet: 10,000 connected devices, health every 60 s.

`hub serve` runs as its own process, and its CPU and memory are read from GET
/api/v1/hub/process. The devices, over K processes, are either

- `--clients protocol` (the default): each enrolled device as the hub sees it, without an
  agent behind it: its push socket held open, a health report every interval (first at a
  random point of it, as devices boot at scattered times) and an update check every 300 s,
  built with the agent's own wire models (bench/support.py). 10,000 of them fit beside the
  hub on a 2-core machine;
- `--clients agents`: `edge-agent simulate --scenario health`, a real agent per device. Each
  costs its process 0.1-0.3 ms of CPU a second with nothing to do (timers, the scheduler),
  so 2 cores carry about 2,000 of them beside the hub, not 10,000.

The floor, in the same run: a bare aiohttp WebSocket server holding the same number of
connections from the same K processes (its memory per connection).

Targets (DESIGN.md §5): hub memory <= 20 KB per connected device, hub CPU <= 50 % of one core,
health report p99 <= 200 ms.

    .venv/bin/python bench/hub_load.py [--devices 10000] [--procs 4] [--duration 180]
        [--clients protocol|agents]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import (  # noqa: E402
    ADMIN,
    PASSWORD,
    end,
    floor,
    hub_process,
    percentile,
    raise_file_limit,
    simulate,
    spawn,
    temp_dirs,
)

MAX_KB_PER_DEVICE = 20.0
MAX_CPU_PERCENT = 50.0
MAX_HEALTH_P99_MS = 200.0


async def with_protocol_clients(
    url: str, devices_dir: Path, devices: int, procs: int, interval: float, duration: float
) -> dict[str, Any]:
    """The same figures as `simulate --scenario health --json`, from protocol clients."""
    from edge_agent.simulate import (
        HubAdmin,
        cpu_percent,
        peak_cpu,
        prepare_fleet,
        shares,
    )

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        admin = HubAdmin(url, ADMIN, PASSWORD, session)
        await admin.login()
        await admin.ensure_commune("hubload")
        folders, _ = await prepare_fleet(
            admin, devices_dir, devices, "hubload",
            lambda done, of: print(f"  enrolled {done}/{of}", file=sys.stderr, flush=True),
        )  # fmt: skip
        before = await admin.process()
        clients = []
        try:
            for share in shares(len(folders), procs):
                listing = devices_dir / f"listing-{len(clients)}.txt"
                listing.write_text("".join(f"{folders[i]}\n" for i in share))
                clients.append(await spawn("protocol", url, str(listing), str(interval)))
            for process in clients:
                assert process.stdout is not None
                await process.stdout.readline()  # {"ready": n}: every socket open
            print(f"  {len(folders)} devices connected", file=sys.stderr, flush=True)
            await _ask(clients)  # the reports so far (the connection storm) are not counted
            first = await admin.process()
            samples = [first]
            until = time.monotonic() + duration
            while time.monotonic() < until:
                await asyncio.sleep(min(10.0, until - time.monotonic()))
                samples.append(await admin.process())
            last = samples[-1]
            replies = await _ask(clients)
        finally:
            await end(clients)
    latencies = [x for reply in replies for x in reply["latencies"]]
    connected = last["connected_devices"] - before["connected_devices"]
    cpu = cpu_percent(first, last)
    per_device = (last["rss_bytes"] - before["rss_bytes"]) / connected if connected else None
    return {
        "connected": last["connected_devices"],
        "duration_s": round(last["at"] - first["at"], 1),
        "hub_cpu_percent": round(cpu, 1) if cpu is not None else float("inf"),
        "hub_cpu_peak_percent": _round(peak_cpu(samples)),
        "hub_rss_per_device_bytes": per_device,
        "gc_full_collections": last["gc_full_collections"] - first["gc_full_collections"],
        "gc_pause_max_s": last["gc_pause_max_s"],
        "heap_trims": last["heap_trims"],
        "heap_trim_max_s": last["heap_trim_max_s"],
        "health_reports": len(latencies),
        "health_failures": sum(int(reply["failures"]) for reply in replies),
        "health_p50_ms": round(percentile(latencies, 50) * 1000, 1) if latencies else None,
        "health_p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
    }


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


async def _ask(clients: list[asyncio.subprocess.Process]) -> list[dict[str, Any]]:
    replies = []
    for process in clients:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(b"stats\n")
        await process.stdin.drain()
        replies.append(json.loads(await process.stdout.readline()))
    return replies


async def run(devices: int, procs: int, interval: float, duration: float, clients: str) -> int:
    raise_file_limit()
    async with floor(0, 1) as bare:
        empty = await bare.stats()
    async with floor(devices, procs) as bare:
        held = await bare.stats()
    floor_kb = (held["rss"] - empty["rss"]) / max(1, held["clients"]) / 1024
    hub_tmp, devices_tmp = temp_dirs()
    with hub_tmp as hub_dir, devices_tmp as devices_dir:
        async with hub_process(Path(hub_dir)) as url:
            if clients == "protocol":
                result = await with_protocol_clients(
                    url, Path(devices_dir), devices, procs, interval, duration
                )
            else:
                result = await simulate(
                    url, Path(devices_dir), "--devices", str(devices), "--procs", str(procs),
                    "--scenario", "health", "--interval", str(interval),
                    "--duration", str(duration), "--timeout", str(max(300.0, 2 * interval)),
                )  # fmt: skip
    per_device = result["hub_rss_per_device_bytes"]
    kb = per_device / 1024 if per_device is not None else float("inf")
    cpu = result["hub_cpu_percent"]
    p99 = result["health_p99_ms"] if result["health_p99_ms"] is not None else float("inf")
    print(
        f"hub with {result['connected']} connected devices ({clients} clients) over {procs}"
        f" processes, health every {interval:g} s, measured for {result['duration_s']:g} s"
    )
    print(
        f"  memory: {kb:.1f} KB per device (target <= {MAX_KB_PER_DEVICE:g} KB); floor: bare"
        f" aiohttp {floor_kb:.1f} KB per WebSocket, ratio {kb / floor_kb:.1f} x"
        if floor_kb > 0
        else f"  memory: {kb:.1f} KB per device (target <= {MAX_KB_PER_DEVICE:g} KB)"
    )
    print(
        f"  CPU: {cpu:.1f} % of one core, peak {result['hub_cpu_peak_percent']} %"
        f" (target <= {MAX_CPU_PERCENT:g} %)"
    )
    if "gc_full_collections" in result:
        print(
            f"  garbage collector: {result['gc_full_collections']} full collections while"
            f" measured; its longest pause since the start {result['gc_pause_max_s']} s"
        )
    if result.get("heap_trims"):
        print(
            f"  heap given back to the system {result['heap_trims']} times since the start,"
            f" the longest pass {result['heap_trim_max_s']} s"
        )
    print(
        f"  health reports: p50 {result['health_p50_ms']} ms p99 {p99:.1f} ms"
        f" (target <= {MAX_HEALTH_P99_MS:g} ms); {result['health_reports']} sent,"
        f" {result['health_failures']} failed"
    )
    met = (
        result["connected"] >= devices
        and kb <= MAX_KB_PER_DEVICE
        and cpu <= MAX_CPU_PERCENT
        and p99 <= MAX_HEALTH_P99_MS
        and result["health_failures"] == 0
    )
    print("  targets met" if met else "  TARGET MISSED")
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--duration", type=float, default=180.0)
    parser.add_argument(
        "--clients",
        choices=("protocol", "agents"),
        default="protocol",
        help="devices as the hub sees them (default), or a real agent each",
    )
    args = parser.parse_args()
    return asyncio.run(run(args.devices, args.procs, args.interval, args.duration, args.clients))


if __name__ == "__main__":
    raise SystemExit(main())
