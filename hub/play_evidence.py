"""Proof of play is evidence, not a claim to believe: the rules a reported airing must meet.

A device reports each airing (bulletin, start, end, outcome, position). The hub stores it as
a play, and monthly reports add up plays, only when it could have happened:

- the bulletin exists, was sent to this device (its manifest or an emergency push: published
  or later cancelled, aimed at the device, its commune or the province, of a kind the device
  can air), and the report names its real priority and kind;
- the airing began while the device could hold the bulletin: from its publication (or
  valid_from, whichever is later) until its valid_until or cancellation, give or take the
  clock slack; a bulletin expired or cancelled since is still reported for the airings made
  while it was valid;
- times are sane: not before the device was enrolled, not after the hub's now, and the end
  not before the start (all with the clock slack);
- the airing lasts no longer than its content can: spoken text its words at the slowest
  speech rate; text on a board its characters at the slowest reading pace (never less than
  its display_seconds); a picture its display_seconds or one animation loop (ANIMATION_CAP);
  audio and video their file's decoded duration (media.duration_s, measured at upload by
  hub/probe.py); a file of unknown length (uploaded before the hub probed files, or a
  document's file) the bulletin's validity window and at most MEDIA_CAP; plus CONTENT_SLACK;
  the position inside the content likewise, and finite.

Anything else is refused with a stable reason code and a sentence for the operator; refused
reports are kept (never silently dropped) and the device's status counts them.

Pure: plain values in, a refusal or None out; the handler does the I/O. Times are compared
as whole microseconds since the epoch (`epoch_us`): a batch checks each airing against several
bounds, and an aware datetime compare calls both offsets each time, ten times an int compare.
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from loa_contract import BulletinKind, DeviceKind, Priority, ProofOfPlay

from .db import EPOCH, epoch_us

#: How far a device's clock may be from the hub's: the agent corrects its own time from the
#: hub within seconds, and trusts a clock within 120 s of it; beyond this a time is wrong.
CLOCK_SLACK = timedelta(minutes=5)
#: Above a content's length an airing may also run the amplifier's pre-roll, the player's
#: start and a slow stop: the larger of this and CONTENT_SLACK_SHARE of the length.
CONTENT_SLACK = timedelta(seconds=30)
CONTENT_SLACK_SHARE = 0.10
#: The longest single airing of an audio or video file the hub accepts while it does not know
#: the file's length (a recorded commune meeting runs a few hours).
MEDIA_CAP = timedelta(hours=6)
#: Speech: espeak-ng's slowest rate is 80 words a minute (0.75 s a word); a second a word
#: leaves room for the pauses at punctuation.
SPOKEN_SECONDS_PER_WORD = 1.0
#: A board shows text at its profile's pace; the slowest shipped, a P10 LED panel's crawl,
#: shows about 3.6 characters a second. A bound below any pace a profile would choose.
SLOWEST_READING_CHARS_PER_S = 1.0
#: The longest one loop of an animated picture may run.
ANIMATION_CAP = timedelta(minutes=10)
#: The largest integer SQLite stores (a seq beyond it cannot be kept, so it cannot be acked).
SQLITE_MAX_INTEGER = 2**63 - 1
#: The test tone's pseudo-id on the agent (edge_agent/agent.py TEST_TONE_ID); the agent does
#: not report it, and a report of it is refused like any id that is not a bulletin.
TEST_TONE_ID = "__test_tone__"

#: Every reason code, in the order the rules are checked (the first that applies is given).
REASONS: tuple[str, ...] = (
    "ends_before_start",
    "in_future",
    "before_enrollment",
    "unknown_bulletin",
    "not_sent_to_device",
    "kind_mismatch",
    "priority_mismatch",
    "outside_validity",
    "too_long",
    "bad_position",
)

_STILL = frozenset({BulletinKind.TEXT, BulletinKind.DOCUMENT, BulletinKind.IMAGE})
_TIMED = frozenset({BulletinKind.AUDIO, BulletinKind.VIDEO})
_SPOKEN = frozenset({BulletinKind.TEXT, BulletinKind.DOCUMENT})


@dataclass(frozen=True, slots=True, weakref_slot=True)
class SentBulletin:
    """What the hub knows of a bulletin a device asks to be credited with (see
    `sent_bulletin`, which fills the bounds)."""

    id: str
    kind: BulletinKind
    priority: Priority
    #: Sent to this device: published or cancelled since, aimed at it, of a kind it airs.
    sent_to_device: bool
    #: When the device could first hold it: its publication or valid_from, the later.
    held_from: datetime
    #: When it stopped being valid: valid_until or its cancellation, the earlier.
    held_until: datetime
    #: The longest an airing of it can last on this device, slack included.
    longest: timedelta
    #: An airing must start within these (epoch_us): `held_from` and `held_until` with the
    #: clock slack.
    earliest_start_us: int
    latest_start_us: int
    #: `longest` in microseconds, and in seconds for the position.
    longest_us: int
    longest_s: float
    #: The decoded duration of its audio or video file, when the hub knows it (`longest` is
    #: then this with slack).
    media_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class DeviceBounds:
    """The times any airing of one device must lie within, for one batch (epoch_us)."""

    #: Its enrollment less the clock slack (None: not known).
    earliest_start_us: int | None
    #: The hub's now plus the clock slack.
    latest_end_us: int


@dataclass(frozen=True)
class Refusal:
    reason: str
    detail: str


def content_seconds(
    kind: BulletinKind,
    device_kind: DeviceKind,
    *,
    words: int,
    display_seconds: float,
    held_from: datetime,
    held_until: datetime,
    chars: int = 0,
    media_seconds: float | None = None,
) -> float:
    """The longest the bulletin's content can run on this kind of device, before slack.

    `words` and `chars` are of the bulletin's own text (0 for a document whose text is in
    its file, which the device extracts: the hub does not know its length, so it is judged
    like a file of unknown length). `media_seconds` is the decoded duration of an audio or
    video bulletin's file, None when the hub does not know it."""
    if kind in _TIMED and known_duration(media_seconds):
        assert media_seconds is not None
        return media_seconds
    window = max(0.0, min((held_until - held_from).total_seconds(), MEDIA_CAP.total_seconds()))
    if kind in _SPOKEN and device_kind is DeviceKind.SPEAKER:
        return words * SPOKEN_SECONDS_PER_WORD if words else window
    if kind in _SPOKEN:
        # A board shows a text whole (a ticker or pages at the profile's pace), however long
        # that takes: display_seconds is only its least.
        return max(display_seconds, chars / SLOWEST_READING_CHARS_PER_S) if chars else window
    if kind is BulletinKind.IMAGE:
        # An animated picture airs at least one loop, whose length the hub does not measure.
        return max(display_seconds, ANIMATION_CAP.total_seconds())
    return window


def known_duration(seconds: float | None) -> bool:
    """A stored duration to judge by: a positive, finite number of seconds."""
    return seconds is not None and math.isfinite(seconds) and seconds > 0


def with_slack(seconds: float) -> float:
    return seconds + max(CONTENT_SLACK.total_seconds(), seconds * CONTENT_SLACK_SHARE)


def sent_bulletin(
    id: str,
    kind: BulletinKind,
    priority: Priority,
    *,
    sent_to_device: bool,
    held_from: datetime,
    held_until: datetime,
    device_kind: DeviceKind,
    words: int,
    display_seconds: float,
    chars: int = 0,
    media_seconds: float | None = None,
) -> SentBulletin:
    """A bulletin's facts with its bounds worked out once (a batch checks many airings)."""
    content = content_seconds(
        kind,
        device_kind,
        words=words,
        chars=chars,
        display_seconds=display_seconds,
        held_from=held_from,
        held_until=held_until,
        media_seconds=media_seconds,
    )
    timed = kind in _TIMED and known_duration(media_seconds)
    longest = timedelta(seconds=with_slack(content))
    return SentBulletin(
        id=id,
        kind=kind,
        priority=priority,
        sent_to_device=sent_to_device,
        held_from=held_from,
        held_until=held_until,
        longest=longest,
        # Added as integers: a validity that ends at the calendar's end still has a bound.
        earliest_start_us=epoch_us(held_from) - _CLOCK_SLACK_US,
        latest_start_us=epoch_us(held_until) + _CLOCK_SLACK_US,
        longest_us=longest // _MICROSECOND,
        longest_s=longest.total_seconds(),
        media_seconds=media_seconds if timed else None,
    )


_MICROSECOND = timedelta(microseconds=1)
_CLOCK_SLACK_US = CLOCK_SLACK // _MICROSECOND


def device_bounds(enrolled_at: datetime | None, now: datetime) -> DeviceBounds:
    return DeviceBounds(
        earliest_start_us=(
            epoch_us(enrolled_at) - _CLOCK_SLACK_US if enrolled_at is not None else None
        ),
        latest_end_us=epoch_us(now) + _CLOCK_SLACK_US,
    )


def refusal(
    play: ProofOfPlay,
    started_us: int,
    ended_us: int,
    bulletin: SentBulletin | None,
    device: DeviceBounds,
) -> Refusal | None:
    """Why the hub refuses this reported airing, or None when it is credible. `started_us`
    and `ended_us` are the play's times as epoch_us (worked out once: the caller stores
    them too)."""
    if ended_us < started_us:
        return Refusal(
            "ends_before_start",
            f"ended_at {play.ended_at} is before started_at {play.started_at}",
        )
    if ended_us > device.latest_end_us:
        return Refusal(
            "in_future",
            f"ended_at {play.ended_at} is after the hub's time"
            f" ({_from_epoch_us(device.latest_end_us)} with slack)",
        )
    if device.earliest_start_us is not None and started_us < device.earliest_start_us:
        return Refusal(
            "before_enrollment",
            f"started_at {play.started_at} is before the device was enrolled"
            f" ({_from_epoch_us(device.earliest_start_us)} with slack)",
        )
    if bulletin is None:
        what = "the test tone" if play.bulletin_id == TEST_TONE_ID else "no bulletin"
        # The id as sent is in the stored row; the sentence quotes only its start.
        return Refusal("unknown_bulletin", f"{play.bulletin_id[:80]!r} is {what}, not a bulletin")
    if not bulletin.sent_to_device:
        return Refusal(
            "not_sent_to_device", f"bulletin {bulletin.id!r} was never sent to this device"
        )
    if play.kind is not bulletin.kind:
        return Refusal(
            "kind_mismatch",
            f"reported as {play.kind.value}, the bulletin is {bulletin.kind.value}",
        )
    if play.priority is not bulletin.priority:
        return Refusal(
            "priority_mismatch",
            f"reported as {play.priority.value}, the bulletin is {bulletin.priority.value}",
        )
    if not bulletin.earliest_start_us <= started_us <= bulletin.latest_start_us:
        return Refusal(
            "outside_validity",
            f"started_at {play.started_at} is outside the time the bulletin was valid for the"
            f" device ({bulletin.held_from} to {bulletin.held_until})",
        )
    if ended_us - started_us > bulletin.longest_us:
        lasted = (ended_us - started_us) / 1e6
        if bulletin.media_seconds is not None:
            return Refusal(
                "too_long",
                f"the airing lasted {lasted:.0f} s; its file plays {bulletin.media_seconds:.1f} s"
                f" (decoded at upload), at most {bulletin.longest_s:.0f} s with slack",
            )
        return Refusal(
            "too_long",
            f"the airing lasted {lasted:.0f} s; its content allows"
            f" at most {bulletin.longest_s:.0f} s",
        )
    position = play.position_s
    if not position <= bulletin.longest_s:  # also refuses inf and nan
        return Refusal(
            "bad_position",
            f"position_s {position} is beyond the content's {bulletin.longest_s:.0f} s",
        )
    return None


def _from_epoch_us(us: int) -> datetime:
    """For a refusal's sentence: the bound as a time (the bounds are built from datetimes, so
    they are within the calendar)."""
    return EPOCH + us * _MICROSECOND


class SentCache:
    """What the hub found of the bulletins each device reported, kept between its batches:
    an agent's outbox names the same few bulletins batch after batch, and looking them up
    again cost more than judging the airings.

    An entry holds for one manifest version of its device. Whatever changes what a device
    could have aired (a publish or a cancel that reaches it) raises that version in the same
    transaction, and every request reads the version afresh when it authenticates the
    device, so a change is seen by the next batch, on any hub node sharing the database.
    Only bulletins found are kept: an id that names nothing is looked up again each time.
    The enrollment is not kept (a re-enrolled device keeps its manifest version).

    Bounded to `capacity` devices, least recently used dropped first; devices of one kind
    share one object per bulletin fact (a province-wide bulletin is one object, not one per
    device)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._devices: OrderedDict[str, tuple[int, dict[str, SentBulletin]]] = OrderedDict()
        self._shared: weakref.WeakValueDictionary[tuple[object, ...], SentBulletin] = (
            weakref.WeakValueDictionary()
        )

    def known(self, device_id: str, version: int) -> Mapping[str, SentBulletin]:
        """What is kept for the device at this manifest version (empty when nothing is)."""
        entry = self._devices.get(device_id)
        if entry is None or entry[0] != version:
            return {}
        self._devices.move_to_end(device_id)
        return entry[1]

    def add(self, device_id: str, version: int, found: Mapping[str, SentBulletin]) -> None:
        """Keep bulletins looked up for the device when it was at `version` (read after the
        version, so at least as new). A lookup made at an older version than the kept one
        is dropped; a newer version replaces the entry."""
        entry = self._devices.get(device_id)
        if entry is not None and entry[0] > version:
            return
        if entry is None or entry[0] < version:
            entry = (version, {})
            self._devices[device_id] = entry
            if len(self._devices) > self._capacity:
                self._devices.popitem(last=False)
        self._devices.move_to_end(device_id)
        kept = entry[1]
        for bulletin_id, bulletin in found.items():
            key = (
                bulletin.id,
                bulletin.kind,
                bulletin.priority,
                bulletin.sent_to_device,
                bulletin.held_from,
                bulletin.held_until,
                bulletin.longest,
                bulletin.media_seconds,
            )
            kept[bulletin_id] = self._shared.setdefault(key, bulletin)

    def clear(self) -> None:
        self._devices.clear()
