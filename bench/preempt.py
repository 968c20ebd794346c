"""Emergency pre-emption on one device, with real libVLC (target: ≤ 100 ms).

A real hub on 127.0.0.1 and one speaker agent. A long normal bulletin plays; an emergency is
fired through the hub's API; we time
  - message received by the agent -> lower item stopped and the emergency playing
    (libVLC reports Playing): the design target;
  - hub API call -> emergency playing: the whole path on one machine.
The emergency's audio is already cached (warm-up trial), as it is when the province
pre-loads alarm signals; each trial is cancelled so the normal item resumes.

With --board, the device is a 1080p LCD board (the real pygame renderer, SDL's dummy
driver) and each emergency is fired the moment the board starts laying out a big photo
(4000x3000, fitted at cache time) or a 5,000-character notice, so it arrives while that
layout is under way (the trials where it did not are counted and said). We time message
received -> the emergency's frame on the screen, against the same with the board idle
(the floor, in the same run), and watch the event loop: a layout must not block it.

    .venv/bin/python bench/preempt.py [--trials 20] [--aout dummy] [--board]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

from edge_agent.players.vlc import VlcPlayer
from loa_contract import Priority, utcnow
from tests.e2e import LiveHub, enroll_agent, schedule, tone_bytes


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def run(trials: int, aout: str) -> int:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        hub = LiveHub(tmp / "hub")
        await hub.start()
        now = utcnow()
        await hub.add_commune("bench")
        player = VlcPlayer([f"--aout={aout}"])
        agent = await enroll_agent(
            hub,
            tmp / "speaker",
            commune="bench",
            kind="speaker",
            profile="speaker-cluster",
            player=player,
        )
        received: list[float] = []
        original = agent.sync.handle_push

        async def timed_push(data: str) -> None:
            received.append(time.perf_counter())
            await original(data)

        agent.sync.handle_push = timed_push  # type: ignore[method-assign]
        try:
            normal = await hub.upload(tone_bytes(tmp, "normal", 600.0, 330.0), "audio/wav")
            alarm = await hub.upload(tone_bytes(tmp, "alarm", 3.0, 880.0), "audio/wav")
            await hub.publish(
                {
                    "title": "Chương trình thời sự",
                    "kind": "audio",
                    "priority": "normal",
                    "media": normal["sha256"],
                    "targets": {"communes": ["bench"]},
                    "schedule": schedule(now),
                }
            )
            first = await asyncio.wait_for(agent.play_started.get(), 30)
            assert first.priority is Priority.NORMAL
            on_device: list[float] = []
            end_to_end: list[float] = []
            for trial in range(trials + 1):
                received.clear()
                fired = time.perf_counter()
                emergency = await hub.call(
                    "POST",
                    "/api/v1/emergencies",
                    json={"title": f"Báo động {trial}", "media": alarm["sha256"], "repeats": 1},
                )
                item = await asyncio.wait_for(agent.play_started.get(), 30)
                playing = time.perf_counter()
                assert item.priority is Priority.EMERGENCY, item
                if trial > 0:  # trial 0 downloads the alarm and warms libVLC
                    on_device.append(playing - received[0])
                    end_to_end.append(playing - fired)
                await hub.call("POST", f"/api/v1/bulletins/{emergency['id']}/cancel")
                resumed = await asyncio.wait_for(agent.play_started.get(), 30)
                assert resumed.priority is Priority.NORMAL, resumed
        finally:
            await agent.stop()
            await hub.close()

    def ms(values: list[float], q: float) -> str:
        return f"{percentile(values, q) * 1000:7.1f} ms"

    print(f"emergency pre-emption, real libVLC (--aout={aout}), {trials} trials")
    print(
        f"  message received -> emergency playing: median {ms(on_device, 50)}  "
        f"p99 {ms(on_device, 99)}  max {max(on_device) * 1000:7.1f} ms  (target <= 100 ms)"
    )
    print(
        f"  hub API call     -> emergency playing: median {ms(end_to_end, 50)}  "
        f"p99 {ms(end_to_end, 99)}  mean {statistics.mean(end_to_end) * 1000:7.1f} ms"
    )
    met = percentile(on_device, 99) <= 0.100
    print("  target met" if met else "  TARGET MISSED")
    return 0 if met else 1


class LoopWatch:
    """The longest the event loop was kept from a 2 ms timer: what blocked it."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time()
            await asyncio.sleep(0.002)
            self.worst = max(self.worst, loop.time() - asked - 0.002)

    def start(self) -> None:
        self.worst = 0.0
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> float:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self.worst


def photo_jpeg(path: Path, size: tuple[int, int]) -> bytes:
    """A phone-sized photo: smooth gradients and edges, as JPEG compresses them."""
    from PIL import Image, ImageDraw

    width, height = size
    picture = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(picture)
    for n in range(40):
        x, y = (n * 97) % width, (n * 61) % height
        draw.ellipse((x, y, x + width // 8, y + height // 8), fill=(n * 6 % 256, 120, 200))
    picture.save(path, "JPEG", quality=90)
    return path.read_bytes()


def signed_frames(hub: LiveHub, device_id: str, title: str) -> tuple[str, str, str]:
    """An emergency start for one device, signed by the hub's key as its push would be, the
    emergency's id, and its cancel."""
    from hub.config import HubConfig
    from hub.keys import load_or_create_signer
    from loa_contract import (
        BulletinKind,
        CommandDocument,
        EmergencyCancel,
        EmergencyStart,
        ManifestBulletin,
        Schedule,
        Scope,
    )

    signer = load_or_create_signer(HubConfig(data_dir=hub.data_dir).key_path)
    now = utcnow()
    bulletin = ManifestBulletin(
        id=f"bench-{uuid.uuid4().hex[:8]}",
        title=title,
        kind=BulletinKind.TEXT,
        priority=Priority.EMERGENCY,
        text="Lũ quét: di chuyển lên chỗ cao ngay.",
        schedule=Schedule(valid_from=now, valid_until=now + timedelta(hours=1)),
    )
    scope = Scope(devices=[device_id])
    expires = now + timedelta(minutes=10)
    start = EmergencyStart(
        command_id=uuid.uuid4().hex, scope=scope, issued_at=now, expires_at=expires,
        bulletin=bulletin,
    )  # fmt: skip
    cancel = EmergencyCancel(
        command_id=uuid.uuid4().hex, scope=scope, issued_at=now, expires_at=expires,
        bulletin_id=bulletin.id,
    )  # fmt: skip
    return (
        signer.sign(CommandDocument(command=start)).model_dump_json(),
        bulletin.id,
        signer.sign(CommandDocument(command=cancel)).model_dump_json(),
    )


async def run_board(trials: int) -> int:
    from edge_agent.players.display import DisplayPlayer
    from edge_agent.profile import load_profile
    from tests.real_files import LONG_NOTICE

    profile = load_profile("lcd-board-1080p")
    assert profile.display is not None
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        hub = LiveHub(tmp / "hub")
        await hub.start()
        await hub.add_commune("bench")
        screen = DisplayPlayer.for_profile(profile.display, fullscreen=False)
        agent = await enroll_agent(
            hub, tmp / "board", commune="bench", kind="board", profile=profile.name,
            player=screen,
        )  # fmt: skip
        await agent.wait_until(lambda: agent.manifest_version() is not None, 30)
        device = agent.identity.device_id
        watch = LoopWatch()
        results: dict[str, tuple[list[float], int, float]] = {}

        async def emergency(trial: str) -> tuple[float, bool]:
            """The emergency's push arrives now; seconds until its frame is on the screen,
            and whether the board was laying an item out when it arrived."""
            start, bulletin_id, cancel = signed_frames(hub, device, f"Báo động {trial}")
            laying_out = screen.state.value == "playing" and screen.airing_seconds() is None
            received = time.perf_counter()
            await agent.sync.handle_push(start)
            while (await asyncio.wait_for(agent.play_started.get(), 60)).bulletin_id != (
                bulletin_id
            ):
                pass
            await screen.shown()
            on_screen = time.perf_counter() - received
            await agent.sync.handle_push(cancel)
            return on_screen, laying_out

        try:
            await emergency("warm-up")
            # The floor: the same emergency on an idle board.
            idle = []
            watch.start()
            for trial in range(trials):
                idle.append((await emergency(f"idle {trial}"))[0])
                await agent.wait_until(lambda: agent.now_playing() is None, 30)
            results["idle board (floor)"] = (idle, 0, await watch.stop())

            photo = await hub.upload(photo_jpeg(tmp / "photo.jpg", (4000, 3000)), "image/jpeg")
            phases = {
                "laying out a 4000x3000 photo": {
                    "title": "Ảnh hội nghị",
                    "kind": "image",
                    "media": photo["sha256"],
                },
                "laying out a 5,000-character notice": {
                    "title": "Thông báo",
                    "kind": "text",
                    "text": LONG_NOTICE,
                },
            }
            for phase, content in phases.items():
                normal = await hub.publish(
                    {
                        **content,
                        "priority": "normal",
                        "targets": {"communes": ["bench"]},
                        "schedule": schedule(utcnow()),
                        "display_seconds": 600,
                    }
                )
                timings, overlapped = [], 0
                watch.start()
                for trial in range(trials):
                    # The board has just started this item (first airing, or resumed after
                    # the last emergency): its layout is under way in a worker thread.
                    while (await asyncio.wait_for(agent.play_started.get(), 120)).bulletin_id != (
                        normal["id"]
                    ):
                        pass
                    on_screen, was_laying_out = await emergency(f"{phase} {trial}")
                    timings.append(on_screen)
                    overlapped += was_laying_out
                results[phase] = (timings, overlapped, await watch.stop())
                await hub.call("POST", f"/api/v1/bulletins/{normal['id']}/cancel")
        finally:
            await agent.stop()
            await hub.close()

    floor_layout = bare_layout_ms(profile.display, LONG_NOTICE)
    print(f"emergency pre-emption on a 1080p board (pygame, dummy SDL video), {trials} trials each")
    print("  message received -> the emergency's frame on the screen:")
    floor_p99 = percentile(results["idle board (floor)"][0], 99)
    met = True
    for phase, (timings, overlapped, worst_lag) in results.items():
        p99 = percentile(timings, 99)
        # A small layout may be done before the push is handled: those trials are said.
        during = "" if "floor" in phase else f"; {overlapped}/{len(timings)} arrived mid-layout"
        print(
            f"    {phase:37s} median {percentile(timings, 50) * 1000:6.1f} ms  "
            f"p99 {p99 * 1000:6.1f} ms  ({p99 / floor_p99:4.2f} x floor){during}"
        )
        print(f"    {'':37s} event loop kept waiting at most {worst_lag * 1000:5.1f} ms")
        if "floor" not in phase:
            met = met and p99 <= 0.100 and overlapped > 0
    print(
        "  the same layouts done on the event loop, as the board did before: "
        + ", ".join(f"{what} {ms:6.1f} ms" for what, ms in floor_layout.items())
    )
    print("  target: p99 <= 100 ms while laying out; " + ("met" if met else "TARGET MISSED"))
    return 0 if met else 1


def bare_layout_ms(display: Any, notice: str) -> dict[str, float]:
    """What blocking the loop would cost: pygame decoding and scaling the original photo,
    and laying the notice out, each timed bare."""
    import pygame

    from edge_agent.players.base import PlayItem
    from edge_agent.players.display import DisplayPlayer
    from loa_contract import BulletinKind

    with tempfile.TemporaryDirectory() as again:
        path = Path(again) / "photo.jpg"
        photo_jpeg(path, (4000, 3000))
        started = time.perf_counter()
        picture = pygame.image.load(str(path))
        pygame.transform.smoothscale(picture, (1440, 1080))
        photo_ms = (time.perf_counter() - started) * 1000
    screen = DisplayPlayer.for_profile(display, window=False)
    item = PlayItem(
        bulletin_id="bare", kind=BulletinKind.TEXT, priority=Priority.NORMAL, title="Thông báo",
        text=notice,
    )  # fmt: skip
    started = time.perf_counter()
    screen.layout(item).frame_at(0.0)
    return {"photo": photo_ms, "notice": (time.perf_counter() - started) * 1000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--aout", default="dummy", help="libVLC audio output (alsa on a Pi)")
    parser.add_argument(
        "--board", action="store_true", help="a 1080p board laying out a big photo or long text"
    )
    args = parser.parse_args()
    if args.board:
        return asyncio.run(run_board(args.trials))
    return asyncio.run(run(args.trials, args.aout))


if __name__ == "__main__":
    raise SystemExit(main())
