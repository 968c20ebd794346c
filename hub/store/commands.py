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


_COLUMNS = (
    "id, device_id, type, params_json, issued_at, issued_by, status, reason, detail, answered_at"
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
) -> None:
    await tx.execute(
        f"INSERT INTO device_commands ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
        (command_id, device_id, type, json.dumps(params), iso(issued_at), issued_by, status),
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
