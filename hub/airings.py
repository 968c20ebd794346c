"""Where and when a bulletin aired, from the devices' proof of play: per device, how many
airings and how many minutes, the first and the last. A failed play is not an airing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel

from loa_contract import PlayOutcome

from .bulletins import _visible_bulletin as visible_bulletin
from .routing import Ctx, RouteTable
from .store import reports as store_reports
from .store.reports import Play

routes = RouteTable("bulletins")


class DeviceAiring(BaseModel):
    device_id: str
    name: str
    commune: str
    airings: int
    #: Wall-clock minutes on air, one decimal.
    minutes: float
    first_at: datetime
    last_at: datetime


class BulletinAirings(BaseModel):
    #: The devices that aired it, the first to air it first.
    devices: list[DeviceAiring]
    airings: int
    minutes: float


def summarize(plays: Iterable[tuple[Play, str, str]]) -> BulletinAirings:
    """Plays (each with its device's name and commune) summed per device."""
    per_device: dict[str, list[tuple[Play, str, str]]] = {}
    for play, name, commune in plays:
        if play.outcome != PlayOutcome.FAILED:
            per_device.setdefault(play.device_id, []).append((play, name, commune))
    devices = []
    for device_id, rows in per_device.items():
        # A negative span (a device clock jump) counts as nothing, as in the reports.
        seconds = sum(max(0.0, (p.ended_at - p.started_at).total_seconds()) for p, _n, _c in rows)
        devices.append(
            DeviceAiring(
                device_id=device_id,
                name=rows[0][1],
                commune=rows[0][2],
                airings=len(rows),
                minutes=round(seconds / 60, 1),
                first_at=min(p.started_at for p, _n, _c in rows),
                last_at=max(p.started_at for p, _n, _c in rows),
            )
        )
    devices.sort(key=lambda d: (d.first_at, d.device_id))
    return BulletinAirings(
        devices=devices,
        airings=sum(d.airings for d in devices),
        minutes=round(sum(d.minutes for d in devices), 1),
    )


@routes.get(
    "/api/v1/bulletins/{id}/airings",
    summary="Where and when a bulletin aired, per device, from proof of play (a commune"
    " account: its commune's devices only)",
    response=BulletinAirings,
    errors=[403, 404],
)
async def bulletin_airings(ctx: Ctx) -> BulletinAirings:
    # The same refusals as the bulletin itself (404 none, 403 another unit's).
    await visible_bulletin(ctx.db, ctx.path("id"), ctx.user)
    bulletin_id = ctx.path("id")
    plays = await store_reports.plays_of_bulletin(ctx.db, bulletin_id, ctx.user.commune)
    return summarize(plays)
