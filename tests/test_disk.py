"""Issue #9 point 2: a full card. Downloads are checked against the free space before they
start; what does not fit (keeping a reserve for speech, SQLite and the logs) is refused and
reported as `disk_full` with its reason, never half-written; room is made from expired
content (least recently aired first) and, for an emergency, from lower content; the agent
recovers by itself when space returns.

The small card is a real tmpfs of a few MiB mounted for the test (this needs root, as CI
and `make test` run it), grown with `mount -o remount,size=` when "space returns".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.agent import Agent
from edge_agent.disk import CachedObject, free_bytes, plan_room
from edge_agent.identity import Identity
from edge_agent.players.null import NullPlayer
from edge_agent.profile import load_profile
from edge_agent.speech import EspeakEngine
from loa_contract import Priority, utcnow
from tests.e2e import LiveHub, NoUpgradeProxy, enroll_agent, fast_config, live_hub, schedule
from tests.real_files import noise_png

TIMEOUT = 20.0
MiB = 1024 * 1024
T0 = datetime(2026, 11, 1, tzinfo=UTC)


# ---------------------------------------------------------------- the pure choice


def obj(
    sha: str,
    size: int,
    priority: Priority | None = Priority.NORMAL,
    *,
    expired: bool = False,
    aired_min: int | None = None,
) -> CachedObject:
    aired = None if aired_min is None else T0 + timedelta(minutes=aired_min)
    return CachedObject(sha, size, priority, expired, aired)


def test_what_fits_evicts_nothing() -> None:
    plan = plan_room(
        need_bytes=10, free=100, reserve=90, for_priority=Priority.NORMAL, cached=[obj("a", 5)]
    )
    assert plan.fits and plan.evict == ()


def test_unused_then_expired_least_recently_aired_first() -> None:
    cached = [
        obj("live", 50),
        obj("expired-recent", 10, expired=True, aired_min=30),
        obj("expired-old", 10, expired=True, aired_min=5),
        obj("expired-never", 10, expired=True),
        obj("unused", 10, None),
    ]
    plan = plan_room(need_bytes=25, free=10, reserve=0, for_priority=Priority.NORMAL, cached=cached)
    assert plan.fits
    assert plan.evict == ("unused", "expired-never")
    plan = plan_room(need_bytes=40, free=10, reserve=0, for_priority=Priority.NORMAL, cached=cached)
    assert plan.evict == ("unused", "expired-never", "expired-old")


def test_an_emergency_may_evict_lower_live_content_but_a_normal_item_may_not() -> None:
    cached = [
        obj("normal-recent", 30, aired_min=50),
        obj("normal-old", 30, aired_min=1),
        obj("priority", 30, Priority.PRIORITY, aired_min=0),
        obj("other-emergency", 30, Priority.EMERGENCY),
    ]
    normal = plan_room(
        need_bytes=40, free=10, reserve=0, for_priority=Priority.NORMAL, cached=cached
    )
    assert not normal.fits and normal.evict == () and normal.short_by == 30
    emergency = plan_room(
        need_bytes=40, free=10, reserve=0, for_priority=Priority.EMERGENCY, cached=cached
    )
    assert emergency.fits and emergency.evict == ("normal-old",)
    emergency = plan_room(
        need_bytes=90, free=10, reserve=0, for_priority=Priority.EMERGENCY, cached=cached
    )
    # Normal content goes before priority content; an emergency never evicts another.
    assert emergency.evict == ("normal-old", "normal-recent", "priority")
    assert not plan_room(
        need_bytes=200, free=10, reserve=0, for_priority=Priority.EMERGENCY, cached=cached
    ).fits


def test_what_is_on_air_is_never_evicted() -> None:
    cached = [obj("on-air", 100, expired=True), obj("other", 10, expired=True)]
    plan = plan_room(
        need_bytes=50,
        free=0,
        reserve=0,
        for_priority=Priority.EMERGENCY,
        cached=cached,
        keep=frozenset({"on-air"}),
    )
    assert not plan.fits and plan.evict == () and plan.short_by == 40


def test_negative_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        plan_room(need_bytes=-1, free=0, reserve=0, for_priority=Priority.NORMAL, cached=[])


objects = st.lists(
    st.builds(
        CachedObject,
        sha256=st.uuids().map(str),
        size=st.integers(0, 1000),
        priority=st.sampled_from([None, *Priority]),
        expired=st.booleans(),
        last_aired=st.one_of(
            st.none(), st.integers(0, 10_000).map(lambda m: T0 + timedelta(minutes=m))
        ),
    ),
    max_size=12,
    unique_by=lambda o: o.sha256,
)


@given(
    cached=objects,
    need=st.integers(0, 3000),
    free=st.integers(0, 3000),
    reserve=st.integers(0, 500),
    priority=st.sampled_from(list(Priority)),
    keep_first=st.booleans(),
)
def test_plan_room_properties(
    cached: list[CachedObject],
    need: int,
    free: int,
    reserve: int,
    priority: Priority,
    keep_first: bool,
) -> None:
    keep = frozenset({cached[0].sha256}) if keep_first and cached else frozenset()
    plan = plan_room(
        need_bytes=need, free=free, reserve=reserve, for_priority=priority, cached=cached, keep=keep
    )
    by_sha = {o.sha256: o for o in cached}
    rank = {Priority.NORMAL: 0, Priority.PRIORITY: 1, Priority.EMERGENCY: 2}
    if not plan.fits:
        assert plan.evict == () and plan.short_by > 0
        return
    freed = sum(by_sha[s].size for s in plan.evict)
    assert need <= free - reserve + freed
    assert len(set(plan.evict)) == len(plan.evict)
    for sha in plan.evict:
        victim = by_sha[sha]
        assert sha not in keep
        # Only unused or expired content, or live content of a lower priority.
        assert victim.priority is None or victim.expired or rank[victim.priority] < rank[priority]
    if plan.evict:
        # Minimal in order: without the last one chosen it would not fit.
        assert need > free - reserve + freed - by_sha[plan.evict[-1]].size


# ---------------------------------------------------------------- a real small card


@contextlib.contextmanager
def small_disk(path: Path, size_mib: int) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs as the agent's card needs root (CI runs as root)")
    path.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(path)], check=True
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def grow(path: Path, size_mib: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size_mib}m", str(path)], check=True)


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as live:
        await live.add_commune("xa-d")
        yield live


async def publish_image(hub: LiveHub, title: str, size: int, priority: str = "normal") -> dict:
    # A real picture (a board decodes what it shows), of random pixels nothing compresses.
    media = await hub.upload(noise_png(size), "image/png")
    body = {
        "title": title,
        "kind": "image",
        "priority": priority,
        "media": media["sha256"],
        "targets": {"communes": ["xa-d"]},
        "schedule": schedule(utcnow(), repeats=20),
        "display_seconds": 0.2,
    }
    if priority == "emergency":
        return await hub.call(
            "POST",
            "/api/v1/emergencies",
            json={"title": title, "media": media["sha256"]},
        )
    return await hub.publish(body)


async def board_on(hub: LiveHub, card: Path, duration_s: float = 0.2, **config: Any) -> Agent:
    """An LED board enrolled in xa-d whose data folder is the small card."""
    return await enroll_agent(
        hub,
        card / "board",
        commune="xa-d",
        kind="board",
        profile="led-board-p10",
        player=NullPlayer(default_duration_s=duration_s),
        require_clock_confirmation=False,
        **config,
    )


async def test_a_download_that_does_not_fit_is_refused_reported_and_fetched_when_room_returns(
    hub: LiveHub, tmp_path: Path
) -> None:
    card = tmp_path / "card"
    with small_disk(card, 12):
        agent = await board_on(
            hub,
            card,
            disk_reserve_bytes=2 * MiB,
            cache_check_interval_s=0.05,
        )
        try:
            small = await publish_image(hub, "Thông báo nhỏ", 1 * MiB)
            await agent.wait_until(lambda: small["id"] in _playable(agent), TIMEOUT)
            big = await publish_image(hub, "Bản đồ ngập lụt", 14 * MiB)
            await agent.wait_until(lambda: "disk_full" in agent.active_faults(), TIMEOUT)
            reason = agent.active_faults()["disk_full"]
            assert "does not fit" in reason and "14.0 MiB" in reason
            # Refused before a byte was written: no partial file takes the reserve.
            assert list((card / "board" / "cache" / "partial").iterdir()) == []
            assert free_bytes(card) > 2 * MiB
            health = await agent.health_fields()
            assert "disk_full" in health["faults"]
            assert "does not fit" in health["fault_details"]["disk_full"]
            # What fits keeps playing.
            assert small["id"] in _playable(agent)

            grow(card, 40)  # a technician clears space / the card is replaced by a bigger one
            await agent.wait_until(lambda: big["id"] in _playable(agent), TIMEOUT)
            assert "disk_full" not in agent.active_faults()
        finally:
            await agent.stop()


async def test_an_emergency_evicts_normal_content_to_get_on_air(
    hub: LiveHub, tmp_path: Path
) -> None:
    card = tmp_path / "card"
    with small_disk(card, 12):
        agent = await board_on(
            hub,
            card,
            disk_reserve_bytes=2 * MiB,
        )
        try:
            first = await publish_image(hub, "Lịch tiêm phòng", 4 * MiB)
            second = await publish_image(hub, "Lịch thu thuế", 4 * MiB)
            await agent.wait_until(lambda: {first["id"], second["id"]} <= _playable(agent), TIMEOUT)
            emergency = await publish_image(hub, "Cháy rừng", 4 * MiB, priority="emergency")
            await agent.wait_until(lambda: emergency["id"] in _playable(agent), TIMEOUT)
            # One normal item made room, the least recently aired; the other still plays.
            assert len({first["id"], second["id"]} & _playable(agent)) == 1
            # The emergency was never refused. (The evicted item, wanted back, may be: the
            # card cannot hold all three, and the next fetch says so as disk_full.)
            alarm = agent.bulletins()[emergency["id"]].media
            assert alarm is not None and alarm.sha256 not in agent.content.refused_for_room
        finally:
            await agent.stop()


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None and not os.environ.get("CI"),
    reason="needs espeak-ng (Debian package espeak-ng)",
)
async def test_speech_is_not_made_into_the_last_of_the_card_and_says_why(
    hub: LiveHub, tmp_path: Path
) -> None:
    card = tmp_path / "card"
    with small_disk(card, 8):
        agent = await enroll_agent(
            hub,
            card / "speaker",
            commune="xa-d",
            kind="speaker",
            profile="speaker-cluster",
            player=NullPlayer(default_duration_s=0.2),
            speech=EspeakEngine(),
            require_clock_confirmation=False,
            disk_reserve_bytes=4 * MiB,
            cache_check_interval_s=0.05,
        )
        filler = card / "filler"
        try:
            await agent.wait_until(agent.status_connected, TIMEOUT)
            # Something else on the card (logs, a technician's copy) leaves 150 KiB: room
            # for SQLite, not for speech.
            filler.write_bytes(b"\0" * (free_bytes(card) - 150 * 1024))
            notice = await hub.publish(
                {
                    "title": "Họp dân",
                    "kind": "text",
                    "priority": "normal",
                    "text": "Mời bà con dự họp tại nhà văn hoá thôn lúc bảy giờ tối.",
                    "targets": {"communes": ["xa-d"]},
                    "schedule": schedule(utcnow(), repeats=5),
                }
            )
            await agent.wait_until(lambda: "disk_full" in agent.active_faults(), TIMEOUT)
            assert "speech for " + notice["id"] in agent.active_faults()["disk_full"]
            assert notice["id"] not in _playable(agent)

            filler.unlink()
            item = await asyncio.wait_for(agent.play_started.get(), TIMEOUT)
            assert item.bulletin_id == notice["id"]
            assert "disk_full" not in agent.active_faults()
        finally:
            await agent.stop()


def _playable(agent: Agent) -> set[str]:
    return {b.id for b in agent.bulletins().values() if agent.programme.play_item(b) is not None}


async def test_a_card_too_full_for_sqlite_keeps_playing_and_the_hub_hears_why(
    hub: LiveHub, tmp_path: Path
) -> None:
    card = tmp_path / "card"
    with small_disk(card, 8):
        agent = await board_on(
            hub,
            card,
            duration_s=0.05,
            disk_reserve_bytes=MiB,
            health_interval_s=0.1,
        )
        filler = card / "filler"
        try:
            notice = await publish_image(hub, "Thông báo", 64 * 1024)
            await agent.wait_until(lambda: notice["id"] in _playable(agent), TIMEOUT)
            # Something else takes every last byte: SQLite cannot record a thing.
            with contextlib.suppress(OSError), filler.open("wb") as f:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            assert free_bytes(card) < 65536
            full_since = utcnow()
            await agent.wait_until(lambda: "not recorded" in _disk_full(agent), TIMEOUT)
            # The board plays on from its cache.
            before = agent.play_started.qsize()
            await agent.wait_until(lambda: agent.play_started.qsize() > before + 2, TIMEOUT)
            # A bulletin published now cannot be stored on the card: the old programme holds.
            later = await publish_image(hub, "Lịch họp", 8 * 1024)

            # The hub hears it, from memory, with the reason, and the airings themselves.
            await agent.wait_until(lambda: agent.reporting.delivered_from_memory > 2, TIMEOUT)
            device_id = agent.identity.device_id
            device = await hub.call("GET", f"/api/v1/devices/{device_id}")
            assert "not recorded" in device["health"]["fault_details"]["disk_full"]
            assert "disk_full" in device["verdict_reasons"]
            plays = await hub.call("GET", f"/api/v1/plays?device={device_id}&limit=200")
            while_full = [p for p in plays if p["started_at"] > full_since.isoformat()]
            assert while_full, "the airings made while the card was full reached the hub"
            assert later["id"] not in agent.bulletins()

            filler.unlink()  # space returns: nobody needed
            # The manifest the card could not take is fetched again, and records resume.
            await agent.wait_until(lambda: later["id"] in _playable(agent), TIMEOUT)
            plays_before = len(await agent.store.recent_plays(1000))
            await agent.wait_until(lambda: _more_plays(agent, plays_before), TIMEOUT)
        finally:
            await agent.stop()


class HeldDownloads(NoUpgradeProxy):
    """The hub, passed through; each media download is held after its first `hold_after`
    bytes until `release` is set (a slow link, long enough for something to fill the card)."""

    def __init__(self, upstream: str, hold_after: int) -> None:
        super().__init__(upstream)
        self.hold_after = hold_after
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if "/device/media/" not in request.path:
            return await super().handle(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with self.session.get(self.upstream + request.path_qs, headers=headers) as upstream:
            passed = ("content-type", "content-length", "content-range", "accept-ranges", "etag")
            response = web.StreamResponse(
                status=upstream.status,
                headers={k: v for k, v in upstream.headers.items() if k.lower() in passed},
            )
            await response.prepare(request)
            sent = 0
            async for chunk in upstream.content.iter_chunked(64 * 1024):
                if sent >= self.hold_after and not self.release.is_set():
                    self.holding.set()
                    await self.release.wait()
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
            return response


async def test_a_card_filled_by_something_else_mid_download_loses_the_part_not_the_device(
    hub: LiveHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The room was there when the download began; something else took it meanwhile. The
    half-written file goes (kept, it would hold the card full: no speech, no SQLite), the
    reason is reported, what is cached plays on, and the download completes once space
    returns."""
    card = tmp_path / "card"
    proxy = HeldDownloads(hub.url, hold_after=2 * MiB)
    url = await proxy.start()
    filler = card / "filler"
    with small_disk(card, 14):
        agent = await board_on(hub, card, disk_reserve_bytes=MiB, hub_url=url)
        try:
            small = await publish_image(hub, "Thông báo nhỏ", 256 * 1024)
            await agent.wait_until(lambda: small["id"] in _playable(agent), TIMEOUT)
            proxy.release.set()  # the small one came whole; only the big one is held
            proxy.release.clear()
            big = await publish_image(hub, "Bản đồ ngập lụt", 6 * MiB)
            await asyncio.wait_for(proxy.holding.wait(), TIMEOUT)
            partial = card / "board" / "cache" / "partial"
            await agent.wait_until(lambda: _partial_bytes(partial) >= 2 * MiB, TIMEOUT)

            with contextlib.suppress(OSError), filler.open("wb") as f:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            proxy.release.set()
            await agent.wait_until(lambda: "disk_full" in agent.active_faults(), TIMEOUT)
            await agent.wait_until(lambda: "the card filled up" in caplog.text, TIMEOUT)
            assert _partial_bytes(partial) == 0, "the half-written file was left on a full card"
            assert big["id"] not in _playable(agent)
            before = agent.play_started.qsize()
            await agent.wait_until(lambda: agent.play_started.qsize() > before + 2, TIMEOUT)

            filler.unlink()
            await agent.wait_until(lambda: big["id"] in _playable(agent), TIMEOUT)
            assert "disk_full" not in agent.active_faults()
        finally:
            await agent.stop()
            await proxy.close()


class ReportsCut(NoUpgradeProxy):
    """The hub, passed through, except that proof of play cannot reach it while `cut`."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.cut = True
        self.refused = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.cut and request.path.endswith("/device/reports"):
            self.refused += 1
            return web.Response(status=503, text="the link is down")
        return await super().handle(request)


async def test_proofs_only_memory_holds_are_delivered_at_shutdown(
    hub: LiveHub, tmp_path: Path
) -> None:
    """A full card and no way to the hub: the airings are held in memory. A shutdown (a
    technician's restart, a new release) hands them to the hub first, the one on air too."""
    card = tmp_path / "card"
    proxy = ReportsCut(hub.url)
    url = await proxy.start()
    with small_disk(card, 8):
        agent = await board_on(
            hub, card, duration_s=0.05, disk_reserve_bytes=MiB, hub_url=url, report_retry_s=60
        )
        filler = card / "filler"
        stopped = False
        try:
            notice = await publish_image(hub, "Thông báo", 64 * 1024)
            await agent.wait_until(lambda: notice["id"] in _playable(agent), TIMEOUT)
            with contextlib.suppress(OSError), filler.open("wb") as f:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            await agent.wait_until(lambda: "not recorded" in _disk_full(agent), TIMEOUT)
            before = agent.play_started.qsize()
            await agent.wait_until(lambda: agent.play_started.qsize() > before + 3, TIMEOUT)
            await agent.wait_until(lambda: proxy.refused > 0, TIMEOUT)
            held = {proof.started_at for proof in agent.reporting.plays_held()}
            assert held

            proxy.cut = False  # the link is back just as the device is told to stop
            await agent.stop()
            stopped = True
            device_id = agent.identity.device_id
            plays = await hub.call("GET", f"/api/v1/plays?device={device_id}&limit=200")
            delivered = {datetime.fromisoformat(p["started_at"]) for p in plays}
            # Each one held (and the airing cut by the stop, if one was on air) is on the hub.
            assert held <= delivered, (held - delivered, plays)
            assert agent.reporting.plays_in_memory == 0
        finally:
            if not stopped:
                await agent.stop()
            await proxy.close()


async def test_proofs_the_hub_did_not_take_before_a_stop_are_kept_for_the_next_run(
    hub: LiveHub, tmp_path: Path
) -> None:
    """The card filled, airings went on, the hub was out of reach; space came back, then
    the device was stopped before the link returned. What only memory held is kept on the
    card, and the next run delivers it under the stream it was numbered in."""
    card = tmp_path / "card"
    proxy = ReportsCut(hub.url)
    url = await proxy.start()
    settings: dict[str, Any] = {
        "disk_reserve_bytes": MiB,
        "report_retry_s": 0.2,
        "require_clock_confirmation": False,
    }
    with small_disk(card, 8):
        agent = await board_on(
            hub, card, duration_s=0.05, hub_url=url, disk_reserve_bytes=MiB, report_retry_s=0.2
        )
        kept = card / "board" / "proofs-from-memory.json"
        filler = card / "filler"
        again: Agent | None = None
        stopped = False
        try:
            notice = await publish_image(hub, "Thông báo", 64 * 1024)
            await agent.wait_until(lambda: notice["id"] in _playable(agent), TIMEOUT)
            with contextlib.suppress(OSError), filler.open("wb") as f:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            await agent.wait_until(lambda: agent.reporting.plays_in_memory > 2, TIMEOUT)
            filler.unlink()  # space returns; the hub is still out of reach
            await agent.wait_until(kept.exists, TIMEOUT)
            await agent.stop()
            stopped = True
            held = agent.reporting.plays_in_memory
            assert held > 2 and kept.exists()
            assert not list((card / "board").glob("*.tmp"))
            on_card = json.loads(kept.read_bytes())
            kept_starts = {
                datetime.fromisoformat(proof["started_at"])
                for proofs in on_card.values()
                for proof in proofs
            }
            assert len(kept_starts) == held, (on_card, held)

            proxy.cut = False
            again = Agent(
                fast_config(card / "board", **settings),
                Identity.load(card / "board"),
                load_profile("led-board-p10"),
                NullPlayer(default_duration_s=0.05),
            )
            await again.start()
            await again.wait_until(lambda: not kept.exists(), TIMEOUT)
            device_id = again.identity.device_id
            plays = await hub.call("GET", f"/api/v1/plays?device={device_id}&limit=500")
            # Each airing the card kept reached the hub; a time cut-off would not do, as the
            # card may be full before the filler's last write returns.
            delivered = {datetime.fromisoformat(p["started_at"]) for p in plays}
            assert kept_starts <= delivered, (kept_starts - delivered, plays)
        finally:
            if again is not None:
                await again.stop()
            elif not stopped:
                await agent.stop()
            await proxy.close()


def _partial_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir()) if folder.exists() else 0


def _disk_full(agent: Agent) -> str:
    return agent.active_faults().get("disk_full", "")


async def _more_plays(agent: Agent, count: int) -> bool:
    assert agent.store is not None
    return len(await agent.store.recent_plays(1000)) > count
