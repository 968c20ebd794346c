"""Report ingest: the hub's POST /api/v1/device/reports against a bare aiohttp endpoint
inserting the same rows (target ≥ 0.8 × the bare endpoint's records/s).

In one run, with the same client and the same request bodies (batches of 200 reports, proof
of play mixed with health samples, as an agent's outbox sends them):
  - the floor: an aiohttp app with one endpoint that parses the JSON and inserts the same
    plays and health rows into the hub's own schema, with the hub's SQLite settings (WAL,
    synchronous=FULL, one writer connection through aiosqlite);
  - the hub: a real hub on 127.0.0.1 (hub/testing.py) and an enrolled device, every batch
    authenticated, validated against the contract, each proof of play checked against the
    bulletins the device was sent (hub/play_evidence.py) and stored idempotently, its
    garbage collector settled as `hub serve` settles it (hub/app.py settle_heap). The device
    was enrolled, and its 37 bulletins published, a month before the airings reported; every
    airing is credible, so the hub stores what the floor stores.
Each side runs `--rounds` times, a floor round then a hub round, so a busy moment on the
machine hits both of a pair; the figure judged is the median over the pairs of hub / floor
(best rates and the process's CPU time per record are printed beside it: on a shared machine
the CPU time moves less than the rate).

    .venv/bin/python bench/ingest.py [--batches 100] [--batch-size 200] [--concurrency 4]
                                     [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.app import settle_heap  # noqa: E402
from hub.db import SqliteDatabase  # noqa: E402
from hub.testing import HubHarness, running_hub  # noqa: E402
from tests.real_files import wav_bytes  # noqa: E402

TARGET = 0.8
#: One health sample in this many reports; the rest are proof of play.
HEALTH_EVERY = 20


#: How many bulletins the airings are of, and the seconds between two airings' starts (the
#: reports of a run span three weeks, all before the hub's now).
BULLETINS = 37
SPACING_S = 10


def report_batches(
    batches: int, size: int, first_seq: int, t0: datetime, bulletins: list[str]
) -> list[bytes]:
    """Request bodies as an agent sends them, with seq numbers no earlier run used."""
    bodies = []
    seq = first_seq
    for _ in range(batches):
        reports: list[dict[str, Any]] = []
        for _ in range(size):
            # Agents stamp with the clock's microseconds, as utcnow() gives them.
            at = t0 + timedelta(seconds=seq * SPACING_S, microseconds=seq * 7919 % 1_000_000 or 1)
            if seq % HEALTH_EVERY == 0:
                reports.append(
                    {
                        "type": "health",
                        "seq": seq,
                        "at": at.isoformat(),
                        "cpu_percent": 12.5,
                        "memory_used_bytes": 310_000_000,
                        "memory_total_bytes": 1_000_000_000,
                        "filesystem_avail_bytes": 20_000_000_000,
                        "filesystem_size_bytes": 30_000_000_000,
                        "temperature_celsius": 51.2,
                        "boot_time_seconds": 1_772_000_000.0,
                        "network_receive_bytes_total": 123_456_789,
                        "network_transmit_bytes_total": 2_345_678,
                        "player_state": "playing",
                        "volume": 70,
                    }
                )
            else:
                reports.append(
                    {
                        "type": "play",
                        "seq": seq,
                        "bulletin_id": bulletins[seq % len(bulletins)],
                        "priority": "normal",
                        "kind": "audio",
                        "started_at": at.isoformat(),
                        "ended_at": (at + timedelta(seconds=25, microseconds=4111)).isoformat(),
                        "outcome": "completed",
                        "position_s": 25.0,
                    }
                )
            seq += 1
        bodies.append(json.dumps({"stream": "", "reports": reports}).encode())
    return bodies


async def send_all(
    url: str, headers: dict[str, str], bodies: list[bytes], concurrency: int
) -> tuple[float, float]:
    """Post every body, `concurrency` requests in flight; returns the seconds taken and the
    CPU seconds the process spent meanwhile (client and server, all threads)."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {**headers, "Content-Type": "application/json"}
    async with ClientSession() as session:

        async def sender() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                async with session.post(url, data=body, headers=headers) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"{url}: {resp.status} {await resp.text()}")
                    await resp.read()

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return time.perf_counter() - start, time.process_time() - cpu


async def published_bulletins(hub: HubHarness, device_id: str, since: datetime) -> list[str]:
    """BULLETINS audio bulletins for the device's commune, published through the API, then
    moved back with the device's enrollment to `since` (the API makes them now)."""
    # A whole recording as long as the plays reported of it: the hub decodes what it takes
    # and refuses a play longer than its media.
    media = await hub.upload(wav_bytes(seconds=30.0), "audio/wav")
    valid = {"valid_from": datetime.now(UTC).isoformat(), "valid_until": "2100-01-01T00:00:00Z"}
    ids = []
    for n in range(BULLETINS):
        created = await hub.call(
            "POST",
            "/api/v1/bulletins",
            json={
                "title": f"Bản tin {n}",
                "kind": "audio",
                "priority": "normal",
                "media": media["sha256"],
                "targets": {"communes": ["00001"]},
                "schedule": valid,
            },
            expect=201,
        )
        await hub.call("POST", f"/api/v1/bulletins/{created['id']}/publish")
        ids.append(created["id"])
    await hub.backdate(since, device_id, *ids)
    return ids


# ---------------------------------------------------------------- the floor


async def bare_app(path: Path) -> tuple[web.Application, aiosqlite.Connection]:
    # The hub's schema (same tables, keys and indexes), so both insert into the same shapes.
    schema = await SqliteDatabase.open(path)
    await schema.execute(
        "INSERT INTO communes (code, name, windows_json, volume, created_at, updated_at)"
        " VALUES ('00001', 'Xã', '{}', 70, '', '')"
    )
    await schema.execute(
        "INSERT INTO devices (id, commune, name, kind, profile, created_at)"
        " VALUES ('bare', '00001', 'bare', 'speaker', 'speaker-cluster', '')"
    )
    await schema.close()
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute("PRAGMA synchronous=FULL")
    await conn.execute("PRAGMA foreign_keys=ON")
    lock = asyncio.Lock()

    async def reports(request: web.Request) -> web.Response:
        batch = json.loads(await request.read())
        now = datetime.now(UTC).isoformat()
        stream = batch["stream"]
        plays = []
        healths = []
        for r in batch["reports"]:
            if r["type"] == "play":
                plays.append(
                    (
                        "bare",
                        stream,
                        r["seq"],
                        r["bulletin_id"],
                        r["priority"],
                        r["kind"],
                        r["started_at"],
                        r["ended_at"],
                        r["outcome"],
                        r["position_s"],
                        now,
                    )
                )
            else:
                healths.append(("bare", stream, r["seq"], r["at"], json.dumps(r), now))
        async with lock:
            await conn.execute("BEGIN IMMEDIATE")
            await conn.executemany(
                "INSERT OR IGNORE INTO plays (device_id, stream, seq, bulletin_id, priority,"
                " kind, started_at, ended_at, outcome, position_s, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                plays,
            )
            await conn.executemany(
                "INSERT OR IGNORE INTO health (device_id, stream, seq, at, json, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                healths,
            )
            await conn.execute("COMMIT")
        return web.json_response({"acked": sorted(r["seq"] for r in batch["reports"])})

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/reports", reports)
    return app, conn


async def run(batches: int, size: int, concurrency: int, rounds: int) -> int:
    records = batches * size
    bare_rates: list[float] = []
    hub_rates: list[float] = []
    bare_cpu: list[float] = []
    hub_cpu: list[float] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        app, conn = await bare_app(tmp / "bare.sqlite")
        bare = TestServer(app, host="127.0.0.1")
        await bare.start_server()
        try:
            async with running_hub(tmp / "hub") as hub:
                # As `hub serve` does once started (the floor shares the process, and so the
                # collector's settings, but allocates next to nothing it tracks).
                settle_heap()
                await hub.commune()
                device = await hub.new_device()
                t0 = datetime.now(UTC) - timedelta(days=30)
                bulletins = await published_bulletins(hub, device.id, t0 - timedelta(days=1))
                hub_url = str(hub.client.make_url("/api/v1/device/reports"))
                bare_url = str(bare.make_url("/reports"))
                seq = 1
                # Warm-up (not timed): connections, statement caches, first pages of the file.
                warm = report_batches(10, size, seq, t0, bulletins)
                seq += 10 * size
                await send_all(bare_url, {}, warm, concurrency)
                await send_all(hub_url, device.headers, warm, concurrency)
                for _ in range(rounds):
                    bodies = report_batches(batches, size, seq, t0, bulletins)
                    seq += records
                    seconds, cpu = await send_all(bare_url, {}, bodies, concurrency)
                    bare_rates.append(records / seconds)
                    bare_cpu.append(cpu / records * 1e6)
                    seconds, cpu = await send_all(hub_url, device.headers, bodies, concurrency)
                    hub_rates.append(records / seconds)
                    hub_cpu.append(cpu / records * 1e6)
                stored = await hub.call("GET", f"/api/v1/plays?device={device.id}&limit=1")
                assert stored, "the hub stored no proof of play"
                refused = await hub.call("GET", f"/api/v1/refused-reports?device={device.id}")
                assert not refused, f"the hub refused credible airings: {refused[:3]}"
        finally:
            await bare.close()
            await conn.close()
    ratio = statistics.median(h / b for h, b in zip(hub_rates, bare_rates, strict=True))
    print(f"report ingest: {records:,} records per round in batches of {size},")
    print(f"  {concurrency} requests in flight, {rounds} rounds each, interleaved")
    for name, rates, cpu in (
        ("bare aiohttp + SQLite", bare_rates, bare_cpu),
        ("hub /device/reports  ", hub_rates, hub_cpu),
    ):
        print(
            f"  {name}: best {max(rates):,.0f} records/s, median {statistics.median(rates):,.0f};"
            f" CPU {min(cpu):.1f} µs per record (least)"
        )
    print(
        f"  ratio hub / floor, median of the {rounds} pairs: {ratio:.2f} (target ≥ {TARGET});"
        f" best to best {max(hub_rates) / max(bare_rates):.2f},"
        f" by CPU per record {min(bare_cpu) / min(hub_cpu):.2f}"
    )
    met = ratio >= TARGET
    print("  target met" if met else "  TARGET MISSED")
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    return asyncio.run(run(args.batches, args.batch_size, args.concurrency, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
