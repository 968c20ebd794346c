"""Schemathesis over every operation of the hub's own OpenAPI, against a live hub.

A real hub on 127.0.0.1 (real socket, real SQLite) holds a commune, an enrolled device, a
media file, bulletins and an emergency; the schemathesis CLI then runs its examples,
coverage, fuzzing and stateful phases over every operation of /api/v1/openapi.json:
operator operations with an admin's bearer token, device operations with the enrolled
device's `Authorization: Device <id>:<secret>`, node operations with another node's header,
public ones bare. The verdict is the CLI's:
no 5xx, every status and content type documented, every body matching its schema, and
invalid input refused with a 4xx. A failure prints the CLI's report: each failing case with a
curl command that reproduces it against a hub started the same way.

The seed is fixed, Hypothesis's example database off and the example counts modest, so each
run tries the same cases (give or take the identifiers the hub mints, which the stateful
phase follows) and takes well under a minute on an idle two-core machine.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from hub.appkeys import CLOCK, NODE_SECRET
from hub.node_secret import authorization
from hub.testing import EnrolledDevice, HubHarness, running_hub
from loa_contract import VN_TZ
from tests.real_files import wav_bytes

ST = Path(sys.executable).with_name("st")
SEED = 20261129
#: Per operation and phase; the coverage phase adds its own boundary cases on top.
MAX_EXAMPLES = 12
#: One schemathesis run, at most (a run takes about half a minute).
RUN_LIMIT_S = 240
STATEFUL_STEPS = 6
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
#: Warnings that mean the run tested less than it claims: calls that never got past the
#: credentials, a `$ref` that points nowhere, a filter that matches no operation.
FAIL_ON_WARNINGS = ("missing_auth", "unresolvable_reference", "unmatched_filter")

WAV = wav_bytes()


def _schedule() -> dict[str, Any]:
    start = datetime.now(VN_TZ) - timedelta(minutes=1)
    return {
        "valid_from": start.isoformat(),
        "valid_until": (start + timedelta(hours=24)).isoformat(),
        "times": ["07:00"],
    }


#: Accounts the run may spend. An operation that takes a username is pointed at one of its
#: own, so no generated or harvested name (the admin's own, from GET /api/v1/auth/me or
#: /api/v1/users) can lock, disable or reset the account whose token drives the run.
LOCKABLE = "tran.thi.b"
DISABLEABLE = "le.van.c"
RESETTABLE = "pham.thi.d"
#: Moving an account to another role or unit ends its sessions: only this one is moved.
MOVABLE = "ngo.van.h"
#: Its own password change is tried on this account's session, never on the admin's (a
#: change ends every session of the account).
CHANGER = "vo.van.e"
#: Logins are tried with this account beside generated ones, so 200 is reached too.
LOGIN, LOGIN_PASSWORD = "do.thi.g", "Login-pass-7!"


class Fleet:
    """What the run works on."""

    def __init__(self, device: EnrolledDevice, spare_device: str, media: str) -> None:
        self.device = device
        self.spare_device = spare_device
        self.media = media
        self.bulletins: list[str] = []
        self.emergencies: list[str] = []
        self.logout_token = ""
        self.changer_token = ""


async def _fleet(hub: HubHarness) -> Fleet:
    await hub.commune("00001")
    await hub.commune("00002")
    device = await hub.new_device("00001", "speaker")
    await hub.new_device("00001", "board")
    # Re-issuing an enrollment code revokes the device's secret: that operation gets a slot
    # of its own, or the device operations after it would answer only 401.
    spare = await hub.device("00002", "speaker", name="spare")
    media = (await hub.upload(WAV))["sha256"]
    fleet = Fleet(device, spare["id"], media)
    text = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json={
            "title": "Lịch tiêm chủng",
            "kind": "text",
            "priority": "normal",
            "text": "Thông báo lịch tiêm chủng",
            "targets": {"communes": ["00001"]},
            "schedule": _schedule(),
        },
        expect=201,
    )
    await hub.call("POST", f"/api/v1/bulletins/{text['id']}/publish")
    # Audio, so the speaker's GET /api/v1/device/media/{sha256} finds it.
    audio = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json={
            "title": "Bản tin thời sự",
            "kind": "audio",
            "priority": "priority",
            "media": media,
            "targets": {"communes": ["00001"]},
            "schedule": _schedule(),
        },
        expect=201,
    )
    await hub.call("POST", f"/api/v1/bulletins/{audio['id']}/publish")
    draft = await hub.call(
        "POST",
        "/api/v1/bulletins",
        json={
            "title": "Bản nháp",
            "kind": "text",
            "priority": "normal",
            "text": "Chưa duyệt",
            "targets": {"communes": ["00002"]},
            "schedule": _schedule(),
        },
        expect=201,
    )
    fleet.bulletins = [text["id"], audio["id"], draft["id"]]
    emergency = await hub.call(
        "POST",
        "/api/v1/emergencies",
        json={"title": "Lũ", "text": "Sơ tán ngay", "targets": {"communes": ["00001"]}},
        expect=201,
    )
    fleet.emergencies = [emergency["id"]]
    for username in (LOCKABLE, DISABLEABLE, RESETTABLE, MOVABLE):
        await hub.user(username, "viewer", "province")
    fleet.changer_token = (await hub.user(CHANGER, "viewer", "province")).token or ""
    await hub.user(LOGIN, "viewer", "province", new_password=LOGIN_PASSWORD)
    # A second session of the admin, for the logout operation to end.
    spent = HubHarness(hub.client, hub.config)
    fleet.logout_token = await spent.login()
    return fleet


#: Operations that end the session they are called with, each run apart with a session of
#: its own. One bearer token per run: an operation's own `headers` in the config file also
#: reached other operations' requests (schemathesis 4.32), ending the run's session early.
SESSION_ENDING = {
    "/api/v1/auth/logout": "logout_token",
    "/api/v1/auth/password": "changer_token",
}


def _config(hub: HubHarness, fleet: Fleet, bearer: str) -> str:
    """The schemathesis.toml of a run (TOML strings written as JSON strings)."""
    q = json.dumps
    device = fleet.device

    def pin(path: str, parameter: str, value: str) -> list[str]:
        return [
            "[[operations]]",
            f"include-path = {q(path)}",
            f"parameters.{q(parameter)} = {q(value)}",
        ]

    lines = [
        f"seed = {SEED}",
        "workers = 2",
        # A request the hub never answers is a failure named in the report, not a hang.
        "request-timeout = 30.0",
        "max-failures = 50",
        # Hypothesis's example database and schemathesis's crash cache would replay earlier
        # runs' cases: each run starts from nothing.
        "[cache]",
        "enabled = false",
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        'database = "none"',
        "[phases.stateful]",
        f"max-steps = {STATEFUL_STEPS}",
        "[checks]",
        # Only the checks named here: the others judge rules beyond this test's claim (e.g.
        # positive_data_acceptance would call every business-rule 422 a failure).
        "enabled = false",
        *[f"{name}.enabled = true" for name in CHECKS],
        "[warnings]",
        f"fail-on = {q(list(FAIL_ON_WARNINGS))}",
        "[auth.openapi.bearer]",
        f"bearer = {q(bearer)}",
        "[auth.openapi.device]",
        f"api_key = {q(f'Device {device.id}:{device.enrollment.device_secret}')}",
        # Another node's header (hub/node_secret.py): good for minutes, longer than a run.
        "[auth.openapi.node]",
        f"api_key = {q(authorization(hub.app[NODE_SECRET], hub.app[CLOCK]()))}",
        # Real identifiers beside generated ones, so calls reach past the 404s.
        "[dictionaries]",
        f"ids.values = {q([*fleet.bulletins, *fleet.emergencies, device.id])}",
        f"communes.values = {q(['00001', '00002'])}",
        f"media.values = {q([fleet.media])}",
        f"logins.values = {q([LOGIN])}",
        f"passwords.values = {q([LOGIN_PASSWORD])}",
        "[parameters]",
        '"path.id" = { dictionary = "ids", probability = 0.5 }',
        '"path.code" = { dictionary = "communes", probability = 0.5 }',
        '"path.sha256" = { dictionary = "media", probability = 0.5 }',
        '"body.username" = { dictionary = "logins", probability = 0.5 }',
        '"body.password" = { dictionary = "passwords", probability = 0.5 }',
        *pin("/api/v1/devices/{id}/enrollment", "path.id", fleet.spare_device),
        *pin("/api/v1/node/objects/{store}/{sha256}", "path.store", "media"),
        *pin("/api/v1/users/{username}/lock", "path.username", LOCKABLE),
        *pin("/api/v1/users/{username}/unlock", "path.username", LOCKABLE),
        *pin("/api/v1/users/{username}/disable", "path.username", DISABLEABLE),
        *pin("/api/v1/users/{username}/password", "path.username", RESETTABLE),
        *pin("/api/v1/users/{username}/move", "path.username", MOVABLE),
    ]
    return "\n".join(lines) + "\n"


async def _schemathesis(
    hub: HubHarness, fleet: Fleet, folder: Path, bearer: str, *filters: str
) -> tuple[int, str]:
    """Run the schemathesis CLI against `hub`; its exit code and its report."""
    config = folder / "schemathesis.toml"
    await asyncio.to_thread(folder.mkdir)
    await asyncio.to_thread(config.write_text, _config(hub, fleet, bearer))
    url = str(hub.client.make_url("/api/v1/openapi.json"))
    proc = await asyncio.create_subprocess_exec(
        str(ST),
        "--config-file",
        str(config),
        "run",
        url,
        "--no-color",
        *filters,
        cwd=folder,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_LIMIT_S)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        return -1, f"no end after {RUN_LIMIT_S} s; so far:\n" + out.decode(errors="replace")
    return proc.returncode or 0, out.decode(errors="replace")


async def test_every_operation_answers_as_documented(tmp_path: Path) -> None:
    async with running_hub(tmp_path / "hub") as hub:
        fleet = await _fleet(hub)
        assert hub.token is not None
        apart = [arg for path in SESSION_ENDING for arg in ("--exclude-path", path)]
        runs = [("all", hub.token, apart)]
        runs += [
            (path.rsplit("/", 1)[1], getattr(fleet, token), ["--include-path", path])
            for path, token in SESSION_ENDING.items()
        ]
        for name, bearer, filters in runs:
            code, report = await _schemathesis(hub, fleet, tmp_path / name, bearer, *filters)
            assert code == 0, report
        # The run spent only the sessions and accounts set aside for it.
        await hub.call("GET", "/api/v1/auth/me")
        assert (await fleet.device.get("/api/v1/device/manifest")).status == 200


async def test_the_openapi_documents_what_the_route_machinery_answers(tmp_path: Path) -> None:
    async with running_hub(tmp_path) as hub:
        await hub.commune("00001")
        doc = await hub.call("GET", "/api/v1/openapi.json", auth=False)
        # Strict bodies: `false` is not a volume of 0, `"5"` not 5; the field is named.
        for bad in (False, "5", 5.5):
            body = await hub.call("PUT", "/api/v1/communes/00001", json={"volume": bad}, expect=422)
            assert body["detail"][0]["field"] == "volume", body
        assert (await hub.call("GET", "/api/v1/communes/00001"))["volume"] != 5
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert "SignedEnvelope" in refs
    assert refs <= set(doc["components"]["schemas"]), refs - set(doc["components"]["schemas"])
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            responses = op["responses"]
            # The HTTP parser's own refusal (a request line over 8 KiB) is plain text.
            assert set(responses["400"]["content"]) >= {"application/json", "text/plain"}, where
            if "security" in op:
                assert "401" in responses, where
            if "application/json" in op.get("requestBody", {}).get("content", {}):
                assert {"413", "422"} <= set(responses), where
            for parameter in op.get("parameters", []):
                if parameter["in"] == "path":
                    assert parameter["schema"]["minLength"] == 1, where
