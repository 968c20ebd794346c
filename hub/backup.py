"""Backups of the hub (sao lưu định kỳ): a consistent copy of the database taken while the hub
runs, its content store and its signing keys, in one tar file that can be checked and restored.

The database is copied with SQLite's online backup API, so the copy is a transaction-consistent
snapshot however busy the hub is. Media files are immutable and named by their sha256, so they
are copied as they are and verified on restore. Every file's sha256 is listed in
`backup.json`; a restore checks all of them before it puts anything in place, and refuses to
overwrite an existing hub unless told to.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from loa_contract import utcnow

from .config import HubConfig
from .db import copy_database, integrity_verdict

FORMAT = "loa-hub-backup"
VERSION = 1
INDEX = "backup.json"
DB_NAME = "hub.sqlite3"

#: (bytes done, bytes in total): called as the work goes, from the calling thread.
Progress = Callable[[int, int], None]


class BackupError(Exception):
    """A backup that cannot be made or restored; the message says what and where."""


@dataclass(frozen=True)
class BackupSummary:
    path: Path
    files: int
    bytes: int


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _members(config: HubConfig, snapshot: Path) -> Iterator[tuple[str, Path]]:
    """(name in the archive, file on disk): the database snapshot first, then keys and media."""
    yield DB_NAME, snapshot
    if config.key_path.exists():
        yield config.key_path.name, config.key_path
    if config.extra_keys_dir.is_dir():
        for key in sorted(config.extra_keys_dir.iterdir()):
            if key.is_file():
                yield f"{config.extra_keys_dir.name}/{key.name}", key
    if config.media_dir.is_dir():
        for media in sorted(config.media_dir.iterdir()):
            # Only finished objects: a half-received upload is not part of the hub's state.
            if media.is_file() and len(media.name) == 64:
                yield f"media/{media.name}", media
    if config.releases_dir.is_dir():
        # Agent releases (issue #14): devices may still be offered them, or rolled back to.
        for release in sorted(config.releases_dir.iterdir()):
            if release.is_file() and len(release.name) == 64:
                yield f"releases/{release.name}", release


def make_backup(
    config: HubConfig,
    target: Path,
    progress: Progress | None = None,
    *,
    clock: Callable[[], datetime] = utcnow,
) -> BackupSummary:
    """Write a backup of the hub in `config.data_dir` to `target` (atomically); `clock`
    dates it."""
    if not config.db_path.exists():
        raise BackupError(f"no hub database at {config.db_path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".backup-") as work_name:
        work = Path(work_name)
        snapshot = work / DB_NAME
        copy_database(config.db_path, snapshot)
        members = list(_members(config, snapshot))
        sizes = {name: path.stat().st_size for name, path in members}
        total = sum(sizes.values())
        done = 0
        listed = []
        partial = work / "archive.tar"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
            for name, path in members:
                listed.append({"path": name, "size": sizes[name], "sha256": _sha256(path)})
                info = archive.gettarinfo(str(path), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
                done += sizes[name]
                if progress is not None:
                    progress(done, total)
            index = json.dumps(
                {
                    "format": FORMAT,
                    "version": VERSION,
                    "created_at": clock().isoformat(),
                    "files": listed,
                },
                indent=1,
            ).encode()
            info = tarfile.TarInfo(INDEX)
            info.size = len(index)
            info.mode = 0o640
            archive.addfile(info, io.BytesIO(index))
        with partial.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(partial, target)
        _fsync_dir(target.parent)
    if progress is not None and total == 0:
        progress(0, 0)
    return BackupSummary(target, len(members), total)


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise BackupError(f"unsafe path in the backup: {name!r}")
    return path


def _read_index(archive: tarfile.TarFile) -> list[dict[str, object]]:
    try:
        member = archive.getmember(INDEX)
        handle = archive.extractfile(member)
        assert handle is not None
        index = json.loads(handle.read())
    except (KeyError, ValueError, AssertionError) as exc:
        raise BackupError(f"not a Loa hub backup: no readable {INDEX}") from exc
    if index.get("format") != FORMAT or index.get("version") != VERSION:
        raise BackupError(
            f"not a Loa hub backup of a known version: {index.get('format')!r} "
            f"version {index.get('version')!r}"
        )
    files = index.get("files")
    if not isinstance(files, list):
        raise BackupError(f"{INDEX} lists no files")
    return files


def restore_backup(
    source: Path,
    data_dir: Path,
    progress: Progress | None = None,
    *,
    force: bool = False,
    clock: Callable[[], datetime] = utcnow,
) -> BackupSummary:
    """Check every file of `source`, then make `data_dir` the hub it holds.

    Nothing in `data_dir` changes unless every check passes; an existing hub there is kept
    (renamed aside with a timestamp) only when `force` is given, never silently replaced.
    """
    config = HubConfig(data_dir=data_dir)
    if config.db_path.exists() and not force:
        raise BackupError(
            f"{data_dir} already holds a hub; restore into an empty folder or pass --force "
            "(the current one is then moved aside, not deleted)"
        )
    try:
        archive = tarfile.open(source, "r:*")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"cannot read {source}: {exc}") from exc
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with archive, tempfile.TemporaryDirectory(dir=data_dir.parent, prefix=".restore-") as work:
        staging = Path(work) / "hub"
        files = _read_index(archive)
        total = sum(int(str(entry.get("size", 0))) for entry in files)
        done = 0
        for entry in files:
            name = str(entry.get("path", ""))
            relative = _safe_name(name)
            try:
                member = archive.getmember(name)
            except KeyError as exc:
                raise BackupError(f"the backup lists {name} but does not contain it") from exc
            if not member.isfile():
                raise BackupError(f"{name} in the backup is not a plain file")
            handle = archive.extractfile(member)
            assert handle is not None
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with destination.open("wb") as out:
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != entry.get("sha256"):
                raise BackupError(f"{name} is damaged in the backup (sha256 differs)")
            if relative.parts[0] in ("media", "releases") and relative.name != digest.hexdigest():
                raise BackupError(f"{name} does not hold the content its name promises")
            done += destination.stat().st_size
            if progress is not None:
                progress(done, total)
        db_file = staging / DB_NAME
        if not db_file.exists():
            raise BackupError(f"the backup has no {DB_NAME}")
        verdict = integrity_verdict(db_file)
        if verdict != "ok":
            raise BackupError(f"the database in the backup fails its integrity check: {verdict}")
        if data_dir.exists() and any(data_dir.iterdir()):
            stamp = clock().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = data_dir.with_name(f"{data_dir.name}.before-restore-{stamp}")
            data_dir.rename(aside)
        elif data_dir.exists():
            data_dir.rmdir()
        staging.rename(data_dir)
        _fsync_dir(data_dir.parent)
    return BackupSummary(data_dir, len(files), total)


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups made by `backup_name` in `folder`."""
    backups = sorted(folder.glob("loa-hub-*.tar"))
    gone = backups[:-keep] if keep > 0 else []
    for path in gone:
        path.unlink()
    return gone


def backup_name(now: datetime) -> str:
    return f"loa-hub-{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}.tar"


def free_space_ok(folder: Path, needed: int) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    return shutil.disk_usage(folder).free > needed * 1.1
