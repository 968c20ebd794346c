"""Hardware profiles (`firmware_profiles/*.toml`): what a device's hardware can do."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from loa_contract import BulletinKind, DeviceKind

PROFILES_DIR = Path(__file__).resolve().parent.parent / "firmware_profiles"


class ProfileError(Exception):
    pass


class AudioProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: libvlc audio output module and device ("alsa" + "hw:0,0", "pulse", ...); None: no audio.
    output: str | None = "alsa"
    device: str | None = None
    volume_min: int = Field(default=0, ge=0, le=100)
    volume_max: int = Field(default=100, ge=0, le=100)
    emergency_volume: int = Field(default=100, ge=0, le=100)
    #: Silence before the first word: HDMI sinks and amplifiers swallow the start of a sound.
    pre_roll_s: float = Field(default=0.0, ge=0, le=10)

    @model_validator(mode="after")
    def _range(self) -> AudioProfile:
        if self.volume_min > self.volume_max:
            raise ValueError("volume_min must not exceed volume_max")
        return self


class RelayProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gpio_pin: int = Field(ge=0, le=27)
    active_high: bool = True
    #: The amplifier needs this long after power-on before it carries sound.
    pre_roll_s: float = Field(default=1.5, ge=0, le=30)
    #: Switch the amplifier off after this long without audio.
    idle_off_s: float = Field(default=60.0, ge=0, le=3600)


class DisplayProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int = Field(ge=16, le=7680)
    height: int = Field(ge=8, le=4320)
    orientation: Literal["landscape", "portrait"] = "landscape"
    fullscreen: bool = True
    #: The smallest letters people can read on this panel from where they stand; text that
    #: would need smaller ones scrolls as a ticker instead of shrinking. None: 1/30 of height.
    min_text_px: int | None = Field(default=None, ge=8, le=400)
    #: How a ticker moves: LED panels crawl one line right to left, LCDs roll the page up.
    #: None: by size (short panels crawl).
    ticker: Literal["horizontal", "vertical"] | None = None
    ticker_px_per_s: float | None = Field(default=None, gt=0, le=2000)
    #: How a document (PDF) is shown: its pages as pictures, or its text like a text
    #: bulletin (a page shrunk onto a small LED panel is a smudge). None: pages on screens
    #: at least 240 px tall, text below.
    document_view: Literal["pages", "text"] | None = None
    #: How fast people read a page on this panel, in characters a second: a page is shown
    #: for its characters at this pace, within the two bounds below (a page of pictures
    #: only gets the least).
    reading_chars_per_s: float = Field(default=12.0, gt=0, le=200)
    page_min_s: float = Field(default=8.0, gt=0, le=600)
    page_max_s: float = Field(default=60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _pages(self) -> DisplayProfile:
        if self.page_min_s > self.page_max_s:
            raise ValueError("page_min_s must not exceed page_max_s")
        return self

    @property
    def screen_size(self) -> tuple[int, int]:
        """(width, height) of the picture as people see it, portrait panels turned."""
        if self.orientation == "portrait":
            return (self.height, self.width)
        return (self.width, self.height)

    @property
    def shows_pages(self) -> bool:
        """Whether documents are shown as their pages (else as their text)."""
        if self.document_view is not None:
            return self.document_view == "pages"
        return self.screen_size[1] >= 240


class HardwareProfile(BaseModel):
    """Cấu hình phần cứng: a loudspeaker cluster, an LED or an LCD board."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    device_kind: DeviceKind
    kinds: list[BulletinKind]
    audio: AudioProfile | None = None
    relay: RelayProfile | None = None
    display: DisplayProfile | None = None

    @model_validator(mode="after")
    def _consistent(self) -> HardwareProfile:
        sounds = {BulletinKind.AUDIO} & set(self.kinds)
        if self.device_kind is DeviceKind.SPEAKER and self.audio is None:
            raise ValueError("a speaker profile needs an [audio] section")
        if sounds and self.audio is None:
            raise ValueError("kinds include audio but there is no [audio] section")
        shows = {BulletinKind.IMAGE, BulletinKind.VIDEO} & set(self.kinds)
        if (shows or self.device_kind is DeviceKind.BOARD) and self.display is None:
            raise ValueError("a board profile needs a [display] section")
        return self


def load_profile(name_or_path: str, profiles_dir: Path = PROFILES_DIR) -> HardwareProfile:
    """Load and validate a profile by name or path; a bad one names the field at fault."""
    path = Path(name_or_path)
    if not path.suffix:
        path = profiles_dir / f"{name_or_path}.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        known = ", ".join(sorted(p.stem for p in profiles_dir.glob("*.toml")))
        raise ProfileError(f"no hardware profile {name_or_path!r} (known: {known})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return HardwareProfile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(profile)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ProfileError(f"{path}: {problems}") from exc
