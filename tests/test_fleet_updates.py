"""Fleet updates end to end (issue #14): real releases built here by scripts/release.py, a real
hub, and real agent processes started by the launcher under tests/restarter.py, a stand-in
for systemd's `Restart=always` (systemd itself is not running on the test machines).

The releases are built once per session: a good bumped version, one that cannot start, one
whose player never answers (it runs, but cannot prove itself), each from a patched copy of
this checkout. The device starts on the checkout itself (the "base" install, version 0.1.0
as the venv's metadata says).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from edge_agent.agent import Agent
from edge_agent.players.null import NullPlayer
from edge_agent.releases import BASE, Releases
from hub.cli import main as hub_main
from loa_contract import HubSigner, ReleaseDescriptor, SignedEnvelope, utcnow
from scripts.release import build_release
from tests.e2e import LiveHub, NoUpgradeProxy, enroll_agent, enroll_identity, tone_bytes
from tests.restarter import Restarter

ROOT = Path(__file__).resolve().parent.parent
GOOD, CRASHES, MUTE = "0.2.0", "0.9.0", "0.8.0"
PROBATION_S = 6.0
STEP_TIMEOUT_S = 90.0

pytestmark = pytest.mark.timeout(600)


def _patched_copy(dest: Path, file: str, old: str, new: str) -> Path:
    """This checkout's agent sources with one change, to build a release that misbehaves."""
    dest.mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("loa_contract", "edge_agent", "firmware_profiles"):
        shutil.copytree(ROOT / package, dest / package, ignore=ignore)
    target = dest / file
    text = target.read_text()
    assert old in text, f"{file} no longer holds {old!r}"
    target.write_text(text.replace(old, new, 1))
    return dest


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("releases")
    crashes = _patched_copy(
        out / "src-crashes",
        "edge_agent/cli.py",
        "    lang = args.lang\n    logging.basicConfig(",
        '    raise SystemExit("this release cannot start")\n'
        "    lang = args.lang\n    logging.basicConfig(",
    )
    mute = _patched_copy(
        out / "src-mute",
        "edge_agent/players/null.py",
        "        return PlayerHealth(self._state)",
        "        return PlayerHealth(PlayerState.ERROR)",
    )
    return {
        GOOD: build_release(ROOT, GOOD, out),
        CRASHES: build_release(crashes, CRASHES, out),
        MUTE: build_release(mute, MUTE, out),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _enroll(hub: LiveHub, data: Path, commune: str) -> str:
    identity = await enroll_identity(
        hub, data, commune=commune, kind="speaker", profile="speaker-cluster", name=data.name
    )
    return identity.device_id


def _device(data: Path, fault_at: str | None = None) -> Restarter:
    command = [
        sys.executable, "-m", "edge_agent.launch", "run", "--data", str(data),
        "--player", "null", "--display", "null", "--http-host", "127.0.0.1",
        "--http-port", str(_free_port()), "--poll-interval", "0.5",
        "--update-check", "0.3", "--probation", str(PROBATION_S),
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SDL_VIDEODRIVER": "dummy",
        "SDL_AUDIODRIVER": "dummy",
        "LOA_LANG": "en",
    }
    return Restarter(command, env, fault_env={"LOA_FAULT_KILL_AT": fault_at} if fault_at else None)


async def _until(check: Callable[[], Any], what: str, within: float = STEP_TIMEOUT_S) -> Any:
    """Polls what has no event of its own here: the hub's record of a device's report."""
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not reached")
        await asyncio.sleep(0.1)


async def _device_update(hub: LiveHub, device_id: str) -> dict[str, Any] | None:
    for entry in await hub.call("GET", "/api/v1/device-updates"):
        if entry["device_id"] == device_id:
            return dict(entry)
    return None


def _reported(hub: LiveHub, device_id: str, **wanted: Any) -> Callable[[], Any]:
    async def check() -> dict[str, Any] | None:
        entry = await _device_update(hub, device_id)
        if entry and all(entry[k] == v for k, v in wanted.items()):
            return entry
        return None

    return check


@pytest.fixture
async def hub(tmp_path: Path, built: dict[str, Path]) -> AsyncIterator[LiveHub]:
    live = LiveHub(tmp_path / "hub")
    await live.start()
    try:
        # Today's windows are shut all day (none open at 03:00-03:01 in the test's run),
        # and nothing is published: the device is quiet, as at night.
        await live.add_commune("xa-a", speaker=[["03:00", "03:01"]])
        for version in (GOOD, CRASHES, MUTE):
            code = await asyncio.to_thread(
                hub_main, ["release", "add", str(built[version]), "--data", str(live.data_dir)]
            )
            assert code == 0
        yield live
    finally:
        await live.close()


async def _rollout(hub: LiveHub, version: str, **extra: Any) -> dict[str, Any]:
    body = {"version": version, "percent": 100, "communes": ["xa-a"], **extra}
    result: dict[str, Any] = await hub.call("POST", "/api/v1/rollouts", json=body, expect=201)
    return result


@pytest.fixture
async def running() -> AsyncIterator[list[Restarter]]:
    started: list[Restarter] = []
    try:
        yield started
    finally:
        for restarter in started:
            await restarter.stop()


async def test_a_good_release_switches_proves_itself_and_is_counted(
    hub: LiveHub, tmp_path: Path, running: list[Restarter]
) -> None:
    data = tmp_path / "pi"
    device_id = await _enroll(hub, data, "xa-a")
    device = _device(data)
    running.append(device)
    device.start()
    await device.wait_for(r"starting release base", STEP_TIMEOUT_S)
    await _until(_reported(hub, device_id, running_version="0.1.0"), "first report")

    await _rollout(hub, GOOD)
    await device.wait_for(rf"release {GOOD} proved itself", STEP_TIMEOUT_S)
    entry = await _until(
        _reported(hub, device_id, running_version=GOOD, state="updated"), "updated"
    )
    assert entry["target_version"] == GOOD
    silence = entry["switch_silence_s"]
    assert silence is not None and silence > 0
    print(f"silence of the switch: {silence:.2f} s (target ≤ 10 s)")

    releases = Releases(data)
    assert releases.current() == GOOD
    assert releases.load_state().pending is None
    assert device.exits == [0], device.log()  # one clean exit for the switch, no crash

    listed = await hub.call("GET", "/api/v1/releases")
    good = next(r for r in listed["releases"] if r["version"] == GOOD)
    assert (good["running"], good["failed"], good["rolled_back"]) == (1, 0, 0)

    # Running it, the device is not offered it again, and an older release is refused
    # unless the hub signs a rollback.
    await _rollout(hub, "0.2.0")  # the same: nothing happens
    state = releases.load_state()
    assert state.last is not None and state.last["state"] == "updated"


async def test_a_release_that_cannot_start_is_given_up_by_the_launcher(
    hub: LiveHub, tmp_path: Path, running: list[Restarter]
) -> None:
    data = tmp_path / "pi"
    device_id = await _enroll(hub, data, "xa-a")
    device = _device(data)
    running.append(device)
    device.start()
    await device.wait_for(r"starting release base", STEP_TIMEOUT_S)
    rollout = await _rollout(hub, CRASHES, max_failure_share=0.0)

    entry = await _until(
        _reported(hub, device_id, state="rolled_back", running_version="0.1.0"), "rolled back"
    )
    assert entry["target_version"] == CRASHES
    assert "did not prove itself in 3 starts" in entry["reason"]
    assert Releases(data).current() == BASE
    # Three starts of the broken release, each ending in its error; then base again.
    assert device.exits.count(1) == 3, device.log()

    # The hub paused the roll-out by itself, and says so in the audit.
    listed = await hub.call("GET", "/api/v1/releases")
    paused = next(r for r in listed["rollouts"] if r["id"] == rollout["id"])
    assert paused["state"] == "paused"
    assert "1 of 1 devices" in paused["paused_reason"]
    audit = await hub.call("GET", "/api/v1/audit?action=rollout.auto_pause")
    assert any(r["object"] == rollout["id"] for r in audit["items"]), audit

    # The device does not try the refused release again, even offered once more: two
    # reports later it still runs what it ran, and the broken release never started again.
    starts = device.starts
    await hub.call("POST", f"/api/v1/rollouts/{rollout['id']}/resume")
    for _ in range(2):
        seen = (await _device_update(hub, device_id) or {})["reported_at"]
        await _until(lambda seen=seen: _newer_report(hub, device_id, seen), "another update check")
    assert device.starts == starts
    assert Releases(data).current() == BASE
    assert CRASHES in Releases(data).load_state().refused


async def _newer_report(hub: LiveHub, device_id: str, seen: str) -> bool:
    entry = await _device_update(hub, device_id)
    return entry is not None and entry["reported_at"] > seen


async def test_a_release_that_does_not_prove_itself_switches_back_by_itself(
    hub: LiveHub, tmp_path: Path, running: list[Restarter]
) -> None:
    data = tmp_path / "pi"
    device_id = await _enroll(hub, data, "xa-a")
    device = _device(data)
    running.append(device)
    device.start()
    await device.wait_for(r"starting release base", STEP_TIMEOUT_S)
    await _rollout(hub, MUTE)
    await device.wait_for(rf"release {MUTE} did not prove itself", STEP_TIMEOUT_S)
    entry = await _until(
        _reported(hub, device_id, state="rolled_back", running_version="0.1.0"), "rolled back"
    )
    assert "the player reports an error" in entry["reason"]
    assert Releases(data).current() == BASE


@pytest.mark.parametrize(
    "step",
    ["download", "install", "installed", "pending-written", "switched", "probation"],
)
async def test_kill_9_at_each_step_of_a_switch_leaves_a_working_device(
    hub: LiveHub, tmp_path: Path, running: list[Restarter], step: str
) -> None:
    data = tmp_path / "pi"
    device_id = await _enroll(hub, data, "xa-a")
    device = _device(data, fault_at=step)
    running.append(device)
    device.start()
    await device.wait_for(r"starting release base", STEP_TIMEOUT_S)
    await _rollout(hub, GOOD)
    # The kill happens, the device comes back, and the update completes after it.
    await device.wait_for(r"\[restarter\] exit -9", STEP_TIMEOUT_S)
    try:
        await _until(
            _reported(hub, device_id, running_version=GOOD, state="updated"),
            f"updated after a kill at {step}",
        )
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; the device's log:\n{device.log()}") from None
    assert Releases(data).current() == GOOD
    assert -9 in device.exits


class TamperingProxy(NoUpgradeProxy):
    """Between device and hub, replaces the signature on every release descriptor the hub
    sends with one made by another key under the hub's key id (a forged release)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.forger = HubSigner.generate()
        self.forged = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = await super().handle(request)
        if request.path != "/api/v1/device/update" or not isinstance(response, web.Response):
            return response
        offer = json.loads(response.body or b"{}")
        if offer.get("release"):
            real = SignedEnvelope.model_validate(offer["release"])
            payload = base64.b64decode(real.payload)
            fake = self.forger.sign_bytes(payload)
            offer["release"] = {**offer["release"], "signature": fake.signature}
            self.forged += 1
        return web.json_response(offer)


async def _in_process_agent(hub: LiveHub, data: Path, hub_url: str | None = None) -> Agent:
    return await enroll_agent(
        hub,
        data,
        commune="xa-a",
        kind="speaker",
        profile="speaker-cluster",
        player=NullPlayer(),
        hub_url=hub_url,
        updates=True,
        update_check_s=0.2,
    )


async def test_a_forged_signature_is_refused(hub: LiveHub, tmp_path: Path) -> None:
    proxy = TamperingProxy(hub.url)
    url = await proxy.start()
    agent = await _in_process_agent(hub, tmp_path / "pi", hub_url=url)
    try:
        await _rollout(hub, GOOD)
        await agent.wait_until(lambda: "bad signature" in agent.updater.activity, 30)
        assert proxy.forged >= 1
        assert not Releases(tmp_path / "pi").is_installed(GOOD)
        assert not agent.updater.restart.is_set()
    finally:
        await agent.stop()
        await proxy.close()


class CountingProxy(NoUpgradeProxy):
    """Between device and hub, counts the requests for each device media file."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.fetches: dict[str, int] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        prefix = "/api/v1/device/media/"
        if request.path.startswith(prefix):
            sha = request.path[len(prefix) :]
            self.fetches[sha] = self.fetches.get(sha, 0) + 1
        return await super().handle(request)


async def test_a_file_that_does_not_match_its_signed_hash_is_refused_and_left_alone(
    hub: LiveHub, tmp_path: Path
) -> None:
    listed = await hub.call("GET", "/api/v1/releases")
    sha = next(r["sha256"] for r in listed["releases"] if r["version"] == GOOD)
    # The hub's copy damaged (a bad disk, or someone's bytes in its place).
    stored = hub.data_dir / "releases" / sha
    damaged = bytearray(stored.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    stored.write_bytes(bytes(damaged))
    proxy = CountingProxy(hub.url)
    url = await proxy.start()
    agent = await _in_process_agent(hub, tmp_path / "pi", hub_url=url)
    device_id = agent.identity.device_id
    try:
        # Left active whatever fails (a failure would pause it, and nothing be offered).
        await _rollout(hub, GOOD, max_failure_share=1.0)
        entry = await _until(
            _reported(hub, device_id, state="failed", target_version=GOOD), "refusal reported"
        )
        assert "not what was signed" in entry["reason"], entry
        assert "refused 1 times; next try in 15 min" in entry["reason"], entry
        assert not Releases(tmp_path / "pi").is_installed(GOOD)
        assert not agent.updater.restart.is_set()
        fetched = proxy.fetches.get(sha, 0)
        assert fetched >= 1
        refusal = Releases(tmp_path / "pi").load_state().mismatched[sha]
        assert refusal.failures == 1
        # Three more update checks, still offered the release: the file is not fetched again.
        for _ in range(3):
            seen = (await _device_update(hub, device_id) or {})["reported_at"]
            await _until(lambda seen=seen: _newer_report(hub, device_id, seen), "another check")
        assert proxy.fetches.get(sha, 0) == fetched
        assert "next try in" in agent.updater.activity
        rollouts = (await hub.call("GET", "/api/v1/releases"))["rollouts"]
        assert [r["state"] for r in rollouts] == ["active"]
    finally:
        await agent.stop()
        await proxy.close()


async def test_a_switch_waits_while_an_emergency_is_active(hub: LiveHub, tmp_path: Path) -> None:
    data = tmp_path / "pi"
    agent = await _in_process_agent(hub, data)
    try:
        alarm = await hub.upload(tone_bytes(tmp_path, "alarm", 0.3), "audio/wav")
        emergency = await hub.call(
            "POST",
            "/api/v1/emergencies",
            json={"title": "Cảnh báo lũ", "media": alarm["sha256"], "repeats": 1},
            expect=201,
        )
        await agent.wait_until(lambda: emergency["id"] in agent.bulletins(), 30)
        await _rollout(hub, GOOD)
        await agent.wait_until(
            lambda: agent.updater.activity == "waiting: an emergency is active", 60
        )
        # Installed beside the running one, and the operators see why it waits.
        assert Releases(data).is_installed(GOOD) and Releases(data).current() == BASE
        await _until(
            _reported(
                hub, agent.identity.device_id, state="waiting", reason="an emergency is active"
            ),
            "waiting reported",
        )
        assert not agent.updater.restart.is_set()

        await hub.call("POST", f"/api/v1/emergencies/{emergency['id']}/cancel")
        await agent.wait_until(agent.updater.restart.is_set, 60)
        releases = Releases(data)
        assert releases.current() == GOOD
        pending = releases.load_state().pending
        assert pending is not None and (pending.version, pending.previous) == (GOOD, BASE)
    finally:
        await agent.stop()


def test_what_a_device_accepts() -> None:
    from edge_agent.updater import judge_descriptor

    now = utcnow()
    descriptor = ReleaseDescriptor(
        version=GOOD, sha256="a" * 64, size=10, filename="x.tar", signed_at=now
    )
    # Older than what runs: refused, unless a signed downgrade that has not expired.
    assert judge_descriptor(descriptor, "0.3.0", {}, now) is not None
    assert judge_descriptor(descriptor, "0.2.0.1", {}, now) is not None
    downgrade = descriptor.model_copy(
        update={"downgrade": True, "expires_at": now + timedelta(days=1)}
    )
    assert judge_descriptor(downgrade, "0.3.0", {}, now) is None
    assert judge_descriptor(downgrade, "0.3.0", {}, now + timedelta(days=2)) is not None
    assert judge_descriptor(descriptor, "0.1.0", {GOOD: "crashed"}, now) is not None
    assert judge_descriptor(descriptor, "0.1.0", {}, now) is None
    # A development checkout's version is older than any release.
    assert judge_descriptor(descriptor, "0.1.0.dev3+g12", {}, now) is None
