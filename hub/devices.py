"""Device slots (operator side): create with an enrollment code, list the fleet, send commands."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from loa_contract import (
    Command,
    DeviceKind,
    HealthSample,
    NowPlayingInfo,
    Resync,
    SetVolume,
    StopPlayback,
    TestTone,
)

from .auth import Permission, require
from .errors import ApiError, field_error
from .paging import (
    DEFAULT_LIMIT,
    MAX_CURSOR,
    MAX_LIMIT,
    Page,
    decode_cursor,
    encode_cursor,
)
from .push import command_fields
from .routing import Ctx, RouteTable
from .security import code_hash, new_enrollment_code
from .store import commands, communes, devices
from .store.devices import Device
from .verdict import Level, Verdict, device_verdict

routes = RouteTable("devices")

#: A firmware profile name (see firmware_profiles/); the kind decides the default.
Profile = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
DEFAULT_PROFILE = {DeviceKind.SPEAKER: "speaker-cluster", DeviceKind.BOARD: "led-board-p10"}


class DeviceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    commune: str
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    kind: DeviceKind
    profile: Profile | None = None


class DeviceCreated(BaseModel):
    id: str
    commune: str
    name: str
    kind: DeviceKind
    profile: str
    enrollment_code: str
    enrollment_expires_at: datetime


class DeviceOut(BaseModel):
    id: str
    commune: str
    name: str
    kind: DeviceKind
    profile: str
    enrolled: bool
    enrolled_at: datetime | None
    enrollment_expires_at: datetime | None
    agent_version: str | None
    hostname: str | None
    manifest_version: int
    last_seen: datetime | None
    #: On the WebSocket now, or heard from within the hub's offline-after.
    online: bool
    connected: bool
    health: HealthSample | None
    now_playing: NowPlayingInfo | None
    #: ok / warning / fault / unknown, from the newest health sample and `online`
    #: (hub/verdict.py has the rules and thresholds).
    verdict: Level
    #: Stable reason codes, worst first ("offline", "under_voltage", "disk_low", …).
    verdict_reasons: list[str]
    #: Proof-of-play reports the hub refused from this device (hub/play_evidence.py), and the
    #: newest refusal: when, its reason code and the sentence for the operator.
    refused_reports: int = 0
    last_refused_at: datetime | None = None
    last_refused_reason: str | None = None
    last_refused_detail: str | None = None


class DevicesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Only devices with this verdict (`?verdict=fault`: the ones to drive to).
    verdict: Level | None = None
    commune: str | None = Field(default=None, max_length=32)
    kind: DeviceKind | None = None
    #: The previous page's X-Next-Before: this page continues after that device.
    before: str | None = Field(default=None, max_length=MAX_CURSOR)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


class EnrollmentCode(BaseModel):
    id: str
    enrollment_code: str
    enrollment_expires_at: datetime


class SetVolumeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["set_volume"]
    volume: int = Field(ge=0, le=100)


class StopIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["stop"]


class TestToneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["test_tone"]


class ResyncIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["resync"]


CommandIn = Annotated[SetVolumeIn | StopIn | TestToneIn | ResyncIn, Field(discriminator="type")]


#: What became of a command: "undelivered" (the device was not connected), "sent" (written
#: to its socket, no answer yet; an agent from before acks never answers), "applied" or
#: "refused" (the device's own answer, with its reason).
CommandStatus = Literal["sent", "undelivered", "applied", "refused"]
#: Commands listed on a device's history.
HISTORY_LIMIT = 50


class CommandResult(BaseModel):
    command_id: str
    device_id: str
    type: str
    delivered: bool
    status: CommandStatus


class CommandOut(BaseModel):
    """One command in a device's history, with the device's answer when it gave one."""

    id: str
    device_id: str
    type: str
    params: dict[str, Any]
    issued_at: datetime
    issued_by: str
    status: CommandStatus
    #: The device's reason code when it refused ("emergency_on_air", "expired", …).
    reason: str | None
    detail: str | None
    answered_at: datetime | None
    #: Sent to a group: the group, and the batch of devices that one command went to.
    group_id: str | None = None
    batch_id: str | None = None

    @classmethod
    def of(cls, record: commands.CommandRecord) -> CommandOut:
        return cls(
            id=record.id,
            device_id=record.device_id,
            type=record.type,
            params=record.params,
            issued_at=record.issued_at,
            issued_by=record.issued_by,
            status=record.status,  # type: ignore[arg-type]
            reason=record.reason,
            detail=record.detail,
            answered_at=record.answered_at,
            group_id=record.group_id,
            batch_id=record.batch_id,
        )


def judge(
    d: Device, connected: bool, offline_after_s: float, now: datetime
) -> tuple[bool, Verdict]:
    """Whether the device counts as online, and its verdict (the fleet view's and the
    incident watcher's, hub/incidents.py)."""
    online = connected or (
        d.last_seen is not None and (now - d.last_seen).total_seconds() <= offline_after_s
    )
    verdict = device_verdict(
        d.health, online=online, now=now, enrolled=d.enrolled, last_refused_at=d.last_refused_at
    )
    return online, verdict


def _device_out(d: Device, connected: bool, offline_after_s: float, now: datetime) -> DeviceOut:
    online, verdict = judge(d, connected, offline_after_s, now)
    return DeviceOut(
        id=d.id,
        commune=d.commune,
        name=d.name,
        kind=d.kind,
        profile=d.profile,
        enrolled=d.enrolled,
        enrolled_at=d.enrolled_at,
        enrollment_expires_at=None if d.enrolled else d.enrollment_expires_at,
        agent_version=d.agent_version,
        hostname=d.hostname,
        manifest_version=d.manifest_version,
        last_seen=d.last_seen,
        online=online,
        connected=connected,
        health=d.health,
        now_playing=d.health.now_playing if d.health else None,
        verdict=verdict.level,
        verdict_reasons=list(verdict.reasons),
        refused_reports=d.refused_reports,
        last_refused_at=d.last_refused_at,
        last_refused_reason=d.last_refused_reason,
        last_refused_detail=d.last_refused_detail,
    )


@routes.post(
    "/api/v1/devices",
    summary="Create a device slot and its one-time enrollment code",
    permission=Permission.DEVICES_WRITE,
    body=DeviceCreate,
    response=DeviceCreated,
    status=201,
)
async def create_device(ctx: Ctx) -> DeviceCreated:
    body: DeviceCreate = ctx.body
    require(ctx.user, Permission.DEVICES_WRITE, commune=body.commune)
    device_id = str(uuid.uuid4())
    code = new_enrollment_code()
    now = ctx.now
    expires = now + ctx.config.enrollment_ttl
    profile = body.profile or DEFAULT_PROFILE[body.kind]
    async with ctx.db.transaction() as tx:
        if not await communes.exists(tx, body.commune):
            raise field_error(422, "unknown_commune", "commune", f"no commune {body.commune!r}")
        await devices.add(
            tx,
            device_id,
            commune=body.commune,
            name=body.name,
            kind=body.kind,
            profile=profile,
            enrollment_code_hash=code_hash(code),
            enrollment_expires_at=expires,
            at=now,
        )
        await ctx.audit(
            tx,
            "device.create",
            device_id,
            f"{body.commune} {body.kind.value} {body.name}",
            after={"commune": body.commune, "kind": body.kind.value, "profile": profile},
        )
    return DeviceCreated(
        id=device_id,
        commune=body.commune,
        name=body.name,
        kind=body.kind,
        profile=profile,
        enrollment_code=code,
        enrollment_expires_at=expires,
    )


@routes.get(
    "/api/v1/devices",
    summary="The fleet by commune and name: enrollment, online state, last health and verdict"
    " (?verdict=fault); paged: follow the Link header",
    permission=Permission.FLEET_READ,
    query=DevicesQuery,
    response=list[DeviceOut],
)
async def list_devices(ctx: Ctx) -> Page[list[DeviceOut]]:
    query: DevicesQuery = ctx.query
    key: tuple[str, str, str] | None = None
    if query.before is not None:
        commune_key, name_key, id_key = decode_cursor(query.before, (str, str, str))
        key = (commune_key, name_key, id_key)
    own = ctx.user.commune
    if own is not None and query.commune and query.commune != own:
        return Page([], None)  # outside the caller's commune: nothing it may see
    commune = own or query.commune or None
    online = await ctx.connections.online_anywhere()
    offline_after_s = ctx.config.offline_after.total_seconds()
    now = ctx.now
    chunk = query.limit + 1
    fleet: list[DeviceOut] = []
    while True:
        rows = await devices.fleet_page(
            ctx.db, commune=commune, kind=query.kind, after=key, limit=chunk
        )
        for r in rows:
            device = _device_out(r, r.id in online, offline_after_s, now)
            # The verdict depends on the hub's clock and connections, not on anything SQL
            # could index: filtered here, reading on until the page is full.
            if query.verdict is not None and device.verdict != query.verdict:
                continue
            if len(fleet) == query.limit:
                last = fleet[-1]
                return Page(fleet, encode_cursor((last.commune, last.name, last.id)))
            fleet.append(device)
        if len(rows) < chunk:
            return Page(fleet, None)
        key = (rows[-1].commune, rows[-1].name, rows[-1].id)


async def _device(ctx: Ctx) -> Device:
    device_id = ctx.path("id")
    device = await devices.get(ctx.db, device_id)
    if device is None:
        raise ApiError(404, "not_found", f"no device {device_id!r}")
    require(ctx.user, Permission.FLEET_READ, commune=device.commune)
    return device


@routes.get(
    "/api/v1/devices/{id}",
    summary="One device",
    permission=Permission.FLEET_READ,
    response=DeviceOut,
    errors=[403, 404],
)
async def get_device(ctx: Ctx) -> DeviceOut:
    device = await _device(ctx)
    return _device_out(
        device,
        device.id in await ctx.connections.online_anywhere(),
        ctx.config.offline_after.total_seconds(),
        ctx.now,
    )


@routes.post(
    "/api/v1/devices/{id}/enrollment",
    summary="Issue a new enrollment code (replaced SD card); revokes the old secret",
    permission=Permission.DEVICES_WRITE,
    response=EnrollmentCode,
    status=201,
    errors=[403, 404],
)
async def reissue_enrollment(ctx: Ctx) -> EnrollmentCode:
    device = await _device(ctx)
    code = new_enrollment_code()
    expires = ctx.now + ctx.config.enrollment_ttl
    async with ctx.db.transaction() as tx:
        await devices.new_enrollment_code(tx, device.id, code_hash(code), expires)
        await ctx.audit(tx, "device.reenroll", device.id, device.commune)
    return EnrollmentCode(id=device.id, enrollment_code=code, enrollment_expires_at=expires)


@routes.post(
    "/api/v1/devices/{id}/commands",
    summary="Push a signed command (set_volume, stop, test_tone, resync) if online",
    permission=Permission.DEVICES_COMMAND,
    body=CommandIn,
    response=CommandResult,
    status=202,
    errors=[403, 404],
)
async def send_command(ctx: Ctx) -> CommandResult:
    device = await _device(ctx)
    return await dispatch(ctx, device, ctx.body)


async def dispatch(
    ctx: Ctx,
    device: Device,
    body: SetVolumeIn | StopIn | TestToneIn | ResyncIn,
    *,
    group_id: str | None = None,
    batch_id: str | None = None,
) -> CommandResult:
    """Record, sign and push one command to one device (the caller checked its scope); it
    stays "sent" until the device answers, "undelivered" when the device is not connected."""
    fields = command_fields(device.id, ctx.now, ctx.config.command_ttl)
    command: Command
    if isinstance(body, SetVolumeIn):
        command = SetVolume(**fields, volume=body.volume)
    elif isinstance(body, StopIn):
        command = StopPlayback(**fields)
    elif isinstance(body, TestToneIn):
        command = TestTone(**fields)
    else:
        command = Resync(**fields)
    params = body.model_dump(mode="json", exclude={"type"})
    command_id: str = fields["command_id"]
    # Recorded before it is written to the socket: a fast device's ack finds its row.
    async with ctx.db.transaction() as tx:
        await commands.add(
            tx,
            command_id,
            device_id=device.id,
            type=body.type,
            params=params,
            issued_at=ctx.now,
            issued_by=ctx.user.username,
            status="sent",
            group_id=group_id,
            batch_id=batch_id,
        )
    delivered = await ctx.connections.send_command(device.id, command)
    status: CommandStatus = "sent" if delivered else "undelivered"
    async with ctx.db.transaction() as tx:
        if not delivered:
            await commands.answer(
                tx,
                command_id,
                device_id=device.id,
                status="undelivered",
                reason="offline",
                detail=None,
                at=ctx.now,
            )
        await ctx.audit(
            tx,
            f"device.command.{body.type}",
            device.id,
            f"{command_id} {status}",
            after=body.model_dump(mode="json"),
        )
    return CommandResult(
        command_id=command_id,
        device_id=device.id,
        type=body.type,
        delivered=delivered,
        status=status,
    )


@routes.get(
    "/api/v1/devices/{id}/commands",
    summary="The device's command history, newest first: each command's status"
    " (sent, undelivered, applied, refused) and the device's reason",
    permission=Permission.FLEET_READ,
    response=list[CommandOut],
    errors=[403, 404],
)
async def command_history(ctx: Ctx) -> list[CommandOut]:
    device = await _device(ctx)
    return [CommandOut.of(r) for r in await commands.of_device(ctx.db, device.id, HISTORY_LIMIT)]


@routes.get(
    "/api/v1/devices/{id}/commands/{command_id}",
    summary="One command sent to the device and what the device answered",
    permission=Permission.FLEET_READ,
    response=CommandOut,
    errors=[403, 404],
)
async def get_command(ctx: Ctx) -> CommandOut:
    device = await _device(ctx)
    record = await commands.get(ctx.db, ctx.path("command_id"))
    if record is None or record.device_id != device.id:
        raise ApiError(404, "not_found", "no such command for this device")
    return CommandOut.of(record)
