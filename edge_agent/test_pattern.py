"""A board's test pattern (colour bars in a white frame) as a PNG the display player shows.

Written with zlib alone, like the test tone with `wave`: the local page asks for it on a
device whose pygame may be busy driving the screen.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

_BARS = [(255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0), (255, 0, 255), (255, 0, 0)]


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def write_test_pattern(path: Path, size: tuple[int, int]) -> Path:
    width, height = max(8, size[0]), max(8, size[1])
    bar = max(1, width // len(_BARS))
    row = bytearray()
    for x in range(width):
        row.extend(_BARS[min(x // bar, len(_BARS) - 1)])
    white = bytes((255, 255, 255)) * width
    # The frame shows whether the panel crops the edges (common on LED boards).
    edge_row = bytearray(row)
    edge_row[0:3] = edge_row[-3:] = b"\xff\xff\xff"
    raw = bytearray()
    for y in range(height):
        raw.append(0)  # PNG filter type "none"
        raw.extend(white if y in (0, height - 1) else edge_row)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(bytes(raw), 6))
        + _chunk(b"IEND", b"")
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(png)
    os.replace(tmp, path)
    return path


def ensure_test_pattern(data_dir: Path, size: tuple[int, int]) -> Path:
    path = data_dir / f"test-pattern-{size[0]}x{size[1]}.png"
    if not path.exists():
        write_test_pattern(path, size)
    return path
