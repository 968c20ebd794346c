"""Fleet: an emergency fired at the hub reaches every online device (target: p99 <= 1 s).

`hub serve` runs as its own process; `edge-agent simulate --scenario emergency` runs N real
agents (the same Agent class as on a Pi, with null players, each with its own SQLite state
and WebSocket) over K processes, fires several emergencies through the API and times, per
device, API call -> emergency playing. bench/fanout.py adds the bare-aiohttp floor.

    .venv/bin/python bench/fleet.py [--devices 1000] [--procs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import hub_process, raise_file_limit, simulate, temp_dirs  # noqa: E402

TARGET_P99_MS = 1000.0


async def run(devices: int, procs: int, emergencies: int) -> int:
    raise_file_limit()
    hub_tmp, devices_tmp = temp_dirs()
    with hub_tmp as hub_dir, devices_tmp as devices_dir:
        async with hub_process(Path(hub_dir)) as url:
            result = await simulate(
                url, Path(devices_dir), "--devices", str(devices), "--procs", str(procs),
                "--scenario", "emergency", "--emergencies", str(emergencies),
            )  # fmt: skip
    print(f"emergency to {devices} simulated devices over {procs} processes (hub in its own)")
    print(
        f"  API call -> playing: median {result['p50_ms']:.0f} ms  p99 {result['p99_ms']:.0f} ms"
        f"  max {result['max_ms']:.0f} ms  (target p99 <= {TARGET_P99_MS:.0f} ms)"
    )
    print(
        f"  API answered in {result['api_p50_ms']:.0f} ms (slowest {result['api_max_ms']:.0f} ms);"
        f" push arrived: median {result['arrival_p50_ms']:.0f} ms"
        f" p99 {result['arrival_p99_ms']:.0f} ms; {result['missed']} missed,"
        f" {result['cancel_missed']} cancels missed"
    )
    met = (
        result["p99_ms"] <= TARGET_P99_MS and result["missed"] == 0 and result["cancel_missed"] == 0
    )
    print("  target met" if met else "  TARGET MISSED")
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--emergencies", type=int, default=3)
    args = parser.parse_args()
    return asyncio.run(run(args.devices, args.procs, args.emergencies))


if __name__ == "__main__":
    raise SystemExit(main())
