"""Device slots (operator side): create with an enrollment code, list the fleet, send commands."""

from __future__ import annotations

import sqlite3
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
    utcnow,
)

from .auth import Permission, require
from .db import from_iso, iso
from .errors import ApiError, field_error
from .paging import (
    DEFAULT_LIMIT,
    MAX_CURSOR,
    MAX_LIMIT,
    Page,
    after_key,
    decode_cursor,
    encode_cursor,
    key_params,
)
from .push import command_fields
from .routing import Ctx, RouteTable
from .security import code_hash, new_enrollment_code
from .verdict import Level, device_verdict

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


class CommandResult(BaseModel):
    command_id: str
    device_id: str
    type: str
    delivered: bool


def _device_out(row: sqlite3.Row, connected: bool, offline_after_s: float) -> DeviceOut:
    now = utcnow()
    last_seen = from_iso(row["last_seen"]) if row["last_seen"] else None
    health = (
        HealthSample.model_validate_json(row["last_health_json"])
        if row["last_health_json"]
        else None
    )
    enrolled = row["secret_hash"] is not None
    online = connected or (
        last_seen is not None and (now - last_seen).total_seconds() <= offline_after_s
    )
    last_refused = from_iso(row["last_refused_at"]) if row["last_refused_at"] else None
    verdict = device_verdict(
        health, online=online, now=now, enrolled=enrolled, last_refused_at=last_refused
    )
    return DeviceOut(
        id=row["id"],
        commune=row["commune"],
        name=row["name"],
        kind=DeviceKind(row["kind"]),
        profile=row["profile"],
        enrolled=enrolled,
        enrolled_at=from_iso(row["enrolled_at"]) if row["enrolled_at"] else None,
        enrollment_expires_at=(
            from_iso(row["enrollment_expires_at"])
            if not enrolled and row["enrollment_expires_at"]
            else None
        ),
        agent_version=row["agent_version"],
        hostname=row["hostname"],
        manifest_version=row["manifest_version"],
        last_seen=last_seen,
        online=online,
        connected=connected,
        health=health,
        now_playing=health.now_playing if health else None,
        verdict=verdict.level,
        verdict_reasons=list(verdict.reasons),
        refused_reports=row["refused_reports_total"],
        last_refused_at=last_refused,
        last_refused_reason=row["last_refused_reason"],
        last_refused_detail=row["last_refused_detail"],
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
    now = utcnow()
    expires = now + ctx.config.enrollment_ttl
    profile = body.profile or DEFAULT_PROFILE[body.kind]
    async with ctx.db.transaction() as conn:
        cur = await conn.fetchone("SELECT 1 FROM communes WHERE code = ?", (body.commune,))
        if cur is None:
            raise field_error(422, "unknown_commune", "commune", f"no commune {body.commune!r}")
        await conn.execute(
            "INSERT INTO devices (id, commune, name, kind, profile, enrollment_code_hash,"
            " enrollment_expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                device_id,
                body.commune,
                body.name,
                body.kind.value,
                profile,
                code_hash(code),
                iso(expires),
                iso(now),
            ),
        )
        await ctx.audit(
            conn,
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


#: By commune, then name; the id tells apart two devices of one name.
_DEVICE_ORDER = ("commune", "name", "id")


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
    where: list[str] = []
    params: dict[str, Any] = {}
    if ctx.user.commune is not None:
        where.append("commune = :scope")
        params["scope"] = ctx.user.commune
    if query.commune:
        where.append("commune = :commune")
        params["commune"] = query.commune
    if query.kind:
        where.append("kind = :kind")
        params["kind"] = query.kind.value
    key = decode_cursor(query.before, (str, str, str)) if query.before is not None else None
    online = ctx.connections.online_ids()
    offline_after_s = ctx.config.offline_after.total_seconds()
    chunk = query.limit + 1
    fleet: list[DeviceOut] = []
    while True:
        conds = [*where, after_key(_DEVICE_ORDER, descending=False)] if key else where
        rows = await ctx.db.fetchall(
            "SELECT * FROM devices"
            + (" WHERE " + " AND ".join(conds) if conds else "")
            + " ORDER BY commune, name, id LIMIT :chunk",
            {**params, **(key_params(key) if key else {}), "chunk": chunk},
        )
        for r in rows:
            device = _device_out(r, r["id"] in online, offline_after_s)
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
        key = (rows[-1]["commune"], rows[-1]["name"], rows[-1]["id"])


async def _device_row(ctx: Ctx) -> sqlite3.Row:
    device_id = ctx.path("id")
    row = await ctx.db.fetchone("SELECT * FROM devices WHERE id = ?", (device_id,))
    if row is None:
        raise ApiError(404, "not_found", f"no device {device_id!r}")
    require(ctx.user, Permission.FLEET_READ, commune=row["commune"])
    return row


@routes.get(
    "/api/v1/devices/{id}",
    summary="One device",
    permission=Permission.FLEET_READ,
    response=DeviceOut,
    errors=[403, 404],
)
async def get_device(ctx: Ctx) -> DeviceOut:
    row = await _device_row(ctx)
    return _device_out(
        row, ctx.connections.is_online(row["id"]), ctx.config.offline_after.total_seconds()
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
    row = await _device_row(ctx)
    code = new_enrollment_code()
    expires = utcnow() + ctx.config.enrollment_ttl
    async with ctx.db.transaction() as conn:
        await conn.execute(
            "UPDATE devices SET enrollment_code_hash = ?, enrollment_expires_at = ?,"
            " enrollment_used_at = NULL, secret_hash = NULL WHERE id = ?",
            (code_hash(code), iso(expires), row["id"]),
        )
        await ctx.audit(conn, "device.reenroll", row["id"], row["commune"])
    return EnrollmentCode(id=row["id"], enrollment_code=code, enrollment_expires_at=expires)


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
    body: SetVolumeIn | StopIn | TestToneIn | ResyncIn = ctx.body
    row = await _device_row(ctx)
    fields = command_fields(row["id"], utcnow(), ctx.config.command_ttl)
    command: Command
    if isinstance(body, SetVolumeIn):
        command = SetVolume(**fields, volume=body.volume)
    elif isinstance(body, StopIn):
        command = StopPlayback(**fields)
    elif isinstance(body, TestToneIn):
        command = TestTone(**fields)
    else:
        command = Resync(**fields)
    delivered = ctx.connections.send(row["id"], command)
    async with ctx.db.transaction() as conn:
        await ctx.audit(
            conn,
            f"device.command.{body.type}",
            row["id"],
            f"delivered={delivered}",
            after=body.model_dump(mode="json"),
        )
    return CommandResult(
        command_id=fields["command_id"], device_id=row["id"], type=body.type, delivered=delivered
    )
