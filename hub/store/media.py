"""The content store's records: each file (named by its sha256) and which units uploaded it.
The bytes themselves are files under the hub's media folder (hub/media.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loa_contract import DeviceKind

from ..db import iso
from .bulletins import Viewer, seen_by
from .manifests import B_REACHES_DEVICE, bulletin_kinds_for
from .sql import Reader, Tx


@dataclass(frozen=True)
class Media:
    """A stored file and what decoding it at upload found (hub/probe.py); None: not known
    (a file stored before uploads were probed)."""

    sha256: str
    size: int
    mime: str
    duration_s: float | None = None
    codec: str | None = None
    channels: int | None = None
    sample_rate: int | None = None
    width: int | None = None
    height: int | None = None
    words: int | None = None
    #: The Word or OpenDocument file this text was taken out of.
    source_sha256: str | None = None


_COLUMNS = (
    "sha256, size, mime, duration_s, codec, channels, sample_rate, width, height, words,"
    " source_sha256"
)


def _media(r: Any) -> Media:
    return Media(
        r["sha256"],
        r["size"],
        r["mime"],
        duration_s=r["duration_s"],
        codec=r["codec"],
        channels=r["channels"],
        sample_rate=r["sample_rate"],
        width=r["width"],
        height=r["height"],
        words=r["words"],
        source_sha256=r["source_sha256"],
    )


async def add(tx: Tx, m: Media, *, unit: str, at: datetime) -> None:
    """Record a stored file, and that `unit` uploaded it (also for bytes already stored: the
    record is what lets the unit use them). A file recorded before it was probed gains what
    this upload's probe found."""
    facts = (
        m.duration_s,
        m.codec,
        m.channels,
        m.sample_rate,
        m.width,
        m.height,
        m.words,
        m.source_sha256,
    )
    await tx.execute(
        f"INSERT INTO media ({_COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (m.sha256, m.size, m.mime, *facts, iso(at)),
    )
    await tx.execute(
        "UPDATE media SET duration_s = ?, codec = ?, channels = ?, sample_rate = ?, width = ?,"
        " height = ?, words = ?, source_sha256 = COALESCE(source_sha256, ?)"
        " WHERE sha256 = ? AND duration_s IS NULL AND words IS NULL AND width IS NULL",
        (*facts, m.sha256),
    )
    await tx.execute(
        "INSERT INTO media_uploads (sha256, unit, first_at) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (m.sha256, unit, iso(at)),
    )


async def get(db: Reader, sha256: str) -> Media | None:
    """A stored file's record; None when there is no such file."""
    row = await db.fetchone(f"SELECT {_COLUMNS} FROM media WHERE sha256 = ?", (sha256,))
    return _media(row) if row is not None else None


async def mime_of(db: Reader, sha256: str) -> str | None:
    """The type of a stored file; None when there is no such file."""
    mime: str | None = await db.fetchval("SELECT mime FROM media WHERE sha256 = ?", (sha256,))
    return mime


#: Media `m` uploaded by the unit `:unit`.
_UPLOADED_BY_UNIT = """EXISTS (SELECT 1 FROM media_uploads u
    WHERE u.sha256 = m.sha256 AND u.unit = :unit)"""


async def uploads(db: Reader, viewer: Viewer) -> list[Media]:
    """What `viewer` may list, newest first: everything for a province-wide account, else its
    unit's uploads."""
    cond, params = "1 = 1", {}
    if not viewer.province_wide:
        cond, params = _UPLOADED_BY_UNIT, {"unit": viewer.unit}
    columns = ", ".join(f"m.{c.strip()}" for c in _COLUMNS.split(","))
    rows = await db.fetchall(
        f"SELECT {columns} FROM media m WHERE {cond} ORDER BY m.created_at DESC", params
    )
    return [_media(r) for r in rows]


async def readable_mime(db: Reader, sha256: str, viewer: Viewer) -> str | None:
    """The type of a file `viewer` may fetch (its unit's uploads, or the media of a bulletin
    it may see: a commune hears what the province published to it); None otherwise."""
    cond: str
    params: dict[str, Any]
    if viewer.province_wide:
        cond, params = "1 = 1", {}
    else:
        bulletin_cond, params = seen_by(viewer)
        cond = (
            f"({_UPLOADED_BY_UNIT} OR EXISTS (SELECT 1 FROM bulletins b"
            f" WHERE b.media_sha256 = m.sha256 AND {bulletin_cond}))"
        )
        params = {"unit": viewer.unit, **params}
    mime: str | None = await db.fetchval(
        f"SELECT m.mime FROM media m WHERE m.sha256 = :sha AND {cond}", {"sha": sha256, **params}
    )
    return mime


async def device_media_mime(
    db: Reader, sha256: str, device_id: str, commune: str, kind: DeviceKind
) -> str | None:
    """The type of a file that is the media of a published bulletin reaching the device and of
    a kind it airs; None otherwise (missing, or not the device's)."""
    mime: str | None = await db.fetchval(
        "SELECT m.mime FROM media m WHERE m.sha256 = :sha AND EXISTS ("
        " SELECT 1 FROM bulletins b WHERE b.media_sha256 = m.sha256 AND b.state = 'published'"
        f" AND b.kind IN ({bulletin_kinds_for(kind)}) AND {B_REACHES_DEVICE})",
        {"sha": sha256, "device": device_id, "commune": commune},
    )
    return mime


# ---------------------------------------------------------------- deletion


async def uploaders(db: Reader, sha256: str) -> list[str]:
    """The units that uploaded the file."""
    rows = await db.fetchall(
        "SELECT unit FROM media_uploads WHERE sha256 = ? ORDER BY unit", (sha256,)
    )
    return [r["unit"] for r in rows]


async def uses(db: Reader, sha256s: list[str]) -> dict[str, int]:
    """How many bulletins (in any state but deleted: a cancelled one keeps its history)
    carry each file; files no bulletin carries are left out."""
    if not sha256s:
        return {}
    marks = ", ".join("?" for _ in sha256s)
    rows = await db.fetchall(
        f"SELECT media_sha256, COUNT(*) AS n FROM bulletins WHERE media_sha256 IN ({marks})"
        " GROUP BY media_sha256",
        tuple(sha256s),
    )
    return {r["media_sha256"]: r["n"] for r in rows}


async def forget_upload(tx: Tx, sha256: str, unit: str) -> None:
    """`unit` no longer holds the file (another unit that uploaded the same bytes still may)."""
    await tx.execute("DELETE FROM media_uploads WHERE sha256 = ? AND unit = ?", (sha256, unit))


async def remove(tx: Tx, sha256: str) -> None:
    """The file's records go (its bytes are removed by the caller after the commit). Refused
    by the foreign key while any bulletin still carries it."""
    await tx.execute("DELETE FROM media_uploads WHERE sha256 = ?", (sha256,))
    await tx.execute("DELETE FROM media WHERE sha256 = ?", (sha256,))
