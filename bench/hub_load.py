"""Hub under a province's whole fleet: 10,000 connected devices, health every 60 s.

`hub serve` runs as its own process; `edge-agent simulate --scenario health` runs 10,000 real
agents over K processes (their start spread over one health interval, as devices boot at
scattered times), and reads the hub's CPU and memory from GET /api/v1/hub/process. The floor,
in the same run: a bare aiohttp WebSocket server holding the same number of connections from
the same K processes (its memory per connection).

Targets (DESIGN.md §5): hub memory <= 20 KB per connected device, hub CPU <= 50 % of one core,
health report p99 <= 200 ms.

    .venv/bin/python bench/hub_load.py [--devices 10000] [--procs 4] [--duration 180]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import floor, hub_process, raise_file_limit, simulate, temp_dirs  # noqa: E402

MAX_KB_PER_DEVICE = 20.0
MAX_CPU_PERCENT = 50.0
MAX_HEALTH_P99_MS = 200.0


async def run(devices: int, procs: int, interval: float, duration: float) -> int:
    raise_file_limit()
    async with floor(0, 1) as bare:
        empty = await bare.stats()
    async with floor(devices, procs) as bare:
        held = await bare.stats()
    floor_kb = (held["rss"] - empty["rss"]) / max(1, held["clients"]) / 1024
    hub_tmp, devices_tmp = temp_dirs()
    with hub_tmp as hub_dir, devices_tmp as devices_dir:
        async with hub_process(Path(hub_dir)) as url:
            result = await simulate(
                url, Path(devices_dir), "--devices", str(devices), "--procs", str(procs),
                "--scenario", "health", "--interval", str(interval), "--duration", str(duration),
                "--timeout", str(max(300.0, 2 * interval)),
            )  # fmt: skip
    per_device = result["hub_rss_per_device_bytes"]
    kb = per_device / 1024 if per_device is not None else float("inf")
    cpu = result["hub_cpu_percent"]
    p99 = result["health_p99_ms"] if result["health_p99_ms"] is not None else float("inf")
    print(
        f"hub with {result['connected']} connected devices over {procs} processes, health every"
        f" {interval:g} s, measured for {result['duration_s']:g} s"
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
    args = parser.parse_args()
    return asyncio.run(run(args.devices, args.procs, args.interval, args.duration))


if __name__ == "__main__":
    raise SystemExit(main())
