"""A board's latest screen picture (hub/frames.py)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from ..db import from_iso, iso
from .sql import Reader, Tx


@dataclass(frozen=True)
class Frame:
    device_id: str
    at: datetime
    mime: str
    width: int
    height: int
    data: bytes


async def put(
    tx: Tx, device_id: str, *, at: datetime, mime: str, width: int, height: int, data: bytes
) -> None:
    """Keep `data` as the device's picture, replacing the one before."""
    await tx.execute(
        "INSERT INTO device_frames (device_id, at, mime, width, height, data)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET at = excluded.at,"
        " mime = excluded.mime, width = excluded.width, height = excluded.height,"
        " data = excluded.data",
        (device_id, iso(at), mime, width, height, base64.b64encode(data).decode("ascii")),
    )


async def taken_at(db: Reader, device_id: str) -> datetime | None:
    at: str | None = await db.fetchval(
        "SELECT at FROM device_frames WHERE device_id = ?", (device_id,)
    )
    return from_iso(at) if at else None


async def get(db: Reader, device_id: str) -> Frame | None:
    row = await db.fetchone(
        "SELECT device_id, at, mime, width, height, data FROM device_frames WHERE device_id = ?",
        (device_id,),
    )
    if row is None:
        return None
    return Frame(
        device_id=row["device_id"],
        at=from_iso(row["at"]),
        mime=row["mime"],
        width=row["width"],
        height=row["height"],
        data=base64.b64decode(row["data"]),
    )
