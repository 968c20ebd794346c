"""bench/faults.py must not rot: its audit counts what it says it counts, its line cuts and
holds bytes, and a short run of its kills against a real hub and real agents finds nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.faults import (
    Bench,
    Link,
    Sent,
    audit,
    audit_plays,
    corrupt_files,
    file_of,
    wav_complete,
)
from tests.e2e import tone_bytes

T0 = datetime(2026, 3, 1, 1, 0, tzinfo=UTC)
DEVICE = "dev-a"
STREAM = "s1"


def _at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def _sent(**extra: Any) -> dict[str, Sent]:
    bulletins = {
        "b1": Sent("b1", "audio", frozenset({DEVICE}), T0, media="0" * 64),
        "b2": Sent("b2", "text", frozenset({DEVICE}), T0 + timedelta(hours=1), text="x"),
        "other": Sent("other", "text", frozenset({"dev-b"}), T0, text="y"),
    }
    bulletins.update(extra)
    return bulletins


def _play(seq: int | None, bulletin: str = "b1", at: float = 10.0) -> dict[str, Any]:
    return {"seq": seq, "bulletin_id": bulletin, "started_at": _at(at)}


def _hub(seq: int, bulletin: str = "b1", at: float = 10.0, **extra: Any) -> dict[str, Any]:
    return {"stream": STREAM, "seq": seq, "bulletin_id": bulletin, "started_at": _at(at), **extra}


def test_a_clean_record_has_nothing_lost_doubled_or_unverified() -> None:
    plays = [_play(1), _play(3, at=20.0)]
    credited = [_hub(1), _hub(3, at=20.0), _hub(2, at=15.0)]  # 2: a play the agent pruned
    found = audit_plays(DEVICE, plays, set(), STREAM, Counter({"b1": 3}), credited, [], _sent())
    assert (found.lost, found.double, found.unverified) == ([], [], [])
    assert found.credited == 3


@pytest.mark.parametrize(
    ("plays", "outbox", "logged", "credited", "refused", "words"),
    [
        ([_play(None)], set(), {}, [], [], "still open"),
        ([_play(4)], {4}, {}, [], [], "still in the outbox"),
        ([_play(4)], set(), {}, [], [_hub(4, reason="in_future")], "refused (in_future)"),
        ([_play(4)], set(), {}, [], [], "never reached the hub"),
        ([], set(), {"b1": 2}, [_hub(1)], [], "the log shows 2 starts"),
        # A play the hub holds under another stream (a rebuilt database) is not this one.
        ([_play(4)], set(), {}, [{**_hub(4), "stream": "old"}], [], "never reached"),
    ],
)
def test_each_way_a_play_is_lost_is_counted(
    plays: list[dict[str, Any]],
    outbox: set[int],
    logged: dict[str, int],
    credited: list[dict[str, Any]],
    refused: list[dict[str, Any]],
    words: str,
) -> None:
    found = audit_plays(DEVICE, plays, outbox, STREAM, Counter(logged), credited, refused, _sent())
    assert len(found.lost) == 1 and words in found.lost[0], found.lost


def test_one_airing_stored_twice_is_double_counted() -> None:
    same_start = audit_plays(DEVICE, [], set(), STREAM, Counter(), [_hub(1), _hub(2)], [], _sent())
    assert len(same_start.double) == 1 and "credited 2 times" in same_start.double[0]
    both_tables = audit_plays(
        DEVICE,
        [],
        set(),
        STREAM,
        Counter(),
        [_hub(1)],
        [_hub(1, at=30.0, reason="too_long")],
        _sent(),
    )
    assert len(both_tables.double) == 1 and "stored 2 times" in both_tables.double[0]


def test_an_airing_of_what_was_never_sent_or_not_yet_published_is_unverified() -> None:
    found = audit_plays(
        DEVICE,
        [_play(7, "forged"), _play(8, "b2", at=5.0)],  # b2 published an hour after T0
        set(),
        STREAM,
        Counter(),
        [_hub(7, "forged"), _hub(8, "b2", at=5.0), _hub(9, "other")],
        [],
        _sent(),
    )
    assert len(found.unverified) == 5, found.unverified
    assert sum("never sent" in line for line in found.unverified) == 3


def test_an_airings_file_is_known_by_its_name() -> None:
    """The open-file check finds each airing's own file among those open: its object by
    sha256, its speech by the key of its text."""
    from edge_agent.speech import EspeakEngine, speech_key

    audio = Sent("a", "audio", frozenset({DEVICE}), T0, media="ab" * 32)
    text = Sent("t", "text", frozenset({DEVICE}), T0, text="Lũ về")
    spoken = speech_key(EspeakEngine().engine_id, "Lũ về")
    assert file_of(Path("cache/objects") / ("ab" * 32), audio)
    assert not file_of(Path("cache/objects") / ("cd" * 32), audio)
    assert file_of(Path("cache/derived") / f"{spoken}.wav", text)
    assert not file_of(Path("cache/derived") / f"{spoken}.wav", audio)
    assert not file_of(Path("cache/objects") / ("ab" * 32), text)


def test_corrupt_files_names_every_half_written_or_wrong_file(tmp_path: Path) -> None:
    objects = tmp_path / "cache" / "objects"
    partial = tmp_path / "cache" / "partial"
    derived = tmp_path / "cache" / "derived"
    for folder in (objects, partial, derived):
        folder.mkdir(parents=True)
    good = b"verified bytes"
    (objects / hashlib.sha256(good).hexdigest()).write_bytes(good)
    (partial / f"{'a' * 64}.part").write_bytes(b"resumable")
    speech = tone_bytes(tmp_path, "speech", 0.1)
    (derived / "k.wav").write_bytes(speech)
    assert corrupt_files(tmp_path) == []

    (objects / ("b" * 64)).write_bytes(b"not what the name says")
    (derived / "cut.wav").write_bytes(speech[:-10])
    (tmp_path / "speech-1234.tmp.wav").write_bytes(b"RIFF")
    (tmp_path / ".replay-floor.json.77.tmp").write_text("{")
    (tmp_path / f"{'c' * 64}.part").write_bytes(b"")
    found = corrupt_files(tmp_path)
    assert len(found) == 5, found
    assert wav_complete(speech) and not wav_complete(speech[:-10])


async def test_the_line_paces_cuts_and_holds_bytes() -> None:
    payload = os.urandom(256 * 1024)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(1)
        writer.write(payload)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    link = Link(server.sockets[0].getsockname()[1], rate=4_000_000)
    await link.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        writer.write(b"?")
        assert await reader.read() == payload
        assert link.bytes_down == len(payload)
        writer.close()

        link.blackhole()  # held, not lost: the bytes come once the line is back
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        writer.write(b"?")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.readexactly(1), 0.3)
        link.restore()
        assert await asyncio.wait_for(reader.read(), 10) == payload
        writer.close()

        link.cut()  # refused and reset from now on
        reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
        writer.write(b"?")
        try:
            got = await asyncio.wait_for(reader.read(), 10)
        except ConnectionResetError:
            got = b""
        assert got == b""
        writer.close()
    finally:
        await link.close()
        server.close()


@pytest.mark.timeout(120)
async def test_a_short_run_of_kills_finds_nothing(tmp_path: Path) -> None:
    bench = Bench(tmp_path, seed=7, blackhole_s=1.0)
    try:
        await bench.setup()
        await bench.agent_kills(3, phases=("download", "speech", "item start"))
        await bench.hub_kills(1)
        await bench.close_the_day()
        found = audit(bench)
    finally:
        await bench.close()
    assert bench.report.failures == []
    assert (found.corrupt, found.lost, found.double, found.unverified) == ([], [], [], [])
    assert found.credited >= 6 and found.files_checked >= 1


def test_the_bench_states_its_flags() -> None:
    done = subprocess.run(
        [sys.executable, "bench/faults.py", "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    for flag in ("--agent-kills", "--hub-kills", "--seed", "--quick"):
        assert flag in done.stdout
