"""The preview of a bulletin before approval (hub/previews.py), over the API: the speech a
speaker will air, the frames each board profile will show, and how long an airing lasts."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from .appkeys import NODE_OBJECTS
from .bulletins import _visible_bulletin
from .errors import ApiError
from .media import media_path
from .previews import FILE_NAME, Preview, make_preview
from .routing import Ctx, RouteTable
from .store import media

routes = RouteTable("previews")


class BoardPreviewOut(BaseModel):
    profile: str
    width: int
    height: int
    #: One airing on this board, in seconds (the board's own layout decides it).
    seconds: float
    #: URLs of PNG frames at the board's resolution, and the moment of the airing of each.
    frames: list[str]
    at_s: list[float]
    problem: str | None


class PreviewOut(BaseModel):
    bulletin_id: str
    #: The speech a speaker airs (WAV), when the bulletin is spoken.
    speech: str | None
    #: One airing on a speaker, in seconds: the speech's or the recording's decoded length.
    speaker_seconds: float | None
    speaker_problem: str | None
    boards: list[BoardPreviewOut]


async def preview_of(ctx: Ctx) -> Preview:
    bulletin = (await _visible_bulletin(ctx.db, ctx.path("id"), ctx.user)).content
    source = duration = None
    if bulletin.media is not None:
        stored = await media.get(ctx.db, bulletin.media.sha256)
        duration = stored.duration_s if stored is not None else None
        # Made from this node's copy: fetched from another node first if need be.
        if await ctx.app[NODE_OBJECTS].ensure("media", bulletin.media.sha256):
            source = media_path(ctx.config.media_dir, bulletin.media.sha256)
    return await make_preview(bulletin, source, duration, ctx.config.data_dir / "previews", ctx.now)


@routes.get(
    "/api/v1/bulletins/{id}/preview",
    summary="What the bulletin becomes before it airs: its speech on speakers, its frames on"
    " each board profile at its resolution (made by the devices' own code), and how long one"
    " airing lasts on each. Made once per content",
    response=PreviewOut,
    errors=[403, 404],
)
async def get_preview(ctx: Ctx) -> PreviewOut:
    preview = await preview_of(ctx)
    base = f"/api/v1/bulletins/{ctx.path('id')}/preview"
    return PreviewOut(
        bulletin_id=ctx.path("id"),
        speech=f"{base}/{preview.speech}" if preview.speech else None,
        speaker_seconds=preview.speaker_seconds,
        speaker_problem=preview.speaker_problem,
        boards=[
            BoardPreviewOut(
                profile=b.profile,
                width=b.width,
                height=b.height,
                seconds=b.seconds,
                frames=[f"{base}/{f}" for f in b.frames],
                at_s=b.at_s,
                problem=b.problem,
            )
            for b in preview.boards
        ],
    )


@routes.get(
    "/api/v1/bulletins/{id}/preview/{file}",
    summary="One file of the bulletin's preview (a frame as PNG, the speech as WAV)",
    errors=[403, 404],
    response_content={
        "200": {
            "description": "The file",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def get_preview_file(ctx: Ctx) -> web.StreamResponse:
    name = ctx.path("file")
    preview = await preview_of(ctx)
    known = {f for b in preview.boards for f in b.frames} | {preview.speech}
    if not FILE_NAME.match(name) or name not in known:
        raise ApiError(404, "not_found", f"no preview file {name!r}")
    folder = ctx.config.data_dir / "previews" / preview.key
    mime = "audio/wav" if name.endswith(".wav") else "image/png"
    return web.FileResponse(
        folder / name,
        headers={"Content-Type": mime, "Cache-Control": "private, max-age=3600"},
    )
