"""Room on the SD card (dung lượng thẻ nhớ): whether a download fits, and what goes to make room.

Pure functions over plain values; `free_bytes` is the one place that asks the kernel.

A device whose card is full falls silent in the worst way: speech cannot be made, SQLite
cannot record, and everything still looks fine from the hub. So a download must leave a
reserve free for speech, the database and the logs, and is refused (never half-written)
when it cannot; room is made first from content nobody needs any longer, least recently
aired first, and for an emergency or a priority bulletin also from content of lower
priority.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from loa_contract import Priority

_RANK = {Priority.NORMAL: 0, Priority.PRIORITY: 1, Priority.EMERGENCY: 2}


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged process may still write on the filesystem holding `path`."""
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def size_bytes(path: Path) -> int:
    """The size of the filesystem holding `path`."""
    stats = os.statvfs(path)
    return stats.f_blocks * stats.f_frsize


#: The most of a small card the reserve may take: on a 24 MiB test disk, a 64 MiB reserve
#: would refuse everything.
RESERVE_SHARE = 0.10


def effective_reserve(configured: int, filesystem_size: int) -> int:
    """The reserve to keep: as configured, but never more than a tenth of the card."""
    return max(0, min(configured, int(filesystem_size * RESERVE_SHARE)))


@dataclass(frozen=True)
class CachedObject:
    """One object in the cache, as the eviction choice sees it."""

    sha256: str
    size: int
    #: The highest priority of the held bulletins that use it (None: no held bulletin does).
    priority: Priority | None
    #: Every held bulletin using it has expired or been cancelled.
    expired: bool
    #: When a bulletin using it last started on air here (None: never, or not known).
    last_aired: datetime | None


@dataclass(frozen=True)
class RoomPlan:
    fits: bool
    #: Objects to delete first (empty when it fits as it is, or cannot fit at all).
    evict: tuple[str, ...] = ()
    #: Bytes missing even after every allowed eviction (0 when it fits).
    short_by: int = 0


def _age_key(obj: CachedObject) -> tuple[int, float]:
    # Never aired first, then least recently aired.
    if obj.last_aired is None:
        return (0, 0.0)
    return (1, obj.last_aired.timestamp())


def plan_room(
    *,
    need_bytes: int,
    free: int,
    reserve: int,
    for_priority: Priority,
    cached: list[CachedObject],
    keep: frozenset[str] = frozenset(),
) -> RoomPlan:
    """Whether `need_bytes` more can be written while `reserve` stays free, and which cached
    objects to delete for it.

    Deleted, in this order and only as many as needed: objects no held bulletin uses,
    objects only expired or cancelled bulletins use (least recently aired first), then — for
    a bulletin of higher priority than theirs — live objects of lower priority (lowest
    priority first, then least recently aired). Objects in `keep` (what is on air, what the
    download is for) are never deleted. If even that is not enough nothing is deleted: the
    card is not emptied for a file that cannot fit anyway.
    """
    if need_bytes < 0 or free < 0 or reserve < 0:
        raise ValueError("sizes cannot be negative")
    room = free - reserve
    if need_bytes <= room:
        return RoomPlan(fits=True)
    unused = [o for o in cached if o.sha256 not in keep and o.priority is None]
    expired = sorted(
        (o for o in cached if o.sha256 not in keep and o.priority is not None and o.expired),
        key=_age_key,
    )
    rank = _RANK[for_priority]
    lower = sorted(
        (
            o
            for o in cached
            if o.sha256 not in keep
            and o.priority is not None
            and not o.expired
            and _RANK[o.priority] < rank
        ),
        key=lambda o: (_RANK[o.priority or Priority.NORMAL], *_age_key(o)),
    )
    chosen: list[str] = []
    for obj in [*unused, *expired, *lower]:
        if need_bytes <= room:
            break
        chosen.append(obj.sha256)
        room += obj.size
    if need_bytes <= room:
        return RoomPlan(fits=True, evict=tuple(chosen))
    return RoomPlan(fits=False, short_by=need_bytes - room)


def mib(size: int) -> str:
    """A size for people: MiB with one decimal."""
    return f"{size / (1024 * 1024):.1f} MiB"
