"""Fleet updates on the hub (issue #14): recording a release, the device's update check and
signed answer, roll-outs from the API and the console page, and the self-pause the operators
are told about."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hub.appkeys import DB, KEYRING
from hub.cli import main as hub_main
from hub.releases import add_release
from hub.testing import ADMIN, ADMIN_PASSWORD, EnrolledDevice, HubHarness, running_hub
from loa_contract import ReleaseDescriptor, UpdateOffer, utcnow
from scripts.release import build_release

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def release_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("hub-releases")
    return {v: build_release(ROOT, v, out) for v in ("0.2.0", "0.3.0")}


@pytest.fixture
async def hub(tmp_path: Path, release_files: dict[str, Path]) -> AsyncIterator[HubHarness]:
    async with running_hub(tmp_path / "hub") as harness:
        await harness.commune("00001")
        for path in release_files.values():
            await add_release(
                harness.app[DB],
                harness.app[KEYRING].signer,
                path,
                harness.config.releases_dir,
                actor=ADMIN,
                address=None,
                now=utcnow(),
            )
        yield harness


async def _check(device: EnrolledDevice, **report: Any) -> UpdateOffer:
    resp = await device.hub.client.post(
        "/api/v1/device/update",
        headers=device.headers,
        json={"running_version": "0.1.0", **report},
    )
    assert resp.status == 200, await resp.text()
    return UpdateOffer.model_validate(await resp.json())


async def test_a_device_is_offered_the_signed_release_of_its_rollout(hub: HubHarness) -> None:
    inside = await hub.new_device("00001")
    await hub.commune("00002")
    outside = await hub.new_device("00002")
    assert (await _check(inside)).release is None  # no roll-out yet

    await hub.call(
        "POST",
        "/api/v1/rollouts",
        json={"version": "0.3.0", "percent": 100, "communes": ["00001"]},
        expect=201,
    )
    offer = await _check(inside)
    assert offer.release is not None
    descriptor = inside.keys.open(offer.release, ReleaseDescriptor)
    listed = await hub.call("GET", "/api/v1/releases")
    recorded = next(r for r in listed["releases"] if r["version"] == "0.3.0")
    assert (descriptor.version, descriptor.sha256, descriptor.downgrade) == (
        "0.3.0",
        recorded["sha256"],
        False,
    )
    assert (await _check(outside)).release is None
    # The file itself comes from the media route, with Range for resuming.
    resp = await inside.get(
        f"/api/v1/device/media/{descriptor.sha256}", headers={"Range": "bytes=10-"}
    )
    assert resp.status == 206 and len(await resp.read()) == descriptor.size - 10

    # A rollback is a downgrade signed for it, and expires.
    await hub.call(
        "POST",
        "/api/v1/rollouts",
        json={"version": "0.2.0", "percent": 100, "rollback": True},
        expect=201,
    )
    back = inside.keys.open((await _check(inside)).release, ReleaseDescriptor)  # type: ignore[arg-type]
    assert back.version == "0.2.0" and back.downgrade and back.expires_at is not None
    # It replaced the roll-out under way.
    states = {
        r["version"]: r["state"] for r in (await hub.call("GET", "/api/v1/releases"))["rollouts"]
    }
    assert states == {"0.3.0": "stopped", "0.2.0": "active"}


async def test_bad_rollout_input_names_the_field_and_changes_nothing(hub: HubHarness) -> None:
    for body, field in (
        ({"version": "9.9.9", "percent": 10}, "version"),
        ({"version": "0.2.0", "percent": 0}, "percent"),
        ({"version": "0.2.0", "percent": 101}, "percent"),
        ({"version": "latest", "percent": 10}, "version"),
        ({"version": "0.2.0", "percent": 10, "max_failure_share": 2}, "max_failure_share"),
    ):
        answer = await hub.call("POST", "/api/v1/rollouts", json=body, expect=422)
        assert answer["detail"][0]["field"] == field, answer
    assert (await hub.call("GET", "/api/v1/releases"))["rollouts"] == []
    await hub.call("POST", "/api/v1/rollouts/nope/pause", expect=404)


async def test_the_console_shows_versions_and_the_rollout_pausing_itself(
    hub: HubHarness,
) -> None:
    client = hub.client
    login = await (await client.get("/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', login)
    assert token is not None
    resp = await client.post(
        "/login",
        data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf": token[1], "next": "/"},
        allow_redirects=False,
    )
    assert resp.status == 303
    html = await (await client.get("/releases")).text()
    assert "Cập nhật phần mềm thiết bị" in html and 'data-version="0.3.0"' in html
    token = re.search(r'name="csrf" value="([^"]+)"', html)
    assert token is not None
    csrf = token[1]

    # A bad form is shown again with the field named, and starts nothing.
    resp = await client.post(
        "/releases/rollouts", data={"version": "0.3.0", "percent": "0", "csrf": csrf}
    )
    assert resp.status == 422 and "percent" in await resp.text()
    resp = await client.post(
        "/releases/rollouts",
        data={"version": "0.3.0", "percent": "10", "communes": "00001", "csrf": csrf,
              "max_failure_share": "20"},
        allow_redirects=False,
    )  # fmt: skip
    assert resp.status == 303
    rollout = (await hub.call("GET", "/api/v1/releases"))["rollouts"][0]
    resp = await client.post(
        f"/releases/rollouts/{rollout['id']}/widen",
        data={"percent": "100", "csrf": csrf},
        allow_redirects=False,
    )
    assert resp.status == 303

    # Two devices update; one rolls back: 50 % is over the 20 % bar, so it pauses itself.
    good, bad = await hub.new_device("00001"), await hub.new_device("00001")
    await _check(good, running_version="0.3.0", state="updated", target_version="0.3.0",
                 switch_silence_s=4.2)  # fmt: skip
    offer = await _check(
        bad,
        state="rolled_back",
        target_version="0.3.0",
        reason="release 0.3.0 did not prove itself in 180 s: not connected to a hub",
    )
    assert offer.release is None  # paused: nobody else starts it
    html = await (await client.get("/releases")).text()
    assert f'id="auto-paused-{rollout["id"]}"' in html
    assert "1 of 2 devices that took it failed or rolled back (50% &gt; 20%)" in html
    row = re.search(r'data-version="0.3.0">(.*?)</tr>', html, re.S)
    assert row is not None
    assert re.search(r'class="running">1<', row[1]) and re.search(r'class="rolled-back">1<', row[1])
    assert "4.2 s" in html and "not connected to a hub" in html
    audit = await hub.call("GET", "/api/v1/audit?action=rollout.")
    assert [e["action"] for e in audit["items"]][:3] == [
        "rollout.auto_pause",
        "rollout.widen",
        "rollout.start",
    ]

    # Resumed by an operator, then stopped for good; English on request.
    for action in ("resume", "stop"):
        resp = await client.post(
            f"/releases/rollouts/{rollout['id']}/{action}", data={"csrf": csrf},
            allow_redirects=False,
        )  # fmt: skip
        assert resp.status == 303
    resp = await client.post(f"/releases/rollouts/{rollout['id']}/pause", data={"csrf": csrf})
    assert resp.status == 409
    html = await (await client.get("/releases?lang=en")).text()
    assert "Device software updates" in html and 'data-state="stopped"' in html


def test_hub_release_add_refuses_what_is_not_a_release(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all")
    assert hub_main(["release", "add", str(junk), "--data", str(data)]) == 1
    assert not (data / "releases").exists() or not any((data / "releases").iterdir())


@pytest.mark.sqlite_only("restores into a SQLite data folder; PostgreSQL's restore: test_backup")
async def test_a_backup_keeps_the_release_files(hub: HubHarness, tmp_path: Path) -> None:
    from hub.backup import make_backup, restore_backup

    listed = await hub.call("GET", "/api/v1/releases")
    shas = sorted(r["sha256"] for r in listed["releases"])
    summary = make_backup(hub.config, tmp_path / "b.tar")
    restored = restore_backup(summary.path, tmp_path / "restored")
    assert sorted(p.name for p in (restored.path / "releases").iterdir()) == shas


async def test_a_rollout_to_a_device_group_reaches_its_members_as_they_are(
    hub: HubHarness,
) -> None:
    await hub.commune("00002")
    first, later = await hub.new_device("00001"), await hub.new_device("00002")
    outside = await hub.new_device("00001")
    group = await hub.call(
        "POST", "/api/v1/device-groups", json={"name": "Loa thử nghiệm"}, expect=201
    )
    await hub.call(
        "PUT", f"/api/v1/device-groups/{group['id']}/devices", json={"devices": [first.id]}
    )
    # By id, or by a name no other group bears; not with communes; a group that does not exist.
    for body, field in (
        ({"version": "0.3.0", "percent": 100, "group": "Loa thử nghiệm", "communes": ["00001"]},
         "group"),
        ({"version": "0.3.0", "percent": 100, "group": "nhóm không có"}, "group"),
    ):  # fmt: skip
        answer = await hub.call("POST", "/api/v1/rollouts", json=body, expect=422)
        assert answer["detail"][0]["field"] == field, answer
    rollout = await hub.call(
        "POST",
        "/api/v1/rollouts",
        json={"version": "0.3.0", "percent": 100, "group": "Loa thử nghiệm"},
        expect=201,
    )
    assert (rollout["group"], rollout["group_name"]) == (group["id"], "Loa thử nghiệm")
    assert (await _check(first)).release is not None
    assert (await _check(later)).release is None and (await _check(outside)).release is None
    # Membership is looked up at each check: a device added later is reached.
    await hub.call(
        "PUT",
        f"/api/v1/device-groups/{group['id']}/devices",
        json={"devices": [first.id, later.id]},
    )
    assert (await _check(later)).release is not None
    audit = await hub.call("GET", "/api/v1/audit?action=rollout.start")
    entry = audit["items"][0]
    assert f"to group Loa thử nghiệm ({group['id']})" in entry["detail"], entry
    assert entry["after"]["group"] == group["id"]
    # A deleted group reaches nobody, and the page says the group is gone.
    await hub.call("DELETE", f"/api/v1/device-groups/{group['id']}")
    assert (await _check(first)).release is None
    listed = (await hub.call("GET", "/api/v1/releases"))["rollouts"][0]
    assert (listed["group"], listed["group_name"]) == (group["id"], None)


async def _console_login(hub: HubHarness) -> str:
    login = await (await hub.client.get("/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', login)
    assert token is not None
    resp = await hub.client.post(
        "/login",
        data={"username": ADMIN, "password": ADMIN_PASSWORD, "csrf": token[1], "next": "/"},
        allow_redirects=False,
    )
    assert resp.status == 303
    html = await (await hub.client.get("/releases")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', html)
    assert token is not None
    return token[1]


async def test_the_console_and_the_cli_start_a_rollout_to_a_group(hub: HubHarness) -> None:
    member = await hub.new_device("00001")
    group = await hub.call("POST", "/api/v1/device-groups", json={"name": "Cụm chợ"}, expect=201)
    await hub.call(
        "PUT", f"/api/v1/device-groups/{group['id']}/devices", json={"devices": [member.id]}
    )
    csrf = await _console_login(hub)
    html = await (await hub.client.get("/releases")).text()
    assert f'<option value="{group["id"]}"' in html and "Nhóm thiết bị" in html
    # A group and communes at once: shown again with the field named.
    resp = await hub.client.post(
        "/releases/rollouts",
        data={"version": "0.3.0", "percent": "50", "communes": "00001", "group": group["id"],
              "csrf": csrf},
    )  # fmt: skip
    assert resp.status == 422 and '<code class="field">group</code>' in await resp.text()
    resp = await hub.client.post(
        "/releases/rollouts",
        data={"version": "0.3.0", "percent": "50", "group": group["id"], "csrf": csrf},
        allow_redirects=False,
    )
    assert resp.status == 303
    html = await (await hub.client.get("/releases?lang=en")).text()
    assert re.search(r'class="group">Device group: Cụm chợ<', html), html

    # The CLI names the group by its name and replaces that roll-out.
    args = ["rollout", "start", "0.2.0", "--group", "Cụm chợ", "--percent", "100",
            "--rollback", "--data", str(hub.config.data_dir)]  # fmt: skip
    if hub.config.database_url:
        args += ["--database", hub.config.database_url]
    assert await asyncio.to_thread(hub_main, args) == 0
    rollouts = (await hub.call("GET", "/api/v1/releases"))["rollouts"]
    assert [(r["version"], r["group"], r["state"]) for r in rollouts] == [
        ("0.2.0", group["id"], "active"),
        ("0.3.0", group["id"], "stopped"),
    ]
    offer = await _check(member, running_version="0.3.0")
    assert offer.release is not None
    assert member.keys.open(offer.release, ReleaseDescriptor).version == "0.2.0"


async def test_the_console_pages_through_every_devices_word_on_its_update(
    hub: HubHarness,
) -> None:
    from datetime import timedelta

    from tests.browser import ConsoleSession
    from tests.test_paging import device_updates

    await hub.commune("00009")
    t0 = utcnow()
    ids = await device_updates(hub, "00009", 60, lambda n: t0 - timedelta(seconds=n))
    page = ConsoleSession(hub)
    try:
        await page.login(ADMIN, ADMIN_PASSWORD)
        status, html = await page.get("/releases")
        assert status == 200
        first = re.findall(r'class="device-update" data-device="([^"]+)"', html)
        assert first == ids[:50]
        older = re.search(r'href="([^"]+)" id="next-page"', html)
        assert older, "no link to the older ones"
        status, html = await page.get(older[1].replace("&amp;", "&"))
        assert re.findall(r'class="device-update" data-device="([^"]+)"', html) == ids[50:]
        assert 'id="next-page"' not in html
    finally:
        await page.close()
