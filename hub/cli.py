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
import ssl
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from loa_contract import utcnow

from .app import create_app
from .appkeys import Clock
from .auth import SHARED_NAMES, Role, create_user, reset_password, set_account_state
from .backup import BackupError, backup_name, free_space_ok, make_backup, prune, restore_backup
from .config import NEWSPAPER_UNITS, HubConfig
from .db import Database, open_database
from .device_api import recheck_stored_plays
from .errors import ApiError
from .keys import load_or_create_signer
from .store import accounts
from .store.sql import DatabaseError

#: The environment variable naming the hub's PostgreSQL database when --database is not given.
DATABASE_ENV = "LOA_DATABASE_URL"


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
        "--public-url",
        help="this node's address for devices (e.g. https://loa1.example.gov.vn), shown in "
        "enrollment commands and, when several nodes share the database, listed in every "
        "manifest for devices to fail over to; default: the address the browser used (and "
        "devices do not fail over to this node)",
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

    key = sub.add_parser("key", help="show the hub's signing key id")
    key.add_argument("--data", type=Path, required=True, help="data directory")
    return parser


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
        cookie_secure=True if args.cookie_secure else None,
        trusted_proxies=tuple(args.trusted_proxy),
        newspaper_units=frozenset(args.newspaper_unit or NEWSPAPER_UNITS),
    )
    # Checked before listening: a hub whose database was lost must not come up empty, and
    # one whose server does not answer says so instead of a traceback.
    asyncio.run(_open_and_close(config, clock))
    app = create_app(config, clock=clock)
    web.run_app(app, host=args.host, port=args.port, ssl_context=ssl_context)


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
    if args.command == "serve":
        _serve(args, clock)
    elif args.command == "user":
        asyncio.run(_user_command(args, clock))
    elif args.command == "key":
        signer = load_or_create_signer(HubConfig(data_dir=args.data).key_path)
        print(signer.key_id, signer.hub_key().public_key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
