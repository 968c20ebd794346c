"""README "Several hub nodes" run as written (issue #10 point 8): its commands, with this
test's addresses, folders and database put in place of the README's, make two `hub serve`
nodes on a throw-away PostgreSQL behind Debian's nginx with deploy/nginx/loa-hub.conf. An
agent enrolls through nginx pinning the CA; an emergency fired on each node in turn, straight
at the node (so one of them is not the node the agent's socket reached), airs on the agent and
its cancel stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bench.support import free_port
from edge_agent.agent import Agent
from edge_agent.hubclient import tls_context
from edge_agent.identity import Identity
from edge_agent.players.null import NullPlayer
from edge_agent.profile import load_profile
from edge_agent.speech import EspeakEngine
from hub.testing import database_for_tests
from loa_contract import Priority, utcnow
from tests.conftest import on_postgres
from tests.e2e import fast_config, window_around
from tests.test_tls_front import (
    Operator,
    _enroll,
    make_pki,
    needs_nginx,
    running_nginx,
    site_config,
)

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SECTION = "## Several hub nodes (PostgreSQL, behind nginx)"
TIMEOUT = 30.0
ADMIN = "nguyen.van.a"
PASSWORD = "Mat-khau-nut-9!"
PASSPHRASE = "cum-tu-bi-mat-cua-khoa"

pytestmark = [
    needs_nginx,
    pytest.mark.skipif(not on_postgres(), reason="several hub nodes share a PostgreSQL database"),
]


def readme_blocks() -> list[list[str]]:
    """The section's code blocks, each a list of commands (continued lines joined)."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    section = text[start : text.index("\n## ", start + len(SECTION))]
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in section.splitlines():
        if line.startswith("    "):
            if current is None:
                current = []
                blocks.append(current)
            command = line.strip()
            if current and current[-1].endswith("\\"):
                current[-1] = current[-1][:-1].rstrip() + " " + command
            else:
                current.append(command)
        elif line.strip():
            current = None
    return blocks


def put(text: str, changes: dict[str, str]) -> str:
    for old, new in changes.items():
        assert old in text, f"README no longer has {old!r} in: {text}"
        text = text.replace(old, new)
    return text


def hub_env(database: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "LOA_DATABASE_URL": database,
    }


async def run_hub(command: str, env: dict[str, str]) -> None:
    """One `hub …` line; what it would ask at a terminal comes on stdin."""
    args = shlex.split(command.replace("$LOA_DATABASE_URL", env["LOA_DATABASE_URL"]))
    assert args[0] == "hub"
    stdin = ""
    if args[1:3] == ["user", "add"]:
        args.append("--password-stdin")
        stdin = f"{PASSWORD}\n"
    elif args[1] == "key" and ("export" in args or "import" in args):
        args.append("--passphrase-stdin")
        stdin = f"{PASSPHRASE}\n" * (2 if "export" in args else 1)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub.cli", *args[1:],
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(stdin.encode()), TIMEOUT)
    assert proc.returncode == 0, f"{command}: {out.decode(errors='replace')}"


@contextlib.asynccontextmanager
async def serving(command: str, env: dict[str, str], log: Path) -> AsyncIterator[None]:
    args = shlex.split(command.replace('"$LOA_DATABASE_URL"', env["LOA_DATABASE_URL"]))
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", *args[1:],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=env,
        )  # fmt: skip
        assert proc.stdout is not None
        drain: asyncio.Task[bytes] | None = None
        try:
            async with asyncio.timeout(TIMEOUT):
                while "Running on" not in (line := (await proc.stdout.readline()).decode()):
                    assert line, f"hub serve stopped; its log: {log}"
            drain = asyncio.create_task(proc.stdout.read())
            yield
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), TIMEOUT)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            if drain is not None:
                await drain


async def test_two_nodes_behind_nginx_as_the_readme_runs_them(tmp_path: Path) -> None:
    database = database_for_tests()
    assert database is not None
    first, second, serve = readme_blocks()
    https_port, http_port, port_1, port_2 = (free_port() for _ in range(4))
    url = f"https://127.0.0.1:{https_port}"
    data = {1: tmp_path / "node-1", 2: tmp_path / "node-2"}
    home = {1: tmp_path / "root-1", 2: tmp_path / "root-2"}
    for folder in home.values():
        folder.mkdir()
    readme_database = "postgresql://loa:change-me@10.0.0.20/loa"

    async def run_block(block: list[str], node: int) -> dict[str, str]:
        env = hub_env(database)
        for line in block:
            command = (
                line.replace(readme_database, database)
                .replace("/root/", f"{home[node]}/")
                .replace("/var/lib/loa/hub", str(data[node]))
            )
            if command.startswith("export "):
                name, value = command.removeprefix("export ").split("=", 1)
                assert (name, value) == ("LOA_DATABASE_URL", database)
            elif command.startswith("scp "):
                _, source, target = shlex.split(command)
                assert target == f"root@10.0.0.12:{home[node]}/"
                shutil.copy(source, home[2])
            elif command.startswith("shred "):
                proc = await asyncio.create_subprocess_exec(*shlex.split(command))
                assert await proc.wait() == 0
            else:
                await run_hub(command, env)
        return env

    env = await run_block(first, 1)
    await run_block(second, 2)
    assert not any(home[2].iterdir()), "the moved key bundle is left on node 2"
    key_1 = (data[1] / "hub_signing_key.pem").read_bytes()
    assert (data[2] / "hub_signing_key.pem").read_bytes() == key_1

    def serve_on(node: int, port: int) -> str:
        [command] = serve
        return put(
            command,
            {
                "/var/lib/loa/hub": str(data[node]),
                "http://10.0.0.11:8443": f"http://127.0.0.1:{port}",
                "--host 10.0.0.11": "--host 127.0.0.1",
                "--port 8443": f"--port {port}",
                "https://loa.example.gov.vn": url,
                "--trusted-proxy 10.0.0.10": "--trusted-proxy 127.0.0.1",
            },
        )

    pki = make_pki(tmp_path / "pki", "province")
    site = site_config(
        https_port=https_port,
        http_port=http_port,
        nodes=[port_1, port_2],
        pki=pki,
        logs=tmp_path / "nginx",
    )
    async with (
        serving(serve_on(1, port_1), env, tmp_path / "node-1.log"),
        serving(serve_on(2, port_2), env, tmp_path / "node-2.log"),
        running_nginx(tmp_path / "nginx", site),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls_context(pki.ca))) as tls,
        aiohttp.ClientSession() as plain,
    ):
        front = Operator(url, tls)
        nodes = {n: Operator(f"http://127.0.0.1:{p}", plain) for n, p in ((1, port_1), (2, port_2))}
        for operator in (front, *nodes.values()):
            operator.token = (
                await operator.call(
                    "POST",
                    "/api/v1/auth/login",
                    json_body={"username": ADMIN, "password": PASSWORD},
                )
            )["token"]
        await front.call(
            "POST",
            "/api/v1/communes",
            expect=201,
            json_body={
                "code": "xa-hai-nut",
                "name": "Xã hai nút",
                "windows": {"speaker": [window_around(utcnow())], "board": []},
            },
        )
        slot = await front.call(
            "POST",
            "/api/v1/devices",
            expect=201,
            json_body={
                "commune": "xa-hai-nut",
                "name": "Cụm loa thôn 2",
                "kind": "speaker",
                "profile": "speaker-cluster",
            },
        )
        agent_data = tmp_path / "agent"
        assert await _enroll(agent_data, url, slot["enrollment_code"], pki.ca) == 0
        identity = Identity.load(agent_data)
        agent = Agent(
            # Manifests by poll only once an hour: what airs below came by push.
            fast_config(agent_data, poll_interval_s=3600),
            identity,
            load_profile(identity.profile),
            NullPlayer(default_duration_s=60.0),
            speech=EspeakEngine(),
        )
        await agent.start()
        try:
            await agent.wait_until(agent.status_connected, TIMEOUT)
            assert agent.client.base_url == url
            for node, operator in nodes.items():
                emergency = await operator.call(
                    "POST",
                    "/api/v1/emergencies",
                    expect=201,
                    json_body={
                        "title": f"Cảnh báo từ nút {node}",
                        "text": "Nước lũ đang lên, di chuyển lên vùng cao.",
                        "targets": {"communes": ["xa-hai-nut"]},
                        "repeats": 1,
                    },
                )

                def on_air(bulletin: str = emergency["id"]) -> bool:
                    playing = agent.now_playing()
                    return (
                        playing is not None
                        and playing.priority is Priority.EMERGENCY
                        and playing.bulletin_id == bulletin
                    )

                await agent.wait_until(on_air, TIMEOUT)
                await operator.call("POST", f"/api/v1/emergencies/{emergency['id']}/cancel")
                await agent.wait_until(lambda: not on_air(), TIMEOUT)
        finally:
            await agent.stop()
