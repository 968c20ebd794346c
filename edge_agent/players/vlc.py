"""Audio (and video on boards) through libvlc.

Three libvlc hazards shape this file. libvlc must not be called from inside its own event
callbacks (python-vlc #77: it deadlocks), so callbacks only hand a note to the asyncio loop
with `call_soon_threadsafe` and everything happens there. And `stop()` has been seen to hang
(python-vlc #74), so it runs in a throw-away thread with a deadline; a stop that misses the
deadline leaves its MediaPlayer behind, a fresh one takes over, and `stuck_stops` counts it
for the health report (`health()`).

A third: libvlc plays on in silence when the audio output cannot open or loses its device
(to Playing and Ended, as if all were well). Its error log is the only sign, so the player
listens to it (vlc_log.py): an audio item whose sound is lost is stopped and failed, and
`health()` names the fault with libvlc's words until an item is heard whole.

Every libvlc call other than that stop runs on the loop thread; they are all quick (well under
a millisecond) once the instance exists, which is what keeps pre-emption in the tens of ms.

On a board, video goes to libvlc's own output (a window over the text screen). A video that
stops producing pictures while libvlc still says "playing" is a frozen screen; the health
check sees it in libvlc's per-media statistics (pictures displayed), not in the picture.
`VideoFrameSink` receives decoded pictures in memory instead (libvlc's vmem): what tests and
a technician use to prove a file really decodes, down to its pixels.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import vlc

from loa_contract import BulletinKind, Fault

from .alsa_probe import PROC_ASOUND, missing_playback_device
from .base import (
    EventSink,
    EventType,
    PlaybackEvent,
    PlayerError,
    PlayerHealth,
    PlayerState,
    PlayItem,
    self_check,
)
from .vlc_log import VlcErrorLog, audio_output_lost, is_audio_output_error

log = logging.getLogger(__name__)

_VlcNote = Literal["playing", "ended", "error"]

# A small file cache: media are local verified files, and libvlc's default of 1 s both
# delays the start and, with outputs that cannot drain (dummy), ends items early.
_BASE_ARGS = ("--quiet", "--no-video-title-show", "--file-caching=100")


class VideoFrameSink:
    """Decoded video pictures delivered to memory (libvlc's vmem) rather than a window.

    libvlc scales every picture to `width` x `height`, 32-bit BGRX ("RV32"), and calls the
    callbacks below on its video output thread. They only copy and count: no libvlc call
    (python-vlc #77) and nothing blocking, or the decoder would stall behind them.
    """

    CHROMA = "RV32"

    def __init__(
        self, width: int, height: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.width, self.height = int(width), int(height)
        self.pitch = self.width * 4
        self._buffer = (ctypes.c_ubyte * (self.pitch * self.height))()
        self._guard = threading.Lock()
        self._latest = b""
        self._clock = clock
        #: Pictures shown so far (libvlc repeats the last one while paused).
        self.frames = 0
        self.last_frame_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrived: asyncio.Event | None = None
        # ctypes keeps no reference to a callback it hands to C: these must live as long as
        # any player that may call them, so they live on the sink.
        self._lock_cb = vlc.CallbackDecorators.VideoLockCb(self._lock)
        self._unlock_cb = vlc.CallbackDecorators.VideoUnlockCb(self._unlock)
        self._display_cb = vlc.CallbackDecorators.VideoDisplayCb(self._display)

    def attach(self, mp: vlc.MediaPlayer) -> None:
        mp.video_set_callbacks(self._lock_cb, self._unlock_cb, self._display_cb, None)
        mp.video_set_format(self.CHROMA, self.width, self.height, self.pitch)

    def _lock(self, _opaque: Any, planes: Any) -> None:
        planes[0] = ctypes.cast(self._buffer, ctypes.c_void_p)

    def _unlock(self, _opaque: Any, _picture: Any, _planes: Any) -> None:
        pass

    def _display(self, _opaque: Any, _picture: Any) -> None:
        with self._guard:
            self._latest = bytes(self._buffer)
            self.frames += 1
            self.last_frame_at = self._clock()
        loop, arrived = self._loop, self._arrived
        if loop is not None and arrived is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(arrived.set)
            except RuntimeError:
                pass  # the loop closed meanwhile: nobody waits any more

    async def wait_for_frames(self, count: int, timeout: float = 5.0) -> None:
        """Return once `count` pictures in all have been shown (woken per picture)."""
        self._loop = asyncio.get_running_loop()
        arrived = self._arrived = asyncio.Event()
        async with asyncio.timeout(timeout):
            while True:
                arrived.clear()
                if self.frames >= count:
                    return
                await arrived.wait()

    def latest(self) -> bytes:
        """The last picture, BGRX rows of `pitch` bytes (empty before the first)."""
        with self._guard:
            return self._latest

    def rgb_at(self, x: int, y: int) -> tuple[int, int, int]:
        picture = self.latest()
        if not picture:
            raise LookupError("no picture yet")
        at = y * self.pitch + x * 4
        blue, green, red = picture[at], picture[at + 1], picture[at + 2]
        return red, green, blue


class _Slot:
    """One libvlc MediaPlayer, and the token of the item it was last told to play.

    The token is read from libvlc's event thread: it is only ever changed while that player
    has no running input (stopped, or before `play`), so a late event carries its own item's
    token and the loop can tell it is stale.
    """

    __slots__ = ("abandoned", "active", "finished_stop", "guard", "mp", "token")

    def __init__(self, mp: vlc.MediaPlayer) -> None:
        self.mp = mp
        self.token = 0
        self.active = False  # has an input that must be stopped before reuse
        self.guard = threading.Lock()
        self.abandoned = False
        self.finished_stop = False


class VlcPlayer:
    """A Player on python-vlc: one libvlc instance, one MediaPlayer reused for every item."""

    def __init__(
        self,
        vlc_args: Sequence[str] = (),
        kinds: Iterable[BulletinKind] = (BulletinKind.AUDIO,),
        *,
        fullscreen: bool = False,
        stop_timeout_s: float = 2.0,
        start_timeout_s: float = 5.0,
        frame_sink: VideoFrameSink | None = None,
        stall_after_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        proc_asound: Path = PROC_ASOUND,
    ) -> None:
        self.kinds: frozenset[BulletinKind] = frozenset(kinds)
        video = BulletinKind.VIDEO in self.kinds
        # Without --no-video an audio-only device would open a window for cover art.
        args = [*_BASE_ARGS, *(() if video else ("--no-video",)), *vlc_args]
        instance = vlc.Instance(args)
        if instance is None:
            raise PlayerError(f"libvlc could not start with arguments {args!r}")
        self._instance: vlc.Instance = instance
        # The only sign of a sound card that cannot be opened (vlc_log.py). Attached before
        # any player exists, so no message of any item is missed.
        self._errors = VlcErrorLog(self._from_vlc_log)
        self._errors.attach(instance)
        #: Why the audio output last failed; None once an item was heard whole since.
        self.audio_failure: str | None = None
        # The token of the item whose airing the audio output failed (it is failed once).
        self._audio_failed_token: int | None = None
        self._reason_token: int | None = None  # the item `audio_failure` was first said of
        # The first audio error logged of an item (its token), kept as the reason if the
        # sound turns out lost: it names the device, the messages after it only echo it.
        self._first_error: tuple[int | None, str] = (None, "")
        self._halts: set[asyncio.Task[None]] = set()
        #: The ALSA device sound goes to, looked for at each health sample (alsa_probe.py);
        #: None when the output is not ALSA (dummy, PulseAudio, libvlc's own choice).
        self.alsa_device = _alsa_device(args)
        self._proc_asound = proc_asound
        self._fullscreen = fullscreen and video
        self.stop_timeout_s = stop_timeout_s
        self.start_timeout_s = start_timeout_s
        self._sink: EventSink | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._token = 0
        self._item: PlayItem | None = None
        self._state = PlayerState.IDLE
        self._last_position = 0.0
        self._start_waiter: asyncio.Future[None] | None = None
        self._volume: int | None = None
        self._closed = False
        #: Stops that did not return within `stop_timeout_s` (their player was replaced).
        self.stuck_stops = 0
        #: Seconds the last `play()` took from call to libvlc reporting Playing (stop included).
        self.last_start_s = 0.0
        #: Seconds the last stop took (the deadline, when it was abandoned).
        self.last_stop_s = 0.0
        self.frame_sink = frame_sink
        #: A playing video that shows no new picture for this long is a frozen screen.
        self.stall_after_s = stall_after_s
        self._clock = clock
        self._media: vlc.Media | None = None
        self._progress: int | None = None
        self._progress_at = clock()
        # Players whose stop was abandoned and has not returned yet: libvlc still hangs.
        self._hung: list[_Slot] = []
        self._slot = self._new_slot()

    # ------------------------------------------------------------------ libvlc plumbing

    def _new_slot(self) -> _Slot:
        mp = self._instance.media_player_new()
        if mp is None:
            raise PlayerError("libvlc could not create a media player")
        slot = _Slot(mp)
        events = mp.event_manager()
        events.event_attach(vlc.EventType.MediaPlayerPlaying, self._from_vlc, slot, "playing")
        events.event_attach(vlc.EventType.MediaPlayerEndReached, self._from_vlc, slot, "ended")
        events.event_attach(
            vlc.EventType.MediaPlayerEncounteredError, self._from_vlc, slot, "error"
        )
        if self._fullscreen:
            mp.set_fullscreen(True)
        if self.frame_sink is not None:
            self.frame_sink.attach(mp)
        if self._volume is not None:
            mp.audio_set_volume(self._volume)
        return slot

    def _from_vlc(self, _event: Any, slot: _Slot, note: _VlcNote) -> None:
        # libvlc's own thread: touch nothing of libvlc here, only pass the note on.
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._on_vlc, slot, slot.token, note)
        except RuntimeError:
            pass  # the loop closed between the check and the call: nobody is listening

    def _on_vlc(self, slot: _Slot, token: int, note: _VlcNote) -> None:
        if slot is not self._slot or token != self._token or self._item is None:
            return  # from an abandoned player or an item already replaced
        if token == self._audio_failed_token:
            return  # failed already (its sound never left the device); being stopped
        item = self._item
        waiter = self._start_waiter
        if note == "playing":
            if self._state is PlayerState.PLAYING:
                return  # libvlc repeats Playing after a pause or seek
            self._state = PlayerState.PLAYING
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            self._emit(EventType.STARTED, item, item.start_at_s)
            return
        if note == "ended":
            length_ms = slot.mp.get_length()
            played_ms = slot.mp.get_time()
            self._last_position = max(length_ms or 0, played_ms or 0, 0) / 1000
            if self._last_position <= 0 and item.start_at_s <= 0:
                # libvlc "plays" an undecodable file to an immediate end; that is a failure.
                note = "error"
        if note == "ended":
            self._state = PlayerState.IDLE
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            if token != self._reason_token and self._had_sound(item):
                self.audio_failure = None  # heard whole: the output works again
            self._emit(EventType.ENDED, item, self._last_position)
            return
        detail = f"libvlc could not play {item.path}"
        if waiter is not None and not waiter.done():
            # play() is still waiting: it raises, so no ERROR event as well.
            self._state = PlayerState.ERROR
            waiter.set_exception(PlayerError(detail))
            return
        self._last_position = self._read_position()
        self._state = PlayerState.ERROR
        self._emit(EventType.ERROR, item, self._last_position, detail)

    def _had_sound(self, item: PlayItem) -> bool:
        """Whether the item that just ended went through the audio output: any audio item,
        a video only with a sound track (a silent one proves nothing of the output)."""
        if item.kind is BulletinKind.AUDIO:
            return True
        media = self._media
        if item.kind is not BulletinKind.VIDEO or media is None:
            return False
        try:
            return any(track.type == vlc.TrackType.audio for track in media.tracks_get() or ())
        except Exception:  # the ENDED that follows must go out whatever libvlc did here
            log.exception("libvlc could not list the tracks of %s", item.path)
            return False

    def _from_vlc_log(self, message: str) -> None:
        # libvlc's own thread, as in _from_vlc. The token is read here, at the moment of the
        # message: one logged while an item is being replaced carries the old item's.
        if not is_audio_output_error(message):
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._on_audio_error, self._token, message)
        except RuntimeError:
            pass  # the loop closed meanwhile

    def _on_audio_error(self, token: int, message: str) -> None:
        """An error of the audio output. Only one that says the sound is lost
        (`audio_output_lost`) fails anything: libvlc logs others on its way to an output
        that works (PulseAudio down, then ALSA). Then libvlc plays on in silence, so the
        item is failed here, with the first audio error said of it as the reason (it names
        the device).

        Only an audio item's airing is failed (a board's video still shows its pictures);
        the fault is kept for the health report either way."""
        item = self._item
        waiter = self._start_waiter
        starting = waiter is not None and not waiter.done()
        # Starting or playing now: not an item being stopped, whose input logs on a moment.
        live = (
            item is not None
            and token == self._token
            and (starting or self._state is PlayerState.PLAYING)
        )
        if live and token != self._first_error[0]:
            self._first_error = (token, message)
        if not audio_output_lost(message):
            return
        reason = self._first_error[1] if live else message
        if live and token != self._reason_token:
            self._reason_token = token
            self.audio_failure = reason
        elif self.audio_failure is None:
            self.audio_failure = reason
        if not live or item is None or token == self._audio_failed_token:
            return
        if item.kind is not BulletinKind.AUDIO:
            return
        self._audio_failed_token = token
        detail = f"audio output failed: {reason}"
        log.error("%s: %s", item.bulletin_id, detail)
        self._state = PlayerState.ERROR
        if waiter is not None and starting:
            waiter.set_exception(PlayerError(detail))  # play() raises, then stops it
            return
        self._last_position = self._read_position()
        self._emit(EventType.ERROR, item, self._last_position, detail)
        halt = asyncio.ensure_future(self._halt_if_current(token))
        self._halts.add(halt)
        halt.add_done_callback(self._halts.discard)

    async def _halt_if_current(self, token: int) -> None:
        """Stop the input left playing in silence, unless another item replaced it."""
        async with self._lock:
            if self._token == token:
                await self._halt()
                self._state = PlayerState.ERROR

    def _emit(self, kind: EventType, item: PlayItem, position: float, detail: str = "") -> None:
        if self._sink is not None:
            self._sink(PlaybackEvent(kind, item.bulletin_id, position, detail))

    def set_frame_sink(self, sink: VideoFrameSink) -> None:
        """Send the video of items played from now on to `sink` instead of a window."""
        if self._state is PlayerState.PLAYING:
            raise PlayerError("set the frame sink before playing")
        self.frame_sink = sink
        sink.attach(self._slot.mp)

    def video_frames(self) -> int | None:
        """Pictures libvlc has shown of the current video (None: no video playing)."""
        item, media = self._item, self._media
        if self._state is not PlayerState.PLAYING or item is None or media is None:
            return None
        if item.kind is not BulletinKind.VIDEO:
            return None
        stats = vlc.MediaStats()
        if not media.get_stats(stats):
            return None
        return int(stats.displayed_pictures)

    def screen_fault(self) -> Fault | None:
        """What is wrong, if anything: PLAYER_STUCK while an abandoned stop still hangs
        inside libvlc; SCREEN_FROZEN while a video plays but no new picture came for
        `stall_after_s` (by `clock`).

        Progress is judged between calls (the health sample): the first call after a new
        picture notes it, a later one without any sees the stall.
        """
        self._hung = [slot for slot in self._hung if not slot.finished_stop]
        if self._hung:
            return Fault.PLAYER_STUCK
        frames = self.video_frames()
        if frames is None:
            return None
        now = self._clock()
        if frames != self._progress:
            self._progress, self._progress_at = frames, now
            return None
        return Fault.SCREEN_FROZEN if now - self._progress_at > self.stall_after_s else None

    def _read_position(self) -> float:
        assert self._item is not None
        ms: int | None = self._slot.mp.get_time()
        if ms is None or ms <= 0:
            # libvlc reports 0 until the first output, also after a start-time seek.
            return self._item.start_at_s
        return ms / 1000

    # ------------------------------------------------------------------ Player interface

    def set_event_sink(self, sink: EventSink) -> None:
        self._sink = sink

    @property
    def state(self) -> PlayerState:
        return self._state

    def position(self) -> float:
        if self._state is PlayerState.PLAYING and self._item is not None:
            return self._read_position()
        return self._last_position

    async def play(self, item: PlayItem) -> None:
        if self._closed:
            raise PlayerError("player is closed")
        if item.kind not in self.kinds:
            raise PlayerError(f"this player does not play {item.kind.value}")
        if item.path is None:
            raise PlayerError(f"{item.kind.value} item {item.bulletin_id} has no file")
        if not item.path.is_file():
            raise PlayerError(f"{item.path} does not exist")
        self._loop = asyncio.get_running_loop()
        began = time.perf_counter()
        async with self._lock:
            await self._halt()
            await self._start(item)
        self.last_start_s = time.perf_counter() - began

    async def _start(self, item: PlayItem) -> None:
        assert self._loop is not None
        self._token += 1
        slot = self._slot
        slot.token = self._token
        media = self._instance.media_new_path(str(item.path))
        if media is None:
            raise PlayerError(f"libvlc cannot open {item.path}")
        if item.start_at_s > 0:
            # Start there directly: a seek after Playing would let the top be heard first.
            media.add_option(f":start-time={item.start_at_s:.3f}")
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._start_waiter = waiter
        self._item = item
        self._last_position = item.start_at_s
        self._state = PlayerState.IDLE
        # Nothing shown yet: a video that never shows a picture is frozen after the deadline.
        self._progress, self._progress_at = None, self._clock()
        slot.mp.set_media(media)
        # Kept (the player holds its own reference too) for its statistics.
        previous, self._media = self._media, media
        if previous is not None:
            previous.release()
        slot.active = True
        if slot.mp.play() != 0:
            self._start_waiter = None
            self._state = PlayerState.ERROR
            raise PlayerError(f"libvlc refused to play {item.path}")
        try:
            await asyncio.wait_for(waiter, self.start_timeout_s)
        except TimeoutError:
            await self._halt()
            self._state = PlayerState.ERROR
            raise PlayerError(
                f"{item.path} did not start within {self.start_timeout_s:g} s"
            ) from None
        except PlayerError:
            if self._audio_failed_token == slot.token:
                # libvlc would play it on in silence: stop it before saying it failed.
                await self._halt()
                self._state = PlayerState.ERROR
            raise
        finally:
            self._start_waiter = None
        if self._volume is not None and self._state is PlayerState.PLAYING:
            # Some outputs come up at their own level with each new stream.
            slot.mp.audio_set_volume(self._volume)

    async def stop(self) -> float:
        async with self._lock:
            return await self._halt()

    async def _halt(self) -> float:
        """Stop whatever the current MediaPlayer has; returns the position reached."""
        if self._state is PlayerState.PLAYING:
            self._last_position = self._read_position()
        position = self._last_position
        # From here on events of the old item are stale, and position() and set_volume()
        # keep off the player that is being stopped (a hung stop holds its locks).
        self._token += 1
        self._state = PlayerState.IDLE
        slot = self._slot
        if not slot.active:
            return position
        began = time.perf_counter()
        if not await self._stop_in_thread(slot):
            with slot.guard:
                stuck = not slot.finished_stop
                slot.abandoned = stuck
            if stuck:
                self.stuck_stops += 1
                self._hung.append(slot)
                log.error(
                    "libvlc stop did not return within %.1f s; player replaced (%d so far)",
                    self.stop_timeout_s,
                    self.stuck_stops,
                )
                self._slot = self._new_slot()
        slot.active = False
        self.last_stop_s = time.perf_counter() - began
        return position

    async def _stop_in_thread(self, slot: _Slot) -> bool:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def finish() -> None:
            if not done.done():
                done.set_result(None)

        def run() -> None:
            try:
                slot.mp.stop()
            except Exception:  # a dying libvlc must not kill the thread silently
                log.exception("libvlc stop failed")
            with slot.guard:
                slot.finished_stop = True
                release = slot.abandoned
            if release:
                slot.mp.release()  # it came back after all; nobody uses it any more
                return
            try:
                loop.call_soon_threadsafe(finish)
            except RuntimeError:
                pass  # loop already closed

        slot.finished_stop = False
        # A daemon thread per stop: a hung one must never block interpreter exit or
        # occupy a pool worker the next stop needs.
        threading.Thread(target=run, name="vlc-stop", daemon=True).start()
        try:
            await asyncio.wait_for(asyncio.shield(done), self.stop_timeout_s)
        except TimeoutError:
            return False
        return True

    async def set_volume(self, volume: int) -> None:
        self._volume = max(0, min(100, int(volume)))
        if self._state is PlayerState.PLAYING:
            self._slot.mp.audio_set_volume(self._volume)
        # Otherwise it is applied when the next item starts.

    def output_problem(self) -> str | None:
        """Why the sound cannot reach the loudspeaker now, if it cannot: the ALSA device is
        not there, or the last airing's sound was lost (until an item is heard whole)."""
        failure = self.audio_failure
        if self.alsa_device is not None:
            missing = missing_playback_device(self.alsa_device, self._proc_asound)
            if missing is not None:
                return f"{missing}; last airing: {failure}" if failure else missing
        return failure

    def health(self) -> PlayerHealth:
        faults = self_check(self.screen_fault, "libvlc")
        failure = self.output_problem()
        if failure is None:
            return PlayerHealth(self._state, self.stuck_stops, faults)
        return PlayerHealth(
            self._state,
            self.stuck_stops,
            (*faults, Fault.AUDIO_OUTPUT_FAILED),
            {Fault.AUDIO_OUTPUT_FAILED: failure},
        )

    async def close(self) -> None:
        if self._closed:
            return
        async with self._lock:
            await self._halt()
            self._closed = True
            self._slot.mp.release()
            if self._media is not None:
                self._media.release()
                self._media = None
            self._errors.detach(self._instance)
            self._instance.release()


def _alsa_device(args: Sequence[str]) -> str | None:
    """The ALSA device libvlc was told to play to (the last word wins, as in libvlc), or
    None when its output is not ALSA."""
    output = device = None
    for arg in args:
        if arg.startswith("--aout="):
            output = arg.removeprefix("--aout=")
        elif arg.startswith("--alsa-audio-device="):
            device = arg.removeprefix("--alsa-audio-device=")
    if output != "alsa":
        return None
    return device or "default"
