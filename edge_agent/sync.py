"""Sync with the hub (đồng bộ): the push channel, signed commands and signed manifests.

Nothing is obeyed that does not verify against the pinned keys, is not addressed to this
device, or was seen before (the command-id replay check, kept in memory so a pushed
emergency waits for no disk).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import aiohttp
from pydantic import BaseModel, ValidationError

from loa_contract import (
    AckStatus,
    Command,
    CommandAck,
    CommandDocument,
    EmergencyCancel,
    EmergencyStart,
    Manifest,
    ManifestBulletin,
    ManifestReady,
    Resync,
    SetVolume,
    SignatureError,
    SignedEnvelope,
    StopPlayback,
    TestTone,
    UnknownKey,
)

from .hubclient import HubRejected, HubUnavailable
from .hubs import after_failure, failover_order
from .parts import AgentPart
from .store import COMMAND_GRACE, SeenCommand, StaleManifest

M = TypeVar("M", bound=BaseModel)
#: A device asks the hub for its key endorsements at most this often.
KEYS_ASKED_EVERY_S = 60.0

if TYPE_CHECKING:
    from .agent import Agent

log = logging.getLogger("edge_agent")

#: Commands an operator sends from the console: each is answered applied or refused.
OPERATOR_COMMANDS = (SetVolume, StopPlayback, TestTone, Resync)

#: The setting holding the signed envelope of the last manifest that named hub nodes.
HUB_LIST_SETTING = "hub_nodes_manifest"


class HubSync(AgentPart):
    def __init__(self, agent: Agent) -> None:
        super().__init__(agent)
        self.etag: str | None = None
        #: Set while the push channel is open.
        self.connected = asyncio.Event()
        self.last_sync_at: datetime | None = None
        #: Command ids seen, with their expiry: the replay check, in memory so a pushed
        #: emergency waits for no disk. `_unsaved_commands` are written after the player
        #: started: in the commit of the play they started (`take_unsaved`), or on their
        #: own (`save_commands`), with the emergency each one carries.
        self.seen_commands: dict[str, datetime] = {}
        self._unsaved_commands: list[SeenCommand] = []
        self._manifest_after_play = False
        self._manifest_fetch: asyncio.Task[None] | None = None
        self._manifest_wanted = False
        self._manifest_retry: asyncio.Task[None] | None = None
        #: When the hub's key endorsements were last asked for (monotonic seconds).
        self._keys_asked_at = -KEYS_ASKED_EVERY_S
        #: The hub nodes the verified manifest names, and the order this device tries them
        #: in: its enrolled hub first (see edge_agent/hubs.py).
        self.listed_hubs: list[str] = []
        self.hub_order: list[str] = failover_order(
            agent.identity.hub_url, [], agent.identity.device_id
        )
        #: The nodes of the manifest kept in the settings (HUB_LIST_SETTING).
        self._kept_hubs: list[str] = []
        #: The open push socket: operator commands are answered on it (CommandAck).
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    # ------------------------------------------------------------------ the push channel

    async def run(self) -> None:
        agent = self.agent
        config = agent.config
        client = agent.client
        backoff = config.reconnect_min_s
        next_poll = 0.0
        next_home_check = 0.0
        failures = 0
        while True:
            connecting = time.monotonic()
            try:
                ws = await client.connect_ws(heartbeat=config.ws_heartbeat_s)
            except (HubUnavailable, HubRejected, aiohttp.ClientError, OSError) as exc:
                log.debug("push channel unavailable at %s: %s", client.base_url, exc)
                round_failed = True
                if not isinstance(exc, HubRejected):
                    # Down or failing, not merely refusing the upgrade (a carrier proxy does):
                    # the next node is tried, and the back-off grows once all have failed.
                    failures += 1
                    following, round_failed = after_failure(
                        self.hub_order, client.base_url, failures
                    )
                    self._use_hub(following, f"{client.base_url} unreachable: {exc}")
                elif client.base_url != self.home and time.monotonic() >= next_home_check:
                    # Polling another node: go back home as soon as home answers.
                    next_home_check = time.monotonic() + config.home_probe_s
                    if await client.answers(self.home):
                        self._use_hub(self.home, "the enrolled hub answers again")
                if time.monotonic() >= next_poll:
                    # Push is down: fall back to polling, with the ETag so it costs little.
                    await self.refresh_manifest()
                    next_poll = time.monotonic() + config.poll_interval_s
                # Full jitter, so a thousand devices do not come back in the same second.
                await asyncio.sleep(random.uniform(0, backoff))
                if round_failed:
                    backoff = min(backoff * 2, config.reconnect_max_s)
                continue
            failures = 0
            backoff = config.reconnect_min_s
            self.connected.set()
            self._ws = ws
            agent.report_wake.set()
            agent.changed()
            # Served by another node: ask now and then whether home is back.
            homeward = (
                None
                if client.base_url == self.home
                else asyncio.create_task(self._return_home(ws), name="return-home")
            )
            # The hub signs a manifest_ready the moment the socket opens: its issue time is
            # at most one connect round trip old, so it sets the clock. Later frames may
            # have waited in buffers for any time: they do not.
            first_frame = True
            try:
                async for message in ws:
                    if message.type is aiohttp.WSMsgType.TEXT:
                        if agent.on_frame is not None:
                            agent.on_frame()
                        # One loop turn before the work on it: where many agents share a
                        # process (the fleet simulator), every one reads its frame first, so
                        # the hub's delivery is timed apart from the agents' own CPU.
                        await asyncio.sleep(0)
                        if first_frame:
                            first_frame = False
                            await self._connect_time_seen(
                                message.data, time.monotonic() - connecting
                            )
                        await self.handle_push(message.data)
                    elif message.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE):
                        break
            except (aiohttp.ClientError, OSError) as exc:
                log.info("push channel lost: %s", exc)
            finally:
                if homeward is not None:
                    homeward.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await homeward
                self.connected.clear()
                self._ws = None
                agent.changed()
                with contextlib.suppress(Exception):
                    await ws.close()
            await asyncio.sleep(random.uniform(0, config.reconnect_min_s))

    async def _return_home(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """While another node serves this device, ask the enrolled hub every `home_probe_s`
        (jittered, so a fleet does not return in one second) whether it answers; when it
        does, end this node's socket: the push loop then connects home."""
        config = self.agent.config
        while True:
            await asyncio.sleep(random.uniform(0.5, 1.0) * config.home_probe_s)
            if await self.agent.client.answers(self.home):
                self._use_hub(self.home, "the enrolled hub answers again")
                with contextlib.suppress(Exception):
                    await ws.close()
                return

    # ------------------------------------------------------------------ hub nodes

    @property
    def home(self) -> str:
        """The hub this device was enrolled with: preferred whenever it answers."""
        return self.hub_order[0]

    def _use_hub(self, url: str, why: str) -> None:
        client = self.agent.client
        if url == client.base_url:
            return
        log.warning("switching hub from %s to %s: %s", client.base_url, url, why)
        client.switch_to(url)
        self.agent.changed()

    def _hold_hub_list(self, listed: list[str]) -> None:
        identity = self.agent.identity
        self.listed_hubs = list(listed)
        self.hub_order = failover_order(identity.hub_url, listed, identity.device_id)

    async def restore_hub_list(self) -> None:
        """The nodes known before this start: those of the manifest in force, else those of
        the last verified manifest that named any, kept in the settings as the signed
        envelope and verified again now (nothing unsigned chooses where the agent connects)."""
        agent = self.agent
        kept = await self.store.get_setting(HUB_LIST_SETTING)
        if kept is not None:
            try:
                signed = agent.keys.open(kept, Manifest)
            except SignatureError as exc:
                # Also what a key rotation does to an old copy: the next manifest replaces it.
                log.warning("the kept list of hub nodes is not used: %s", exc)
            else:
                if signed.device_id == agent.identity.device_id:
                    self._kept_hubs = signed.hub_urls
        manifest = agent.manifest
        self._hold_hub_list(
            manifest.hub_urls if manifest is not None and manifest.hub_urls else self._kept_hubs
        )

    async def _keep_hub_list(self, manifest: Manifest, envelope: bytes) -> None:
        """Hold the nodes a newly verified manifest names, and keep them across restarts. A
        manifest naming none (from a hub of one node, or older) leaves the known ones."""
        if not manifest.hub_urls:
            return
        self._hold_hub_list(manifest.hub_urls)
        if manifest.hub_urls == self._kept_hubs:
            return
        try:
            await self.store.set_setting(HUB_LIST_SETTING, bytes(envelope).decode("utf-8"))
        except (sqlite3.Error, OSError) as exc:
            self.agent.write_failed("the list of hub nodes", exc)
            return
        self._kept_hubs = manifest.hub_urls

    def refuse(self, what: str, reason: str) -> None:
        counters = self.agent.counters
        counters.last_rejection = f"{what}: {reason}"
        log.warning("refused %s: %s", what, reason)
        self.agent.changed()

    async def open_signed(self, data: SignedEnvelope | str | bytes, model: type[M]) -> M:
        """Verify what the hub signed and parse it. Signed by a key this device does not
        know: the hub may have rotated its key, so its endorsements are fetched (at most once
        a minute) and, if a trusted key vouches for the new one, the check is made again."""
        keys = self.agent.keys
        try:
            return keys.open(data, model)
        except UnknownKey:
            if not await self.learn_keys():
                raise
        return keys.open(data, model)

    async def learn_keys(self) -> bool:
        """Fetch the hub's key endorsements and trust what trusted keys vouch for: True if a
        key was learned (written to the identity before anything it signed is kept)."""
        agent = self.agent
        now = time.monotonic()
        if now - self._keys_asked_at < KEYS_ASKED_EVERY_S:
            return False  # frames under a strange key cannot make the device hammer the hub
        self._keys_asked_at = now
        try:
            chain = await agent.client.fetch_key_chain(retrying=False)
        except (HubUnavailable, HubRejected, ValidationError) as exc:
            log.info("the hub's key endorsements could not be fetched: %s", exc)
            return False
        learned = agent.keys.learn(chain.endorsements)
        if not learned:
            return False
        identity = agent.identity.model_copy(
            update={"hub_keys": [*agent.identity.hub_keys, *learned]}
        )
        await asyncio.to_thread(identity.save, agent.config.data_dir)
        agent.identity = identity
        log.warning(
            "the hub rotated its signing key: now trusting %s",
            ", ".join(k.key_id for k in learned),
        )
        return True

    async def _connect_time_seen(self, data: str, round_trip_s: float) -> None:
        """The first frame of a push connection: signed as the socket opened, so its issue
        time is at most `round_trip_s` old. Checked like any frame (signature, address, not
        seen before) before its time is believed; `handle_push` then acts on it."""
        agent = self.agent
        try:
            command = (await self.open_signed(data, CommandDocument)).command
        except SignatureError:
            return  # `handle_push` refuses and counts it
        if (
            command.addressed_to(agent.identity.device_id, agent.commune())
            and command.command_id not in self.seen_commands
        ):
            await agent.timekeeping.signed_time_seen(command.issued_at, round_trip_s)

    async def handle_push(self, data: str) -> None:
        agent = self.agent
        counters = agent.counters
        try:
            command = (await self.open_signed(data, CommandDocument)).command
        except SignatureError as exc:
            counters.rejected_commands += 1
            self.refuse("pushed command", str(exc))
            return
        if not command.addressed_to(agent.identity.device_id, agent.commune()):
            counters.rejected_commands += 1
            self.refuse("pushed command", f"{command.type} is not addressed to this device")
            return
        if agent.on_command is not None:
            agent.on_command(command)
        if command.expires_at <= agent.clock.now() and agent.clock.corrected():
            # An unconfirmed clock cannot judge expiry (a Pi booted a day ahead would refuse
            # every emergency); the signature and the command-id replay check still hold.
            detail = f"{command.type} expired at {command.expires_at}"
            self.refuse("pushed command", detail)
            if isinstance(command, OPERATOR_COMMANDS):
                self.acknowledge(command.command_id, AckStatus.REFUSED, "expired", detail)
            return
        if not self._first_sight(command, data):
            return
        clock = agent.clock
        if clock.corrected() and command.issued_at > clock.now():
            # The hub signed this before it was heard: its time is a lower bound on now, and
            # a command "from the future" says this device's estimate of the hub's time
            # trails it (anchored on a reply a busy loop read late, say). Without this an
            # emergency waited out the gap (6 s for ~150 of 5,000 simulated devices), and
            # window edges and proofs of play were timed on the slow estimate. In memory
            # only: the timekeeping part persists the anchor on its own schedule.
            clock.observe_signed_time(command.issued_at)
            agent.programme.wake.set()
        match command:
            case EmergencyStart(bulletin=bulletin):
                if not clock.corrected():
                    agent.emergency_shift[bulletin.id] = clock.now() - command.issued_at
                self._accept_emergency(bulletin)
                # The hub sends no manifest nudge after an emergency: the start implies it.
                # Fetched once the emergency plays (`follow_up`): a manifest being fetched
                # and verified must not hold the loop while the player starts.
                self._manifest_after_play = True
            case EmergencyCancel(bulletin_id=bulletin_id):
                agent.cancelled.add(bulletin_id)
                await self.store.cancel(bulletin_id)
                agent.programme.wake.set()
                self.schedule_manifest_fetch(agent.config.emergency_manifest_jitter_s)
            case ManifestReady(version=version):
                if agent.manifest is None or version > agent.manifest.version:
                    self.schedule_manifest_fetch()
            case SetVolume(volume=volume):
                try:
                    await agent.programme.set_volume(volume)
                except (sqlite3.Error, OSError) as exc:
                    # Heard, but not kept: a restart would go back to the old level.
                    agent.write_failed("the volume", exc)
                    self.acknowledge(command.command_id, AckStatus.REFUSED, "not_saved", f"{exc}")
                else:
                    self.acknowledge(command.command_id, AckStatus.APPLIED)
            case StopPlayback():
                # Signed by the hub: the province may stop anything, an emergency included.
                # A stop ends the airing on air now and cancels nothing: an emergency still
                # active airs again at its next turn (a board, which keeps every active
                # emergency up, at once). Taking an emergency off the air is its cancel.
                # The programme loop answers once it has acted.
                agent.request("stop", origin="hub", command_id=command.command_id)
            case TestTone():
                agent.request("test_tone", origin="hub", command_id=command.command_id)
            case Resync():
                if await self.resync():
                    self.acknowledge(command.command_id, AckStatus.APPLIED)
                else:
                    self.acknowledge(
                        command.command_id,
                        AckStatus.REFUSED,
                        "hub_unreachable",
                        "the manifest could not be fetched",
                    )

    def acknowledge(
        self,
        command_id: str,
        status: AckStatus,
        reason: str | None = None,
        detail: str | None = None,
    ) -> None:
        """Answer an operator command on the push socket it came by. Sent in the background
        so a slow socket never holds the programme loop; with no socket the answer is lost
        and the hub keeps the command as "sent", which is the truth it heard."""
        ws = self._ws
        if ws is None or ws.closed:
            log.info("command %s %s, but the push channel is closed", command_id, status.value)
            return
        ack = CommandAck(
            command_id=command_id,
            status=status,
            reason=reason,
            detail=None if detail is None else detail[:500],
            at=self.agent.clock.now(),
        )

        async def send() -> None:
            with contextlib.suppress(aiohttp.ClientError, OSError, ConnectionError):
                await ws.send_str(ack.model_dump_json(exclude_none=True))

        self.agent.background(send(), "command-ack")

    def _first_sight(self, command: Command, frame: str) -> bool:
        """True the first time a command id is seen (in memory: no disk on this path); its
        durable record, and the emergency it carries, follow in `save_commands`."""
        if command.command_id in self.seen_commands:
            return False
        self.seen_commands[command.command_id] = command.expires_at
        hold = command.bulletin if isinstance(command, EmergencyStart) else None
        self._unsaved_commands.append(
            SeenCommand(command.command_id, command.expires_at, hold, frame)
        )
        # The programme loop writes them down, after it has acted on them.
        self.agent.programme.wake.set()
        return True

    def _accept_emergency(self, bulletin: ManifestBulletin) -> None:
        """Play `bulletin` now; the store holds it once its command is saved."""
        agent = self.agent
        if bulletin.id in agent.cancelled:
            return
        agent.emergencies[bulletin.id] = bulletin
        agent.programme.held_changed()
        if agent.programme.play_item(bulletin, check_file=False) is None:
            agent.content.ensure()  # it plays as soon as its media is here
        agent.programme.wake.set()

    async def follow_up(self) -> None:
        """What a pushed command asks for once the player has acted on it."""
        await self.save_commands()
        if self._manifest_after_play:
            self._manifest_after_play = False
            self.schedule_manifest_fetch(self.agent.config.emergency_manifest_jitter_s)

    def take_unsaved(self) -> list[SeenCommand]:
        """The command ids seen and not yet durable, for the programme to record in the
        commit of the play they started (one disk flush for a pushed emergency, not two).
        An emergency cancelled meanwhile is not held, so a restart never revives it. The
        caller gives them back (`give_back`) if that commit fails."""
        unsaved, self._unsaved_commands = self._unsaved_commands, []
        cancelled = self.agent.cancelled
        return [
            c._replace(hold=None) if c.hold is not None and c.hold.id in cancelled else c
            for c in unsaved
        ]

    def give_back(self, seen: list[SeenCommand]) -> None:
        """Commands `take_unsaved` handed out whose commit failed: written at the next chance
        (the replay check holds meanwhile: it is in memory)."""
        self._unsaved_commands[:0] = seen

    def saved(self) -> None:
        """Forget the command ids past their grace, on the same terms as the store."""
        horizon = datetime.now(UTC) - COMMAND_GRACE
        expired = [cid for cid, expiry in self.seen_commands.items() if expiry < horizon]
        for command_id in expired:
            del self.seen_commands[command_id]

    async def save_commands(self) -> None:
        """Make the command ids seen (and the emergencies they brought) durable, when no play
        took them into its own commit.

        Called by the programme loop right after it acted on them. A crash before this loses
        no emergency for good: the hub sends every active emergency again when the device
        reconnects, and the manifest holds it.
        """
        if not self._unsaved_commands:
            return
        unsaved = self.take_unsaved()
        for index, command in enumerate(unsaved):
            try:
                # The emergency is kept with the signed frame it came in: verified at each
                # start.
                await self.store.command_seen(
                    command.command_id, command.expires_at, hold=command.hold, frame=command.frame
                )
            except (sqlite3.Error, OSError) as exc:
                self.give_back(unsaved[index:])
                self.agent.write_failed("a command seen", exc)
                return
        self.saved()

    # ------------------------------------------------------------------ manifests

    def schedule_manifest_fetch(self, jitter_s: float | None = None) -> None:
        # A fetch already under way may have its answer already: ask for one more after it,
        # or a connected device (which does not poll) would sit on an old manifest.
        self._manifest_wanted = True
        if self._manifest_fetch is not None and not self._manifest_fetch.done():
            return
        config = self.agent.config
        spread = config.manifest_fetch_jitter_s if jitter_s is None else jitter_s

        async def fetch_later() -> None:
            await asyncio.sleep(random.uniform(0, spread))
            while self._manifest_wanted:
                self._manifest_wanted = False
                await self.refresh_manifest()

        self._manifest_fetch = self.agent.background(fetch_later(), "manifest")

    def _retry_manifest_later(self) -> None:
        if self._manifest_retry is not None and not self._manifest_retry.done():
            return

        async def retry() -> None:
            await asyncio.sleep(random.uniform(0.5, 1.0) * self.agent.config.poll_interval_s)
            self.schedule_manifest_fetch()

        self._manifest_retry = self.agent.background(retry(), "manifest-retry")

    async def resync(self) -> bool:
        """Fetch the manifest again and re-verify the cache (hub command, local page); False
        when the hub could not be asked."""
        fetched = await self.refresh_manifest(force=True)
        self.agent.content.ensure(verify=True)
        return fetched

    async def refresh_manifest(self, *, force: bool = False) -> bool:
        """Ask the hub for the manifest; False when it did not answer (the last verified one
        stays in force either way)."""
        agent = self.agent
        trusted_before = await self.store.trusted_version()
        started = time.monotonic()
        try:
            fetched = await agent.client.fetch_manifest(None if force else self.etag)
        except (HubUnavailable, HubRejected) as exc:
            log.debug("manifest fetch failed: %s", exc)
            return False
        round_trip = time.monotonic() - started
        self.last_sync_at = agent.clock.now()
        if fetched.envelope is None:
            return True
        try:
            adopted = await self.apply_manifest(fetched.envelope)
        except (sqlite3.Error, OSError) as exc:
            # The card cannot take it now (full, failing): the last verified manifest stays
            # in force, and the new one is asked for again, since no push will say it twice.
            self.agent.write_failed("a new manifest", exc)
            self._retry_manifest_later()
            return True
        manifest = agent.manifest
        if (
            adopted
            and manifest is not None
            and manifest.version > trusted_before
            and not agent.clock.corrected()
        ):
            # The hub signs a device's manifest when that version is first fetched, so a new
            # version's issue time is about one round trip old: time enough for a device
            # that cannot keep a push channel open. Not for a clock already set by the
            # hub's push or NTP, which a copy signed earlier (a lost answer) would pull back.
            await agent.timekeeping.signed_time_seen(manifest.issued_at, round_trip)
            self.last_sync_at = agent.clock.now()
        return True

    async def apply_manifest(self, envelope: bytes) -> bool:
        """Verify and adopt a signed manifest; anything wrong leaves the last good one in force."""
        agent = self.agent
        counters = agent.counters
        store = self.store
        try:
            manifest = await self.open_signed(envelope, Manifest)
        except SignatureError as exc:
            counters.rejected_manifests += 1
            self.refuse("manifest", str(exc))
            return False
        if manifest.device_id != agent.identity.device_id:
            counters.rejected_manifests += 1
            self.refuse("manifest", f"it is for device {manifest.device_id}")
            return False
        if manifest.expires_at <= agent.clock.now() and agent.clock.status().trusted:
            # An untrusted clock cannot judge expiry (a Pi booted a month ahead would refuse
            # every manifest and never learn the time from one); the version floor still holds.
            counters.rejected_manifests += 1
            self.refuse("manifest", f"version {manifest.version} expired at {manifest.expires_at}")
            return False
        try:
            # With no verified manifest held (refused at start, or lost with the database),
            # the hub's signed copy of the trusted version itself is taken back.
            await store.save_manifest(manifest, envelope, reinstate=agent.manifest is None)
        except StaleManifest:
            counters.rejected_manifests += 1
            self.refuse(
                "manifest",
                f"version {manifest.version} is not newer than {await store.trusted_version()}",
            )
            return False
        loudness_before = agent.programme.volume()
        self.adopt(manifest)
        await self._keep_hub_list(manifest, envelope)
        if agent.programme.volume() != loudness_before:
            await agent.programme.volume_changed()
        for bulletin_id in manifest.cancelled:
            if bulletin_id not in agent.cancelled:
                agent.cancelled.add(bulletin_id)
                await store.cancel(bulletin_id)
        log.info(
            "manifest version %d adopted (%d bulletins)", manifest.version, len(manifest.bulletins)
        )
        agent.content.ensure()
        agent.programme.wake.set()
        agent.changed()
        return True

    def adopt(self, manifest: Manifest) -> None:
        """`manifest` (verified) is the one in force from now on."""
        self.agent.manifest = manifest
        self.etag = f'"{manifest.version}"'
        self.agent.programme.held_changed()
