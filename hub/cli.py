"""`hub` command line: run the server, add users."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import ssl
import sys
from pathlib import Path

from aiohttp import web

from .app import create_app
from .auth import Role, create_user
from .config import HubConfig
from .db import Database
from .errors import ApiError
from .keys import load_or_create_signer

MIN_PASSWORD = 8


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
    add.add_argument("--data", type=Path, required=True, help="data directory")

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


async def _add_user(args: argparse.Namespace) -> None:
    password = _read_password(args.password_stdin)
    if len(password) < MIN_PASSWORD:
        raise SystemExit(f"the password must have at least {MIN_PASSWORD} characters")
    config = HubConfig(data_dir=args.data)
    db = await Database.open(config.db_path)
    try:
        await create_user(
            db, args.name, password, Role(args.role), args.unit, scrypt_n=config.scrypt_n
        )
    except ApiError as exc:
        raise SystemExit(str(exc.detail)) from exc
    finally:
        await db.close()
    print(f"user {args.name} ({args.role}) added")


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
        asyncio.run(_add_user(args))
    elif args.command == "key":
        signer = load_or_create_signer(HubConfig(data_dir=args.data).key_path)
        print(signer.key_id, signer.hub_key().public_key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
