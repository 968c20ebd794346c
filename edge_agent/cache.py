"""Content-addressed media cache that a power cut cannot corrupt.

Layout under `root`:
    objects/<sha256>        complete, verified files; they only ever appear by os.replace
    partial/<sha256>.part   downloads in progress, kept across restarts to resume with Range
    derived/<key><suffix>   files made on the device (synthesized speech, a document's pages,
                            a picture fitted to the screen), named by a key
    work/<id>/              renditions being made; moved into derived/ when whole

An object is published only after its size and sha256 match the signed manifest, by an
atomic rename followed by an fsync of the folder, so after any crash a name in objects/
either holds the whole verified file or does not exist. The SD card itself can still rot,
which is why `verify_all()` re-hashes everything at start and for `doctor`.

Between hashes, what is played is what was verified (DESIGN.md §6), without hashing on the
emergency path: hashing a 50 MB video on a Pi takes seconds, far over the 100 ms budget. So
each verification records the file's identity (inode, size, mtime_ns, ctime_ns), and
`path_for` (the player's only way to an object) hands out a path only while the file still
has that identity: one stat(), microseconds. Any write, truncation, replacement or
`touch` changes it (ctime cannot be set back from user space), and the object is then
unplayable until re-hashed: `fetch` re-hashes it (off the event loop) and keeps it if the
bytes are right, else deletes it and downloads it again. What changes no metadata -- bits
rotting on the card -- is caught by the periodic background `verify_all`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import aiohttp

from loa_contract import MediaRef

from .disk import free_bytes
from .hubclient import HubRejected, HubUnavailable

if TYPE_CHECKING:
    from .hubclient import HubClient

Progress = Callable[[int, int], None]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_SUFFIX = re.compile(r"^(\.[A-Za-z0-9]{1,16})?$")
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")

CHUNK = 64 * 1024
#: How much a power cut may cost a download in progress; fsync is slow on SD cards.
FSYNC_EVERY = 4 * 1024 * 1024
HASH_BLOCK = 1024 * 1024
#: Free space a download must leave on the data disk: SQLite (its WAL and the outbox), speech
#: being synthesized and the logs must still fit, or the device falls silent (issue #9).
DISK_RESERVE = 16 * 1024 * 1024


class CacheIntegrityError(Exception):
    """The bytes the hub served do not match the size or sha256 in the signed manifest."""


class DiskFull(OSError):
    """A download that would not fit beside the reserve: refused before a byte is written
    (or, if the disk filled meanwhile, its partial file removed). An OSError, ENOSPC, so the
    callers that retry a failed fetch later treat it like any other disk error."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)


def _valid_sha(sha: str) -> str:
    # Names become paths: anything but a sha256 could walk out of the cache folder.
    if not _SHA256.match(sha):
        raise ValueError(f"{sha!r} is not a sha256")
    return sha


def _valid_key(key: str, suffix: str) -> None:
    if not _KEY.match(key) or not _SUFFIX.match(suffix):
        raise ValueError(f"{key!r}{suffix!r} is not a safe derived-file name")


def _split_suffix(name: str) -> tuple[str, str]:
    stem, dot, suffix = name.partition(".")
    return stem, f"{dot}{suffix}" if dot else ""


#: A part number at the end of a derived file's key: a page ("-p3") or a frame ("-f12").
_PART = re.compile(r"-[pf]\d+$")


def _derived_key(name: str) -> str:
    return _PART.sub("", name.partition(".")[0])


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` survive a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_file(path: Path, limit: int | None = None) -> hashlib._Hash:
    """sha256 of the first `limit` bytes (all if None) of a file."""
    hasher = hashlib.sha256()
    remaining = limit
    with path.open("rb") as f:
        while remaining is None or remaining > 0:
            block = f.read(HASH_BLOCK if remaining is None else min(HASH_BLOCK, remaining))
            if not block:
                break
            hasher.update(block)
            if remaining is not None:
                remaining -= len(block)
    return hasher


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def _open_part(part: Path, offset: int) -> BinaryIO:
    """The .part file positioned at `offset`, anything after it cut off."""
    f = os.fdopen(os.open(part, os.O_RDWR | os.O_CREAT, 0o644), "r+b")
    f.seek(offset)
    f.truncate()
    return f


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


#: A file's identity as of its last verification: (inode, size, mtime_ns, ctime_ns).
Stamp = tuple[int, int, int, int]


def _stamp(path: Path) -> Stamp | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _hash_with_stamp(path: Path) -> tuple[str, Stamp | None]:
    """The file's sha256 and its identity, or no identity if it changed while hashed."""
    before = _stamp(path)
    digest = hash_file(path).hexdigest()
    return digest, before if _stamp(path) == before else None


@dataclass
class _Download:
    """One download in flight, shared by every caller that wants the same sha."""

    task: asyncio.Task[Path] | None = None
    waiters: int = 0
    listeners: list[Progress] = field(default_factory=list)

    def report(self, done: int, total: int) -> None:
        for listener in list(self.listeners):
            listener(done, total)


#: Object paths `MediaCache.object_path` remembers, at most.
OBJECT_PATHS_KEPT = 4096


class MediaCache:
    def __init__(self, root: Path, *, reserve: int = DISK_RESERVE) -> None:
        self.root = root
        self.reserve = reserve
        self.objects = root / "objects"
        self.partial = root / "partial"
        self.derived = root / "derived"
        self.work = root / "work"
        for folder in (self.objects, self.partial, self.derived, self.work):
            folder.mkdir(parents=True, exist_ok=True)
        self._inflight: dict[str, _Download] = {}
        self._writing: set[str] = set()
        #: Objects verified by hash, with the identity each had then (see the module doc).
        self._verified: dict[str, Stamp] = {}
        #: Objects found changed since they were verified and not yet dealt with.
        self.changed: set[str] = set()
        #: Objects found with the wrong bytes outside `verify_all` (which returns its own).
        self.corrupt_found = 0
        #: Body bytes received from the hub by this cache since it was made.
        self.bytes_received = 0
        self._object_paths: dict[str, Path] = {}

    # ------------------------------------------------------------------ lookups

    def object_path(self, sha: str) -> Path:
        """Where the object lives (whether or not it is there), `sha` checked first."""
        path = self._object_paths.get(sha)
        if path is None:
            if len(self._object_paths) >= OBJECT_PATHS_KEPT:
                self._object_paths.clear()
            # Remembered: joining paths was a tenth of an emergency's way to the player.
            path = self._object_paths[sha] = self.objects / _valid_sha(sha)
        return path

    def path_for(self, sha: str) -> Path | None:
        """The object's path if it is present and unchanged since its bytes were verified."""
        path = self.object_path(sha)
        stamp = _stamp(path)
        if stamp is None:
            self._verified.pop(sha, None)  # gone: `verified` says so from now on
            return None
        if self._verified.get(sha) != stamp:
            if sha not in self.changed:
                self.changed.add(sha)
            return None
        return path

    def verified(self, sha: str) -> bool:
        """From memory alone (no stat()): the object was verified and has not been seen
        changed or gone since. The scheduler weighs candidates with this; the file itself
        is checked once, by `path_for`, when one is chosen to play."""
        return sha in self._verified and sha not in self.changed

    def has(self, sha: str) -> bool:
        return self.path_for(sha) is not None

    def changed_objects(self) -> set[str]:
        """Verified objects whose identity changed since (one stat() each): unplayable now,
        for `fetch` to re-hash or replace."""
        for sha, stamp in list(self._verified.items()):
            current = _stamp(self.object_path(sha))
            if current is None:
                del self._verified[sha]
            elif current != stamp:
                self.changed.add(sha)
        return set(self.changed)

    def derived_path(self, key: str, suffix: str) -> Path | None:
        _valid_key(key, suffix)
        path = self.derived / f"{key}{suffix}"
        return path if path.is_file() else None

    def usage(self) -> tuple[int, int]:
        """(files, bytes) held: verified objects and derived files."""
        count = total = 0
        for folder in (self.objects, self.derived):
            for entry in os.scandir(folder):
                if entry.is_file() and ".tmp" not in entry.name:
                    count += 1
                    total += entry.stat().st_size
        return count, total

    # ------------------------------------------------------------------ upkeep

    async def verify_all(self) -> list[str]:
        """Re-hash every object; delete bad ones and stray temp files. Returns the bad shas."""
        bad, stamps = await asyncio.to_thread(
            self._verify_all_sync, frozenset(self._inflight), frozenset(self._writing)
        )
        for sha in bad:
            self._verified.pop(sha, None)
            self.changed.discard(sha)
        for sha, stamp in stamps.items():
            self._verified[sha] = stamp
            self.changed.discard(sha)
        return bad

    def _verify_all_sync(
        self, inflight: frozenset[str], writing: frozenset[str]
    ) -> tuple[list[str], dict[str, Stamp]]:
        bad: list[str] = []
        stamps: dict[str, Stamp] = {}
        for path in self.objects.iterdir():
            if not _SHA256.match(path.name):
                # Not something this cache ever publishes (a stray temp or foreign file).
                self._remove(path)
                continue
            try:
                digest, stamp = _hash_with_stamp(path)
                ok = digest == path.name
            except FileNotFoundError:
                continue  # evicted meanwhile
            except OSError:
                ok, stamp = False, None  # unreadable sectors: treat as corrupt, fetch again
            if not ok:
                self._remove(path)
                bad.append(path.name)
            elif stamp is not None:
                stamps[path.name] = stamp
        for path in self.partial.iterdir():
            sha = path.name.removesuffix(".part")
            if sha in inflight:
                continue
            if not path.name.endswith(".part") or not _SHA256.match(sha):
                self._remove(path)
            elif (self.objects / sha).exists():
                self._remove(path)  # a finished download whose part outlived a crash
        for path in self.derived.iterdir():
            # Scratch files (speech being made, a copy being published, and what espeak-ng
            # writes beside them) all carry ".tmp" in their names; a kill leaves them here.
            if ".tmp" in path.name and path.name not in writing:
                self._remove(path)
        for path in self.work.iterdir():
            if path.name not in writing:
                shutil.rmtree(path, ignore_errors=True)  # a rendition cut short by a crash
        return bad, stamps

    @staticmethod
    def _remove(path: Path) -> int:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def objects_on_disk(self) -> list[tuple[str, int]]:
        """(sha256, size) of every object file present, verified or not."""
        found = []
        for entry in os.scandir(self.objects):
            if _SHA256.match(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    found.append((entry.name, entry.stat().st_size))
        return found

    def partial_size(self, sha: str) -> int:
        """Bytes of `sha` already downloaded and kept for resuming."""
        return _size(self.partial / f"{_valid_sha(sha)}.part") or 0

    def discard_partial(self, sha: str) -> int:
        """Delete what was downloaded of `sha` so far (unless a download is writing it)."""
        entry = self._inflight.get(sha)
        if entry is not None and entry.task is not None and not entry.task.done():
            return 0
        return self._remove(self.partial / f"{_valid_sha(sha)}.part")

    def remove(self, sha: str) -> int:
        """Delete the object `sha` (to make room); returns the bytes freed."""
        self._verified.pop(sha, None)
        self.changed.discard(sha)
        return self._remove(self.objects / _valid_sha(sha))

    def evict(self, keep: set[str]) -> int:
        """Delete objects (and partial downloads) not in `keep`; returns bytes freed."""
        freed = 0
        for path in self.objects.iterdir():
            if path.name not in keep:
                freed += self._remove(path)
        for path in self.partial.iterdir():
            sha = path.name.removesuffix(".part")
            if sha not in keep and sha not in self._inflight:
                freed += self._remove(path)
        return freed

    def evict_derived(self, keep: set[str]) -> int:
        """Delete derived files whose key is not in `keep`; returns bytes freed. A file's key
        is its name up to the first dot (speech) or to its part number ("-p3", "-f12")."""
        freed = 0
        for entry in os.scandir(self.derived):
            name = entry.name
            if name.startswith(".") or not entry.is_file():
                continue  # a file being written (".<key>….tmp")
            if _derived_key(name) not in keep:
                freed += self._remove(Path(entry.path))
        return freed

    # ------------------------------------------------------------------ derived files

    @contextlib.contextmanager
    def work_dir(self) -> Iterator[Path]:
        """A private folder to make a rendition in, on the cache's filesystem (so its files
        move into derived/ by a rename); removed afterwards, or at the next start after a
        crash."""
        path = self.work / uuid.uuid4().hex
        path.mkdir()
        self._writing.add(path.name)
        try:
            yield path
        finally:
            self._writing.discard(path.name)
            shutil.rmtree(path, ignore_errors=True)

    def adopt(self, folder: Path, names: list[str], index: tuple[str, bytes]) -> None:
        """Move `names` from `folder` (a work_dir) into derived/, each durably, then write
        `index` (name, bytes) last: its presence says every other file is whole. Blocking."""
        for name in names:
            _valid_key(*_split_suffix(name))
            source = folder / name
            with source.open("rb") as handle:
                os.fsync(handle.fileno())
            os.replace(source, self.derived / name)
        index_name, data = index
        _valid_key(*_split_suffix(index_name))
        staged = folder / index_name
        with staged.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        fsync_dir(self.derived)  # the parts are there before the index names them
        os.replace(staged, self.derived / index_name)
        fsync_dir(self.derived)

    async def put_file(self, src: Path, key: str) -> Path:
        """Store a file made on the device (e.g. speech) as derived/<key><src suffix>."""
        suffix = src.suffix
        _valid_key(key, suffix)
        dest = self.derived / f"{key}{suffix}"
        tmp = self.derived / f".{key}{suffix}.{uuid.uuid4().hex}.tmp"
        self._writing.add(tmp.name)
        try:
            await asyncio.to_thread(self._publish_copy, src, tmp, dest)
        finally:
            self._writing.discard(tmp.name)
        return dest

    def _publish_copy(self, src: Path, tmp: Path, dest: Path) -> None:
        try:
            with src.open("rb") as reader, tmp.open("wb") as writer:
                shutil.copyfileobj(reader, writer, HASH_BLOCK)
                writer.flush()
                os.fsync(writer.fileno())
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(self.derived)

    # ------------------------------------------------------------------ downloads

    async def fetch(
        self, client: HubClient, media: MediaRef, progress: Progress | None = None
    ) -> Path:
        """The verified object for `media`, downloading (or resuming) it if needed.

        Raises CacheIntegrityError if the hub's bytes do not match the signed size and
        sha256, HubUnavailable/HubRejected if the hub cannot deliver them.
        """
        sha = _valid_sha(media.sha256)
        present = await self._present(media)
        if present is not None:
            return present
        entry = self._inflight.get(sha)
        # A finished task whose clean-up callback has not run yet must not hand its
        # (possibly failed) result to a caller that asked afterwards.
        if entry is None or (entry.task is not None and entry.task.done()):
            entry = _Download()
            entry.task = asyncio.create_task(self._download(client, media, entry))
            self._inflight[sha] = entry
            entry.task.add_done_callback(lambda _task: self._forget(sha, entry))
        assert entry.task is not None
        if progress is not None:
            entry.listeners.append(progress)
        entry.waiters += 1
        try:
            # Shielded: one caller giving up must not cancel what the others wait for.
            return await asyncio.shield(entry.task)
        except asyncio.CancelledError:
            if entry.waiters == 1:
                entry.task.cancel()  # nobody else wants it; the .part stays for next time
            raise
        finally:
            entry.waiters -= 1
            if progress is not None:
                with contextlib.suppress(ValueError):
                    entry.listeners.remove(progress)

    def _forget(self, sha: str, entry: _Download) -> None:
        if self._inflight.get(sha) is entry:
            del self._inflight[sha]

    async def _present(self, media: MediaRef) -> Path | None:
        """The object if its bytes are verified: unchanged since its last hash, or hashed
        again now (off the event loop) because it changed. A wrong one is deleted."""
        sha = media.sha256
        path = self.objects / sha
        if self.path_for(sha) is not None:
            return path
        size = _size(path)
        if size is None:
            self.changed.discard(sha)
            return None
        digest, stamp = (None, None)
        if size == media.size:
            try:
                digest, stamp = await asyncio.to_thread(_hash_with_stamp, path)
            except OSError:
                digest = None
        if digest == sha and stamp is not None:
            self._verified[sha] = stamp
            self.changed.discard(sha)
            return path
        # Wrong length or wrong bytes: never played, fetched again.
        self._verified.pop(sha, None)
        self.changed.discard(sha)
        self.corrupt_found += 1
        path.unlink(missing_ok=True)
        return None

    async def _download(self, client: HubClient, media: MediaRef, entry: _Download) -> Path:
        part = self.partial / f"{media.sha256}.part"
        # The hub client's one policy decides how often and how patiently; each attempt
        # resumes from whatever the previous one left in the .part file.
        async for attempt in client.retrier():
            with attempt:
                return await self._download_once(client, media, part, entry)
        raise AssertionError("unreachable: the retrier re-raises the last error")

    async def _download_once(
        self, client: HubClient, media: MediaRef, part: Path, entry: _Download
    ) -> Path:
        # Bytes kept from an earlier attempt may be what is wrong (a card that lost power
        # mid-write, rotten sectors): a mismatch after resuming earns one clean restart.
        fresh_start_used = False
        for _restart in range(4):
            offset = _size(part) or 0
            if offset > media.size:
                _discard(part)
                offset = 0
            self._check_room(media, offset)
            # Resuming: the hash must cover the bytes already on disk, so re-read them.
            hasher = (
                await asyncio.to_thread(hash_file, part, offset) if offset else hashlib.sha256()
            )
            if offset and offset < media.size:
                async with client.open_media(media.sha256, offset, retrying=False) as response:
                    if response.status == 416:
                        # The hub cannot serve from our offset: our part is no use.
                        _discard(part)
                        continue
                    if response.status == 206 and self._range_start(response) != offset:
                        _discard(part)
                        continue
                    if response.status == 200:
                        # The server ignored the Range and sends the whole file.
                        offset = 0
                        hasher = hashlib.sha256()
                    await self._stream(response, part, offset, hasher, media, entry)
            elif not offset:
                async with client.open_media(media.sha256, 0, retrying=False) as response:
                    if response.status != 200:
                        raise HubRejected(response.status, "expected the whole file")
                    await self._stream(response, part, 0, hasher, media, entry)
            reused = offset > 0
            try:
                return await self._publish(part, media, hasher)
            except CacheIntegrityError:
                if not reused or fresh_start_used:
                    raise
                fresh_start_used = True  # _publish removed the part: next pass starts at 0
        raise HubUnavailable(f"the hub kept refusing to resume {media.sha256}")

    def _check_room(self, media: MediaRef, offset: int) -> None:
        """Refuse a download whose remaining bytes would eat into the reserve."""
        # The last guard, at the moment of writing: edge_agent/content.py plans room (and
        # evicts for it) before it asks for a download; this catches what changed since.
        free = free_bytes(self.partial)
        if free - (media.size - offset) < self.reserve:
            raise DiskFull(
                f"{media.sha256}: {media.size - offset} more bytes do not fit in"
                f" {free} free with {self.reserve} kept in reserve"
            )

    @staticmethod
    def _range_start(response: aiohttp.ClientResponse) -> int | None:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        return int(match.group(1)) if match else None

    async def _stream(
        self,
        response: aiohttp.ClientResponse,
        part: Path,
        offset: int,
        hasher: hashlib._Hash,
        media: MediaRef,
        entry: _Download,
    ) -> None:
        f = await asyncio.to_thread(_open_part, part, offset)
        try:
            done = offset
            unsynced = 0
            entry.report(done, media.size)
            try:
                async for chunk in response.content.iter_chunked(CHUNK):
                    self.bytes_received += len(chunk)
                    if done + len(chunk) > media.size:
                        raise CacheIntegrityError(
                            f"{media.sha256}: the hub sent more than the signed {media.size} bytes"
                        )
                    f.write(chunk)
                    hasher.update(chunk)
                    done += len(chunk)
                    unsynced += len(chunk)
                    if unsynced >= FSYNC_EVERY:
                        f.flush()
                        await asyncio.to_thread(os.fsync, f.fileno())
                        unsynced = 0
                    entry.report(done, media.size)
            except (aiohttp.ClientError, TimeoutError) as exc:
                # Keep what arrived, durably, so the next attempt resumes from here.
                f.flush()
                await asyncio.to_thread(os.fsync, f.fileno())
                raise HubUnavailable(
                    f"download of {media.sha256} cut at {done}/{media.size}: {exc}"
                ) from exc
            f.flush()
            await asyncio.to_thread(os.fsync, f.fileno())
        except CacheIntegrityError:
            f.close()
            _discard(part)
            raise
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            # Something else filled the disk meanwhile: a part that keeps it full would
            # silence the device (no SQLite write, no speech). Its bytes are fetched again.
            f.close()
            _discard(part)
            raise DiskFull(f"{media.sha256}: the disk filled at {done} bytes") from exc
        finally:
            f.close()

    async def _publish(self, part: Path, media: MediaRef, hasher: hashlib._Hash) -> Path:
        size = _size(part) or 0
        digest = hasher.hexdigest()
        if size != media.size or digest != media.sha256:
            _discard(part)
            raise CacheIntegrityError(
                f"{media.sha256}: got {size} bytes with sha256 {digest}, "
                f"the manifest signed {media.size} bytes"
            )
        dest = self.objects / media.sha256
        stamp = await asyncio.to_thread(self._rename_durably, part, dest)
        # The bytes were hashed as they arrived: the identity after the rename is verified.
        if stamp is not None:
            self._verified[dest.name] = stamp
            self.changed.discard(dest.name)
        return dest

    def _rename_durably(self, part: Path, dest: Path) -> Stamp | None:
        os.replace(part, dest)
        fsync_dir(self.objects)
        return _stamp(dest)
