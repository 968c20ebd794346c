"""The technician's test tone: a plain 1 kHz sine, made once per device."""

from __future__ import annotations

import array
import math
import os
import wave
from pathlib import Path

TONE_FILE = "test-tone.wav"


def write_tone(
    path: Path, *, frequency: float = 1000.0, seconds: float = 2.0, rate: int = 22050
) -> Path:
    amplitude = 0.5 * 32767
    samples = array.array(
        "h",
        (
            int(amplitude * math.sin(2 * math.pi * frequency * n / rate))
            for n in range(int(seconds * rate))
        ),
    )
    tmp = path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    os.replace(tmp, path)
    return path


def ensure_test_tone(data_dir: Path) -> Path:
    path = data_dir / TONE_FILE
    if not path.exists():
        write_tone(path)
    return path
