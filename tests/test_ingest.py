"""Report ingest over a real hub: times in one UTC shape, the batch stored as one write, and
proof of play checked against what the device was sent (hub/play_evidence.py): refused rows
kept with their reason, acknowledged, counted on the device and never in reports."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.appkeys import DB
from hub.cli import main
from hub.db import iso
from hub.device_api import recheck_stored_plays
from hub.testing import HubHarness, health_report, running_hub
from loa_contract import VN_TZ, utcnow
from tests.real_files import wav_bytes
from tests.test_hub_device import WAV, publish
from tests.test_paging import walk


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001")
        await harness.commune("00002")
        yield harness


def play(
    seq: int, started: datetime, bulletin: str = "b1", seconds: float = 30.0
) -> dict[str, Any]:
    return {
        "type": "play",
        "seq": seq,
        "bulletin_id": bulletin,
        "priority": "normal",
        "kind": "text",
        "started_at": started.isoformat(),
        "ended_at": (started + timedelta(seconds=seconds, microseconds=250)).isoformat(),
        "outcome": "completed",
        "position_s": max(0.0, seconds),
    }


async def test_report_times_are_stored_in_one_utc_shape(hub: HubHarness) -> None:
    """Times arrive in any offset; the hub stores iso()'s UTC text, so they sort as text."""
    dev = await hub.new_device()
    bulletin = await publish(hub)
    local = datetime(2026, 5, 1, 8, 0, 0, tzinfo=VN_TZ)
    await hub.backdate(local - timedelta(days=1), dev.id, bulletin["id"])
    reports = [play(1, local, bulletin["id"]), health_report(2, local + timedelta(minutes=1))]
    status, ack = await dev.report(reports)
    assert status == 200 and ack == {"acked": [1, 2]}
    db = hub.app[DB]
    row = await db.fetchone("SELECT started_at, ended_at, received_at FROM plays")
    assert tuple(row)[:2] == (
        "2026-05-01T01:00:00.000000+00:00",
        "2026-05-01T01:00:30.000250+00:00",
    )
    assert row["received_at"].endswith("+00:00") and len(row["received_at"]) == 32
    assert (await db.fetchone("SELECT at FROM health"))[0] == "2026-05-01T01:01:00.000000+00:00"
    device = await db.fetchone("SELECT last_health_at, last_seen FROM devices")
    assert device["last_health_at"] == "2026-05-01T01:01:00.000000+00:00"
    assert device["last_seen"] == row["received_at"]


async def test_invalid_json_is_400_and_a_bad_report_422_storing_nothing(hub: HubHarness) -> None:
    dev = await hub.new_device()
    headers = {**dev.headers, "Content-Type": "application/json"}
    for raw in (b"", b"null", b'{"reports": [', b"\xff\xfe"):
        resp = await hub.client.post("/api/v1/device/reports", data=raw, headers=headers)
        assert resp.status == 400 and (await resp.json())["error"] == "bad_json", raw
    bad = play(2, datetime(2026, 5, 1, tzinfo=VN_TZ))
    bad["started_at"] = "2026-05-01T08:00:00"  # no offset: refused, never guessed
    status, body = await dev.report([play(1, datetime(2026, 5, 1, tzinfo=VN_TZ)), bad])
    assert status == 422 and body["detail"][0]["field"] == "reports[1].play.started_at"
    assert (await hub.app[DB].fetchone("SELECT COUNT(*) FROM plays"))[0] == 0


async def refused_rows(hub: HubHarness, device: str) -> dict[int, str]:
    rows = await hub.call("GET", f"/api/v1/refused-reports?device={device}")
    return {r["seq"]: r["reason"] for r in rows}


async def stored_seqs(hub: HubHarness, device: str) -> list[int]:
    return sorted(p["seq"] for p in await hub.call("GET", f"/api/v1/plays?device={device}"))


async def test_a_batch_of_good_and_unbelievable_plays(hub: HubHarness) -> None:
    """Good rows are stored, the others refused with their reasons, all acknowledged."""
    dev = await hub.new_device("00001")
    board = await hub.new_device("00001", kind="board")
    mine = (await publish(hub))["id"]
    theirs = (await publish(hub, targets={"communes": ["00002"]}))["id"]
    elsewhere = await hub.new_device("00002")
    direct = (await publish(hub, targets={"devices": [elsewhere.id]}))["id"]
    wav = (await hub.upload(WAV))["sha256"]
    audio = (await publish(hub, kind="audio", media=wav, text=None))["id"]
    draft = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json={
            "title": "Chưa duyệt",
            "kind": "text",
            "priority": "normal",
            "text": "Bản nháp",
            "targets": {"communes": ["00001"]},
            "schedule": {
                "valid_from": utcnow().isoformat(),
                "valid_until": (utcnow() + timedelta(days=1)).isoformat(),
            },
        },
        expect=201,
    )
    emergency = await hub.call(
        "POST", "/api/v1/emergencies", json={"title": "Lũ quét", "text": "Sơ tán ngay"}, expect=201
    )
    now = utcnow()
    just = now - timedelta(seconds=40)
    reports = [
        play(1, just, mine),
        {**play(2, just, emergency["id"]), "priority": "emergency"},
        play(3, just, theirs),  # another commune's bulletin
        play(4, just, direct),  # another device's own bulletin
        play(5, just, draft["id"]),  # never published
        play(6, just, "no-such-bulletin"),
        play(7, just, "__test_tone__"),
        play(8, just, mine, seconds=-10),  # ends before it starts
        play(9, now + timedelta(days=365), mine),  # a year ahead
        play(10, datetime(1970, 1, 1, tzinfo=UTC), mine),
        {**play(11, just, mine), "position_s": 1e308},
        {**play(12, just, mine), "position_s": float("inf")},
        play(13, now - timedelta(minutes=4), mine, seconds=200),  # "Xin chào" is 2 words
        {**play(14, just, mine), "priority": "emergency"},  # claims more than it was
        {**play(15, just, mine), "kind": "audio"},
        {**play(16, just, audio), "kind": "audio"},
        health_report(17, now),
    ]
    status, ack = await dev.report(reports)
    assert status == 200 and ack == {"acked": list(range(1, 18))}
    assert await stored_seqs(hub, dev.id) == [1, 2, 16]
    assert await refused_rows(hub, dev.id) == {
        3: "not_sent_to_device",
        4: "not_sent_to_device",
        5: "not_sent_to_device",
        6: "unknown_bulletin",
        7: "unknown_bulletin",
        8: "ends_before_start",
        9: "in_future",
        10: "before_enrollment",
        11: "bad_position",
        12: "bad_position",
        13: "too_long",
        14: "priority_mismatch",
        15: "kind_mismatch",
    }
    # A board holds no audio: it was never sent one.
    status, ack = await board.report([{**play(1, just, audio), "kind": "audio"}])
    assert status == 200 and ack == {"acked": [1]}
    assert await refused_rows(hub, board.id) == {1: "not_sent_to_device"}

    # Each refused row keeps the row as sent and a sentence saying why.
    rows = await hub.call("GET", f"/api/v1/refused-reports?device={dev.id}&reason=too_long")
    assert [r["seq"] for r in rows] == [13]
    assert rows[0]["report"]["bulletin_id"] == mine and rows[0]["report"]["position_s"] == 200
    assert "lasted 200 s" in rows[0]["detail"]

    # The device's status counts them and names the last; the verdict warns.
    device = await hub.call("GET", f"/api/v1/devices/{dev.id}")
    assert device["refused_reports"] == 13
    assert device["last_refused_reason"] == "kind_mismatch"
    assert "audio" in device["last_refused_detail"]
    assert device["verdict"] == "warning" and "reports_refused" in device["verdict_reasons"]

    # The month's report counts the two credible airings only.
    month = now.astimezone(VN_TZ).strftime("%Y-%m")
    report = await hub.call("GET", f"/api/v1/reports/monthly?month={month}&commune=00001")
    assert report["totals"]["airings"] == 3  # 1, 2 and 16 (the audio airing of 30 s)
    assert report["totals"]["seconds"] < 100


async def test_an_audio_airing_longer_than_its_decoded_file_is_refused(hub: HubHarness) -> None:
    """The hub decodes each audio file at upload (hub/probe.py): an airing of it may last its
    duration plus the slack, not the validity window."""
    dev = await hub.new_device("00001")
    sound = await hub.upload(wav_bytes(2.0))
    assert sound["duration_s"] == pytest.approx(2.0, abs=0.05)
    audio = (await publish(hub, kind="audio", media=sound["sha256"], text=None))["id"]
    await hub.backdate(utcnow() - timedelta(hours=1), dev.id, audio)
    just = utcnow() - timedelta(minutes=20)
    reports = [
        {**play(1, just, audio, seconds=2.0), "kind": "audio"},
        {**play(2, just, audio, seconds=31.0), "kind": "audio"},  # 2 s + 30 s of slack
        {**play(3, just, audio, seconds=40.0), "kind": "audio"},
        {**play(4, just, audio, seconds=600.0), "kind": "audio"},  # within its validity
        health_report(5, utcnow()),
    ]
    status, ack = await dev.report(reports)
    assert status == 200 and ack == {"acked": [1, 2, 3, 4, 5]}
    assert await stored_seqs(hub, dev.id) == [1, 2]
    assert await refused_rows(hub, dev.id) == {3: "too_long", 4: "too_long"}
    rows = await hub.call("GET", f"/api/v1/refused-reports?device={dev.id}&reason=too_long")
    detail = next(r["detail"] for r in rows if r["seq"] == 4)
    assert "lasted 600 s; its file plays 2.0 s (decoded at upload), at most 32 s" in detail
    device = await hub.call("GET", f"/api/v1/devices/{dev.id}")
    assert device["verdict"] == "warning" and "reports_refused" in device["verdict_reasons"]


async def test_a_retry_is_judged_once(hub: HubHarness) -> None:
    """Idempotence by (device, stream, seq) holds for refused rows too: a retried batch
    counts nothing twice, and a seq keeps its first verdict."""
    dev = await hub.new_device()
    mine = (await publish(hub))["id"]
    just = utcnow() - timedelta(seconds=40)
    batch = [play(1, just, mine), play(2, just, "ghost"), play(3, just, "ghost")]
    for _ in range(2):
        status, ack = await dev.report(batch)
        assert status == 200 and ack == {"acked": [1, 2, 3]}
    assert await stored_seqs(hub, dev.id) == [1]
    assert await refused_rows(hub, dev.id) == {2: "unknown_bulletin", 3: "unknown_bulletin"}
    assert (await hub.call("GET", f"/api/v1/devices/{dev.id}"))["refused_reports"] == 2
    # Another stream is another sequence space: its seq 2 is a new airing.
    assert (await dev.report([play(2, just, mine)], "ab" * 16))[0] == 200
    assert await stored_seqs(hub, dev.id) == [1, 2]

    # A seq keeps its first verdict. Seq 1 was stored: after the device is re-enrolled (its
    # airings now predate its enrollment) a retry does not refuse it. Seq 2 was refused: the
    # same seq naming a good bulletin is not stored.
    await hub.app[DB].execute(
        "UPDATE devices SET enrolled_at = ? WHERE id = ?",
        (iso(utcnow() + timedelta(hours=1)), dev.id),
    )
    assert (await dev.report([play(1, just, mine)]))[0] == 200
    await hub.backdate(just - timedelta(hours=1), dev.id)
    assert (await dev.report([play(2, just, mine)]))[0] == 200
    # So too whether a batch's seqs lie close together (its earlier refusals read as one
    # range) or far apart (looked up one by one).
    assert (await dev.report([play(3, just, mine), play(4, just, mine)]))[0] == 200
    assert (await dev.report([play(3, just, mine), play(10**12, just, mine)]))[0] == 200
    plays = await hub.app[DB].fetchall("SELECT seq, stream FROM plays ORDER BY seq")
    assert [tuple(p) for p in plays] == [(1, ""), (2, "ab" * 16), (4, ""), (10**12, "")]
    assert await refused_rows(hub, dev.id) == {2: "unknown_bulletin", 3: "unknown_bulletin"}
    assert (await hub.call("GET", f"/api/v1/devices/{dev.id}"))["refused_reports"] == 2


async def test_a_value_that_cannot_be_stored_is_a_422_naming_it(hub: HubHarness) -> None:
    dev = await hub.new_device()
    mine = (await publish(hub))["id"]
    just = utcnow() - timedelta(seconds=40)
    for reports, field in (
        ([play(1, just, mine), play(2**63, just, mine)], "reports[1].seq"),
        ([health_report(2**63, just)], "reports[0].seq"),
        ([{**health_report(1, just), "at": "9999-12-31T23:59:59-14:00"}], "reports[0].at"),
    ):
        status, body = await dev.report(reports)
        assert status == 422 and body["detail"][0]["field"] == field, body
    # Times at the calendar's ends are stored as refusals, not errors.
    edges = [
        {**play(3, just, mine), "ended_at": "9999-12-31T23:59:59-14:00"},
        {**play(4, just, mine), "started_at": "0001-01-01T00:00:00+14:00"},
    ]
    assert (await dev.report(edges))[0] == 200
    assert await refused_rows(hub, dev.id) == {3: "in_future", 4: "before_enrollment"}
    # The largest seq SQLite stores is taken.
    status, ack = await dev.report([play(2**63 - 1, just, mine)])
    assert status == 200 and ack == {"acked": [2**63 - 1]}
    assert await stored_seqs(hub, dev.id) == [2**63 - 1]
    assert (await hub.app[DB].fetchone("SELECT COUNT(*) FROM health"))[0] == 0


async def test_airings_while_valid_count_after_a_cancel_or_expiry(hub: HubHarness) -> None:
    """A bulletin cancelled or expired since is credited for the airings made while it was
    valid, not after; an airing stretched over a clock correction is refused."""
    dev = await hub.new_device()
    cancelled = (await publish(hub))["id"]
    await hub.call("POST", f"/api/v1/bulletins/{cancelled}/cancel")
    expired = (await publish(hub))["id"]
    long_valid = (await publish(hub))["id"]
    now = utcnow()
    await hub.backdate(now - timedelta(days=60), dev.id, cancelled, expired, long_valid)
    db = hub.app[DB]
    hour_ago = iso(now - timedelta(hours=1))
    await db.execute("UPDATE bulletins SET cancelled_at = ? WHERE id = ?", (hour_ago, cancelled))
    await db.execute("UPDATE bulletins SET valid_until = ? WHERE id = ?", (hour_ago, expired))
    before, after = now - timedelta(hours=2), now - timedelta(minutes=30)
    jumped = now - timedelta(seconds=2_591_999)
    status, ack = await dev.report(
        [
            play(1, before, cancelled),
            play(2, after, cancelled),
            play(3, before, expired),
            play(4, after, expired),
            play(5, jumped, long_valid, seconds=2_591_999 - 60),
        ]
    )
    assert status == 200 and ack == {"acked": [1, 2, 3, 4, 5]}
    assert await stored_seqs(hub, dev.id) == [1, 3]
    assert await refused_rows(hub, dev.id) == {
        2: "outside_validity",
        4: "outside_validity",
        5: "too_long",
    }


async def test_a_bulletin_published_since_the_last_batch_is_credited(hub: HubHarness) -> None:
    """What the hub keeps of a device's bulletins between batches holds for one manifest
    version: a draft the device named (not sent) and then published to it is credited in the
    next batch, right after the device fetches the manifest that carries it."""
    dev = await hub.new_device()
    mine = (await publish(hub))["id"]
    draft = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json={
            "title": "Sắp phát",
            "kind": "text",
            "priority": "normal",
            "text": "Xin chào",
            "targets": {"communes": ["00001"]},
            "schedule": {
                "valid_from": utcnow().isoformat(),
                "valid_until": (utcnow() + timedelta(days=1)).isoformat(),
            },
        },
        expect=201,
    )
    just = utcnow() - timedelta(seconds=40)
    assert (await dev.report([play(1, just, mine), play(2, just, draft["id"])]))[0] == 200
    assert await refused_rows(hub, dev.id) == {2: "not_sent_to_device"}
    await hub.call("POST", f"/api/v1/bulletins/{draft['id']}/publish")
    manifest, _ = await dev.manifest()
    assert draft["id"] in [b.id for b in manifest.bulletins]
    assert (await dev.report([play(3, just, mine), play(4, just, draft["id"])]))[0] == 200
    assert await stored_seqs(hub, dev.id) == [1, 3, 4]
    assert await refused_rows(hub, dev.id) == {2: "not_sent_to_device"}


async def test_an_airing_after_a_cancel_is_refused_in_the_next_batch(hub: HubHarness) -> None:
    """A bulletin credited in one batch and cancelled before the next: the next batch's
    airings after the cancellation are refused, not judged by what the hub kept."""
    dev = await hub.new_device()
    other = await hub.new_device()
    mine = (await publish(hub))["id"]
    now = utcnow()
    await hub.backdate(now - timedelta(days=2), dev.id, mine)
    await hub.backdate(now - timedelta(days=2), other.id)
    before, after = now - timedelta(hours=2), now - timedelta(minutes=30)
    for device in (dev, other):
        assert (await device.report([play(1, before, mine), play(2, after, mine)]))[0] == 200
        assert await stored_seqs(hub, device.id) == [1, 2]
    await hub.call("POST", f"/api/v1/bulletins/{mine}/cancel")
    # Cancelled an hour ago, as far as the airings are concerned (the cancel above raised
    # both devices' manifest versions; this write only moves its time).
    await hub.app[DB].execute(
        "UPDATE bulletins SET cancelled_at = ? WHERE id = ?",
        (iso(now - timedelta(hours=1)), mine),
    )
    for device in (dev, other):
        assert (await device.report([play(3, before, mine), play(4, after, mine)]))[0] == 200
        assert await stored_seqs(hub, device.id) == [1, 2, 3]
        assert await refused_rows(hub, device.id) == {4: "outside_validity"}


async def test_refused_reports_are_paged_and_scoped_to_the_callers_communes(
    hub: HubHarness,
) -> None:
    one = await hub.new_device("00001")
    two = await hub.new_device("00002")
    just = utcnow() - timedelta(seconds=40)
    assert (await one.report([play(s, just, "ghost") for s in range(1, 6)]))[0] == 200
    assert (await two.report([play(1, just, "ghost")]))[0] == 200
    pages = await walk(hub, "/api/v1/refused-reports?limit=2")
    assert [len(p) for p in pages] == [2, 2, 2]
    seen = [(r["device_id"], r["seq"]) for p in pages for r in p]
    # Newest first: the second device reported last.
    assert seen == [(two.id, 1), *((one.id, s) for s in range(5, 0, -1))]
    op = await hub.user("xa2.op", "commune_operator", "00002")
    theirs = await op.call("GET", "/api/v1/refused-reports")
    assert [(r["device_id"], r["reason"]) for r in theirs] == [(two.id, "unknown_bulletin")]
    assert await op.call("GET", f"/api/v1/refused-reports?device={one.id}") == []


async def test_plays_stored_before_the_checks_are_rechecked_on_demand(
    hub: HubHarness, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hub recheck-plays` judges plays an older hub stored unchecked; --apply moves the ones
    it refuses out of the reports, onto the device's refused count."""
    dev = await hub.new_device("00001")
    mine = (await publish(hub))["id"]
    theirs = (await publish(hub, targets={"communes": ["00002"]}))["id"]
    now = utcnow()
    await hub.backdate(now - timedelta(days=40), dev.id, mine, theirs)
    db = hub.app[DB]
    legacy = [
        # seq, bulletin, started, seconds: the November case, a stranger's, a ghost, a good one
        (1, mine, now - timedelta(seconds=2_591_999), 2_591_999),
        (2, theirs, now - timedelta(hours=1), 20),
        (3, "ghost", now - timedelta(hours=1), 20),
        (4, mine, now - timedelta(hours=1), 20),
    ]
    for seq, bulletin, started, seconds in legacy:
        await db.execute(
            "INSERT INTO plays (device_id, seq, bulletin_id, priority, kind, started_at,"
            " ended_at, outcome, position_s, received_at)"
            " VALUES (?, ?, ?, 'normal', 'text', ?, ?, 'completed', ?, ?)",
            (
                dev.id,
                seq,
                bulletin,
                iso(started),
                iso(started + timedelta(seconds=seconds)),
                seconds,
                iso(now),
            ),
        )
    expected = {"too_long": 1, "not_sent_to_device": 1, "unknown_bulletin": 1}
    # The command line runs its own event loop, so from this test it runs on a thread.
    assert await asyncio.to_thread(main, ["recheck-plays", "--data", str(hub.config.data_dir)]) == 0
    assert "3 stored plays would be refused (use --apply)" in capsys.readouterr().out
    assert await stored_seqs(hub, dev.id) == [1, 2, 3, 4]  # a dry run changes nothing

    assert await recheck_stored_plays(db, apply=True) == expected
    assert await stored_seqs(hub, dev.id) == [4]
    assert await refused_rows(hub, dev.id) == {
        1: "too_long",
        2: "not_sent_to_device",
        3: "unknown_bulletin",
    }
    device = await hub.call("GET", f"/api/v1/devices/{dev.id}")
    assert device["refused_reports"] == 3
    assert device["last_refused_detail"].startswith("rechecked after storing:")
    assert await recheck_stored_plays(db, apply=True) == {}  # nothing left to move


#: Reports 4,000 airings in batches of 200 to a hub in this process and prints the
#: generation of each collection the cyclic garbage collector started meanwhile.
_COLLECTIONS_DURING_INGEST = """
import asyncio, gc, sys, tempfile
from datetime import timedelta
from pathlib import Path
from hub.app import settle_heap
from hub.testing import running_hub
from loa_contract import utcnow
from tests.test_hub_device import publish
from tests.test_ingest import play

async def main(settle: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with running_hub(Path(tmp)) as hub:
            await hub.commune("00001")
            dev = await hub.new_device()
            bulletin = (await publish(hub))["id"]
            just = utcnow() - timedelta(minutes=10)
            await hub.backdate(just - timedelta(days=1), dev.id, bulletin)
            if settle:
                settle_heap()
            seen = []

            def started(phase, info):
                if phase == "start":
                    seen.append(info["generation"])

            gc.callbacks.append(started)
            for n in range(20):
                batch = [play(n * 200 + i + 1, just, bulletin, seconds=1.0) for i in range(200)]
                status, ack = await dev.report(batch)
                assert status == 200 and len(ack["acked"]) == 200, ack
            print(seen)

asyncio.run(main(sys.argv[1] == "settled"))
"""


def test_a_settled_hub_ingests_without_collecting_garbage() -> None:
    """`hub serve` settles its heap once started (hub/app.py settle_heap): report ingest then
    runs no collection, where CPython's default settings start one every few batches (run in
    a process of its own: settling is for the rest of the process's life)."""
    root = Path(__file__).resolve().parent.parent
    # Each run a hub of its own: on SQLite, whatever database the other tests are given.
    env = {k: v for k, v in os.environ.items() if k != "LOA_TEST_DATABASE_URL"}
    env["PYTHONPATH"] = str(root)
    seen = {}
    for mode in ("default", "settled"):
        run = subprocess.run(
            [sys.executable, "-c", _COLLECTIONS_DURING_INGEST, mode],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr
        seen[mode] = run.stdout.strip()
    assert seen["default"] not in ("", "[]")
    assert seen["settled"] == "[]"
