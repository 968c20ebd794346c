"""The fault vocabulary: every name for something wrong with a device, in one enum.

An agent lists what it sees wrong in `HealthSample.faults`; the hub's verdict adds what it
judges from a sample's values and from the fleet (offline, no report). Both speak these
names, so a producer uses a member, never a bare string.

On the wire `faults` stays a list of plain strings: a newer agent may send a name an older
hub does not know, and the hub shows that verbatim rather than refusing the report
(`known_fault` tells the two apart).
"""

from __future__ import annotations

from enum import StrEnum, unique


@unique
class Fault(StrEnum):
    """What can be wrong with a device; the value is the stable wire and label code."""

    # ---- named by the agent in HealthSample.faults

    UNDER_VOLTAGE = "under_voltage"
    """Thiếu áp: the power supply is below ~4.63 V now. It corrupts SD cards and resets the
    Pi; the firmware's throttled word or the rpi_volt hwmon alarm says so."""
    THROTTLED = "throttled"
    """Giảm tốc: the SoC runs slowed now (heat or power), so decoding may stutter."""
    SD_READ_ONLY = "sd_read_only"
    """Thẻ nhớ chỉ đọc: the kernel remounted the data card read-only, usually after errors;
    nothing new can be stored."""
    SD_ERRORS = "sd_errors"
    """Thẻ nhớ báo lỗi: ext4 counted errors on the data card's filesystem."""
    SD_WRITE_FAILED = "sd_write_failed"
    """The agent's periodic write-fsync-read-back probe of a small file failed."""
    SCREEN_BLANK = "screen_blank"
    """Màn hình trống: a board shows one flat colour although an item is on air, or its
    display surface is gone."""
    SCREEN_FROZEN = "screen_frozen"
    """Màn hình đứng hình: no new picture reached a board's screen for too long while an
    item (a slide's heartbeat, or a video) is on air."""
    PLAYER_STUCK = "player_stuck"
    """Trình phát bị treo: a stop did not return in time, the backend was replaced and the
    old one still hangs in libVLC (python-vlc #74). The hub also judges it from
    `player_stuck_stops_total`."""
    RELAY_FAILED = "relay_failed"
    """Không bật được ampli: the amplifier relay's GPIO could not be switched. The item is
    played anyway (an amplifier left powered may still carry it), but the loudspeaker may be
    silent: look at the relay and its wiring."""
    AUDIO_OUTPUT_FAILED = "audio_output_failed"
    """Không phát được ra loa: libVLC could not open the audio output (the sound card is
    missing, unplugged or held by another program), so the last airing was not heard; it
    is reported as failed, not as aired. Cleared by the next airing heard whole."""
    PLAYER_CHECK_FAILED = "player_check_failed"
    """A player backend's own health check raised: what it plays cannot be vouched for."""
    CLOCK_UNTRUSTED = "clock_untrusted"
    """Đồng hồ chưa xác thực: the agent has no signed time yet, so windowed items are held.
    The hub also judges it from `clock_trusted`."""
    MANIFEST_TAMPERED = "manifest_tampered"
    """The programme stored on the device no longer verifies against the hub's key: it was
    altered at rest, refused, and a fresh one is fetched."""
    EMERGENCY_TAMPERED = "emergency_tampered"
    """A stored emergency (tin khẩn cấp) no longer verifies: altered at rest and refused."""
    CACHE_CORRUPT = "cache_corrupt"
    """A cached media file no longer matched its sha256: never played, fetched again."""
    STATE_REBUILT = "state_rebuilt"
    """The agent's database was damaged: moved aside and rebuilt from the device identity
    and the verified cache."""
    TASK_DIED = "task_died"
    """One of the agent's supervised tasks (programme, sync, content, reporting, health)
    died and was restarted."""
    DISK_FULL = "disk_full"
    """Hết bộ nhớ: a download was refused for lack of space (keeping the reserve for speech,
    SQLite and logs), or a write failed with ENOSPC."""
    TASK_STALLED = "task_stalled"
    """A supervised task (the programme loop above all: a hung backend) made no progress
    within its limit; systemd's watchdog is no longer fed, so the agent is restarted."""
    STATE_WRITE_FAILED = "state_write_failed"
    """Không ghi được dữ liệu: the agent's database refused a write for a reason other than
    a full card (a failing SD card); playing goes on, the record named is lost."""
    SPEECH_FAILED = "speech_failed"
    """Không tạo được giọng đọc: a text bulletin's speech could not be made (engine missing
    or crashing), so a speaker cannot air it."""
    DISK_LOW = "disk_low"
    """Sắp hết bộ nhớ: the data filesystem is nearly full. The agent names it as it nears
    its reserve; the hub also grades it from the filesystem's free share."""

    # ---- judged by the hub from a sample's values

    UNDER_VOLTAGE_SINCE_BOOT = "under_voltage_since_boot"
    """Under-voltage happened at some point since the Pi booted, though not now."""
    SD_SLOW = "sd_slow"
    """The write probe took seconds: a worn card slows down before it fails."""
    MEMORY_HIGH = "memory_high"
    """RAM nearly full: the Pi swaps to its card, and the kernel may kill the player."""
    TEMPERATURE_HIGH = "temperature_high"
    """Quá nhiệt: the SoC runs hot (look at the enclosure and its shade)."""
    PLAYER_ERROR = "player_error"
    """Trình phát báo lỗi: the player's state is "error"."""
    CLOCK_OFFSET = "clock_offset"
    """Đồng hồ bị lệch: the system clock (NTP) is minutes away from the hub's time."""
    OUTBOX_BACKLOG = "outbox_backlog"
    """Reports (health, proof of play) are piling up unsent on the device."""

    # ---- only the hub may say these; a device naming them is ignored

    NOT_ENROLLED = "not_enrolled"
    """Chưa đăng ký: a device slot still waiting for its Pi."""
    OFFLINE = "offline"
    """Mất kết nối: not on the WebSocket and not heard from within the offline delay."""
    NO_HEALTH = "no_health"
    """No health report received yet."""
    HEALTH_STALE = "health_stale"
    """Online, but the newest health report is old: the agent's report loop is stuck."""
    REPORTS_REFUSED = "reports_refused"
    """The hub refused this device's proof of play lately (wrong clock, unknown bulletin)."""


def known_fault(name: str) -> Fault | None:
    """The Fault a wire name stands for, or None for a name this version does not know (a
    newer agent's: shown verbatim, never refused)."""
    try:
        return Fault(name)
    except ValueError:
        return None


__all__ = ["Fault", "known_fault"]
