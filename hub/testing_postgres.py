"""A throw-away PostgreSQL for tests and benches: Debian's own server, started in a temporary
folder on a free port, as an unprivileged user, and removed afterwards.

`make test` runs the hub's suite against it as well as against SQLite (issue #10). Nothing
here is used by a running hub.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

#: Debian's server packages put each major version's programs here.
_DEBIAN_BINARIES = Path("/usr/lib/postgresql")
#: The unprivileged account the server runs as when the tests run as root (initdb refuses
#: root, rightly).
_RUN_AS = "nobody"
_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server programs on this machine; the message names the Debian package."""


def server_binaries() -> Path:
    """The newest installed server's bin folder."""
    found = sorted(
        (p for p in _DEBIAN_BINARIES.glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL's server is not installed: apt-get install postgresql"
        )
    return found[-1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayPostgres:
    """`with ThrowawayPostgres() as pg: dsn = pg.create_database()` — one server, as many
    fresh databases as the tests want, all gone at exit."""

    def __init__(self) -> None:
        self.bin = server_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="loa-pg-"))
        self.port = 0
        self.user = "loa"
        self._as_root = os.geteuid() == 0
        self._started = False

    def _run(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        user = group = None
        if self._as_root:
            user, group = _RUN_AS, _group_of(_RUN_AS)
        done = subprocess.run(
            [str(a) for a in args],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.root,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
            user=user,
            group=group,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{Path(str(args[0])).name} failed: {done.stderr or done.stdout}")
        return done

    def start(self) -> ThrowawayPostgres:
        if self._as_root:
            entry = pwd.getpwnam(_RUN_AS)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        data = self.root / "data"
        self._run(
            self.bin / "initdb",
            "-D",
            data,
            "-U",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
        )
        self.port = _free_port()
        # Durability is not what these tests measure: no fsync keeps them fast.
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            self.bin / "pg_ctl", "-D", data, "-o", options, "-l", self.root / "log", "-w", "start"
        )
        self._started = True
        return self

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; its DSN."""
        name = name or f"loa_{uuid.uuid4().hex[:12]}"
        if not _DATABASE_NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self._run(
            self.bin / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name
        )
        return self.dsn(name)

    def stop(self) -> None:
        if self._started:
            with contextlib.suppress(RuntimeError):
                self._run(self.bin / "pg_ctl", "-D", self.root / "data", "-m", "immediate", "stop")
            self._started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def _group_of(user: str) -> str:
    return grp.getgrgid(pwd.getpwnam(user).pw_gid).gr_name
