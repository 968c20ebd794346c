"""Report ingest over a real hub: times in one UTC shape, the batch stored as one write."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.appkeys import DB
from hub.testing import HubHarness, running_hub
from loa_contract import VN_TZ


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path) as harness:
        await harness.commune("00001")
        yield harness


def play(seq: int, started: datetime) -> dict[str, Any]:
    return {
        "type": "play",
        "seq": seq,
        "bulletin_id": "b1",
        "priority": "normal",
        "kind": "text",
        "started_at": started.isoformat(),
        "ended_at": (started + timedelta(seconds=30, microseconds=250)).isoformat(),
        "outcome": "completed",
        "position_s": 30.0,
    }


def health(seq: int, at: datetime) -> dict[str, Any]:
    return {
        "type": "health",
        "seq": seq,
        "at": at.isoformat(),
        "cpu_percent": 3.5,
        "memory_used_bytes": 1,
        "memory_total_bytes": 2,
        "filesystem_avail_bytes": 3,
        "filesystem_size_bytes": 4,
        "boot_time_seconds": 5.0,
        "player_state": "idle",
        "volume": 70,
    }


async def test_report_times_are_stored_in_one_utc_shape(hub: HubHarness) -> None:
    """Times arrive in any offset; the hub stores iso()'s UTC text, so they sort as text."""
    dev = await hub.new_device()
    local = datetime(2026, 5, 1, 8, 0, 0, tzinfo=VN_TZ)
    status, ack = await dev.report([play(1, local), health(2, local + timedelta(minutes=1))])
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
