"""A player that plays nothing but keeps a player's promises: for tests and the fleet simulator.

It is meant to be cheap enough for thousands per process: no thread, no task, just one timer
handle on the loop per item.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

from loa_contract import BulletinKind

from .base import (
    EventSink,
    EventType,
    PlaybackEvent,
    PlayerError,
    PlayerHealth,
    PlayerState,
    PlayItem,
    still_seconds,
)

_ALL_KINDS = frozenset(BulletinKind)
_STILL = frozenset({BulletinKind.TEXT, BulletinKind.DOCUMENT, BulletinKind.IMAGE})


class NullPlayer:
    """STARTED at once, ENDED when the item's duration has passed on the loop's clock.

    An item lasts `durations[bulletin_id]` if given, else its `still_seconds` when it is a
    still item (text, document, image), else `default_duration_s`.
    """

    def __init__(
        self,
        *,
        kinds: Iterable[BulletinKind] = _ALL_KINDS,
        default_duration_s: float = 10.0,
        durations: Mapping[str, float] | None = None,
    ) -> None:
        self.kinds: frozenset[BulletinKind] = frozenset(kinds)
        self.default_duration_s = default_duration_s
        self.durations: dict[str, float] = dict(durations or {})
        self.volume = 100
        self.play_count = 0
        self.last_item: PlayItem | None = None
        self._sink: EventSink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._item: PlayItem | None = None
        self._state = PlayerState.IDLE
        self._started_at = 0.0
        self._duration = 0.0
        self._last_position = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def duration_of(self, item: PlayItem) -> float:
        if item.bulletin_id in self.durations:
            return self.durations[item.bulletin_id]
        if item.kind in _STILL:
            return still_seconds(item)
        return self.default_duration_s

    def set_event_sink(self, sink: EventSink) -> None:
        self._sink = sink

    @property
    def state(self) -> PlayerState:
        return self._state

    def position(self) -> float:
        if self._state is PlayerState.PLAYING and self._item is not None and self._loop is not None:
            elapsed = self._item.start_at_s + self._loop.time() - self._started_at
            return min(elapsed, self._duration)
        return self._last_position

    async def play(self, item: PlayItem) -> None:
        if item.kind not in self.kinds:
            raise PlayerError(f"this player does not play {item.kind.value}")
        loop = self._loop = asyncio.get_running_loop()
        if self._timer is not None:
            self._timer.cancel()
        self._item = self.last_item = item
        self.play_count += 1
        self._duration = self.duration_of(item)
        self._state = PlayerState.PLAYING
        self._started_at = loop.time()
        self._last_position = item.start_at_s
        remaining = max(0.0, self._duration - item.start_at_s)
        self._timer = loop.call_later(remaining, self._finish, item)
        if self._sink is not None:
            self._sink(PlaybackEvent(EventType.STARTED, item.bulletin_id, item.start_at_s))

    def _finish(self, item: PlayItem) -> None:
        self._timer = None
        if item is not self._item:
            return
        self._state = PlayerState.IDLE
        self._last_position = self._duration
        if self._sink is not None:
            self._sink(PlaybackEvent(EventType.ENDED, item.bulletin_id, self._duration))

    async def stop(self) -> float:
        position = self.position()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._state = PlayerState.IDLE
        self._last_position = position
        self._item = None
        return position

    async def set_volume(self, volume: int) -> None:
        self.volume = max(0, min(100, int(volume)))

    def health(self) -> PlayerHealth:
        # Nothing real to go wrong: it never hangs and has no output to check.
        return PlayerHealth(self._state)

    async def close(self) -> None:
        await self.stop()
