"""Media and agent release files on every hub node: fetched from another node by sha256 and
verified before they are kept or served.

Both stores are content-addressed (a file is named by its sha256; hub/media.py,
hub/releases.py) and the database, shared by the nodes, says which objects exist. The bytes
stay in files in each node's data folder, not in the database: a video may be hundreds of
megabytes, which PostgreSQL would hold in memory per request (bytea) and copy into every
pg_dump, while a file is served with sendfile and byte ranges (a cut download resumes), as on
a hub of one node. So a node that lacks an object asks the other running nodes for it (at
their --node-url, else their --public-url: `NodeBus.peers`), checks the sha256 of what
arrives, and only then keeps it (written to a temporary name, synced, renamed, as uploads
are). A node that stores a new upload tells the others on the node bus (`object_stored`), and
they fetch it in the background: the object then survives its first node's death. A node
fetches an object once: concurrent requests for it wait for the one fetch.

Previews (hub/previews.py) are made by each node from its own copy of the media.

The route nodes fetch from answers only another node of this hub (`auth="node"`,
hub/node_secret.py) and serves only what the node holds itself: a miss never makes it ask
further, so two nodes cannot ask each other in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal

import aiohttp
from aiohttp import web

from .appkeys import CLOCK, CONFIG, CONNECTIONS, NODE_OBJECTS, NODE_SECRET
from .errors import ApiError
from .node_secret import authorization
from .routing import Ctx, RouteTable

log = logging.getLogger(__name__)

routes = RouteTable("nodes")

Store = Literal["media", "releases"]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 256 * 1024
#: How long one node may take to start answering, and to send an object whole.
CONNECT_TIMEOUT_S = 5.0
FETCH_TIMEOUT_S = 600.0


def object_path(directory: Path, sha256: str) -> Path:
    return directory / sha256


def file_response(directory: Path, sha256: str, mime: str) -> web.FileResponse:
    # Named by content, a file never changes: caches may keep it for good.
    return web.FileResponse(
        object_path(directory, sha256),
        headers={"Content-Type": mime, "Cache-Control": "private, max-age=31536000, immutable"},
    )


class NodeObjects:
    """This node's way to get the objects another node stored."""

    def __init__(
        self,
        *,
        directories: dict[Store, Path],
        secret: bytes,
        clock: Callable[[], datetime],
        peers: Callable[[], Awaitable[list[str | None]]],
    ) -> None:
        """`peers` names the other running nodes (`NodeBus.peers`)."""
        self._directories = directories
        self._secret = secret
        self._clock = clock
        self._peers = peers
        self._fetching: dict[str, asyncio.Future[bool]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._session: aiohttp.ClientSession | None = None

    def directory(self, store: Store) -> Path:
        return self._directories[store]

    async def ensure(self, store: Store, sha256: str) -> bool:
        """Whether the object is here, fetched from another node first if it was not."""
        if object_path(self._directories[store], sha256).is_file():
            return True
        running = self._fetching.get(sha256)
        if running is not None:
            return await asyncio.shield(running)
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._fetching[sha256] = done
        try:
            found = await self._fetch(store, sha256)
            done.set_result(found)
        except BaseException as exc:
            done.set_exception(exc)
            raise
        finally:
            del self._fetching[sha256]
            # Nobody else may be waiting: do not let an exception go unretrieved.
            if done.done() and not done.cancelled():
                done.exception()
        return found

    def replicate(self, store: Store, sha256: str) -> None:
        """Fetch an object another node just stored, in the background."""
        task = asyncio.get_running_loop().create_task(
            self.ensure(store, sha256), name=f"copying {store}/{sha256[:12]}"
        )
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.wait(self._background)
        if self._session is not None:
            await self._session.close()

    async def _fetch(self, store: Store, sha256: str) -> bool:
        for peer in [url for url in await self._peers() if url]:
            try:
                if await self._fetch_from(peer, store, sha256):
                    return True
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                log.warning("fetching %s/%s from %s failed: %r", store, sha256, peer, exc)
        return False

    async def _fetch_from(self, peer: str, store: Store, sha256: str) -> bool:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
            )
        path = f"/api/v1/node/objects/{store}/{sha256}"
        headers = {"Authorization": authorization(self._secret, self._clock())}
        directory = self._directories[store]
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{sha256}.{uuid.uuid4().hex[:8]}.part"
        digest = hashlib.sha256()
        try:
            async with self._session.get(peer + path, headers=headers) as response:
                if response.status == 404:
                    return False
                if response.status != 200:
                    log.warning("%s answered %d for %s/%s", peer, response.status, store, sha256)
                    return False
                fh = await asyncio.to_thread(open, tmp, "wb")
                try:
                    async for chunk in response.content.iter_chunked(_CHUNK):
                        digest.update(chunk)
                        await asyncio.to_thread(fh.write, chunk)
                    if digest.hexdigest() != sha256:
                        log.error("%s sent %s/%s with another sha256: dropped", peer, store, sha256)
                        return False
                    await asyncio.to_thread(_keep, fh, tmp, object_path(directory, sha256))
                finally:
                    fh.close()
            log.info("copied %s/%s from %s", store, sha256, peer)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _keep(fh: BinaryIO, tmp: Path, final: Path) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


async def object_response(ctx: Ctx, store: Store, sha256: str, mime: str) -> web.FileResponse:
    """The object as a file response, fetched from another node first if need be (the caller
    has checked that the asker may have it)."""
    objects = ctx.app[NODE_OBJECTS]
    if not await objects.ensure(store, sha256):
        raise ApiError(404, "not_found", "the file is on no hub node now")
    return file_response(objects.directory(store), sha256, mime)


@routes.get(
    "/api/v1/node/objects/{store}/{sha256}",
    summary="A media or agent release file this node holds, for another node of this hub",
    auth="node",
    errors=[404],
    response_content={
        "200": {
            "description": "The file",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def node_object(ctx: Ctx) -> web.StreamResponse:
    store, sha = ctx.path("store"), ctx.path("sha256")
    if store not in ("media", "releases") or not _SHA256.match(sha):
        raise ApiError(404, "not_found", "no such object")
    directory = ctx.config.media_dir if store == "media" else ctx.config.releases_dir
    path = object_path(directory, sha)
    if not path.is_file():
        raise ApiError(404, "not_found", "no such object on this node")
    return file_response(directory, sha, "application/octet-stream")


async def objects_context(app: web.Application) -> AsyncIterator[None]:
    """This node's NodeObjects, once the database is open."""
    config = app[CONFIG]
    objects = NodeObjects(
        directories={"media": config.media_dir, "releases": config.releases_dir},
        secret=app[NODE_SECRET],
        clock=app[CLOCK],
        peers=app[CONNECTIONS].bus.peers,
    )
    app[NODE_OBJECTS] = objects
    yield
    await objects.close()
