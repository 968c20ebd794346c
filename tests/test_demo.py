"""`make demo` is the README's first command: run it for real (hub + speaker + board, seeded
content, every role's account) and check that what it prints is true."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import sys
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def _three_free_ports() -> int:
    """A port p with p, p+1 and p+2 free (the demo puts its agents next to its hub).

    Looked for below the kernel's ephemeral range: every other test binds port 0 or connects
    out, and so takes its ports from that range; none can take these between this check and
    the demo's own bind (the PostgreSQL pass of `make test` runs alongside)."""
    low, _ = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    chooser = random.Random()
    for _ in range(200):
        base = chooser.randrange(10_000, max(10_001, low - 3))
        try:
            for offset in (0, 1, 2):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", base + offset))
        except OSError:
            continue
        return base
    raise RuntimeError("no three consecutive free ports")


async def _read_until(stream: asyncio.StreamReader, marker: str, seen: list[str]) -> None:
    while True:
        line = await stream.readline()
        if not line:
            raise AssertionError("the demo ended early:\n" + "".join(seen[-40:]))
        seen.append(line.decode(errors="replace"))
        if marker in seen[-1]:
            return


async def test_the_demo_runs_what_it_says(tmp_path: Path) -> None:
    port = _three_free_ports()
    env = {
        **os.environ,
        "LOA_DEMO_DATA": str(tmp_path / "demo"),
        "LOA_DEMO_HUB_PORT": str(port),
        "SDL_VIDEODRIVER": "dummy",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "demo.py"),
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None and proc.stdin is not None
    seen: list[str] = []
    hub = f"http://127.0.0.1:{port}"
    try:
        await asyncio.wait_for(_read_until(proc.stdout, "Ctrl-C để dừng tất cả", seen), 90)
        banner = "".join(seen[-30:])
        assert f"{hub}/" in banner and "nguyenvanan" in banner
        # In Vietnamese, every role's account (the viewer too), both local pages with login.
        assert "Bảng điều khiển" in banner and "vuthilan" in banner and "người xem" in banner
        board_line = next(line for line in seen[-30:] if "Trang của bảng tin" in line)
        assert f"127.0.0.1:{port + 2}/" in board_line and "canboxa" in board_line
        # Enter prints it again, after whatever the agents logged meanwhile.
        proc.stdin.write(b"\n")
        await proc.stdin.drain()
        printed = len(seen)
        await asyncio.wait_for(_read_until(proc.stdout, "Ctrl-C để dừng tất cả", seen), 30)
        assert any("Bảng điều khiển" in line for line in seen[printed:])
        # Both agents come up and start airing the seeded bulletins from their caches.
        await asyncio.wait_for(_read_until(proc.stdout, " playing ", seen), 60)
        async with aiohttp.ClientSession() as session:
            login = await session.post(
                f"{hub}/api/v1/auth/login",
                json={"username": "nguyenvanan", "password": "Loa-Demo-2026!"},
            )
            token = (await login.json())["token"]
            auth = {"Authorization": f"Bearer {token}"}
            async with session.get(f"{hub}/api/v1/bulletins", headers=auth) as resp:
                rows = await resp.json()
            states = sorted(row["state"] for row in rows)
            assert states == ["published"] * 3 + ["submitted"], states
            async with session.get(f"{hub}/api/v1/users", headers=auth) as resp:
                roles = {row["role"] for row in await resp.json()}
            assert roles == {
                "admin",
                "reviewer",
                "contributor",
                "commune_operator",
                "technician",
                "viewer",
            }
            # The contributor's newspaper and an agency, by name in the register of units.
            async with session.get(f"{hub}/api/v1/units", headers=auth) as resp:
                units = {row["code"]: (row["name"], row["kind"]) for row in await resp.json()}
            assert units == {
                "baotinh": ("Báo Hải Phòng", "newspaper"),
                "kttv": ("Trung tâm Khí tượng Thủy văn", "agency"),
            }
            async with session.get(f"{hub}/api/v1/devices", headers=auth) as resp:
                kinds = sorted(row["kind"] for row in await resp.json())
            assert kinds == ["board", "speaker"]
            # The console and both local pages answer where the banner says.
            async with session.get(f"{hub}/login") as resp:
                assert resp.status == 200 and "Đăng nhập" in await resp.text()
            for agent_port in (port + 1, port + 2):
                async with session.get(f"http://127.0.0.1:{agent_port}/api/status") as resp:
                    status = json.loads(await resp.text())
                assert status["device_id"], status
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        # Drain so the demo's children never block on a full pipe while stopping.
        rest, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, "".join(seen[-40:]) + rest.decode(errors="replace")[-4000:]
    # No access-log line per request: the banner must not scroll away under them.
    output = "".join(seen) + rest.decode(errors="replace")
    assert '"GET /' not in output and '"POST /' not in output, output[-3000:]
