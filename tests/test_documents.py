"""Documents air (issue #12): a PDF shown page by page on boards, read aloud by speakers.

Real files made in the tests (tests/real_files.py): a PDF with a Vietnamese text layer and a
coloured band on each page, a scanned PDF of pictures only, text files in the encodings
agencies use. Pages are rendered by Debian's poppler, shown by the real pygame renderer
(SDL's dummy driver) and checked by their pixels; frames are saved under tests/artifacts/.
Speech is real espeak-ng; the end-to-end test goes through a real hub on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import unicodedata
import wave
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

from tests.e2e import LiveHub, enroll_agent, headless, live_hub, schedule

headless()
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pygame  # noqa: E402
import pytest  # noqa: E402

from edge_agent.agent import Agent  # noqa: E402
from edge_agent.airing import (  # noqa: E402
    document_airing_seconds,
    page_seconds,
    text_airing_seconds,
)
from edge_agent.content import NO_WORDS  # noqa: E402
from edge_agent.players.base import (  # noqa: E402
    EventType,
    PlaybackEvent,
    PlayItem,
    Slide,
    still_seconds,
)
from edge_agent.players.display import DisplayPlayer  # noqa: E402
from edge_agent.players.null import NullPlayer  # noqa: E402
from edge_agent.players.vlc import VlcPlayer  # noqa: E402
from edge_agent.profile import DisplayProfile, load_profile  # noqa: E402
from edge_agent.renditions import (  # noqa: E402
    RenditionError,
    decode_text,
    document_format,
    fit,
    make_document,
    reading_text,
)
from edge_agent.speech import EspeakEngine  # noqa: E402
from loa_contract import BulletinKind, Priority, utcnow  # noqa: E402
from tests.real_files import LONG_NOTICE, scanned_pdf, text_pdf  # noqa: E402

ARTIFACTS = Path(__file__).parent / "artifacts"
TIMEOUT = 20.0
HAS_ESPEAK = shutil.which("espeak-ng") is not None or bool(os.environ.get("CI"))
needs_espeak = pytest.mark.skipif(not HAS_ESPEAK, reason="needs espeak-ng (Debian package)")

RED, GREEN, BLUE = (220, 30, 40), (30, 160, 70), (30, 60, 220)
MARKS = [RED, GREEN, BLUE]
PAGES = [
    "Thông báo của Ủy ban nhân dân xã về lịch tiêm phòng vắc-xin cho trẻ em.",
    LONG_NOTICE[:1400],
    "Hết.",
]
#: A4 in points: where a page's coloured band is, as a share of its height from the top.
A4 = (595.0, 842.0)
BAND = 60 / 842


def close_to(actual: tuple[int, ...], wanted: tuple[int, int, int], within: int = 12) -> bool:
    return all(abs(a - w) <= within for a, w in zip(actual[:3], wanted, strict=True))


def band_point(screen: tuple[int, int], box_top: int = 0) -> tuple[int, int]:
    """Where a fitted A4 page's band is on a screen (its box from `box_top` down)."""
    box_h = screen[1] - box_top
    _, height = fit(A4, (screen[0], box_h))
    return screen[0] // 2, box_top + (box_h - height) // 2 + round(height * BAND)


@pytest.fixture
def pdf(tmp_path: Path) -> Path:
    return text_pdf(tmp_path / "thong-bao.pdf", PAGES, MARKS)


def quick_pages(display: DisplayProfile, seconds: float = 0.4) -> DisplayProfile:
    """The same panel with pages that turn, and text that rolls, fast enough for a test."""
    return display.model_copy(
        update={
            "page_min_s": seconds,
            "page_max_s": seconds,
            "reading_chars_per_s": 1e6,
            "ticker_px_per_s": 4000.0,
        }
    )


# ---------------------------------------------------------------------- renditions


@pytest.mark.parametrize("profile", ["lcd-board-1080p", "led-board-p10"])
def test_a_pdf_is_read_page_by_page_and_each_page_is_rendered_to_fit(
    pdf: Path, tmp_path: Path, profile: str
) -> None:
    display = load_profile(profile).display
    assert display is not None
    screen = display.screen_size
    made = make_document(pdf, "doc-test", tmp_path, screen)
    assert [page.file for page in made.pages] == [f"doc-test-p{n}.png" for n in (1, 2, 3)]
    # The text layer, in reading order, with every diacritic.
    assert made.text is not None
    assert made.text.startswith("Thông báo của Ủy ban nhân dân xã")
    assert "ỗ ữ ặ" not in made.text  # page 2 holds only the start of the long notice
    assert made.text.endswith("Hết.")
    letters = [page.chars for page in made.pages]
    assert letters[0] == len(PAGES[0].replace(" ", ""))
    assert letters[1] > 1000 and letters[2] == len("Hết.")
    for page, mark in zip(made.pages, MARKS, strict=True):
        picture = pygame.image.load(str(tmp_path / page.file))
        # Fitted to the screen, never stretched: an A4 page is as tall as the screen.
        assert picture.get_size() == fit(A4, screen)
        x, y = picture.get_width() // 2, round(picture.get_height() * BAND)
        assert close_to(tuple(picture.get_at((x, y))), mark), (page.file, picture.get_at((x, y)))
        # Its text was drawn: ink on the white page below the band (a 96-pixel LED page
        # is only a smudge of grey: why such panels show a document's text instead).
        width, height = picture.get_size()
        body = picture.subsurface((0, height // 6, width, height - height // 6))
        ink = (
            width * (height - height // 6)
            - pygame.mask.from_threshold(body, (255, 255, 255), (8, 8, 8, 255)).count()
        )
        assert ink > (20 if display.shows_pages else 0), ink


def test_a_speaker_needs_only_the_words(pdf: Path, tmp_path: Path) -> None:
    made = make_document(pdf, "doc-words", tmp_path, None)
    assert made.pages == () and made.text is not None
    assert made.text.splitlines()[0] == PAGES[0]
    assert list(tmp_path.glob("doc-words*")) == []  # nothing rendered for a speaker


def test_a_scanned_pdf_has_pages_but_no_words(tmp_path: Path) -> None:
    scan = scanned_pdf(tmp_path / "scan.pdf", [RED, BLUE])
    made = make_document(scan, "doc-scan", tmp_path, (1920, 1080))
    assert len(made.pages) == 2 and made.text == ""
    assert [page.chars for page in made.pages] == [0, 0]
    first = pygame.image.load(str(tmp_path / made.pages[0].file))
    assert close_to(tuple(first.get_at((first.get_width() // 2, first.get_height() // 2))), RED)


def test_a_broken_pdf_is_refused_with_poppler_s_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n")
    with pytest.raises(RenditionError, match="poppler could not read the PDF"):
        make_document(broken, "doc-broken", tmp_path, (1920, 1080))


#: Grave, acute, tilde, hook above, dot below: what Windows-1258 writes as combining marks.
TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"


def windows_1258(text: str) -> bytes:
    """`text` as older Windows software saves Vietnamese: a base letter (â, ơ, ư … exist
    whole) followed by its tone mark as a combining character."""
    out = b""
    for ch in unicodedata.normalize("NFC", text):
        try:
            out += ch.encode("cp1258")
        except UnicodeEncodeError:
            decomposed = unicodedata.normalize("NFD", ch)
            tone = "".join(c for c in decomposed if c in TONE_MARKS)
            base = unicodedata.normalize("NFC", "".join(c for c in decomposed if c not in tone))
            out += base.encode("cp1258") + tone.encode("cp1258")
    return out


def test_text_files_in_the_encodings_agencies_use(tmp_path: Path) -> None:
    words = "Thông báo: Ủy ban nhân dân xã Đắk Nông, ngày mồng một"
    for name, raw in (
        ("utf8", words.encode("utf-8")),
        ("utf8-bom", b"\xef\xbb\xbf" + words.encode("utf-8")),
        ("utf16", words.encode("utf-16")),
        ("cp1258", windows_1258(words)),
    ):
        decoded = unicodedata.normalize("NFC", decode_text(raw)).strip()
        assert decoded == words, name
        path = tmp_path / f"{name}.txt"
        path.write_bytes(raw)
        made = make_document(path, f"doc-{name}", tmp_path, (1920, 1080))
        assert made.text == words and made.pages == (), name
    assert document_format(b"%PDF-1.4 ...") == "pdf"
    with pytest.raises(RenditionError, match="neither a PDF nor a text file"):
        document_format(b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00")  # a .docx


def test_reading_text_joins_broken_lines_and_leaves_out_page_numbers() -> None:
    pages = [
        "Ủy ban nhân dân xã\nthông báo lịch tiêm phòng\n\nĐề nghị bà con\nđến đúng giờ.\n\n- 1 -\n",
        "Trang 2\nHết.\n",
    ]
    assert reading_text(pages) == (
        "Ủy ban nhân dân xã thông báo lịch tiêm phòng\nĐề nghị bà con đến đúng giờ.\nHết."
    )
    # Decomposed letters (U + combining hook) come out precomposed.
    assert reading_text(["U\u0309y ban"]) == "Ủy ban"


# ---------------------------------------------------------------------- how long pages stay


@pytest.mark.parametrize("chars", [0, 1, 50, 96, 500, 719, 720, 721, 5000])
def test_a_page_stays_for_its_letters_within_the_profile_s_bounds(chars: int) -> None:
    display = DisplayProfile(
        width=1920, height=1080, reading_chars_per_s=12, page_min_s=8, page_max_s=60
    )
    seconds = page_seconds(chars, display)
    assert 8 <= seconds <= 60
    assert seconds == (8 if chars <= 96 else 60 if chars >= 720 else chars / 12)


@pytest.mark.parametrize(
    ("letters", "display_seconds"),
    [([0], 15.0), ([0, 0, 0], 15.0), ([300, 10, 0], 15.0), ([2000, 2000], 15.0), ([96], 1.0)],
)
def test_a_document_s_length_is_the_same_from_the_hub_s_and_the_board_s_side(
    letters: list[int], display_seconds: float, tmp_path: Path
) -> None:
    display = DisplayProfile(width=1920, height=1080)
    item = PlayItem(
        bulletin_id="d",
        kind=BulletinKind.DOCUMENT,
        priority=Priority.NORMAL,
        title="",
        display_seconds=display_seconds,
        slides=tuple(
            Slide(tmp_path / f"{n}.png", page_seconds(c, display)) for n, c in enumerate(letters)
        ),
    )
    expected = document_airing_seconds(letters, display, display_seconds)
    assert still_seconds(item) == pytest.approx(expected)
    assert expected >= display_seconds


# ---------------------------------------------------------------------- boards show the pages


def pages_item(made_dir: Path, pages: list[str], times: list[float], **extra: object) -> PlayItem:
    settings: dict[str, object] = {
        "bulletin_id": "doc",
        "kind": BulletinKind.DOCUMENT,
        "priority": Priority.NORMAL,
        "title": "Thông báo",
        "display_seconds": 1.0,
        "slides": tuple(Slide(made_dir / f, t) for f, t in zip(pages, times, strict=True)),
    }
    settings.update(extra)
    return PlayItem(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("priority", [Priority.NORMAL, Priority.EMERGENCY])
async def test_the_board_shows_every_page_in_turn(
    pdf: Path, tmp_path: Path, priority: Priority
) -> None:
    display = load_profile("lcd-board-1080p").display
    assert display is not None
    made = make_document(pdf, "doc-board", tmp_path, display.screen_size)
    screen = DisplayPlayer.for_profile(display, window=False)
    try:
        times = [page_seconds(page.chars, display) for page in made.pages]
        item = pages_item(tmp_path, [p.file for p in made.pages], times, priority=priority)
        layout = screen.layout(item)
        assert layout.pages is not None
        # The airing covers every page.
        assert layout.seconds == pytest.approx(sum(times)) and layout.seconds > item.display_seconds
        top = 0
        if priority is Priority.EMERGENCY:
            frame = screen.render_frame(item, 0.0)
            top = next(
                y for y in range(frame.get_height()) if frame.get_at((1, y))[:3] != (255, 221, 0)
            )
        point = band_point(screen.size, top)
        for index, mark in enumerate(MARKS):
            at = sum(times[:index]) + 0.01
            frame = screen.render_frame(item, at)
            ARTIFACTS.mkdir(exist_ok=True)
            pygame.image.save(
                frame, str(ARTIFACTS / f"document-{priority.value}-page{index + 1}.png")
            )
            assert close_to(tuple(frame.get_at(point)), mark), (index, frame.get_at(point))
        # The last page stays up until the end.
        last = screen.render_frame(item, layout.seconds + 5)
        assert close_to(tuple(last.get_at(point)), BLUE)
    finally:
        await screen.close()


class Seen:
    """Player events as they come, to be awaited."""

    def __init__(self) -> None:
        self.events: list[PlaybackEvent] = []
        self.changed = asyncio.Event()

    def __call__(self, event: PlaybackEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def first(self, kind: EventType, within: float = TIMEOUT) -> PlaybackEvent:
        async with asyncio.timeout(within):
            while True:
                for event in self.events:
                    if event.type is kind:
                        return event
                self.changed.clear()
                await self.changed.wait()


async def until(predicate: Callable[[], bool], within: float = TIMEOUT) -> None:
    """Polls what has no event of its own: the picture on the screen."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.005)


async def test_pages_turn_live_and_a_cut_document_resumes_at_its_page(
    pdf: Path, tmp_path: Path
) -> None:
    screen = DisplayPlayer((640, 360), heartbeat_s=30)
    made = make_document(pdf, "doc-live", tmp_path, screen.size)
    seen = Seen()
    screen.set_event_sink(seen)
    point = band_point(screen.size)
    try:
        times = [0.4, 0.4, 0.4]
        item = pages_item(tmp_path, [p.file for p in made.pages], times, display_seconds=0.5)
        started = time.monotonic()
        await screen.play(item)
        for mark in MARKS:
            await until(lambda mark=mark: close_to(tuple(screen.frame.get_at(point)), mark))
        ended = await seen.first(EventType.ENDED)
        # Every page was shown, for its time: the proof of play says so.
        assert ended.position_s == pytest.approx(1.2)
        assert time.monotonic() - started >= 1.2

        # Cut on page 2 (an emergency), resumed there: page 2 comes back first.
        await screen.play(item)
        await until(lambda: close_to(tuple(screen.frame.get_at(point)), GREEN))
        position = await screen.stop()
        assert 0.4 <= position < 0.8
        seen.events.clear()
        await screen.play(
            pages_item(tmp_path, [p.file for p in made.pages], times, start_at_s=position)
        )
        await screen.shown()
        assert close_to(tuple(screen.frame.get_at(point)), GREEN)
        ended = await seen.first(EventType.ENDED)
        assert ended.position_s == pytest.approx(1.2)
    finally:
        await screen.close()


async def test_a_missing_page_is_an_error_not_a_frozen_screen(pdf: Path, tmp_path: Path) -> None:
    screen = DisplayPlayer((320, 180), window=False)
    made = make_document(pdf, "doc-gone", tmp_path, screen.size)
    seen = Seen()
    screen.set_event_sink(seen)
    try:
        (tmp_path / made.pages[1].file).unlink()  # the card lost it
        await screen.play(pages_item(tmp_path, [p.file for p in made.pages], [0.2, 0.2, 0.2]))
        error = await seen.first(EventType.ERROR)
        assert "page" in error.detail and error.position_s >= 0.19
    finally:
        await screen.close()


# ---------------------------------------------------------------------- speakers read it


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


@needs_espeak
async def test_a_pdf_is_read_aloud_by_espeak(pdf: Path, tmp_path: Path) -> None:
    short = text_pdf(tmp_path / "short.pdf", [PAGES[0]], [RED])
    engine = EspeakEngine()
    spoken: dict[str, float] = {}
    for name, source in (("short", short), ("long", pdf)):
        made = make_document(source, f"doc-{name}", tmp_path, None)
        assert made.text
        out = tmp_path / f"{name}.wav"
        await engine.synthesize(made.text, out)
        spoken[name] = wav_seconds(out)
    # All three pages are read: far longer than the first page alone.
    assert spoken["short"] > 2.0
    assert spoken["long"] > 10 * spoken["short"]


# ---------------------------------------------------------------------- through a real hub


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncIterator[LiveHub]:
    async with live_hub(tmp_path / "hub") as live:
        yield live


async def _plays(hub: LiveHub, agent: Agent) -> list[dict[str, object]]:
    plays: list[dict[str, object]] = await hub.call(
        "GET", f"/api/v1/plays?device={agent.identity.device_id}"
    )
    return plays


async def _completed(hub: LiveHub, agent: Agent, bulletin_id: str) -> dict[str, object] | None:
    for play in await _plays(hub, agent):
        if play["bulletin_id"] == bulletin_id and play["outcome"] == "completed":
            return play
    return None


async def test_a_pdf_airs_on_a_board_page_by_page_and_is_proved_whole(
    hub: LiveHub, tmp_path: Path, pdf: Path
) -> None:
    await hub.add_commune("xa-pdf")
    profile = load_profile("lcd-board-1080p")
    assert profile.display is not None
    display = quick_pages(profile.display)
    screen = DisplayPlayer.for_profile(display, fullscreen=False)
    board = await enroll_agent(
        hub,
        tmp_path / "board",
        commune="xa-pdf",
        kind="board",
        profile="lcd-board-1080p",
        player=screen,
        start=False,
    )
    board.profile = profile.model_copy(update={"display": display})
    await board.start()
    try:
        media = await hub.upload(await asyncio.to_thread(pdf.read_bytes), "application/pdf")
        published = await hub.publish(
            {
                "title": "Lịch tiêm phòng",
                "kind": "document",
                "priority": "normal",
                "media": media["sha256"],
                "targets": {"communes": ["xa-pdf"]},
                "schedule": schedule(utcnow()),
                "display_seconds": 1,
            }
        )
        item = await asyncio.wait_for(board.play_started.get(), TIMEOUT)
        assert item.bulletin_id == published["id"] and item.kind is BulletinKind.DOCUMENT
        assert len(item.slides) == 3 and all(slide.seconds == 0.4 for slide in item.slides)
        point = band_point(screen.size)
        for index, mark in enumerate(MARKS):
            await until(lambda mark=mark: close_to(tuple(screen.frame.get_at(point)), mark))
            screen.save_frame(ARTIFACTS / f"e2e-document-page{index + 1}.png")
        await board.wait_until(lambda: _completed(hub, board, published["id"]), TIMEOUT)
        play = await _completed(hub, board, published["id"])
        assert play is not None and play["kind"] == "document"
        # The proof covers all the pages: 3 × 0.4 s, more than the 1 s asked for.
        assert play["position_s"] == pytest.approx(1.2)
        started = datetime.fromisoformat(str(play["started_at"]))
        ended = datetime.fromisoformat(str(play["ended_at"]))
        assert (ended - started).total_seconds() >= 1.2
        status = await board.status()
        assert status["unplayable"] == {}

        # A notice too long for the screen airs until it has rolled by whole, and its proof
        # of play says how long that was, not the 1 s it was given.
        notice = await hub.publish(
            {
                "title": "Thông báo",
                "kind": "text",
                "priority": "normal",
                "text": LONG_NOTICE,
                "targets": {"communes": ["xa-pdf"]},
                "schedule": schedule(utcnow()),
                "display_seconds": 1,
            }
        )
        whole = text_airing_seconds(LONG_NOTICE, display, title="Thông báo", display_seconds=1)
        assert whole > 1.5
        await board.wait_until(lambda: _completed(hub, board, notice["id"]), TIMEOUT + whole)
        play = await _completed(hub, board, notice["id"])
        assert play is not None and play["position_s"] == pytest.approx(whole)
        started = datetime.fromisoformat(str(play["started_at"]))
        ended = datetime.fromisoformat(str(play["ended_at"]))
        assert (ended - started).total_seconds() >= whole
    finally:
        await board.stop()


@needs_espeak
async def test_a_pdf_is_spoken_by_a_speaker_and_a_scan_says_why_it_cannot_be(
    hub: LiveHub, tmp_path: Path, pdf: Path
) -> None:
    await hub.add_commune("xa-loa")
    speaker = await enroll_agent(
        hub,
        tmp_path / "speaker",
        commune="xa-loa",
        kind="speaker",
        profile="speaker-cluster",
        player=VlcPlayer(["--aout=dummy"]),
        speech=EspeakEngine(speed=400),
    )
    try:
        short = text_pdf(tmp_path / "ngan.pdf", [PAGES[0], PAGES[2]], [RED, BLUE])
        media = await hub.upload(await asyncio.to_thread(short.read_bytes), "application/pdf")
        spoken = await hub.publish(
            {
                "title": "Lịch tiêm phòng",
                "kind": "document",
                "priority": "normal",
                "media": media["sha256"],
                "targets": {"communes": ["xa-loa"]},
                "schedule": schedule(utcnow()),
            }
        )
        item = await asyncio.wait_for(speaker.play_started.get(), TIMEOUT)
        assert item.bulletin_id == spoken["id"] and item.kind is BulletinKind.AUDIO
        assert item.path is not None and wav_seconds(item.path) > 1.0
        await speaker.wait_until(lambda: _completed(hub, speaker, spoken["id"]), TIMEOUT)
        play = await _completed(hub, speaker, spoken["id"])
        assert play is not None and play["kind"] == "document"

        # A scan has no words: the hub refuses to publish it to speakers, saying why,
        # rather than sending the speaker something to air nothing.
        scan = scanned_pdf(tmp_path / "scan.pdf", [RED])
        scanned = await hub.upload(await asyncio.to_thread(scan.read_bytes), "application/pdf")
        assert scanned["words"] == 0
        created = await hub.call(
            "POST",
            "/api/v1/bulletins",
            json={
                "title": "Bản chụp",
                "kind": "document",
                "priority": "normal",
                "media": scanned["sha256"],
                "targets": {"communes": ["xa-loa"]},
                "schedule": schedule(utcnow()),
            },
        )
        refused = await hub.call("POST", f"/api/v1/bulletins/{created['id']}/publish", expect=422)
        assert "loa không có gì để phát" in refused["detail"][0]["message"]
        assert created["id"] not in speaker.bulletins()
    finally:
        await speaker.stop()


async def test_a_small_led_panel_crawls_a_pdf_s_text_and_says_why_a_scan_cannot(
    hub: LiveHub, tmp_path: Path, pdf: Path
) -> None:
    await hub.add_commune("xa-led")
    led = await enroll_agent(
        hub,
        tmp_path / "led",
        commune="xa-led",
        kind="board",
        profile="led-board-p10",
        player=NullPlayer(default_duration_s=0.2),
    )
    try:
        media = await hub.upload(await asyncio.to_thread(pdf.read_bytes), "application/pdf")
        notice = await hub.publish(
            {
                "title": "Lịch tiêm phòng",
                "kind": "document",
                "priority": "normal",
                "media": media["sha256"],
                "targets": {"communes": ["xa-led"]},
                "schedule": schedule(utcnow()),
            }
        )
        item = await asyncio.wait_for(led.play_started.get(), TIMEOUT)
        assert item.bulletin_id == notice["id"] and item.kind is BulletinKind.TEXT
        assert item.text is not None and item.text.startswith(PAGES[0]) and item.slides == ()

        scan = scanned_pdf(tmp_path / "scan.pdf", [RED])
        scanned = await hub.upload(await asyncio.to_thread(scan.read_bytes), "application/pdf")
        silent = await hub.publish(
            {
                "title": "Bản chụp",
                "kind": "document",
                "priority": "normal",
                "media": scanned["sha256"],
                # Aimed at the board alone: the hub lets a scan through to boards, and this
                # small panel, which shows documents as text, must say why it cannot.
                "targets": {"devices": [led.identity.device_id]},
                "schedule": schedule(utcnow()),
            }
        )

        async def says_why() -> bool:
            return NO_WORDS in (await led.status())["unplayable"].get(silent["id"], "")

        await led.wait_until(says_why, TIMEOUT)
    finally:
        await led.stop()
