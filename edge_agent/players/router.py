"""One Player in front of several: the agent core talks to this, it picks the backend by kind.

A board plays text and images on its screen (DisplayPlayer) and video or sound through libvlc
(VlcPlayer); only one of them is on air at a time, so switching stops the other first.
"""

from __future__ import annotations

from collections.abc import Sequence

from loa_contract import BulletinKind

from .base import EventSink, PlaybackEvent, Player, PlayerError, PlayerState, PlayItem


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

    @property
    def stuck_stops(self) -> int:
        return sum(getattr(backend, "stuck_stops", 0) for backend in self.backends)

    @property
    def screen_faults(self) -> list[str]:
        """Faults a screen backend sees in its own output ("screen_blank", "screen_frozen")."""
        faults: list[str] = []
        for backend in self.backends:
            check = getattr(backend, "screen_fault", None)
            fault = check() if check is not None else None
            if fault:
                faults.append(fault)
        return faults

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
