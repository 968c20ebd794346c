"""Issue #9 points 3 and 4, the agent's part: it obeys only what verifies again, and it
survives damaged state. Real hub on 127.0.0.1, real SQLite files, real agent starts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from edge_agent.agent import Agent
from edge_agent.clock import ClockJudge
from edge_agent.identity import Identity
from edge_agent.players.base import PlayItem
from edge_agent.players.null import NullPlayer
from edge_agent.profile import load_profile
from edge_agent.store import FLOOR_FILE
from hub.config import HubConfig
from hub.keys import load_or_create_signer
from loa_contract import (
    CommandDocument,
    EmergencyStart,
    Priority,
    Schedule,
    Scope,
    utcnow,
)
from tests.e2e import (
    LiveHub,
    NoUpgradeProxy,
    enroll_agent,
    fast_config,
    live_hub,
    schedule,
    tone_bytes,
)

TIMEOUT = 15.0
PROFILE = "speaker-cluster"


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as live:
        await live.add_commune("xa-t")
        yield live


class WitnessPlayer(NullPlayer):
    """A null player that hashes, as each item starts, the bytes of the file it was given:
    what a real backend would have sounded."""

    def __init__(self) -> None:
        super().__init__(default_duration_s=0.2)
        self.heard: list[tuple[str, str | None]] = []

    async def play(self, item: PlayItem) -> None:
        digest = hashlib.sha256(item.path.read_bytes()).hexdigest() if item.path else None
        self.heard.append((item.bulletin_id, digest))
        await super().play(item)


def restart(data: Path, player: NullPlayer | None = None, **config: Any) -> Agent:
    """A new agent process on the same data folder (the clock believed: no hub may answer)."""
    return Agent(
        fast_config(data, require_clock_confirmation=False, **config),
        Identity.load(data),
        load_profile(PROFILE),
        player or NullPlayer(default_duration_s=0.2),
    )


async def next_play(agent: Agent) -> str:
    item = await asyncio.wait_for(agent.play_started.get(), TIMEOUT)
    return item.bulletin_id


async def publish_audio(hub: LiveHub, tmp_path: Path, title: str, **extra: Any) -> dict:
    audio = await hub.upload(tone_bytes(tmp_path, uuid.uuid4().hex, 0.2), "audio/wav")
    return await hub.publish(
        {
            "title": title,
            "kind": "audio",
            "priority": "normal",
            "media": audio["sha256"],
            "targets": {"communes": ["xa-t"]},
            "schedule": schedule(utcnow(), repeats=20),
            **extra,
        }
    )


async def enrolled(hub: LiveHub, data: Path, player: NullPlayer | None = None, **config: Any):
    return await enroll_agent(
        hub,
        data,
        commune="xa-t",
        kind="speaker",
        profile=PROFILE,
        player=player or NullPlayer(default_duration_s=0.2),
        require_clock_confirmation=False,
        **config,
    )


# ---------------------------------------------------------------- a manifest edited at rest


async def test_a_manifest_edited_at_rest_is_refused_and_a_signed_copy_obeyed(
    hub: LiveHub, tmp_path: Path
) -> None:
    data = tmp_path / "speaker"
    agent = await enrolled(hub, data)
    genuine = await publish_audio(hub, tmp_path, "Lịch tiêm phòng")
    try:
        assert await next_play(agent) == genuine["id"]
        version = agent.manifest_version()
    finally:
        await agent.stop()

    # A "HACKED" priority bulletin added by hand to the parsed copy.
    with sqlite3.connect(data / "agent.sqlite3") as db:
        parsed = json.loads(db.execute("SELECT manifest FROM manifest").fetchone()[0])
        hacked = {**parsed["bulletins"][0], "id": "hacked", "title": "HACKED"}
        parsed["bulletins"].append({**hacked, "priority": "priority"})
        db.execute("UPDATE manifest SET manifest = ?", (json.dumps(parsed),))

    agent = restart(data)
    await agent.start()
    try:
        assert "manifest_tampered" in (await agent.health_fields())["faults"]
        assert "hacked" not in agent.bulletins()
        assert agent.manifest_version() == version
        # The verified copy (the replay floor's) is obeyed and repairs the row.
        assert await next_play(agent) == genuine["id"]
        stored = await agent.store.stored_manifest()
        assert stored is not None and "hacked" not in {b.id for b in stored[0].bulletins}
    finally:
        await agent.stop()

    # Now the signed envelope itself is spoilt, and the floor's copy is gone: nothing stored
    # verifies. Nothing of it plays; a fresh signed copy comes from the hub (same version).
    with sqlite3.connect(data / "agent.sqlite3") as db:
        envelope = json.loads(db.execute("SELECT envelope FROM manifest").fetchone()[0])
        signature = envelope["signature"]
        envelope["signature"] = ("B" if signature[0] == "A" else "A") + signature[1:]
        db.execute("UPDATE manifest SET envelope = ?", (json.dumps(envelope).encode(),))
    floor = json.loads((data / FLOOR_FILE).read_text())
    (data / FLOOR_FILE).write_text(json.dumps({**floor, "manifest_envelope": None}))
    agent = restart(data)
    await agent.start()
    try:
        assert "manifest_tampered" in agent.state_faults()
        await agent.wait_until(lambda: agent.manifest_version() == version, TIMEOUT)
        assert await next_play(agent) == genuine["id"]
        assert await agent.store.trusted_version() == version
    finally:
        await agent.stop()


async def test_a_held_emergency_edited_at_rest_is_refused(hub: LiveHub, tmp_path: Path) -> None:
    data = tmp_path / "speaker"
    agent = await enrolled(hub, data)
    genuine = await publish_audio(hub, tmp_path, "Tin thường")
    signer = load_or_create_signer(HubConfig(data_dir=hub.data_dir).key_path)
    ids = ["alarm-kept", "alarm-edited"]
    try:
        assert await next_play(agent) == genuine["id"]
        manifest = agent.manifest
        assert manifest is not None
        issued = utcnow()
        for emergency_id in ids:
            alarm = manifest.bulletins[0].model_copy(
                update={
                    "id": emergency_id,
                    "title": "Cảnh báo lũ",
                    "priority": Priority.EMERGENCY,
                    "schedule": Schedule(
                        valid_from=issued, valid_until=issued + timedelta(hours=1)
                    ),
                }
            )
            command = EmergencyStart(
                command_id=uuid.uuid4().hex,
                scope=Scope(devices=[agent.identity.device_id]),
                issued_at=issued,
                expires_at=issued + timedelta(minutes=5),
                bulletin=alarm,
            )
            await agent.sync.handle_push(
                signer.sign(CommandDocument(command=command)).model_dump_json()
            )

        async def both_held() -> bool:
            return {b.id for b in await agent.store.emergencies()} == set(ids)

        await agent.wait_until(both_held, TIMEOUT)
    finally:
        await agent.stop()
    await hub.stop()

    with sqlite3.connect(data / "agent.sqlite3") as db:
        row = db.execute("SELECT bulletin FROM emergencies WHERE id = 'alarm-edited'").fetchone()
        edited = {**json.loads(row[0]), "title": "HACKED"}
        db.execute(
            "UPDATE emergencies SET bulletin = ? WHERE id = 'alarm-edited'", (json.dumps(edited),)
        )

    agent = restart(data)
    await agent.start()
    try:
        assert set(agent.emergencies) == {"alarm-kept"}
        assert "emergency_tampered" in agent.state_faults()
        assert await next_play(agent) == "alarm-kept"
        assert {b.id for b in await agent.store.emergencies()} == {"alarm-kept"}
    finally:
        await agent.stop()


# ---------------------------------------------------------------- a cached file changed on disk


async def test_a_cached_file_changed_on_disk_is_never_played_and_comes_back(
    hub: LiveHub, tmp_path: Path
) -> None:
    player = WitnessPlayer()
    agent = await enrolled(hub, tmp_path / "speaker", player, cache_check_interval_s=0.05)
    genuine = await publish_audio(hub, tmp_path, "Lịch tiêm phòng")
    try:
        assert await next_play(agent) == genuine["id"]
        bulletin = agent.bulletins()[genuine["id"]]
        assert bulletin.media is not None
        sha = bulletin.media.sha256
        path = agent.cache.path_for(sha)
        assert path is not None
        good = path.read_bytes()
        # The hub goes away, then someone overwrites the object with same-size bytes.
        await hub.stop()
        path.write_bytes(bytes(b ^ 0x5A for b in good))
        await agent.wait_until(lambda: "cache_corrupt" in agent.state_faults(), TIMEOUT)
        await agent.wait_until(lambda: not path.exists(), TIMEOUT)
        assert "cache_corrupt" in (await agent.health_fields())["faults"]
        # The hub is back: the good file is fetched again and plays.
        await hub.start()
        await agent.wait_until(lambda: agent.cache.has(sha), TIMEOUT)
        assert path.read_bytes() == good
        await agent.wait_until(lambda: player.heard[-1] == (genuine["id"], sha), TIMEOUT)
    finally:
        await agent.stop()
    assert player.heard and all(digest == sha for _bid, digest in player.heard), (
        "only verified bytes were ever played"
    )


# ---------------------------------------------------------------- damaged databases


def _truncate(db: Path) -> None:
    os.truncate(db, db.stat().st_size // 2)


def _scribble(db: Path) -> None:
    with db.open("r+b") as f:  # pages 2 and 3 (the first tables' roots) become noise
        f.seek(4096)
        f.write(os.urandom(8192))


def _zero(db: Path) -> None:
    os.truncate(db, 0)


@pytest.mark.parametrize("damage", [_truncate, _scribble, _zero], ids=["cut", "scribbled", "zero"])
async def test_a_damaged_database_is_moved_aside_and_the_cache_plays_on(
    hub: LiveHub, tmp_path: Path, damage: Any
) -> None:
    data = tmp_path / "speaker"
    agent = await enrolled(hub, data)
    first = await publish_audio(hub, tmp_path, "Tin một")
    try:
        assert await next_play(agent) == first["id"]
        old = await agent.store.stored_manifest()
        assert old is not None
        old_envelope = old[1]
        second = await publish_audio(hub, tmp_path, "Tin hai")
        await agent.wait_until(lambda: second["id"] in agent.bulletins(), TIMEOUT)
        await agent.wait_until(
            lambda: agent.programme.play_item(agent.bulletins()[second["id"]]) is not None
        )
        version = await agent.store.trusted_version()
        assert version > old[0].version
    finally:
        await agent.stop()
    await hub.stop()  # the hub is out of reach from here on

    damage(data / "agent.sqlite3")
    agent = restart(data)
    await agent.start()
    try:
        assert list(data.glob("agent.sqlite3.damaged-*")), "the damaged file is kept aside"
        assert "state_rebuilt" in (await agent.health_fields())["faults"]
        assert await agent.store.trusted_version() == version
        # The verified cache plays from the replay floor's signed manifest.
        played: set[str] = set()
        for _ in range(8):
            played.add(await next_play(agent))
            if len(played) == 2:
                break
        assert played == {first["id"], second["id"]}
        # A replay of the older, genuinely signed manifest is still refused.
        assert not await agent.apply_manifest(old_envelope)
        assert agent.manifest_version() == version
    finally:
        await agent.stop()


# ---------------------------------------------------------------- time from signed data only


async def test_a_date_header_lying_by_30_days_freezes_nothing(hub: LiveHub, tmp_path: Path) -> None:
    # A proxy that refuses push (so the agent polls) and moves the hub's Date 30 days ahead;
    # the device has no NTP, so only the hub can confirm its time.
    proxy = NoUpgradeProxy(hub.url, date_shift=timedelta(days=30))
    proxy_url = await proxy.start()
    data = tmp_path / "speaker"
    agent = await enroll_agent(
        hub,
        data,
        commune="xa-t",
        kind="speaker",
        profile=PROFILE,
        player=NullPlayer(default_duration_s=0.2),
        hub_url=proxy_url,
        poll_interval_s=0.2,
        start=False,
    )
    agent.clock = ClockJudge(require_confirmation=True, ntp=lambda: None)
    await agent.start()
    try:
        genuine = await publish_audio(hub, tmp_path, "Qua proxy")
        assert await next_play(agent) == genuine["id"]
        status = await agent.status()
        assert status["clock"]["trusted"] is True and status["clock"]["source"] == "hub"
        assert abs(status["clock"]["offset_s"]) < 60, "the 30-day Date was not believed"
        assert agent.counters.rejected_manifests == 0, "no manifest was frozen as expired"
    finally:
        await agent.stop()
        await proxy.close()
