"""A light agent (issue #8): what a running `edge-agent run` has imported, and what it has not.

A speaker never loads pygame (it shows nothing) nor the page's web server and templates until
someone opens the page; no agent loads `cryptography` (signatures are checked through the
libcrypto that `ssl` already loaded) nor Babel (its messages are compiled .mo files that the
standard library's gettext reads). Each case runs the real CLI in a fresh interpreter (real
libVLC with its dummy audio output, the hub unreachable) and asks it for `sys.modules`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import pytest

from edge_agent.agent import PLAYS_KEPT, Agent, AgentConfig
from edge_agent.identity import Identity
from edge_agent.players.base import PlayItem
from edge_agent.players.null import NullPlayer
from edge_agent.profile import load_profile
from loa_contract import BulletinKind, DeviceKind, HubSigner, Priority

#: The CLI, plus a SIGUSR1 handler that prints the modules loaded so far.
RUN_AGENT = """
import json, os, signal, sys
def tell(*_):
    # os.write, not print: the handler may interrupt a print of the CLI's own.
    os.write(1, ("MODULES " + json.dumps(sorted(sys.modules)) + "\\n").encode())
signal.signal(signal.SIGUSR1, tell)
from edge_agent.cli import main
sys.exit(main(sys.argv[1:]))
"""

#: Loaded only by the page, doctor, boards or the hub: never by a speaker that just plays.
NOT_ON_A_PLAYING_SPEAKER = [
    "pygame",
    "edge_agent.players.display",
    "jinja2",
    "aiohttp.web",
    "edge_agent.local_http",
    "edge_agent.local_auth",
    "edge_agent.doctor",
    "cryptography",
    "babel",
    # Only while a release is unpacked (edge_agent/releases.py).
    "tarfile",
]
PAGE_MODULES = ["jinja2", "aiohttp.web", "edge_agent.local_http"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _enrolled(data: Path, kind: DeviceKind, profile: str) -> None:
    """What `edge-agent enroll` leaves behind, pointing at a hub that does not answer."""
    Identity(
        hub_url=f"http://127.0.0.1:{_free_port()}",
        device_id=f"light-{kind.value}",
        device_secret="s" * 32,
        device_kind=kind,
        commune="xa-nhe",
        profile=profile,
        hub_keys=[HubSigner.generate().hub_key()],
    ).save(data)


class RunningAgent:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, log: Path) -> None:
        self.proc = proc
        self.port = port
        self.log = log

    async def line_with(self, text: str) -> str:
        assert self.proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), 30)
            if not raw:
                raise AssertionError(
                    f"the agent exited ({await self.proc.wait()}): {self.log.read_text()[-3000:]}"
                )
            line = raw.decode()
            if text in line:
                return line

    async def modules(self) -> set[str]:
        self.proc.send_signal(signal.SIGUSR1)
        line = await self.line_with("MODULES ")
        return set(json.loads(line.split(" ", 1)[1]))

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"no exit on SIGTERM: {self.log.read_text()[-3000:]}") from None


async def _run(data: Path) -> RunningAgent:
    port = _free_port()
    log = data / "agent.log"
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RUN_AGENT,
        *("run", "--data", str(data), "--http-host", "127.0.0.1", "--http-port", str(port)),
        *("--vlc-arg=--aout=dummy", "--verbose"),
        stdout=asyncio.subprocess.PIPE,
        stderr=log.open("wb"),
        env=env,
    )
    agent = RunningAgent(proc, port, log)
    # Printed once the programme runs and the page's port listens.
    await agent.line_with(f"http://127.0.0.1:{port}/")
    return agent


async def test_a_speaker_loads_neither_pygame_nor_its_page_until_the_page_is_opened(
    tmp_path: Path,
) -> None:
    _enrolled(tmp_path, DeviceKind.SPEAKER, "speaker-cluster")
    agent = await _run(tmp_path)
    try:
        loaded = await agent.modules()
        assert "vlc" in loaded and "edge_agent.players.vlc" in loaded
        assert sorted(loaded & set(NOT_ON_A_PLAYING_SPEAKER)) == []

        # The first visitor gets the page, loaded for them, on the port already open.
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{agent.port}/?lang=en") as response:
                assert response.status == 200
                assert "text/html" in response.headers["Content-Type"]
            async with http.get(f"http://127.0.0.1:{agent.port}/api/status") as response:
                assert response.status == 200
                assert (await response.json())["device_kind"] == "speaker"
        loaded = await agent.modules()
        assert set(PAGE_MODULES) <= loaded
        assert not loaded & {"pygame", "cryptography", "babel"}
    finally:
        assert await agent.stop() == 0


@pytest.mark.parametrize("profile", ["led-board-p10"])
async def test_a_board_does_load_pygame(tmp_path: Path, profile: str) -> None:
    """The same probe sees pygame where it belongs: it can tell the two apart."""
    _enrolled(tmp_path, DeviceKind.BOARD, profile)
    agent = await _run(tmp_path)
    try:
        loaded = await agent.modules()
        assert {"pygame", "edge_agent.players.display"} <= loaded
        assert not loaded & {"jinja2", "edge_agent.local_http", "cryptography", "babel"}
    finally:
        assert await agent.stop() == 0


def test_the_memory_bench_runs_the_agent_with_the_units_environment() -> None:
    """bench/memory.py measures the agent as systemd runs it: the unit's variables, the
    malloc arena cap among them, reach the measured process."""
    from bench.memory import UNIT, unit_environment

    deployed = unit_environment(UNIT)
    assert deployed["MALLOC_ARENA_MAX"] == "2"
    assert deployed["LOA_LANG"] == "vi"
    assert "ExecStart=/opt/loa/venv/bin/edge-agent-launch run" in UNIT.read_text()


def test_the_started_plays_kept_for_watchers_do_not_grow_for_months(tmp_path: Path) -> None:
    """A device airs for months and nothing on it reads `play_started`: only the latest
    are kept, while the hook hears every one."""
    _enrolled(tmp_path, DeviceKind.SPEAKER, "speaker-cluster")
    agent = Agent(
        AgentConfig(data_dir=tmp_path, http_port=None),
        Identity.load(tmp_path),
        load_profile("speaker-cluster"),
        NullPlayer(),
    )
    heard: list[str] = []
    agent.on_play_started = lambda item: heard.append(item.bulletin_id)
    for n in range(PLAYS_KEPT + 50):
        item = PlayItem(f"b{n}", BulletinKind.AUDIO, Priority.NORMAL, title="")
        agent.announce_play(item)
    assert len(heard) == PLAYS_KEPT + 50
    assert agent.play_started.qsize() == PLAYS_KEPT
    assert agent.play_started.get_nowait().bulletin_id == "b50"
