"""Operator commands sent to devices and the answers the devices gave (hub/commands.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..db import from_iso, iso
from .sql import Reader, Row, Tx


@dataclass(frozen=True)
class CommandRecord:
    id: str
    device_id: str
    type: str
    params: dict[str, Any]
    issued_at: datetime
    issued_by: str
    #: sent / undelivered / applied / refused
    status: str
    reason: str | None
    detail: str | None
    answered_at: datetime | None
    #: Sent as part of a command to a group: the group, and the batch of that one command.
    group_id: str | None = None
    batch_id: str | None = None


_COLUMNS = (
    "id, device_id, type, params_json, issued_at, issued_by, status, reason, detail, answered_at,"
    " group_id, batch_id"
)


def _record(row: Row) -> CommandRecord:
    return CommandRecord(
        id=row["id"],
        device_id=row["device_id"],
        type=row["type"],
        params=json.loads(row["params_json"]),
        issued_at=from_iso(row["issued_at"]),
        issued_by=row["issued_by"],
        status=row["status"],
        reason=row["reason"],
        detail=row["detail"],
        answered_at=from_iso(row["answered_at"]) if row["answered_at"] else None,
        group_id=row["group_id"],
        batch_id=row["batch_id"],
    )


async def add(
    tx: Tx,
    command_id: str,
    *,
    device_id: str,
    type: str,
    params: dict[str, Any],
    issued_at: datetime,
    issued_by: str,
    status: str,
    group_id: str | None = None,
    batch_id: str | None = None,
) -> None:
    await tx.execute(
        f"INSERT INTO device_commands ({_COLUMNS})"
        " VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?, ?)",
        (
            command_id,
            device_id,
            type,
            json.dumps(params),
            iso(issued_at),
            issued_by,
            status,
            group_id,
            batch_id,
        ),
    )


async def answer(
    tx: Tx,
    command_id: str,
    *,
    device_id: str,
    status: str,
    reason: str | None,
    detail: str | None,
    at: datetime,
) -> bool:
    """Record a device's answer to its own command; False for an id that is not a command
    sent to this device, or one already answered (the first answer stands)."""
    changed = await tx.execute(
        "UPDATE device_commands SET status = ?, reason = ?, detail = ?, answered_at = ?"
        " WHERE id = ? AND device_id = ? AND status IN ('sent', 'undelivered')",
        (status, reason, detail, iso(at), command_id, device_id),
    )
    return changed == 1


async def get(db: Reader, command_id: str) -> CommandRecord | None:
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM device_commands WHERE id = ?", (command_id,))
    return _record(row) if row is not None else None


async def of_device(db: Reader, device_id: str, limit: int) -> list[CommandRecord]:
    """The device's newest commands first."""
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM device_commands WHERE device_id = ?"
        " ORDER BY issued_at DESC, id DESC LIMIT ?",
        (device_id, limit),
    )
    return [_record(r) for r in rows]


async def of_batch(db: Reader, batch_id: str) -> list[CommandRecord]:
    """The commands one command to a group became, one per device."""
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM device_commands WHERE batch_id = ? ORDER BY device_id",
        (batch_id,),
    )
    return [_record(r) for r in rows]


async def of_group(db: Reader, group_id: str, limit: int) -> list[CommandRecord]:
    """Commands sent to a group's devices, newest first."""
    rows = await db.fetchall(
        f"SELECT {_COLUMNS} FROM device_commands WHERE group_id = ?"
        " ORDER BY issued_at DESC, device_id LIMIT ?",
        (group_id, limit),
    )
    return [_record(r) for r in rows]
