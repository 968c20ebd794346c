"""The console's home page, one per role: what this person has to do or watch today.

A contributor sees its unit's bulletins by state and what came back with the reviewer's
words; a commune operator what airs today in its commune; a reviewer the queue and how long
each item has waited; whoever reads the fleet its state. A section the account cannot see in
full is left out rather than shown empty: "no emergency today" must not be said to an agency
account that cannot see the province's emergencies.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from aiohttp import web

from loa_contract import Priority
from loa_contract.models import VN_TZ

from . import bulletins, communes, devices
from .appkeys import CLOCK
from .auth import Permission, User
from .console import STATES, PageHandler, api, api_all, page, render
from .console_bulletins import queued_since
from .domain.waiting import waited
from .web_session import page_user

#: How many of the oldest queued bulletins the reviewer's home lists (the rest: /review).
QUEUE_SHOWN = 5


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """A Vietnamese calendar day as [start, end)."""
    start = datetime.combine(day, time(0, 0), tzinfo=VN_TZ)
    return start, start + timedelta(days=1)


def airs_on(
    published: Iterable[bulletins.BulletinOut],
    commune: str,
    own_devices: set[str],
    day: date,
) -> list[bulletins.BulletinOut]:
    """The published bulletins that reach `commune` (all of it or one of its devices) and are
    valid at some moment of `day`: emergencies first, then priority, then by start."""
    start, end = day_bounds(day)
    rank = {Priority.EMERGENCY: 0, Priority.PRIORITY: 1, Priority.NORMAL: 2}
    found = [
        b
        for b in published
        if b.state == "published"
        and b.schedule.valid_from < end
        and b.schedule.valid_until > start
        and (
            b.targets.all_communes
            or commune in b.targets.communes
            or own_devices.intersection(b.targets.devices)
        )
    ]
    return sorted(found, key=lambda b: (rank[b.priority], b.schedule.valid_from))


def by_state(rows: Iterable[bulletins.BulletinOut]) -> dict[str, int]:
    """Count per lifecycle state, every state present (a zero is information too)."""
    counted: Counter[str] = Counter(b.state for b in rows)
    return {state: counted.get(state, 0) for state in STATES}


async def _fleet(request: web.Request, user: User) -> list[devices.DeviceOut] | None:
    if not user.may(Permission.FLEET_READ):
        return None
    result: list[devices.DeviceOut] = await api_all(
        request, user, devices.list_devices, query=devices.DevicesQuery()
    )
    return result


async def _queue(
    request: web.Request, user: User
) -> list[tuple[bulletins.BulletinOut, datetime]] | None:
    """The review queue, longest waiting first, each with when it (last) entered it."""
    if not user.may(Permission.BULLETINS_REVIEW):
        return None
    rows: list[bulletins.BulletinOut] = await api_all(
        request, user, bulletins.list_bulletins, query=bulletins.BulletinQuery(state="submitted")
    )
    since = await queued_since(request, user, rows)
    return sorted(((b, since[b.id]) for b in rows), key=lambda pair: pair[1])


@page
async def dashboard(request: web.Request) -> web.StreamResponse:
    user = await page_user(request)
    now = request.app[CLOCK]()
    today = now.astimezone(VN_TZ).date()
    fleet = await _fleet(request, user)
    # An agency sees only its own bulletins: it cannot know the day's emergencies.
    sees_emergencies = user.province_wide or user.commune is not None
    emergencies: list[bulletins.BulletinOut] = []
    if sees_emergencies:
        emergencies = await api_all(
            request,
            user,
            bulletins.list_bulletins,
            query=bulletins.BulletinQuery(priority=Priority.EMERGENCY),
        )
    todays = [b for b in emergencies if b.created_at.astimezone(VN_TZ).date() == today]
    own: list[bulletins.BulletinOut] | None = None
    if user.may(Permission.BULLETINS_WRITE) and not user.province_wide:
        own = await api_all(
            request, user, bulletins.list_bulletins, query=bulletins.BulletinQuery(unit=user.unit)
        )
    airing: list[bulletins.BulletinOut] | None = None
    commune: communes.CommuneOut | None = None
    if user.commune is not None:
        published: list[bulletins.BulletinOut] = await api_all(
            request,
            user,
            bulletins.list_bulletins,
            query=bulletins.BulletinQuery(state="published"),
        )
        mine = {d.id for d in fleet or [] if d.commune == user.commune}
        airing = airs_on(published, user.commune, mine, today)
        places: list[communes.CommuneOut] = await api(request, user, communes.list_communes)
        commune = next((c for c in places if c.code == user.commune), None)
    queue = await _queue(request, user)
    return await render(
        request,
        "dashboard.html",
        fleet=fleet,
        online=sum(d.online for d in fleet or []),
        offline=sum(not d.online for d in fleet or []),
        playing=[d for d in fleet or [] if d.now_playing is not None],
        sees_emergencies=sees_emergencies,
        emergencies=todays,
        own_counts=by_state(own) if own is not None else None,
        returned=[b for b in own or [] if b.state == "returned"],
        airing=airing,
        commune=commune,
        queue=[(b, waited(since, now)) for b, since in queue] if queue is not None else None,
        queue_shown=QUEUE_SHOWN,
    )


PAGES: list[tuple[str, str, PageHandler]] = [("GET", "/", dashboard)]
