"""AgentStore: replay defence, exactly-once plays, crash recovery, a bounded outbox."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.scheduler_types import Suspended
from edge_agent.store import (
    FLOOR_FILE,
    MIGRATIONS,
    AgentStore,
    SeenCommand,
    StaleManifest,
    UnknownPlay,
)
from loa_contract import (
    BulletinKind,
    CommandDocument,
    DeviceKind,
    EmergencyStart,
    HealthSample,
    HubSigner,
    Manifest,
    ManifestBulletin,
    PlayOutcome,
    Priority,
    ProofOfPlay,
    Schedule,
    Scope,
    TrustedKeys,
)

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2025, 3, 1, 1, 0, tzinfo=UTC)


def bulletin(bid: str = "b1", priority: Priority = Priority.EMERGENCY) -> ManifestBulletin:
    return ManifestBulletin(
        id=bid,
        title="Cảnh báo bão",
        kind=BulletinKind.TEXT,
        priority=priority,
        text="Bão số 3 đổ bộ",
        schedule=Schedule(valid_from=T0, valid_until=T0 + timedelta(hours=6)),
    )


def manifest(version: int) -> Manifest:
    return Manifest(
        device_id="dev-1",
        version=version,
        issued_at=T0,
        expires_at=T0 + timedelta(days=7),
        device_kind=DeviceKind.SPEAKER,
        commune="xa-a",
        windows=[],
        volume=70,
        profile="speaker",
        bulletins=[bulletin("n1", Priority.NORMAL)],
    )


def health(at: datetime = T0) -> dict[str, object]:
    return {
        "at": at,
        "cpu_percent": 3.5,
        "memory_used_bytes": 1,
        "memory_total_bytes": 2,
        "filesystem_avail_bytes": 3,
        "filesystem_size_bytes": 4,
        "boot_time_seconds": 5.0,
        "player_state": "idle",
        "volume": 70,
    }


@pytest.fixture
async def store(tmp_path: Path):
    s = await AgentStore.open(tmp_path / "agent.sqlite3")
    yield s
    await s.close()


async def play_once(
    s: AgentStore, bid: str = "b1", slot: str = "w:2025-03-01T08:00", counts: bool = True
) -> ProofOfPlay:
    play_id = await s.begin_play(bid, slot, Priority.NORMAL, BulletinKind.AUDIO, T0)
    return await s.finish_play(
        play_id, T0 + timedelta(seconds=90), PlayOutcome.COMPLETED, 90.0, counts
    )


# ---------------------------------------------------------------- schema


async def test_schema_is_versioned_and_refuses_newer(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path)
    await s.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer"):
        await AgentStore.open(path)


# ---------------------------------------------------------------- manifest


async def test_manifest_replay_refused_and_highest_version_survives(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path)
    assert await s.stored_manifest() is None
    assert await s.trusted_version() == 0
    await s.save_manifest(manifest(5), b'{"envelope": 5}')
    with pytest.raises(StaleManifest):
        await s.save_manifest(manifest(5), b"equal")
    with pytest.raises(StaleManifest):
        await s.save_manifest(manifest(4), b"lower")
    await s.close()

    s = await AgentStore.open(path)
    got = await s.stored_manifest()
    assert got is not None
    assert got[0] == manifest(5)
    assert got[1] == b'{"envelope": 5}'
    await s.close()

    # Losing the manifest row (a bad sector, a bug) must not reopen the replay window.
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM manifest")
        with pytest.raises(sqlite3.IntegrityError):
            db.execute("UPDATE counters SET value = 1 WHERE name = 'manifest_version'")
    s = await AgentStore.open(path)
    assert await s.stored_manifest() is None
    assert await s.trusted_version() == 5
    with pytest.raises(StaleManifest):
        await s.save_manifest(manifest(3), b"old")
    await s.save_manifest(manifest(6), b"new")
    assert await s.trusted_version() == 6
    await s.close()


# ---------------------------------------------------------------- emergencies, commands


async def test_emergencies_and_cancels_persist(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path)
    expires = T0 + timedelta(minutes=5)
    await s.command_seen("c1", expires, now=T0, hold=bulletin("e1"))
    await s.command_seen("c2", expires, now=T0, hold=bulletin("e2"))
    await s.close()
    s = await AgentStore.open(path)
    assert [b.id for b in await s.emergencies()] == ["e1", "e2"]
    await s.cancel("e1", now=T0)
    assert await s.cancelled() == frozenset({"e1"})
    assert [b.id for b in await s.emergencies()] == ["e2"]
    # Cancels are forgotten after a few days.
    await s.cancel("e2", now=T0 + timedelta(days=8))
    assert await s.cancelled() == frozenset({"e2"})
    await s.close()


async def test_command_seen_detects_replay_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path)
    expires = T0 + timedelta(minutes=5)
    assert await s.command_seen("c1", expires, now=T0) is False
    assert await s.command_seen("c1", expires, now=T0) is True
    await s.close()
    s = await AgentStore.open(path)
    assert await s.command_seen("c1", expires, now=T0 + timedelta(minutes=10)) is True
    # Long expired ids are pruned; such a command is refused for its expiry anyway.
    assert await s.command_seen("c2", expires, now=T0 + timedelta(days=3)) is False
    assert await s.command_seen("c1", expires, now=T0 + timedelta(days=3)) is False
    await s.close()


async def test_an_emergency_command_and_its_bulletin_are_kept_in_one_commit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path)
    expires = T0 + timedelta(minutes=5)
    assert await s.command_seen("c1", expires, now=T0, hold=bulletin("e1")) is False
    await s.close()
    s = await AgentStore.open(path)
    assert [b.id for b in await s.emergencies()] == ["e1"]
    # A replay holds nothing, even after the emergency was cancelled and dropped.
    await s.cancel("e1", now=T0)
    assert await s.command_seen("c1", expires, now=T0, hold=bulletin("e1")) is True
    assert await s.emergencies() == []
    await s.close()


async def test_a_play_and_the_commands_that_started_it_commit_together(
    tmp_path: Path,
) -> None:
    """begin_play(seen=...) records the command ids (and holds the emergency) as
    command_seen does, in the play's own commit; one already recorded is left as it was."""
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path)
    # Commands are pruned a day after they expire, by the real clock (begin_play takes no
    # `now`): these expire from now on.
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    assert await s.command_seen("c0", expires) is False
    seen = [
        SeenCommand("c1", expires, bulletin("e1"), "signed frame of c1"),
        SeenCommand("c0", expires + timedelta(minutes=9)),  # a replay: nothing changes
        SeenCommand("c2", expires + timedelta(minutes=1)),
    ]
    play = await s.begin_play(
        "e1", "emergency", Priority.EMERGENCY, BulletinKind.TEXT, T0, seen=seen
    )
    await s.close()
    s = await AgentStore.open(path)
    assert await s.seen_commands() == {
        "c0": expires,
        "c1": expires,
        "c2": expires + timedelta(minutes=1),
    }
    assert [b.id for b in await s.emergencies()] == ["e1"]
    assert set(json.loads((tmp_path / FLOOR_FILE).read_text())["commands"]) == {"c0", "c1", "c2"}
    assert await s.emergency_airings(T0) == (frozenset({"e1"}), {})
    proof = await s.finish_play(play, T0 + timedelta(seconds=4), PlayOutcome.COMPLETED, 4.0, True)
    assert proof.bulletin_id == "e1"
    # A play that fails to be written writes none of its commands either.
    with pytest.raises(sqlite3.IntegrityError):
        await s.begin_play(
            None,  # type: ignore[arg-type]  # NOT NULL: the play cannot be written
            "emergency",
            Priority.EMERGENCY,
            BulletinKind.TEXT,
            T0,
            seen=[SeenCommand("c3", expires, bulletin("e3"), "frame")],
        )
    assert "c3" not in await s.seen_commands()
    assert [b.id for b in await s.emergencies()] == ["e1"]
    assert "c3" not in json.loads((tmp_path / FLOOR_FILE).read_text())["commands"]
    await s.close()


async def test_seen_commands_are_loaded_with_their_expiry(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path)
    expires = T0 + timedelta(minutes=5)
    await s.command_seen("c1", expires, now=T0)
    await s.command_seen("c2", expires + timedelta(minutes=1), now=T0)
    await s.close()
    s = await AgentStore.open(path)
    assert await s.seen_commands() == {"c1": expires, "c2": expires + timedelta(minutes=1)}
    await s.close()


async def test_emergency_airings_remember_the_first_start_and_the_last_full_airing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path)
    cut = await s.begin_play("e1", "emergency", Priority.EMERGENCY, BulletinKind.TEXT, T0)
    await s.finish_play(cut, T0 + timedelta(seconds=2), PlayOutcome.PREEMPTED, 2.0, False)
    assert await s.emergency_airings(T0) == (frozenset({"e1"}), {})
    full = await s.begin_play(
        "e1", "emergency", Priority.EMERGENCY, BulletinKind.TEXT, T0 + timedelta(seconds=9)
    )
    ended = T0 + timedelta(seconds=13)
    await s.finish_play(full, ended, PlayOutcome.COMPLETED, 4.0, True)
    # An ordinary item is no emergency arrival.
    await s.begin_play("n1", "w:2025-03-01T08:00", Priority.NORMAL, BulletinKind.AUDIO, T0)
    await s.close()
    s = await AgentStore.open(path)
    assert await s.emergency_airings(T0) == (frozenset({"e1"}), {"e1": ended})
    # Forgotten with the air counts, long after.
    assert await s.emergency_airings(T0 + timedelta(days=30)) == (frozenset(), {})
    await s.close()


async def test_upgrade_keeps_emergencies_already_begun(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        old.executescript(script)
    started, ended = (
        T0.isoformat(timespec="microseconds"),
        (T0 + timedelta(seconds=4)).isoformat(timespec="microseconds"),
    )
    old.execute(
        "INSERT INTO plays (bulletin_id, slot, priority, kind, started_at, ended_at, outcome,"
        " position_s, counts, seq) VALUES ('e1', 'emergency', 'emergency', 'text', ?, ?,"
        " 'completed', 4.0, 1, 1)",
        (started, ended),
    )
    old.execute(
        "INSERT INTO aired (bulletin_id, slot, count, slot_time) VALUES ('e2', 'emergency', 1, ?)",
        (started,),
    )
    old.execute("PRAGMA user_version = 2")
    old.commit()
    old.close()
    s = await AgentStore.open(path)
    started_ids, last = await s.emergency_airings(T0)
    assert started_ids == frozenset({"e1", "e2"})
    assert last == {"e1": T0 + timedelta(seconds=4)}
    await s.close()


async def test_report_stream_is_new_per_file_and_legacy_for_old_files(tmp_path: Path) -> None:
    one = await AgentStore.open(tmp_path / "one.sqlite3")
    two = await AgentStore.open(tmp_path / "two.sqlite3")
    stream = await one.report_stream()
    assert len(stream) == 32 and stream != await two.report_stream()
    await one.close()
    one = await AgentStore.open(tmp_path / "one.sqlite3")
    assert await one.report_stream() == stream, "it is the file's, kept across restarts"
    await one.close()
    await two.close()
    # A file that numbered reports before streams existed keeps "" for them.
    old = sqlite3.connect(tmp_path / "old.sqlite3")
    old.executescript(MIGRATIONS[0] + "\nUPDATE counters SET value = 7 WHERE name = 'seq';")
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()
    upgraded = await AgentStore.open(tmp_path / "old.sqlite3")
    assert await upgraded.report_stream() == ""
    await upgraded.close()


# ---------------------------------------------------------------- plays


async def test_finish_play_is_idempotent(store: AgentStore) -> None:
    play_id = await store.begin_play(
        "b1", "w:2025-03-01T08:00", Priority.PRIORITY, BulletinKind.AUDIO, T0
    )
    end = T0 + timedelta(seconds=42)
    first = await store.finish_play(play_id, end, PlayOutcome.COMPLETED, 42.0, True)
    again = await store.finish_play(
        play_id, end + timedelta(seconds=5), PlayOutcome.STOPPED, 1.0, True
    )
    assert again == first
    assert first.outcome is PlayOutcome.COMPLETED
    assert first.started_at == T0 and first.ended_at == end
    assert await store.pending() == [first]
    assert await store.aired_counts(T0 - timedelta(days=1)) == {("b1", "w:2025-03-01T08:00"): 1}
    with pytest.raises(UnknownPlay):
        await store.finish_play(9999, end, PlayOutcome.COMPLETED, 0.0, True)


async def test_finish_play_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path)
    play_id = await s.begin_play("b1", "emergency", Priority.EMERGENCY, BulletinKind.TEXT, T0)
    await s.close()
    # Occupy the outbox slot the play's number will take, so the transaction fails half-way.
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO outbox (seq, type, body) VALUES (1, 'health', '{}')")
    s = await AgentStore.open(path)
    with pytest.raises(sqlite3.IntegrityError):
        await s.finish_play(play_id, T0, PlayOutcome.COMPLETED, 1.0, True)
    assert await s.aired_counts(T0 - timedelta(days=1)) == {}
    await s.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT seq FROM plays").fetchone()[0] is None
        assert db.execute("SELECT value FROM counters WHERE name='seq'").fetchone()[0] == 0
        db.execute("DELETE FROM outbox")
    s = await AgentStore.open(path)
    proof = await s.finish_play(play_id, T0, PlayOutcome.COMPLETED, 1.0, True)
    assert proof.seq == 1
    assert await s.aired_counts(T0 - timedelta(days=1)) == {("b1", "emergency"): 1}
    await s.close()


async def test_recover_open_plays_as_failed_at_last_heartbeat(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path)
    early = await s.begin_play(
        "b0", "w:2025-03-01T08:00", Priority.NORMAL, BulletinKind.AUDIO, T0 - timedelta(minutes=5)
    )
    await s.finish_play(early, T0, PlayOutcome.COMPLETED, 300.0, True)
    await s.begin_play("b1", "w:2025-03-01T08:00", Priority.NORMAL, BulletinKind.AUDIO, T0)
    await s.heartbeat(T0 + timedelta(seconds=30))
    later = T0 + timedelta(seconds=60)
    await s.begin_play("b2", "t:2025-03-01T08:01", Priority.NORMAL, BulletinKind.AUDIO, later)
    await s.close()  # as if killed: the plays are still open

    s = await AgentStore.open(path)
    recovered = await s.recover_open_plays(T0 + timedelta(hours=1))
    assert [(p.bulletin_id, p.outcome) for p in recovered] == [
        ("b1", PlayOutcome.FAILED),
        ("b2", PlayOutcome.FAILED),
    ]
    assert recovered[0].ended_at == T0 + timedelta(seconds=30)
    assert recovered[0].position_s == 30.0
    assert recovered[1].ended_at == later  # the heartbeat predates it
    assert await s.recover_open_plays(T0 + timedelta(hours=1)) == []
    # A crash does not count as an airing: the slot may give the item another go.
    assert await s.aired_counts(T0 - timedelta(days=1)) == {("b0", "w:2025-03-01T08:00"): 1}
    assert [p.seq for p in await s.pending()] == [1, 2, 3]
    await s.close()


async def test_aired_counts_by_slot_time(store: AgentStore) -> None:
    await play_once(store, "b1", "w:2025-03-01T08:00")
    await play_once(store, "b1", "w:2025-03-01T08:00")
    await play_once(store, "b1", "w:2025-02-20T08:00")
    await play_once(store, "b2", "t:2025-03-01T09:30", counts=False)
    await play_once(store, "e1", "emergency")
    # Slots are local (UTC+7) times: 08:00 on 1 March is 01:00 UTC.
    since = datetime(2025, 3, 1, 0, 30, tzinfo=UTC)
    assert await store.aired_counts(since) == {
        ("b1", "w:2025-03-01T08:00"): 2,
        ("e1", "emergency"): 1,
    }
    assert await store.aired_counts(since + timedelta(hours=1)) == {}


# ---------------------------------------------------------------- suspended, settings


async def test_suspended_and_settings_persist(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path)
    assert await s.suspended() is None
    await s.save_suspended(Suspended("b1", "w:2025-03-01T08:00", 12.5))
    await s.set_setting("volume", "55")
    await s.close()
    s = await AgentStore.open(path)
    assert await s.suspended() == Suspended("b1", "w:2025-03-01T08:00", 12.5)
    assert await s.get_setting("volume") == "55"
    assert await s.get_setting("missing", "x") == "x"
    await s.save_suspended(None)
    await s.set_setting("volume", None)
    assert await s.suspended() is None
    assert await s.get_setting("volume") is None
    await s.close()


# ---------------------------------------------------------------- outbox


async def test_outbox_thins_oldest_health_never_plays(tmp_path: Path) -> None:
    s = await AgentStore.open(tmp_path / "agent.sqlite3", max_health=10)
    plays = [await play_once(s, f"b{i}") for i in range(3)]
    samples = [await s.add_health(health(T0 + timedelta(minutes=i))) for i in range(40)]
    plays.append(await play_once(s, "b-last"))
    backlog = await s.backlog()
    assert backlog["plays"] == 4
    assert 1 <= backlog["health"] <= 10
    pending = await s.pending(1000)
    assert pending[:4] == plays  # plays first, all of them
    kept = [r for r in pending[4:] if isinstance(r, HealthSample)]
    assert len(kept) == backlog["health"]
    assert kept[-1] == samples[-1]  # the newest sample is never the one thinned
    assert [r.seq for r in kept] == sorted(r.seq for r in kept)
    await s.close()


async def test_pending_acknowledge_backlog(store: AgentStore) -> None:
    first = await play_once(store)
    sample = await store.add_health(health())
    second = await play_once(store)
    assert await store.pending() == [first, second, sample]
    assert await store.pending(limit=1) == [first]
    await store.acknowledge([first.seq, sample.seq, 12345])
    assert await store.pending() == [second]
    assert await store.backlog() == {"plays": 1, "health": 0}
    await store.acknowledge([])
    assert await store.backlog() == {"plays": 1, "health": 0}


async def test_health_is_made_durable_before_it_is_handed_out(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path)
    sample = await s.add_health(health())  # committed with synchronous=NORMAL
    assert await s.pending() == [sample]  # ...so this first issues a FULL barrier commit
    await s.close()
    with sqlite3.connect(path) as db:
        synced = db.execute("SELECT value FROM counters WHERE name = 'synced_seq'").fetchone()
    assert synced[0] >= sample.seq


async def test_seqs_unique_and_increasing_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    issued: list[int] = []
    for _round in range(3):
        s = await AgentStore.open(path)
        issued.append((await play_once(s)).seq)
        issued.append((await s.add_health(health())).seq)
        # Acknowledging everything must not let a number be handed out twice.
        await s.acknowledge(r.seq for r in await s.pending())
        await s.close()
    assert issued == list(range(1, 7))
    s = await AgentStore.open(path)
    assert (await s.add_health(health())).seq == 7
    await s.close()


async def test_add_health_rejects_bad_sample_without_burning_a_seq(store: AgentStore) -> None:
    with pytest.raises(ValueError):
        await store.add_health({"at": T0})
    assert (await store.add_health(health())).seq == 1


# ---------------------------------------------------------------- kill -9


CHILD = textwrap.dedent(
    """
    import asyncio, random, sys
    from datetime import UTC, datetime
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from edge_agent.store import AgentStore
    from loa_contract import BulletinKind, PlayOutcome, Priority

    HEALTH = dict(cpu_percent=1.0, memory_used_bytes=1, memory_total_bytes=2,
                  filesystem_avail_bytes=3, filesystem_size_bytes=4, boot_time_seconds=5.0,
                  player_state="playing", volume=50)

    async def main(path, seed):
        rng = random.Random(seed)
        store = await AgentStore.open(Path(path), max_health=20)
        await store.recover_open_plays(datetime.now(UTC))
        print("ready", flush=True)
        while True:
            bid = "b%d" % rng.randrange(4)
            slot = "w:2025-03-0%dT08:00" % rng.randrange(1, 4)
            play_id = await store.begin_play(
                bid, slot, Priority.NORMAL, BulletinKind.AUDIO, datetime.now(UTC))
            if rng.random() < 0.3:
                await store.heartbeat(datetime.now(UTC))
            if rng.random() < 0.3:
                await store.add_health(dict(HEALTH, at=datetime.now(UTC)))
            outcome = rng.choice(list(PlayOutcome))
            counts = rng.random() < 0.7
            for _ in range(rng.choice((1, 1, 2))):
                await store.finish_play(play_id, datetime.now(UTC), outcome, 1.0, counts)
            print("finished", play_id, flush=True)

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def run_and_kill(script: Path, db: Path, seed: int, after: int, jitter: float) -> set[int]:
    """Run the child, SIGKILL it `jitter` seconds after it reported `after` finished plays."""
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db), str(seed)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert proc.stdout is not None
    finished: set[int] = set()
    assert proc.stdout.readline().strip() == "ready"
    while len(finished) < after:
        line = proc.stdout.readline()
        assert line, "the child died on its own"
        finished.add(int(line.split()[1]))
    # Not waiting for anything: the pause only moves the kill to an arbitrary point inside
    # the child's next transactions instead of always just after its print.
    time.sleep(jitter)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return finished


def check_integrity(db_path: Path, finished: set[int]) -> tuple[int, int]:
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        closed = db.execute(
            "SELECT id, bulletin_id, slot, counts, seq FROM plays WHERE seq IS NOT NULL"
        ).fetchall()
        open_ids = {r[0] for r in db.execute("SELECT id FROM plays WHERE seq IS NULL")}
        outbox = dict(db.execute("SELECT seq, type FROM outbox").fetchall())
        aired = {
            (r[0], r[1]): r[2] for r in db.execute("SELECT bulletin_id, slot, count FROM aired")
        }
        counter = db.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()[0]
    # Every play the child saw finish is closed, whatever came after.
    assert finished <= {r[0] for r in closed}
    # Each closed play has exactly one report, under its own number.
    play_seqs = [r[4] for r in closed]
    assert len(play_seqs) == len(set(play_seqs))
    assert all(outbox.get(seq) == "play" for seq in play_seqs)
    assert sum(1 for kind in outbox.values() if kind == "play") == len(closed)
    assert max(outbox, default=0) <= counter
    # ... and was counted once if it counts.
    expected: dict[tuple[str, str], int] = {}
    for _id, bid, slot, counts, _seq in closed:
        if counts:
            expected[(bid, slot)] = expected.get((bid, slot), 0) + 1
    assert aired == expected
    return len(closed), len(open_ids)


def test_kill_9_at_random_moments_loses_and_doubles_nothing(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(root=str(ROOT)))
    db_path = tmp_path / "agent.sqlite3"
    rng = random.Random(20250301)
    finished: set[int] = set()
    for round_no in range(6):
        finished |= run_and_kill(
            script, db_path, seed=round_no, after=rng.randrange(0, 40), jitter=rng.uniform(0, 0.01)
        )
        check_integrity(db_path, finished)

    with sqlite3.connect(db_path) as db:
        open_before = {r[0] for r in db.execute("SELECT id FROM plays WHERE seq IS NULL")}

    async def recover() -> list[ProofOfPlay]:
        s = await AgentStore.open(db_path, max_health=20)
        try:
            return await s.recover_open_plays(datetime.now(UTC))
        finally:
            await s.close()

    recovered = asyncio.run(recover())
    assert len(recovered) == len(open_before)
    assert all(p.outcome is PlayOutcome.FAILED for p in recovered)
    closed, still_open = check_integrity(db_path, finished)
    assert still_open == 0
    assert closed >= len(finished)


# ---------------------------------------------------------------- issue #9: verified state


SIGNER = HubSigner.generate()
KEYS = TrustedKeys([SIGNER.hub_key()])


def signed(m: Manifest) -> bytes:
    return SIGNER.sign(m).model_dump_json().encode()


async def test_the_manifest_obeyed_is_the_verified_envelope_not_the_parsed_copy(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path)
    await s.save_manifest(manifest(3), signed(manifest(3)))
    got = await s.verified_manifest(KEYS, "dev-1")
    assert got.manifest == manifest(3) and got.refused == []
    # Another device's key, or another device's id, verify nothing.
    assert (
        await s.verified_manifest(TrustedKeys([HubSigner.generate().hub_key()]), "dev-1")
    ).manifest is None
    assert (await s.verified_manifest(KEYS, "dev-2")).manifest is None
    await s.close()

    # The parsed copy is edited: refused, and the floor file's signed copy repairs it.
    forged = manifest(3).model_copy(update={"volume": 100})
    with sqlite3.connect(path) as db:
        db.execute("UPDATE manifest SET manifest = ?", (forged.model_dump_json(),))
    s = await AgentStore.open(path)
    got = await s.verified_manifest(KEYS, "dev-1")
    assert got.manifest == manifest(3)
    assert got.refused and "differs" in got.refused[0]
    stored = await s.stored_manifest()
    assert stored is not None and stored[0] == manifest(3)
    await s.close()

    # An older, genuinely signed manifest put back at rest is a replay: not obeyed.
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE manifest SET version = 2, envelope = ?, manifest = ?",
            (signed(manifest(2)), manifest(2).model_dump_json()),
        )
    (tmp_path / FLOOR_FILE).unlink()
    s = await AgentStore.open(path)
    got = await s.verified_manifest(KEYS, "dev-1")
    assert got.manifest is None and "below the trusted 3" in got.refused[0]
    # The hub's signed copy of the trusted version is taken back only when reinstating.
    with pytest.raises(StaleManifest):
        await s.save_manifest(manifest(3), signed(manifest(3)))
    await s.save_manifest(manifest(3), signed(manifest(3)), reinstate=True)
    assert (await s.verified_manifest(KEYS, "dev-1")).manifest == manifest(3)
    await s.close()


async def test_the_replay_floor_outlives_a_lost_emptied_or_damaged_database(
    tmp_path: Path,
) -> None:
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path, device_id="dev-1")
    assert s.rebuilt is None
    await s.save_manifest(manifest(7), signed(manifest(7)))
    await s.command_seen("c1", T0 + timedelta(minutes=5), now=T0)
    await s.close()
    floor = json.loads((tmp_path / FLOOR_FILE).read_text())
    assert floor["manifest_version"] == 7 and "c1" in floor["commands"]
    assert floor["device_id"] == "dev-1"

    for damage in ("empty", "missing", "scribbled"):
        if damage == "empty":
            os.truncate(path, 0)
        elif damage == "missing":
            path.unlink()
        else:
            with path.open("r+b") as f:
                f.write(b"\0" * 100)  # the header: "file is not a database"
        s = await AgentStore.open(path, device_id="dev-1")
        assert s.rebuilt is not None, damage
        assert await s.trusted_version() == 7, damage
        assert await s.command_seen("c1", T0 + timedelta(minutes=5), now=T0) is True
        with pytest.raises(StaleManifest):
            await s.save_manifest(manifest(6), signed(manifest(6)))
        assert (await s.verified_manifest(KEYS, "dev-1")).manifest == manifest(7)
        await s.close()
    kept = [n for n in os.listdir(tmp_path) if n.startswith("agent.sqlite3.damaged-")]
    assert len([n for n in kept if n.endswith("Z")]) == 2  # the empty and the scribbled file

    # The folder enrolled again as another device: the old device's floor is not inherited
    # (the old database would be, as before; a technician removes it when re-enrolling).
    path.unlink()
    s = await AgentStore.open(path, device_id="dev-2")
    assert await s.trusted_version() == 0
    await s.close()
    path.unlink()
    (tmp_path / FLOOR_FILE).unlink()
    s = await AgentStore.open(path, device_id="dev-1")
    await s.save_manifest(manifest(7), signed(manifest(7)))
    await s.close()

    # A damaged floor file costs nothing while the database holds the same.
    (tmp_path / FLOOR_FILE).write_text("{not json")
    s = await AgentStore.open(path, device_id="dev-1")
    assert s.rebuilt is None and await s.trusted_version() == 7
    await s.close()
    assert json.loads((tmp_path / FLOOR_FILE).read_text())["manifest_version"] == 7


async def test_a_floor_copy_half_written_by_a_killed_process_is_removed_at_open(
    tmp_path: Path,
) -> None:
    # A kill -9 between the temp copy's write and its rename (found by bench/faults.py).
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    left = tmp_path / f".{FLOOR_FILE}.{dead.pid}.tmp"
    left.write_text('{"manifest_ver')
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; time.sleep(60)"
    )
    live = tmp_path / f".{FLOOR_FILE}.{writer.pid}.tmp"  # a writer still at work: kept
    live.write_text("{")
    try:
        s = await AgentStore.open(tmp_path / "agent.sqlite3", device_id="dev-1")
        await s.close()
    finally:
        writer.kill()
        await writer.wait()
    assert not left.exists() and live.exists()


async def test_a_held_emergency_is_kept_only_with_its_signed_frame(tmp_path: Path) -> None:
    path = tmp_path / "agent.sqlite3"
    s = await AgentStore.open(path)
    expires = T0 + timedelta(minutes=5)
    frames = {}
    for bid in ("e1", "e2", "e3"):
        command = EmergencyStart(
            command_id=f"c-{bid}",
            scope=Scope(devices=["dev-1"]),
            issued_at=T0,
            expires_at=expires,
            bulletin=bulletin(bid),
        )
        frames[bid] = SIGNER.sign(CommandDocument(command=command)).model_dump_json()
    await s.command_seen("c-e1", expires, now=T0, hold=bulletin("e1"), frame=frames["e1"])
    await s.command_seen("c-e2", expires, now=T0, hold=bulletin("e2"), frame=frames["e2"])
    await s.command_seen("c-e3", expires, now=T0, hold=bulletin("e3"))  # no frame: unverifiable
    await s.close()
    edited = bulletin("e2").model_copy(update={"text": "HACKED"})
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE emergencies SET bulletin = ? WHERE id = 'e2'", (edited.model_dump_json(),)
        )
    s = await AgentStore.open(path)
    held, refused = await s.verified_emergencies(KEYS, "dev-1", "xa-a")
    assert [b.id for b in held] == ["e1"]
    assert len(refused) == 1 and "e2" in refused[0]
    assert [b.id for b in await s.emergencies()] == ["e1"]
    # Addressed elsewhere: refused too.
    held, refused = await s.verified_emergencies(KEYS, "dev-9", "xa-z")
    assert held == [] and refused
    await s.close()
