"""The rules a reported airing must meet (hub/play_evidence.py), one case per rule and bound."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.db import epoch_us
from hub.play_evidence import (
    ANIMATION_CAP,
    CLOCK_SLACK,
    CONTENT_SLACK,
    MEDIA_CAP,
    REASONS,
    SentBulletin,
    SentCache,
    content_seconds,
    device_bounds,
    refusal,
    sent_bulletin,
    with_slack,
)
from loa_contract import BulletinKind, DeviceKind, Priority, ProofOfPlay

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
ENROLLED = NOW - timedelta(days=60)
HELD_FROM = NOW - timedelta(days=10)
HELD_UNTIL = NOW + timedelta(days=10)
S = timedelta(seconds=1)


def bulletin(device_kind: DeviceKind = DeviceKind.SPEAKER, **change: Any) -> SentBulletin:
    base: dict[str, Any] = {
        "id": "b1",
        "kind": BulletinKind.AUDIO,
        "priority": Priority.NORMAL,
        "sent_to_device": True,
        "held_from": HELD_FROM,
        "held_until": HELD_UNTIL,
        "display_seconds": 15.0,
        "words": 0,
    }
    return sent_bulletin(**{**base, **change}, device_kind=device_kind)


def play(lasted: float = 120.0, **change: Any) -> ProofOfPlay:
    started = change.pop("started_at", NOW - timedelta(hours=1))
    base: dict[str, Any] = {
        "seq": 1,
        "bulletin_id": "b1",
        "priority": Priority.NORMAL,
        "kind": BulletinKind.AUDIO,
        "started_at": started,
        "ended_at": started + timedelta(seconds=lasted),
        "outcome": "completed",
        "position_s": max(0.0, min(lasted, 60.0)),
    }
    return ProofOfPlay(**{**base, **change})


def judge(
    p: ProofOfPlay, b: SentBulletin | None = None, *, enrolled: datetime | None = ENROLLED
) -> str | None:
    found = refusal(
        p, epoch_us(p.started_at), epoch_us(p.ended_at), b, device_bounds(enrolled, NOW)
    )
    if found is not None:
        assert found.reason in REASONS and found.detail
    return found.reason if found else None


def test_a_credible_airing_is_accepted() -> None:
    assert judge(play(), bulletin()) is None


@pytest.mark.parametrize(
    ("case", "p", "b", "reason"),
    [
        # Times.
        ("ends before it starts", play(-1.0), bulletin(), "ends_before_start"),
        ("zero length", play(0.0), bulletin(), None),
        ("a year ahead", play(started_at=NOW + timedelta(days=365)), bulletin(), "in_future"),
        ("ends at the clock slack", play(1, started_at=NOW + CLOCK_SLACK - S), bulletin(), None),
        (
            "ends past the clock slack",
            play(2, started_at=NOW + CLOCK_SLACK - S),
            bulletin(),
            "in_future",
        ),
        (
            "1970",
            play(started_at=datetime(1970, 1, 1, tzinfo=UTC)),
            bulletin(),
            "before_enrollment",
        ),
        (
            "just before enrollment, inside the slack",
            play(started_at=ENROLLED - CLOCK_SLACK + S),
            bulletin(held_from=ENROLLED - timedelta(days=1)),
            None,
        ),
        # Which bulletin.
        ("no such bulletin", play(), None, "unknown_bulletin"),
        ("the test tone", play(bulletin_id="__test_tone__"), None, "unknown_bulletin"),
        ("another commune's", play(), bulletin(sent_to_device=False), "not_sent_to_device"),
        ("wrong kind", play(kind="video"), bulletin(), "kind_mismatch"),
        ("claims emergency", play(priority="emergency"), bulletin(), "priority_mismatch"),
        # When it was valid.
        (
            "before publication",
            play(started_at=HELD_FROM - CLOCK_SLACK - S),
            bulletin(),
            "outside_validity",
        ),
        (
            "at publication within the slack",
            play(started_at=HELD_FROM - CLOCK_SLACK),
            bulletin(),
            None,
        ),
        (
            "cancelled an hour ago, aired two hours ago",
            play(started_at=NOW - timedelta(hours=2)),
            bulletin(held_until=NOW - timedelta(hours=1)),
            None,
        ),
        (
            "aired after its cancellation",
            play(started_at=NOW - timedelta(minutes=30)),
            bulletin(held_until=NOW - timedelta(hours=1)),
            "outside_validity",
        ),
        # Length.
        ("position 1e308", play(position_s=1e308), bulletin(), "bad_position"),
        ("position infinite", play(position_s=math.inf), bulletin(), "bad_position"),
        (
            "media beyond the cap",
            play(MEDIA_CAP.total_seconds() * 1.2, started_at=NOW - 2 * MEDIA_CAP),
            bulletin(),
            "too_long",
        ),
        (
            "media within the cap",
            play(MEDIA_CAP.total_seconds(), started_at=NOW - 2 * MEDIA_CAP),
            bulletin(),
            None,
        ),
    ],
)
def test_each_rule(case: str, p: ProofOfPlay, b: SentBulletin | None, reason: str | None) -> None:
    assert judge(p, b) == reason, case


def test_the_first_broken_rule_is_named() -> None:
    """A row breaking several rules gets the first reason in REASONS order."""
    worst = play(-5.0, bulletin_id="ghost", started_at=datetime(1970, 1, 1, tzinfo=UTC))
    assert judge(worst, None) == "ends_before_start"
    assert judge(play(started_at=datetime(1970, 1, 1, tzinfo=UTC)), None) == "before_enrollment"
    assert judge(play(kind="video", priority="emergency"), bulletin()) == "kind_mismatch"


def test_without_a_known_enrollment_only_the_other_bounds_apply() -> None:
    assert judge(play(), bulletin(), enrolled=None) is None


def test_a_month_long_airing_across_a_clock_correction_is_refused() -> None:
    """The November case: a 2,591,999 s airing of an item valid for two months."""
    b = bulletin(held_from=NOW - timedelta(days=60), held_until=NOW + timedelta(days=1))
    jumped = play(2_591_999.0, started_at=NOW - timedelta(seconds=2_591_999))
    assert judge(jumped, b) == "too_long"


@pytest.mark.parametrize(
    ("kind", "device", "words", "chars", "display", "window", "expected"),
    [
        # Spoken on a speaker: its words at the slowest rate.
        (BulletinKind.TEXT, DeviceKind.SPEAKER, 120, 700, 15.0, 86400, 120.0),
        (BulletinKind.DOCUMENT, DeviceKind.SPEAKER, 40, 200, 15.0, 86400, 40.0),
        # A document's file read aloud: its length is not known here, so its window.
        (BulletinKind.DOCUMENT, DeviceKind.SPEAKER, 0, 0, 15.0, 600, 600.0),
        # Text on a board: shown whole at the slowest pace, never under display_seconds.
        (BulletinKind.TEXT, DeviceKind.BOARD, 12, 60, 20.0, 86400, 60.0),
        (BulletinKind.TEXT, DeviceKind.BOARD, 2, 10, 20.0, 86400, 20.0),
        (BulletinKind.TEXT, DeviceKind.BOARD, 900, 5043, 15.0, 86400, 5043.0),
        # A document's pages on a board: its window, at most MEDIA_CAP.
        (BulletinKind.DOCUMENT, DeviceKind.BOARD, 0, 0, 15.0, 86400, MEDIA_CAP.total_seconds()),
        # A picture: display_seconds, or one loop of an animation.
        (BulletinKind.IMAGE, DeviceKind.BOARD, 0, 0, 45.0, 86400, ANIMATION_CAP.total_seconds()),
        (BulletinKind.IMAGE, DeviceKind.BOARD, 0, 0, 900.0, 86400, 900.0),
        # Audio and video: the validity window, at most MEDIA_CAP.
        (BulletinKind.AUDIO, DeviceKind.SPEAKER, 0, 0, 15.0, 600, 600.0),
        (BulletinKind.VIDEO, DeviceKind.BOARD, 0, 0, 15.0, 86400, MEDIA_CAP.total_seconds()),
    ],
)
def test_content_length_by_kind(
    kind: BulletinKind,
    device: DeviceKind,
    words: int,
    chars: int,
    display: float,
    window: int,
    expected: float,
) -> None:
    facts: dict[str, Any] = {
        "words": words,
        "chars": chars,
        "display_seconds": display,
        "held_from": HELD_FROM,
        "held_until": HELD_FROM + timedelta(seconds=window),
    }
    assert content_seconds(kind, device, **facts) == expected
    b = bulletin(device, kind=kind, **facts)
    limit = with_slack(expected)
    assert b.longest == timedelta(seconds=limit)
    start = HELD_FROM + timedelta(minutes=1)
    fits = play(limit, kind=kind, started_at=start, position_s=0.0)
    over = play(limit + 1, kind=kind, started_at=start, position_s=0.0)
    assert judge(fits, b) is None
    assert judge(over, b) == "too_long"
    past = play(10.0, kind=kind, started_at=start, position_s=limit + 1)
    assert judge(past, b) == "bad_position"


@pytest.mark.parametrize(
    ("kind", "device", "media", "window", "expected"),
    [
        # Audio and video whose file the hub decoded: its duration, whatever the window.
        (BulletinKind.AUDIO, DeviceKind.SPEAKER, 6.0, 86400, 6.0),
        (BulletinKind.AUDIO, DeviceKind.SPEAKER, 0.98, 600, 0.98),
        (BulletinKind.VIDEO, DeviceKind.BOARD, 95.5, 86400, 95.5),
        (BulletinKind.AUDIO, DeviceKind.SPEAKER, 8 * 3600.0, 86400, 8 * 3600.0),  # beyond the cap
        # A duration not known (a file uploaded before the hub probed them) or not usable.
        (BulletinKind.AUDIO, DeviceKind.SPEAKER, None, 600, 600.0),
        (BulletinKind.AUDIO, DeviceKind.SPEAKER, 0.0, 600, 600.0),
        (BulletinKind.VIDEO, DeviceKind.BOARD, math.nan, 600, 600.0),
        (BulletinKind.VIDEO, DeviceKind.BOARD, math.inf, 600, 600.0),
        # Only audio and video are judged by their file's duration.
        (BulletinKind.DOCUMENT, DeviceKind.BOARD, 30.0, 86400, MEDIA_CAP.total_seconds()),
        (BulletinKind.IMAGE, DeviceKind.BOARD, 30.0, 86400, ANIMATION_CAP.total_seconds()),
    ],
)
def test_audio_and_video_last_their_decoded_duration(
    kind: BulletinKind,
    device: DeviceKind,
    media: float | None,
    window: int,
    expected: float,
) -> None:
    facts: dict[str, Any] = {
        "words": 0,
        "chars": 0,
        "display_seconds": 15.0,
        "held_from": HELD_FROM,
        "held_until": HELD_FROM + timedelta(seconds=window),
        "media_seconds": media,
    }
    assert content_seconds(kind, device, **facts) == expected
    b = bulletin(device, kind=kind, **facts)
    limit = with_slack(expected)
    assert b.longest == timedelta(seconds=limit)
    start = HELD_FROM + timedelta(minutes=1)
    assert judge(play(limit, kind=kind, started_at=start, position_s=0.0), b) is None
    over = play(limit + 1, kind=kind, started_at=start, position_s=0.0)
    found = refusal(
        over, epoch_us(over.started_at), epoch_us(over.ended_at), b, device_bounds(ENROLLED, NOW)
    )
    assert found is not None and found.reason == "too_long"
    judged_by_file = expected == media
    assert ("decoded at upload" in found.detail) is judged_by_file, found.detail
    if judged_by_file:
        assert f"its file plays {media:.1f} s" in found.detail


def test_slack_is_the_larger_of_a_floor_and_a_share() -> None:
    floor = CONTENT_SLACK.total_seconds()
    assert with_slack(15.0) == 15.0 + floor
    assert with_slack(3600.0) == pytest.approx(3600.0 * 1.1)


def test_the_cache_holds_for_one_manifest_version() -> None:
    cache = SentCache(capacity=8)
    one, two = bulletin(id="b1"), bulletin(id="b2")
    assert cache.known("d1", 3) == {}
    cache.add("d1", 3, {"b1": one})
    cache.add("d1", 3, {"b2": two})  # a later batch's lookups join the entry
    assert cache.known("d1", 3) == {"b1": one, "b2": two}
    assert cache.known("d1", 4) == {} and cache.known("d2", 3) == {}
    # A newer version replaces the entry; a lookup made at an older one is dropped.
    cancelled = bulletin(id="b1", held_until=NOW - timedelta(hours=1))
    cache.add("d1", 4, {"b1": cancelled})
    cache.add("d1", 3, {"b1": one, "b2": two})
    assert cache.known("d1", 4) == {"b1": cancelled}
    assert cache.known("d1", 3) == {}
    cache.clear()
    assert cache.known("d1", 4) == {}


def test_the_cache_drops_the_least_recently_used_device() -> None:
    cache = SentCache(capacity=2)
    cache.add("d1", 1, {"b1": bulletin()})
    cache.add("d2", 1, {"b1": bulletin()})
    assert cache.known("d1", 1)  # d1 used: d2 is now the oldest
    cache.add("d3", 1, {"b1": bulletin()})
    assert cache.known("d1", 1) and cache.known("d3", 1)
    assert cache.known("d2", 1) == {}


def test_devices_share_one_object_per_bulletin_fact() -> None:
    cache = SentCache()
    cache.add("d1", 1, {"b1": bulletin()})
    cache.add("d2", 7, {"b1": bulletin()})
    cache.add("d3", 1, {"b1": bulletin(sent_to_device=False)})
    assert cache.known("d1", 1)["b1"] is cache.known("d2", 7)["b1"]
    assert cache.known("d3", 1)["b1"] is not cache.known("d1", 1)["b1"]
