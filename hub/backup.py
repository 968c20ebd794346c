"""Backups of the hub (sao lưu định kỳ): a consistent copy of the database taken while the hub
runs, its content store and its signing keys, in one tar file that can be checked and restored.

The database is copied with SQLite's online backup API, so the copy is a transaction-consistent
snapshot however busy the hub is; a hub on PostgreSQL is dumped with Debian's pg_dump (custom
format, also a consistent snapshot) and restored with pg_restore, in one transaction. The
index says which (`database`); a backup is restored only into the same kind of database.
Media files are immutable and named by their sha256, so they are copied as they are and
verified on restore. Every file's sha256 is listed in
`backup.json`; a restore checks all of them before it puts anything in place, and refuses to
overwrite an existing hub unless told to.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from loa_contract import utcnow

from .config import HubConfig
from .db import copy_database, integrity_verdict
from .store.sql import redacted

FORMAT = "loa-hub-backup"
VERSION = 1
INDEX = "backup.json"
DB_NAME = "hub.sqlite3"
#: A PostgreSQL hub's database in the backup: pg_dump's custom format.
PG_DUMP_NAME = "hub.pgdump"
SQLITE, POSTGRESQL = "sqlite", "postgresql"

#: (bytes done, bytes in total): called as the work goes, from the calling thread.
Progress = Callable[[int, int], None]
#: A step's sentence ("dumping the database with pg_dump …") for whoever runs the command.
Say = Callable[[str], None]


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


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed: apt-get install postgresql-client")
    return found


def _pg_run(*args: str) -> None:
    """Run a PostgreSQL client program; BackupError with its own words if it fails."""
    done = subprocess.run(
        [_pg_tool(args[0]), *args[1:]], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BackupError(f"{args[0]} failed: {(done.stderr or done.stdout).strip()}")


def _pg_dump(url: str, target: Path) -> None:
    _pg_run("pg_dump", "--format=custom", "--no-owner", f"--file={target}", f"--dbname={url}")


def _pg_holds_a_hub(url: str) -> bool:
    done = subprocess.run(
        [
            _pg_tool("psql"),
            "--no-psqlrc",
            "--tuples-only",
            "--no-align",
            f"--dbname={url}",
            "--command=SELECT to_regclass('loa_schema') IS NOT NULL",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BackupError(f"cannot reach the database: {done.stderr.strip()}")
    return done.stdout.strip() == "t"


def _members(config: HubConfig, snapshot: Path) -> Iterator[tuple[str, Path]]:
    """(name in the archive, file on disk): the database snapshot first, then keys and media."""
    yield snapshot.name, snapshot
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
    say: Say | None = None,
) -> BackupSummary:
    """Write a backup of the hub in `config.data_dir` (and `config.database_url`'s database,
    if it names one) to `target` (atomically); `clock` dates it."""
    url = config.database_url
    if url is None and not config.db_path.exists():
        raise BackupError(f"no hub database at {config.db_path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".backup-") as work_name:
        work = Path(work_name)
        if url is None:
            snapshot = work / DB_NAME
            try:
                copy_database(config.db_path, snapshot)
            except sqlite3.Error as exc:
                raise BackupError(f"cannot copy the hub database {config.db_path}: {exc}") from exc
        else:
            if say is not None:
                say(f"dumping the PostgreSQL database {redacted(url)} (pg_dump)")
            snapshot = work / PG_DUMP_NAME
            _pg_dump(url, snapshot)
            if say is not None:
                say(f"database dumped: {snapshot.stat().st_size} bytes")
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
                    "database": SQLITE if url is None else POSTGRESQL,
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


def _read_index(archive: tarfile.TarFile) -> tuple[str, list[dict[str, object]]]:
    """The kind of database the backup holds, and its files."""
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
    # Backups made before PostgreSQL was possible name no database: SQLite's.
    kind = index.get("database", SQLITE)
    if kind not in (SQLITE, POSTGRESQL):
        raise BackupError(f"{INDEX} names an unknown database: {kind!r}")
    return str(kind), files


def restore_backup(
    source: Path,
    data_dir: Path,
    progress: Progress | None = None,
    *,
    force: bool = False,
    clock: Callable[[], datetime] = utcnow,
    database_url: str | None = None,
    say: Say | None = None,
) -> BackupSummary:
    """Check every file of `source`, then make `data_dir` (and the PostgreSQL database at
    `database_url`, for a backup of a hub on PostgreSQL) the hub it holds.

    Nothing changes unless every check passes; an existing hub is kept (its folder renamed
    aside with a timestamp, a PostgreSQL database dumped into that folder first) only when
    `force` is given, never silently replaced.
    """
    config = HubConfig(data_dir=data_dir, database_url=database_url)
    try:
        archive = tarfile.open(source, "r:*")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"cannot read {source}: {exc}") from exc
    with archive:
        kind, files = _read_index(archive)
    if kind == POSTGRESQL and database_url is None:
        raise BackupError(
            f"{source} holds a PostgreSQL database (pg_dump); restore it into one with"
            " --database postgresql://USER@HOST/DB, not into a SQLite hub"
        )
    if kind == SQLITE and database_url is not None:
        raise BackupError(
            f"{source} holds a SQLite database; restore it without --database (into --data),"
            " not into PostgreSQL"
        )
    held = config.db_path.exists() if database_url is None else _pg_holds_a_hub(database_url)
    if held and not force:
        where = data_dir if database_url is None else redacted(database_url)
        raise BackupError(
            f"{where} already holds a hub; restore into an empty one or pass --force "
            "(the current one is then moved aside, not deleted)"
        )
    archive = tarfile.open(source, "r:*")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with archive, tempfile.TemporaryDirectory(dir=data_dir.parent, prefix=".restore-") as work:
        staging = Path(work) / "hub"
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
        stamp = clock().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = data_dir.with_name(f"{data_dir.name}.before-restore-{stamp}")
        if database_url is None:
            db_file = staging / DB_NAME
            if not db_file.exists():
                raise BackupError(f"the backup has no {DB_NAME}")
            try:
                verdict = integrity_verdict(db_file)
            except sqlite3.Error as exc:
                verdict = str(exc)
            if verdict != "ok":
                raise BackupError(
                    f"the database in the backup fails its integrity check: {verdict}"
                )
        else:
            dump = staging / PG_DUMP_NAME
            if not dump.exists():
                raise BackupError(f"the backup has no {PG_DUMP_NAME}")
            _pg_run("pg_restore", "--list", str(dump))  # a readable dump, before any change
            if held:
                aside.mkdir()
                if say is not None:
                    say(f"keeping the current database: {aside / PG_DUMP_NAME} (pg_dump)")
                _pg_dump(database_url, aside / PG_DUMP_NAME)
            if say is not None:
                say(f"restoring the database into {redacted(database_url)} (pg_restore)")
            # One transaction: a restore that fails leaves the database as it was.
            _pg_run(
                "pg_restore",
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                "--exit-on-error",
                f"--dbname={database_url}",
                str(dump),
            )
            dump.unlink()
        if data_dir.exists() and any(data_dir.iterdir()):
            if aside.exists():
                data_dir.rename(aside / data_dir.name)
            else:
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
