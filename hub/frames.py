"""A board's screen as a small picture on its device page: the board posts one beside its
health, at most once a frame_interval (the manifest says how often; speakers never). The hub
keeps only the newest, and only what Pillow reads as a whole PNG or JPEG of a sane size: the
bytes come from a device, so they are checked like any upload before a browser sees them."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime

from aiohttp import web
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel

from .auth import Permission, require
from .errors import ApiError
from .routing import Ctx, RouteTable
from .store import devices, frames

routes = RouteTable("frames")

#: Pillow's format name -> the MIME type served.
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg"}
#: The largest picture kept: a thumbnail, not a screenshot.
MAX_SIDE = 1024
#: A board may post a little early (its clock and timers are not the hub's).
EARLY_S = 10.0


class FrameStored(BaseModel):
    at: datetime
    mime: str
    width: int
    height: int


def inspect_picture(data: bytes) -> tuple[str, int, int]:
    """(mime, width, height) of a whole PNG or JPEG; ValueError saying what is wrong
    otherwise (blocking: a worker thread's job)."""
    try:
        with Image.open(io.BytesIO(data)) as picture:
            picture.verify()  # the whole file, not only its header
            kind, (width, height) = picture.format, picture.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"not a readable image: {exc}") from None
    if kind not in FORMATS:
        raise ValueError(f"a {kind} image; PNG or JPEG only")
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise ValueError(f"{width}×{height} px; at most {MAX_SIDE} px a side")
    return FORMATS[kind], width, height


@routes.post(
    "/api/v1/device/frame",
    summary="A board's picture of its screen (PNG or JPEG, small), at most once a"
    " frame_interval; the hub keeps the newest",
    auth="device",
    raw_body=["image/png", "image/jpeg"],
    response=FrameStored,
    status=201,
    errors=[413, 415, 422, 429],
)
async def post_frame(ctx: Ctx) -> FrameStored:
    device = ctx.device
    config = ctx.config
    interval = config.frame_interval
    if interval is None:
        raise ApiError(422, "frames_off", "this hub keeps no screen pictures")
    limit = config.frame_max_bytes
    request = ctx.request
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "too_large", f"a screen picture is limited to {limit} bytes")
    if request.content_type not in FORMATS.values():
        raise ApiError(415, "unsupported_media_type", "send image/png or image/jpeg")
    data = await request.content.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "too_large", f"a screen picture is limited to {limit} bytes")
    now = ctx.now
    last = await frames.taken_at(ctx.db, device.id)
    if last is not None and (now - last).total_seconds() < interval.total_seconds() - EARLY_S:
        raise ApiError(429, "too_often", f"one picture per {int(interval.total_seconds())} s")
    try:
        mime, width, height = await asyncio.to_thread(inspect_picture, data)
    except ValueError as exc:
        raise ApiError(422, "validation_error", [{"field": "body", "message": str(exc)}]) from None
    if mime != request.content_type:
        raise ApiError(
            422,
            "validation_error",
            [{"field": "body", "message": f"sent as {request.content_type}, but is {mime}"}],
        )
    async with ctx.db.transaction() as tx:
        await frames.put(tx, device.id, at=now, mime=mime, width=width, height=height, data=data)
    return FrameStored(at=now, mime=mime, width=width, height=height)


@routes.get(
    "/api/v1/devices/{id}/frame",
    summary="The newest picture of a board's screen",
    permission=Permission.FLEET_READ,
    errors=[403, 404],
    response_content={
        "200": {
            "description": "The picture",
            "content": {
                "image/png": {"schema": {"type": "string", "format": "binary"}},
                "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def get_frame(ctx: Ctx) -> web.StreamResponse:
    device_id = ctx.path("id")
    commune = await devices.commune_of(ctx.db, device_id)
    if commune is None:
        raise ApiError(404, "not_found", f"no device {device_id!r}")
    require(ctx.user, Permission.FLEET_READ, commune=commune)
    frame = await frames.get(ctx.db, device_id)
    if frame is None:
        raise ApiError(404, "not_found", "no picture from this device yet")
    return web.Response(
        body=frame.data,
        content_type=frame.mime,
        headers={
            "Cache-Control": "private, no-store",
            "Last-Modified": frame.at.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"),
            "X-Content-Type-Options": "nosniff",
        },
    )
