"""systemd's notify protocol (sd_notify(3)): one datagram to $NOTIFY_SOCKET, no dependency.

Outside systemd (no NOTIFY_SOCKET) every call is a no-op, so tests and `edge-agent run` from a
shell behave the same as under the unit.
"""

from __future__ import annotations

import os
import socket
import time


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send e.g. "READY=1" or "WATCHDOG=1"; False when not under systemd or the send failed."""
    address = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # Linux abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True


class Watchdog:
    """Feeds systemd's WatchdogSec= from a loop that proves the agent is alive.

    `interval_s` is half the watchdog period systemd asked for (WATCHDOG_USEC), as
    sd_watchdog_enabled(3) advises; None when no watchdog is configured for this process.
    """

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = environ if environ is not None else dict(os.environ)
        self._environ = env
        self.interval_s: float | None = None
        usec = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if usec and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.interval_s = int(usec) / 2_000_000
        self._last = 0.0

    def feed(self) -> None:
        # Rate-limited: the programme loop can spin many times a second during pre-emption.
        if self.interval_s is None:
            return
        now = time.monotonic()
        if now - self._last >= self.interval_s / 4:
            self._last = now
            notify("WATCHDOG=1", self._environ)
