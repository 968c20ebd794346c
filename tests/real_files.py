"""Real files of the kinds agencies and phones send, made in the tests (issue #12).

- `text_pdf`: a PDF with a real text layer, written by hand: DejaVu Sans embedded as a
  CIDFontType2 font (Identity-H, glyph ids from the font's own cmap) with a ToUnicode map,
  so poppler both draws the Vietnamese letters and extracts them as text. Each page also
  carries a coloured band, a mark its rendering can be recognised by.
- `scanned_pdf`: a PDF of pictures only (Pillow's PDF writer), as a scanner makes: no text.
- `cmyk_jpeg`, `exif_rotated_jpeg`, `animated_gif`, `big_png`: images with Pillow.
- `LONG_NOTICE`: a notice of 5,000 characters with every Vietnamese diacritic.
"""

from __future__ import annotations

import functools
import io
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

Colour = tuple[int, int, int]

_SENTENCES = (
    "Ủy ban nhân dân xã thông báo lịch tiêm phòng vắc-xin cho trẻ em dưới năm tuổi",
    "bà con đưa các cháu đến trạm y tế đúng giờ, mang theo sổ tiêm chủng",
    "những hộ ở xa liên hệ trưởng thôn để được hỗ trợ phương tiện đi lại",
    "nước sông Hồng đang lên, đề nghị không đánh bắt cá ở khu vực bãi giữa",
    "ngày mai thứ Bảy có mưa lớn, học sinh nghỉ học, phụ huynh giữ các em ở nhà",
    "mỗi gia đình chuẩn bị đèn pin, áo phao, nước uống và lương thực cho ba ngày",
    "tổ dân phố số bốn tổ chức dọn vệ sinh đường làng vào sáng Chủ nhật tuần này",
    "đề nghị bà con kiểm tra lại mái nhà, chằng chống cửa sổ trước khi bão đổ bộ",
)


def long_notice(chars: int = 5000) -> str:
    """Vietnamese prose of `chars` characters or a little more, ending with a marked line."""
    parts: list[str] = []
    length = 0
    index = 0
    while length < chars - 60:
        sentence = _SENTENCES[index % len(_SENTENCES)]
        part = f"{index + 1}. {sentence[0].upper()}{sentence[1:]}."
        parts.append(part)
        length += len(part) + 1
        index += 1
    parts.append("Hết thông báo: ỗ ữ ặ ẵ ậ ễ ợ ỹ ự ẩn.")
    return " ".join(parts)


LONG_NOTICE = long_notice()
#: The last words of LONG_NOTICE: a test sees them or the text was not shown whole.
LONG_NOTICE_END = "Hết thông báo: ỗ ữ ặ ẵ ậ ễ ợ ỹ ự ẩn."

# ---------------------------------------------------------------------- a PDF with text


def _tables(font: bytes) -> dict[str, bytes]:
    count = struct.unpack(">H", font[4:6])[0]
    tables = {}
    for i in range(count):
        tag, _, offset, length = struct.unpack(">4sIII", font[12 + 16 * i : 28 + 16 * i])
        tables[tag.decode("latin-1")] = font[offset : offset + length]
    return tables


def _glyph_ids(tables: dict[str, bytes]) -> Callable[[str], int]:
    """The font's own character -> glyph map (its Windows Unicode BMP cmap, format 4)."""
    cmap = tables["cmap"]
    for i in range(struct.unpack(">H", cmap[2:4])[0]):
        platform, encoding, offset = struct.unpack(">HHI", cmap[4 + 8 * i : 12 + 8 * i])
        if (platform, encoding) != (3, 1) or struct.unpack(">H", cmap[offset : offset + 2])[0] != 4:
            continue
        table = cmap[offset:]
        seg2 = struct.unpack(">H", table[6:8])[0]
        seg = seg2 // 2
        ends = struct.unpack(f">{seg}H", table[14 : 14 + seg2])
        starts = struct.unpack(f">{seg}H", table[16 + seg2 : 16 + 2 * seg2])
        deltas = struct.unpack(f">{seg}h", table[16 + 2 * seg2 : 16 + 3 * seg2])
        at = 16 + 3 * seg2
        offsets = struct.unpack(f">{seg}H", table[at : at + seg2])
        return functools.partial(_glyph_id, table, at, starts, ends, deltas, offsets)
    raise ValueError("the font has no Unicode BMP cmap")


def _glyph_id(
    table: bytes,
    at: int,
    starts: tuple[int, ...],
    ends: tuple[int, ...],
    deltas: tuple[int, ...],
    offsets: tuple[int, ...],
    ch: str,
) -> int:
    code = ord(ch)
    for k, (start, end) in enumerate(zip(starts, ends, strict=True)):
        if start <= code <= end:
            if offsets[k] == 0:
                return (code + deltas[k]) & 0xFFFF
            p = at + 2 * k + offsets[k] + 2 * (code - start)
            found: int = struct.unpack(">H", table[p : p + 2])[0]
            return (found + deltas[k]) & 0xFFFF if found else 0
    return 0


def _advances(tables: dict[str, bytes]) -> Callable[[int], int]:
    """Glyph id -> advance width in thousandths of an em (PDF text space)."""
    units = struct.unpack(">H", tables["head"][18:20])[0]
    metrics = struct.unpack(">H", tables["hhea"][34:36])[0]
    hmtx = tables["hmtx"]

    def advance(gid: int) -> int:
        index = min(gid, metrics - 1)
        return round(struct.unpack(">H", hmtx[4 * index : 4 * index + 2])[0] * 1000 / units)

    return advance


def _wrap(text: str, per_line: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for word in paragraph.split():
            if line and len(line) + 1 + len(word) > per_line:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines.append(line)
    return lines


def text_pdf(
    path: Path,
    pages: Sequence[str],
    marks: Sequence[Colour],
    *,
    size: tuple[float, float] = (595.0, 842.0),
    font_size: float = 14.0,
) -> Path:
    """An A4 (by default) PDF, one page per text, each with a band of its mark colour at
    the top and its text below in DejaVu Sans."""
    font = DEJAVU.read_bytes()
    tables = _tables(font)
    glyph = _glyph_ids(tables)
    advance = _advances(tables)
    width, height = size
    used: dict[int, str] = {}
    contents: list[bytes] = []
    per_line = max(10, int((width - 100) / (font_size * 0.55)))
    for text, (r, g, b) in zip(pages, marks, strict=True):
        colour = f"{r / 255:.3f} {g / 255:.3f} {b / 255:.3f} rg"
        ops = [f"{colour} 0 {height - 120:.1f} {width:.1f} 120 re f"]
        ops.append("0 0 0 rg BT")
        y = height - 150
        for line in _wrap(text, per_line):
            gids = [glyph(ch) for ch in line]
            for gid, ch in zip(gids, line, strict=True):
                used.setdefault(gid, ch)
            hexed = "".join(f"{gid:04X}" for gid in gids)
            ops.append(f"/F1 {font_size:g} Tf 1 0 0 1 50 {y:.1f} Tm <{hexed}> Tj")
            y -= font_size * 1.4
        ops.append("ET")
        contents.append("\n".join(ops).encode("ascii"))
    to_unicode = "\n".join(
        [
            "/CIDInit /ProcSet findresource begin 12 dict begin begincmap",
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
            "/CMapName /Adobe-Identity-UCS def /CMapType 2 def",
            "1 begincodespacerange <0000> <FFFF> endcodespacerange",
            f"{len(used)} beginbfchar",
            *(f"<{gid:04X}> <{ord(ch):04X}>" for gid, ch in sorted(used.items())),
            "endbfchar endcmap CMapName currentdict /CMap defineresource pop end end",
        ]
    ).encode("ascii")
    widths = " ".join(f"{gid} [{advance(gid)}]" for gid in sorted(used))

    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    def stream(extra: str, data: bytes) -> bytes:
        packed = zlib.compress(data)
        head = f"<< {extra} /Filter /FlateDecode /Length {len(packed)} >>\nstream\n"
        return head.encode("ascii") + packed + b"\nendstream"

    catalog = add(b"")  # filled in below, once the page tree's number is known
    font_file = add(stream(f"/Length1 {len(font)}", font))
    descriptor = add(
        (
            "<< /Type /FontDescriptor /FontName /DejaVuSans /Flags 32 "
            "/FontBBox [-1021 -463 1793 1232] /ItalicAngle 0 /Ascent 928 /Descent -236 "
            f"/CapHeight 729 /StemV 80 /FontFile2 {font_file} 0 R >>"
        ).encode("ascii")
    )
    cid_font = add(
        (
            "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /DejaVuSans "
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
            f"/FontDescriptor {descriptor} 0 R /CIDToGIDMap /Identity /DW 600 "
            f"/W [{widths}] >>"
        ).encode("ascii")
    )
    unicode_map = add(stream("", to_unicode))
    type0 = add(
        (
            "<< /Type /Font /Subtype /Type0 /BaseFont /DejaVuSans /Encoding /Identity-H "
            f"/DescendantFonts [{cid_font} 0 R] /ToUnicode {unicode_map} 0 R >>"
        ).encode("ascii")
    )
    page_tree = len(objects) + 1 + 2 * len(contents)
    kids = []
    for content in contents:
        stream_id = add(stream("", content))
        kids.append(
            add(
                (
                    f"<< /Type /Page /Parent {page_tree} 0 R /MediaBox [0 0 {width:g} {height:g}] "
                    f"/Resources << /Font << /F1 {type0} 0 R >> >> /Contents {stream_id} 0 R >>"
                ).encode("ascii")
            )
        )
    pages_id = add(
        (
            f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>"
        ).encode("ascii")
    )
    assert pages_id == page_tree
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_id} 0 R >>".encode("ascii")

    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode("ascii") + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("ascii")
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode("ascii")
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root {catalog} 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode("ascii")
    path.write_bytes(bytes(out))
    return path


def scanned_pdf(path: Path, marks: Sequence[Colour], size: tuple[int, int] = (620, 877)) -> Path:
    """A PDF of pictures only, one page per colour: what a scanner sends, with no text."""
    pictures = [Image.new("RGB", size, colour) for colour in marks]
    pictures[0].save(path, "PDF", save_all=True, append_images=pictures[1:], resolution=75.0)
    return path


# ---------------------------------------------------------------------- pictures


def cmyk_jpeg(path: Path, size: tuple[int, int] = (400, 300)) -> Path:
    """Pure red in CMYK (no cyan, full magenta and yellow), as print shops save photos."""
    Image.new("CMYK", size, (0, 255, 255, 0)).save(path, "JPEG", quality=95)
    return path


def exif_rotated_jpeg(path: Path, size: tuple[int, int] = (300, 400)) -> Path:
    """A portrait photo (red top, blue bottom) stored as a phone stores it: the sensor's
    landscape pixels, turned, with EXIF orientation 6 (rotate 90° clockwise to view)."""
    upright = Image.new("RGB", size, (30, 60, 220))
    upright.paste((220, 30, 40), (0, 0, size[0], size[1] // 2))
    # Orientation 6 means the viewer turns the stored pixels 90° clockwise: so they are the
    # upright picture turned 90° counter-clockwise.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def animated_gif(path: Path, colours: Sequence[Colour], frame_ms: Sequence[int]) -> Path:
    """A GIF with one flat frame per colour, each shown for its own time."""
    size = (120, 90)
    frames = [Image.new("RGB", size, colour) for colour in colours]
    frames[0].save(
        path,
        "GIF",
        save_all=True,
        append_images=frames[1:],
        duration=list(frame_ms),
        loop=0,
        disposal=1,
    )
    return path


def big_png(path: Path, size: tuple[int, int]) -> Path:
    """A large picture: green with a red disc in the middle."""
    picture = Image.new("RGB", size, (0, 160, 70))
    from PIL import ImageDraw

    w, h = size
    ImageDraw.Draw(picture).ellipse((w // 4, h // 4, 3 * w // 4, 3 * h // 4), fill=(230, 20, 20))
    picture.save(path, "PNG", compress_level=1)
    return path


def noise_png(size: int) -> bytes:
    """A real PNG of random pixels, exactly `size` bytes long (a private chunk pads it):
    big media that nothing compresses, which a board can still decode."""
    side = max(1, int((max(0, size - 4096) / 3) ** 0.5))
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(
        buffer, "PNG", compress_level=0
    )
    png = buffer.getvalue()
    end = png.rindex(b"IEND") - 4  # the IEND chunk: length, type, CRC
    pad = size - len(png) - 12  # a chunk is its data and 12 bytes of length, type and CRC
    if pad < 0:
        raise ValueError(f"{size} bytes is too small for a PNG of noise")
    chunk_type = b"loAp"  # ancillary (lower-case first letter): readers skip it
    data = bytes(pad)
    crc = struct.pack(">I", zlib.crc32(chunk_type + data))
    chunk = struct.pack(">I", pad) + chunk_type + data + crc
    return png[:end] + chunk + png[end:]


# ---------------------------------------------------------------------- small real media


def wav_bytes(seconds: float = 0.1, rate: int = 8000, channels: int = 1) -> bytes:
    """A real WAV of silence: the hub decodes every upload, so even a test's placeholder
    audio must be whole."""
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * channels * round(seconds * rate))
    return buffer.getvalue()


def png_bytes(size: tuple[int, int] = (8, 8), colour: Colour = (200, 30, 40)) -> bytes:
    """A real PNG of one colour."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def mp4_bytes(folder: Path, seconds: float = 1.0, size: str = "160x120") -> bytes:
    """A real MP4 (H.264 video, AAC audio) made by ffmpeg."""
    import subprocess

    path = folder / f"clip-{seconds:g}-{size}.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc=size={size}:rate=10:duration={seconds}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:duration={seconds}",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        check=True,
    )
    return path.read_bytes()
