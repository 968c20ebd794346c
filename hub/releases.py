"""Fleet updates (issue #14): agent releases, staged roll-outs, and the hub stopping a bad one.

- `hub release add FILE` (add_release) records a release built by `make release`: its
  version (from the file's RELEASE.json), size and sha256, and a ReleaseDescriptor signed
  with the hub's manifest key. The file is kept in `<data>/releases/<sha256>` and served to
  devices by the media route, with Range.
- A roll-out offers one release to part of the fleet: the devices of some communes, some
  devices, one kind, or all, and of those a stable `percent` (a device's bucket is a hash of
  the roll-out and the device: widening only adds devices). Widen, pause, resume, stop.
  A rollback is a roll-out of an older release with its own descriptor, signed as a
  downgrade and expiring, since devices refuse to go back otherwise.
- Devices ask with POST /api/v1/device/update, saying what they run and how their last update
  went; the hub stores that and answers with the descriptor they should run, if any.
- When more than `max_failure_share` of the devices that took a version failed or rolled
  back (once at least `min_attempts` have tried), its active roll-outs pause themselves,
  with an audit record and a notice on the console's releases page.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from loa_contract import (
    DeviceKind,
    HubSigner,
    ReleaseDescriptor,
    ReleaseVersion,
    SignedEnvelope,
    UpdateOffer,
    UpdateReport,
    version_key,
)

from .auth import DeviceAuth, Permission
from .db import Database
from .errors import ApiError, field_error
from .paging import DEFAULT_LIMIT, MAX_CURSOR, MAX_LIMIT, Page, cut, decode_cursor
from .routing import Ctx, RouteTable
from .store import audit as audit_log
from .store import groups as groups_store
from .store import releases as store
from .store.groups import Group
from .store.releases import Release, Rollout
from .store.sql import Tx

routes = RouteTable("releases")

#: A signed rollback is obeyed for this long, so an old one cannot be replayed later.
DOWNGRADE_VALID = timedelta(days=30)
#: The largest release file the hub takes (a release is a few MB; bundled wheels more).
MAX_RELEASE_BYTES = 512 * 1024 * 1024
ROLLOUT_STATES = ("active", "paused", "stopped")


class ReleaseRefused(Exception):
    """A file that is not a release, or one the hub holds already."""


# ---------------------------------------------------------------- pure rules


def bucket(rollout_id: str, device_id: str) -> float:
    """A device's place in a roll-out, 0 ≤ b < 100, the same every time it is asked."""
    digest = hashlib.sha256(f"{rollout_id}:{device_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 10_000 / 100


def in_rollout(
    rollout: Rollout,
    device_id: str,
    commune: str,
    kind: str,
    groups: frozenset[str] = frozenset(),
) -> bool:
    """The roll-out's scope holds this device (one of its `groups` when the roll-out targets
    a group; else its communes or devices, or the whole province), and its share has reached
    the device."""
    if rollout.kind is not None and rollout.kind != kind:
        return False
    if rollout.group is not None:
        if rollout.group not in groups:
            return False
    elif (rollout.communes or rollout.devices) and not (
        commune in rollout.communes or device_id in rollout.devices
    ):
        return False
    return bucket(rollout.id, device_id) < rollout.percent


def offered(
    rollouts: list[Rollout],
    device_id: str,
    commune: str,
    kind: str,
    groups: frozenset[str] = frozenset(),
) -> Rollout | None:
    """The newest active roll-out this device is in (`rollouts` newest first; `groups` the
    ids of the device groups it belongs to now)."""
    for rollout in rollouts:
        if rollout.state == "active" and in_rollout(rollout, device_id, commune, kind, groups):
            return rollout
    return None


def pause_reason(
    updated: int, failed: int, max_failure_share: float, min_attempts: int
) -> str | None:
    """Why a roll-out must pause itself, or None."""
    tried = updated + failed
    if tried < min_attempts or tried == 0:
        return None
    share = failed / tried
    if share > max_failure_share:
        return (
            f"{failed} of {tried} devices that took it failed or rolled back"
            f" ({share:.0%} > {max_failure_share:.0%})"
        )
    return None


# ---------------------------------------------------------------- releases


@dataclass(frozen=True)
class ReleaseFile:
    version: str
    sha256: str
    size: int


def read_release_file(path: Path) -> ReleaseFile:
    """The version a release file says it holds, and its size and sha256."""
    size = path.stat().st_size
    if size > MAX_RELEASE_BYTES:
        raise ReleaseRefused(f"{path} is larger than {MAX_RELEASE_BYTES} bytes")
    try:
        with tarfile.open(path, "r:") as tar:
            member = tar.extractfile("RELEASE.json")
            if member is None:
                raise ReleaseRefused(f"{path}: RELEASE.json is not a file")
            manifest = json.loads(member.read())
    except (tarfile.TarError, KeyError, ValueError, OSError) as exc:
        raise ReleaseRefused(f"{path} is not a release built by `make release`: {exc}") from exc
    version = manifest.get("version") if isinstance(manifest, dict) else None
    try:
        ReleaseDescriptor.model_validate(
            {"version": version, "sha256": "0" * 64, "size": 1, "filename": "x"}
            | {"signed_at": "2000-01-01T00:00:00+00:00"}
        )
    except ValidationError as exc:
        raise ReleaseRefused(f"{path}: RELEASE.json has no valid version ({version!r})") from exc
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(block)
    return ReleaseFile(version=str(version), sha256=digest.hexdigest(), size=size)


def _keep_file(source: Path, releases_dir: Path, sha256: str) -> None:
    releases_dir.mkdir(parents=True, exist_ok=True)
    dest = releases_dir / sha256
    tmp = releases_dir / f".{sha256}.{uuid.uuid4().hex[:8]}"
    with open(source, "rb") as src, open(tmp, "wb") as out:
        shutil.copyfileobj(src, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, dest)
    fd = os.open(releases_dir, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sign_descriptor(
    signer: HubSigner,
    release: ReleaseFile,
    filename: str,
    now: datetime,
    *,
    downgrade: bool = False,
) -> str:
    descriptor = ReleaseDescriptor(
        version=release.version,
        sha256=release.sha256,
        size=release.size,
        filename=filename[:200],
        signed_at=now,
        downgrade=downgrade,
        expires_at=now + DOWNGRADE_VALID if downgrade else None,
    )
    return signer.sign(descriptor).model_dump_json()


async def add_release(
    db: Database,
    signer: HubSigner,
    path: Path,
    releases_dir: Path,
    *,
    actor: str,
    address: str | None,
    now: datetime,
) -> Release:
    """Record and sign a release file; the file is copied into the hub's releases folder."""
    found = read_release_file(path)
    if await store.release(db, found.version) is not None:
        raise ReleaseRefused(f"release {found.version} is recorded already")
    if await store.release_by_sha(db, found.sha256) is not None:
        raise ReleaseRefused(f"this file is recorded already (sha256 {found.sha256})")
    _keep_file(path, releases_dir, found.sha256)
    release = Release(
        version=found.version,
        sha256=found.sha256,
        size=found.size,
        filename=path.name,
        descriptor=sign_descriptor(signer, found, path.name, now),
        added_at=now,
        added_by=actor,
    )
    async with db.transaction() as tx:
        await store.add_release(tx, release)
        await audit_log.append(
            tx,
            actor,
            address,
            "release.add",
            release.version,
            f"sha256 {release.sha256}, {release.size} bytes, key {signer.key_id}",
            at=now,
        )
    return release


# ---------------------------------------------------------------- roll-outs


class RolloutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: ReleaseVersion
    #: Empty communes, devices and group: the whole province (of `kind`, when given).
    communes: list[str] = Field(default_factory=list, max_length=2000)
    devices: list[str] = Field(default_factory=list, max_length=10_000)
    #: A device group (its id, or its name when no other group has that name): the roll-out
    #: reaches the group's members as they are when each device asks. Not with communes or
    #: devices.
    group: str | None = Field(default=None, min_length=1, max_length=100)
    kind: DeviceKind | None = None
    percent: int = Field(ge=1, le=100)
    #: A rollback to an older release: its descriptor is signed as a downgrade.
    rollback: bool = False
    max_failure_share: float = Field(default=0.2, ge=0, le=1)
    min_attempts: int = Field(default=1, ge=1, le=100_000)

    @field_validator("group")
    @classmethod
    def _one_scope(cls, group: str | None, info: ValidationInfo) -> str | None:
        if group is not None and (info.data.get("communes") or info.data.get("devices")):
            raise ValueError("a roll-out targets a group, or communes and devices, not both")
        return group


class WidenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    percent: int = Field(ge=1, le=100)


class RolloutOut(BaseModel):
    id: str
    version: str
    communes: list[str]
    devices: list[str]
    #: The device group it targets (id and name; the name is None once the group is deleted,
    #: and the roll-out then reaches no device).
    group: str | None
    group_name: str | None
    kind: str | None
    percent: int
    state: str
    downgrade: bool
    max_failure_share: float
    min_attempts: int
    paused_reason: str | None
    created_at: datetime
    created_by: str
    updated_at: datetime

    @classmethod
    def of(cls, r: Rollout, group_name: str | None = None) -> RolloutOut:
        return cls(
            id=r.id,
            version=r.version,
            communes=list(r.communes),
            devices=list(r.devices),
            group=r.group,
            group_name=group_name,
            kind=r.kind,
            percent=r.percent,
            state=r.state,
            downgrade=r.downgrade,
            max_failure_share=r.max_failure_share,
            min_attempts=r.min_attempts,
            paused_reason=r.paused_reason,
            created_at=r.created_at,
            created_by=r.created_by,
            updated_at=r.updated_at,
        )


async def start_rollout(
    db: Database,
    signer: HubSigner,
    body: RolloutIn,
    *,
    actor: str,
    address: str | None,
    now: datetime,
) -> Rollout:
    release = await store.release(db, body.version)
    if release is None:
        raise field_error(422, "unknown_release", "version", f"no release {body.version}")
    group = await _target_group(db, body.group) if body.group is not None else None
    descriptor = release.descriptor
    if body.rollback:
        descriptor = sign_descriptor(
            signer,
            ReleaseFile(release.version, release.sha256, release.size),
            release.filename,
            now,
            downgrade=True,
        )
    rollout = Rollout(
        id=uuid.uuid4().hex[:12],
        version=release.version,
        communes=tuple(sorted(set(body.communes))),
        devices=tuple(sorted(set(body.devices))),
        kind=body.kind.value if body.kind else None,
        percent=body.percent,
        state="active",
        downgrade=body.rollback,
        descriptor=descriptor,
        max_failure_share=body.max_failure_share,
        min_attempts=body.min_attempts,
        paused_reason=None,
        created_at=now,
        created_by=actor,
        updated_at=now,
        group=group.id if group else None,
    )
    scope = f" to group {group.name} ({group.id})" if group else ""
    async with db.transaction() as tx:
        # One roll-out at a time: a new one ends those still running.
        for state in ("active", "paused"):
            for earlier in await store.rollouts(tx, state=state):
                await store.set_rollout(
                    tx,
                    earlier.id,
                    state="stopped",
                    percent=earlier.percent,
                    paused_reason=f"replaced by roll-out {rollout.id}",
                    at=now,
                )
        await store.add_rollout(tx, rollout)
        await audit_log.append(
            tx,
            actor,
            address,
            "rollout.start",
            rollout.id,
            f"{'rollback to' if rollout.downgrade else 'release'} {rollout.version}"
            f"{scope} at {rollout.percent} %",
            at=now,
            after=RolloutOut.of(rollout, group.name if group else None).model_dump(mode="json"),
        )
    return rollout


async def _target_group(db: Database, wanted: str) -> Group:
    """The device group a roll-out names, by id or else by a name no other group bears."""
    found = await groups_store.get(db, wanted)
    if found is not None:
        return found
    named = [g for g in await groups_store.listed(db, None) if g.name == wanted.strip()]
    if len(named) == 1:
        return named[0]
    if named:
        raise field_error(
            422,
            "ambiguous_group",
            "group",
            f"{len(named)} groups are named {wanted!r}: give the group's id",
        )
    raise field_error(422, "unknown_group", "group", f"no device group {wanted!r}")


#: What each action does to a roll-out: the states it may come from, the state it leaves.
_CHANGES = {
    "widen": (("active", "paused"), None),
    "pause": (("active",), "paused"),
    "resume": (("paused",), "active"),
    "stop": (("active", "paused"), "stopped"),
}


async def change_rollout(
    db: Database,
    rollout_id: str,
    action: str,
    *,
    percent: int | None = None,
    actor: str,
    address: str | None,
    now: datetime,
) -> Rollout:
    sources, target = _CHANGES[action]
    async with db.transaction() as tx:
        rollout = await store.rollout(tx, rollout_id)
        if rollout is None:
            raise ApiError(404, "not_found", f"no roll-out {rollout_id}")
        if rollout.state not in sources:
            raise ApiError(409, "conflict", f"a {rollout.state} roll-out cannot {action}")
        new_percent = rollout.percent
        if action == "widen":
            assert percent is not None
            if percent <= rollout.percent:
                raise field_error(
                    422, "not_wider", "percent", f"widen past {rollout.percent} %, not to {percent}"
                )
            new_percent = percent
        state = target or rollout.state
        await store.set_rollout(
            tx,
            rollout.id,
            state=state,
            percent=new_percent,
            paused_reason=None if state == "active" else rollout.paused_reason,
            at=now,
        )
        await audit_log.append(
            tx,
            actor,
            address,
            f"rollout.{action}",
            rollout.id,
            f"{rollout.version}: {rollout.state} {rollout.percent} % -> {state} {new_percent} %",
            at=now,
        )
        changed = await store.rollout(tx, rollout.id)
    assert changed is not None
    return changed


# ---------------------------------------------------------------- devices


async def device_update(
    db: Database, device: DeviceAuth, report: UpdateReport, now: datetime
) -> UpdateOffer:
    """Store what the device says; pause a roll-out its failure tips over; answer with the
    release it should run."""
    async with db.transaction() as tx:
        await store.save_device_update(
            tx,
            device.id,
            running_version=report.running_version,
            state=report.state,
            target_version=report.target_version,
            reason=report.reason,
            switch_silence_s=report.switch_silence_s,
            at=now,
        )
        if report.target_version is not None and report.state in ("failed", "rolled_back"):
            await _pause_if_failing(tx, report.target_version, now)
    active = await store.rollouts(db, state="active")
    member_of: frozenset[str] = frozenset()
    if any(r.group is not None for r in active):
        member_of = frozenset(g.id for g in await groups_store.groups_of(db, device.id))
    rollout = offered(active, device.id, device.commune, device.kind.value, member_of)
    if rollout is None:
        return UpdateOffer()
    return UpdateOffer(release=SignedEnvelope.model_validate_json(rollout.descriptor))


async def _pause_if_failing(tx: Tx, version: str, now: datetime) -> None:
    found = await store.outcomes(tx, version)
    for rollout in await store.rollouts(tx, state="active"):
        if rollout.version != version:
            continue
        why = pause_reason(
            found.updated, found.failed, rollout.max_failure_share, rollout.min_attempts
        )
        if why is None:
            continue
        await store.set_rollout(
            tx, rollout.id, state="paused", percent=rollout.percent, paused_reason=why, at=now
        )
        await audit_log.append(
            tx, "hub", None, "rollout.auto_pause", rollout.id, f"{version}: {why}", at=now
        )


# ---------------------------------------------------------------- API


@routes.post(
    "/api/v1/device/update",
    summary="A device says what it runs and how its last update went; the answer is the"
    " signed descriptor of the release it should run (or none)",
    auth="device",
    body=UpdateReport,
    response=UpdateOffer,
)
async def device_update_route(ctx: Ctx) -> UpdateOffer:
    device = ctx.device
    return await device_update(ctx.db, device, ctx.body, ctx.now)


class ReleaseOut(BaseModel):
    version: str
    sha256: str
    size: int
    filename: str
    added_at: datetime
    added_by: str
    #: Enrolled devices running it, and those updating to it, failed on it or rolled back
    #: from it, as each last said.
    running: int
    updating: int
    failed: int
    rolled_back: int


class ReleasesOut(BaseModel):
    releases: list[ReleaseOut]
    #: Versions devices run that the hub has no release for (the provisioned ones).
    other_versions: dict[str, int]
    rollouts: list[RolloutOut]


async def fleet_releases(db: Database) -> ReleasesOut:
    counts = {c.version: c for c in await store.version_counts(db)}
    recorded = await store.releases(db)
    names = {g.id: g.name for g in await groups_store.listed(db, None)}
    known = {r.version for r in recorded}
    out = []
    for r in sorted(recorded, key=lambda r: version_key(r.version), reverse=True):
        c = counts.get(r.version)
        out.append(
            ReleaseOut(
                version=r.version,
                sha256=r.sha256,
                size=r.size,
                filename=r.filename,
                added_at=r.added_at,
                added_by=r.added_by,
                running=c.running if c else 0,
                updating=c.updating if c else 0,
                failed=c.failed if c else 0,
                rolled_back=c.rolled_back if c else 0,
            )
        )
    return ReleasesOut(
        releases=out,
        other_versions={v: c.running for v, c in counts.items() if v not in known and c.running},
        rollouts=[RolloutOut.of(r, names.get(r.group or "")) for r in await store.rollouts(db)],
    )


@routes.get(
    "/api/v1/releases",
    summary="Agent releases with how many devices run each, are updating, failed or rolled"
    " back, and the roll-outs",
    permission=Permission.FLEET_UPDATES,
    response=ReleasesOut,
)
async def list_releases(ctx: Ctx) -> ReleasesOut:
    return await fleet_releases(ctx.db)


@routes.post(
    "/api/v1/rollouts",
    summary="Start a staged roll-out of a release (or a rollback to an older one); it replaces"
    " any roll-out under way",
    permission=Permission.FLEET_UPDATES,
    body=RolloutIn,
    response=RolloutOut,
    status=201,
    errors=[422],
)
async def create_rollout(ctx: Ctx) -> RolloutOut:
    rollout = await start_rollout(
        ctx.db,
        ctx.keyring.signer,
        ctx.body,
        actor=ctx.user.username,
        address=ctx.address,
        now=ctx.now,
    )
    return await rollout_out(ctx.db, rollout)


async def rollout_out(db: Database, rollout: Rollout) -> RolloutOut:
    group = await groups_store.get(db, rollout.group) if rollout.group else None
    return RolloutOut.of(rollout, group.name if group else None)


async def _change(ctx: Ctx, action: str, percent: int | None = None) -> RolloutOut:
    rollout = await change_rollout(
        ctx.db,
        ctx.path("id"),
        action,
        percent=percent,
        actor=ctx.user.username,
        address=ctx.address,
        now=ctx.now,
    )
    return await rollout_out(ctx.db, rollout)


@routes.post(
    "/api/v1/rollouts/{id}/widen",
    summary="Offer the roll-out to a larger share of its devices",
    permission=Permission.FLEET_UPDATES,
    body=WidenIn,
    response=RolloutOut,
    errors=[404, 409, 422],
)
async def widen_rollout(ctx: Ctx) -> RolloutOut:
    body: WidenIn = ctx.body
    return await _change(ctx, "widen", body.percent)


@routes.post(
    "/api/v1/rollouts/{id}/pause",
    summary="Pause a roll-out: no more devices start it",
    permission=Permission.FLEET_UPDATES,
    response=RolloutOut,
    errors=[404, 409],
)
async def pause_rollout(ctx: Ctx) -> RolloutOut:
    return await _change(ctx, "pause")


@routes.post(
    "/api/v1/rollouts/{id}/resume",
    summary="Resume a paused roll-out",
    permission=Permission.FLEET_UPDATES,
    response=RolloutOut,
    errors=[404, 409],
)
async def resume_rollout(ctx: Ctx) -> RolloutOut:
    return await _change(ctx, "resume")


@routes.post(
    "/api/v1/rollouts/{id}/stop",
    summary="Stop a roll-out for good (devices keep what they run)",
    permission=Permission.FLEET_UPDATES,
    response=RolloutOut,
    errors=[404, 409],
)
async def stop_rollout(ctx: Ctx) -> RolloutOut:
    return await _change(ctx, "stop")


class DeviceUpdateOut(BaseModel):
    device_id: str
    running_version: str
    state: str
    target_version: str | None
    reason: str | None
    #: How long the device could not air during its last switch.
    switch_silence_s: float | None
    reported_at: datetime


class DeviceUpdatesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: ReleaseVersion | None = None
    #: The previous page's X-Next-Before: this page continues after that device's word.
    before: str | None = Field(default=None, max_length=MAX_CURSOR)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


@routes.get(
    "/api/v1/device-updates",
    summary="Each device's last word on its update (state, reason, silence of the switch),"
    " newest first; ?version= narrows to one release; paged: follow the Link header",
    permission=Permission.FLEET_UPDATES,
    query=DeviceUpdatesQuery,
    response=list[DeviceUpdateOut],
)
async def list_device_updates(ctx: Ctx) -> Page[list[DeviceUpdateOut]]:
    query: DeviceUpdatesQuery = ctx.query
    before = None
    if query.before is not None:
        reported_at, device_id = decode_cursor(query.before, (str, str))
        before = (reported_at, device_id)
    found = await store.device_updates(
        ctx.db, version=query.version, limit=query.limit + 1, before=before
    )
    found, cursor = cut(found, query.limit, store.update_key)
    return Page([DeviceUpdateOut(**vars(u)) for u in found], cursor)
