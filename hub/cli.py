"""`hub` command line: run the server; manage accounts for the first admin and for recovery.

`hub user add` is run at the server's console by the person who will hold the account (the
first admin) or for them; the password must meet the policy. It is *not* forced to change at
first login by default, because whoever types it at the console chose it themselves; pass
`--must-change` when creating an account for someone else. `hub user reset-password` is the
recovery path and forces a change unless `--no-must-change`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import ssl
import sys
from pathlib import Path

from aiohttp import web

from loa_contract import utcnow

from .app import create_app
from .auth import SHARED_NAMES, Role, create_user, reset_password, set_account_state
from .config import HubConfig
from .db import Database
from .errors import ApiError
from .keys import load_or_create_signer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hub", description="Loa provincial hub")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the hub")
    serve.add_argument("--data", type=Path, required=True, help="data directory")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=8443)
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain")
    serve.add_argument("--tls-key", type=Path, help="PEM private key")
    serve.add_argument("--log-level", default="INFO")

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
    add.add_argument("--data", type=Path, required=True, help="data directory")
    listing = user_sub.add_parser("list", help="list accounts")
    listing.add_argument("--data", type=Path, required=True, help="data directory")
    for action, text in (
        ("lock", "lock an account; its sessions end"),
        ("unlock", "unlock an account (also a failed-login lockout)"),
        ("disable", "disable an account for good; its sessions end"),
    ):
        cmd = user_sub.add_parser(action, help=text)
        cmd.add_argument("name")
        cmd.add_argument("--data", type=Path, required=True, help="data directory")
    reset = user_sub.add_parser("reset-password", help="set a new password (recovery)")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true")
    reset.add_argument(
        "--must-change",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="force a change at next login (default: yes)",
    )
    reset.add_argument("--data", type=Path, required=True, help="data directory")

    key = sub.add_parser("key", help="show the hub's signing key id")
    key.add_argument("--data", type=Path, required=True)
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


async def _user_command(args: argparse.Namespace) -> None:
    config = HubConfig(data_dir=args.data)
    if args.user_command == "add" and args.role == Role.ADMIN.value:
        if args.name.lower() in SHARED_NAMES:
            raise SystemExit("admin accounts are personal; use the person's name")
    password = (
        _read_password(args.password_stdin)
        if args.user_command in ("add", "reset-password")
        else ""
    )
    db = await Database.open(config.db_path)
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
            )
            print(f"user {args.name} ({args.role}) added")
        elif args.user_command == "list":
            for row in await db.fetchall("SELECT * FROM users ORDER BY username"):
                flags = [
                    name
                    for name, on in (
                        ("locked", row["locked"]),
                        ("disabled", row["disabled"]),
                        ("must-change", row["must_change_password"]),
                    )
                    if on
                ]
                print(f"{row['username']}\t{row['role']}\t{row['unit']}\t{','.join(flags)}")
        elif args.user_command == "reset-password":
            await reset_password(
                db,
                args.name,
                password,
                config=config,
                now=utcnow(),
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
                now=utcnow(),
                actor=actor,
                actor_unit=None,
                address=None,
            )
            print(f"user {args.name}: {args.user_command}")
    except ApiError as exc:
        raise SystemExit(_message(exc)) from exc
    finally:
        await db.close()


def _serve(args: argparse.Namespace) -> None:
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
    app = create_app(HubConfig(data_dir=args.data))
    web.run_app(app, host=args.host, port=args.port, ssl_context=ssl_context)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        _serve(args)
    elif args.command == "user":
        asyncio.run(_user_command(args))
    elif args.command == "key":
        signer = load_or_create_signer(HubConfig(data_dir=args.data).key_path)
        print(signer.key_id, signer.hub_key().public_key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
