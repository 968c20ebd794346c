"""`edge-agent status`: what a technician sees, from a live agent and from a stopped one."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from edge_agent.cli import PORT_FILE, main
from edge_agent.local_server import serve_local
from edge_agent.players.null import NullPlayer
from loa_contract import utcnow
from tests.e2e import LiveHub, enroll_agent, schedule, tone_bytes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_status_of_a_running_and_a_stopped_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = LiveHub(tmp_path / "hub")
    await hub.start()
    now = utcnow()
    await hub.add_commune("xa-c")
    data = tmp_path / "agent"
    agent = await enroll_agent(
        hub,
        data,
        commune="xa-c",
        kind="speaker",
        profile="speaker-cluster",
        player=NullPlayer(default_duration_s=3600),
    )
    port = _free_port()
    runner = await serve_local(agent, "127.0.0.1", port)
    (data / PORT_FILE).write_text(str(port))
    try:
        audio = await hub.upload(tone_bytes(tmp_path, "a", 0.5), "audio/wav")
        await hub.publish(
            {
                "title": "Tiêm phòng dại",
                "kind": "audio",
                "priority": "normal",
                "media": audio["sha256"],
                "targets": {"communes": ["xa-c"]},
                "schedule": schedule(now),
            }
        )
        await asyncio.wait_for(agent.play_started.get(), 15)

        assert await asyncio.to_thread(main, ["status", "--data", str(data)]) == 0
        text = capsys.readouterr().out
        assert "Đang phát: Tiêm phòng dại [thông thường]" in text
        assert f"Thiết bị: {agent.identity.device_id}" in text
        assert f"({hub.url})" in text  # the hub node in use, the enrolled one
        assert "Sự cố: Không có sự cố" in text

        code = await asyncio.to_thread(
            main, ["--lang", "en", "status", "--data", str(data), "--json"]
        )
        assert code == 0
        status = json.loads(capsys.readouterr().out)
        assert status["running"] and status["now_playing"]["title"] == "Tiêm phòng dại"
    finally:
        await runner.cleanup()
        version = agent.manifest_version()
        await agent.stop()
        await hub.close()

    # Stopped: it says so, shows what it still holds, and exits non-zero.
    assert await asyncio.to_thread(main, ["status", "--data", str(data)]) == 1
    assert f"Phiên bản kịch bản đã lưu: {version}" in capsys.readouterr().out


def test_run_without_enrollment_names_the_command_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--data", str(tmp_path / "nothing")]) == 2
    assert "edge-agent enroll" in capsys.readouterr().err


def test_status_names_each_fault_in_the_staffs_words_with_its_reason() -> None:
    from edge_agent.cli import _fault_text

    why = 'cannot open ALSA device "hw:1,0"'
    assert _fault_text("audio_output_failed", why, "vi") == (
        f"Không phát được ra loa (mất card âm thanh), bản tin không được nghe ({why})"
    )
    assert _fault_text("disk_low", "", "en") == "Disk almost full"
    # A newer agent's fault this one has no words for: its name, never nothing.
    assert _fault_text("fan_stopped", "0 rpm", "vi") == "fan_stopped (0 rpm)"
