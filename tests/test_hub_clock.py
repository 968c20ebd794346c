"""One clock for the whole hub: the workflow, enrollment, manifests, pushes, report judging
and the command line take "now" from the clock the app (or the command) is given, so a test
moves time by hand, without sleeping; nothing in hub/ reads the wall clock itself."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hub.cli import main
from hub.testing import FakeClock, running_hub

HUB = Path(__file__).resolve().parent.parent / "hub"
#: The one place that may read the wall clock: where a test's fake clock starts.
ALLOWED = {("testing.py", "FakeClock.__init__")}


class _WallClockReads(ast.NodeVisitor):
    """Calls that read the wall clock: utcnow(), datetime.now(), datetime.utcnow(),
    datetime.today(), date.today(), time.time(); each with its enclosing function."""

    def __init__(self) -> None:
        self.scope: list[str] = []
        self.found: list[tuple[int, str, str]] = []

    def _enter(self, node: ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_ClassDef = _enter
    visit_FunctionDef = _enter
    visit_AsyncFunctionDef = _enter

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = None
        if isinstance(func, ast.Name) and func.id == "utcnow":
            name = "utcnow"
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            pair = (func.value.id, func.attr)
            if (
                pair
                in {
                    ("datetime", "now"),
                    ("datetime", "utcnow"),
                    ("datetime", "today"),
                    ("date", "today"),
                    ("time", "time"),
                }
                or func.attr == "utcnow"
            ):
                name = ".".join(pair)
        if name is not None:
            self.found.append((node.lineno, ".".join(self.scope), name))
        self.generic_visit(node)


def wall_clock_reads(source: str) -> list[tuple[int, str, str]]:
    visitor = _WallClockReads()
    visitor.visit(ast.parse(source))
    return visitor.found


def test_the_scan_finds_each_way_of_reading_the_wall_clock() -> None:
    source = """
def a():
    return utcnow()
class B:
    def c(self):
        return datetime.now(UTC), time.time(), date.today(), loa_contract.utcnow()
clock = utcnow  # a default, not a reading
"""
    assert [(line, where) for line, where, _ in wall_clock_reads(source)] == [
        (3, "a"),
        (6, "B.c"),
        (6, "B.c"),
        (6, "B.c"),
        (6, "B.c"),
    ]


def test_nothing_in_the_hub_reads_the_wall_clock_but_the_injected_clock() -> None:
    offenders = []
    for path in sorted(HUB.rglob("*.py")):
        relative = path.relative_to(HUB).as_posix()
        for line, where, call in wall_clock_reads(path.read_text(encoding="utf-8")):
            if (relative, where) not in ALLOWED:
                offenders.append(f"hub/{relative}:{line} in {where or 'the module'}: {call}()")
    assert offenders == []


def _bulletin(now: datetime, valid: timedelta) -> dict[str, Any]:
    return {
        "title": "Lịch tiêm chủng",
        "kind": "text",
        "priority": "normal",
        "text": "Thông báo lịch tiêm chủng cho trẻ em trong xã.",
        "category": "socioeconomic_development",
        "targets": {"communes": ["00001"]},
        "schedule": {
            "valid_from": (now - timedelta(minutes=1)).isoformat(),
            "valid_until": (now + valid).isoformat(),
        },
    }


async def test_a_bulletin_whose_time_passed_is_no_longer_published(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_hub(tmp_path, clock=clock) as hub:
        await hub.commune()
        draft = await hub.call(
            "POST", "/api/v1/bulletins", json=_bulletin(clock.now, timedelta(hours=1)), expect=201
        )
        assert draft["created_at"] == clock.now.isoformat().replace("+00:00", "Z")
        clock.advance(timedelta(hours=2))
        await hub.login()  # the session, too, went idle by the hub's clock
        refused = await hub.call("POST", f"/api/v1/bulletins/{draft['id']}/publish", expect=409)
        assert refused == {
            "error": "expired",
            "detail": "the bulletin's valid_until has passed; edit or recreate it",
        }
        # The same schedule is now in the past for a new bulletin too.
        again = await hub.call(
            "POST",
            "/api/v1/bulletins",
            json=_bulletin(clock.now - timedelta(hours=2), timedelta(hours=1)),
            expect=422,
        )
        assert [d["field"] for d in again["detail"]] == ["schedule.valid_until"]


async def test_an_enrollment_code_expires_by_the_hub_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_hub(tmp_path, clock=clock) as hub:
        await hub.commune()
        slot = await hub.device()
        clock.advance(hub.config.enrollment_ttl + timedelta(seconds=1))
        resp = await hub.client.post("/api/v1/enroll", json={"code": slot["enrollment_code"]})
        assert resp.status == 403 and (await resp.json())["error"] == "invalid_code"
        await hub.login()
        audit = await hub.call("GET", "/api/v1/audit", params={"action": "device.enroll_failed"})
        assert audit["items"][0]["detail"] == f"code of device {slot['id']} expired"
        fresh = await hub.call("POST", f"/api/v1/devices/{slot['id']}/enrollment", expect=201)
        assert fresh["enrollment_expires_at"] == (
            (clock.now + hub.config.enrollment_ttl).isoformat().replace("+00:00", "Z")
        )
        assert (await hub.enroll(fresh["enrollment_code"])).id == slot["id"]


async def test_manifests_and_pushes_are_dated_and_expire_by_the_hub_clock(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    async with running_hub(tmp_path, clock=clock) as hub:
        await hub.commune()
        dev = await hub.new_device()
        clock.advance(timedelta(days=3))
        await hub.login()
        manifest, _ = await dev.manifest()
        assert manifest.issued_at == clock.now
        assert manifest.expires_at == clock.now + hub.config.manifest_lifetime
        async with dev.socket() as ws:
            ready = await ws.command()
            assert ready.type == "manifest_ready" and ready.issued_at == clock.now
            await hub.call(
                "POST",
                "/api/v1/emergencies",
                json={"title": "Lũ quét", "text": "Sơ tán ngay.", "valid_minutes": 30},
                expect=201,
            )
            start = await ws.command()
            assert start.type == "emergency_start" and start.issued_at == clock.now
            assert start.bulletin.schedule.valid_until == clock.now + timedelta(minutes=30)
        # A device connecting while the emergency lasts hears its start; once the hub's
        # clock passes its end, no longer, and its manifest no longer holds it.
        clock.advance(timedelta(minutes=10))
        async with dev.socket() as ws:
            assert (await ws.command()).type == "manifest_ready"
            assert (await ws.command()).type == "emergency_start"
        clock.advance(timedelta(minutes=21))
        await hub.login()
        async with dev.socket() as ws:
            assert (await ws.command()).type == "manifest_ready"
            # Frames keep their order: had the start been sent on connecting, it would come
            # before this command.
            await hub.call(
                "POST", f"/api/v1/devices/{dev.id}/commands", json={"type": "test_tone"}, expect=202
            )
            assert (await ws.command()).type == "test_tone"
        manifest, _ = await dev.manifest()
        assert manifest.bulletins == []
        # Past half its lifetime by the hub's clock, a manifest is re-issued (a new version).
        clock.advance(hub.config.manifest_lifetime / 2 + timedelta(minutes=1))
        renewed, _ = await dev.manifest()
        assert renewed.version > manifest.version and renewed.issued_at == clock.now


async def test_proof_of_play_is_judged_by_the_hub_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    async with running_hub(tmp_path, clock=clock) as hub:
        await hub.commune()
        dev = await hub.new_device()
        created = await hub.call(
            "POST", "/api/v1/bulletins", json=_bulletin(clock.now, timedelta(days=1)), expect=201
        )
        await hub.call("POST", f"/api/v1/bulletins/{created['id']}/publish")
        play = {
            "type": "play",
            "bulletin_id": created["id"],
            "priority": "normal",
            "kind": "text",
            "started_at": (clock.now + timedelta(hours=1)).isoformat(),
            "ended_at": (clock.now + timedelta(hours=1, seconds=20)).isoformat(),
            "outcome": "completed",
            "position_s": 20.0,
        }
        # An hour ahead of the hub's time: refused as in the future.
        assert (await dev.report([{**play, "seq": 1}]))[0] == 200
        refused = await hub.call("GET", "/api/v1/refused-reports")
        assert [(r["seq"], r["reason"]) for r in refused] == [(1, "in_future")]
        # Once the hub's clock has moved past it, the same airing is credible.
        clock.advance(timedelta(hours=2))
        await hub.login()
        assert (await dev.report([{**play, "seq": 2}]))[0] == 200
        plays = await hub.call("GET", "/api/v1/plays")
        assert [p["seq"] for p in plays] == [2]


async def test_commands_take_the_time_they_are_given(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    async with running_hub(data) as hub:
        await hub.commune()
    at = datetime(2031, 2, 3, 4, 5, 6, tzinfo=UTC)
    folder = tmp_path / "backups"
    assert main(["backup", "--data", str(data), "--to-dir", str(folder)], clock=lambda: at) == 0
    assert [p.name for p in folder.iterdir()] == ["loa-hub-20310203T040506Z.tar"]
