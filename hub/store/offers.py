"""The commune's say over what other units publish to it: its setting for province normal
bulletins and its accept or decline of each (hub/offers.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..db import from_iso, iso
from .sql import Reader, Tx


async def province_normal(db: Reader, commune: str) -> str | None:
    """ "auto" or "offer"; None when there is no such commune."""
    mode: str | None = await db.fetchval(
        "SELECT province_normal FROM communes WHERE code = ?", (commune,)
    )
    return mode


async def set_province_normal(tx: Tx, commune: str, mode: str) -> None:
    await tx.execute("UPDATE communes SET province_normal = ? WHERE code = ?", (mode, commune))


@dataclass(frozen=True)
class Choice:
    choice: str
    chosen_by: str
    chosen_at: datetime


async def choices(db: Reader, commune: str) -> dict[str, Choice]:
    rows = await db.fetchall(
        "SELECT bulletin_id, choice, chosen_by, chosen_at FROM commune_choices WHERE commune = ?",
        (commune,),
    )
    return {r[0]: Choice(r[1], r[2], from_iso(r[3])) for r in rows}


async def choose(
    tx: Tx, commune: str, bulletin_id: str, choice: str, by: str, at: datetime
) -> None:
    await tx.execute(
        "INSERT INTO commune_choices (commune, bulletin_id, choice, chosen_by, chosen_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (commune, bulletin_id) DO UPDATE SET"
        " choice = excluded.choice, chosen_by = excluded.chosen_by,"
        " chosen_at = excluded.chosen_at",
        (commune, bulletin_id, choice, by, iso(at)),
    )
