"""The amplifier relay: power the loudspeaker amplifier only while there is something to say.

An amplifier left on all day hums through every horn in the commune and ages in the sun;
one switched on at the first word swallows that word. So the relay goes on before audio and
the agent waits the profile's pre-roll for the amplifier to settle, and it goes off only
after an idle time, so back-to-back items do not click the amplifier on and off.

The pin is driven through gpiozero: on a Pi its default factory (lgpio, RPi.GPIO) talks to
the real header; tests inject `gpiozero.pins.mock.MockFactory`. Everything here runs on the
agent's event loop; gpiozero's pin writes are quick register or ioctl calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .profile import HardwareProfile, RelayProfile

log = logging.getLogger(__name__)


class Relay(Protocol):
    """What the agent calls around audio playback."""

    @property
    def is_on(self) -> bool: ...

    async def before_audio(self, emergency: bool) -> None: ...

    def audio_ended(self) -> None: ...

    def close(self) -> None: ...


class NullRelay:
    """A device without an amplifier relay (a board, or a speaker with always-on power)."""

    is_on = False

    async def before_audio(self, emergency: bool) -> None:
        return None

    def audio_ended(self) -> None:
        return None

    def close(self) -> None:
        return None


class AmplifierRelay:
    """Drive one GPIO output that switches the amplifier's mains or DC supply."""

    def __init__(
        self,
        gpio_pin: int,
        *,
        active_high: bool = True,
        pre_roll_s: float = 1.5,
        idle_off_s: float = 60.0,
        pin_factory: Any = None,
    ) -> None:
        from gpiozero import OutputDevice

        self.gpio_pin = gpio_pin
        self.pre_roll_s = pre_roll_s
        self.idle_off_s = idle_off_s
        # initial_value=False: after a crash or reboot the amplifier starts off, not humming.
        self._device = OutputDevice(
            gpio_pin, active_high=active_high, initial_value=False, pin_factory=pin_factory
        )
        self._idle_timer: asyncio.TimerHandle | None = None
        # When the relay last went on (monotonic); a second caller during the pre-roll
        # waits only for the rest of it.
        self._on_since: float | None = None
        self._changed = asyncio.Event()
        #: How many times the relay has switched on (for health and tests).
        self.switch_ons = 0

    @classmethod
    def from_profile(cls, relay: RelayProfile, pin_factory: Any = None) -> AmplifierRelay:
        return cls(
            relay.gpio_pin,
            active_high=relay.active_high,
            pre_roll_s=relay.pre_roll_s,
            idle_off_s=relay.idle_off_s,
            pin_factory=pin_factory,
        )

    @property
    def is_on(self) -> bool:
        return bool(self._device.value)

    async def before_audio(self, emergency: bool) -> None:
        """Make sure the amplifier carries sound; returns at once if it already does."""
        self._cancel_idle()
        if self._on_since is None:
            self._device.on()
            self._on_since = time.monotonic()
            self.switch_ons += 1
            self._notify()
            if emergency:
                log.warning("amplifier switched on for an emergency")
        remaining = self.pre_roll_s - (time.monotonic() - self._on_since)
        if remaining > 0:
            await asyncio.sleep(remaining)

    def audio_ended(self) -> None:
        """Nothing plays now: arm the switch-off (idempotent; the next audio disarms it)."""
        if self._on_since is None or self._idle_timer is not None:
            return
        loop = asyncio.get_running_loop()
        self._idle_timer = loop.call_later(self.idle_off_s, self._switch_off)

    def _switch_off(self) -> None:
        self._idle_timer = None
        self._device.off()
        self._on_since = None
        self._notify()

    def _cancel_idle(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, on: bool) -> None:
        """Wait until the relay is on (or off); the caller bounds the wait."""
        while self.is_on != on:
            await self._changed.wait()

    def close(self) -> None:
        self._cancel_idle()
        self._on_since = None
        try:
            self._device.off()
        finally:
            self._device.close()


def build_relay(profile: HardwareProfile, pin_factory: Any = None) -> Relay:
    """The relay a profile asks for; a NullRelay when it has none or GPIO is unusable here.

    A device whose GPIO cannot be opened still plays (a permanently powered amplifier is
    better than silence), so the failure is logged loudly instead of stopping the agent;
    `edge-agent doctor` reports it as a failed relay check.
    """
    if profile.relay is None:
        return NullRelay()
    try:
        return AmplifierRelay.from_profile(profile.relay, pin_factory)
    except Exception as exc:
        log.error("amplifier relay on GPIO %d unusable: %s", profile.relay.gpio_pin, exc)
        return NullRelay()
