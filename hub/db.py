"""SQLite storage: one writer connection behind a lock, one reader connection, WAL.

One writer per file is what keeps "database is locked" away; the reader sees only committed
data (WAL snapshots), so a request never observes another request's half-done transaction.

The PostgreSQL backend is hub/store/postgres.py; `open_database` opens whichever the hub's
configuration names. `MIGRATIONS` is the one schema history of both (see there).

Every read is one function run on the reader's thread (execute, fetch, close), never a
cursor left open across awaits: the reader connection is shared by all requests, and a
statement left active by one of them holds the connection's read snapshot, so another
request reading right after its own commit would still see the database as it was before
(a bulletin just created answered 404). Writes that are many statements can also be one
function on the writer's thread (`SqliteDatabase.write`), one hop instead of one per statement,
committed together with the writes queued behind them (group commit).

`SqliteDatabase` is the `hub.store.sql.Database` the store's functions read through, and
`transaction()` yields its `Tx` (`SqliteTx`); the queries themselves are hub/store/'s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, TypeVar, cast

import aiosqlite

from loa_contract import utcnow

from .store.sql import (
    SQLITE,
    Database,
    DatabaseDamaged,
    DatabaseError,
    Dialect,
    Params,
    Tx,
)

__all__ = ["Database", "DatabaseDamaged", "DatabaseError", "SqliteDatabase", "open_database"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Dialects(NamedTuple):
    """A migration written twice, where SQLite and PostgreSQL cannot share one text."""

    sqlite: str
    postgres: str


#: The first schema's tables, shared by both backends' first migration.
_FIRST_SCHEMA = """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        unit TEXT,
        must_change_password INTEGER NOT NULL DEFAULT 0,
        locked INTEGER NOT NULL DEFAULT 0,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        password_changed_at TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        last_used_at TEXT NOT NULL,
        address TEXT
    );
    CREATE TABLE communes (
        code TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        windows_json TEXT NOT NULL,
        volume INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        commune TEXT NOT NULL REFERENCES communes(code),
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        profile TEXT NOT NULL,
        enrollment_code_hash TEXT UNIQUE,
        enrollment_expires_at TEXT,
        enrollment_used_at TEXT,
        secret_hash TEXT,
        enrolled_at TEXT,
        agent_version TEXT,
        hostname TEXT,
        manifest_version INTEGER NOT NULL DEFAULT 1,
        manifest_signed_version INTEGER,
        manifest_signed_at TEXT,
        last_seen TEXT,
        last_health_at TEXT,
        last_health_json TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX devices_commune ON devices(commune);
    CREATE TABLE media (
        sha256 TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mime TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE bulletins (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        kind TEXT NOT NULL,
        priority TEXT NOT NULL,
        text TEXT,
        media_sha256 TEXT REFERENCES media(sha256),
        schedule_json TEXT NOT NULL,
        valid_from TEXT NOT NULL,
        valid_until TEXT NOT NULL,
        display_seconds REAL NOT NULL,
        category TEXT,
        source_level TEXT NOT NULL,
        target_all INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL,
        created_by TEXT,
        created_at TEXT NOT NULL,
        published_at TEXT,
        cancelled_at TEXT
    );
    CREATE INDEX bulletins_state ON bulletins(state, valid_until);
    CREATE TABLE bulletin_communes (
        bulletin_id TEXT NOT NULL REFERENCES bulletins(id),
        commune TEXT NOT NULL REFERENCES communes(code),
        PRIMARY KEY (bulletin_id, commune)
    );
    CREATE INDEX bulletin_communes_commune ON bulletin_communes(commune);
    CREATE TABLE bulletin_devices (
        bulletin_id TEXT NOT NULL REFERENCES bulletins(id),
        device_id TEXT NOT NULL REFERENCES devices(id),
        PRIMARY KEY (bulletin_id, device_id)
    );
    CREATE INDEX bulletin_devices_device ON bulletin_devices(device_id);
    CREATE TABLE plays (
        id INTEGER PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(id),
        seq INTEGER NOT NULL,
        bulletin_id TEXT NOT NULL,
        priority TEXT NOT NULL,
        kind TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT NOT NULL,
        outcome TEXT NOT NULL,
        position_s REAL NOT NULL,
        received_at TEXT NOT NULL,
        UNIQUE (device_id, seq)
    );
    CREATE INDEX plays_bulletin ON plays(bulletin_id);
    CREATE TABLE health (
        id INTEGER PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(id),
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        json TEXT NOT NULL,
        received_at TEXT NOT NULL,
        UNIQUE (device_id, seq)
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        address TEXT,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT
    );"""


#: The second migration's statements before and after its triggers.
_SECOND_SCHEMA = """
    ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN locked_until TEXT;
    CREATE TABLE password_history (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        password_hash TEXT NOT NULL,
        changed_at TEXT NOT NULL
    );
    CREATE INDEX password_history_user ON password_history(user_id, id);
    ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT 'bearer';
    ALTER TABLE sessions ADD COLUMN csrf_token TEXT;
    CREATE INDEX sessions_user ON sessions(user_id);
    ALTER TABLE audit ADD COLUMN unit TEXT;
    ALTER TABLE audit ADD COLUMN before_json TEXT;
    ALTER TABLE audit ADD COLUMN after_json TEXT;
    CREATE INDEX audit_at ON audit(at);
    CREATE INDEX audit_actor ON audit(actor, at);
    CREATE INDEX audit_action ON audit(action, at);
    CREATE INDEX audit_target ON audit(target, at);
    ALTER TABLE bulletins ADD COLUMN unit TEXT NOT NULL DEFAULT 'province';
    ALTER TABLE bulletins ADD COLUMN review_comment TEXT;
    CREATE INDEX bulletins_unit ON bulletins(unit, state);
    CREATE TABLE bulletin_events (
        id INTEGER PRIMARY KEY,
        bulletin_id TEXT NOT NULL REFERENCES bulletins(id),
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        unit TEXT,
        action TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT NOT NULL,
        comment TEXT
    );
    CREATE INDEX bulletin_events_bulletin ON bulletin_events(bulletin_id, id);
"""
_COMMUNE_ORDER = """
    CREATE TABLE commune_order (
        commune TEXT NOT NULL REFERENCES communes(code),
        bulletin_id TEXT NOT NULL REFERENCES bulletins(id),
        position INTEGER NOT NULL,
        PRIMARY KEY (commune, bulletin_id)
    );
"""

_MEDIA_UPLOADS = """
    CREATE TABLE media_uploads (
        sha256 TEXT NOT NULL REFERENCES media(sha256),
        unit TEXT NOT NULL,
        first_at TEXT NOT NULL,
        PRIMARY KEY (sha256, unit)
    );"""
_MEDIA_UPLOADS_FROM_AUDIT = """
        SELECT a.target, a.unit, MIN(a.at) FROM audit a
        JOIN media m ON m.sha256 = a.target
        WHERE a.action = 'media.upload' AND a.unit IS NOT NULL
        GROUP BY a.target, a.unit;
    """


def _append_only(table: str, what: str) -> str:
    """PostgreSQL's form of the SQLite triggers that keep `table` append-only."""
    return f"""
    CREATE OR REPLACE FUNCTION loa_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '% is append-only', TG_ARGV[0]
            USING ERRCODE = 'integrity_constraint_violation'; END $$;
    CREATE TRIGGER {table}_no_update BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION loa_append_only('{what}');
    CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION loa_append_only('{what}');
    """


_DEVICE_MANIFESTS = """
    CREATE TABLE device_manifests (
        device_id TEXT PRIMARY KEY REFERENCES devices(id),
        version INTEGER NOT NULL DEFAULT 1,
        signed_version INTEGER,
        signed_at TEXT
    ){without_rowid};
    INSERT INTO device_manifests (device_id, version, signed_version, signed_at)
        SELECT id, manifest_version, manifest_signed_version, manifest_signed_at FROM devices;
    ALTER TABLE devices DROP COLUMN manifest_version;
    ALTER TABLE devices DROP COLUMN manifest_signed_version;
    ALTER TABLE devices DROP COLUMN manifest_signed_at;
"""

# Each entry migrates from schema version i to i + 1, in both backends; never edit a released
# entry. To add one, append it here, and nowhere else:
# - portable SQL (a plain string) where both can run it: TEXT, INTEGER (BIGINT in PostgreSQL),
#   REAL (DOUBLE PRECISION there), `INTEGER PRIMARY KEY` ids (an identity column there),
#   ALTER TABLE … ADD COLUMN, CREATE INDEX, `INSERT … ON CONFLICT DO NOTHING`;
#   `postgres_migration` makes those three type words PostgreSQL's;
# - `Dialects(sqlite=…, postgres=…)` where they differ (triggers, table rebuilds, functions).
# tests/test_migrations.py runs every entry on both.
MIGRATIONS: list[str | Dialects] = [
    Dialects(
        sqlite=_FIRST_SCHEMA
        + """
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
        postgres=_FIRST_SCHEMA + _append_only("audit", "the audit log"),
    ),
    # Accounts (lockout, disable, password history), cookie sessions with CSRF, the audit
    # record's unit and before/after, the review workflow and the communes' running order.
    Dialects(
        sqlite=_SECOND_SCHEMA
        + """
    CREATE TRIGGER bulletin_events_no_update BEFORE UPDATE ON bulletin_events
        BEGIN SELECT RAISE(ABORT, 'the bulletin history is append-only'); END;
    CREATE TRIGGER bulletin_events_no_delete BEFORE DELETE ON bulletin_events
        BEGIN SELECT RAISE(ABORT, 'the bulletin history is append-only'); END;
    """
        + _COMMUNE_ORDER,
        postgres=_SECOND_SCHEMA
        + _append_only("bulletin_events", "the bulletin history")
        + _COMMUNE_ORDER,
    ),
    # Which units uploaded which media: a non-province account may use (and list) its own
    # unit's uploads. Filled from the audit records of uploads made before this table.
    Dialects(
        sqlite=_MEDIA_UPLOADS
        + """
    INSERT OR IGNORE INTO media_uploads (sha256, unit, first_at)"""
        + _MEDIA_UPLOADS_FROM_AUDIT,
        # GROUP BY makes each (sha256, unit) once: nothing to ignore.
        postgres=_MEDIA_UPLOADS
        + """
    INSERT INTO media_uploads (sha256, unit, first_at)"""
        + _MEDIA_UPLOADS_FROM_AUDIT,
    ),
    # Reports are unique per device, stream and seq (see loa_contract ReportBatch.stream):
    # a device that lost its state file numbers from 1 again under a new stream.
    Dialects(
        sqlite="""
    ALTER TABLE plays RENAME TO plays_before_streams;
    CREATE TABLE plays (
        id INTEGER PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(id),
        stream TEXT NOT NULL DEFAULT '',
        seq INTEGER NOT NULL,
        bulletin_id TEXT NOT NULL,
        priority TEXT NOT NULL,
        kind TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT NOT NULL,
        outcome TEXT NOT NULL,
        position_s REAL NOT NULL,
        received_at TEXT NOT NULL,
        UNIQUE (device_id, stream, seq)
    );
    INSERT INTO plays (id, device_id, stream, seq, bulletin_id, priority, kind, started_at,
                       ended_at, outcome, position_s, received_at)
        SELECT id, device_id, '', seq, bulletin_id, priority, kind, started_at, ended_at,
               outcome, position_s, received_at
        FROM plays_before_streams;
    DROP TABLE plays_before_streams;
    CREATE INDEX plays_bulletin ON plays(bulletin_id);
    CREATE INDEX plays_device_started ON plays(device_id, started_at);
    CREATE INDEX plays_started ON plays(started_at);
    ALTER TABLE health RENAME TO health_before_streams;
    CREATE TABLE health (
        id INTEGER PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(id),
        stream TEXT NOT NULL DEFAULT '',
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        json TEXT NOT NULL,
        received_at TEXT NOT NULL,
        UNIQUE (device_id, stream, seq)
    );
    INSERT INTO health (id, device_id, stream, seq, at, json, received_at)
        SELECT id, device_id, '', seq, at, json, received_at FROM health_before_streams;
    DROP TABLE health_before_streams;
    CREATE INDEX health_device_at ON health(device_id, at);
    CREATE INDEX health_at ON health(at);
    """,
        # No rows to carry over there (PostgreSQL came after this migration): the columns
        # and keys change in place.
        postgres="""
    ALTER TABLE plays ADD COLUMN stream TEXT NOT NULL DEFAULT '';
    ALTER TABLE plays DROP CONSTRAINT plays_device_id_seq_key;
    ALTER TABLE plays ADD UNIQUE (device_id, stream, seq);
    CREATE INDEX plays_device_started ON plays(device_id, started_at);
    CREATE INDEX plays_started ON plays(started_at);
    ALTER TABLE health ADD COLUMN stream TEXT NOT NULL DEFAULT '';
    ALTER TABLE health DROP CONSTRAINT health_device_id_seq_key;
    ALTER TABLE health ADD UNIQUE (device_id, stream, seq);
    CREATE INDEX health_device_at ON health(device_id, at);
    CREATE INDEX health_at ON health(at);
    """,
    ),
    # Proof of play the hub refused (hub/play_evidence.py): kept with its reason and the row
    # as sent, acknowledged so the device's outbox moves on, never counted as an airing. One
    # verdict per (device, stream, seq): a retry finds it here or in plays. The device keeps
    # the running count and the latest reason for its status and verdict.
    """
    CREATE TABLE refused_reports (
        id INTEGER PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(id),
        stream TEXT NOT NULL DEFAULT '',
        seq INTEGER NOT NULL,
        bulletin_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT NOT NULL,
        report_json TEXT NOT NULL,
        received_at TEXT NOT NULL,
        UNIQUE (device_id, stream, seq)
    );
    CREATE INDEX refused_reports_device ON refused_reports(device_id, id);
    ALTER TABLE devices ADD COLUMN refused_reports_total INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE devices ADD COLUMN last_refused_at TEXT;
    ALTER TABLE devices ADD COLUMN last_refused_reason TEXT;
    ALTER TABLE devices ADD COLUMN last_refused_detail TEXT;
    """,
    # Hub nodes sharing this database (hub/nodes.py): each node's public URL and when it was
    # last alive; `announced` marks the set devices' manifests list (hub_urls), so a change
    # of nodes re-issues the manifests once.
    """
    CREATE TABLE hub_nodes (
        url TEXT PRIMARY KEY,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        announced INTEGER NOT NULL DEFAULT 0
    );
    """,
    # Notices of planned maintenance and of a switch to the standby (hub/maintenance.py),
    # shown to every user until they end; `warnings` lists what the regulation asked that
    # the notice did not give (comma-separated NoticeWarning values).
    """
    CREATE TABLE maintenance_notices (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        starts_at TEXT NOT NULL,
        ends_at TEXT NOT NULL,
        reason TEXT NOT NULL,
        consent_ref TEXT,
        warnings TEXT NOT NULL,
        announced_by TEXT NOT NULL,
        announced_at TEXT NOT NULL,
        withdrawn_by TEXT,
        withdrawn_at TEXT
    );
    CREATE INDEX maintenance_notices_ends ON maintenance_notices (ends_at);
    """,
    # What decoding an upload found (hub/probe.py): audio and video length as decoded,
    # codec, channels, sample rate, resolution; a document's words; and for the text taken
    # out of a Word or OpenDocument file, that file's sha256. NULL: not known (files stored
    # before uploads were probed).
    """
    ALTER TABLE media ADD COLUMN duration_s REAL;
    ALTER TABLE media ADD COLUMN codec TEXT;
    ALTER TABLE media ADD COLUMN channels INTEGER;
    ALTER TABLE media ADD COLUMN sample_rate INTEGER;
    ALTER TABLE media ADD COLUMN width INTEGER;
    ALTER TABLE media ADD COLUMN height INTEGER;
    ALTER TABLE media ADD COLUMN words INTEGER;
    ALTER TABLE media ADD COLUMN source_sha256 TEXT;
    """,
    # CAP 1.2 in (hub/cap.py): a commune's administrative code (mã đơn vị hành chính) that a
    # CAP area's VN-DVHC geocode names; the accounts of agencies that post alerts, each with
    # its own token and policy; every alert taken, once per (sender, identifier, sent), with
    # the bulletin it became and who posted it; the feeds the hub polls, and which of a
    # feed's entries it has taken.
    """
    ALTER TABLE communes ADD COLUMN admin_code TEXT;
    CREATE UNIQUE INDEX communes_admin_code ON communes(admin_code);
    CREATE TABLE cap_senders (
        name TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        policy TEXT NOT NULL,
        source_level TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE cap_alerts (
        sender TEXT NOT NULL,
        identifier TEXT NOT NULL,
        sent TEXT NOT NULL,
        msg_type TEXT NOT NULL,
        posted_by TEXT NOT NULL,
        bulletin_id TEXT REFERENCES bulletins(id),
        outcome TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (sender, identifier, sent)
    );
    CREATE INDEX cap_alerts_bulletin ON cap_alerts(bulletin_id);
    CREATE TABLE cap_feeds (
        url TEXT PRIMARY KEY,
        sender TEXT NOT NULL REFERENCES cap_senders(name),
        interval_s INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        last_polled_at TEXT,
        last_ok_at TEXT,
        last_error TEXT
    );
    CREATE TABLE cap_feed_entries (
        feed_url TEXT NOT NULL REFERENCES cap_feeds(url),
        entry TEXT NOT NULL,
        taken_at TEXT NOT NULL,
        PRIMARY KEY (feed_url, entry)
    );
    """,
    # The commune's say over province normal bulletins (HP Đ12.3): whether they air on their
    # own ("auto") or wait to be accepted ("offer"), and each commune's accept or decline.
    """
    ALTER TABLE communes ADD COLUMN province_normal TEXT NOT NULL DEFAULT 'auto';
    CREATE TABLE commune_choices (
        commune TEXT NOT NULL REFERENCES communes(code),
        bulletin_id TEXT NOT NULL REFERENCES bulletins(id),
        choice TEXT NOT NULL,
        chosen_by TEXT NOT NULL,
        chosen_at TEXT NOT NULL,
        PRIMARY KEY (commune, bulletin_id)
    );
    CREATE INDEX commune_choices_bulletin ON commune_choices(bulletin_id);
    """,
    # Incidents (sự cố, HP Điều 8.8, TN Điều 15.1): opened by hand by commune staff and
    # technicians, or by the hub when a device's fault lasts (hub/incidents.py), which keeps
    # in device_faults since when each device has been in fault.
    """
    CREATE TABLE incidents (
        id TEXT PRIMARY KEY,
        commune TEXT NOT NULL REFERENCES communes(code),
        device_id TEXT REFERENCES devices(id),
        what TEXT NOT NULL,
        since TEXT NOT NULL,
        source TEXT NOT NULL,
        opened_by TEXT NOT NULL,
        opened_at TEXT NOT NULL,
        closed_by TEXT,
        closed_at TEXT,
        resolution TEXT
    );
    CREATE INDEX incidents_open ON incidents(closed_at, commune);
    CREATE INDEX incidents_device ON incidents(device_id, source, closed_at);
    CREATE TABLE device_faults (
        device_id TEXT PRIMARY KEY REFERENCES devices(id),
        since TEXT NOT NULL,
        reasons TEXT NOT NULL
    );
    """,
    # Reports that go up (issue #11 point 4): each boot time a device reported (its reboots
    # in a report), and the reports a commune or the province submitted, frozen as sent.
    """
    CREATE TABLE device_boots (
        device_id TEXT NOT NULL REFERENCES devices(id),
        boot_time REAL NOT NULL,
        PRIMARY KEY (device_id, boot_time)
    );
    CREATE TABLE report_submissions (
        scope TEXT NOT NULL,
        first_day TEXT NOT NULL,
        last_day TEXT NOT NULL,
        report_json TEXT NOT NULL,
        submitted_by TEXT NOT NULL,
        submitted_at TEXT NOT NULL,
        PRIMARY KEY (scope, first_day, last_day)
    );
    """,
    # Hub-to-hub exchange (hub/exchange.py, docs/exchange.md). On the upper hub: the lower
    # hubs it serves (downstreams, each with its token) and the reports they sent up. On the
    # lower hub: the upper hubs it takes bulletins from (upstreams, with the token it sends
    # and the key it pinned), which of their items it took as which bulletin, and which of
    # its submitted reports it delivered to each.
    """
    CREATE TABLE downstreams (
        name TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL UNIQUE,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL
    );
    CREATE TABLE received_reports (
        downstream TEXT NOT NULL REFERENCES downstreams(name),
        scope TEXT NOT NULL,
        first_day TEXT NOT NULL,
        last_day TEXT NOT NULL,
        report_json TEXT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (downstream, scope, first_day, last_day)
    );
    CREATE TABLE upstreams (
        url TEXT PRIMARY KEY,
        token TEXT NOT NULL,
        policy TEXT NOT NULL,
        key_id TEXT,
        public_key TEXT,
        created_at TEXT NOT NULL,
        last_polled_at TEXT,
        last_ok_at TEXT,
        last_error TEXT
    );
    CREATE TABLE upstream_items (
        upstream TEXT NOT NULL REFERENCES upstreams(url),
        remote_id TEXT NOT NULL,
        bulletin_id TEXT REFERENCES bulletins(id),
        state TEXT NOT NULL,
        taken_at TEXT NOT NULL,
        PRIMARY KEY (upstream, remote_id)
    );
    CREATE TABLE report_deliveries (
        upstream TEXT NOT NULL REFERENCES upstreams(url),
        scope TEXT NOT NULL,
        first_day TEXT NOT NULL,
        last_day TEXT NOT NULL,
        delivered_at TEXT NOT NULL,
        PRIMARY KEY (upstream, scope, first_day, last_day)
    );
    """,
    # Bulletins' title and text folded for search (hub/domain/folding.py: lower case, no
    # diacritics), written with the text; NULL until the hub folds an older row at start.
    """
    ALTER TABLE bulletins ADD COLUMN search_text TEXT;
    """,
    # Fleet updates (issue #14, hub/releases.py): agent releases with their signed
    # descriptors, staged roll-outs of them, and what each device last said of its update.
    """
    CREATE TABLE agent_releases (
        version TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL UNIQUE,
        size BIGINT NOT NULL,
        filename TEXT NOT NULL,
        descriptor TEXT NOT NULL,
        added_at TEXT NOT NULL,
        added_by TEXT NOT NULL
    );
    CREATE TABLE rollouts (
        id TEXT PRIMARY KEY,
        version TEXT NOT NULL REFERENCES agent_releases(version),
        communes TEXT NOT NULL,
        devices TEXT NOT NULL,
        kind TEXT,
        percent INTEGER NOT NULL,
        state TEXT NOT NULL,
        downgrade INTEGER NOT NULL,
        descriptor TEXT NOT NULL,
        max_failure_share REAL NOT NULL,
        min_attempts INTEGER NOT NULL,
        paused_reason TEXT,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX rollouts_by_state ON rollouts(state, created_at);
    CREATE TABLE device_updates (
        device_id TEXT PRIMARY KEY REFERENCES devices(id),
        running_version TEXT NOT NULL,
        state TEXT NOT NULL,
        target_version TEXT,
        reason TEXT,
        switch_silence_s REAL,
        reported_at TEXT NOT NULL
    );
    """,
    # Operator commands to devices and what each device answered (hub/commands.py): "sent"
    # until the device acks "applied" or "refused" (with its reason); "undelivered" when the
    # device was not connected. An agent from before acks leaves its commands "sent".
    """
    CREATE TABLE device_commands (
        id TEXT PRIMARY KEY,
        device_id TEXT NOT NULL REFERENCES devices(id),
        type TEXT NOT NULL,
        params_json TEXT NOT NULL,
        issued_at TEXT NOT NULL,
        issued_by TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        detail TEXT,
        answered_at TEXT
    );
    CREATE INDEX device_commands_device ON device_commands(device_id, issued_at);
    """,
    # Device groups (hub/groups.py): named sets of devices, of one commune or the province's;
    # a command to a group is one batch of device commands, each acked on its own.
    """
    CREATE TABLE device_groups (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        commune TEXT REFERENCES communes(code),
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL
    );
    CREATE TABLE device_group_members (
        group_id TEXT NOT NULL REFERENCES device_groups(id) ON DELETE CASCADE,
        device_id TEXT NOT NULL REFERENCES devices(id),
        PRIMARY KEY (group_id, device_id)
    );
    CREATE INDEX device_group_members_device ON device_group_members(device_id);
    ALTER TABLE device_commands ADD COLUMN group_id TEXT;
    ALTER TABLE device_commands ADD COLUMN batch_id TEXT;
    CREATE INDEX device_commands_batch ON device_commands(batch_id);
    """,
    # A board's latest screen picture (hub/frames.py), checked as an image before it is kept;
    # only the newest is kept, as base64 text.
    """
    CREATE TABLE device_frames (
        device_id TEXT PRIMARY KEY REFERENCES devices(id),
        at TEXT NOT NULL,
        mime TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        data TEXT NOT NULL
    );
    """,
    # A roll-out may target a device group (hub/releases.py): its members are looked up when
    # each device asks for updates, so a device added to the group later is reached too.
    """
    ALTER TABLE rollouts ADD COLUMN group_id TEXT;
    """,
    # Pushes made on one hub node for devices connected to the others (hub/node_bus.py): the
    # durable record a NOTIFY names by id, so a node that missed notifications catches up;
    # and the running nodes on the bus, with the address the others reach each at (its
    # --node-url: behind one proxy every node may share one --public-url).
    """
    CREATE TABLE node_events (
        id INTEGER PRIMARY KEY,
        node TEXT NOT NULL,
        kind TEXT NOT NULL,
        body TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX node_events_at ON node_events(at);
    CREATE TABLE node_presence (
        node TEXT PRIMARY KEY,
        url TEXT,
        last_seen REAL NOT NULL
    );
    CREATE TABLE device_sockets (
        device_id TEXT NOT NULL,
        node TEXT NOT NULL,
        PRIMARY KEY (device_id, node)
    );
    """,
    # The register of units that send bulletins other than the province and its communes
    # (hub/units.py): each agency's or newspaper's name, and its kind, which decides its
    # quota in the monthly report.
    """
    CREATE TABLE units (
        code TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('newspaper', 'agency')),
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # Each device's manifest version in a narrow table of its own: a province emergency
    # raises the version of every device it reaches inside the commit the operator's answer
    # and every push wait for, and in the device row (its last health sample, about 1.5 KB)
    # that rewrote every page of the table: 1,849 pages, 32 ms of commit at 5,000 devices.
    Dialects(
        sqlite=_DEVICE_MANIFESTS.format(without_rowid=" WITHOUT ROWID"),
        postgres=_DEVICE_MANIFESTS.format(without_rowid=""),
    ),
]


def sqlite_migration(entry: str | Dialects) -> str:
    return entry.sqlite if isinstance(entry, Dialects) else entry


_POSTGRES_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY\b"), "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
)


def postgres_migration(entry: str | Dialects) -> str:
    """The entry's PostgreSQL text, SQLite's type words made PostgreSQL's: INTEGER is 64-bit
    in SQLite (BIGINT), REAL a double, and an `INTEGER PRIMARY KEY` numbers itself."""
    sql = entry.postgres if isinstance(entry, Dialects) else entry
    for pattern, replacement in _POSTGRES_TYPES:
        sql = pattern.sub(replacement, sql)
    return sql


def iso(dt: datetime) -> str:
    """UTC with a fixed shape, so stored times compare correctly as strings."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime")
    utc = dt.astimezone(UTC)
    # isoformat() without arguments is several times cheaper than with timespec (report
    # ingest calls this twice per proof of play); it leaves out a zero fraction, put back here.
    if utc.microsecond:
        return utc.isoformat()
    return utc.isoformat()[:19] + ".000000+00:00"


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def epoch_us(dt: datetime) -> int:
    """Whole microseconds since the epoch: exact, cheap to compare (play evidence) and, with
    `Dialect.iso_from_epoch_us`, stored as iso()'s text."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime")
    return (dt - EPOCH) // _MICROSECOND


def epoch_us_span(start: datetime, end: datetime) -> tuple[int, int]:
    """`epoch_us` of both ends of a span (an airing), for a third less than twice epoch_us:
    the end is reached from the start. Each subtraction from EPOCH asks the time's offset
    of its tzinfo, pydantic's being dear to ask; two times parsed with one offset share one
    tzinfo, and subtracting them asks neither (other offsets are still exact, just dearer)."""
    start_us = epoch_us(start)
    return start_us, start_us + (end - start) // _MICROSECOND


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def _connect(path: Path) -> aiosqlite.Connection:
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE), never implicit.
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    await conn.execute("PRAGMA foreign_keys=ON")
    await conn.execute("PRAGMA busy_timeout=10000")
    return conn


def _in_use_marker(path: Path) -> Path:
    return path.with_name(path.name + ".in-use")


def _restore_hint(path: Path) -> str:
    return (
        f"restore the last backup: hub restore --from BACKUP.tar --data {path.parent} --force"
        " (the damaged files are moved aside, not deleted)"
    )


def check_database(path: Path) -> None:
    """Raise DatabaseDamaged unless `path` is a sound database or a hub's very first start.

    A marker beside the file says the hub has held data there: from then on a missing or
    zero-length database is a loss to restore, not a new hub to create.
    """
    marker = _in_use_marker(path)
    size = path.stat().st_size if path.exists() else None
    if not size:
        if marker.exists():
            state = "missing" if size is None else "empty (0 bytes)"
            since = marker.read_text(encoding="utf-8").strip() or "an earlier start"
            raise DatabaseDamaged(
                f"the hub database {path} is {state}, but this hub has held data in it since"
                f" {since}; {_restore_hint(path)}"
            )
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            verdicts = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DatabaseDamaged(
            f"the hub database {path} cannot be read ({exc}); {_restore_hint(path)}"
        ) from exc
    if verdicts != ["ok"]:
        raise DatabaseDamaged(
            f"the hub database {path} is damaged ({'; '.join(verdicts)}); {_restore_hint(path)}"
        )


def copy_database(path: Path, target: Path) -> None:
    """A transaction-consistent copy of the database at `path`, however busy the hub is
    (SQLite's online backup), written to `target`."""
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    try:
        with copy:
            source.backup(copy)
    finally:
        copy.close()
        source.close()


def integrity_verdict(path: Path) -> str:
    """SQLite's full integrity check of the database file at `path`: "ok", or what is wrong."""
    check = sqlite3.connect(path)
    try:
        verdict: str = check.execute("PRAGMA integrity_check").fetchone()[0]
        return verdict
    finally:
        check.close()


def _mark_in_use(path: Path, now: datetime) -> None:
    marker = _in_use_marker(path)
    if not marker.exists():
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(now.isoformat(timespec="seconds") + "\n", encoding="utf-8")
        os.replace(tmp, marker)


class SqliteTx:
    """A `hub.store.sql.Tx` over an aiosqlite connection: each call is one step on the
    connection's thread (execute, fetch, close the cursor), so no cursor stays open across
    awaits and no other request's statement interleaves with it."""

    __slots__ = ("_conn",)
    dialect: Dialect = SQLITE

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await _on_thread(self._conn, _execute, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await _on_thread(self._conn, _executemany, sql, list(rows))

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        return await _on_thread(self._conn, _fetchone, sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return await _on_thread(self._conn, _fetchall, sql, params)

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        return await _on_thread(self._conn, _fetchval, sql, params)


class _ThreadTx:
    """A `hub.store.sql.Tx` for a grouped write (`SqliteDatabase.write`), on the writer's own
    thread: each call runs the statement at once, so the write's coroutine never suspends and
    is driven to its end in one hop (`_run_to_end`)."""

    __slots__ = ("_conn",)
    dialect: Dialect = SQLITE

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        return _execute(self._conn, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        _executemany(self._conn, sql, list(rows))

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        return _fetchone(self._conn, sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return _fetchall(self._conn, sql, params)

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        return _fetchval(self._conn, sql, params)


def _run_to_end(work: Callable[[Tx], Awaitable[T]], tx: _ThreadTx) -> T:
    """Run a write's coroutine to its end without an event loop: it awaits only `_ThreadTx`
    calls, which never suspend."""
    coroutine = work(tx)
    if not isinstance(coroutine, Coroutine):
        raise TypeError("a grouped write must be a coroutine function")
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise RuntimeError("a grouped write awaited something other than its statements")


class SqliteDatabase:
    """The hub's database in one SQLite file (the embedded default)."""

    dialect: Dialect = SQLITE

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._write_lock = asyncio.Lock()
        #: Writes waiting for the writer (see `write`): each with the future its caller awaits.
        self._queued: list[tuple[Callable[[Tx], Awaitable[Any]], asyncio.Future[Any]]] = []

    @classmethod
    async def open(cls, path: Path, *, clock: Callable[[], datetime] = utcnow) -> SqliteDatabase:
        """Open (creating on a first start) the hub's database; DatabaseDamaged if it was lost
        or is damaged, naming `hub restore`. `clock` dates the first start (the in-use mark)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(check_database, path)
        writer = await _connect(path)
        try:
            await writer.execute("PRAGMA journal_mode=WAL")
            # Acks and enrollments must survive a power cut once answered.
            await writer.execute("PRAGMA synchronous=FULL")
            await _migrate(writer)
            # Each grouped write runs in a savepoint, whose statement journal (the pages it
            # changed) SQLite spills to a temporary file past 64 KiB: a report batch's
            # inserts went there and back, a third of the write's cost. The writer never
            # sorts a large result (reads go through the reader), so its temporary storage
            # is memory; set after the migrations, whose index builds may sort a whole table.
            await writer.execute("PRAGMA temp_store=MEMORY")
            reader = await _connect(path)
        except sqlite3.DatabaseError as exc:
            await writer.close()
            raise DatabaseDamaged(f"the hub database {path}: {exc}; {_restore_hint(path)}") from exc
        except BaseException:
            await writer.close()
            raise
        await asyncio.to_thread(_mark_in_use, path, clock())
        return cls(writer, reader)

    async def close(self) -> None:
        await self._reader.close()
        async with self._write_lock:
            await self._writer.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqliteTx]:
        """A write transaction; it rolls back on any exception, so bad input changes nothing."""
        async with self._write_lock:
            await self._begin()
            try:
                yield SqliteTx(self._writer)
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")

    async def _begin(self) -> None:
        try:
            await self._writer.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if "within a transaction" not in str(exc):
                raise
            # A task cancelled mid-transaction cannot stop statements already queued to the
            # SQLite thread; whatever it left open is rolled back here, never committed.
            log.warning("rolling back a transaction abandoned by a cancelled task")
            await self._writer.execute("ROLLBACK")
            await self._writer.execute("BEGIN IMMEDIATE")

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One write statement in its own transaction; returns the changed row count."""
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    async def write(self, work: Callable[[Tx], Awaitable[T]]) -> T:
        """Run `await work(tx)` on the writer's thread, all its statements in one hop, and
        return once it is committed (synchronous=FULL: on disk). If it raises, its changes
        are rolled back and the exception is raised here. `work` awaits nothing but its
        statements (see `_ThreadTx`).

        Group commit: writes that queue while the writer is busy are committed together, in
        arrival order, each inside its own savepoint, so one failing write leaves the others
        alone. Under load one commit (one fsync, the dearest step on an SD card) then serves
        several requests instead of each paying its own."""
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queued.append((work, done))
        async with self._write_lock:
            if not done.done():
                group, self._queued = self._queued, []
                # Shielded: should this caller be cancelled, the others still get answers.
                await asyncio.shield(self._commit_group(group))
        return await done

    async def _commit_group(
        self, group: list[tuple[Callable[[Tx], Awaitable[Any]], asyncio.Future[Any]]]
    ) -> None:
        try:
            outcomes = await _on_thread(self._writer, _in_group, [work for work, _ in group])
        except Exception as exc:  # the transaction itself failed: nothing was committed
            outcomes = [(False, exc)] * len(group)
        except BaseException as exc:  # interrupted: nobody may wait for an answer forever
            for _, done in group:
                if not done.done():
                    done.set_exception(RuntimeError("the write was interrupted"))
            raise exc
        for (_, done), (ok, value) in zip(group, outcomes, strict=True):
            if done.done():  # its caller was cancelled while waiting
                continue
            if ok:
                done.set_result(value)
            else:
                done.set_exception(value)

    # Reads outside a transaction expect no constraint to fail: any error of the database is
    # the database failing, reported as the backend-neutral DatabaseError.
    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        try:
            return await _on_thread(self._reader, _fetchall, sql, params)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(str(exc)) from exc

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        try:
            return await _on_thread(self._reader, _fetchone, sql, params)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(str(exc)) from exc

    async def fetchval(self, sql: str, params: Params = ()) -> Any:
        try:
            return await _on_thread(self._reader, _fetchval, sql, params)
        except sqlite3.DatabaseError as exc:
            raise DatabaseError(str(exc)) from exc


async def _on_thread(conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(sqlite3_connection, *args)` on the connection's own thread, as one step that
    no other request's statement can interleave with. aiosqlite queues work to that thread
    with `_execute`; its public execute helpers are built the same way."""
    # aiosqlite leaves `_execute` unannotated; this is the type it has (a string: the
    # alias built at run time cost 2 µs a call, on every read and write).
    execute = cast("Callable[[Callable[[], T]], Awaitable[T]]", conn._execute)
    return await execute(lambda: fn(conn._conn, *args))


def _fetchall(conn: sqlite3.Connection, sql: str, params: Params) -> list[sqlite3.Row]:
    cur = conn.execute(sql, params)
    try:
        return cur.fetchall()
    finally:
        cur.close()


def _fetchone(conn: sqlite3.Connection, sql: str, params: Params) -> sqlite3.Row | None:
    cur = conn.execute(sql, params)
    try:
        row: sqlite3.Row | None = cur.fetchone()
        return row
    finally:
        # Closing resets the statement, which ends its read snapshot before anyone else reads.
        cur.close()


def _fetchval(conn: sqlite3.Connection, sql: str, params: Params) -> Any:
    row = _fetchone(conn, sql, params)
    return None if row is None else row[0]


def _execute(conn: sqlite3.Connection, sql: str, params: Params) -> int:
    cur = conn.execute(sql, params)
    try:
        return cur.rowcount
    finally:
        cur.close()


def _executemany(conn: sqlite3.Connection, sql: str, rows: list[Params]) -> None:
    conn.executemany(sql, rows).close()


def _in_group(
    conn: sqlite3.Connection, works: list[Callable[[Tx], Awaitable[Any]]]
) -> list[tuple[bool, Any]]:
    """One transaction for several writes, each in a savepoint: (True, result) or
    (False, exception) per write, in order."""
    if conn.in_transaction:
        # Left open by a task cancelled mid-transaction (see Database._begin): never committed.
        log.warning("rolling back a transaction abandoned by a cancelled task")
        conn.execute("ROLLBACK")
    outcomes: list[tuple[bool, Any]] = []
    tx = _ThreadTx(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for work in works:
            conn.execute("SAVEPOINT write")
            try:
                outcomes.append((True, _run_to_end(work, tx)))
            except Exception as exc:
                conn.execute("ROLLBACK TO write")
                outcomes.append((False, exc))
            conn.execute("RELEASE write")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return outcomes


async def _migrate(conn: aiosqlite.Connection) -> None:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    current = int(row[0]) if row else 0
    for version in range(current, len(MIGRATIONS)):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split(sqlite_migration(MIGRATIONS[version])):
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version={version + 1}")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")


def _split(script: str) -> Iterable[str]:
    """Split a migration into statements; triggers contain ';' so complete_statement decides."""
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                yield buf.strip()
            buf = ""
    if buf.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buf.strip()[:60]}")


async def open_database(
    url: str | None, path: Path, *, clock: Callable[[], datetime] = utcnow
) -> Database:
    """The hub's database: PostgreSQL at `url` (postgresql://…), else the SQLite file `path`.
    DatabaseDamaged or DatabaseUnreachable (hub.store.sql) say why it cannot be opened.

    On PostgreSQL as on SQLite, a mark in the data folder says this node has held data in
    the database: from then on a database found empty is a loss to restore, not a new hub."""
    if not url:
        return await SqliteDatabase.open(path, clock=clock)
    from .store.postgres import PostgresDatabase  # asyncpg only where PostgreSQL is used

    path.parent.mkdir(parents=True, exist_ok=True)  # the node's folder: keys, media, the mark
    mark = path.with_name(POSTGRES_MARK)
    marker = _in_use_marker(mark)
    held_since = marker.read_text(encoding="utf-8").strip() if marker.exists() else None
    db = await PostgresDatabase.open(url, clock=clock, held_since=held_since)
    await asyncio.to_thread(_mark_in_use, mark, clock())
    return db


#: Named beside the SQLite file's in-use mark, for a node whose database is on PostgreSQL.
POSTGRES_MARK = "hub.postgresql"
