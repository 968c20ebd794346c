"""Offline text-to-speech: a speaker airs a text bulletin as synthesized Vietnamese speech.

Synthesis is slow next to playback, so the agent makes the WAV as soon as a bulletin arrives
and caches it under `speech_key(engine.engine_id, text)`: the same text through the same
engine and settings is never synthesized twice, and changing the voice makes new files.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import unicodedata
import wave
from pathlib import Path
from typing import Protocol


class SpeechError(RuntimeError):
    pass


#: Which rules `spoken_text` applies: part of the engine's id, so speech made under other
#: rules (emoji read aloud by their names) is made again, not replayed.
SPOKEN_TEXT_RULES = 2
#: Symbols that are words in a bulletin ("30°C", "+", "≥ 18 tuổi") and stay to be read.
_SPOKEN_SYMBOLS = frozenset("°℃℉№+−±×÷=<>≤≥")


def _left_out(ch: str) -> str | None:
    """What takes the place of `ch` in speech: None keeps it, "" drops it, " " drops it
    and keeps the words either side apart."""
    if ch in _SPOKEN_SYMBOLS:
        return None
    code = ord(ch)
    if (
        0xFE00 <= code <= 0xFE0F  # emoji or text presentation
        or 0xE0100 <= code <= 0xE01EF
        or code == 0x20E3  # keycap: "1️⃣" is read as the digit
    ):
        return ""
    category = unicodedata.category(ch)
    if category in ("So", "Sm", "Sk", "Co", "Cn", "Cs"):
        return " "  # emoji, pictographs, arrows, skin tones, flags, private use
    if category == "Cf":
        return ""  # joiners, tags, soft hyphens: invisible, and not to be read
    return None


def spoken_text(text: str) -> str:
    """What espeak-ng is given: NFC (it reads precomposed Vietnamese letters reliably,
    decomposed ones not), without emoji and pictographic symbols, which it would read out by
    their names in the middle of an announcement ("đèn xe cảnh sát" for 🚓)."""
    kept: list[str] = []
    for ch in unicodedata.normalize("NFC", text):
        instead = _left_out(ch)
        kept.append(ch if instead is None else instead)
    lines = ("".join(kept)).splitlines()
    return "\n".join(" ".join(line.split()) for line in lines if line.strip())


class SpeechEngine(Protocol):
    #: Names the engine and every setting that changes the sound; part of the cache key.
    engine_id: str

    async def synthesize(self, text: str, out_path: Path) -> None:
        """Write `text` spoken as a WAV file at `out_path` (atomically: whole or absent)."""


def speech_key(engine_id: str, text: str) -> str:
    """Cache key of one synthesis: sha256 hex over the engine id and the text."""
    digest = hashlib.sha256()
    digest.update(engine_id.encode("utf-8"))
    digest.update(b"\0")  # so ("ab", "c") and ("a", "bc") differ
    digest.update(text.encode("utf-8"))
    return digest.hexdigest()


class EspeakEngine:
    """espeak-ng, which ships a Vietnamese voice (`-v vi`) and runs well on a Raspberry Pi."""

    def __init__(
        self,
        voice: str = "vi",
        speed: int = 150,
        *,
        executable: str = "espeak-ng",
        timeout_s: float = 300.0,
    ) -> None:
        if not 80 <= speed <= 450:
            raise ValueError("espeak-ng speed is words per minute, 80–450")
        self.voice = voice
        self.speed = speed
        self.executable = executable
        self.timeout_s = timeout_s
        self.engine_id = f"espeak-ng:{voice}:{speed}:t{SPOKEN_TEXT_RULES}"
        self._voice_checked = False

    def _resolve(self) -> str:
        exe = shutil.which(self.executable)
        if exe is None:
            raise SpeechError(
                f"{self.executable} not found: install the Debian package espeak-ng "
                "(apt install espeak-ng)"
            )
        return exe

    async def synthesize(self, text: str, out_path: Path) -> None:
        spoken = spoken_text(text)
        if not spoken:
            raise SpeechError("nothing to say: the text is empty (or only symbols)")
        exe = self._resolve()
        if not self._voice_checked:
            await self._check_voice(exe)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.{id(self):x}.tmp")
        try:
            # Text goes through stdin, never a shell or argv: no quoting, no length limit,
            # and a bulletin starting with "-" is not read as an option. -b 1: UTF-8 input.
            proc = await asyncio.create_subprocess_exec(
                exe,
                "-v",
                self.voice,
                "-s",
                str(self.speed),
                "-b",
                "1",
                "--stdin",
                "-w",
                str(tmp),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                _, stderr = await asyncio.wait_for(
                    proc.communicate(spoken.encode("utf-8") + b"\n"), self.timeout_s
                )
            except BaseException:
                # Timeout or cancellation: do not leave espeak-ng running on a small Pi.
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                raise
            if proc.returncode != 0:
                message = stderr.decode("utf-8", "replace").strip()
                raise SpeechError(f"espeak-ng failed ({proc.returncode}): {message}")
            await asyncio.to_thread(_check_and_sync, tmp)
            os.replace(tmp, out_path)
        except TimeoutError:
            raise SpeechError(f"espeak-ng took longer than {self.timeout_s:g} s") from None
        finally:
            tmp.unlink(missing_ok=True)

    async def _check_voice(self, exe: str) -> None:
        # espeak-ng reading stdin falls back to its default (English) voice without an
        # error when the voice is missing; Vietnamese read as English must fail instead.
        proc = await asyncio.create_subprocess_exec(
            exe, "--voices", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        listing, _ = await asyncio.wait_for(proc.communicate(), 30)
        wanted = self.voice.split("+", 1)[0].lower()
        known: set[str] = set()
        for line in listing.decode("utf-8", "replace").splitlines()[1:]:
            columns = line.split()
            if len(columns) >= 5:
                language, name, file = columns[1], columns[3], columns[4]
                known.update(
                    {language.lower(), name.lower(), file.lower(), file.rsplit("/", 1)[-1].lower()}
                )
        if wanted not in known:
            raise SpeechError(
                f"espeak-ng has no voice {self.voice!r}; `espeak-ng --voices=vi` lists the "
                "Vietnamese ones (Debian package espeak-ng-data)"
            )
        self._voice_checked = True


def _check_and_sync(path: Path) -> None:
    try:
        with wave.open(str(path), "rb") as wav:
            frames = wav.getnframes()
    except (OSError, EOFError, wave.Error) as exc:
        raise SpeechError(f"espeak-ng wrote no valid WAV: {exc}") from exc
    if frames == 0:
        raise SpeechError("espeak-ng produced no audio")
    # The cache treats a file as final once renamed; after a power cut it must be whole.
    with path.open("rb+") as handle:
        os.fsync(handle.fileno())
