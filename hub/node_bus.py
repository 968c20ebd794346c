"""Pushes between hub nodes that share one database: the node bus.

A device is connected to one node; an operator may act on any. So each push entry point of
`hub.push.Connections` (a manifest_ready, an emergency's start or cancel, an operator command,
a device's answer) delivers to the devices connected to its own node and *publishes* the event
on the bus; every other node receives it and delivers to its own connected devices. What is
published is what was signed (the same frame, the same command id, on every node), so a
device that hears an emergency from two nodes across a fail-over knows it is one.

Two buses, one interface:
- `LocalBus`: one node (SQLite, or PostgreSQL with one node): publishing does nothing and
  costs nothing, and no answer from elsewhere is awaited.
- `hub.store.node_events.PostgresBus`: each event is a row of `node_events` (the durable
  record; a NOTIFY payload is limited to 8,000 bytes, a province-wide publish is not) and a
  NOTIFY carries its id. A notification is only a hint: a node that was disconnected catches
  up from the table by id before it trusts notifications again (DESIGN.md §7). Each node
  also says, every few seconds, that it runs, where the others reach it (`peers`: a command
  waits only for the nodes running now; media is fetched from them, hub/node_objects.py) and
  which devices it holds (`online_elsewhere`: every node's console shows them online).

Event bodies are plain JSON; this module says what each kind carries (`NodeEvent`).
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

#: What one node tells the others.
#: - manifest_ready: {"versions": {device_id: version}, "ttl_s": float}
#: - emergency_start: {"bulletin_id", "kind", "scope", "valid_from", "valid_until",
#:   "command_id", "envelope", "devices": [device_id, …]} (devices may be empty: an
#:   emergency approved for later, kept for the devices that connect once it is due)
#: - emergency_cancel: {"bulletin_id", "command_id", "envelope", "devices"}
#: - command: {"device_id", "command_id", "envelope"}; the node holding the device answers
#:   with command_reply: {"command_id", "delivered": bool}
#: - answered: {"command_id"} (a device's CommandAck is stored)
#: - object_stored: {"store": "media" | "releases", "sha256"} (hub/node_objects.py)
EventKind = Literal[
    "manifest_ready",
    "emergency_start",
    "emergency_cancel",
    "command",
    "command_reply",
    "answered",
    "object_stored",
]


@dataclass(frozen=True, slots=True)
class NodeEvent:
    """One event published by another node."""

    kind: EventKind
    body: dict[str, Any]
    #: The publishing node's id (`NodeBus.node_id`).
    node: str


#: What a node does with the events the others publish (`Connections.on_node_event`).
Receiver = Callable[[NodeEvent], Awaitable[None]]


class NodeBus(Protocol):
    #: This process's id on the bus: its own events are not delivered back to it.
    node_id: str

    @property
    def shared(self) -> bool:
        """Whether other nodes may hold devices (False: local delivery is all there is)."""
        ...

    async def publish(self, kind: EventKind, body: dict[str, Any]) -> None:
        """Hand the event to every other node (nothing on a LocalBus)."""
        ...

    async def peers(self) -> list[str | None]:
        """The other nodes running now: the address each is reached at (its node URL; None
        for one that gave none, which still holds devices)."""
        ...

    async def online_elsewhere(self) -> set[str]:
        """The devices connected to the other running nodes (as they last said)."""
        ...

    def trouble(self) -> str | None:
        """Why pushes made on other nodes cannot reach this node's devices now (None: they
        can). /healthz answers 503 with it: a node deaf to the others must not look fine."""
        ...

    async def start(self, receive: Receiver, connected: Callable[[], set[str]]) -> None:
        """Start delivering the other nodes' events to `receive`, in the order published,
        and telling them which devices are connected here (`connected()`)."""
        ...

    async def close(self) -> None: ...


class LocalBus:
    """A hub of one node: nothing to tell, nobody to hear from."""

    def __init__(self, node_id: str = "local") -> None:
        self.node_id = node_id

    @property
    def shared(self) -> bool:
        return False

    async def publish(self, kind: EventKind, body: dict[str, Any]) -> None:
        del kind, body

    async def peers(self) -> list[str | None]:
        return []

    async def online_elsewhere(self) -> set[str]:
        return set()

    def trouble(self) -> str | None:
        return None

    async def start(self, receive: Receiver, connected: Callable[[], set[str]]) -> None:
        del receive, connected

    async def close(self) -> None:
        pass


def frame_text(frame: bytes) -> str:
    """The payload of one unmasked WebSocket text frame as `hub.push.text_frame` makes it:
    what another node needs to write the same frame to its own devices."""
    size = frame[1] & 0x7F
    if size < 126:
        start = 2
    elif size == 126:
        start, size = 4, struct.unpack("!H", frame[2:4])[0]
    else:
        start, size = 10, struct.unpack("!Q", frame[2:10])[0]
    if frame[0] != 0x81 or frame[1] & 0x80 or len(frame) != start + size:
        raise ValueError("not one final unmasked text frame")
    return frame[start:].decode("utf-8")


def bus_for(db: object, *, clock: Callable[[], datetime], url: str | None) -> NodeBus:
    """The bus of the nodes sharing `db`: PostgreSQL's, or a LocalBus for SQLite (one node).
    `url` is the address the other nodes reach this one at."""
    from .store.postgres import PostgresDatabase  # asyncpg only where PostgreSQL is used

    if not isinstance(db, PostgresDatabase):
        return LocalBus()
    from .store.node_events import PostgresBus

    return PostgresBus(db, clock=clock, url=url)
