"""Health snapshots with psutil. Field names follow Prometheus node_exporter where one exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil


def _temperature() -> float | None:
    try:
        sensors = psutil.sensors_temperatures()
    except (AttributeError, OSError):
        return None
    # The Pi's SoC sensor is "cpu_thermal"; elsewhere take the first reading there is.
    for name in ("cpu_thermal", "coretemp", "k10temp"):
        if sensors.get(name):
            return float(sensors[name][0].current)
    for readings in sensors.values():
        if readings:
            return float(readings[0].current)
    return None


def system_sample(data_dir: Path) -> dict[str, Any]:
    """The machine's side of a health sample; the agent adds player, cache and clock state."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(data_dir))
    net = psutil.net_io_counters()
    return {
        # interval=None compares with the previous call: it never blocks the event loop.
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_used_bytes": int(memory.total - memory.available),
        "memory_total_bytes": int(memory.total),
        "filesystem_avail_bytes": int(disk.free),
        "filesystem_size_bytes": int(disk.total),
        "temperature_celsius": _temperature(),
        "boot_time_seconds": float(psutil.boot_time()),
        "network_receive_bytes_total": int(net.bytes_recv) if net else 0,
        "network_transmit_bytes_total": int(net.bytes_sent) if net else 0,
    }
