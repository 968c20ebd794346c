"""Device groups (nhóm thiết bị): named sets of devices, created, filled and commanded
together. A commune's group holds only that commune's devices and is its staff's; a province
group may hold any. A command to a group is one batch: each device gets its own signed
command and answers it on its own (hub/devices.py), so the batch shows who applied, who
refused and why, and who never heard it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from .auth import Permission, User, require
from .devices import HISTORY_LIMIT, CommandIn, CommandOut, CommandResult, dispatch
from .errors import ApiError, field_error
from .routing import Ctx, RouteTable
from .store import commands, communes, devices, groups
from .store.groups import Group

routes = RouteTable("device groups")

GroupName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
#: The most devices one group holds (a command to it is one push per device).
MAX_MEMBERS = 2000


class GroupCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: GroupName
    #: The commune whose devices it will hold; left out: a province group (province accounts
    #: only). A commune-bound account's group is always its commune's.
    commune: str | None = Field(default=None, max_length=32)


class GroupMembers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    devices: list[Annotated[str, StringConstraints(max_length=64)]] = Field(max_length=MAX_MEMBERS)


class GroupOut(BaseModel):
    id: str
    name: str
    commune: str | None
    created_at: datetime
    created_by: str
    devices: int


class GroupDetail(GroupOut):
    members: list[str]


class GroupCommandResult(BaseModel):
    group_id: str
    batch_id: str
    type: str
    results: list[CommandResult]


def _out(g: Group) -> GroupOut:
    return GroupOut(
        id=g.id,
        name=g.name,
        commune=g.commune,
        created_at=g.created_at,
        created_by=g.created_by,
        devices=g.devices,
    )


def _may_see(user: User, group: Group) -> bool:
    return user.commune is None or group.commune == user.commune


async def _group(ctx: Ctx) -> Group:
    group = await groups.get(ctx.db, ctx.path("id"))
    # The same 404 for "missing" and "another commune's".
    if group is None or not _may_see(ctx.user, group):
        raise ApiError(404, "not_found", f"no device group {ctx.path('id')!r}")
    return group


@routes.post(
    "/api/v1/device-groups",
    summary="Create a device group (of one commune, or the province's)",
    permission=Permission.DEVICES_WRITE,
    body=GroupCreate,
    response=GroupOut,
    status=201,
    errors=[403],
)
async def create_group(ctx: Ctx) -> GroupOut:
    body: GroupCreate = ctx.body
    commune = body.commune or ctx.user.commune
    if commune is None:
        require(ctx.user, Permission.DEVICES_WRITE)
    else:
        require(ctx.user, Permission.DEVICES_WRITE, commune=commune)
    group_id = str(uuid.uuid4())
    async with ctx.db.transaction() as tx:
        if commune is not None and not await communes.exists(tx, commune):
            raise field_error(422, "unknown_commune", "commune", f"no commune {commune!r}")
        await groups.add(
            tx, group_id, name=body.name, commune=commune, at=ctx.now, by=ctx.user.username
        )
        await ctx.audit(tx, "device_group.create", group_id, body.name, after={"commune": commune})
        created = await groups.get(tx, group_id)
    assert created is not None
    return _out(created)


@routes.get(
    "/api/v1/device-groups",
    summary="The device groups the caller may see, by name",
    permission=Permission.FLEET_READ,
    response=list[GroupOut],
)
async def list_groups(ctx: Ctx) -> list[GroupOut]:
    return [_out(g) for g in await groups.listed(ctx.db, ctx.user.commune)]


@routes.get(
    "/api/v1/device-groups/{id}",
    summary="One device group and its devices",
    permission=Permission.FLEET_READ,
    response=GroupDetail,
    errors=[404],
)
async def get_group(ctx: Ctx) -> GroupDetail:
    group = await _group(ctx)
    return GroupDetail(**_out(group).model_dump(), members=await groups.members(ctx.db, group.id))


@routes.put(
    "/api/v1/device-groups/{id}/devices",
    summary="Set a group's devices (each must be one the caller may manage, of the group's"
    " commune for a commune's group)",
    permission=Permission.DEVICES_WRITE,
    body=GroupMembers,
    response=GroupDetail,
    errors=[403, 404, 422],
)
async def set_group_devices(ctx: Ctx) -> GroupDetail:
    body: GroupMembers = ctx.body
    group = await _group(ctx)
    wanted = sorted(set(body.devices))
    problems = []
    async with ctx.db.transaction() as tx:
        for i, device_id in enumerate(body.devices):
            commune = await devices.commune_of(tx, device_id)
            if commune is None or not ctx.user.may_see_commune(commune):
                problems.append({"field": f"devices[{i}]", "message": f"no device {device_id!r}"})
            elif group.commune is not None and commune != group.commune:
                problems.append(
                    {
                        "field": f"devices[{i}]",
                        "message": f"device {device_id!r} is not in commune {group.commune!r}",
                    }
                )
        if problems:
            raise ApiError(422, "validation_error", problems)
        before = await groups.members(tx, group.id)
        await groups.set_members(tx, group.id, wanted)
        await ctx.audit(
            tx,
            "device_group.members",
            group.id,
            group.name,
            before={"devices": before},
            after={"devices": wanted},
        )
    return GroupDetail(**_out(group).model_dump() | {"devices": len(wanted)}, members=wanted)


@routes.delete(
    "/api/v1/device-groups/{id}",
    summary="Delete a device group (its devices and their command history stay)",
    permission=Permission.DEVICES_WRITE,
    response=GroupOut,
    errors=[404],
)
async def delete_group(ctx: Ctx) -> GroupOut:
    group = await _group(ctx)
    async with ctx.db.transaction() as tx:
        await groups.remove(tx, group.id)
        await ctx.audit(tx, "device_group.delete", group.id, group.name)
    return _out(group)


@routes.post(
    "/api/v1/device-groups/{id}/commands",
    summary="Send one command to every device of a group: one batch, each device's own"
    " signed command and answer",
    permission=Permission.DEVICES_COMMAND,
    body=CommandIn,
    response=GroupCommandResult,
    status=202,
    errors=[403, 404],
)
async def command_group(ctx: Ctx) -> GroupCommandResult:
    group = await _group(ctx)
    if group.commune is not None:
        require(ctx.user, Permission.DEVICES_COMMAND, commune=group.commune)
    batch_id = str(uuid.uuid4())
    results = []
    for device_id in await groups.members(ctx.db, group.id):
        device = await devices.get(ctx.db, device_id)
        if device is None or not ctx.user.may_see_commune(device.commune):
            continue  # a province group's device outside the caller's unit: not its to command
        results.append(await dispatch(ctx, device, ctx.body, group_id=group.id, batch_id=batch_id))
    return GroupCommandResult(
        group_id=group.id, batch_id=batch_id, type=ctx.body.type, results=results
    )


class GroupCommandsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: One command's batch (GroupCommandResult.batch_id); left out: the group's latest
    #: commands, newest first.
    batch: str | None = Field(default=None, max_length=64)


@routes.get(
    "/api/v1/device-groups/{id}/commands",
    summary="Commands sent to a group, one row per device with its answer (?batch= for one"
    " command's devices)",
    permission=Permission.FLEET_READ,
    query=GroupCommandsQuery,
    response=list[CommandOut],
    errors=[404],
)
async def group_commands(ctx: Ctx) -> list[CommandOut]:
    query: GroupCommandsQuery = ctx.query
    group = await _group(ctx)
    if query.batch is not None:
        records = await commands.of_batch(ctx.db, query.batch)
    else:
        records = await commands.of_group(ctx.db, group.id, HISTORY_LIMIT)
    return [CommandOut.of(r) for r in records if r.group_id == group.id]
