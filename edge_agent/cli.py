"""`edge-agent`: enroll, run and inspect a device (messages in Vietnamese unless --lang en)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from loa_contract import utcnow

from .agent import Agent, AgentConfig
from .backends import build_player, build_speech
from .clock import TIMEDATECTL, ClockJudge, NtpProbe
from .hubclient import HubClient, HubRejected, HubUnavailable, HubUntrusted
from .i18n import MESSAGES, default_lang, t
from .identity import Identity, IdentityError, pin_hub_ca
from .profile import ProfileError, load_profile
from .relay import build_relay
from .rpi_health import PiHealth
from .sdnotify import Watchdog, notify

PORT_FILE = "agent.port"
#: Fault injection for the update tests (tests/test_fleet_updates.py): the name of a step of a
#: release switch (edge_agent/updater.py) at which the agent kills itself with SIGKILL, as a
#: power cut would stop it there.
FAULT_KILL_AT = "LOA_FAULT_KILL_AT"


def _kill_at_step(wanted: str, step: str) -> None:
    if step == wanted:
        os.kill(os.getpid(), signal.SIGKILL)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-agent", description="Loa edge agent")
    parser.add_argument("--lang", choices=["vi", "en"], default=default_lang())
    sub = parser.add_subparsers(dest="command", required=True)

    enroll = sub.add_parser("enroll", help="enroll this device with a hub (one-time code)")
    enroll.add_argument("--hub", required=True, help="hub URL, e.g. https://hub.example.vn")
    enroll.add_argument("--code", required=True, help="one-time enrollment code")
    enroll.add_argument("--data", required=True, type=Path)
    enroll.add_argument("--profile", help="hardware profile (default: what the hub assigned)")
    enroll.add_argument(
        "--ca",
        type=Path,
        help="the hub's CA certificate (PEM): trust only it for the hub's TLS, from enrollment "
        "on; it is copied into --data (default: the system's CA store)",
    )

    run = sub.add_parser("run", help="run the agent")
    run.add_argument("--data", required=True, type=Path)
    run.add_argument("--player", choices=["vlc", "null"], default="vlc")
    run.add_argument("--display", choices=["pygame", "null"], default="pygame")
    run.add_argument("--http-host", default="0.0.0.0")
    run.add_argument("--http-port", type=int, default=8081)
    run.add_argument("--poll-interval", type=float, default=30.0)
    run.add_argument("--health-interval", type=float, default=60.0)
    run.add_argument("--vlc-arg", action="append", default=[], help="extra libvlc argument")
    run.add_argument(
        "--no-updates",
        action="store_true",
        help="do not ask the hub for agent releases (a device under a technician's hands)",
    )
    run.add_argument("--update-check", type=float, default=300.0, help="seconds between checks")
    run.add_argument(
        "--probation",
        type=float,
        default=180.0,
        help="seconds a new release has to prove itself before it switches back",
    )
    run.add_argument("-v", "--verbose", action="store_true")

    status = sub.add_parser("status", help="what the agent is doing")
    status.add_argument("--data", required=True, type=Path)
    status.add_argument("--json", action="store_true")

    doctor = sub.add_parser("doctor", help="check this device and say how to fix what fails")
    doctor.add_argument("--data", required=True, type=Path)
    doctor.add_argument("--json", action="store_true")
    doctor.add_argument("--bundle", type=Path, help="also write a support bundle (tar.gz)")
    doctor.add_argument("--aout", help="libvlc audio output to test instead of the profile's")
    doctor.add_argument(
        "--audio-device", "--alsa-audio-device", dest="audio_device", help="ALSA device"
    )
    doctor.add_argument("--pattern-seconds", type=float, default=3.0)
    # The local page's account (issue #4), set at provisioning.
    local = sub.add_parser("local-user", help="the local page's login account")
    local_sub = local.add_subparsers(dest="local_command", required=True)
    local_set = local_sub.add_parser("set", help="create or replace the account")
    local_set.add_argument("name")
    local_set.add_argument(
        "--password-stdin", action="store_true", required=True, help="read the password on stdin"
    )
    local_set.add_argument("--data", required=True, type=Path)

    from .simulate import add_arguments

    add_arguments(sub.add_parser("simulate", help="a simulated fleet against a hub (sizing)"))
    return parser


def main(argv: list[str] | None = None, *, system_clock: Callable[[], datetime] = utcnow) -> int:
    """`system_clock` is where `run` reads the system's time: the machine's clock, or for a
    fault-injection bench (bench/faults.py) one it can step, as a wrong RTC or NTP would."""
    args = _parser().parse_args(argv)
    if args.command == "enroll":
        return asyncio.run(_enroll(args))
    if args.command == "run":
        return _run(args, system_clock)
    if args.command == "doctor":
        return _doctor(args)
    if args.command == "local-user":
        return asyncio.run(_local_user_set(args))
    if args.command == "simulate":
        from .simulate import run

        return run(args)
    return _status(args)


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import DoctorOptions, as_json, exit_code, format_text, run_doctor, write_bundle

    opts = DoctorOptions(
        data_dir=args.data,
        lang=args.lang,
        aout=args.aout,
        audio_device=args.audio_device,
        pattern_seconds=args.pattern_seconds,
    )
    checks = run_doctor(opts)
    if args.json:
        print(json.dumps(as_json(checks), ensure_ascii=False, indent=2))
    else:
        print(format_text(checks, args.lang))
    if args.bundle is not None:
        path = write_bundle(args.bundle, opts, checks)
        print(t("doc_bundle", args.lang, path=path), file=sys.stderr)
    return exit_code(checks)


async def _local_user_set(args: argparse.Namespace) -> int:
    from .local_auth import PasswordRejected, set_local_user
    from .store import AgentStore

    # Never on the command line: it would sit in the shell history and in `ps`.
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print(t("local_user_no_password", args.lang), file=sys.stderr)
        return 2
    args.data.mkdir(parents=True, exist_ok=True)
    store = await AgentStore.open(args.data / "agent.sqlite3")
    try:
        await set_local_user(store, args.name, password)
    except PasswordRejected as exc:
        print(t("local_user_bad", args.lang, reason=exc), file=sys.stderr)
        return 2
    finally:
        await store.close()
    print(t("local_user_set", args.lang, user=args.name.strip()))
    return 0


async def _enroll(args: argparse.Namespace) -> int:
    lang = args.lang
    if args.ca is not None and not args.hub.lower().startswith("https://"):
        print(t("ca_needs_https", lang, url=args.hub), file=sys.stderr)
        return 2
    try:
        pem = args.ca.read_bytes() if args.ca is not None else None
        # Enrollment itself goes over the pinned trust: the code and the answer (the device's
        # secret, the hub's signing key) must not pass through anyone else.
        client = HubClient(args.hub, ca_file=args.ca)
    except (OSError, ssl.SSLError) as exc:
        print(t("ca_bad", lang, path=args.ca, reason=exc), file=sys.stderr)
        return 2
    try:
        answer = await client.enroll(args.code, socket.gethostname())
    except HubRejected as exc:
        print(t("enroll_failed", lang, reason=exc), file=sys.stderr)
        return 2
    except HubUntrusted as exc:
        ca = args.ca if args.ca is not None else t("system_ca_store", lang)
        print(t("hub_untrusted", lang, url=args.hub, ca=ca, reason=exc), file=sys.stderr)
        return 4
    except HubUnavailable as exc:
        print(t("hub_unreachable", lang, url=args.hub, reason=exc), file=sys.stderr)
        return 3
    finally:
        await client.close()
    profile_name = args.profile or answer.profile
    try:
        load_profile(profile_name)
    except ProfileError as exc:
        print(t("profile_bad", lang, reason=exc), file=sys.stderr)
        return 2
    hub_ca = pin_hub_ca(args.data, pem)
    identity = Identity(
        hub_url=args.hub.rstrip("/"),
        device_id=answer.device_id,
        device_secret=answer.device_secret,
        device_kind=answer.device_kind,
        commune=answer.commune,
        profile=profile_name,
        hub_keys=answer.hub_keys,
        hub_ca=hub_ca,
    )
    path = identity.save(args.data)
    print(
        t(
            "enrolled",
            lang,
            device_id=identity.device_id,
            kind=identity.device_kind.value,
            commune=identity.commune,
            path=path,
        )
    )
    return 0


def _run(args: argparse.Namespace, system_clock: Callable[[], datetime] = utcnow) -> int:
    lang = args.lang
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        identity = Identity.load(args.data)
    except IdentityError as exc:
        print(t("not_enrolled", lang, reason=exc), file=sys.stderr)
        return 2
    try:
        profile = load_profile(identity.profile)
    except ProfileError as exc:
        print(t("profile_bad", lang, reason=exc), file=sys.stderr)
        return 2
    config = AgentConfig(
        data_dir=args.data,
        http_host=args.http_host,
        http_port=args.http_port,
        poll_interval_s=args.poll_interval,
        health_interval_s=args.health_interval,
        updates=not args.no_updates,
        update_check_s=args.update_check,
        probation_s=args.probation,
        release=os.environ.get("LOA_RELEASE", "base"),
    )
    try:
        return asyncio.run(_serve(config, identity, profile, args, lang, system_clock))
    except KeyboardInterrupt:
        return 0


async def _serve(
    config: AgentConfig,
    identity: Identity,
    profile: Any,
    args: argparse.Namespace,
    lang: str,
    system_clock: Callable[[], datetime],
) -> int:
    from .local_server import serve_local

    # First of all: a SIGTERM during start-up must stop the agent cleanly, and SDL (a board's
    # display) only takes SIGTERM over, to turn it into an event nobody reads, while the
    # signal is still at its default.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    player = build_player(profile, player=args.player, display=args.display, vlc_args=args.vlc_arg)
    agent = Agent(
        config,
        identity,
        profile,
        player,
        speech=build_speech(profile),
        clock=ClockJudge(
            system_clock,
            require_confirmation=config.require_clock_confirmation,
            ntp=NtpProbe(command=TIMEDATECTL),
        ),
        relay=build_relay(profile),
        watchdog=Watchdog(),
        pi_health=PiHealth(config.data_dir),
    )
    kill_at = os.environ.get(FAULT_KILL_AT)
    if kill_at:
        agent.updater.on_step = partial(_kill_at_step, kill_at)
    await agent.start()
    runner = None
    port_file = config.data_dir / PORT_FILE
    if config.http_port is not None:
        runner = await serve_local(agent, config.http_host, config.http_port)
        port_file.write_text(str(config.http_port))
        print(
            t(
                "running",
                lang,
                device_id=identity.device_id,
                host=config.http_host,
                port=config.http_port,
            ),
            flush=True,
        )
    # Only now is the unit "started" for systemd (Type=notify): the programme is running.
    notify("READY=1")
    # Either a signal, or the updater switching releases: systemd then starts the launcher.
    ending = [asyncio.ensure_future(e.wait()) for e in (stop, agent.updater.restart)]
    await asyncio.wait(ending, return_when=asyncio.FIRST_COMPLETED)
    for waiting in ending:
        waiting.cancel()
    notify("STOPPING=1")
    print(t("stopping", lang), flush=True)
    if runner is not None:
        await runner.cleanup()
    with contextlib.suppress(FileNotFoundError):
        port_file.unlink()
    await agent.stop()
    return 0


def _status(args: argparse.Namespace) -> int:
    lang = args.lang
    port_file = args.data / PORT_FILE
    status: dict[str, Any] | None = None
    if port_file.exists():
        url = f"http://127.0.0.1:{port_file.read_text().strip()}/api/status"
        with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
            with urllib.request.urlopen(url, timeout=5) as response:
                status = json.load(response)
    if status is None:
        version = asyncio.run(_stored_version(args.data))
        if args.json:
            print(json.dumps({"running": False, "manifest_version": version}))
        else:
            print(t("status_offline", lang, version=version if version is not None else "—"))
        return 1
    if args.json:
        print(json.dumps({"running": True, **status}, ensure_ascii=False, indent=2))
        return 0
    print(_format_status(status, lang))
    return 0


async def _stored_version(data_dir: Path) -> int | None:
    from .store import AgentStore

    if not (data_dir / "agent.sqlite3").exists():
        return None
    store = await AgentStore.open(data_dir / "agent.sqlite3")
    try:
        version = await store.trusted_version()
        return version or None
    finally:
        await store.close()


def _format_status(status: dict[str, Any], lang: str) -> str:
    def item(entry: dict[str, Any] | None) -> str:
        if not entry:
            return t("nothing", lang)
        priority = t(f"priority_{entry['priority']}", lang)
        return f"{entry['title']} [{priority}]"

    clock = "trusted" if status["clock"]["trusted"] else "untrusted"
    device = f"{status['device_id']} ({status['device_kind']}, {status['commune']})"
    hub = status["hub_url"]
    if hub != status["hub_home"]:
        hub += f", {t('status_line_standby', lang)}"
    lines = [
        f"{t('status_line_device', lang)}: {device}",
        f"{t('status_line_hub', lang)}: {t('yes' if status['hub_connected'] else 'no', lang)}"
        f" ({hub})",
        f"{t('status_line_manifest', lang)}: {status['manifest_version']}",
        f"{t('status_line_playing', lang)}: {item(status['now_playing'])}",
        f"{t('status_line_next', lang)}: "
        + (", ".join(item(q) for q in status["queue"][:5]) or t("nothing", lang)),
        f"{t('status_line_clock', lang)}: {t(clock, lang)}",
        f"{t('status_line_outbox', lang)}: {sum(status['outbox'].values())}",
        f"{t('status_line_reason', lang)}: {status['reason']}",
        f"{t('page_faults', lang)}: "
        + (
            "; ".join(_fault_text(n, why, lang) for n, why in status.get("faults", {}).items())
            or t("page_no_faults", lang)
        ),
    ]
    return "\n".join(lines)


def _fault_text(name: str, why: str, lang: str) -> str:
    """A fault in the staff's words (a newer agent's unknown name as it is), with its reason."""
    key = f"page_fault_{name}"
    label = t(key, lang) if key in MESSAGES else name
    return f"{label} ({why})" if why else label


if __name__ == "__main__":
    raise SystemExit(main())
