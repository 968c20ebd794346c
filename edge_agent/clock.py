"""Clock trust. A Pi has no real-time clock: after a power cut it may boot with a stale time.

Policy (issue #4). The device's time is *trusted* when any of these holds, checked in order:

1. ``hub``: a time the hub *signed* has been seen in this run, with a bound on its age: the
   ``issued_at`` of the command the hub signs as a push connection opens, or of a newly
   issued manifest, plus half the round trip. Never the HTTP ``Date`` header: it is not
   signed, and a proxy shifting it by 30 days froze every manifest as expired. "Now" is then
   that time carried forward on the kernel's boot clock (CLOCK_BOOTTIME: never stepped, only
   slewed by NTP), so even a system clock a day off plays the right programme, and one
   stepped afterwards (by hand, by NTP, by an RTC read late) changes nothing: a system clock
   merely corrected by a fixed offset would run a day off from the step until the next
   signed time, and a device holding one push connection open sees none for weeks.
2. ``ntp``: the system says NTP is synchronized (systemd-timesyncd's
   ``/run/systemd/timesync/synchronized``, or ``timedatectl show -p NTPSynchronized``).
3. ``same_boot``: the agent restarted without a reboot, and the last confirmation (1 or 2)
   persisted in the store was made in this same boot (kernel ``boot_id``), and the system
   clock has not been stepped since (``system - uptime``, the boot instant by the system clock,
   is unchanged within the tolerance). The kernel clock has run continuously, so the offset
   measured then still holds and is re-applied.
4. ``plausible``: a new boot (a power cut) on a device that kept time across it (an RTC HAT,
   a Pi 5 battery). The boot instant by the system clock (``system - uptime``) must be
   - at or after the last confirmation L (else ``behind``);
   - after the previous run's last sign of life A (persisted by the raw system clock every
     ``alive_period_s`` whatever the trust) plus that period, i.e. after the previous run died
     (else ``restored``: fake-hwclock and timesyncd restore the last *saved* time, which is
     before the death, so a restored clock always fails this -- and so does a right clock
     after a blip shorter than a minute, which then simply waits for the hub);
   - at most ``max_outage_s`` after L (else ``ahead``: an outage that long cannot be told
     from a clock running ahead).
   A clock a day off is therefore untrusted after any outage shorter than a day minus
   ``max_outage_s``.

Otherwise the clock is untrusted: the scheduler then starts nothing but emergencies. With
``require_confirmation=False`` the system clock is simply believed (a simulator, a PC).

The cold-start target (hub unreachable, first cached bulletin on air in 2 s) is met on a
device with NTP, with a clock kept across the outage (rule 4), or after an agent restart
(rule 3); a Pi that lost its time must wait for the hub or NTP — except for emergencies.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from loa_contract import utcnow

#: A signed time is at most a round trip old; offsets this small are noise, not drift.
_MIN_CORRECTION_S = 2.0
#: systemd-timesyncd creates this file once the kernel clock is synchronized.
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
#: Covers chrony and ntpd too: it reads the kernel's synchronized flag over D-Bus.
TIMEDATECTL = ("timedatectl", "show", "-p", "NTPSynchronized", "--value")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
#: The store settings holding the last confirmation and the last sign of life.
SETTING_KEY = "clock_confirmation"
ALIVE_KEY = "clock_alive"


def _boot_id() -> str | None:
    try:
        return BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def _uptime_s() -> float:
    # CLOCK_BOOTTIME counts suspended time too, like /proc/uptime; both start at boot.
    return time.clock_gettime(getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC))


class NtpProbe:
    """Asks the system whether NTP has synchronized the clock. Blocking: call it in a thread.

    True or False when some source answered, None when none could (no timesyncd, no D-Bus).
    """

    def __init__(
        self,
        paths: Sequence[Path] = (TIMESYNCD_FLAG,),
        command: Sequence[str] | None = None,
        timeout_s: float = 2.0,
    ) -> None:
        self.paths = tuple(paths)
        self.command = tuple(command) if command else None
        self.timeout_s = timeout_s

    def __call__(self) -> bool | None:
        if any(path.exists() for path in self.paths):
            return True
        if self.command is None:
            return False if self.paths and self.paths[0].parent.is_dir() else None
        try:
            done = subprocess.run(
                self.command, capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        answer = done.stdout.strip().lower()
        if done.returncode != 0 or answer not in ("yes", "no"):
            return None
        return answer == "yes"


@dataclass(frozen=True)
class Confirmation:
    """The last moment the time was known to be right, as persisted across restarts."""

    at: datetime  # the real time then (hub-corrected or NTP)
    offset_s: float  # real minus system clock then
    boot_id: str | None
    boot_wall: datetime  # system clock minus uptime then: this boot's start by the system clock

    def to_json(self) -> str:
        return json.dumps(
            {
                "at": self.at.isoformat(),
                "offset_s": self.offset_s,
                "boot_id": self.boot_id,
                "boot_wall": self.boot_wall.isoformat(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Confirmation | None:
        try:
            raw = json.loads(text)
            return cls(
                at=datetime.fromisoformat(raw["at"]),
                offset_s=float(raw["offset_s"]),
                boot_id=raw.get("boot_id"),
                boot_wall=datetime.fromisoformat(raw["boot_wall"]),
            )
        except (ValueError, KeyError, TypeError):
            return None  # a damaged record only costs the cold-start shortcut


@dataclass
class ClockStatus:
    trusted: bool
    offset_s: float | None
    #: "hub", "ntp", "same_boot", "plausible", "system" when trusted; "waiting", "behind",
    #: "ahead", "stepped" when not. The local page translates it.
    source: str
    reason: str


class ClockJudge:
    """Decides what time it is and whether that time can be trusted (see the module doc)."""

    def __init__(
        self,
        system: Callable[[], datetime] = utcnow,
        *,
        require_confirmation: bool = False,
        tolerance_s: float = 120.0,
        max_outage_s: float = 12 * 3600.0,
        alive_period_s: float = 60.0,
        ntp: Callable[[], bool | None] | None = None,
        uptime: Callable[[], float] = _uptime_s,
        boot_id: Callable[[], str | None] = _boot_id,
    ) -> None:
        self._system = system
        self._require_confirmation = require_confirmation
        self._tolerance_s = tolerance_s
        self._max_outage_s = max_outage_s
        self.alive_period_s = alive_period_s
        self._last_alive: datetime | None = None
        self._ntp_probe = ntp if ntp is not None else NtpProbe()
        self._uptime = uptime
        self._boot_id = boot_id
        #: The hub's signed time and the boot clock's reading when it was seen.
        self._anchor: tuple[datetime, float] | None = None
        self._ntp: bool | None = None
        self._previous: Confirmation | None = None

    @property
    def require_confirmation(self) -> bool:
        return self._require_confirmation

    # ------------------------------------------------------------------ evidence

    def observe_signed_time(self, issued_at: datetime, round_trip_s: float = 0.0) -> None:
        """Record a time the hub signed, received within `round_trip_s` of asking for it."""
        estimated_hub_now = issued_at + timedelta(seconds=round_trip_s / 2)
        self._anchor = (estimated_hub_now, self._uptime())

    def _hub_now(self) -> datetime | None:
        """The hub's signed time carried forward on the boot clock (see the module doc), or
        None before any was seen."""
        if self._anchor is None:
            return None
        seen, uptime_then = self._anchor
        return seen + timedelta(seconds=self._uptime() - uptime_then)

    def _hub_offset_s(self) -> float | None:
        """Real minus system time now, by the hub's time, or None before any was seen."""
        real = self._hub_now()
        return None if real is None else (real - self._system()).total_seconds()

    def refresh_ntp(self) -> bool:
        """Ask the system about NTP again (blocking); True if the answer changed."""
        before = self._ntp
        self._ntp = self._ntp_probe() if self._require_confirmation else None
        return before != self._ntp

    def restore(self, previous: Confirmation | None, last_alive: datetime | None = None) -> None:
        """The confirmation persisted by an earlier run (None: never confirmed) and an earlier
        boot's last sign of life by the raw system clock (see `alive_mark`)."""
        self._previous = previous
        self._last_alive = last_alive

    def alive_mark(self) -> str:
        """What to persist every `alive_period_s`: this boot and the raw system clock."""
        return f"{self._boot_id() or ''} {self._system().isoformat()}"

    @staticmethod
    def parse_alive(text: str | None) -> tuple[str | None, datetime | None]:
        boot, _, when = (text or "").partition(" ")
        try:
            return boot or None, datetime.fromisoformat(when)
        except ValueError:
            return None, None

    def confirmation(self) -> Confirmation | None:
        """What to persist now, if the time is confirmed (never for a merely plausible clock,
        so an unconfirmed clock cannot ratchet the next boot's lower bound forward)."""
        status = self.status()
        if status.source not in ("hub", "ntp", "same_boot"):
            return None
        system = self._system()
        offset = self._applied_offset() or 0.0
        return Confirmation(
            at=system + timedelta(seconds=offset),
            offset_s=offset,
            boot_id=self._boot_id(),
            boot_wall=system - timedelta(seconds=self._uptime()),
        )

    # ------------------------------------------------------------------ answers

    def _same_boot_offset(self) -> float | None:
        previous = self._previous
        if previous is None or previous.boot_id is None or previous.boot_id != self._boot_id():
            return None
        boot_wall = self._system() - timedelta(seconds=self._uptime())
        if abs((boot_wall - previous.boot_wall).total_seconds()) > self._tolerance_s:
            return None  # the system clock was stepped since: the old offset means nothing
        return previous.offset_s

    def _applied_offset(self) -> float | None:
        hub = self._hub_offset_s()
        if hub is not None:
            return hub
        if self._ntp:
            return None
        return self._same_boot_offset()

    def now(self) -> datetime:
        real = self._hub_now()
        if real is not None:
            # What `_applied_offset` would add to the system clock, without the round trip
            # through an offset: asked several times for each frame on the emergency path.
            system = self._system()
            return real if abs((real - system).total_seconds()) >= _MIN_CORRECTION_S else system
        current = self._system()
        offset = self._applied_offset()
        if offset is not None and abs(offset) >= _MIN_CORRECTION_S:
            current += timedelta(seconds=offset)
        return current

    def corrected(self) -> bool:
        """True once "now" is anchored to the hub's time or NTP (not merely believed)."""
        if self._anchor is not None:  # what `status` would say first, without its wording
            return True
        return self.status().source in ("hub", "ntp", "same_boot")

    def status(self) -> ClockStatus:
        hub = self._hub_offset_s()
        if hub is not None:
            within = abs(hub) <= self._tolerance_s
            return ClockStatus(
                True,
                hub,
                "hub",
                "time confirmed by the hub"
                if within
                else f"system clock off by {hub:+.0f} s; corrected from the hub",
            )
        if not self._require_confirmation:
            return ClockStatus(True, None, "system", "system clock (not yet confirmed by the hub)")
        if self._ntp:
            return ClockStatus(True, None, "ntp", "synchronized by NTP")
        same_boot = self._same_boot_offset()
        if same_boot is not None:
            return ClockStatus(
                True, same_boot, "same_boot", "confirmed by the hub earlier in this boot"
            )
        previous = self._previous
        if previous is None:
            return ClockStatus(False, None, "waiting", "waiting for the hub or NTP to confirm")
        if previous.boot_id is not None and previous.boot_id == self._boot_id():
            return ClockStatus(
                False, None, "stepped", "the system clock was changed since it was confirmed"
            )
        boot_wall = self._system() - timedelta(seconds=self._uptime())
        gap = (boot_wall - previous.at).total_seconds()
        if gap < -self._tolerance_s:
            return ClockStatus(False, None, "behind", "the clock is behind the last confirmed time")
        alive = self._last_alive
        if alive is not None and boot_wall < alive + timedelta(seconds=self.alive_period_s):
            return ClockStatus(
                False, None, "restored", "the clock says it booted before the last run ended"
            )
        if gap > self._max_outage_s:
            return ClockStatus(
                False,
                None,
                "ahead",
                f"the clock says {gap / 3600:.0f} h passed since it was last confirmed",
            )
        return ClockStatus(True, None, "plausible", "clock kept across the power cut")
