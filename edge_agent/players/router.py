"""One Player in front of several: the agent core talks to this, it picks the backend by kind.

A board plays text and images on its screen (DisplayPlayer) and video or sound through libvlc
(VlcPlayer); only one of them is on air at a time, so switching stops the other first.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from loa_contract import BulletinKind, Fault

from .base import (
    EventSink,
    PlaybackEvent,
    Player,
    PlayerError,
    PlayerHealth,
    PlayerState,
    PlayItem,
)

log = logging.getLogger(__name__)


class PlayerRouter:
    """Delegates each item to the first backend whose `kinds` include the item's kind."""

    def __init__(self, backends: Sequence[Player]) -> None:
        if not backends:
            raise PlayerError("a router needs at least one backend")
        self.backends: tuple[Player, ...] = tuple(backends)
        self.kinds: frozenset[BulletinKind] = frozenset().union(*(b.kinds for b in self.backends))
        self._active: Player | None = None
        self._sink: EventSink | None = None
        for backend in self.backends:
            backend.set_event_sink(self._forwarder(backend))

    def _forwarder(self, backend: Player) -> EventSink:
        def forward(event: PlaybackEvent) -> None:
            # A backend that was switched away from may still report its old item; only the
            # one on air speaks for the router.
            if backend is self._active and self._sink is not None:
                self._sink(event)

        return forward

    def backend_for(self, kind: BulletinKind) -> Player:
        for backend in self.backends:
            if kind in backend.kinds:
                return backend
        raise PlayerError(f"no backend on this device plays {kind.value}")

    @property
    def active(self) -> Player | None:
        return self._active

    def health(self) -> PlayerHealth:
        """The state on air, every backend's stuck stops summed and their faults merged."""
        stuck = 0
        faults: list[Fault] = []
        reasons: dict[Fault, str] = {}
        for backend in self.backends:
            try:
                part = backend.health()
            except Exception:  # the Player promise is broken; the sample must still go out
                log.exception("%s.health() failed", type(backend).__name__)
                found: tuple[Fault, ...] = (Fault.PLAYER_CHECK_FAILED,)
            else:
                stuck += part.stuck_stops
                found = part.faults
                for fault, why in part.reasons.items():
                    reasons.setdefault(fault, why)
            faults.extend(fault for fault in found if fault not in faults)
        return PlayerHealth(self.state, stuck, tuple(faults), reasons)

    def set_event_sink(self, sink: EventSink) -> None:
        self._sink = sink

    async def play(self, item: PlayItem) -> None:
        backend = self.backend_for(item.kind)
        previous = self._active
        if previous is not None and previous is not backend:
            await previous.stop()
        self._active = backend
        await backend.play(item)

    async def stop(self) -> float:
        if self._active is None:
            return 0.0
        return await self._active.stop()

    def position(self) -> float:
        return self._active.position() if self._active is not None else 0.0

    @property
    def state(self) -> PlayerState:
        return self._active.state if self._active is not None else PlayerState.IDLE

    async def set_volume(self, volume: int) -> None:
        for backend in self.backends:
            await backend.set_volume(volume)

    async def close(self) -> None:
        errors: list[BaseException] = []
        for backend in self.backends:
            try:
                await backend.close()
            except Exception as exc:  # one failing backend must not keep the others open
                errors.append(exc)
        self._active = None
        if errors:
            raise PlayerError(f"closing backends failed: {errors!r}") from errors[0]
