"""What a document or a picture becomes on this device, made once when it is cached.

Agencies send PDFs and text files, phones send photos turned by an EXIF tag, print shops
send CMYK JPEGs, and infographics arrive as animated GIFs. None of that is decoded at play
time: the content part (content.py) makes a *rendition* of each held file in a worker
thread as soon as it is cached, never on the emergency path, and the board's player only
ever loads pictures already at its screen's size.

- A PDF: its text (poppler's `pdftotext`, page by page) to be read by a speaker or shown on a
  small LED panel, and, for screens that show pages, each page rendered by poppler's
  `pdftoppm` at the size that fits the screen (letterboxed, never stretched).
- A text file: its text (UTF-8, UTF-16 with its mark, else the Vietnamese Windows code page).
- A picture (Pillow): turned upright by its EXIF orientation, converted to sRGB (CMYK,
  palette, grey, 16-bit and ICC-tagged pictures alike), scaled once to fit the screen; an
  animation's frames likewise, each with its own time, or refused with the reason.

Every function here blocks (subprocesses, Pillow): call it through `asyncio.to_thread`. A
file that cannot be made into anything raises `RenditionError` with a sentence that says
why, which the agent shows; nothing is skipped silently.

A rendition is stored as files in the cache's derived folder, named after its key (which
holds the media's sha256, the screen size and `RENDER_VERSION`), and a JSON index
`<key>.json` written last: an index on disk means the whole rendition is there.
"""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from PIL.Image import Image as Picture

#: Part of every key: a change in how renditions are made makes new files, not stale ones.
RENDER_VERSION = 1
#: The most pixels a board decodes from one picture (after JPEG's cheap reduced decoding):
#: a 50-megapixel phone photo passes, while a bigger PNG would need hundreds of MB on a Pi.
MAX_DECODED_PIXELS = 50_000_000
#: An animation's frames are all held in memory while it airs: together, at the size shown,
#: at most this many pixels (64 MB), and at most this many frames.
ANIMATION_PIXELS = 16_000_000
MAX_ANIMATION_FRAMES = 300
#: Browsers show GIF frames that claim less than 20 ms for 100 ms; so does the board.
MIN_FRAME_MS = 20
DEFAULT_FRAME_MS = 100
#: The most pages a board renders from one document.
MAX_DOCUMENT_PAGES = 200
#: The most a poppler tool may take for one call (one page, or a whole text).
TOOL_TIMEOUT_S = 120.0
#: Bytes of a file looked at to tell a PDF (its header may follow some junk) from text.
_SNIFF_BYTES = 1024
#: The EXIF tag saying how a camera held the picture.
_ORIENTATION = 0x0112

_PAGE_SIZE = re.compile(r"^Page\s+(\d+)\s+size:\s+([\d.]+)\s+x\s+([\d.]+)", re.MULTILINE)
_PAGE_ROT = re.compile(r"^Page\s+(\d+)\s+rot:\s+(\d+)", re.MULTILINE)
_PAGES = re.compile(r"^Pages:\s+(\d+)", re.MULTILINE)
#: A line that is only a page number ("3", "- 3 -", "Trang 3"): not read aloud.
_PAGE_NUMBER = re.compile(r"^\s*(?:trang\s+)?[-–—]?\s*\d{1,4}\s*[-–—]?\s*$", re.IGNORECASE)


class RenditionError(Exception):
    """The file cannot be made into what this device airs; the message says why."""


@dataclass(frozen=True)
class Page:
    file: str  # in the derived folder
    chars: int  # letters on the page: how long it stays up depends on them


@dataclass(frozen=True)
class Frame:
    file: str
    ms: int


@dataclass(frozen=True)
class Rendition:
    """The index of one rendition: its files (in the derived folder) and what they hold."""

    key: str
    #: A document's words, paragraphs separated by a newline ("" when it has none).
    text: str | None = None
    pages: tuple[Page, ...] = ()
    #: A still picture fitted to the screen.
    image: str | None = None
    #: An animation's frames fitted to the screen (within ANIMATION_PIXELS).
    frames: tuple[Frame, ...] = ()

    def files(self) -> list[str]:
        names = [page.file for page in self.pages] + [frame.file for frame in self.frames]
        return names + ([self.image] if self.image else [])

    def to_json(self) -> bytes:
        data: dict[str, Any] = {
            "version": RENDER_VERSION,
            "key": self.key,
            "text": self.text,
            "pages": [{"file": p.file, "chars": p.chars} for p in self.pages],
            "image": self.image,
            "frames": [{"file": f.file, "ms": f.ms} for f in self.frames],
        }
        return json.dumps(data, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, raw: bytes) -> Rendition:
        data = json.loads(raw)
        if data.get("version") != RENDER_VERSION:
            raise ValueError(f"rendition index of version {data.get('version')!r}")
        return cls(
            key=str(data["key"]),
            text=data["text"],
            pages=tuple(Page(str(p["file"]), int(p["chars"])) for p in data["pages"]),
            image=data["image"],
            frames=tuple(Frame(str(f["file"]), int(f["ms"])) for f in data["frames"]),
        )


# ---------------------------------------------------------------------- keys


def document_key(sha256: str, screen: tuple[int, int] | None) -> str:
    """A document's rendition: its pages at `screen`'s size, or (None) its text only."""
    made = "text" if screen is None else f"{screen[0]}x{screen[1]}"
    return f"doc-{sha256}-{made}-r{RENDER_VERSION}"


def image_key(sha256: str, screen: tuple[int, int]) -> str:
    return f"img-{sha256}-{screen[0]}x{screen[1]}-r{RENDER_VERSION}"


# ---------------------------------------------------------------------- documents


def document_format(head: bytes) -> Literal["pdf", "text"]:
    """What a document file is, by its bytes (not by what its sender called it)."""
    if b"%PDF-" in head[:_SNIFF_BYTES]:
        return "pdf"
    if b"\0" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RenditionError("the document is neither a PDF nor a text file")
    return "text"


def decode_text(raw: bytes) -> str:
    """A text file's words: UTF-8, UTF-16 with a byte-order mark, else Windows-1258 (the
    Vietnamese code page older office software writes)."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1258", errors="replace")


def reading_text(pages: Sequence[str]) -> str:
    """Words as they are read: the lines of a paragraph joined (a PDF breaks them where
    its column ended), paragraphs on lines of their own, page numbers left out, NFC."""
    paragraphs: list[str] = []
    for page in pages:
        current: list[str] = []
        for line in unicodedata.normalize("NFC", page).splitlines():
            if not line.strip():
                if current:
                    paragraphs.append(" ".join(current))
                    current = []
                continue
            if _PAGE_NUMBER.match(line):
                continue
            current.append(" ".join(line.split()))
        if current:
            paragraphs.append(" ".join(current))
    return "\n".join(paragraphs)


def letters(text: str) -> int:
    """Characters a reader reads: everything but white space."""
    return sum(1 for ch in text if not ch.isspace())


def _tool(*args: str) -> str:
    exe = shutil.which(args[0])
    if exe is None:
        raise RenditionError(
            f"{args[0]} is not installed: install the Debian package poppler-utils"
        )
    try:
        done = subprocess.run(
            [exe, *args[1:]],
            capture_output=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RenditionError(f"{args[0]} took longer than {TOOL_TIMEOUT_S:g} s") from None
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = said[-1] if said else f"exit status {done.returncode}"
        raise RenditionError(f"poppler could not read the PDF ({args[0]}): {why}")
    return done.stdout.decode("utf-8", "replace")


def pdf_page_texts(source: Path) -> list[str]:
    """The text of each page of a PDF (empty strings for pages of pictures only)."""
    raw = _tool("pdftotext", "-enc", "UTF-8", "-eol", "unix", str(source), "-")
    pages = raw.split("\f")
    if pages and not pages[-1].strip():
        pages.pop()  # pdftotext ends every page, the last too, with a form feed
    return pages


def fit(size: tuple[float, float], screen: tuple[int, int]) -> tuple[int, int]:
    """`size` scaled, up or down, to fit `screen` without stretching."""
    width, height = size
    scale = min(screen[0] / width, screen[1] / height)
    return (max(1, round(width * scale)), max(1, round(height * scale)))


def pdf_page_sizes(source: Path) -> list[tuple[float, float]]:
    """Each page's size in points as shown (turned by its /Rotate)."""
    info = _tool("pdfinfo", "-f", "1", "-l", str(MAX_DOCUMENT_PAGES + 1), str(source))
    count = _PAGES.search(info)
    if count is None:
        raise RenditionError("poppler found no pages in the PDF")
    if int(count.group(1)) > MAX_DOCUMENT_PAGES:
        raise RenditionError(
            f"the document has {count.group(1)} pages; a board shows at most {MAX_DOCUMENT_PAGES}"
        )
    rotations = {int(m.group(1)): int(m.group(2)) % 180 for m in _PAGE_ROT.finditer(info)}
    sizes = []
    for match in _PAGE_SIZE.finditer(info):
        width, height = float(match.group(2)), float(match.group(3))
        if width <= 0 or height <= 0:
            raise RenditionError(f"page {match.group(1)} of the PDF has no area")
        turned = rotations.get(int(match.group(1)), 0) == 90
        sizes.append((height, width) if turned else (width, height))
    if len(sizes) != int(count.group(1)):
        raise RenditionError("poppler could not size every page of the PDF")
    return sizes


def make_document(
    source: Path, key: str, out_dir: Path, screen: tuple[int, int] | None
) -> Rendition:
    """A document's text and, with a `screen`, its pages rendered to fit it (in `out_dir`)."""
    with source.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if document_format(head) == "text":
        # No pages to show: a board shows a text file as it shows a text bulletin.
        return Rendition(key=key, text=reading_text([decode_text(source.read_bytes())]))
    texts = pdf_page_texts(source)
    if screen is None:
        return Rendition(key=key, text=reading_text(texts))
    sizes = pdf_page_sizes(source)
    pages = []
    for number, size in enumerate(sizes, start=1):
        width, height = fit(size, screen)
        name = f"{key}-p{number}"
        _tool(
            "pdftoppm",
            "-png",
            "-f",
            str(number),
            "-l",
            str(number),
            "-singlefile",
            "-scale-to-x",
            str(width),
            "-scale-to-y",
            str(height),
            str(source),
            str(out_dir / name),
        )
        page_text = texts[number - 1] if number <= len(texts) else ""
        pages.append(Page(f"{name}.png", letters(page_text)))
    return Rendition(key=key, text=reading_text(texts), pages=tuple(pages))


# ---------------------------------------------------------------------- pictures


def _srgb(image: Picture) -> Picture:
    """The picture in 8-bit RGB, or RGBA when it has transparency, its colours kept."""
    icc = image.info.get("icc_profile")
    if icc and image.mode in ("CMYK", "RGB", "RGBA"):
        try:
            from PIL import ImageCms

            out_mode = "RGBA" if image.mode == "RGBA" else "RGB"
            converted = ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                ImageCms.createProfile("sRGB"),
                outputMode=out_mode,
            )
            if converted is not None:
                return converted
        except (ImportError, OSError, ValueError, ImageCms.PyCMSError):
            pass  # a broken or unusual profile: the plain conversion below is close enough
    mode = image.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        # 16-bit or float grey: scaled into 8 bits (a plain conversion clips at 255).
        low, high = 0.0, 1.0
        extrema = image.getextrema()
        if isinstance(extrema[0], int | float) and isinstance(extrema[1], int | float):
            low, high = float(extrema[0]), float(extrema[1])
        span = (high - low) or 1.0
        return image.point(lambda v: (v - low) * 255.0 / span).convert("L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info):
        return image.convert("RGBA")
    return image.convert("RGB")


def _frame_ms(frame: Picture) -> int:
    ms = frame.info.get("duration")
    if not isinstance(ms, int | float) or ms < MIN_FRAME_MS:
        return DEFAULT_FRAME_MS
    return int(ms)


def make_image(
    source: Path, key: str, out_dir: Path, screen: tuple[int, int], *, photo_quality: int = 90
) -> Rendition:
    """A picture upright, in sRGB and fitted to `screen` (in `out_dir`); an animation's
    frames likewise, or RenditionError with the reason it cannot be shown."""
    # Imported here: a speaker's agent never loads Pillow (its memory is measured).
    from PIL import Image, ImageOps

    try:
        with Image.open(source) as image:
            if getattr(image, "is_animated", False) and getattr(image, "n_frames", 1) > 1:
                return _animation(image, key, out_dir, screen)
            photo = image.format in ("JPEG", "MPO", "WEBP", "HEIF", "AVIF")
            # JPEG decodes at 1/2, 1/4 or 1/8 scale for next to nothing: a 50-megapixel
            # photo then costs about what the screen does. Asked in the stored orientation
            # (EXIF turns it after), never below the size it will be shown at.
            width, height = image.size
            turned = image.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8)
            shown_w, shown_h = fit((height, width) if turned else (width, height), screen)
            image.draft("RGB", (shown_h, shown_w) if turned else (shown_w, shown_h))
            _check_pixels(image.size)
            upright = ImageOps.exif_transpose(image)
            assert upright is not None  # in_place=False always returns the picture
            shown = _srgb(upright)
    except RenditionError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise RenditionError(f"the picture cannot be decoded: {exc}") from exc
    fitted = shown.resize(fit(shown.size, screen), Image.Resampling.LANCZOS, reducing_gap=3.0)
    if photo and fitted.mode == "RGB":
        name = f"{key}.jpg"
        fitted.save(out_dir / name, "JPEG", quality=photo_quality)
    else:
        # Drawings and infographics keep sharp edges, and transparency stays transparent.
        name = f"{key}.png"
        fitted.save(out_dir / name, "PNG", compress_level=3)
    return Rendition(key=key, image=name)


def _check_pixels(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_DECODED_PIXELS:
        raise RenditionError(
            f"the picture is {width}×{height} ({width * height / 1e6:.0f} megapixels); a "
            f"board decodes at most {MAX_DECODED_PIXELS / 1e6:.0f} megapixels"
        )


def _animation(image: Picture, key: str, out_dir: Path, screen: tuple[int, int]) -> Rendition:
    from PIL import Image, ImageSequence

    count = int(getattr(image, "n_frames", 1))
    if count > MAX_ANIMATION_FRAMES:
        raise RenditionError(
            f"the animation has {count} frames; a board animates at most "
            f"{MAX_ANIMATION_FRAMES} (send it as a video)"
        )
    _check_pixels(image.size)
    width, height = image.size
    fitted = fit((width, height), screen)
    scale = fitted[0] / width
    # Every frame is held while it airs: a long animation is shown smaller, within the
    # budget, or refused when that would shrink it to less than half its fitted size.
    budget = math.sqrt(ANIMATION_PIXELS / (count * width * height))
    if budget < scale / 2:
        raise RenditionError(
            f"the animation has {count} frames of {width}×{height}: too many to hold at a "
            "visible size on this board (send it as a video)"
        )
    scale = min(scale, budget)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    frames = []
    for number, frame in enumerate(ImageSequence.Iterator(image), start=1):
        shown = _srgb(frame).resize(size, Image.Resampling.LANCZOS)
        name = f"{key}-f{number}.png"
        shown.save(out_dir / name, "PNG", compress_level=3)
        frames.append(Frame(name, _frame_ms(frame)))
    return Rendition(key=key, frames=tuple(frames))
