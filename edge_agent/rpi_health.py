"""Raspberry Pi health a technician can act on: power, heat, and the SD card.

The common field failures of a Pi on a pole are a weak power supply (under-voltage, then
throttling and SD corruption), heat, and a worn SD card (the kernel remounts it read-only,
or ext4 starts counting errors). Every function takes the roots of /sys and /proc (and the
data folder) so tests feed fake trees; on a machine without these files the answer is
"unknown", never a crash.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loa_contract import Fault

#: Bits of the firmware's throttled word (vcgencmd get_throttled; the Pi documentation).
UNDER_VOLTAGE_NOW = 1 << 0
FREQ_CAPPED_NOW = 1 << 1
THROTTLED_NOW = 1 << 2
SOFT_TEMP_LIMIT_NOW = 1 << 3
UNDER_VOLTAGE_SINCE_BOOT = 1 << 16
THROTTLED_SINCE_BOOT = 1 << 18

PROBE_FILE = ".sd-probe.tmp"

#: The keys of `PiHealth.sample()`'s values that are HealthSample fields of the same name.
WIRE_FIELDS: tuple[str, ...] = (
    "under_voltage",
    "under_voltage_since_boot",
    "throttled",
    "throttled_since_boot",
    "filesystem_readonly",
    "ext4_errors_total",
    "sd_write_ok",
    "sd_write_seconds",
)


@dataclass(frozen=True)
class PowerState:
    under_voltage: bool | None  # None: this machine cannot tell
    throttled: bool | None
    raw: int | None = None  # the firmware's word, when known
    source: str = "none"

    # Only the firmware's word remembers the past; the rpi_volt alarm knows "now" only, so
    # without the word the answer is None (cannot tell), not False (it never happened).
    @property
    def under_voltage_since_boot(self) -> bool | None:
        return None if self.raw is None else bool(self.raw & UNDER_VOLTAGE_SINCE_BOOT)

    @property
    def throttled_since_boot(self) -> bool | None:
        return None if self.raw is None else bool(self.raw & THROTTLED_SINCE_BOOT)


def _from_word(word: int, source: str) -> PowerState:
    throttled = bool(word & (THROTTLED_NOW | FREQ_CAPPED_NOW | SOFT_TEMP_LIMIT_NOW))
    return PowerState(bool(word & UNDER_VOLTAGE_NOW), throttled, word, source)


def _rpi_volt_alarm(sys_root: Path) -> bool | None:
    hwmon = sys_root / "class" / "hwmon"
    if not hwmon.is_dir():
        return None
    for entry in sorted(hwmon.iterdir()):
        try:
            if (entry / "name").read_text().strip() != "rpi_volt":
                continue
            return (entry / "in0_lcrit_alarm").read_text().strip() == "1"
        except OSError:
            continue
    return None


def power_state(sys_root: Path = Path("/sys"), vcgencmd: str | None = None) -> PowerState:
    """Under-voltage and throttling, from the best source this machine has.

    Order: the firmware driver's sysfs word (no process to start), `vcgencmd get_throttled`,
    then the `rpi_volt` hwmon alarm, which knows about under-voltage only.
    """
    word_file = sys_root / "devices" / "platform" / "soc" / "soc:firmware" / "get_throttled"
    try:
        return _from_word(int(word_file.read_text().strip(), 16), "sysfs")
    except (OSError, ValueError):
        pass
    tool = vcgencmd if vcgencmd is not None else shutil.which("vcgencmd")
    if tool:
        try:
            out = subprocess.run(
                [tool, "get_throttled"], capture_output=True, text=True, timeout=5, check=True
            ).stdout
            return _from_word(int(out.strip().partition("=")[2], 16), "vcgencmd")
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    alarm = _rpi_volt_alarm(sys_root)
    if alarm is not None:
        return PowerState(alarm, None, None, "rpi_volt")
    return PowerState(None, None)


def soc_temperature(sys_root: Path = Path("/sys")) -> float | None:
    try:
        return int((sys_root / "class/thermal/thermal_zone0/temp").read_text()) / 1000
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class Mount:
    device: str
    mountpoint: str
    fstype: str
    options: frozenset[str]

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


def _unescape(field_text: str) -> str:
    # /proc/mounts writes spaces and tabs in paths as octal escapes.
    return (
        field_text.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def mount_of(path: Path, proc_root: Path = Path("/proc")) -> Mount | None:
    """The mount holding `path`: the longest mount point that is a prefix of it."""
    try:
        lines = (proc_root / "mounts").read_text().splitlines()
    except OSError:
        return None
    target = os.path.abspath(path)
    best: Mount | None = None
    for line in lines:
        parts = line.split()
        if len(parts) < 4:
            continue
        point = _unescape(parts[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.mountpoint)):
            # ">=": a later line over the same point shadows the earlier one.
            best = Mount(_unescape(parts[0]), point, parts[2], frozenset(parts[3].split(",")))
    return best


def ext4_errors(device: str, sys_root: Path = Path("/sys")) -> int | None:
    """ext4's own count of errors on `device` since mkfs (None: not ext4 or unknown)."""
    names = [Path(device).name]
    try:
        names.append(Path(os.path.realpath(device)).name)  # /dev/root -> mmcblk0p2
    except OSError:
        pass
    for name in names:
        try:
            return int((sys_root / "fs" / "ext4" / name / "errors_count").read_text())
        except (OSError, ValueError):
            continue
    return None


@dataclass(frozen=True)
class WriteProbe:
    ok: bool
    seconds: float
    detail: str = ""


def sd_write_probe(data_dir: Path, size: int = 4096) -> WriteProbe:
    """Write a small file, push it to the card, drop it from the page cache, read it back."""
    # A name per process and thread: `edge-agent doctor` probes the same folder while the
    # agent runs, and two probes on one file would fail each other's read-back.
    stem = PROBE_FILE.removesuffix(".tmp")
    path = data_dir / f"{stem}-{os.getpid()}-{threading.get_ident()}.tmp"
    payload = os.urandom(size)
    began = time.monotonic()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, payload)
            os.fsync(fd)
            # Without this the read-back comes from RAM and proves nothing about the card.
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        back = path.read_bytes()
    except OSError as exc:
        return WriteProbe(False, time.monotonic() - began, f"{path}: {exc}")
    finally:
        try:
            path.unlink()
        except OSError:
            pass
    if back != payload:
        return WriteProbe(False, time.monotonic() - began, f"{path}: read back differs")
    return WriteProbe(True, time.monotonic() - began)


@dataclass
class PiHealth:
    """The agent's periodic view; the write probe runs at most every `probe_every_s`."""

    data_dir: Path
    sys_root: Path = Path("/sys")
    proc_root: Path = Path("/proc")
    vcgencmd: str | None = None
    probe_every_s: float = 3600.0
    _last_probe: WriteProbe | None = None
    _last_probe_at: float | None = None
    _tool: str | None = field(default=None, init=False)
    # sample() runs in worker threads (asyncio.to_thread); two at once must not both decide
    # the probe is due.
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        self._tool = self.vcgencmd if self.vcgencmd is not None else shutil.which("vcgencmd")

    def sample(self) -> tuple[dict[str, Any], list[Fault]]:
        """(values, fault names). The values' keys are HealthSample's field names, except
        `throttled_word` and `soc_temperature_celsius`, which only the local status shows."""
        with self._lock:
            return self._sample()

    def _sample(self) -> tuple[dict[str, Any], list[Fault]]:
        faults: list[Fault] = []
        power = power_state(self.sys_root, self._tool or "")
        if power.under_voltage:
            faults.append(Fault.UNDER_VOLTAGE)
        if power.throttled:
            faults.append(Fault.THROTTLED)
        mount = mount_of(self.data_dir, self.proc_root)
        errors = ext4_errors(mount.device, self.sys_root) if mount else None
        if mount is not None and mount.read_only:
            faults.append(Fault.SD_READ_ONLY)
        if errors:
            faults.append(Fault.SD_ERRORS)
        now = time.monotonic()
        if self._last_probe_at is None or now - self._last_probe_at >= self.probe_every_s:
            if mount is None or not mount.read_only:
                self._last_probe = sd_write_probe(self.data_dir)
            self._last_probe_at = now
        if self._last_probe is not None and not self._last_probe.ok:
            faults.append(Fault.SD_WRITE_FAILED)
        values: dict[str, Any] = {
            "under_voltage": power.under_voltage,
            "under_voltage_since_boot": power.under_voltage_since_boot,
            "throttled": power.throttled,
            "throttled_since_boot": power.throttled_since_boot,
            "throttled_word": f"0x{power.raw:x}" if power.raw is not None else None,
            "soc_temperature_celsius": soc_temperature(self.sys_root),
            "filesystem_readonly": mount.read_only if mount else None,
            "ext4_errors_total": errors,
            "sd_write_ok": self._last_probe.ok if self._last_probe else None,
            "sd_write_seconds": round(self._last_probe.seconds, 4) if self._last_probe else None,
        }
        return values, faults
