"""Notices of planned maintenance and of a switch to the standby (thông báo bảo trì, chuyển
sang hệ thống dự phòng): the rules, as plain values in and out.

Thái Nguyên Quy chế Điều 9.2: a pause of service for maintenance or an upgrade is announced,
with the managing unit's written consent, at least 48 hours ahead, so it can tell the agencies
concerned. The hub does not block a late notice (a failing disk does not wait two days): it
warns, and the warning is kept with the notice and in the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class NoticeKind(StrEnum):
    #: Bảo trì, nâng cấp: the service pauses or degrades for a while.
    MAINTENANCE = "maintenance"
    #: Chuyển sang hệ thống dự phòng: the standby hub takes over.
    SWITCHOVER = "switchover"


class NoticeWarning(StrEnum):
    #: Announced less than `NOTICE_AHEAD` before it starts.
    SHORT_NOTICE = "short_notice"
    #: No reference to the managing unit's written consent.
    NO_CONSENT = "no_consent"


#: Thái Nguyên Quy chế Điều 9.2.
NOTICE_AHEAD = timedelta(hours=48)
#: A notice is about one stretch of work, not a standing state.
LONGEST = timedelta(days=14)
#: How far ahead a notice may be announced.
FARTHEST = timedelta(days=366)
#: A notice may say "from now": its start may lie this little in the past (the form took a
#: minute to fill).
GRACE = timedelta(minutes=15)


@dataclass(frozen=True)
class Refusal:
    field: str
    #: Stable, for the console's words: past, too_far, end_before_start, too_long.
    code: str
    message: str


def check_times(starts_at: datetime, ends_at: datetime, now: datetime) -> Refusal | None:
    """Why these times cannot be announced at `now`, or None."""
    if starts_at < now - GRACE:
        return Refusal("starts_at", "past", "the start is in the past")
    if starts_at > now + FARTHEST:
        return Refusal("starts_at", "too_far", "the start is more than a year ahead")
    if ends_at <= starts_at:
        return Refusal("ends_at", "end_before_start", "the end must come after the start")
    if ends_at - starts_at > LONGEST:
        return Refusal("ends_at", "too_long", "a notice covers at most 14 days")
    return None


def warnings(
    starts_at: datetime, announced_at: datetime, consent_ref: str | None
) -> list[NoticeWarning]:
    """What the regulation asks that this notice does not give."""
    found = []
    if starts_at - announced_at < NOTICE_AHEAD:
        found.append(NoticeWarning.SHORT_NOTICE)
    if not (consent_ref or "").strip():
        found.append(NoticeWarning.NO_CONSENT)
    return found


def shown(ends_at: datetime, withdrawn: bool, now: datetime) -> bool:
    """A notice is shown to every user from its announcement until its end, unless withdrawn."""
    return not withdrawn and now < ends_at
