"""The commune's say (Hải Phòng Điều 12.3, 14.2.b): which of the province's normal bulletins
it airs.

Each commune chooses how province normal bulletins (any unit's but its own: the province, an
agency, the central level) reach its devices: "auto", they air unless the commune declines
one; "offer", they air only once the commune accepts one. Accepting places the bulletin at the
end of the commune's running order (then moved like the priority bulletins there); declining
takes it off the commune's devices (their manifests leave it out). Priority and emergency
bulletins cannot be declined: the regulations give the commune the order of priority
bulletins, not whether they air. Who decides: the commune's operator (and an admin);
`Permission.BULLETINS_ORDER`, scoped to the commune. Every choice is audited
(`commune.offer_accept`, `commune.offer_decline`) and the commune's devices get a new
manifest at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from loa_contract import Priority

from .auth import Permission
from .bulletins import BulletinOut, bulletin_out
from .errors import ApiError
from .routing import Ctx, RouteTable
from .store import bulletins as bulletin_store
from .store import communes, devices, offers
from .store.manifests import bump_versions

routes = RouteTable("communes")

Mode = Literal["auto", "offer"]
#: airing: airs by the commune's "auto" setting; offered: waits for the commune's word;
#: accepted, declined: the commune's word; required: priority or emergency, always airs.
OfferState = Literal["airing", "offered", "accepted", "declined", "required"]


class Offer(BaseModel):
    bulletin: BulletinOut
    state: OfferState
    #: Whether the commune may decline it (only normal bulletins).
    may_decline: bool
    chosen_by: str | None
    chosen_at: datetime | None


class OffersOut(BaseModel):
    commune: str
    #: How the commune takes province normal bulletins.
    province_normal: Mode
    offers: list[Offer]


def offer_state(priority: Priority, mode: str, choice: str | None) -> OfferState:
    """Where a bulletin of another unit stands in a commune (pure: the rule in one place)."""
    if priority is not Priority.NORMAL:
        return "required"
    if choice == "accepted":
        return "accepted"
    if choice == "declined":
        return "declined"
    return "airing" if mode == "auto" else "offered"


def _commune(ctx: Ctx) -> str:
    code = ctx.path("code")
    if not ctx.user.may_see_commune(code):
        raise ApiError(403, "out_of_scope", f"commune {code!r} is outside your unit")
    return code


async def _offers(ctx: Ctx, code: str) -> OffersOut:
    mode = await offers.province_normal(ctx.db, code)
    if mode is None:
        raise ApiError(404, "not_found", f"no commune {code!r}")
    chosen = await offers.choices(ctx.db, code)
    out = []
    for b in await bulletin_store.from_other_units(ctx.db, code, ctx.now):
        choice = chosen.get(b.id)
        priority = b.content.priority
        out.append(
            Offer(
                bulletin=await bulletin_out(ctx, b.id),
                state=offer_state(priority, mode, choice.choice if choice else None),
                may_decline=priority is Priority.NORMAL,
                chosen_by=choice.chosen_by if choice else None,
                chosen_at=choice.chosen_at if choice else None,
            )
        )
    return OffersOut(
        commune=code, province_normal="offer" if mode == "offer" else "auto", offers=out
    )


@routes.get(
    "/api/v1/communes/{code}/offers",
    summary="The bulletins of other units (province, agencies, central) reaching the commune"
    " now, each with where it stands: airing, offered, accepted, declined, or required"
    " (priority and emergency)",
    response=OffersOut,
    errors=[403, 404],
)
async def list_offers(ctx: Ctx) -> OffersOut:
    return await _offers(ctx, _commune(ctx))


async def _choose(ctx: Ctx, choice: Literal["accepted", "declined"]) -> OffersOut:
    code = _commune(ctx)
    bulletin_id = ctx.path("id")
    async with ctx.db.transaction() as tx:
        if not await communes.exists(tx, code):
            raise ApiError(404, "not_found", f"no commune {code!r}")
        reaching = {b.id: b for b in await bulletin_store.from_other_units(tx, code, ctx.now)}
        bulletin = reaching.get(bulletin_id)
        if bulletin is None:
            raise ApiError(
                404,
                "not_found",
                f"no bulletin {bulletin_id!r} of another unit reaches commune {code!r} now",
            )
        if bulletin.content.priority is not Priority.NORMAL:
            raise ApiError(
                409,
                "not_declinable" if choice == "declined" else "not_offered",
                f"a {bulletin.content.priority.value} bulletin always airs; the commune"
                " chooses only among normal bulletins",
            )
        before = (await offers.choices(tx, code)).get(bulletin_id)
        await offers.choose(tx, code, bulletin_id, choice, ctx.user.username, ctx.now)
        order = await bulletin_store.running_order(tx, code)
        if choice == "accepted" and bulletin_id not in order:
            await bulletin_store.set_running_order(tx, code, [*order, bulletin_id])
        if choice == "declined" and bulletin_id in order:
            await bulletin_store.set_running_order(tx, code, [b for b in order if b != bulletin_id])
        versions = await bump_versions(tx, await devices.ids_in_commune(tx, code))
        await ctx.audit(
            tx,
            "commune.offer_accept" if choice == "accepted" else "commune.offer_decline",
            code,
            bulletin.content.title,
            before={"bulletin": bulletin_id, "choice": before.choice if before else None},
            after={"bulletin": bulletin_id, "choice": choice},
        )
    await ctx.connections.push_manifest_ready(versions, ctx.config.command_ttl)
    return await _offers(ctx, code)


@routes.post(
    "/api/v1/communes/{code}/offers/{id}/accept",
    summary="Accept a normal bulletin of another unit: it airs in the commune, placed at the"
    " end of its running order",
    permission=Permission.BULLETINS_ORDER,
    response=OffersOut,
    errors=[403, 404, 409],
)
async def accept_offer(ctx: Ctx) -> OffersOut:
    return await _choose(ctx, "accepted")


@routes.post(
    "/api/v1/communes/{code}/offers/{id}/decline",
    summary="Decline a normal bulletin of another unit: the commune's devices leave it out."
    " Priority and emergency bulletins cannot be declined (409)",
    permission=Permission.BULLETINS_ORDER,
    response=OffersOut,
    errors=[403, 404, 409],
)
async def decline_offer(ctx: Ctx) -> OffersOut:
    return await _choose(ctx, "declined")
