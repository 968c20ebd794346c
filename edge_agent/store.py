"""The agent's durable state: one SQLite file, one writer, surviving kill -9 and power cuts.

Durability choice: the connection runs WAL with `synchronous=FULL` by default, so every
commit that matters (trusted manifest version, pushed emergencies, command ids, play
start/finish, acks, settings) is on the SD card before the call returns. Telemetry that may
be lost without harm (health samples, the heartbeat) is committed with `synchronous=NORMAL`,
switched per transaction: in WAL mode such a commit can only be lost as the *tail* of the log
on a power cut, never corrupt the file, and the next FULL commit makes it durable too because
fsyncing the WAL covers every earlier frame. Because health samples take numbers from the
same per-device sequence as plays, a NORMAL-committed sample must never leave the device
before it is durable (else a rolled-back number could be reused by a play, which the hub
would then drop as a duplicate): `pending()` therefore issues one FULL commit as a barrier
before handing out anything newer than what is known to be durable.

Every operation is one function run on the connection's own thread, in one hop (see
`_write`): the thread runs them one at a time in the order they were asked for, so the
transactions of concurrent coroutines never interleave on the single connection ("database
is locked" cannot happen inside the agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

import aiosqlite

from loa_contract import (
    VN_TZ,
    BulletinKind,
    CommandDocument,
    EmergencyStart,
    HealthSample,
    Manifest,
    ManifestBulletin,
    PlayOutcome,
    Priority,
    ProofOfPlay,
    SignatureError,
    TrustedKeys,
)

from .scheduler import EMERGENCY_SLOT
from .scheduler_types import Suspended

#: Cancelled emergency ids are kept this long: long enough to outlive any replayed command
#: (commands carry their own short expiry) and any manifest still listing the bulletin.
CANCELLED_KEEP = timedelta(days=7)
#: Expired command ids are forgotten only after this grace, so a clock corrected backwards
#: by the hub Date header cannot reopen a replay window.
COMMAND_GRACE = timedelta(days=1)
#: Air counts are kept this long before the `since` the agent asks for.
AIRED_KEEP = timedelta(days=7)
#: Closed and acknowledged plays kept for finish_play idempotency; older ones are pruned.
CLOSED_PLAYS_KEPT = 1000
#: An emergency whose validity ended this long before a newer emergency began is dropped.
EMERGENCY_KEEP = timedelta(days=1)

_SLOT_TIME = re.compile(r"^[wt]:(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})$")

# Each entry moves the schema from version i to i+1; never edit one that has shipped.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO counters (name, value) VALUES
        ('seq', 0), ('manifest_version', 0), ('synced_seq', 0);
    -- The sequence and the highest accepted manifest version defend against duplicates and
    -- replay: the database itself refuses to lower or delete them, whatever the code does.
    CREATE TRIGGER counters_never_lower BEFORE UPDATE ON counters
        WHEN NEW.value < OLD.value
        BEGIN SELECT RAISE(ABORT, 'a counter never goes down'); END;
    CREATE TRIGGER counters_never_deleted BEFORE DELETE ON counters
        BEGIN SELECT RAISE(ABORT, 'counters are never deleted'); END;
    CREATE TABLE manifest (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        envelope BLOB NOT NULL,
        manifest TEXT NOT NULL
    );
    CREATE TABLE emergencies (
        id TEXT PRIMARY KEY,
        bulletin TEXT NOT NULL,
        valid_until TEXT NOT NULL
    );
    CREATE TABLE cancelled (id TEXT PRIMARY KEY, at TEXT NOT NULL);
    CREATE TABLE commands (id TEXT PRIMARY KEY, expires_at TEXT NOT NULL);
    CREATE INDEX commands_expiry ON commands (expires_at);
    CREATE TABLE plays (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        bulletin_id TEXT NOT NULL,
        slot TEXT NOT NULL,
        priority TEXT NOT NULL,
        kind TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        outcome TEXT,
        position_s REAL,
        counts INTEGER,
        seq INTEGER UNIQUE
    );
    CREATE INDEX plays_open ON plays (id) WHERE seq IS NULL;
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY,
        type TEXT NOT NULL CHECK (type IN ('play', 'health')),
        body TEXT NOT NULL
    );
    CREATE INDEX outbox_type ON outbox (type, seq);
    CREATE TABLE aired (
        bulletin_id TEXT NOT NULL,
        slot TEXT NOT NULL,
        count INTEGER NOT NULL,
        slot_time TEXT NOT NULL,
        PRIMARY KEY (bulletin_id, slot)
    );
    CREATE INDEX aired_time ON aired (slot_time);
    """,
    # The report stream: a random name for this database's sequence space. If the file is
    # lost while the device keeps its identity, the new file's seq starts at 1 again under a
    # new stream, and the hub keeps both (it stores each report once per device, stream and
    # seq). A database that already numbered reports keeps the legacy stream "" so reports
    # sent before the upgrade and retried after it still count once.
    """
    INSERT OR IGNORE INTO state (key, value)
        SELECT 'report_stream',
               CASE WHEN (SELECT value FROM counters WHERE name = 'seq') = 0
                    THEN lower(hex(randomblob(16))) ELSE '' END;
    """,
    # Emergencies that have begun airing here (a new arrival cuts in; one that has started
    # waits its turn) and when each last aired in full (its repeat interval runs from there).
    # Seeded from what the older schema knew, so an upgrade does not make every held
    # emergency "new" again.
    """
    CREATE TABLE emergency_airings (
        bulletin_id TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        last_end TEXT
    );
    INSERT OR IGNORE INTO emergency_airings (bulletin_id, started_at, last_end)
        SELECT bulletin_id, min(started_at),
               max(CASE WHEN counts = 1 THEN ended_at END)
        FROM plays WHERE slot = 'emergency' GROUP BY bulletin_id;
    INSERT OR IGNORE INTO emergency_airings (bulletin_id, started_at, last_end)
        SELECT bulletin_id, slot_time, NULL FROM aired WHERE slot = 'emergency';
    """,
    # A held emergency keeps the signed command frame it came in, so a start can verify it
    # again (a row edited at rest is refused). Rows held before this have none: they are
    # dropped at the next start, and the hub pushes every active emergency again.
    """
    ALTER TABLE emergencies ADD COLUMN frame TEXT;
    """,
]

log = logging.getLogger("edge_agent.store")

T = TypeVar("T")

#: Beside the database: the replay-protection state that must outlive it (see ReplayFloor).
FLOOR_FILE = "replay-floor.json"
#: SQLite's own words for "this file is damaged": only these move a database aside. Any other
#: error (a full disk, permissions, a lock) leaves the file alone and fails the start.
_DAMAGED = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class ReplayFloor:
    """What replay protection needs if `agent.sqlite3` is lost, emptied or damaged: the
    highest manifest version ever accepted, that manifest's signed envelope (so a rebuilt
    agent keeps playing its cached programme), and the command ids still remembered.

    A small JSON file written atomically (temp, fsync, os.replace, fsync of the folder)
    *before* the database commits the same change, so it is never behind the database: the
    store takes the higher of the two at every open. The envelope is verified like any
    other before it is believed; the file only has to survive, not to be trusted.
    """

    manifest_version: int = 0
    manifest_envelope: str | None = None
    commands: dict[str, str] = field(default_factory=dict)  # command id -> expires_at (ISO)
    #: The device it belongs to: a data folder enrolled again as another device must not
    #: inherit the old device's version floor (its manifests would all look like replays).
    device_id: str | None = None

    @classmethod
    def load(cls, path: Path) -> ReplayFloor | None:
        """The floor kept at `path`, or None if there is none (or it is unreadable)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                manifest_version=int(raw["manifest_version"]),
                manifest_envelope=raw.get("manifest_envelope"),
                commands={str(k): str(v) for k, v in dict(raw.get("commands", {})).items()},
                device_id=raw.get("device_id"),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("%s is damaged (%s); the database's copy is used", path, exc)
            return None

    def write(self, path: Path) -> None:
        body = json.dumps(
            {
                "manifest_version": self.manifest_version,
                "manifest_envelope": self.manifest_envelope,
                "commands": self.commands,
                "device_id": self.device_id,
            }
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not keep a half-written copy
            raise
        _fsync_dir(path.parent)

    @staticmethod
    def remove_stale_temps(path: Path) -> list[Path]:
        """Delete the half-written copies a killed process left beside `path` (their
        writer's pid is in the name: a live writer's copy is left alone)."""
        removed = []
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            pid = tmp.name.removeprefix(f".{path.name}.").removesuffix(".tmp")
            if pid.isdigit() and _pid_alive(int(pid)):
                continue
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@dataclass(frozen=True)
class VerifiedManifest:
    """What `verified_manifest` found: the manifest to obey (None if none verifies) and
    every stored copy it refused, with why."""

    manifest: Manifest | None
    envelope: bytes | None
    refused: list[str]


class SeenCommand(NamedTuple):
    """A pushed command's id to remember (replay defence), with the emergency it brought
    (`hold`, None for other commands) and the signed frame it came in."""

    command_id: str
    expires_at: datetime
    hold: ManifestBulletin | None = None
    frame: str | None = None


@dataclass(frozen=True)
class HeldEmergency:
    bulletin: ManifestBulletin
    frame: str  # the signed CommandDocument it came in


def _damaged(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.DatabaseError) and (
        getattr(exc, "sqlite_errorcode", None) in _DAMAGED
        or "malformed" in str(exc)
        or "not a database" in str(exc)
    )


class StaleManifest(Exception):
    """The manifest's version is not above the highest version ever accepted (a replay)."""


class UnknownPlay(LookupError):
    """finish_play was given an id begin_play never returned (or one long pruned)."""


def _iso(value: datetime) -> str:
    # One fixed UTC format so stored times compare correctly as strings in SQL.
    if value.tzinfo is None:
        raise ValueError("the store only takes aware datetimes")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _blob(value: bytes | str) -> bytes:
    # A hand edit (sqlite3 shell) may have stored an envelope as text.
    return value.encode() if isinstance(value, str) else bytes(value)


def _size_or_none(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def _move_aside(path: Path) -> None:
    """Rename a damaged database (and its WAL and shared memory, which must never be applied
    to a new file) to `<name>.damaged-<UTC time>`, keeping it for a technician."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    for suffix in ("", "-wal", "-shm", "-journal"):
        source = path.with_name(path.name + suffix)
        if source.exists():
            os.replace(source, path.with_name(f"{path.name}.damaged-{stamp}{suffix}"))
    _fsync_dir(path.parent)


def slot_time(slot: str, aired_at: datetime) -> datetime:
    """When a slot opened: its local date and time, or the airing itself for "emergency"."""
    match = _SLOT_TIME.match(slot)
    if match is None:
        return aired_at
    local = datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}").replace(tzinfo=VN_TZ)
    return local.astimezone(UTC)


class AgentStore:
    """Single writer of `<data>/agent.sqlite3`. Create with `await AgentStore.open(path)`."""

    def __init__(self, db: aiosqlite.Connection, path: Path, max_health: int) -> None:
        self._db = db
        self.path = path
        self.max_health = max_health
        self._synchronous: str | None = None
        # Highest seq known to be on disk; 0 forces one barrier after every start, since a
        # kill -9 before this start may have left NORMAL commits in the OS cache only.
        self._durable_seq = 0
        self._stream: str | None = None
        #: Why this file was rebuilt at open (moved aside as damaged, or found lost), if it was.
        self.rebuilt: str | None = None
        self._floor = ReplayFloor()
        self._floor_path: Path | None = None

    # ------------------------------------------------------------------ lifetime

    @classmethod
    async def open(
        cls, path: Path, *, max_health: int = 10_000, device_id: str | None = None
    ) -> AgentStore:
        """Open (or create) the database; a damaged one is moved aside and rebuilt.

        "Damaged" is what SQLite itself calls corrupt or not a database, at open or in a
        `quick_check`, and also a file that is missing or empty while the replay floor says
        this device held state. The damaged file is kept as `<name>.damaged-<UTC time>` for a
        technician; `rebuilt` then says why, for the agent to report. The replay floor is
        merged in either way, so a lost database never lowers the replay-protection version.
        `device_id` (the agent's identity) sets aside a floor left by another device.
        """
        if max_health < 1:
            raise ValueError("max_health must be at least 1")
        path.parent.mkdir(parents=True, exist_ok=True)
        floor_path = path.parent / FLOOR_FILE
        for stale in await asyncio.to_thread(ReplayFloor.remove_stale_temps, floor_path):
            log.warning("removed %s, left half-written by a process that died", stale.name)
        floor = await asyncio.to_thread(ReplayFloor.load, floor_path)
        if floor is not None and device_id is not None:
            if floor.device_id not in (None, device_id):
                log.warning("%s belongs to device %s; not used", floor_path, floor.device_id)
                floor = None
        rebuilt: str | None = None
        if floor is not None and floor.manifest_version > 0:
            size = await asyncio.to_thread(_size_or_none, path)
            if size is None or size == 0:
                rebuilt = "the database was missing" if size is None else "the database was empty"
                await asyncio.to_thread(_move_aside, path)
        try:
            store = await cls._open(path, max_health)
        except Exception as exc:
            if not _damaged(exc):
                raise
            rebuilt = f"the database was damaged: {exc}"
            await asyncio.to_thread(_move_aside, path)
            store = await cls._open(path, max_health)
        if rebuilt is not None:
            log.error("%s: %s; rebuilt from identity, cache and replay floor", path, rebuilt)
        store.rebuilt = rebuilt
        store._floor_path = floor_path
        await store._merge_floor(floor, device_id)
        return store

    @classmethod
    async def _open(cls, path: Path, max_health: int) -> AgentStore:
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            await db.execute("PRAGMA busy_timeout = 5000")
            async with db.execute("PRAGMA journal_mode = WAL") as cursor:
                row = await cursor.fetchone()
            if row is None or str(row[0]).lower() != "wal":
                raise RuntimeError(f"{path}: the file system refused WAL mode")
            await db.execute("PRAGMA foreign_keys = ON")
            # Keep the WAL from growing without bound on a small SD card.
            await db.execute("PRAGMA journal_size_limit = 4194304")
            # Reads every page once (milliseconds for this small file): a scribbled or cut
            # file is found now, at start, not by a query in the middle of an emergency.
            async with db.execute("PRAGMA quick_check") as cursor:
                verdict = [str(r[0]) for r in await cursor.fetchall()]
            if verdict != ["ok"]:
                raise sqlite3.DatabaseError(f"database disk image is malformed: {verdict[:3]}")
            store = cls(db, path, max_health)
            await store._migrate()
        except BaseException:
            await db.close()
            raise
        return store

    async def _merge_floor(self, floor: ReplayFloor | None, device_id: str | None) -> None:
        """Take the higher of the database and the floor file; write both back."""
        found = floor or ReplayFloor()
        found.device_id = device_id or found.device_id

        def merge(db: sqlite3.Connection) -> None:
            self._floor = found
            highest = int(_one(db, "SELECT value FROM counters WHERE name = 'manifest_version'")[0])
            if found.manifest_version > highest:
                db.execute(
                    "UPDATE counters SET value = ? WHERE name = 'manifest_version'",
                    (found.manifest_version,),
                )
            elif highest > found.manifest_version:
                # A database from before the floor file (or a lost file): the file catches up.
                stored = _one(db, "SELECT envelope FROM manifest WHERE version = ?", (highest,))
                found.manifest_version = highest
                found.manifest_envelope = (
                    _blob(stored[0]).decode("utf-8", "replace") if stored else None
                )
            db.executemany(
                "INSERT OR IGNORE INTO commands (id, expires_at) VALUES (?, ?)",
                list(found.commands.items()),
            )
            rows = _all(db, "SELECT id, expires_at FROM commands")
            found.commands = {r[0]: r[1] for r in rows}
            self._write_floor()

        await self._write(merge)

    def _write_floor(self) -> None:
        # On the database's thread, inside the transaction that makes the same change, before
        # its COMMIT: the floor is never behind the database.
        if self._floor_path is None:
            return
        try:
            self._floor.write(self._floor_path)
        except OSError as exc:
            # The database still holds it; only the protection against its loss is weaker.
            log.error("replay floor %s not written: %s", self._floor_path, exc)

    async def close(self) -> None:
        # Queued after every operation already asked for, which the thread finishes first.
        # Folding the WAL back keeps the next start (often after a power cut) quick.
        try:
            await self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError as exc:
            # Only an optimisation: a reader (doctor) holding the file can block it, and WAL
            # recovery at the next open does the same work.
            log.info("WAL checkpoint at close skipped: %s", exc)
        finally:
            await self._db.close()

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        current = int(row[0]) if row else 0
        if current > len(MIGRATIONS):
            raise RuntimeError(
                f"{self.path} has schema version {current}, newer than this agent knows "
                f"({len(MIGRATIONS)}); refusing to touch it"
            )
        for version in range(current, len(MIGRATIONS)):
            await self._db.execute("PRAGMA synchronous = FULL")
            self._synchronous = "FULL"
            # One script per version: the schema change and the version bump commit together.
            await self._db.executescript(
                f"BEGIN IMMEDIATE;\n{MIGRATIONS[version]}\n"
                f"PRAGMA user_version = {version + 1};\nCOMMIT;"
            )

    async def integrity_check(self) -> list[str]:
        """SQLite's own check, for `doctor`: ["ok"] when the file is sound."""
        rows = await self._read(lambda db: _all(db, "PRAGMA integrity_check"))
        return [str(row[0]) for row in rows]

    # ------------------------------------------------------------------ transactions

    async def _write(self, work: Callable[[sqlite3.Connection], T], *, durable: bool = True) -> T:
        """Run `work` as one write transaction on the database's own thread, in one hop:
        an aiosqlite call per statement was a thread hand-off each (two GIL hand-overs, a
        wake-up of the loop), the dearest part of a play's bookkeeping where many agents share
        a process. `work` runs SQL and little else; if it raises, its changes are rolled back.
        Queued at once: a caller cancelled while it waits does not stop a transaction the
        thread has been given (each is whole, committed or rolled back, either way)."""
        return await self._on_thread(self._in_transaction, work, durable)

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` (reads only) on the database's thread, in one hop."""
        return await self._on_thread(work)

    async def _on_thread(self, fn: Callable[..., T], *args: Any) -> T:
        conn = self._db._conn  # aiosqlite's sqlite3 connection, used only on its thread
        # aiosqlite leaves `_execute` unannotated; this is the type it has (a string: the
        # alias built at run time cost 2 µs a call, on every read and write).
        execute = cast("Callable[..., Awaitable[T]]", self._db._execute)
        return await execute(fn, conn, *args)

    def _in_transaction(
        self, db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], durable: bool
    ) -> T:
        wanted = "FULL" if durable else "NORMAL"
        if self._synchronous != wanted:
            db.execute(f"PRAGMA synchronous = {wanted}")
            self._synchronous = wanted
        # IMMEDIATE takes the write lock up front, so a doctor process reading the same file
        # can never turn this into a mid-transaction "database is locked".
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
        except BaseException:
            with contextlib.suppress(sqlite3.OperationalError):
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    # ------------------------------------------------------------------ manifest

    async def stored_manifest(self) -> tuple[Manifest, bytes] | None:
        """The manifest row as stored, NOT verified: for tests and `doctor` to look at. The
        agent obeys only `verified_manifest`."""
        row = await self._read(
            lambda db: _one(db, "SELECT envelope, manifest FROM manifest WHERE id = 1")
        )
        if row is None:
            return None
        return Manifest.model_validate_json(row["manifest"]), bytes(row["envelope"])

    async def verified_manifest(self, keys: TrustedKeys, device_id: str) -> VerifiedManifest:
        """The manifest to obey after a start: the stored signed envelope verified again
        against the pinned keys, never the parsed column alone.

        Two copies are kept, the database row and the replay floor's. A copy is refused if
        its signature fails, it is for another device, the row's parsed column disagrees with
        its envelope, or its version is above the trusted version. The one obeyed is the copy
        at the trusted version; one below it is a replay at rest (or a crash between the
        floor and the database commit, when the floor's copy is the newer) and is not obeyed.
        A good floor copy repairs a bad or missing row.
        """

        def read(db: sqlite3.Connection) -> tuple[Any, int, str | None]:
            row = _one(db, "SELECT version, envelope, manifest FROM manifest WHERE id = 1")
            counter = _one(db, "SELECT value FROM counters WHERE name = 'manifest_version'")
            return row, int(counter[0]), self._floor.manifest_envelope

        row, highest, floor_envelope = await self._read(read)
        copies: list[tuple[str, bytes, str | None]] = []
        if row is not None:
            copies.append(("database", _blob(row["envelope"]), str(row["manifest"])))
        if floor_envelope:
            copies.append((FLOOR_FILE, floor_envelope.encode(), None))
        refused: list[str] = []
        chosen: tuple[Manifest, bytes, str] | None = None
        older: list[str] = []
        for where, envelope, parsed in copies:
            try:
                manifest = keys.open(envelope, Manifest)
            except SignatureError as exc:
                refused.append(f"{where}: {exc}")
                continue
            if manifest.device_id != device_id:
                refused.append(f"{where}: it is for device {manifest.device_id}")
                continue
            if parsed is not None:
                try:
                    agrees = Manifest.model_validate_json(parsed) == manifest
                except ValueError:
                    agrees = False
                if not agrees:
                    refused.append(f"{where}: the stored copy differs from the signed one")
                    continue
            if manifest.version > highest:
                refused.append(f"{where}: version {manifest.version} above the trusted {highest}")
            elif manifest.version < highest:
                older.append(f"{where}: version {manifest.version} below the trusted {highest}")
            elif chosen is None:
                chosen = (manifest, envelope, where)
        if chosen is None:
            refused.extend(older)
            if highest > 0 and not copies:
                refused.append(f"version {highest} was trusted and no copy of it is left")
            return VerifiedManifest(None, None, refused)
        manifest, envelope, where = chosen
        if where != "database":  # the row was refused, older or missing: repaired
            parsed_json = manifest.model_dump_json()
            await self._write(
                lambda db: db.execute(
                    "INSERT OR REPLACE INTO manifest (id, version, envelope, manifest) "
                    "VALUES (1, ?, ?, ?)",
                    (manifest.version, envelope, parsed_json),
                )
            )
        return VerifiedManifest(manifest, envelope, refused)

    async def trusted_version(self) -> int:
        """The highest manifest version ever accepted (0 if none), even if its row was lost."""
        row = await self._read(
            lambda db: _one(db, "SELECT value FROM counters WHERE name = 'manifest_version'")
        )
        return int(row[0])

    async def save_manifest(
        self, manifest: Manifest, envelope: bytes, *, reinstate: bool = False
    ) -> None:
        """Adopt a verified manifest; raises StaleManifest unless its version is new.

        `reinstate`: the agent holds no manifest it could verify (its copy was refused or
        lost), so the hub's signed copy of the trusted version itself is taken back. Equal
        is no replay: the hub signs one manifest per version and device.
        """
        envelope = bytes(envelope)
        parsed_json = manifest.model_dump_json()
        envelope_text = envelope.decode("utf-8")

        def save(db: sqlite3.Connection) -> None:
            row = _one(db, "SELECT value FROM counters WHERE name = 'manifest_version'")
            highest = int(row[0])
            if manifest.version < highest or (manifest.version == highest and not reinstate):
                raise StaleManifest(
                    f"manifest version {manifest.version} is not above {highest}, "
                    "the highest ever accepted"
                )
            db.execute(
                "UPDATE counters SET value = ? WHERE name = 'manifest_version'",
                (manifest.version,),
            )
            db.execute(
                "INSERT OR REPLACE INTO manifest (id, version, envelope, manifest) "
                "VALUES (1, ?, ?, ?)",
                (manifest.version, envelope, parsed_json),
            )
            self._floor.manifest_version = manifest.version
            self._floor.manifest_envelope = envelope_text
            self._write_floor()

        await self._write(save)

    # ------------------------------------------------------------------ pushed emergencies

    @staticmethod
    def _hold_emergency(
        db: sqlite3.Connection, bulletin: ManifestBulletin, frame: str | None, bulletin_json: str
    ) -> None:
        # Pruned against the hub's own times, not the device clock, which may be wrong.
        horizon = bulletin.schedule.valid_from - EMERGENCY_KEEP
        db.execute("DELETE FROM emergencies WHERE valid_until < ?", (_iso(horizon),))
        db.execute(
            "INSERT OR REPLACE INTO emergencies (id, bulletin, valid_until, frame) "
            "VALUES (?, ?, ?, ?)",
            (bulletin.id, bulletin_json, _iso(bulletin.schedule.valid_until), frame),
        )

    async def emergencies(self) -> list[ManifestBulletin]:
        """The held emergencies as stored, NOT verified (tests, `doctor`); the agent obeys
        `verified_emergencies`."""
        rows = await self._read(
            lambda db: _all(db, "SELECT bulletin FROM emergencies ORDER BY rowid")
        )
        return [ManifestBulletin.model_validate_json(row[0]) for row in rows]

    async def verified_emergencies(
        self, keys: TrustedKeys, device_id: str, commune: str
    ) -> tuple[list[ManifestBulletin], list[str]]:
        """Held emergencies whose signed command frame verifies again, is addressed here and
        carries exactly the stored bulletin; the others are deleted and listed as refused.
        Rows held before frames were kept (no frame) are dropped without a fault: the hub
        pushes every active emergency again when the device reconnects."""
        rows = await self._read(
            lambda db: _all(db, "SELECT id, bulletin, frame FROM emergencies ORDER BY rowid")
        )
        held: list[ManifestBulletin] = []
        refused: list[str] = []
        dropped: list[str] = []
        for row in rows:
            if row["frame"] is None:
                log.info("held emergency %s has no signed frame (older agent); dropped", row["id"])
                dropped.append(row["id"])
                continue
            reason = None
            try:
                command = keys.open(row["frame"], CommandDocument).command
                stored = ManifestBulletin.model_validate_json(row["bulletin"])
            except (SignatureError, ValueError) as exc:
                reason = str(exc)
            else:
                if not isinstance(command, EmergencyStart):
                    reason = f"the frame is a {command.type}, not an emergency start"
                elif not command.addressed_to(device_id, commune):
                    reason = "the frame is not addressed to this device"
                elif command.bulletin != stored or stored.id != row["id"]:
                    reason = "the stored bulletin differs from the signed one"
                else:
                    held.append(stored)
            if reason is not None:
                refused.append(f"emergency {row['id']}: {reason}")
                dropped.append(row["id"])
        if dropped:
            await self._write(
                lambda db: db.executemany(
                    "DELETE FROM emergencies WHERE id = ?", [(d,) for d in dropped]
                )
            )
        return held, refused

    async def cancel(self, bulletin_id: str, *, now: datetime | None = None) -> None:
        """Remember a cancel and drop the held emergency, so a restart never revives it."""
        at = now or datetime.now(UTC)

        def cancel(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM cancelled WHERE at < ?", (_iso(at - CANCELLED_KEEP),))
            db.execute(
                "INSERT OR REPLACE INTO cancelled (id, at) VALUES (?, ?)", (bulletin_id, _iso(at))
            )
            db.execute("DELETE FROM emergencies WHERE id = ?", (bulletin_id,))

        await self._write(cancel)

    async def cancelled(self) -> frozenset[str]:
        rows = await self._read(lambda db: _all(db, "SELECT id FROM cancelled"))
        return frozenset(row[0] for row in rows)

    # ------------------------------------------------------------------ command replay

    async def command_seen(
        self,
        command_id: str,
        expires_at: datetime,
        *,
        now: datetime | None = None,
        hold: ManifestBulletin | None = None,
        frame: str | None = None,
    ) -> bool:
        """Record a command id; True if it was already recorded (a replay, to be ignored).

        `hold`: an emergency the (new) command carries, held in the same commit with `frame`,
        the signed command it came in (verified again at every start), so the path from a
        pushed emergency to the loudspeaker waits for one disk flush, not two.
        """
        record = self._recorder([SeenCommand(command_id, expires_at, hold, frame)], now)
        return (await self._write(record))[0]

    def _recorder(
        self, seen: Sequence[SeenCommand], now: datetime | None
    ) -> Callable[[sqlite3.Connection], list[bool]]:
        """The work that records `seen` (see `command_seen`): True for each replay. The JSON
        of what is held is made here, on the caller's side, not on the database's thread."""
        horizon = _iso((now or datetime.now(UTC)) - COMMAND_GRACE)
        rows = [
            (c, _iso(c.expires_at), c.hold.model_dump_json() if c.hold is not None else "")
            for c in seen
        ]

        def record(db: sqlite3.Connection) -> list[bool]:
            db.execute("DELETE FROM commands WHERE expires_at < ?", (horizon,))
            replays = []
            new: dict[str, str] = {}
            for command, expires, hold_json in rows:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO commands (id, expires_at) VALUES (?, ?)",
                    (command.command_id, expires),
                )
                replays.append(cursor.rowcount == 0)
                if replays[-1]:
                    continue
                if command.hold is not None:
                    self._hold_emergency(db, command.hold, command.frame, hold_json)
                new[command.command_id] = expires
            if new:
                kept = self._floor.commands
                for old_id in [c for c, e in kept.items() if e < horizon]:
                    del kept[old_id]
                kept.update(new)
                self._write_floor()
            return replays

        return record

    async def seen_commands(self) -> dict[str, datetime]:
        """Every command id still remembered, with its expiry (the agent checks replays
        against this in memory and writes each new id with `command_seen`)."""
        rows = await self._read(lambda db: _all(db, "SELECT id, expires_at FROM commands"))
        return {row[0]: _dt(row[1]) for row in rows}

    # ------------------------------------------------------------------ airings

    async def begin_play(
        self,
        bulletin_id: str,
        slot: str,
        priority: Priority,
        kind: BulletinKind,
        started_at: datetime,
        *,
        seen: Sequence[SeenCommand] = (),
    ) -> int:
        """Persist an open play as soon as playback started, so a crash mid-item is accounted
        for (a crash before this call leaves no trace: the item was not heard, it airs again).

        An emergency's first start is remembered too (see `emergency_airings`). `seen`: the
        command ids that started it (and the emergencies they brought), recorded as by
        `command_seen` in the same commit, so a pushed emergency costs one disk flush.
        """
        started = _iso(started_at)
        row = (bulletin_id, slot, Priority(priority).value, BulletinKind(kind).value, started)
        record = self._recorder(seen, None) if seen else None

        def begin(db: sqlite3.Connection) -> int:
            if slot == EMERGENCY_SLOT:
                db.execute(
                    "INSERT OR IGNORE INTO emergency_airings (bulletin_id, started_at) "
                    "VALUES (?, ?)",
                    (bulletin_id, started),
                )
            cursor = db.execute(
                "INSERT INTO plays (bulletin_id, slot, priority, kind, started_at) "
                "VALUES (?, ?, ?, ?, ?)",
                row,
            )
            assert cursor.lastrowid is not None
            if record is not None:
                record(db)  # last: it writes the replay floor, just before the COMMIT
            return int(cursor.lastrowid)

        return await self._write(begin)

    async def finish_play(
        self,
        play_id: int,
        ended_at: datetime,
        outcome: PlayOutcome,
        position_s: float,
        counts_as_aired: bool,
    ) -> ProofOfPlay:
        """Close a play, number it, queue its report and count it — all or nothing.

        Calling it again for the same play returns the first result and changes nothing, so a
        caller that cannot tell whether the first call committed may simply call again.
        """
        how = PlayOutcome(outcome)

        def finish(db: sqlite3.Connection) -> tuple[ProofOfPlay, bool]:
            row = _one(db, "SELECT * FROM plays WHERE id = ?", (play_id,))
            if row is None:
                raise UnknownPlay(f"no play {play_id}")
            if row["seq"] is not None:
                return self._proof_from_row(row), False
            return self._close_play(db, row, ended_at, how, position_s, counts_as_aired), True

        proof, closed = await self._write(finish)
        if closed:
            self._mark_durable(proof.seq)
        return proof

    def _mark_durable(self, seq: int) -> None:
        # A FULL commit fsyncs the WAL up to itself, earlier NORMAL commits included.
        self._durable_seq = max(self._durable_seq, seq)

    def _close_play(
        self,
        db: sqlite3.Connection,
        row: sqlite3.Row,
        ended_at: datetime,
        outcome: PlayOutcome,
        position_s: float,
        counts_as_aired: bool,
    ) -> ProofOfPlay:
        started = _dt(row["started_at"])
        # A clock corrected backwards mid-item must not yield an airing that ends before it began.
        ended = max(ended_at.astimezone(UTC), started)
        seq = _next_seq(db)
        proof = ProofOfPlay(
            seq=seq,
            bulletin_id=row["bulletin_id"],
            priority=Priority(row["priority"]),
            kind=BulletinKind(row["kind"]),
            started_at=started,
            ended_at=ended,
            outcome=outcome,
            position_s=max(0.0, float(position_s)),
        )
        db.execute(
            "UPDATE plays SET ended_at = ?, outcome = ?, position_s = ?, counts = ?, seq = ? "
            "WHERE id = ?",
            (_iso(ended), outcome.value, proof.position_s, int(counts_as_aired), seq, row["id"]),
        )
        db.execute(
            "INSERT INTO outbox (seq, type, body) VALUES (?, 'play', ?)",
            (seq, proof.model_dump_json()),
        )
        if counts_as_aired:
            db.execute(
                "INSERT INTO aired (bulletin_id, slot, count, slot_time) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (bulletin_id, slot) DO UPDATE SET count = count + 1, "
                "slot_time = max(slot_time, excluded.slot_time)",
                (row["bulletin_id"], row["slot"], _iso(slot_time(row["slot"], started))),
            )
            if row["slot"] == EMERGENCY_SLOT:
                db.execute(
                    "UPDATE emergency_airings SET last_end = ? WHERE bulletin_id = ?",
                    (_iso(ended), row["bulletin_id"]),
                )
        return proof

    @staticmethod
    def _proof_from_row(row: sqlite3.Row) -> ProofOfPlay:
        return ProofOfPlay(
            seq=row["seq"],
            bulletin_id=row["bulletin_id"],
            priority=Priority(row["priority"]),
            kind=BulletinKind(row["kind"]),
            started_at=_dt(row["started_at"]),
            ended_at=_dt(row["ended_at"]),
            outcome=PlayOutcome(row["outcome"]),
            position_s=float(row["position_s"]),
        )

    async def heartbeat(self, now: datetime) -> None:
        """Note that the agent is alive; a crash's open plays are closed at the last one."""
        beat = _iso(now)
        await self._write(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO state (key, value) VALUES ('heartbeat', ?)", (beat,)
            ),
            durable=False,
        )

    async def recover_open_plays(self, now: datetime) -> list[ProofOfPlay]:
        """Close plays a crash left open, as FAILED, ending at the last sign of life.

        They do not count as aired: the listeners did not hear the whole item, and the
        scheduler should give it its slot again if the slot is still open.
        """

        def recover(db: sqlite3.Connection) -> list[ProofOfPlay]:
            recovered: list[ProofOfPlay] = []
            beat = _one(db, "SELECT value FROM state WHERE key = 'heartbeat'")
            last_beat = _dt(beat[0]) if beat is not None else None
            for row in _all(db, "SELECT * FROM plays WHERE seq IS NULL ORDER BY id"):
                started = _dt(row["started_at"])
                ended = started
                if last_beat is not None and last_beat > started:
                    ended = min(last_beat, max(now, started))
                proof = self._close_play(
                    db, row, ended, PlayOutcome.FAILED, (ended - started).total_seconds(), False
                )
                recovered.append(proof)
            return recovered

        recovered = await self._write(recover)
        if recovered:
            self._mark_durable(recovered[-1].seq)
        return recovered

    async def aired_counts(self, since: datetime) -> dict[tuple[str, str], int]:
        """Airings per (bulletin, slot) for slots from `since` on ("emergency": last airing)."""

        def counts(db: sqlite3.Connection) -> list[Any]:
            db.execute("DELETE FROM aired WHERE slot_time < ?", (_iso(since - AIRED_KEEP),))
            return _all(
                db,
                "SELECT bulletin_id, slot, count FROM aired WHERE slot_time >= ?",
                (_iso(since),),
            )

        rows = await self._write(counts)
        return {(row[0], row[1]): int(row[2]) for row in rows}

    async def emergency_airings(
        self, since: datetime
    ) -> tuple[frozenset[str], dict[str, datetime]]:
        """Emergencies begun here, and the end of each one's last complete airing, for those
        heard of since `since` (older rows are pruned like air counts)."""

        def airings(db: sqlite3.Connection) -> list[Any]:
            db.execute(
                "DELETE FROM emergency_airings WHERE coalesce(last_end, started_at) < ?",
                (_iso(since - AIRED_KEEP),),
            )
            return _all(db, "SELECT bulletin_id, last_end FROM emergency_airings")

        rows = await self._write(airings)
        started = frozenset(row[0] for row in rows)
        return started, {row[0]: _dt(row[1]) for row in rows if row[1] is not None}

    # ------------------------------------------------------------------ suspended item

    async def save_suspended(self, s: Suspended | None) -> None:
        if s is None:
            await self._write(lambda db: db.execute("DELETE FROM state WHERE key = 'suspended'"))
            return
        value = json.dumps(
            {"bulletin_id": s.bulletin_id, "slot": s.slot, "position_s": s.position_s}
        )
        await self._write(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO state (key, value) VALUES ('suspended', ?)", (value,)
            )
        )

    async def suspended(self) -> Suspended | None:
        row = await self._read(
            lambda db: _one(db, "SELECT value FROM state WHERE key = 'suspended'")
        )
        if row is None:
            return None
        data = json.loads(row[0])
        return Suspended(data["bulletin_id"], data["slot"], float(data["position_s"]))

    # ------------------------------------------------------------------ outbox

    async def add_health(self, sample_without_seq: dict[str, Any]) -> HealthSample:
        """Queue a health sample, numbered from the per-device sequence shared with plays."""
        # Validated before the write, so a bad sample costs no transaction.
        draft = HealthSample.model_validate({**sample_without_seq, "seq": 1})

        def add(db: sqlite3.Connection) -> HealthSample:
            sample = draft.model_copy(update={"seq": _next_seq(db)})
            db.execute(
                "INSERT INTO outbox (seq, type, body) VALUES (?, 'health', ?)",
                (sample.seq, sample.model_dump_json()),
            )
            self._thin_health(db)
            return sample

        return await self._write(add, durable=False)

    def _thin_health(self, db: sqlite3.Connection) -> None:
        count = int(_one(db, "SELECT count(*) FROM outbox WHERE type = 'health'")[0])
        excess = count - self.max_health
        if excess <= 0:
            return
        # Remove a tenth more than needed so thinning runs once per many samples, and take
        # every other row of the oldest stretch: old history gets coarser instead of vanishing.
        target = min(count, excess + self.max_health // 10)
        region = min(count, 2 * target)
        db.execute(
            "DELETE FROM outbox WHERE seq IN ("
            " SELECT seq FROM ("
            "  SELECT seq, row_number() OVER (ORDER BY seq) AS n FROM ("
            "   SELECT seq FROM outbox WHERE type = 'health' ORDER BY seq LIMIT ?))"
            " WHERE n % 2 = 1)",
            (region,),
        )
        still = int(_one(db, "SELECT count(*) FROM outbox WHERE type = 'health'")[0])
        still -= self.max_health
        if still > 0:
            db.execute(
                "DELETE FROM outbox WHERE seq IN ("
                " SELECT seq FROM outbox WHERE type = 'health' ORDER BY seq LIMIT ?)",
                (still,),
            )

    async def pending(self, limit: int = 200) -> list[ProofOfPlay | HealthSample]:
        """Reports not yet acknowledged: plays first (they are never dropped), oldest first."""
        rows = await self._read(
            lambda db: _all(
                db,
                "SELECT seq, type, body FROM outbox "
                "ORDER BY CASE type WHEN 'play' THEN 0 ELSE 1 END, seq LIMIT ?",
                (limit,),
            )
        )
        if rows and max(row[0] for row in rows) > self._durable_seq:
            await self._durability_barrier()
        reports: list[ProofOfPlay | HealthSample] = []
        for _seq, kind, body in rows:
            if kind == "play":
                reports.append(ProofOfPlay.model_validate_json(body))
            else:
                reports.append(HealthSample.model_validate_json(body))
        return reports

    async def _durability_barrier(self) -> None:
        # A FULL commit fsyncs the whole WAL, making every earlier NORMAL commit durable too.
        def barrier(db: sqlite3.Connection) -> int:
            seq = int(_one(db, "SELECT value FROM counters WHERE name = 'seq'")[0])
            db.execute(
                "UPDATE counters SET value = max(value, ?) WHERE name = 'synced_seq'", (seq,)
            )
            return seq

        self._mark_durable(await self._write(barrier))

    async def acknowledge(self, seqs: Iterable[int]) -> None:
        """Forget reports the hub now holds."""
        wanted = sorted({int(seq) for seq in seqs})
        if not wanted:
            return

        def forget(db: sqlite3.Connection) -> None:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                db.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", chunk)
            # Old closed plays are only kept for finish_play's idempotency.
            db.execute(
                "DELETE FROM plays WHERE seq IS NOT NULL"
                " AND id <= (SELECT max(id) FROM plays) - ?"
                " AND seq NOT IN (SELECT seq FROM outbox)",
                (CLOSED_PLAYS_KEPT,),
            )

        await self._write(forget)

    async def backlog(self) -> dict[str, int]:
        rows = await self._read(
            lambda db: _all(db, "SELECT type, count(*) FROM outbox GROUP BY type")
        )
        counts = {"plays": 0, "health": 0}
        for kind, n in rows:
            counts["plays" if kind == "play" else "health"] = int(n)
        return counts

    async def recent_plays(self, limit: int = 20) -> list[ProofOfPlay]:
        """The last closed plays, newest first (the local page's proof-of-play list)."""
        rows = await self._read(
            lambda db: _all(
                db, "SELECT * FROM plays WHERE seq IS NOT NULL ORDER BY id DESC LIMIT ?", (limit,)
            )
        )
        return [self._proof_from_row(row) for row in rows]

    async def play_starts(self, since: datetime) -> list[tuple[datetime, PlayOutcome]]:
        """Start time and outcome of every closed play since `since` (for daily charts)."""
        rows = await self._read(
            lambda db: _all(
                db,
                "SELECT started_at, outcome FROM plays WHERE seq IS NOT NULL AND started_at >= ?",
                (_iso(since),),
            )
        )
        return [(_dt(row[0]), PlayOutcome(row[1])) for row in rows]

    # ------------------------------------------------------------------ settings

    async def report_stream(self) -> str:
        """The name of this database's report sequence space (see MIGRATIONS); fixed for
        the file's life, so it is read once."""
        if self._stream is None:
            row = await self._read(
                lambda db: _one(db, "SELECT value FROM state WHERE key = 'report_stream'")
            )
            self._stream = str(row[0]) if row is not None else ""
        return self._stream

    async def get_setting(self, key: str, default: str | None = None) -> str | None:
        row = await self._read(
            lambda db: _one(db, "SELECT value FROM settings WHERE key = ?", (key,))
        )
        return default if row is None else str(row[0])

    async def set_setting(self, key: str, value: str | None) -> None:
        """Store a local setting (volume override, …); None removes it."""
        if value is None:
            await self._write(lambda db: db.execute("DELETE FROM settings WHERE key = ?", (key,)))
        else:
            await self._write(
                lambda db: db.execute(
                    "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value)
                )
            )


def _one(db: sqlite3.Connection, sql: str, args: Iterable[Any] = ()) -> Any:
    cursor = db.execute(sql, tuple(args))
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


def _all(db: sqlite3.Connection, sql: str, args: Iterable[Any] = ()) -> list[Any]:
    cursor = db.execute(sql, tuple(args))
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def _next_seq(db: sqlite3.Connection) -> int:
    row = _one(db, "UPDATE counters SET value = value + 1 WHERE name = 'seq' RETURNING value")
    return int(row[0])
