"""Connected device sockets and signed pushes to them.

Fan-out is a plain loop of synchronous writes: no task, lock or timer per send. aiohttp's
`send_str` on an uncompressed socket is a synchronous `transport.write` of the frame followed,
only once more than its writer limit has gone out and the transport is paused, by an awaited
drain; the coroutine and the drain are all it adds. So the hub writes the WebSocket frame to
the connection's transport itself, encoded once per broadcast (a server's frames are unmasked:
the bytes are the same for every device), and does its own flow control: a device whose
unsent backlog exceeds a bound, or stays unsent longer than a stall limit, is dropped (its
transport aborted). It reconnects with back-off and catches up: on connect the hub sends
manifest_ready and the start frame of every active emergency. Writes to one transport happen
in call order, so each connection keeps its order; a slow socket only grows its own buffer.

Several hub nodes: each entry point (`push_manifest_ready`, `push_emergency_start`,
`push_emergency_cancel`, `send_command`, `answered`) delivers to the devices connected here
and publishes the event on the node bus (hub/node_bus.py) for the devices connected to the
other nodes; `on_node_event` is the other side, delivering what another node published.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from loa_contract import (
    KINDS_FOR_DEVICE,
    BulletinKind,
    Command,
    CommandDocument,
    DeviceKind,
    EmergencyCancel,
    EmergencyStart,
    HubSigner,
    ManifestBulletin,
    ManifestReady,
    Scope,
    utcnow,
)

from .node_bus import LocalBus, NodeBus, NodeEvent, frame_text

log = logging.getLogger(__name__)

#: Per-device signatures (manifest_ready) between two yields to the event loop, so a
#: province-wide publish does not hold up an emergency or a request for long.
SIGNING_BATCH = 200

#: Frames a broadcast writes between two yields to the event loop. Written in one go, the
#: 5,000 writes of a province cancel held the operator's next emergency for the whole
#: fan-out (40-95 ms on 2 cores while the devices read); a slice takes a millisecond or two.
BROADCAST_SLICE = 200

#: An emergency whose valid_from is this close counts as "now" (clock skew between hub hosts).
EMERGENCY_SLACK = timedelta(seconds=5)
#: Answered command ids a node remembers for `Connections.wait_answer`.
ANSWERS_KEPT = 1024
#: How many devices' socket handshakes (authentication, upgrade, catch-up) run at once; the
#: rest wait their turn before any work is done for them. In a reconnection storm (the hub
#: restarted, a province's link back) thousands arrive together: run all at once, each one's
#: short-lived objects (database rows, futures, signed frames) lay between the long-lived
#: ones of the sockets set up meanwhile, and the holes they leave stay for the sockets'
#: lifetime, 2.7 KB per device after 2,000 at once (Python's allocator frees a pool only when
#: all of it is free). Through a gate of sixteen the same 2,000 left none, and connected in
#: about the same time.
HANDSHAKES_AT_ONCE = 16
#: Cancelled emergencies a node remembers (`ActiveEmergencies.forget`).
CANCELS_KEPT = 1024
#: How long a command for a device connected elsewhere waits for the other nodes' replies
#: (a live node replies in milliseconds; this bounds a node that died since its last beat).
REPLY_WAIT_S = 1.0


class Transport(Protocol):
    """The part of asyncio's WriteTransport a connection writes through."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...

    def abort(self) -> None: ...


class Socket(Protocol):
    """The part of aiohttp's WebSocketResponse the registry uses (tests pass fakes)."""

    @property
    def closed(self) -> bool: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


def text_frame(payload: str) -> bytes:
    """One final, unmasked, uncompressed WebSocket text frame (RFC 6455 §5.2), as a server
    sends it. The socket is prepared with compression off, so no extension bit applies."""
    data = payload.encode("utf-8")
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + data


class Connection:
    __slots__ = ("backlog_since", "connected_at", "device_id", "socket", "transport")

    def __init__(
        self, device_id: str, socket: Socket, transport: Transport, connected_at: datetime
    ) -> None:
        self.device_id = device_id
        self.socket = socket
        self.transport = transport
        self.connected_at = connected_at
        #: Monotonic time since when bytes have sat unsent in the transport; None: none do.
        self.backlog_since: float | None = None

    @property
    def open(self) -> bool:
        return not self.socket.closed and not self.transport.is_closing()


def command_fields(device_id: str, now: datetime, ttl: timedelta) -> dict[str, Any]:
    return {**broadcast_fields(now, ttl), "device_id": device_id}


def broadcast_fields(now: datetime, ttl: timedelta) -> dict[str, Any]:
    return {"command_id": str(uuid.uuid4()), "issued_at": now, "expires_at": now + ttl}


@dataclass(frozen=True, slots=True)
class SignedFrame:
    """A signed command ready to write, and its id (what the API answers, what devices see)."""

    command_id: str
    frame: bytes


@dataclass(frozen=True, slots=True)
class EmergencyFrame:
    """The signed start of an active emergency, kept for devices that (re)connect."""

    bulletin_id: str
    kind: BulletinKind
    scope: Scope
    valid_from: datetime
    valid_until: datetime
    signed: SignedFrame

    def due_for(self, device_id: str, commune: str, device_kind: DeviceKind, now: datetime) -> bool:
        return (
            self.valid_from <= now + EMERGENCY_SLACK
            and now < self.valid_until
            and self.kind in KINDS_FOR_DEVICE[device_kind]
            and self.scope.includes(device_id, commune)
        )


class ActiveEmergencies:
    """Start frames of published emergencies, oldest first, each signed once.

    A reconnection storm after an outage then costs a dictionary walk per device, not a
    query and a signature per emergency per device; and a device that saw the frame before
    sees the same command id again, which it knows."""

    def __init__(self) -> None:
        self._frames: dict[str, EmergencyFrame] = {}
        #: Emergencies cancelled lately, oldest first: a start another node published just
        #: before a cancel may arrive after it, and must then not start (a cancel is final).
        self._cancelled: dict[str, None] = {}

    def __contains__(self, bulletin_id: object) -> bool:
        return bulletin_id in self._frames

    def __len__(self) -> int:
        return len(self._frames)

    def add(self, frame: EmergencyFrame) -> None:
        """Keep the start of an emergency this node found published."""
        self._cancelled.pop(frame.bulletin_id, None)
        self._frames[frame.bulletin_id] = frame

    def add_from_peer(self, frame: EmergencyFrame) -> bool:
        """Keep a start another node published, unless this node has seen it cancelled."""
        if frame.bulletin_id in self._cancelled:
            return False
        self._frames[frame.bulletin_id] = frame
        return True

    def forget(self, bulletin_id: str) -> None:
        """The emergency is cancelled: its start is dropped, and refused if it comes again."""
        self._frames.pop(bulletin_id, None)
        self._cancelled[bulletin_id] = None
        if len(self._cancelled) > CANCELS_KEPT:
            del self._cancelled[next(iter(self._cancelled))]

    def due_for(
        self, device_id: str, commune: str, device_kind: DeviceKind, now: datetime
    ) -> list[SignedFrame]:
        """What a device connecting now must hear, oldest first (the newest arrives last)."""
        for gone in [k for k, f in self._frames.items() if f.valid_until <= now]:
            del self._frames[gone]
        return [
            f.signed
            for f in self._frames.values()
            if f.due_for(device_id, commune, device_kind, now)
        ]


class Admission:
    """A place in a bounded gate (`Connections.admit`), given back once however often
    `leave` is called."""

    __slots__ = ("_gate",)

    def __init__(self, gate: asyncio.Semaphore) -> None:
        self._gate: asyncio.Semaphore | None = gate

    def leave(self) -> None:
        if self._gate is not None:
            self._gate.release()
            self._gate = None


class Connections:
    """Registry of live device WebSockets (one per device: a reconnect replaces the old one),
    the one send path to them, and the background fan-outs the API leaves running."""

    def __init__(
        self,
        signer: HubSigner,
        *,
        max_backlog_bytes: int = 256 * 1024,
        stall_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] = utcnow,
        bus: NodeBus | None = None,
    ) -> None:
        """`clock` is the hub's time (what commands are dated and expire by); `monotonic`
        times the stall of a socket's backlog; `bus` reaches the other hub nodes (set once the
        database is open: `use_bus`)."""
        self.bus: NodeBus = bus or LocalBus()
        self._signer = signer
        self._clock = clock
        self._max_backlog = max_backlog_bytes
        self._stall_s = stall_s
        self._monotonic = monotonic
        self._by_device: dict[str, Connection] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self.emergencies = ActiveEmergencies()
        #: Ids of the commands devices answered on this node lately, for whoever waits on
        #: an answer (bounded: an answer nobody waits for is forgotten in time).
        self._answered: deque[str] = deque(maxlen=ANSWERS_KEPT)
        self._answer_seen = asyncio.Condition()
        #: Other nodes' replies to the commands this node handed them, by command id.
        self._replies: dict[str, asyncio.Queue[bool]] = {}
        #: Broadcasts go out one whole after another, in the order they began: every device
        #: hears two emergencies (or a start and its cancel) in the same order.
        self._broadcasting = asyncio.Lock()
        self._handshakes = asyncio.Semaphore(HANDSHAKES_AT_ONCE)
        #: Devices whose socket handshake waits for a place (GET /api/v1/hub/process): a
        #: number that stays up says the handshakes under way are stuck, not the devices.
        self.handshakes_waiting = 0

    async def admit(self) -> Admission:
        """Wait for a place among the socket handshakes under way (HANDSHAKES_AT_ONCE)."""
        self.handshakes_waiting += 1
        try:
            await self._handshakes.acquire()
        finally:
            self.handshakes_waiting -= 1
        return Admission(self._handshakes)

    def __len__(self) -> int:
        return len(self._by_device)

    def connection(self, device_id: str) -> Connection | None:
        return self._by_device.get(device_id)

    def is_online(self, device_id: str) -> bool:
        conn = self._by_device.get(device_id)
        return conn is not None and conn.open

    def online_ids(self) -> set[str]:
        return {d for d, c in self._by_device.items() if c.open}

    async def online_anywhere(self) -> set[str]:
        """The devices connected to this node or, as they last said, to another."""
        here = self.online_ids()
        if not self.bus.shared:
            return here
        return here | await self.bus.online_elsewhere()

    def elsewhere(self, device_ids: Iterable[str]) -> list[str]:
        """Those of `device_ids` not connected to this node (other nodes may hold them)."""
        return [d for d in device_ids if not self.is_online(d)]

    def count_online(self, device_ids: Iterable[str]) -> int:
        return sum(1 for d in device_ids if self.is_online(d))

    def register(
        self, device_id: str, socket: Socket, transport: Transport
    ) -> tuple[Connection, Connection | None]:
        """Returns the new connection and the one it replaced (the caller closes that)."""
        conn = Connection(device_id, socket, transport, self._clock())
        old = self._by_device.get(device_id)
        self._by_device[device_id] = conn
        return conn, old

    def unregister(self, conn: Connection) -> None:
        if self._by_device.get(conn.device_id) is conn:
            del self._by_device[conn.device_id]

    # ------------------------------------------------------------ the send path

    def write(self, conn: Connection, frame: bytes) -> bool:
        """Write one encoded frame now, or drop a connection that has stopped draining."""
        if not conn.open:
            return False
        transport = conn.transport
        backlog = transport.get_write_buffer_size()
        if not backlog:
            conn.backlog_since = None
        elif backlog > self._max_backlog or (
            conn.backlog_since is not None
            and self._monotonic() - conn.backlog_since > self._stall_s
        ):
            self.drop(conn, f"{backlog} bytes unsent")
            return False
        try:
            transport.write(frame)
        except (ConnectionError, RuntimeError) as exc:
            self.drop(conn, repr(exc))
            return False
        if conn.backlog_since is None and transport.get_write_buffer_size():
            conn.backlog_since = self._monotonic()
        return True

    def drop(self, conn: Connection, why: str) -> None:
        """Forget a connection and abort its transport: no close handshake with a peer that
        is not reading. Its handler sees the socket end and records last_seen."""
        log.info("dropping the socket of %s: %s", conn.device_id, why)
        self.unregister(conn)
        conn.transport.abort()

    async def answered(self, command_id: str) -> None:
        """A device's answer to `command_id` is stored: wake whoever waits for it, on this
        node and on the others."""
        await self._note_answer(command_id)
        if self.bus.shared:
            await self.bus.publish("answered", {"command_id": command_id})

    async def _note_answer(self, command_id: str) -> None:
        async with self._answer_seen:
            self._answered.append(command_id)
            self._answer_seen.notify_all()

    async def wait_answer(self, command_id: str) -> None:
        """Until a device answers `command_id`, whichever node it is connected to (the
        answer is stored in the shared database first; the caller bounds the wait)."""
        async with self._answer_seen:
            await self._answer_seen.wait_for(lambda: command_id in self._answered)

    def sign(self, command: Command) -> SignedFrame:
        envelope = self._signer.sign(CommandDocument(command=command))
        return SignedFrame(command.command_id, text_frame(envelope.model_dump_json()))

    async def send_command(self, device_id: str, command: Command) -> bool:
        """Write one device's command on whichever node holds its socket: whether it went out.
        A device connected elsewhere is asked of the other live nodes, which reply at once;
        a node that does not reply within REPLY_WAIT_S counts as not holding it."""
        signed = self.sign(command)
        conn = self._by_device.get(device_id)
        if conn is not None and conn.open:
            return self.write(conn, signed.frame)
        if not self.bus.shared:
            return False
        peers = len(await self.bus.peers())
        if not peers:
            return False
        replies: asyncio.Queue[bool] = asyncio.Queue()
        self._replies[signed.command_id] = replies
        try:
            await self.bus.publish(
                "command",
                {
                    "device_id": device_id,
                    "command_id": signed.command_id,
                    "envelope": frame_text(signed.frame),
                },
            )
            async with asyncio.timeout(REPLY_WAIT_S):
                for _ in range(peers):
                    if await replies.get():
                        return True
        except TimeoutError:
            log.info("command %s: not every hub node replied in time", signed.command_id)
        finally:
            del self._replies[signed.command_id]
        return False

    async def broadcast(
        self, device_ids: Iterable[str], frame: bytes, *, still: Callable[[], bool] | None = None
    ) -> int:
        """Write the same frame to every online device among `device_ids`, BROADCAST_SLICE
        at a time with requests served in between; after the broadcasts begun before it.
        `still` is asked before each slice: once it says no (the emergency was cancelled
        meanwhile), the rest is not sent."""
        sent = 0
        async with self._broadcasting:
            for n, device_id in enumerate(device_ids):
                if n % BROADCAST_SLICE == 0:
                    if n:
                        await asyncio.sleep(0)
                    if still is not None and not still():
                        break
                conn = self._by_device.get(device_id)
                if conn is not None and self.write(conn, frame):
                    sent += 1
        return sent

    def _in_force(self, bulletin_id: str) -> Callable[[], bool]:
        return lambda: bulletin_id in self.emergencies

    async def push_manifest_ready(self, versions: dict[str, int], ttl: timedelta) -> int:
        """Tell each online device its new version, here and on the other nodes (they sign
        for their own devices). Returns how many were told here."""
        if self.bus.shared:
            away = {d: versions[d] for d in self.elsewhere(versions)}
            if away:
                await self.bus.publish(
                    "manifest_ready", {"versions": away, "ttl_s": ttl.total_seconds()}
                )
        return await self._manifest_ready_here(versions, ttl)

    async def _manifest_ready_here(self, versions: dict[str, int], ttl: timedelta) -> int:
        """Signed per device (the version differs, and the command names its device: it
        cannot be replayed to another loudspeaker)."""
        now = self._clock()
        sent = 0
        signed = 0
        for device_id, version in versions.items():
            conn = self._by_device.get(device_id)
            if conn is None or not conn.open:
                continue
            ready = ManifestReady(**command_fields(device_id, now, ttl), version=version)
            if self.write(conn, self.sign(ready).frame):
                sent += 1
            signed += 1
            if signed % SIGNING_BATCH == 0:
                await asyncio.sleep(0)
        return sent

    # ------------------------------------------------------------ emergencies

    def emergency_start(self, bulletin: ManifestBulletin, scope: Scope) -> EmergencyFrame:
        """Sign the start once for every device in `scope` (each checks it is inside) and
        keep it for devices that connect while the emergency lasts."""
        now = self._clock()
        start = EmergencyStart(
            **broadcast_fields(now, bulletin.schedule.valid_until - now),
            scope=scope,
            bulletin=bulletin,
        )
        frame = EmergencyFrame(
            bulletin_id=bulletin.id,
            kind=bulletin.kind,
            scope=scope,
            valid_from=bulletin.schedule.valid_from,
            valid_until=bulletin.schedule.valid_until,
            signed=self.sign(start),
        )
        self.emergencies.add(frame)
        return frame

    def emergency_cancel(self, bulletin_id: str, scope: Scope, ttl: timedelta) -> SignedFrame:
        """Forget the start (reconnecting devices learn the cancel from their manifest) and
        sign the cancel once for the whole scope."""
        self.emergencies.forget(bulletin_id)
        cancel = EmergencyCancel(
            **broadcast_fields(self._clock(), ttl), scope=scope, bulletin_id=bulletin_id
        )
        return self.sign(cancel)

    async def push_emergency_start(self, device_ids: Iterable[str], start: EmergencyFrame) -> int:
        """Write the start to the online devices among `device_ids` here, then hand it to the
        other nodes (which also keep it for their reconnecting devices). With no devices, an
        emergency approved for later: only kept. Returns how many were written here."""
        # A cancel may be committed before the start is queued or during its fan-out: from
        # then on, not one more device hears the start, nor does another node.
        in_force = self._in_force(start.bulletin_id)
        targets = list(device_ids)
        sent = await self.broadcast(targets, start.signed.frame, still=in_force)
        if self.bus.shared and in_force():
            await self.bus.publish(
                "emergency_start",
                {
                    "bulletin_id": start.bulletin_id,
                    "kind": start.kind.value,
                    "scope": start.scope.model_dump(mode="json"),
                    "valid_from": start.valid_from.isoformat(),
                    "valid_until": start.valid_until.isoformat(),
                    "command_id": start.signed.command_id,
                    "envelope": frame_text(start.signed.frame),
                    "devices": self.elsewhere(targets),
                },
            )
        return sent

    async def push_emergency_cancel(
        self, bulletin_id: str, device_ids: Iterable[str], cancel: SignedFrame
    ) -> int:
        """Write the cancel (`emergency_cancel`'s) here, then on the other nodes, which also
        forget the start. Returns how many were written here."""
        targets = list(device_ids)
        sent = await self.broadcast(targets, cancel.frame)
        if self.bus.shared:
            await self.bus.publish(
                "emergency_cancel",
                {
                    "bulletin_id": bulletin_id,
                    "command_id": cancel.command_id,
                    "envelope": frame_text(cancel.frame),
                    "devices": self.elsewhere(targets),
                },
            )
        return sent

    # ------------------------------------------------------------ from the other nodes

    async def on_node_event(self, event: NodeEvent) -> None:
        """Deliver what another node published to the devices connected here."""
        body = event.body
        if event.kind == "manifest_ready":
            ttl = timedelta(seconds=float(body["ttl_s"]))
            await self._manifest_ready_here(dict(body["versions"]), ttl)
        elif event.kind == "emergency_start":
            signed = SignedFrame(body["command_id"], text_frame(body["envelope"]))
            frame = EmergencyFrame(
                bulletin_id=body["bulletin_id"],
                kind=BulletinKind(body["kind"]),
                scope=Scope.model_validate(body["scope"]),
                valid_from=datetime.fromisoformat(body["valid_from"]),
                valid_until=datetime.fromisoformat(body["valid_until"]),
                signed=signed,
            )
            if self.emergencies.add_from_peer(frame):
                await self.broadcast(
                    body["devices"], signed.frame, still=self._in_force(frame.bulletin_id)
                )
        elif event.kind == "emergency_cancel":
            self.emergencies.forget(body["bulletin_id"])
            await self.broadcast(body["devices"], text_frame(body["envelope"]))
        elif event.kind == "command":
            conn = self._by_device.get(body["device_id"])
            delivered = conn is not None and self.write(conn, text_frame(body["envelope"]))
            await self.bus.publish(
                "command_reply", {"command_id": body["command_id"], "delivered": delivered}
            )
        elif event.kind == "command_reply":
            waiting = self._replies.get(body["command_id"])
            if waiting is not None:
                waiting.put_nowait(bool(body["delivered"]))
        elif event.kind == "answered":
            await self._note_answer(body["command_id"])

    # ------------------------------------------------------------ background fan-out

    def in_background(self, work: Coroutine[Any, Any, Any], what: str) -> None:
        """Run a fan-out after the API has answered. The app waits for it (or cancels it)
        at shutdown; a failure is logged with what it was doing."""
        task = asyncio.get_running_loop().create_task(work, name=what)
        self._background.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    async def finish_background(self, grace_s: float) -> None:
        """Let running fan-outs finish for up to `grace_s`, then cancel what is left."""
        pending = set(self._background)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace_s)
        for task in late:
            log.warning("%s still running at shutdown; cancelled", task.get_name())
            task.cancel()
        if late:
            await asyncio.wait(late)

    async def close_all(self) -> None:
        conns = list(self._by_device.values())
        self._by_device.clear()
        await asyncio.gather(
            *(c.socket.close(code=1001, message=b"hub shutting down") for c in conns),
            return_exceptions=True,
        )
