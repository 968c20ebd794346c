"""Updates of the agent itself (issue #14): ask the hub, fetch and check a release, install
it beside the running one, switch at a quiet moment, and make the new one prove itself.

The file layout, the switch and the way back are in edge_agent/releases.py; the launcher that
finishes an interrupted switch at boot in edge_agent/launch.py. This part decides *when*:

- a release is taken only if a pinned hub key signed its descriptor, it is newer than what
  runs (or the descriptor is a signed, unexpired downgrade), this device has not refused it
  before, and its bytes hash to the signed sha256;
- the switch waits while an emergency is held or anything is on air, and inside a broadcast
  window while something is due in it (`quiet_for_switch`);
- the new release has `probation_s` to be connected to a hub, have its programme loop alive
  (the supervisor's health) and its player answering; otherwise it switches back itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from loa_contract import (
    MediaRef,
    Priority,
    ReleaseDescriptor,
    SignatureError,
    UpdateOffer,
    UpdateState,
    descriptor_expired,
    is_newer,
)

from .cache import CacheIntegrityError, MediaCache
from .hubclient import HubError, agent_version
from .parts import AgentPart, wait_event
from .players.base import PlayerState
from .releases import BASE, HashRefusal, Pending, ReleaseError, Releases, switch_back
from .scheduler import current_window, is_eligible
from .scheduler_types import ScheduleInput

if TYPE_CHECKING:
    from .agent import Agent

log = logging.getLogger("edge_agent.updater")

#: The type the hub serves a release file as (it is an uncompressed tar).
RELEASE_MIME = "application/x-tar"
#: After a release file whose bytes do not hash to the signed sha256 (the hub's copy damaged,
#: or a proxy's bytes in its place), the same file is not fetched again for this long, then
#: twice as long after each further refusal, up to MISMATCH_MAX_WAIT_S: a cluster on 3G does
#: not download a release every update check (5 min) for nothing.
MISMATCH_FIRST_WAIT_S = 15 * 60.0
MISMATCH_MAX_WAIT_S = 24 * 3600.0


def mismatch_wait(failures: int) -> float:
    """Pure: how long a file refused `failures` times in a row is left alone."""
    doublings = min(max(0, failures - 1), 32)  # the cap is reached long before
    return min(MISMATCH_FIRST_WAIT_S * 2.0**doublings, MISMATCH_MAX_WAIT_S)


def after_mismatch(previous: HashRefusal | None, now: float) -> HashRefusal:
    """Pure: the refusal to remember when a file's bytes did not match its signed hash."""
    failures = (previous.failures if previous is not None else 0) + 1
    return HashRefusal(failures=failures, retry_at=now + mismatch_wait(failures))


def fetch_held_back(refusal: HashRefusal | None, now: float) -> float | None:
    """Pure: seconds before a refused file may be fetched again, or None when it may now.
    A wait longer than the longest there is means the clock went back (a Pi without a
    battery clock): the file may be fetched, rather than left alone for that jump."""
    if refusal is None:
        return None
    left = refusal.retry_at - now
    if left <= 0 or left > MISMATCH_MAX_WAIT_S:
        return None
    return left


def judge_descriptor(
    descriptor: ReleaseDescriptor, running: str, refused: dict[str, str], now: datetime
) -> str | None:
    """Pure: why this signed release must not be installed here, or None to go ahead."""
    if descriptor.version in refused:
        return f"release {descriptor.version} was refused here: {refused[descriptor.version]}"
    if descriptor.version == running:
        return None
    if descriptor.downgrade:
        if descriptor.expires_at is None or descriptor_expired(descriptor, now):
            return f"the rollback to {descriptor.version} has expired"
        return None
    if not is_newer(descriptor.version, running):
        return (
            f"release {descriptor.version} is not newer than {running}"
            " (only a signed rollback may go back)"
        )
    return None


def quiet_for_switch(inp: ScheduleInput, emergencies_held: bool) -> str | None:
    """Pure: why the agent must not stop for a switch now, or None when it may.

    Never during an emergency, never on air, and inside a broadcast window only when nothing
    is due in it (a window with nothing to air is as quiet as the night)."""
    now = inp.now
    eligible = [c for c in inp.candidates if is_eligible(c, now, inp.cancelled)]
    if emergencies_held or any(c.priority is Priority.EMERGENCY for c in eligible):
        return "an emergency is active"
    if inp.playing is not None:
        return f"on air: {inp.playing.bulletin_id}"
    window = current_window(now, inp.windows)
    if window is not None and eligible:
        return f"inside a broadcast window with {len(eligible)} bulletins to air"
    return None


class Updater(AgentPart):
    def __init__(self, agent: Agent, *, release: str = BASE) -> None:
        super().__init__(agent)
        config = agent.config
        self.releases = Releases(config.data_dir)
        self._files: MediaCache | None = None
        #: The folder this process runs from (BASE: the provisioned install).
        self.release = release
        self.running_version = agent_version()
        #: Set to have the process end; systemd (Restart=always) starts the launcher again.
        self.restart = asyncio.Event()
        #: What the updater does now, for the status page and the tests.
        self.activity = "idle"
        #: Called with the name of each step of a switch as it is reached; fault injection
        #: (edge-agent run, LOA_FAULT_KILL_AT) kills the process there.
        self.on_step: Callable[[str], None] | None = None
        self.wake = asyncio.Event()

    @property
    def files(self) -> MediaCache:
        """Release files being fetched: made on first use, so agents that never update (the
        fleet simulator's thousands) leave no folders behind."""
        if self._files is None:
            self._files = MediaCache(
                self.releases.download, reserve=self.agent.config.disk_reserve_bytes
            )
        return self._files

    def _step(self, name: str) -> None:
        log.info("update: %s", name)
        self.activity = name
        self.agent.changed()
        if self.on_step is not None:
            self.on_step(name)

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        state = await asyncio.to_thread(self.releases.load_state)
        pending = state.pending
        if pending is not None and pending.version == self.release:
            await self._prove(pending)
            state = await asyncio.to_thread(self.releases.load_state)
        if not self.restart.is_set():
            # Half-made installs, and releases neither running nor to go back to, take room.
            keep = {self.release, *([state.previous] if state.previous else [])}
            await asyncio.to_thread(self.releases.prune, keep)
        while not self.restart.is_set():
            try:
                await self.check_once()
            except HubError as exc:
                log.info("update check failed: %s", exc)
            if self.restart.is_set():
                break
            self.wake.clear()
            await wait_event(self.wake, self.agent.config.update_check_s)
        # The process is ending for a switch: nothing more to do (and returning would have
        # the supervisor start this again).
        await asyncio.get_running_loop().create_future()

    async def check_once(self) -> None:
        state = await asyncio.to_thread(self.releases.load_state)
        offer: UpdateOffer = await self.agent.client.check_update(
            state.report(self.running_version)
        )
        if offer.release is None:
            return
        try:
            descriptor = await self.agent.sync.open_signed(offer.release, ReleaseDescriptor)
        except SignatureError as exc:
            refusal = f"release descriptor refused: {exc}"
            if (state.last or {}).get("reason") != refusal:
                await self._record("failed", None, refusal)
            return
        if descriptor.version == self.running_version:
            return
        why = judge_descriptor(
            descriptor, self.running_version, state.refused, self.agent.clock.now()
        )
        if why is not None:
            said = (state.last or {}).get("reason")
            # Said once, not at every check: the SD card is not written every few minutes.
            if descriptor.version not in state.refused and said != why:
                log.info("release %s not taken: %s", descriptor.version, why)
                await self._record("failed", descriptor.version, why)
            return
        held = fetch_held_back(state.mismatched.get(descriptor.sha256), time.time())
        if held is not None:
            # Said by the last report already (its reason names the next try).
            self.activity = (
                f"failed: release {descriptor.version}'s file did not match its signed hash;"
                f" next try in {held / 60:.0f} min"
            )
            return
        await self._update(descriptor)

    async def _record(
        self,
        outcome: UpdateState,
        target: str | None,
        reason: str | None,
        *,
        refuse: bool = False,
        mismatched: HashRefusal | None = None,
        sha256: str | None = None,
    ) -> None:
        def write() -> None:
            state = self.releases.load_state()
            state.last = {"state": outcome, "target_version": target, "reason": reason}
            if refuse and target is not None and reason is not None:
                state.refused[target] = reason
            if sha256 is not None:
                # The hub offers one release at a time: refusals of other files are stale.
                state.mismatched = {sha256: mismatched} if mismatched is not None else {}
            self.releases.save_state(state)

        await asyncio.to_thread(write)
        self.activity = outcome if reason is None else f"{outcome}: {reason}"
        self.agent.changed()
        await self._tell_hub()

    async def _tell_hub(self) -> None:
        """Say the new state now (once, best effort): an update can wait hours for a quiet
        moment, and the operators should see why meanwhile. The next check says it again."""
        state = await asyncio.to_thread(self.releases.load_state)
        try:
            await self.agent.client.check_update(state.report(self.running_version), retrying=False)
        except HubError as exc:
            log.info("could not tell the hub about the update: %s", exc)

    # ------------------------------------------------------------------ fetch, install, switch

    async def _update(self, descriptor: ReleaseDescriptor) -> None:
        version = descriptor.version
        self._step("download")
        await self._record("downloading", version, None)
        ref = MediaRef(sha256=descriptor.sha256, size=descriptor.size, mime=RELEASE_MIME)
        try:
            archive = await self.files.fetch(self.agent.client, ref)
        except CacheIntegrityError as exc:
            state = await asyncio.to_thread(self.releases.load_state)
            refusal = after_mismatch(state.mismatched.get(descriptor.sha256), time.time())
            wait = mismatch_wait(refusal.failures)
            await self._record(
                "failed",
                version,
                f"the release file is not what was signed: {exc}"
                f" (refused {refusal.failures} times; next try in {wait / 60:.0f} min)",
                mismatched=refusal,
                sha256=descriptor.sha256,
            )
            return
        self._step("install")
        try:
            await asyncio.to_thread(self.releases.install, archive, version)
            await asyncio.to_thread(self.releases.smoke_check, version)
        except ReleaseError as exc:
            await self._record("failed", version, str(exc), refuse=True)
            return
        finally:
            # Unpacked (or refused): the file itself is not needed any more.
            await asyncio.to_thread(self.files.remove, descriptor.sha256)
        self._step("installed")
        await self._record("waiting", version, None, sha256=descriptor.sha256)
        await self._wait_for_quiet(version)
        await self._switch(version)

    def not_quiet(self) -> str | None:
        agent = self.agent
        held = any(
            b.priority is Priority.EMERGENCY and b.id not in agent.cancelled
            for b in agent.emergencies.values()
        )
        return quiet_for_switch(agent.schedule_input(), held)

    async def _wait_for_quiet(self, version: str) -> None:
        said: str | None = None
        while (why := self.not_quiet()) is not None:
            if why != said:
                await self._record("waiting", version, why)
                said = why
            # Looked at again on any change of the agent's state, and at least every 10 s
            # (a window closing changes nothing else).
            try:
                await self.agent.wait_until(lambda: self.not_quiet() is None, timeout=10.0)
            except TimeoutError:
                pass

    async def _switch(self, version: str) -> None:
        self._step("switch")
        stopped_at = time.time()

        def switch() -> None:
            state = self.releases.load_state()
            state.pending = Pending(version=version, previous=self.release, stopped_at=stopped_at)
            self.releases.save_state(state)
            self._step("pending-written")
            self.releases.point_current(version)

        await asyncio.to_thread(switch)
        self._step("switched")
        log.info("switched to release %s; restarting", version)
        self.restart.set()

    # ------------------------------------------------------------------ probation

    def proof_missing(self) -> str | None:
        """What the running release has not shown yet, or None once it has proved itself."""
        agent = self.agent
        if not agent.sync.connected.is_set():
            return "not connected to a hub"
        if not agent.supervisor.healthy():
            problems = agent.supervisor.problems()
            return "tasks not healthy: " + ("; ".join(problems.values()) or "starting")
        if agent.player.health().state is PlayerState.ERROR:
            return "the player reports an error"
        return None

    async def _prove(self, pending: Pending) -> None:
        agent = self.agent
        ready_at = time.time()
        silence = round(max(0.0, ready_at - pending.stopped_at), 3)
        self._step("probation")
        deadline = time.monotonic() + agent.config.probation_s
        while (missing := self.proof_missing()) is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                await agent.wait_until(
                    lambda: self.proof_missing() is None, timeout=min(1.0, remaining)
                )
            except TimeoutError:
                pass
        if missing is None:

            def commit() -> None:
                current = self.releases.load_state()
                current.pending = None
                current.previous = pending.previous
                current.last = {
                    "state": "updated",
                    "target_version": pending.version,
                    "reason": None,
                    "switch_silence_s": silence,
                }
                self.releases.save_state(current)

            await asyncio.to_thread(commit)
            self._step("proved")
            log.info("release %s proved itself; switch silence %.1f s", pending.version, silence)
            return
        reason = (
            f"release {pending.version} did not prove itself in"
            f" {agent.config.probation_s:.0f} s: {missing}; switched back to {pending.previous}"
        )
        log.error("%s", reason)

        def back() -> None:
            switch_back(self.releases, self.releases.load_state(), reason, time.time())

        await asyncio.to_thread(back)
        self._step("rolled-back")
        self.restart.set()
