"""Uploads checked by decoding them, not by their first bytes (issue #12).

An agency's file is judged on the hub, where a refusal reaches the person who sent it,
rather than on a loudspeaker that can only report "could not play":

- Audio and video: probed with ffprobe (duration, codec, channels, sample rate, resolution)
  and decoded whole with `ffmpeg -v error -f null`: a decoding error is a corrupt file, and
  a decoded length well short of the length the container advertises is a truncated one.
  The length kept is the decoded one, which the length rules of the workflow use.
- Pictures: the size read from the header first, and a picture over the boards' pixel limit
  (`edge_agent.renditions.MAX_DECODED_PIXELS`) refused before anything is decoded; then
  decoded with Pillow as the board will (EXIF, CMYK and palettes are the board's to handle:
  edge_agent/renditions.py).
- Documents: a PDF's text extracted with poppler through the board's own code
  (`renditions.pdf_page_texts`), to count its words; a text file's words likewise.
- Word (.docx) and OpenDocument text (.odt): opened as ZIP archives within limits (members,
  expanded size, expansion ratio: no zip bombs), their XML refused if it declares a DOCTYPE
  (no entities, nothing external), and their text extracted with python-docx or odfpy. The
  devices have no office suite: the text becomes a UTF-8 text file, which every device
  already airs as a document (spoken on speakers, shown on boards). A file with no text is
  refused: there would be nothing to air.

Every function here blocks (subprocesses, decoders): call them through `asyncio.to_thread`.
A file that fails raises `Unfit`, with the problem named in Vietnamese and in English.
"""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import subprocess
import unicodedata
import wave
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edge_agent.renditions import (
    MAX_DECODED_PIXELS,
    RenditionError,
    decode_text,
    pdf_page_texts,
    reading_text,
)

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT_MIME = "application/vnd.oasis.opendocument.text"
#: What the sniffer says of a ZIP archive before it is opened: a Word or OpenDocument file
#: if its members say so (`office_mime`), else nothing the hub takes.
ZIP_MIME = "application/zip"
#: The most a probe or a whole decode may take.
FFMPEG_TIMEOUT_S = 300.0
#: Decoded audio or video shorter than the container says by more than this share (and
#: `TRUNCATED_MIN_S` seconds) is truncated: a cut download, a recorder that died.
TRUNCATED_SHARE = 0.03
TRUNCATED_MIN_S = 0.5
#: A WAV header's data size at least this big is a streaming recorder's placeholder.
STREAMED_WAV_BYTES = 0x7FFF0000
#: An office file's archive: at most this many members, this many bytes expanded, and no
#: member expanding more than `ZIP_MAX_RATIO` times (a zip bomb expands a thousandfold).
ZIP_MAX_MEMBERS = 2000
ZIP_MAX_EXPANDED = 100 * 1024 * 1024
ZIP_MAX_RATIO = 200
#: The most words a document's text may have once extracted (a bulletin's text is at most
#: 50,000 characters; a document read aloud for hours is not a bulletin either).
MAX_DOCUMENT_CHARS = 500_000


class Unfit(Exception):
    """An upload the hub refuses, with the problem in Vietnamese (the default) and English."""

    def __init__(self, code: str, vi: str, en: str) -> None:
        super().__init__(en)
        self.code = code
        self.vi = vi
        self.en = en

    def detail(self) -> list[dict[str, str]]:
        return [{"field": "media", "message": self.vi, "message_en": self.en}]


@dataclass(frozen=True)
class Probe:
    """What decoding an upload found out."""

    duration_s: float | None = None
    codec: str | None = None
    channels: int | None = None
    sample_rate: int | None = None
    width: int | None = None
    height: int | None = None
    #: A document's words (PDF, text file, or the text taken out of an office file).
    words: int | None = None
    #: The text taken out of a Word or OpenDocument file: stored as a text file instead.
    extracted_text: str | None = None


def inspect(path: Path, mime: str) -> Probe:
    """Decode the upload at `path` as the type sniffed from its bytes; `Unfit` if it is
    not what it claims, is damaged, or is too big for the devices."""
    if mime.startswith(("audio/", "video/")):
        return probe_av(path, mime)
    if mime.startswith("image/"):
        return probe_image(path)
    if mime == "application/pdf":
        return probe_pdf(path)
    if mime == "text/plain":
        return Probe(words=len(decode_text(path.read_bytes()).split()))
    if mime in (DOCX_MIME, ODT_MIME):
        text = office_text(path, mime)
        return Probe(words=len(text.split()), extracted_text=text)
    raise Unfit("unsupported", "Loại tệp không được hỗ trợ.", f"{mime} is not supported")


# ---------------------------------------------------------------- audio and video


def _exe(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: install the Debian package ffmpeg")
    return found


def _run(args: list[str]) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(args, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise Unfit(
            "too_slow",
            f"Tệp không giải mã xong trong {FFMPEG_TIMEOUT_S:g} giây.",
            f"the file did not decode within {FFMPEG_TIMEOUT_S:g} s",
        ) from None


def _number(value: object) -> float | None:
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def probe_av(path: Path, mime: str) -> Probe:
    """ffprobe's description of the streams, then the whole file decoded."""
    wanted = "video" if mime.startswith("video/") else "audio"
    label_vi = "video" if wanted == "video" else "âm thanh"
    done = _run(
        [
            _exe("ffprobe"),
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            str(path),
        ]
    )
    try:
        found = json.loads(done.stdout or b"{}")
    except json.JSONDecodeError:
        found = {}
    streams = [s for s in found.get("streams", []) if isinstance(s, dict)]
    main = next((s for s in streams if s.get("codec_type") == wanted), None)
    if done.returncode != 0 or main is None:
        said = _first_line(done.stderr, path)
        raise Unfit(
            "corrupt",
            f"Tệp {label_vi} bị hỏng hoặc không đọc được: không tìm thấy luồng {label_vi}"
            + (f" ({said})." if said else "."),
            f"the {wanted} file is damaged or unreadable: no {wanted} stream"
            + (f" ({said})" if said else ""),
        )
    audio = (
        main
        if wanted == "audio"
        else next((s for s in streams if s.get("codec_type") == "audio"), None)
    )
    advertised = _number(found.get("format", {}).get("duration")) or _number(main.get("duration"))
    if mime == "audio/wav":
        # ffprobe measures a WAV by the bytes present; its header says how many there were.
        advertised = wav_header_seconds(path) or advertised
    decoded = decoded_seconds(path, label_vi, wanted)
    if decoded is None or decoded <= 0:
        raise Unfit(
            "corrupt",
            f"Tệp {label_vi} không có nội dung giải mã được.",
            f"the {wanted} file holds nothing that decodes",
        )
    if advertised is not None and truncated(decoded, advertised):
        raise Unfit(
            "truncated",
            f"Tệp {label_vi} bị cắt cụt: chỉ phát được {decoded:.1f} giây trong {advertised:.1f}"
            " giây ghi trong tệp. Hãy gửi lại tệp đầy đủ.",
            f"the {wanted} file is truncated: {decoded:.1f} s of the {advertised:.1f} s it"
            " advertises decode",
        )
    return Probe(
        duration_s=round(decoded, 3),
        codec=str(main.get("codec_name") or "") or None,
        channels=int(audio["channels"]) if audio and audio.get("channels") else None,
        sample_rate=int(audio["sample_rate"]) if audio and audio.get("sample_rate") else None,
        width=int(main["width"]) if wanted == "video" and main.get("width") else None,
        height=int(main["height"]) if wanted == "video" and main.get("height") else None,
    )


def wav_header_seconds(path: Path) -> float | None:
    """The length a WAV's header gives its data (None when Python's reader cannot say:
    WAVE_FORMAT_EXTENSIBLE and other variants; or when a recorder writing to a stream left
    the size unknown)."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate = wav.getframerate()
            data_bytes = wav.getnframes() * wav.getsampwidth() * wav.getnchannels()
            # Recorders writing to a pipe (espeak-ng --stdout, ffmpeg) put a placeholder
            # of 2 or 4 GiB there, more than any upload may be.
            if rate <= 0 or data_bytes >= STREAMED_WAV_BYTES:
                return None
            return wav.getnframes() / rate
    except (wave.Error, EOFError, OSError):
        return None


def truncated(decoded: float, advertised: float) -> bool:
    """Whether a decoded length falls short of the advertised one beyond rounding (frame
    and packet boundaries, encoder padding)."""
    return advertised - decoded > max(TRUNCATED_MIN_S, TRUNCATED_SHARE * advertised)


def decoded_seconds(path: Path, label_vi: str, wanted: str) -> float | None:
    """Decode the whole file (to nowhere); its length as decoded. Any decoding error
    (`-v error` prints only errors) makes the file corrupt."""
    done = _run(
        [
            _exe("ffmpeg"),
            "-nostdin",
            "-v",
            "error",
            "-i",
            str(path),
            "-f",
            "null",
            "-progress",
            "pipe:1",
            "-",
        ]
    )
    said = _first_line(done.stderr, path)
    if done.returncode != 0 or said:
        raise Unfit(
            "corrupt",
            f"Tệp {label_vi} bị hỏng: lỗi khi giải mã ({said or done.returncode}).",
            f"the {wanted} file is damaged: decoding failed ({said or done.returncode})",
        )
    seconds = None
    for line in done.stdout.decode("ascii", "replace").splitlines():
        if line.startswith("out_time_us="):
            value = _number(line.partition("=")[2])
            seconds = value / 1e6 if value is not None else seconds
    return seconds


#: ffmpeg's prefix naming the decoder and its address ("[mp3float @ 0x55ac47ceebc0] ").
_DECODER_PREFIX = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*")


def _first_line(stderr: bytes, path: Path) -> str:
    """The decoder's first complaint, without the hub's own file path (not the uploader's
    business: it names the hub's folders)."""
    text = stderr.decode("utf-8", "replace").replace(f"{path}: ", "").replace(str(path), "")
    lines = [line.strip() for line in text.splitlines()]
    return _DECODER_PREFIX.sub("", next((line for line in lines if line), ""))[:200]


# ---------------------------------------------------------------- pictures


def probe_image(path: Path) -> Probe:
    """The picture's size from its header, refused over the boards' limit before it is
    decoded; then decoded (at JPEG's cheap reduced scale) to prove the data is whole."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            check_pixels(width, height)
            # JPEG decodes at 1/8 scale for next to nothing, every coded block still read.
            image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            image.load()
    except Unfit:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise Unfit(
            "corrupt",
            f"Ảnh bị hỏng hoặc không giải mã được ({exc}).",
            f"the picture is damaged or does not decode ({exc})",
        ) from exc
    return Probe(width=width, height=height)


def check_pixels(width: int, height: int) -> None:
    """Refuse a picture larger than a board decodes (its header says so: nothing decoded)."""
    if width * height > MAX_DECODED_PIXELS:
        limit = MAX_DECODED_PIXELS / 1e6
        raise Unfit(
            "too_many_pixels",
            f"Ảnh quá lớn: {width}×{height} ({width * height / 1e6:.0f} megapixel); bảng tin"
            f" chỉ hiển thị ảnh tối đa {limit:.0f} megapixel. Hãy thu nhỏ ảnh rồi gửi lại.",
            f"the picture is {width}×{height} ({width * height / 1e6:.0f} megapixels); boards"
            f" show at most {limit:.0f} megapixels: scale it down",
        )


# ---------------------------------------------------------------- documents


def probe_pdf(path: Path) -> Probe:
    """A PDF's words, extracted by poppler as the devices extract them."""
    try:
        text = reading_text(pdf_page_texts(path))
    except RenditionError as exc:
        raise Unfit(
            "corrupt",
            f"Tệp PDF bị hỏng hoặc không đọc được ({exc}).",
            f"the PDF is damaged or unreadable ({exc})",
        ) from exc
    return Probe(words=len(text.split()))


def office_mime(path: Path) -> str | None:
    """Whether a ZIP archive is a Word or an OpenDocument text file, by its members."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "word/document.xml" in names and "[Content_Types].xml" in names:
                return DOCX_MIME
            if "mimetype" in names and "content.xml" in names:
                declared = archive.read("mimetype")[:100].strip()
                if declared == ODT_MIME.encode("ascii"):
                    return ODT_MIME
    except (zipfile.BadZipFile, OSError, KeyError, RuntimeError, ValueError):
        return None
    return None


def _safe_archive(path: Path, mime: str) -> bytes:
    """The archive's bytes once its members are within the limits and its XML declares no
    DOCTYPE (entities, external references)."""
    raw = path.read_bytes()
    name = "Word" if mime == DOCX_MIME else "OpenDocument"
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.infolist()
            if len(members) > ZIP_MAX_MEMBERS:
                raise _bomb(name, f"{len(members)} phần", f"{len(members)} members")
            expanded = sum(m.file_size for m in members)
            if expanded > ZIP_MAX_EXPANDED:
                raise _bomb(name, f"{expanded} byte khi giải nén", f"{expanded} bytes expanded")
            for member in members:
                if member.file_size > ZIP_MAX_RATIO * max(member.compress_size, 1024):
                    raise _bomb(name, f"phần {member.filename} nở quá lớn", member.filename)
                if member.filename.endswith((".xml", ".rels")):
                    # Read whole but bounded by the checks above; a DOCTYPE is how entities
                    # (billion laughs) and external references come in.
                    if b"<!DOCTYPE" in archive.read(member).upper():
                        raise Unfit(
                            "unsafe",
                            f"Tệp {name} chứa khai báo DOCTYPE (thực thể XML): không nhận.",
                            f"the {name} file's XML declares a DOCTYPE (entities): refused",
                        )
    except (zipfile.BadZipFile, RuntimeError, ValueError, OSError) as exc:
        raise Unfit(
            "corrupt",
            f"Tệp {name} bị hỏng ({exc}).",
            f"the {name} file is damaged ({exc})",
        ) from exc
    return raw


def _bomb(name: str, vi: str, en: str) -> Unfit:
    return Unfit(
        "zip_bomb",
        f"Tệp {name} vượt giới hạn an toàn ({vi}).",
        f"the {name} file exceeds the safety limits ({en})",
    )


def office_text(path: Path, mime: str) -> str:
    """The words of a Word or OpenDocument text file, paragraphs (and table cells) on
    lines of their own, as devices read them; `Unfit` when there are none."""
    raw = _safe_archive(path, mime)
    name = "Word" if mime == DOCX_MIME else "OpenDocument"
    try:
        paragraphs = _docx_paragraphs(raw) if mime == DOCX_MIME else _odt_paragraphs(raw)
    except Unfit:
        raise
    except Exception as exc:  # the libraries raise their own and lxml's errors alike
        raise Unfit(
            "corrupt",
            f"Tệp {name} bị hỏng hoặc không đọc được ({type(exc).__name__}: {exc}).",
            f"the {name} file is damaged or unreadable ({type(exc).__name__}: {exc})",
        ) from exc
    text = reading_text(["\n\n".join(paragraphs)])
    if not text.strip():
        raise Unfit(
            "no_text",
            f"Tệp {name} không có chữ nào: thiết bị chỉ đọc và hiển thị được phần chữ của tệp"
            " Word/OpenDocument. Hãy gửi bản PDF nếu nội dung là hình ảnh.",
            f"the {name} file has no text: devices air only the text of Word/OpenDocument"
            " files; send a PDF if the content is pictures",
        )
    if len(text) > MAX_DOCUMENT_CHARS:
        raise Unfit(
            "too_long",
            f"Văn bản quá dài ({len(text)} ký tự; tối đa {MAX_DOCUMENT_CHARS}).",
            f"the text is too long ({len(text)} characters; at most {MAX_DOCUMENT_CHARS})",
        )
    return unicodedata.normalize("NFC", text)


def _docx_paragraphs(raw: bytes) -> list[str]:
    import docx

    document = docx.Document(io.BytesIO(raw))
    paragraphs = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            for cell in row.cells:
                paragraphs.extend(p.text for p in cell.paragraphs)
    return paragraphs


def _odt_paragraphs(raw: bytes) -> list[str]:
    from odf import teletype, text
    from odf.opendocument import load

    document = load(io.BytesIO(raw))
    found = document.getElementsByType(text.H) + document.getElementsByType(text.P)
    # Headings and paragraphs in document order: odfpy lists them by type.
    order = {id(node): i for i, node in enumerate(_walk(document.text))}
    found.sort(key=lambda node: order.get(id(node), 0))
    return [teletype.extractText(node) for node in found]


def _walk(node: object) -> list[object]:
    out: list[object] = []
    stack = [node]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(reversed(getattr(current, "childNodes", [])))
    return out
