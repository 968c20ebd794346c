"""libVLC's error messages, and which of them say the sound never left the device.

libVLC does not fail a playback whose audio output cannot open: the input plays on, the
clock advances and the player reaches Playing and Ended as if all were well (seen with no
sound card, `--aout=alsa --alsa-audio-device=hw:9,9`, and with PulseAudio gone). The only
reliable sign is what the output modules log at the error level ("cannot open ALSA device",
"Audio output failed", "failed to create audio output"). The agent's player and
`edge-agent doctor` both listen to the log through this class and judge by it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Any

import vlc

#: libvlc_log_level: LIBVLC_ERROR.
LIBVLC_ERROR = 4
#: Longest message kept (the output modules' messages are a line or two).
MESSAGE_BYTES = 512
#: A message holding one of these is about the audio output (its module or the core's
#: "audio output"); matched case-insensitively.
_AUDIO_WORDS = ("audio", "alsa", "pulse", "sound")

_libc = ctypes.CDLL(ctypes.util.find_library("c"))
_vsnprintf = _libc.vsnprintf
_vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]


#: Messages that say the sound is lost, not merely that one output was tried and another
#: will be: the decoder found no output at all, or the device refused the samples or
#: could not be brought back (VLC 3's ALSA and OSS outputs, a card unplugged mid-airing).
_LOST = ("failed to create audio output", "cannot write samples", "cannot recover playback stream")


def is_audio_output_error(message: str) -> bool:
    """Whether a libVLC error message is about the audio output."""
    lowered = message.lower()
    return any(word in lowered for word in _AUDIO_WORDS)


def audio_output_lost(message: str) -> bool:
    """Whether a libVLC error message says the sound did not reach the device (libVLC also
    logs errors of outputs it gives up for the next one, PulseAudio before ALSA)."""
    lowered = message.lower()
    return any(sign in lowered for sign in _LOST)


class VlcErrorLog:
    """Hands each error-level message of one libVLC instance to `on_error`.

    `on_error` runs on libVLC's own threads: it must not call libVLC (python-vlc #77) and
    must be quick; the player only passes the message on to its asyncio loop."""

    def __init__(self, on_error: Callable[[str], None]) -> None:
        self._on_error = on_error

        # va_list is passed by reference (x86-64, aarch64) or is one pointer (armhf), so a
        # void pointer hands it on to vsnprintf intact on every Pi and on the test machine.
        def on_log(_data: Any, level: int, _ctx: Any, fmt: bytes, args: Any) -> None:
            if level < LIBVLC_ERROR:
                return
            buf = ctypes.create_string_buffer(MESSAGE_BYTES)
            _vsnprintf(buf, len(buf), fmt, args)
            self._on_error(buf.value.decode("utf-8", "replace"))

        # Kept referenced for as long as the instance may call it (ctypes keeps no reference
        # to a callback handed to C). Wrapped by a call, not a decorator: python-vlc is
        # untyped, and a decorator would erase `on_log`'s types.
        self._callback = vlc.CallbackDecorators.LogCb(on_log)

    def attach(self, instance: vlc.Instance) -> None:
        instance.log_set(self._callback, None)

    @staticmethod
    def detach(instance: vlc.Instance) -> None:
        instance.log_unset()
