"""Communes (xã): their broadcast windows and volume."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from loa_contract import CommuneWindows

from ..db import from_iso, iso
from .sql import Reader, Row, Tx


@dataclass(frozen=True)
class Commune:
    code: str
    name: str
    windows: CommuneWindows
    volume: int
    #: Device slots in it, enrolled or not.
    devices: int
    created_at: datetime
    updated_at: datetime
    #: Its administrative code (mã đơn vị hành chính), which CAP geocodes VN-DVHC name.
    admin_code: str | None = None
    #: "auto" or "offer": how province normal bulletins reach it (hub/offers.py).
    province_normal: str = "auto"


_SELECT = (
    "SELECT c.code, c.name, c.windows_json, c.volume, c.created_at, c.updated_at, c.admin_code,"
    " c.province_normal,"
    " (SELECT COUNT(*) FROM devices d WHERE d.commune = c.code) AS devices FROM communes c"
)


def _commune(row: Row) -> Commune:
    return Commune(
        code=row["code"],
        name=row["name"],
        windows=CommuneWindows.model_validate_json(row["windows_json"]),
        volume=row["volume"],
        devices=row["devices"],
        created_at=from_iso(row["created_at"]),
        updated_at=from_iso(row["updated_at"]),
        admin_code=row["admin_code"],
        province_normal=row["province_normal"],
    )


async def exists(db: Reader, code: str) -> bool:
    return await db.fetchone("SELECT 1 FROM communes WHERE code = ?", (code,)) is not None


async def get(db: Reader, code: str) -> Commune | None:
    row = await db.fetchone(f"{_SELECT} WHERE c.code = ?", (code,))
    return _commune(row) if row is not None else None


async def every_commune(db: Reader) -> list[Commune]:
    """All communes by code."""
    return [_commune(r) for r in await db.fetchall(f"{_SELECT} ORDER BY c.code")]


@dataclass(frozen=True)
class BroadcastSettings:
    """What a commune's manifests carry of it."""

    windows: CommuneWindows
    volume: int


async def name_of(db: Reader, code: str) -> str:
    """A commune's name; empty when there is no such commune."""
    name = await db.fetchval("SELECT name FROM communes WHERE code = ?", (code,))
    return str(name) if name is not None else ""


async def broadcast_settings(db: Reader, code: str) -> BroadcastSettings | None:
    row = await db.fetchone("SELECT windows_json, volume FROM communes WHERE code = ?", (code,))
    if row is None:
        return None
    return BroadcastSettings(CommuneWindows.model_validate_json(row["windows_json"]), row["volume"])


async def add(
    tx: Tx,
    code: str,
    name: str,
    windows: CommuneWindows,
    volume: int,
    *,
    at: datetime,
    admin_code: str | None = None,
) -> None:
    await tx.execute(
        "INSERT INTO communes (code, name, windows_json, volume, created_at, updated_at,"
        " admin_code) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (code, name, windows.model_dump_json(), volume, iso(at), iso(at), admin_code),
    )


async def with_admin_code(db: Reader, admin_code: str) -> str | None:
    """The commune whose administrative code is `admin_code`."""
    code: str | None = await db.fetchval(
        "SELECT code FROM communes WHERE admin_code = ?", (admin_code,)
    )
    return code


async def set_admin_code(tx: Tx, code: str, admin_code: str | None) -> None:
    await tx.execute("UPDATE communes SET admin_code = ? WHERE code = ?", (admin_code, code))


async def update(
    tx: Tx, code: str, *, name: str, windows: CommuneWindows, volume: int, at: datetime
) -> None:
    await tx.execute(
        "UPDATE communes SET name = ?, windows_json = ?, volume = ?, updated_at = ? WHERE code = ?",
        (name, windows.model_dump_json(), volume, iso(at), code),
    )
