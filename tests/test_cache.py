"""MediaCache against a small fake hub: verification, resume with Range, sharing, upkeep."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from edge_agent.cache import CacheIntegrityError, DiskFull, MediaCache
from edge_agent.hubclient import HubClient, HubRejected
from loa_contract import MediaRef


@dataclass
class FakeMedia:
    """The hub's media endpoint, with ways to misbehave, counting what it sends."""

    files: dict[str, bytes] = field(default_factory=dict)
    bytes_sent: int = 0
    ranges: list[str | None] = field(default_factory=list)
    cut_next_at_half: bool = False
    ignore_range: bool = False
    refuse_range: bool = False
    override: bytes | None = None  # serve these bytes whatever is asked
    gate: asyncio.Event | None = None
    #: Set by the test once the device holds the first half, so the cut comes after it.
    half_received: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, data: bytes) -> MediaRef:
        sha = hashlib.sha256(data).hexdigest()
        self.files[sha] = data
        return MediaRef(sha256=sha, size=len(data), mime="audio/mpeg")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert request.headers["Authorization"] == "Device dev-1:s3cret"
        sha = request.match_info["sha"]
        if sha not in self.files:
            raise web.HTTPNotFound(text="no such media")
        data = self.override if self.override is not None else self.files[sha]
        asked = request.headers.get("Range")
        self.ranges.append(asked)
        if self.gate is not None:
            await self.gate.wait()
        start, status = 0, 200
        if asked and not self.ignore_range:
            if self.refuse_range:
                return web.Response(status=416, headers={"Content-Range": f"bytes */{len(data)}"})
            start, status = int(asked.removeprefix("bytes=").rstrip("-")), 206
        body = data[start:]
        response = web.StreamResponse(status=status)
        response.content_length = len(body)
        if status == 206:
            response.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        await response.prepare(request)
        cut_at = len(data) // 2 - start if self.cut_next_at_half else None
        self.cut_next_at_half = False
        for i in range(0, len(body), 16384):
            chunk = body[i : i + 16384]
            if cut_at is not None and i + len(chunk) >= cut_at:
                chunk = chunk[: cut_at - i]
                await response.write(chunk)
                self.bytes_sent += len(chunk)
                # The link drops once the device has what was sent: a client reading from
                # a slow 3G link has consumed its socket when the cut comes.
                async with asyncio.timeout(5):
                    await self.half_received.wait()
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(chunk)
            self.bytes_sent += len(chunk)
        await response.write_eof()
        return response


@pytest.fixture
async def hub() -> AsyncIterator[tuple[FakeMedia, HubClient]]:
    fake = FakeMedia()
    app = web.Application()
    app.router.add_get("/api/v1/device/media/{sha}", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = HubClient(
        str(server.make_url("")), "dev-1", "s3cret", backoff_base=0.001, backoff_max=0.01
    )
    yield fake, client
    await client.close()
    await server.close()


def payload(size: int, seed: int = 0) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (size // 32) + b"x" * (size % 32)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


async def test_fetch_verifies_and_publishes(tmp_path: Path, hub) -> None:
    fake, client = hub
    data = payload(300_000)
    ref = fake.add(data)
    cache = MediaCache(tmp_path / "cache")
    assert cache.path_for(ref.sha256) is None and not cache.has(ref.sha256)
    seen: list[tuple[int, int]] = []
    path = await cache.fetch(client, ref, lambda done, total: seen.append((done, total)))
    assert path == cache.path_for(ref.sha256)
    assert path.read_bytes() == data
    assert seen[-1] == (len(data), len(data))
    assert listing(cache.partial) == []
    # Present objects are served without asking the hub again.
    assert await cache.fetch(client, ref) == path
    assert fake.ranges == [None]
    assert cache.usage() == (1, len(data))


async def test_wrong_bytes_are_refused(tmp_path: Path, hub) -> None:
    fake, client = hub
    ref = fake.add(payload(50_000))
    fake.override = payload(50_000, seed=1)  # same size, other content
    cache = MediaCache(tmp_path / "cache")
    with pytest.raises(CacheIntegrityError):
        await cache.fetch(client, ref)
    assert listing(cache.objects) == []
    assert listing(cache.partial) == []

    fake.override = payload(60_000)  # longer than the signed size
    with pytest.raises(CacheIntegrityError):
        await cache.fetch(client, ref)
    assert listing(cache.objects) == [] and listing(cache.partial) == []


async def test_cut_at_half_resumes_with_range(tmp_path: Path, hub) -> None:
    fake, client = hub
    data = payload(1_000_000)
    ref = fake.add(data)
    fake.cut_next_at_half = True
    cache = MediaCache(tmp_path / "cache")

    def progress(done: int, total: int) -> None:
        if done >= total // 2:
            fake.half_received.set()

    path = await cache.fetch(client, ref, progress)
    assert path.read_bytes() == data
    assert fake.ranges[0] is None
    assert len(fake.ranges) == 2 and fake.ranges[1] is not None
    assert fake.ranges[1].startswith("bytes=") and fake.ranges[1] != "bytes=0-"
    assert fake.bytes_sent <= 1.05 * len(data)


async def test_part_left_by_an_earlier_run_is_resumed(tmp_path: Path, hub) -> None:
    fake, client = hub
    data = payload(400_000)
    ref = fake.add(data)
    cache = MediaCache(tmp_path / "cache")
    (cache.partial / f"{ref.sha256}.part").write_bytes(data[:150_000])
    assert (await cache.fetch(client, ref)).read_bytes() == data
    assert fake.ranges == ["bytes=150000-"]
    assert fake.bytes_sent == len(data) - 150_000


async def test_corrupt_part_is_refetched_whole(tmp_path: Path, hub) -> None:
    fake, client = hub
    data = payload(200_000)
    ref = fake.add(data)
    cache = MediaCache(tmp_path / "cache")
    (cache.partial / f"{ref.sha256}.part").write_bytes(b"\0" * 100_000)  # rotten sectors
    assert (await cache.fetch(client, ref)).read_bytes() == data
    assert fake.ranges == ["bytes=100000-", None]


async def test_server_ignoring_range_restarts_from_zero(tmp_path: Path, hub) -> None:
    fake, client = hub
    data = payload(200_000)
    ref = fake.add(data)
    fake.ignore_range = True
    cache = MediaCache(tmp_path / "cache")
    (cache.partial / f"{ref.sha256}.part").write_bytes(data[:80_000])
    assert (await cache.fetch(client, ref)).read_bytes() == data
    assert fake.ranges == ["bytes=80000-"]


async def test_416_restarts_from_zero(tmp_path: Path, hub) -> None:
    fake, client = hub
    data = payload(120_000)
    ref = fake.add(data)
    fake.refuse_range = True
    cache = MediaCache(tmp_path / "cache")
    (cache.partial / f"{ref.sha256}.part").write_bytes(data[:1000])
    assert (await cache.fetch(client, ref)).read_bytes() == data
    assert fake.ranges == ["bytes=1000-", None]


async def test_missing_media_is_rejected(tmp_path: Path, hub) -> None:
    _fake, client = hub
    ref = MediaRef(sha256="a" * 64, size=10, mime="audio/mpeg")
    with pytest.raises(HubRejected) as caught:
        await MediaCache(tmp_path / "cache").fetch(client, ref)
    assert caught.value.status == 404


async def test_concurrent_fetches_share_one_download(tmp_path: Path, hub) -> None:
    fake, client = hub
    data = payload(500_000)
    ref = fake.add(data)
    fake.gate = asyncio.Event()
    cache = MediaCache(tmp_path / "cache")
    progress: list[int] = []
    first = asyncio.create_task(cache.fetch(client, ref, lambda d, t: progress.append(1)))
    second = asyncio.create_task(cache.fetch(client, ref, lambda d, t: progress.append(2)))
    third = asyncio.create_task(cache.fetch(client, ref))
    await asyncio.sleep(0)  # let all three register before the hub answers
    third.cancel()  # one caller giving up does not stop the others' download
    fake.gate.set()
    paths = await asyncio.gather(first, second)
    assert paths[0] == paths[1] and paths[0].read_bytes() == data
    assert len(fake.ranges) == 1
    assert {1, 2} <= set(progress)
    with pytest.raises(asyncio.CancelledError):
        await third


async def test_verify_all_deletes_corrupt_objects_and_strays(tmp_path: Path, hub) -> None:
    fake, client = hub
    good, bad = fake.add(payload(10_000, 1)), fake.add(payload(10_000, 2))
    cache = MediaCache(tmp_path / "cache")
    await cache.fetch(client, good)
    bad_path = await cache.fetch(client, bad)
    with bad_path.open("r+b") as f:  # one flipped byte, same size
        f.seek(5000)
        f.write(b"\xff")
    (cache.objects / "leftover.tmp").write_bytes(b"junk")
    (cache.partial / "nonsense").write_bytes(b"junk")
    (cache.partial / f"{good.sha256}.part").write_bytes(b"stale")
    (cache.derived / ".speech.wav.1234.tmp").write_bytes(b"junk")
    assert await cache.verify_all() == [bad.sha256]
    assert listing(cache.objects) == [good.sha256]
    assert listing(cache.partial) == []
    assert listing(cache.derived) == []
    # The deleted object comes back on the next fetch.
    assert (await cache.fetch(client, bad)).read_bytes() == payload(10_000, 2)


async def test_truncated_object_is_not_served(tmp_path: Path, hub) -> None:
    fake, client = hub
    data = payload(30_000)
    ref = fake.add(data)
    cache = MediaCache(tmp_path / "cache")
    path = await cache.fetch(client, ref)
    os.truncate(path, 10_000)
    assert (await cache.fetch(client, ref)).read_bytes() == data


async def test_evict_keeps_what_is_needed(tmp_path: Path, hub) -> None:
    fake, client = hub
    refs = [fake.add(payload(1000 * (i + 1), i)) for i in range(3)]
    cache = MediaCache(tmp_path / "cache")
    for ref in refs:
        await cache.fetch(client, ref)
    (cache.partial / f"{'b' * 64}.part").write_bytes(b"12345")
    freed = cache.evict({refs[0].sha256})
    assert freed == 2000 + 3000 + 5
    assert listing(cache.objects) == [refs[0].sha256]
    assert listing(cache.partial) == []
    assert cache.usage() == (1, 1000)


async def test_derived_files(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path / "cache")
    src = tmp_path / "speech.wav"
    src.write_bytes(b"RIFF....")
    assert cache.derived_path("abc123", ".wav") is None
    stored = await cache.put_file(src, "abc123")
    assert stored == cache.derived_path("abc123", ".wav")
    assert stored.read_bytes() == b"RIFF...."
    assert [p.name for p in cache.derived.iterdir()] == ["abc123.wav"]
    with pytest.raises(ValueError):
        await cache.put_file(src, "../escape")
    with pytest.raises(ValueError):
        cache.path_for("../../etc/passwd")


async def test_renditions_arrive_whole_and_only_what_is_wanted_stays(tmp_path: Path) -> None:
    cache = MediaCache(tmp_path / "cache")
    key = "doc-" + "a" * 64 + "-1920x1080-r1"
    with cache.work_dir() as work:
        for n in (1, 2):
            (work / f"{key}-p{n}.png").write_bytes(b"page")
        cache.adopt(work, [f"{key}-p1.png", f"{key}-p2.png"], (f"{key}.json", b"{}"))
    assert not work.exists(), "the work folder goes once the rendition is in"
    assert cache.derived_path(key, ".json") is not None
    assert cache.derived_path(f"{key}-p2", ".png") is not None
    with pytest.raises(ValueError):
        with cache.work_dir() as work:
            (work / "x.png").write_bytes(b"")
            cache.adopt(work, ["x.png"], ("../escape.json", b"{}"))
    # A work folder a crash left behind is cleared at the next start.
    stale = cache.work / "left-by-a-crash"
    stale.mkdir()
    (stale / "p1.png").write_bytes(b"half")
    await cache.verify_all()
    assert not stale.exists()

    src = tmp_path / "speech.wav"
    src.write_bytes(b"RIFF....")
    await cache.put_file(src, "b" * 64)
    other = "img-" + "c" * 64 + "-192x96-r1"
    (cache.derived / f"{other}-f3.png").write_bytes(b"frame")
    (cache.derived / f".{other}.png.123.tmp").write_bytes(b"being written")
    freed = cache.evict_derived({key, "b" * 64})
    assert freed == len(b"frame")
    assert sorted(p.name for p in cache.derived.iterdir()) == sorted(
        [
            f"{key}.json",
            f"{key}-p1.png",
            f"{key}-p2.png",
            "b" * 64 + ".wav",
            f".{other}.png.123.tmp",
        ]
    )
    assert cache.evict_derived(set()) > 0
    assert [p.name for p in cache.derived.iterdir()] == [f".{other}.png.123.tmp"]


async def test_an_object_changed_since_verified_is_not_handed_out_until_hashed_again(
    tmp_path: Path, hub
) -> None:
    fake, client = hub
    data = payload(20_000, 3)
    ref = fake.add(data)
    cache = MediaCache(tmp_path / "cache")
    path = await cache.fetch(client, ref)
    assert cache.path_for(ref.sha256) == path
    served = len(fake.ranges)

    # Touched but the same bytes: unplayable until re-hashed, then kept without a download.
    os.utime(path, ns=(1, 1))
    assert cache.path_for(ref.sha256) is None
    assert cache.changed_objects() == {ref.sha256}
    assert await cache.fetch(client, ref) == path
    assert cache.path_for(ref.sha256) == path and len(fake.ranges) == served
    assert cache.corrupt_found == 0

    # Overwritten with other bytes of the same size: never handed out, fetched again.
    path.write_bytes(bytes(b ^ 0xFF for b in data))
    assert cache.path_for(ref.sha256) is None
    assert (await cache.fetch(client, ref)).read_bytes() == data
    assert cache.corrupt_found == 1 and len(fake.ranges) == served + 1
    assert cache.path_for(ref.sha256) == path

    # A fresh cache (a restart) trusts nothing it has not hashed in this run.
    again = MediaCache(tmp_path / "cache")
    assert again.path_for(ref.sha256) is None
    assert await again.verify_all() == []
    assert again.path_for(ref.sha256) == path


async def test_verified_answers_from_memory_and_learns_from_each_check(tmp_path: Path, hub) -> None:
    """The scheduler weighs candidates by `verified` (no stat); once `path_for` (the check at
    play time) found the file changed or gone, `verified` says so too: a chosen item that
    turns out unplayable is not chosen again until it is fixed."""
    fake, client = hub
    ref = fake.add(payload(8_000, 5))
    cache = MediaCache(tmp_path / "cache")
    path = await cache.fetch(client, ref)
    assert cache.verified(ref.sha256)

    os.utime(path, ns=(1, 1))
    assert cache.verified(ref.sha256)  # memory alone has not seen it yet
    assert cache.path_for(ref.sha256) is None
    assert not cache.verified(ref.sha256)
    assert await cache.fetch(client, ref) == path
    assert cache.verified(ref.sha256)

    path.unlink()
    assert cache.path_for(ref.sha256) is None
    assert not cache.verified(ref.sha256)
    assert not MediaCache(tmp_path / "other").verified(ref.sha256)


async def test_a_download_that_would_eat_the_reserve_is_refused_unwritten(
    tmp_path: Path, hub
) -> None:
    # A full data disk silences the device (no SQLite write, no speech): issue #9.
    fake, client = hub
    ref = fake.add(payload(64 * 1024))
    free = shutil.disk_usage(tmp_path).free
    cache = MediaCache(tmp_path / "cache", reserve=free - 32 * 1024)
    with pytest.raises(DiskFull) as refused:
        await cache.fetch(client, ref)
    assert refused.value.errno == errno.ENOSPC and isinstance(refused.value, OSError)
    assert fake.ranges == [] and listing(cache.partial) == [] and not cache.has(ref.sha256)
    cache.reserve = 0  # space returned
    path = await cache.fetch(client, ref)
    assert path.read_bytes() == fake.files[ref.sha256]
