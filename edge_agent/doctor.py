"""`edge-agent doctor`: what a field technician needs to know, each with the fix in plain words.

Doctor runs beside a live agent: it only reads the agent's data folder (SQLite opened with
`mode=ro`, so it never takes the write lock; the cache re-hashed without deleting anything)
and it talks to hardware the agent may be holding, in which case it says so instead of
reporting a fault. Everything is synchronous: it is a short command-line run, and the tests
drive it in a subprocess or a worker thread while a hub runs on their own event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import socket
import sqlite3
import ssl
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psutil

from .hubclient import parse_http_date, tls_context
from .i18n import t
from .identity import IDENTITY_FILE, Identity, IdentityError
from .profile import PROFILES_DIR, HardwareProfile, ProfileError, load_profile
from .rpi_health import ext4_errors, mount_of, power_state, sd_write_probe, soc_temperature
from .tone import write_tone

Status = Literal["pass", "warn", "fail"]
CHECK_ORDER = (
    "profile",
    "audio",
    "display",
    "relay",
    "hub",
    "clock",
    "disk",
    "power",
    "cache",
    "outbox",
    "service",
)
PORT_FILE = "agent.port"
DB_FILE = "agent.sqlite3"
SERVICE = "loa-agent"

#: Below these the card is about to stop taking downloads and state writes.
DISK_FAIL_BYTES = 200 * 1024 * 1024
DISK_WARN_BYTES = 1024 * 1024 * 1024
OUTBOX_WARN = 500
CLOCK_WARN_S = 5.0
CLOCK_FAIL_S = 120.0
TEMP_WARN_C = 75.0  # the Pi firmware starts soft throttling at 80 °C


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class DoctorOptions:
    data_dir: Path
    lang: str = "vi"
    #: libvlc audio output module overriding the profile's ("alsa", "pulse", "dummy").
    aout: str | None = None
    audio_device: str | None = None
    pin_factory: Any = None
    hub_timeout_s: float = 8.0
    pattern_seconds: float = 3.0
    profiles_dir: Path = PROFILES_DIR
    systemd_dir: Path = Path("/run/systemd/system")
    sys_root: Path = Path("/sys")
    proc_root: Path = Path("/proc")


@dataclass
class _Context:
    """What one check learns that a later one needs."""

    opts: DoctorOptions
    identity: Identity | None = None
    profile: HardwareProfile | None = None
    agent_running: bool = False
    hub_date: datetime | None = None
    hub_rtt_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def msg(self, key: str, **values: Any) -> str:
        return t(key, self.opts.lang, **values)


# ---------------------------------------------------------------- profile


def check_profile(ctx: _Context) -> Check:
    data = ctx.opts.data_dir
    try:
        ctx.identity = Identity.load(data)
    except IdentityError as exc:
        return Check("profile", "fail", str(exc), ctx.msg("doc_fix_enroll", data=data))
    name = ctx.identity.profile
    try:
        ctx.profile = load_profile(name, ctx.opts.profiles_dir)
    except ProfileError as exc:
        return Check("profile", "fail", str(exc), ctx.msg("doc_fix_profile", name=name))
    profile = ctx.profile
    return Check("profile", "pass", f"{profile.name}: {profile.device_kind.value}")


# ---------------------------------------------------------------- audio


def _vlc_audio_args(ctx: _Context) -> list[str]:
    audio = ctx.profile.audio if ctx.profile else None
    output = ctx.opts.aout or (audio.output if audio else None) or "alsa"
    device = ctx.opts.audio_device
    if device is None and ctx.opts.aout is None and audio is not None:
        device = audio.device
    args = [f"--aout={output}"]
    if device and output == "alsa":
        args.append(f"--alsa-audio-device={device}")
    return args


def _play_tone(args: list[str], tone: Path, timeout_s: float) -> tuple[bool, float, list[str]]:
    """(reached Playing, seconds played, audio errors libvlc logged)."""
    import vlc

    from .players.vlc_log import VlcErrorLog, is_audio_output_error

    errors: list[str] = []
    log = VlcErrorLog(errors.append)
    instance = vlc.Instance(["--quiet", "--no-video", "--file-caching=100", *args])
    if instance is None:
        return False, 0.0, [f"libvlc refused the arguments {args}"]
    log.attach(instance)
    player = instance.media_player_new()
    reached = False
    played = 0.0
    try:
        media = instance.media_new_path(str(tone))
        player.set_media(media)
        media.release()
        player.audio_set_volume(60)
        player.play()
        deadline = time.monotonic() + timeout_s
        # libvlc's events would need a thread hand-off; a short poll is simpler in a CLI.
        while time.monotonic() < deadline:
            state = player.get_state()
            reached = reached or state == vlc.State.Playing
            played = max(played, (player.get_time() or 0) / 1000)
            if state in (vlc.State.Ended, vlc.State.Error, vlc.State.Stopped) and reached:
                break
            if state == vlc.State.Error:
                break
            time.sleep(0.05)
        player.stop()
    finally:
        player.release()
        log.detach(instance)
        instance.release()
    return reached, played, [e for e in errors if is_audio_output_error(e)]


def check_audio(ctx: _Context) -> Check:
    profile = ctx.profile
    if profile is None:
        return Check("audio", "warn", ctx.msg("doc_skipped"))
    if profile.audio is None or (profile.audio.output is None and ctx.opts.aout is None):
        return Check("audio", "pass", ctx.msg("doc_none_fitted", what="audio"))
    args = _vlc_audio_args(ctx)
    fix = ctx.msg("doc_fix_audio")
    relay = ctx.extra.get("relay_device")
    with tempfile.TemporaryDirectory(prefix="loa-doctor-") as tmp:
        tone = write_tone(Path(tmp) / "tone.wav", seconds=0.8)
        try:
            if relay is not None:
                relay.on()
                time.sleep(profile.relay.pre_roll_s if profile.relay else 0)
            reached, played, errors = _play_tone(args, tone, timeout_s=5.0)
        except Exception as exc:
            return Check("audio", "fail", f"libvlc {' '.join(args)}: {exc}", fix)
        finally:
            if relay is not None:
                relay.off()
    where = " ".join(args)
    if errors:
        return Check("audio", "fail", f"{where}: {errors[0]}", fix)
    if not reached:
        return Check("audio", "fail", f"{where}: the test tone never started", fix)
    return Check("audio", "pass", f"{where}: test tone played ({played:.1f} s)")


# ---------------------------------------------------------------- display


def _test_pattern(surface: Any) -> None:
    import pygame

    width, height = surface.get_size()
    bars = [(255, 255, 255), (255, 255, 0), (0, 255, 255), (0, 255, 0), (255, 0, 255), (255, 0, 0)]
    bar = max(1, width // len(bars))
    for i, colour in enumerate(bars):
        surface.fill(colour, pygame.Rect(i * bar, 0, bar, height))
    # A white frame shows whether the panel crops the edges (common on LED boards).
    pygame.draw.rect(surface, (255, 255, 255), surface.get_rect(), 1)


def check_display(ctx: _Context) -> Check:
    profile = ctx.profile
    if profile is None:
        return Check("display", "warn", ctx.msg("doc_skipped"))
    if profile.display is None:
        return Check("display", "pass", ctx.msg("doc_none_fitted", what="display"))
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    spec = profile.display
    size = spec.screen_size
    try:
        pygame.display.init()
        try:
            driver = pygame.display.get_driver()
            headless = driver in ("dummy", "offscreen")
            flags = pygame.FULLSCREEN if spec.fullscreen and not headless else 0
            surface = pygame.display.set_mode(size, flags)
            _test_pattern(surface)
            pygame.display.flip()
            if not headless and ctx.opts.pattern_seconds > 0:
                time.sleep(ctx.opts.pattern_seconds)  # for the technician to look at it
            got = surface.get_size()
        finally:
            pygame.display.quit()
    except pygame.error as exc:
        status: Status = "warn" if ctx.agent_running else "fail"
        return Check("display", status, f"pygame: {exc}", ctx.msg("doc_fix_display"))
    detail = f"{driver} {got[0]}x{got[1]}"
    if headless:
        detail += " (SDL_VIDEODRIVER: nothing visible)"
    return Check("display", "pass", detail)


# ---------------------------------------------------------------- relay


def check_relay(ctx: _Context) -> Check:
    profile = ctx.profile
    if profile is None:
        return Check("relay", "warn", ctx.msg("doc_skipped"))
    if profile.relay is None:
        return Check("relay", "pass", ctx.msg("doc_none_fitted", what="relay"))
    pin = profile.relay.gpio_pin
    fix = ctx.msg("doc_fix_relay", pin=pin)
    try:
        from gpiozero import OutputDevice

        device = OutputDevice(
            pin,
            active_high=profile.relay.active_high,
            initial_value=False,
            pin_factory=ctx.opts.pin_factory,
        )
    except Exception as exc:
        if ctx.agent_running:
            return Check("relay", "warn", f"GPIO {pin}: {exc}", ctx.msg("doc_relay_busy", pin=pin))
        return Check("relay", "fail", f"GPIO {pin}: {exc}", fix)
    try:
        device.on()
        went_on = bool(device.value)
        time.sleep(0.2)  # long enough to hear the click
        device.off()
        went_off = not device.value
    except Exception as exc:
        device.close()
        return Check("relay", "fail", f"GPIO {pin}: {exc}", fix)
    if not (went_on and went_off):
        device.close()
        return Check("relay", "fail", f"GPIO {pin} did not follow on/off", fix)
    # Kept open for the audio check, which powers the amplifier for the test tone.
    ctx.extra["relay_device"] = device
    return Check("relay", "pass", f"GPIO {pin} switched on and off")


# ---------------------------------------------------------------- hub and clock


def check_hub(ctx: _Context) -> Check:
    identity = ctx.identity
    if identity is None:
        return Check(
            "hub", "fail", "no identity", ctx.msg("doc_fix_enroll", data=ctx.opts.data_dir)
        )
    url = urllib.parse.urlsplit(identity.hub_url)
    host = url.hostname or ""
    tls = url.scheme == "https"
    port = url.port or (443 if tls else 80)
    timeout = ctx.opts.hub_timeout_s
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return Check("hub", "fail", f"DNS {host}: {exc}", ctx.msg("doc_fix_dns", host=host))
    # The same trust as the agent's own client: the CA pinned at enrollment, if any.
    ca_file = identity.ca_file(ctx.opts.data_dir)
    try:
        context = tls_context(ca_file)
    except (ssl.SSLError, OSError) as exc:
        return Check("hub", "fail", f"CA {ca_file}: {exc}", ctx.msg("doc_fix_ca", path=ca_file))
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        fix = ctx.msg("doc_fix_tcp", host=host, port=port)
        return Check("hub", "fail", f"TCP {host}:{port}: {exc}", fix)
    try:
        if tls:
            try:
                with context.wrap_socket(raw, server_hostname=host) as wrapped:
                    version = wrapped.version()
            except (ssl.SSLError, OSError) as exc:
                return Check("hub", "fail", f"TLS {host}: {exc}", ctx.msg("doc_fix_tls"))
    finally:
        raw.close()
    request = urllib.request.Request(
        f"{identity.hub_url}/api/v1/device/manifest",
        headers={"Authorization": f"Device {identity.device_id}:{identity.device_secret}"},
    )
    began = time.monotonic()
    try:
        with urllib.request.urlopen(
            request, timeout=timeout, context=context if tls else None
        ) as response:
            status, date = response.status, response.headers.get("Date")
    except urllib.error.HTTPError as exc:
        status, date = exc.code, exc.headers.get("Date")
    except (urllib.error.URLError, OSError) as exc:
        fix = ctx.msg("doc_fix_tcp", host=host, port=port)
        return Check("hub", "fail", f"GET manifest: {exc}", fix)
    ctx.hub_rtt_s = time.monotonic() - began
    ctx.hub_date = parse_http_date(date)
    if status in (401, 403):
        return Check("hub", "fail", f"HTTP {status}: device key refused", ctx.msg("doc_fix_auth"))
    if status not in (200, 304):
        return Check("hub", "fail", f"HTTP {status}", ctx.msg("doc_fix_hub_error", status=status))
    addr = addresses[0][4][0]
    secure = f", {version}" if tls else ", plain HTTP"
    status_note: Status = "pass" if tls or host in ("127.0.0.1", "localhost", "::1") else "warn"
    fix = "" if status_note == "pass" else ctx.msg("doc_fix_tls")
    return Check(
        "hub",
        status_note,
        f"{identity.hub_url} ({addr}{secure}): device accepted, {ctx.hub_rtt_s * 1000:.0f} ms",
        fix,
    )


def check_clock(ctx: _Context) -> Check:
    if ctx.hub_date is None:
        return Check("clock", "warn", ctx.msg("doc_clock_unknown"))
    # The Date header has one-second resolution and was stamped mid-request.
    offset = (ctx.hub_date - datetime.now(UTC)).total_seconds() + ctx.hub_rtt_s / 2
    detail = f"offset from the hub {offset:+.1f} s"
    if abs(offset) <= CLOCK_WARN_S:
        return Check("clock", "pass", detail)
    status: Status = "warn" if abs(offset) <= CLOCK_FAIL_S else "fail"
    return Check("clock", status, detail, ctx.msg("doc_fix_clock", offset=offset))


# ---------------------------------------------------------------- disk, power


def check_disk(ctx: _Context) -> Check:
    data = ctx.opts.data_dir
    usage = psutil.disk_usage(str(data))
    free_mb = usage.free / 2**20
    parts = [f"{free_mb:.0f} MiB free of {usage.total / 2**20:.0f} MiB"]
    problems: list[Status] = []
    fixes: list[str] = []
    if usage.free < DISK_FAIL_BYTES:
        problems.append("fail")
    elif usage.free < DISK_WARN_BYTES or usage.percent > 90:
        problems.append("warn")
    if problems:
        fixes.append(ctx.msg("doc_fix_disk_space", data=data))
    mount = mount_of(data, ctx.opts.proc_root)
    sd_bad = False
    if mount is not None:
        parts.append(f"{mount.device} on {mount.mountpoint} ({'ro' if mount.read_only else 'rw'})")
        if mount.read_only:
            sd_bad = True
        errors = ext4_errors(mount.device, ctx.opts.sys_root)
        if errors:
            parts.append(f"ext4 errors_count={errors}")
            sd_bad = True
    if mount is None or not mount.read_only:
        probe = sd_write_probe(data)
        parts.append(
            f"test write {probe.seconds * 1000:.0f} ms"
            if probe.ok
            else f"test write failed: {probe.detail}"
        )
        sd_bad = sd_bad or not probe.ok
    if sd_bad:
        problems.append("fail")
        fixes.append(ctx.msg("doc_fix_sd", data=data))
    status: Status = "fail" if "fail" in problems else ("warn" if problems else "pass")
    return Check("disk", status, "; ".join(parts), " ".join(fixes))


def check_power(ctx: _Context) -> Check:
    power = power_state(ctx.opts.sys_root)
    temperature = soc_temperature(ctx.opts.sys_root)
    parts = []
    if temperature is not None:
        parts.append(f"SoC {temperature:.1f} °C")
    if power.raw is not None:
        parts.append(f"throttled=0x{power.raw:x}")
    if power.under_voltage is None:
        parts.append("no Raspberry Pi power sensor here")
        return Check("power", "pass", "; ".join(parts))
    fix = ctx.msg("doc_fix_power")
    if power.under_voltage or power.throttled:
        now = [
            w
            for w, on in (("under-voltage", power.under_voltage), ("throttled", power.throttled))
            if on
        ]
        return Check("power", "fail", "; ".join([*parts, "now: " + ", ".join(now)]), fix)
    past = power.under_voltage_since_boot or power.throttled_since_boot
    if past or (temperature is not None and temperature >= TEMP_WARN_C):
        return Check("power", "warn", "; ".join([*parts, "problems since boot"]), fix)
    return Check("power", "pass", "; ".join(parts))


# ---------------------------------------------------------------- cache, outbox


def _sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def check_cache(ctx: _Context) -> Check:
    objects = ctx.opts.data_dir / "cache" / "objects"
    if not objects.is_dir():
        return Check("cache", "pass", "empty (nothing downloaded yet)")
    good = 0
    bad: list[str] = []
    size = 0
    # Read-only on purpose: deleting is the agent's job, and it may be mid-publish here.
    for path in sorted(objects.iterdir()):
        if path.name.endswith(".tmp"):
            continue
        try:
            ok = _sha256(path) == path.name
            size += path.stat().st_size
        except FileNotFoundError:
            continue  # evicted by the running agent meanwhile
        except OSError:
            ok = False
        if ok:
            good += 1
        else:
            bad.append(path.name)
    detail = f"{good} objects verified ({size / 2**20:.1f} MiB)"
    if bad:
        names = ", ".join(b[:12] for b in bad[:5]) + (" …" if len(bad) > 5 else "")
        return Check(
            "cache", "fail", f"{detail}; {len(bad)} corrupt: {names}", ctx.msg("doc_fix_cache")
        )
    return Check("cache", "pass", detail)


def open_readonly(path: Path) -> sqlite3.Connection:
    """The agent's database without ever taking its write lock (the agent keeps running)."""
    uri = f"file:{urllib.parse.quote(str(path.resolve()))}?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=5)
    db.execute("PRAGMA query_only = ON")
    return db


def check_outbox(ctx: _Context) -> Check:
    path = ctx.opts.data_dir / DB_FILE
    if not path.exists():
        return Check("outbox", "warn", f"{path} does not exist yet (agent never ran)")
    try:
        db = open_readonly(path)
        try:
            verdict = [row[0] for row in db.execute("PRAGMA quick_check")]
            counts = dict(db.execute("SELECT type, count(*) FROM outbox GROUP BY type").fetchall())
        finally:
            db.close()
    except sqlite3.Error as exc:
        return Check("outbox", "fail", f"{path}: {exc}", ctx.msg("doc_fix_db", path=path))
    if verdict != ["ok"]:
        return Check("outbox", "fail", "; ".join(verdict[:3]), ctx.msg("doc_fix_db", path=path))
    plays, health = counts.get("play", 0), counts.get("health", 0)
    detail = f"{plays} proof-of-play and {health} health reports waiting"
    if plays + health > OUTBOX_WARN:
        return Check("outbox", "warn", detail, ctx.msg("doc_fix_outbox"))
    return Check("outbox", "pass", detail)


# ---------------------------------------------------------------- service


def _agent_status(data_dir: Path) -> dict[str, Any] | None:
    try:
        port = int((data_dir / PORT_FILE).read_text().strip())
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=3) as resp:
            return dict(json.load(resp))
    except (OSError, ValueError):
        return None


def _unit_installed(systemctl: str) -> bool:
    # A development machine runs systemd without the unit: ask the agent's port instead.
    load = subprocess.run(
        [systemctl, "show", "-p", "LoadState", "--value", SERVICE],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.strip()
    return load == "loaded"


def check_service(ctx: _Context) -> Check:
    fix = ctx.msg("doc_fix_service")
    systemctl = shutil.which("systemctl")
    if ctx.opts.systemd_dir.is_dir() and systemctl and _unit_installed(systemctl):
        state = subprocess.run(
            [systemctl, "is-active", SERVICE], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        ctx.agent_running = state == "active"
        if ctx.agent_running:
            return Check("service", "pass", f"{SERVICE}: active")
        return Check("service", "fail", f"{SERVICE}: {state or 'unknown'}", fix)
    status = _agent_status(ctx.opts.data_dir)
    ctx.extra["status"] = status
    ctx.agent_running = status is not None
    if status is None:
        return Check("service", "fail", "no agent answers on the port in agent.port", fix)
    playing = (status.get("now_playing") or {}).get("title") or "-"
    return Check("service", "pass", f"agent {status.get('device_id')} running; playing: {playing}")


# ---------------------------------------------------------------- the run

_CHECKS: tuple[tuple[str, Callable[[_Context], Check]], ...] = (
    # service first: later checks soften hardware faults the running agent explains.
    ("service", check_service),
    ("profile", check_profile),
    ("display", check_display),
    ("relay", check_relay),
    ("audio", check_audio),
    ("hub", check_hub),
    ("clock", check_clock),
    ("disk", check_disk),
    ("power", check_power),
    ("cache", check_cache),
    ("outbox", check_outbox),
)


def run_doctor(opts: DoctorOptions) -> list[Check]:
    ctx = _Context(opts)
    results: dict[str, Check] = {}
    try:
        for name, check in _CHECKS:
            try:
                results[name] = check(ctx)
            except Exception as exc:  # one broken check must not hide the others
                results[name] = Check(name, "fail", f"{type(exc).__name__}: {exc}")
    finally:
        relay = ctx.extra.pop("relay_device", None)
        if relay is not None:
            relay.close()
    return [results[name] for name in CHECK_ORDER]


def exit_code(checks: list[Check]) -> int:
    return 1 if any(c.status == "fail" for c in checks) else 0


def as_json(checks: list[Check]) -> dict[str, Any]:
    return {"checks": [asdict(c) for c in checks]}


def format_text(checks: list[Check], lang: str) -> str:
    lines = []
    for c in checks:
        lines.append(
            f"[{t(f'doc_{c.status}', lang):>8}] {t(f'doc_name_{c.name}', lang)}: {c.detail}"
        )
        if c.fix and c.status != "pass":
            lines.append(f"{'':11}{t('doc_fix', lang)}: {c.fix}")
    fails = [c.name for c in checks if c.status == "fail"]
    warns = sum(c.status == "warn" for c in checks)
    if fails:
        lines.append(t("doc_summary_bad", lang, fails=len(fails), names=", ".join(fails)))
    else:
        lines.append(t("doc_summary_ok", lang, warns=warns))
    return "\n".join(lines)


# ---------------------------------------------------------------- support bundle


def _recent_logs(data_dir: Path, systemd_dir: Path) -> str:
    journalctl = shutil.which("journalctl")
    if systemd_dir.is_dir() and journalctl:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            return subprocess.run(
                [journalctl, "-u", SERVICE, "-n", "2000", "--no-pager", "-o", "short-iso"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout
    texts = []
    for log in sorted(data_dir.glob("*.log")):
        with contextlib.suppress(OSError):
            texts.append(f"==> {log.name} <==\n{log.read_text(errors='replace')[-1_000_000:]}")
    return "\n".join(texts) or "(no journal and no log file in the data folder)\n"


def _health_history(data_dir: Path) -> str:
    path = data_dir / DB_FILE
    if not path.exists():
        return ""
    try:
        db = open_readonly(path)
        try:
            rows = db.execute(
                "SELECT body FROM outbox WHERE type = 'health' ORDER BY seq DESC LIMIT 1000"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        return json.dumps({"error": str(exc)}) + "\n"
    return "".join(f"{row[0]}\n" for row in reversed(rows))


def write_bundle(path: Path, opts: DoctorOptions, checks: list[Check]) -> Path:
    """A tar.gz for the help desk: never the device secret."""
    data = opts.data_dir
    config: dict[str, Any] = {"data_dir": str(data), "written_at": datetime.now(UTC).isoformat()}
    with contextlib.suppress(OSError, ValueError):
        identity = json.loads((data / IDENTITY_FILE).read_text())
        identity.pop("device_secret", None)
        config["identity"] = identity
        profile_file = opts.profiles_dir / f"{identity.get('profile')}.toml"
        config["profile_toml"] = profile_file.read_text()
    members = {
        "doctor.json": json.dumps(as_json(checks), ensure_ascii=False, indent=2),
        "config.json": json.dumps(config, ensure_ascii=False, indent=2),
        "logs.txt": _recent_logs(data, opts.systemd_dir),
        "health.jsonl": _health_history(data),
    }
    status = _agent_status(data)
    if status is not None:
        members["status.json"] = json.dumps(status, ensure_ascii=False, indent=2)
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for name, text in members.items():
            blob = text.encode()
            info = tarfile.TarInfo(f"loa-support/{name}")
            info.size = len(blob)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(blob))
    os.replace(tmp, path)
    return path
