"""Reporting (báo cáo): proof of play and health samples to the hub, and the agent's status.

Reports wait in the store's outbox until the hub acknowledges them, so none is lost to a cut
link or a restart. When the store itself cannot be written (a full card, a failing one), a
health sample still goes out, straight from memory under a stream of its own, because that
is exactly when the province must hear from the device; so do the proofs of play the store
could not take. Those proofs are also kept in a small file beside the store
(`proofs-from-memory.json`) as soon as the card takes a write again, so a stop or a crash
before the hub acknowledged them loses none: the next run sends them under their own stream
again (the hub stores each (stream, seq) once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import uuid
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError

from loa_contract import BulletinKind, Fault, HealthSample, PlayOutcome, Priority, ProofOfPlay

from .disk import free_bytes, mib
from .health import system_sample
from .hubclient import HubRejected, HubUnavailable
from .identity import write_durably
from .parts import AgentPart, wait_event
from .relay import NullRelay
from .rpi_health import WIRE_FIELDS as PI_WIRE_FIELDS

if TYPE_CHECKING:
    from .agent import Agent

log = logging.getLogger("edge_agent")

#: The file's shape: each run's stream with its proofs not yet acknowledged.
_KEPT = TypeAdapter(dict[str, list[ProofOfPlay]])

#: Proofs of play held in memory while the store cannot take them, at most.
MEMORY_PLAYS_MAX = 1000
#: Where proofs of play only memory held are kept once the card takes a write again.
MEMORY_FILE = "proofs-from-memory.json"


class Reporting(AgentPart):
    def __init__(self, agent: Agent) -> None:
        super().__init__(agent)
        #: Samples the store could not take, sent from memory under `_volatile_stream` (a
        #: sequence space of this process alone, so the hub never takes them for repeats).
        self._volatile_stream = uuid.uuid4().hex
        self._volatile_seq = 0
        self._volatile: HealthSample | None = None
        self._volatile_plays: list[ProofOfPlay] = []
        #: Proofs of earlier runs that the hub had not acknowledged, by their stream.
        self._carried: dict[str, list[ProofOfPlay]] = {}
        #: The file on the card no longer says what memory holds (its write failed).
        self._file_stale = False
        #: Samples the hub acknowledged that way.
        self.delivered_from_memory = 0

    @property
    def _memory_file(self) -> Path:
        return self.agent.config.data_dir / MEMORY_FILE

    async def restore(self) -> None:
        """Take back the proofs an earlier run kept on the card but never delivered."""
        try:
            raw = await asyncio.to_thread(self._memory_file.read_bytes)
        except FileNotFoundError:
            return
        except OSError as exc:
            log.error("proofs kept from an earlier run cannot be read: %s", exc)
            return
        try:
            kept = _KEPT.validate_json(raw)
        except ValidationError as exc:
            # Written whole or not at all (write_durably): damage here is the card's.
            log.error("proofs kept from an earlier run are damaged, set aside: %s", exc)
            with contextlib.suppress(OSError):
                await asyncio.to_thread(
                    self._memory_file.replace, self._memory_file.with_suffix(".damaged")
                )
            return
        self._carried = {stream: plays for stream, plays in kept.items() if plays}
        if self._carried:
            log.warning(
                "%d proofs of play of an earlier run are sent to the hub again",
                sum(len(p) for p in self._carried.values()),
            )
            self.agent.report_wake.set()

    async def _keep_on_card(self) -> None:
        """Make the file say what memory holds (removed when nothing is left); a full card
        is tried again at the next chance."""
        held = dict(self._carried)
        if self._volatile_plays:
            held[self._volatile_stream] = self._volatile_plays
        path = self._memory_file
        try:
            if held:
                await asyncio.to_thread(write_durably, path, _KEPT.dump_json(held))
            else:
                await asyncio.to_thread(path.unlink, missing_ok=True)
        except OSError as exc:
            self._file_stale = True
            log.debug("proofs from memory not kept on the card yet: %s", exc)
            return
        self._file_stale = False

    def proof_from_memory(
        self,
        bulletin_id: str,
        priority: Priority,
        kind: BulletinKind,
        started_at: datetime,
        ended_at: datetime,
        outcome: PlayOutcome,
        position_s: float,
    ) -> None:
        """A proof of play the store could not take: it goes to the hub from memory."""
        self._volatile_seq += 1
        proof = ProofOfPlay(
            seq=self._volatile_seq,
            bulletin_id=bulletin_id,
            priority=priority,
            kind=kind,
            started_at=started_at,
            ended_at=max(ended_at, started_at),
            outcome=outcome,
            position_s=max(0.0, position_s),
        )
        # Bounded: a card full for weeks must not grow the agent without end.
        self._volatile_plays = [*self._volatile_plays, proof][-MEMORY_PLAYS_MAX:]
        self._file_stale = True
        self.agent.report_wake.set()

    @property
    def plays_in_memory(self) -> int:
        """Proofs of play the store could not take that the hub has not acknowledged (this
        run's, and an earlier run's kept on the card)."""
        return len(self._volatile_plays) + sum(len(p) for p in self._carried.values())

    def plays_held(self) -> list[ProofOfPlay]:
        """Those proofs themselves."""
        carried = [proof for proofs in self._carried.values() for proof in proofs]
        return carried + self._volatile_plays

    async def outbox(self) -> dict[str, int]:
        """Reports waiting for the hub's acknowledgement, by type: the store's outbox and
        those held in memory while the store could not take them."""
        try:
            waiting = dict(await self.store.backlog())
        except (sqlite3.Error, OSError) as exc:
            self.agent.write_failed("outbox count", exc)
            waiting = {}
        if self.plays_in_memory:
            waiting["plays"] = waiting.get("plays", 0) + self.plays_in_memory
        if self._volatile is not None:
            waiting["health"] = waiting.get("health", 0) + 1
        return waiting

    async def flush_from_memory(self, timeout_s: float) -> None:
        """At shutdown: one last try to hand the hub what only memory holds, and what it
        could not take is kept on the card for the next run."""
        if not self._volatile_plays and self._volatile is None and not self._carried:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._send_volatile()
        if self._file_stale:
            await self._keep_on_card()
        if self._volatile_plays or self._carried:
            log.error(
                "%d proofs of play held in memory could not be delivered before shutdown%s",
                len(self._volatile_plays) + sum(len(p) for p in self._carried.values()),
                "; kept on the card for the next run"
                if not self._file_stale
                else " and the card cannot keep them",
            )

    async def run_reports(self) -> None:
        agent = self.agent
        store = self.store
        while True:
            agent.supervisor.beat("reports")
            agent.report_wake.clear()
            if self._volatile is not None or self._volatile_plays or self._carried:
                await self._send_volatile()
            if self._file_stale:
                await self._keep_on_card()
            pending = await store.pending(200)
            if not pending:
                await wait_event(agent.report_wake, agent.config.health_interval_s)
                continue
            try:
                ack = await agent.client.post_reports(pending, stream=await store.report_stream())
            except (HubUnavailable, HubRejected) as exc:
                log.debug("reports not delivered: %s", exc)
                await wait_event(
                    agent.sync.connected, random.uniform(0.5, 1.0) * agent.config.report_retry_s
                )
                continue
            await store.acknowledge(ack.acked)
            agent.changed()

    async def _send_volatile(self) -> None:
        """What the store could not take, to the hub: this run's under its own stream, then
        each earlier run's under its stream."""
        for stream, plays in list(self._carried.items()):
            try:
                ack = await self.agent.client.post_reports(plays, stream=stream)
            except (HubUnavailable, HubRejected) as exc:
                log.debug("proofs of an earlier run not delivered: %s", exc)
                return
            acked = set(ack.acked)
            self.delivered_from_memory += len(acked)
            left = [p for p in self._carried.get(stream, []) if p.seq not in acked]
            if left:
                self._carried[stream] = left
            else:
                self._carried.pop(stream, None)
            self._file_stale = True
        sample = self._volatile
        plays = self._volatile_plays
        reports: list[ProofOfPlay | HealthSample] = [*plays, *([sample] if sample else [])]
        if not reports:
            return
        try:
            ack = await self.agent.client.post_reports(reports, stream=self._volatile_stream)
        except (HubUnavailable, HubRejected) as exc:
            log.debug("reports from memory not delivered: %s", exc)
            return
        acked = set(ack.acked)
        self.delivered_from_memory += len(acked)
        before = len(self._volatile_plays)
        self._volatile_plays = [p for p in self._volatile_plays if p.seq not in acked]
        if len(self._volatile_plays) != before:
            self._file_stale = True
        if self._volatile is sample and sample is not None and sample.seq in acked:
            self._volatile = None
        self.agent.changed()

    async def run_health(self) -> None:
        agent = self.agent
        while True:
            agent.supervisor.beat("health")
            fields = await self.health_fields()
            try:
                await self.store.add_health(fields)
                await self.store.heartbeat(agent.clock.now())
            except (sqlite3.Error, OSError) as exc:
                # The outbox cannot take it: the hub hears from memory, with the reason.
                agent.write_failed("health sample", exc)
                self._volatile_seq += 1
                try:
                    self._volatile = HealthSample.model_validate(
                        {**fields, "seq": self._volatile_seq}
                    )
                except ValidationError:
                    log.exception("health sample does not fit the contract")
            agent.report_wake.set()
            agent.changed()
            await agent.frames.maybe_send()
            await asyncio.sleep(agent.config.health_interval_s)

    async def health_fields(self) -> dict[str, Any]:
        """One HealthSample's fields (without `seq`, which the outbox assigns)."""
        agent = self.agent
        sample = await asyncio.to_thread(system_sample, agent.config.data_dir)
        objects, size = agent.cache.usage()
        backlog = sum((await self.outbox()).values())
        clock = agent.clock.status()
        details: dict[Fault, str] = {}
        if not clock.trusted:
            details[Fault.CLOCK_UNTRUSTED] = clock.reason or ""
        if agent.pi_health is not None:
            values, pi_faults = await asyncio.to_thread(agent.pi_health.sample)
            agent.hardware = {**values, "relay_on": agent.relay.is_on}
            sample.update({name: values.get(name) for name in PI_WIRE_FIELDS})
            if sample.get("temperature_celsius") is None:
                # psutil finds no sensor on some kernels; the thermal zone is the SoC itself.
                sample["temperature_celsius"] = values.get("soc_temperature_celsius")
            for fault in pi_faults:
                details.setdefault(fault, "")
        player = agent.player.health()
        for fault, detail in agent.active_faults(player).items():
            details.setdefault(fault, detail)
        free = await asyncio.to_thread(free_bytes, agent.config.data_dir)
        reserve = agent.disk_reserve
        if free < reserve:
            details.setdefault(Fault.DISK_LOW, f"{mib(free)} free, {mib(reserve)} kept in reserve")
        manifest = agent.manifest
        sample.update(
            at=agent.clock.now(),
            player_state=player.state.value,
            now_playing=agent.programme.now_playing(),
            volume=agent.programme.volume(),
            manifest_version=manifest.version if manifest else None,
            cache_bytes=size,
            cache_objects=objects,
            outbox_backlog=backlog,
            clock_offset_seconds=clock.offset_s,
            clock_trusted=clock.trusted,
            faults=list(details),
            fault_details={name: why for name, why in details.items() if why},
            # No relay object (NullRelay) means no relay to report, not a relay that is off.
            relay_on=None if isinstance(agent.relay, NullRelay) else agent.relay.is_on,
            player_stuck_stops_total=player.stuck_stops,
        )
        return sample

    async def status(self) -> dict[str, Any]:
        agent = self.agent
        programme = agent.programme
        now_playing = programme.now_playing()
        clock = agent.clock.status()
        objects, size = agent.cache.usage()
        manifest = agent.manifest
        decision = programme.last_decision
        counters = agent.counters
        outbox = await self.outbox()
        return {
            "device_id": agent.identity.device_id,
            "device_kind": agent.profile.device_kind.value,
            "commune": agent.identity.commune,
            "profile": agent.profile.name,
            # The hub node in use, the enrolled one (preferred whenever it answers), and every
            # node this device may fail over to, in the order it tries them.
            "hub_url": agent.client.base_url,
            "hub_home": agent.sync.home,
            "hub_urls": agent.sync.hub_order,
            "hub_connected": agent.sync.connected.is_set(),
            "manifest_version": manifest.version if manifest else None,
            "now_playing": now_playing.model_dump(mode="json") if now_playing else None,
            "position_s": agent.player.position() if now_playing else None,
            "queue": programme.upcoming(),
            "reason": decision.reason if decision else "starting",
            # Today's, as the scheduler reads them: a weekday's own or a date's exception.
            "windows": [
                {"start": f"{w.start_time:%H:%M}", "end": f"{w.end_time:%H:%M}"}
                for w in programme.windows_today()
            ],
            "volume": programme.volume(),
            "last_sync_at": (
                agent.sync.last_sync_at.isoformat() if agent.sync.last_sync_at else None
            ),
            "clock": {
                "trusted": clock.trusted,
                "offset_s": clock.offset_s,
                "source": clock.source,
                "reason": clock.reason,
            },
            "cache": {"objects": objects, "bytes": size},
            "downloads": {
                sha: {"done": done, "total": total}
                for sha, (done, total) in counters.downloads.items()
            },
            "outbox": outbox,
            # Pi power, SD card and relay (issue #4), with the raw throttled word besides.
            "hardware": {**agent.hardware, "relay_on": agent.relay.is_on},
            "rejected": {
                "manifests": counters.rejected_manifests,
                "commands": counters.rejected_commands,
                "media": counters.rejected_media,
                "last": counters.last_rejection,
            },
            "faults": agent.active_faults(),
            # Held bulletins that cannot air on this device, each with the reason.
            "unplayable": agent.content.unplayable(),
        }
