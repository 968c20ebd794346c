"""`hub` command line: run the server; manage accounts for the first admin and for recovery.

`hub user add` is run at the server's console by the person who will hold the account (the
first admin) or for them; the password must meet the policy. It is *not* forced to change at
first login by default, because whoever types it at the console chose it themselves; pass
`--must-change` when creating an account for someone else. `hub user reset-password` is the
recovery path and forces a change unless `--no-must-change`.

Every command that reads or writes the hub's data takes `--data` (keys, media, and the SQLite
database) and `--database postgresql://…` (or LOA_DATABASE_URL) when the hub's database is a
PostgreSQL server: `_hub_data` adds both, `_config` reads them.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import re
import ssl
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.log import access_logger
from pydantic import ValidationError

from loa_contract import utcnow

from . import exchange, process_api
from .app import create_app, settle_heap
from .appkeys import Clock
from .auth import SHARED_NAMES, Role, create_user, reset_password, set_account_state
from .backup import BackupError, backup_name, free_space_ok, make_backup, prune, restore_backup
from .cap import add_feed, add_sender, disable_sender, remove_feed, renew_sender_token
from .config import NEWSPAPER_UNITS, HubConfig
from .db import Database, open_database
from .device_api import recheck_stored_plays
from .errors import ApiError, validation_detail
from .keys import (
    KeyFileError,
    export_key,
    import_key,
    load_or_create_signer,
    rotate_key,
    write_private,
)
from .store import accounts
from .store import cap as cap_store
from .store import exchange as exchange_store
from .store import units as unit_store
from .store.sql import DatabaseError
from .units import UnitCreate, add_unit

#: The environment variable naming the hub's PostgreSQL database when --database is not given.
DATABASE_ENV = "LOA_DATABASE_URL"
#: Connections the kernel holds for the hub before it accepts them (capped by the kernel's
#: net.core.somaxconn). aiohttp's default of 128 overflowed when a province's devices came
#: back at once after a restart: the dropped SYNs were retried 1 s, then 3 s later.
LISTEN_BACKLOG = 4096


def _hub_data(parser: argparse.ArgumentParser) -> None:
    """Where a command finds the hub's data: the one place `--data` and `--database` are made."""
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="data directory (signing keys, media, and the SQLite database unless --database)",
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        default=os.environ.get(DATABASE_ENV) or None,
        help=f"the hub's PostgreSQL database, postgresql://USER@HOST/DB (default: ${DATABASE_ENV};"
        " without either, the SQLite file under --data)",
    )


def _config(args: argparse.Namespace, **fields: Any) -> HubConfig:
    """The configuration a command acts on; a wrong option is named, not a traceback."""
    try:
        return HubConfig(data_dir=args.data, database_url=args.database, **fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        option = {
            "database_url": "--database",
            "trusted_proxies": "--trusted-proxy",
            "public_url": "--public-url",
            "node_url": "--node-url",
            "outbound_allowed_networks": "--outbound-allow",
        }.get(str(error["loc"][0]), str(error["loc"][0]))
        raise SystemExit(f"{option}: {error['msg']}") from exc


async def _open(config: HubConfig, clock: Clock) -> Database:
    return await open_database(config.database_url, config.db_path, clock=clock)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="Loa provincial hub")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the hub")
    _hub_data(serve)
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain")
    serve.add_argument("--tls-key", type=Path, help="PEM private key")
    serve.add_argument("--log-level", default="INFO")
    serve.add_argument(
        "--no-access-log",
        action="store_true",
        help="no line per HTTP request (the demo: a console page is a dozen requests)",
    )
    serve.add_argument(
        "--newspaper-unit",
        action="append",
        help="a unit that is the province's newspaper/broadcaster (for its report quota); "
        "repeat for several; default: baotinh",
    )
    serve.add_argument(
        "--cookie-secure",
        action="store_true",
        help="always mark the console cookie Secure (the hub is reached over HTTPS only)",
    )
    serve.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="ADDR",
        help="a reverse proxy (IP address or network) whose X-Forwarded-Proto and"
        " X-Forwarded-For are believed; repeat for several",
    )
    serve.add_argument(
        "--province-name",
        help="the province's name as CAP alerts write it (an areaDesc naming it reaches every"
        " commune)",
    )
    serve.add_argument(
        "--province-code",
        help="the province's administrative code (a CAP geocode VN-DVHC naming it reaches"
        " every commune)",
    )
    serve.add_argument(
        "--outbound-allow",
        action="append",
        default=[],
        metavar="NET",
        help="a private network the hub may fetch CAP feeds and resources from (public"
        " addresses always may); repeat for several",
    )
    serve.add_argument(
        "--public-url",
        help="this node's address for devices (e.g. https://loa1.example.gov.vn), shown in "
        "enrollment commands and, when several nodes share the database, listed in every "
        "manifest for devices to fail over to; default: the address the browser used (and "
        "devices do not fail over to this node)",
    )
    serve.add_argument(
        "--node-url",
        help="the address the other hub nodes reach this node at, to copy media and agent"
        " releases from it (e.g. http://10.0.0.11:8443 behind a proxy); default: --public-url",
    )

    user = sub.add_parser("user", help="manage operator accounts")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="add an operator account (e.g. the first admin)")
    add.add_argument("name")
    add.add_argument("--role", choices=[r.value for r in Role], default=Role.ADMIN.value)
    add.add_argument("--unit", help="the unit (commune code, agency) the account belongs to")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin",
    )
    add.add_argument(
        "--must-change",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="force a password change at first login (default: no, see `hub --help`)",
    )
    _hub_data(add)
    listing = user_sub.add_parser("list", help="list accounts")
    _hub_data(listing)
    for action, text in (
        ("lock", "lock an account; its sessions end"),
        ("unlock", "unlock an account (also a failed-login lockout)"),
        ("disable", "disable an account for good; its sessions end"),
    ):
        cmd = user_sub.add_parser(action, help=text)
        cmd.add_argument("name")
        _hub_data(cmd)
    reset = user_sub.add_parser("reset-password", help="set a new password (recovery)")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true")
    reset.add_argument(
        "--must-change",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="force a change at next login (default: yes)",
    )
    _hub_data(reset)

    unit = sub.add_parser(
        "unit", help="the register of agencies and newspapers that send bulletins, by name"
    )
    unit_sub = unit.add_subparsers(dest="unit_command", required=True)
    unit_add = unit_sub.add_parser("add", help="register an agency (or a newspaper) by its name")
    unit_add.add_argument("code", help="the code its accounts carry, e.g. baotinh")
    unit_add.add_argument("--name", required=True, help='its name, e.g. "Báo Hải Phòng"')
    unit_add.add_argument(
        "--newspaper",
        action="store_true",
        help="a newspaper or broadcaster (its monthly quota is a newspaper's; default: agency)",
    )
    unit_sub.add_parser("list", help="list the register: code, kind, name")
    for cmd in unit_sub.choices.values():
        _hub_data(cmd)

    backup = sub.add_parser(
        "backup", help="back up the database (online), media and keys into one checked file"
    )
    _hub_data(backup)
    where = backup.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", type=Path, help="the backup file to write")
    where.add_argument(
        "--to-dir", type=Path, help="a folder: the file is named by the time (for timers)"
    )
    backup.add_argument(
        "--keep", type=int, default=0, help="with --to-dir: keep only the newest N backups"
    )
    restore = sub.add_parser("restore", help="check a backup, then make it the hub's data")
    restore.add_argument("--from", dest="source", type=Path, required=True)
    _hub_data(restore)
    restore.add_argument(
        "--force",
        action="store_true",
        help="replace an existing hub there (it is moved aside, not deleted)",
    )

    recheck = sub.add_parser(
        "recheck-plays",
        help="judge stored proof of play by today's rules (plays stored before the hub checked"
        " them); --apply moves the refused ones out of the reports",
    )
    _hub_data(recheck)
    recheck.add_argument(
        "--apply", action="store_true", help="move them (default: only count them)"
    )

    sender = sub.add_parser(
        "sender", help="accounts of agencies that post CAP alerts (POST /api/v1/cap)"
    )
    sender_sub = sender.add_subparsers(dest="sender_command", required=True)
    sender_add = sender_sub.add_parser(
        "add", help="add a sender account and print its token (shown once)"
    )
    sender_add.add_argument("name", help="the agency, e.g. kttv-bac-bo")
    sender_add.add_argument(
        "--policy",
        choices=["auto", "review"],
        required=True,
        help="auto: its emergencies air at once; review: everything waits for a reviewer",
    )
    sender_add.add_argument(
        "--level",
        choices=["central", "province"],
        default="central",
        help="the source level its bulletins carry in reports (default: central)",
    )
    for action, text in (
        ("list", "list sender accounts"),
        ("disable", "disable a sender account; its token stops working"),
        ("new-token", "give a sender account a new token (the old one stops working)"),
    ):
        cmd = sender_sub.add_parser(action, help=text)
        if action != "list":
            cmd.add_argument("name")
    for cmd in sender_sub.choices.values():
        _hub_data(cmd)

    feed = sub.add_parser("cap-feed", help="CAP or CAP-in-Atom feeds the hub polls")
    feed_sub = feed.add_subparsers(dest="feed_command", required=True)
    feed_add = feed_sub.add_parser("add", help="poll a feed as a sender account")
    feed_add.add_argument("url")
    feed_add.add_argument("--sender", required=True, help="the sender account it posts as")
    feed_add.add_argument(
        "--every", type=int, default=60, help="seconds between polls (at least 30; default 60)"
    )
    feed_sub.add_parser("list", help="list feeds and how their last poll went")
    feed_remove = feed_sub.add_parser("remove", help="stop polling a feed")
    feed_remove.add_argument("url")
    for cmd in feed_sub.choices.values():
        _hub_data(cmd)

    down = sub.add_parser(
        "downstream", help="lower hubs this hub offers bulletins to (docs/exchange.md)"
    )
    down_sub = down.add_subparsers(dest="down_command", required=True)
    down_add = down_sub.add_parser("add", help="add a lower hub and print its token (once)")
    down_add.add_argument("name")
    down_sub.add_parser("list", help="list lower hubs")
    for cmd in down_sub.choices.values():
        _hub_data(cmd)

    up = sub.add_parser("upstream", help="upper hubs this hub takes bulletins from")
    up_sub = up.add_subparsers(dest="up_command", required=True)
    up_add = up_sub.add_parser("add", help="take bulletins from an upper hub")
    up_add.add_argument("url", help="the upper hub's address, e.g. https://htttn.example.gov.vn")
    up_add.add_argument("--token", required=True, help="from the upper hub's `hub downstream add`")
    up_add.add_argument(
        "--policy",
        choices=["auto", "review"],
        required=True,
        help="auto: its bulletins air at once; review: they wait for a reviewer (its"
        " emergencies always air at once)",
    )
    up_add.add_argument(
        "--key-id",
        help="the upper hub's key id (`hub key` there); default: pinned at first contact",
    )
    up_sub.add_parser("list", help="list upper hubs and how their last poll went")
    up_remove = up_sub.add_parser("remove", help="stop taking from an upper hub")
    up_remove.add_argument("url")
    for cmd in up_sub.choices.values():
        _hub_data(cmd)

    key = sub.add_parser(
        "key", help="the hub's signing key: show (default), rotate, export, import"
    )
    key.add_argument("--data", type=Path, required=True)
    key_sub = key.add_subparsers(dest="key_command")
    key_sub.add_parser("show", help="print the key id and public key")
    key_sub.add_parser(
        "rotate",
        help="make a new signing key endorsed by the current one (devices learn it by"
        " themselves); restart every node afterwards",
    )
    export = key_sub.add_parser(
        "export", help="write the key, encrypted, and its endorsements for another node"
    )
    export.add_argument("--out", type=Path, required=True, help="file to write (mode 0600)")
    export.add_argument("--passphrase-stdin", action="store_true")
    imported = key_sub.add_parser("import", help="install a key exported from another node")
    imported.add_argument("file", type=Path)
    imported.add_argument("--passphrase-stdin", action="store_true")
    imported.add_argument(
        "--replace", action="store_true", help="replace this node's own, different key"
    )
    _release_parsers(sub)
    return parser


def _release_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`hub release ...` and `hub rollout ...` (issue #14; README, "Releasing the agent")."""
    release = sub.add_parser("release", help="agent releases (built by `make release`)")
    release_sub = release.add_subparsers(dest="release_command", required=True)
    add = release_sub.add_parser("add", help="record a release file and sign its descriptor")
    add.add_argument("file", type=Path)
    _hub_data(add)
    listing = release_sub.add_parser("list", help="releases, devices on each, roll-outs")
    _hub_data(listing)

    rollout = sub.add_parser("rollout", help="staged roll-outs of a release to the fleet")
    rollout_sub = rollout.add_subparsers(dest="rollout_command", required=True)
    start = rollout_sub.add_parser("start", help="offer a release to part of the fleet")
    start.add_argument("version")
    start.add_argument("--percent", type=int, required=True, help="share of the devices, 1-100")
    start.add_argument("--communes", nargs="+", default=[], help="only these communes")
    start.add_argument("--devices", nargs="+", default=[], help="only these devices")
    start.add_argument(
        "--group", help="only this device group's members (its id, or its name if unique)"
    )
    start.add_argument("--kind", choices=["speaker", "board"], help="only this kind of device")
    start.add_argument(
        "--rollback", action="store_true", help="go back to this older release (signed downgrade)"
    )
    start.add_argument(
        "--max-failure-share",
        type=float,
        default=0.2,
        help="pause by itself when more than this share of updated devices fail (default 0.2)",
    )
    start.add_argument(
        "--min-attempts", type=int, default=1, help="devices that must have tried first"
    )
    _hub_data(start)
    widen = rollout_sub.add_parser("widen", help="offer it to a larger share")
    widen.add_argument("id")
    widen.add_argument("--percent", type=int, required=True)
    _hub_data(widen)
    for action in ("pause", "resume", "stop"):
        cmd = rollout_sub.add_parser(action, help=f"{action} a roll-out")
        cmd.add_argument("id")
        _hub_data(cmd)


def _passphrase(from_stdin: bool, *, twice: bool) -> bytes:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n").encode()
    first = getpass.getpass("Passphrase: ")
    if twice and getpass.getpass("Again: ") != first:
        raise SystemExit("passphrases differ")
    return first.encode()


def _key_command(args: argparse.Namespace, clock: Clock) -> int:
    key_path = HubConfig(data_dir=args.data).key_path
    try:
        if args.key_command == "rotate":
            previous, new = rotate_key(key_path, clock())
            print(f"signing key {previous.key_id} -> {new.key_id}")
            print("restart every hub node on this key; devices learn the new key by themselves")
        elif args.key_command == "export":
            bundle = export_key(key_path, _passphrase(args.passphrase_stdin, twice=True))
            write_private(args.out, bundle)
            print(f"key {load_or_create_signer(key_path).key_id} written to {args.out}")
        elif args.key_command == "import":
            try:
                bundle = args.file.read_bytes()
            except OSError as exc:
                raise KeyFileError(f"{args.file}: {exc.strerror}") from exc
            passphrase = _passphrase(args.passphrase_stdin, twice=False)
            key_id = import_key(key_path, bundle, passphrase, replace=args.replace)
            print(f"this node now signs with key {key_id}; restart it")
        else:
            signer = load_or_create_signer(key_path)
            print(signer.key_id, signer.hub_key().public_key)
    except KeyFileError as exc:
        print(f"hub key: {exc}", file=sys.stderr)
        return 2
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("passwords differ")
    return first


def _message(exc: ApiError) -> str:
    if isinstance(exc.detail, list):
        return "; ".join(f"{d['field']}: {d['message']}" for d in exc.detail)
    return str(exc.detail)


async def _user_command(args: argparse.Namespace, clock: Clock) -> None:
    config = _config(args)
    if args.user_command == "add" and args.role == Role.ADMIN.value:
        if args.name.lower() in SHARED_NAMES:
            raise SystemExit("admin accounts are personal; use the person's name")
    password = (
        _read_password(args.password_stdin)
        if args.user_command in ("add", "reset-password")
        else ""
    )
    db = await _open(config, clock)
    actor = "cli"
    try:
        if args.user_command == "add":
            await create_user(
                db,
                args.name,
                password,
                Role(args.role),
                args.unit,
                scrypt_n=config.scrypt_n,
                must_change_password=args.must_change,
                actor=actor,
                now=clock(),
            )
            print(f"user {args.name} ({args.role}) added")
        elif args.user_command == "list":
            for account in await accounts.every_account(db):
                flags = [
                    name
                    for name, on in (
                        ("locked", account.locked),
                        ("disabled", account.disabled),
                        ("must-change", account.must_change_password),
                    )
                    if on
                ]
                print(f"{account.username}\t{account.role}\t{account.unit}\t{','.join(flags)}")
        elif args.user_command == "reset-password":
            await reset_password(
                db,
                args.name,
                password,
                config=config,
                now=clock(),
                actor=actor,
                actor_unit=None,
                address=None,
                must_change=args.must_change,
            )
            print(f"password of {args.name} reset")
        else:
            await set_account_state(
                db,
                args.name,
                args.user_command,
                now=clock(),
                actor=actor,
                actor_unit=None,
                address=None,
            )
            print(f"user {args.name}: {args.user_command}")
    except ApiError as exc:
        raise SystemExit(_message(exc)) from exc
    finally:
        await db.close()


async def _open_and_close(config: HubConfig, clock: Clock) -> None:
    await (await _open(config, clock)).close()


def _serve(args: argparse.Namespace, clock: Clock) -> None:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    ssl_context = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise SystemExit("--tls-cert and --tls-key go together")
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        ssl_context.load_cert_chain(args.tls_cert, args.tls_key)
    config = _config(
        args,
        public_url=args.public_url,
        node_url=args.node_url,
        cookie_secure=True if args.cookie_secure else None,
        trusted_proxies=tuple(args.trusted_proxy),
        province_name=args.province_name,
        province_code=args.province_code,
        outbound_allowed_networks=tuple(args.outbound_allow),
        newspaper_units=frozenset(args.newspaper_unit or NEWSPAPER_UNITS),
    )
    # Checked before listening: a hub whose database was lost must not come up empty, and
    # one whose server does not answer says so instead of a traceback.
    asyncio.run(_open_and_close(config, clock))
    app = create_app(config, clock=clock)
    app.on_startup.append(_settle_heap)
    app.cleanup_ctx.append(process_api.heap_trim_context)
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        ssl_context=ssl_context,
        backlog=LISTEN_BACKLOG,
        access_log=None if args.no_access_log else access_logger,
    )


async def _settle_heap(app: web.Application) -> None:
    # After the app's own startup (its contexts run first): what they opened is settled too.
    settle_heap()


class _ProgressLine:
    """Progress on stderr: one updating line on a terminal, a line per 10 % in a log."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.tty = sys.stderr.isatty()
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 if total == 0 else done * 100 // total
        if self.tty:
            sys.stderr.write(
                f"\r{self.what}: {percent:3d} % ({done / 1e6:.1f} of {total / 1e6:.1f} MB)"
            )
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif percent // 10 > self.shown // 10 or (done >= total and self.shown < 100):
            print(f"{self.what}: {percent} % ({done} of {total} bytes)", file=sys.stderr)
        self.shown = percent


def _say(sentence: str) -> None:
    print(sentence, file=sys.stderr, flush=True)


def _backup(args: argparse.Namespace, clock: Clock) -> int:
    config = _config(args)
    now = clock()
    if args.to_dir is not None:
        target = args.to_dir / backup_name(now)
    else:
        target = args.to
    # The media and the SQLite file (a PostgreSQL dump's size is known only once made).
    needed = sum(
        p.stat().st_size for p in [config.db_path, *config.media_dir.glob("*")] if p.is_file()
    )
    if not free_space_ok(target.parent, needed):
        print(f"not enough free space in {target.parent} for about {needed} bytes", file=sys.stderr)
        return 1
    try:
        summary = make_backup(config, target, _ProgressLine("backup"), clock=lambda: now, say=_say)
    except (BackupError, OSError) as exc:
        print(f"backup failed: {exc}", file=sys.stderr)
        return 1
    print(f"backup written: {summary.path} ({summary.files} files, {summary.bytes} bytes)")
    if args.to_dir is not None and args.keep > 0:
        for gone in prune(args.to_dir, args.keep):
            print(f"old backup removed: {gone}")
    return 0


def _restore(args: argparse.Namespace, clock: Clock) -> int:
    try:
        summary = restore_backup(
            args.source,
            args.data,
            _ProgressLine("restore"),
            force=args.force,
            clock=clock,
            database_url=_config(args).database_url,
            say=_say,
        )
    except (BackupError, OSError) as exc:
        print(f"restore failed, nothing changed: {exc}", file=sys.stderr)
        return 1
    print(f"restored {summary.files} files ({summary.bytes} bytes) into {summary.path}")
    return 0


async def _recheck_plays(args: argparse.Namespace, clock: Clock) -> int:
    db = await _open(_config(args), clock)
    try:
        counts = await recheck_stored_plays(db, apply=args.apply, clock=clock)
    finally:
        await db.close()
    total = sum(counts.values())
    verb = "moved to the refused reports" if args.apply else "would be refused (use --apply)"
    print(f"{total} stored plays {verb}")
    for reason, count in sorted(counts.items()):
        print(f"  {reason}: {count}")
    return 0


async def _on_hub_data(
    args: argparse.Namespace,
    clock: Clock,
    work: Callable[[argparse.Namespace, Clock, Database], Awaitable[None]],
) -> int:
    """Run a command's work on the hub's database; a refusal is its message, exit 1."""
    db = await _open(_config(args), clock)
    try:
        await work(args, clock, db)
    except ApiError as exc:
        print(_message(exc), file=sys.stderr)
        return 1
    finally:
        await db.close()
    return 0


async def _sender_command(args: argparse.Namespace, clock: Clock, db: Database) -> None:
    if args.sender_command == "add":
        if not re.match(r"^[a-z0-9][a-z0-9._-]{1,63}$", args.name):
            raise SystemExit("a sender name is 2-64 of a-z, 0-9, '.', '_', '-'")
        token = await add_sender(db, args.name, args.policy, args.level, now=clock())
        print(f"sender {args.name} ({args.policy}, {args.level}) added; its token:")
        print(token)
    elif args.sender_command == "list":
        for s in await cap_store.senders(db):
            state = "disabled" if s.disabled else "active"
            print(f"{s.name}\t{s.policy}\t{s.source_level}\t{state}")
    elif args.sender_command == "new-token":
        print(await renew_sender_token(db, args.name, now=clock()))
    else:
        await disable_sender(db, args.name, now=clock())
        print(f"sender {args.name} disabled")


async def _feed_command(args: argparse.Namespace, clock: Clock, db: Database) -> None:
    if args.feed_command == "add":
        await add_feed(db, args.url, args.sender, args.every, now=clock())
        print(f"feed {args.url} added, polled every {args.every} s as {args.sender}")
    elif args.feed_command == "list":
        for f in await cap_store.feeds(db):
            last = f.last_polled_at.isoformat() if f.last_polled_at else "never"
            print(f"{f.url}\t{f.sender}\t{f.interval_s}s\t{last}\t{f.last_error or 'ok'}")
    else:
        await remove_feed(db, args.url, now=clock())
        print(f"feed {args.url} removed")


async def _unit_command(args: argparse.Namespace, clock: Clock, db: Database) -> None:
    if args.unit_command == "list":
        for u in await unit_store.every_unit(db):
            print(f"{u.code}\t{u.kind}\t{u.name}")
        return
    kind = "newspaper" if args.newspaper else "agency"
    try:
        body = UnitCreate.model_validate({"code": args.code, "name": args.name, "kind": kind})
    except ValidationError as exc:
        raise ApiError(422, "validation_error", validation_detail(exc)) from exc
    async with db.transaction() as tx:
        await add_unit(tx, body, at=clock(), actor="cli", actor_unit=None, address=None)
    print(f"unit {body.code} ({kind}) registered: {body.name}")


async def _exchange_command(args: argparse.Namespace, clock: Clock, db: Database) -> None:
    if args.command == "downstream" and args.down_command == "add":
        token = await exchange.add_downstream(db, args.name, now=clock())
        print(f"downstream {args.name} added; its token:")
        print(token)
    elif args.command == "downstream":
        for name in await exchange_store.downstreams(db):
            print(name)
    elif args.up_command == "add":
        await exchange.add_upstream(db, args.url, args.token, args.policy, args.key_id, now=clock())
        print(f"upstream {args.url} added ({args.policy})")
    elif args.up_command == "list":
        for u in await exchange_store.upstreams(db):
            last = u.last_polled_at.isoformat() if u.last_polled_at else "never"
            print(f"{u.url}\t{u.policy}\t{u.key_id or '-'}\t{last}\t{u.last_error or 'ok'}")
    else:
        await exchange.remove_upstream(db, args.url, now=clock())
        print(f"upstream {args.url} removed")


async def _release_command(args: argparse.Namespace, clock: Clock) -> int:
    from .releases import (
        ReleaseRefused,
        RolloutIn,
        add_release,
        change_rollout,
        fleet_releases,
        start_rollout,
    )

    config = _config(args)
    db = await _open(config, clock)
    actor = "cli"
    try:
        if args.command == "release" and args.release_command == "add":
            signer = load_or_create_signer(config.key_path)
            release = await add_release(
                db, signer, args.file, config.releases_dir, actor=actor, address=None, now=clock()
            )
            print(f"release {release.version} recorded: sha256 {release.sha256}, signed by key"
                  f" {signer.key_id}")  # fmt: skip
        elif args.command == "release":
            listed = await fleet_releases(db)
            print("version\trunning\tupdating\tfailed\trolled_back\tsha256")
            for r in listed.releases:
                print(
                    f"{r.version}\t{r.running}\t{r.updating}\t{r.failed}\t{r.rolled_back}"
                    f"\t{r.sha256}"
                )
            for version, count in sorted(listed.other_versions.items()):
                print(f"{version}\t{count}\t-\t-\t-\t(not a recorded release)")
            for ro in listed.rollouts:
                why = f"\t{ro.paused_reason}" if ro.paused_reason else ""
                print(f"rollout {ro.id}\t{ro.version}\t{ro.percent} %\t{ro.state}{why}")
        elif args.rollout_command == "start":
            body = RolloutIn(
                version=args.version,
                communes=args.communes,
                devices=args.devices,
                group=args.group,
                kind=args.kind,
                percent=args.percent,
                rollback=args.rollback,
                max_failure_share=args.max_failure_share,
                min_attempts=args.min_attempts,
            )
            signer = load_or_create_signer(config.key_path)
            rollout = await start_rollout(db, signer, body, actor=actor, address=None, now=clock())
            scope = f" to group {rollout.group}" if rollout.group else ""
            print(f"rollout {rollout.id} started: {rollout.version}{scope} at {rollout.percent} %")
        else:
            rollout = await change_rollout(
                db,
                args.id,
                args.rollout_command,
                percent=getattr(args, "percent", None),
                actor=actor,
                address=None,
                now=clock(),
            )
            print(f"rollout {rollout.id}: {rollout.state} at {rollout.percent} %")
    except ReleaseRefused as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        error = exc.errors()[0]
        print(f"hub: {'.'.join(map(str, error['loc']))}: {error['msg']}", file=sys.stderr)
        return 2
    except ApiError as exc:
        print(f"hub: {_message(exc)}", file=sys.stderr)
        return 1
    finally:
        await db.close()
    return 0


def main(argv: list[str] | None = None, *, clock: Clock = utcnow) -> int:
    """`clock`: the time the commands act at (tests pass a clock they move)."""
    args = _parser().parse_args(argv)
    try:
        return _run(args, clock)
    except DatabaseError as exc:
        print(f"hub: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, clock: Clock) -> int:
    if args.command == "backup":
        return _backup(args, clock)
    if args.command == "restore":
        return _restore(args, clock)
    if args.command == "recheck-plays":
        return asyncio.run(_recheck_plays(args, clock))
    if args.command == "sender":
        return asyncio.run(_on_hub_data(args, clock, _sender_command))
    if args.command == "unit":
        return asyncio.run(_on_hub_data(args, clock, _unit_command))
    if args.command == "cap-feed":
        return asyncio.run(_on_hub_data(args, clock, _feed_command))
    if args.command in ("downstream", "upstream"):
        return asyncio.run(_on_hub_data(args, clock, _exchange_command))
    if args.command in ("release", "rollout"):
        return asyncio.run(_release_command(args, clock))
    if args.command == "serve":
        _serve(args, clock)
    elif args.command == "user":
        asyncio.run(_user_command(args, clock))
    elif args.command == "key":
        return _key_command(args, clock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
