"""The wire contract can evolve: golden files of today's messages, newer hubs, older agents.

Thousands of agents run older versions than the hub (DESIGN.md §4). An agent ignores fields it
does not know in what the hub signed, and refuses a newer contract major version; the hub stays
strict about what devices send. `tests/golden/` holds today's messages: a change that stops
today's agent from reading them, or today's hub from taking today's reports, fails here.
"""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from edge_agent.agent import Agent
from edge_agent.identity import Identity
from edge_agent.players.null import NullPlayer
from edge_agent.profile import load_profile
from hub.testing import HubHarness, running_hub
from loa_contract import (
    CONTRACT_VERSION,
    MAX_HUB_URLS,
    CommandAck,
    CommandDocument,
    EnrollRequest,
    EnrollResponse,
    HubSigner,
    Manifest,
    ReportAck,
    ReportBatch,
    SignatureError,
    TrustedKeys,
    utcnow,
)
from tests.e2e import fast_config, window_around

GOLDEN = Path(__file__).parent / "golden"
#: Messages the hub signs or sends, and what the agent reads them as.
FROM_HUB: dict[str, type[BaseModel]] = {
    "manifest": Manifest,
    # The same from a hub of several nodes: the hub URLs a device may fail over to.
    "manifest_hub_urls": Manifest,
    # With a night window, a weekday's own and a dated exception (a holiday).
    "manifest_windows": Manifest,
    "enroll_response": EnrollResponse,
    "report_ack": ReportAck,
    **{p.stem: CommandDocument for p in GOLDEN.glob("command_*.json")},
}
#: Messages devices send, and what the hub validates them as.
FROM_DEVICE: dict[str, type[BaseModel]] = {
    "report_batch": ReportBatch,
    "enroll_request": EnrollRequest,
    # The answer to an operator command, on the push socket.
    "device_ack": CommandAck,
}


def golden(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))


def with_future_fields(value: Any) -> Any:
    """The message as a newer hub might send it: an unknown field in every object."""
    if isinstance(value, dict):
        out = {k: with_future_fields(v) for k, v in value.items()}
        out["x_added_later"] = {"note": "a field this agent has never heard of", "n": 3}
        return out
    if isinstance(value, list):
        return [with_future_fields(v) for v in value]
    return value


def signed(signer: HubSigner, document: dict[str, Any]) -> str:
    raw = json.dumps(document, ensure_ascii=False).encode("utf-8")
    return signer.sign_bytes(raw).model_dump_json()


def test_every_message_kind_has_a_golden_file() -> None:
    assert len(FROM_HUB) >= 10 and set(FROM_DEVICE) <= {p.stem for p in GOLDEN.glob("*.json")}
    assert {"command_emergency_start", "command_emergency_cancel"} <= set(FROM_HUB)


@pytest.mark.parametrize("name", sorted(FROM_HUB))
def test_todays_agent_reads_todays_hub_messages_and_a_newer_hubs(name: str) -> None:
    signer = HubSigner.generate()
    keys = TrustedKeys([signer.hub_key()])
    model = FROM_HUB[name]
    today = keys.open(signed(signer, golden(name)), model)
    newer = keys.open(signed(signer, with_future_fields(golden(name))), model)
    assert newer == today
    # Strict where nobody signed: a typo in a hand-made message is still caught.
    with pytest.raises(ValidationError):
        model.model_validate(with_future_fields(golden(name)))


@pytest.mark.parametrize("name", ["manifest", "command_emergency_start"])
def test_a_newer_contract_major_version_is_refused(name: str) -> None:
    signer = HubSigner.generate()
    document = golden(name) | {"contract": CONTRACT_VERSION + 1}
    with pytest.raises(SignatureError, match="update it"):
        TrustedKeys([signer.hub_key()]).open(signed(signer, document), FROM_HUB[name])


@pytest.mark.parametrize(
    "urls",
    [
        ["ftp://hub.example.gov.vn"],
        ["https://hub.example.gov.vn?next=evil"],
        ["https://user:secret@hub.example.gov.vn"],
        ["https://hub.example.gov.vn/" + "x" * 300],
        [f"https://hub{i}.example.gov.vn" for i in range(MAX_HUB_URLS + 1)],
    ],
)
def test_a_manifest_naming_bad_hub_urls_is_refused_whole(urls: list[str]) -> None:
    """The agent connects to these and sends its secret there: only plain http(s) node
    addresses, and not too many, even when signed."""
    signer = HubSigner.generate()
    document = golden("manifest_hub_urls") | {"hub_urls": urls}
    with pytest.raises(SignatureError, match="hub_urls"):
        TrustedKeys([signer.hub_key()]).open(signed(signer, document), Manifest)


def test_a_manifest_from_a_hub_before_hub_urls_names_none() -> None:
    assert Manifest.model_validate(golden("manifest")).hub_urls == []
    listed = Manifest.model_validate(golden("manifest_hub_urls")).hub_urls
    assert listed == sorted(listed) and len(listed) == 2


@pytest.mark.parametrize("name", sorted(FROM_DEVICE))
def test_the_hub_takes_todays_device_messages_and_nothing_unknown(name: str) -> None:
    model = FROM_DEVICE[name]
    model.model_validate(golden(name))
    with pytest.raises(ValidationError, match="x_added_later"):
        model.model_validate(with_future_fields(golden(name)))


async def test_the_hub_refuses_a_report_with_an_unknown_field_naming_it(tmp_path: Path) -> None:
    async with running_hub(tmp_path / "hub") as hub:
        await hub.commune("00001")
        device = await hub.new_device()
        batch = golden("report_batch")
        batch["reports"][0]["bulletin_id"] = "b-x"
        batch["reports"][0]["x_added_later"] = 1
        status, body = await device.report(batch["reports"])
        assert status == 422
        assert any("x_added_later" in e["field"] for e in body["detail"])
        assert await _stored_plays(hub) == 0


async def _stored_plays(hub: HubHarness) -> int:
    return len(await hub.call("GET", "/api/v1/plays"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_a_newer_hubs_manifest_plays_on_todays_agent(tmp_path: Path) -> None:
    signer = HubSigner.generate()
    identity = Identity(
        hub_url=f"http://127.0.0.1:{_closed_port()}",  # no hub: the manifest comes by hand
        device_id="dev-1",
        device_secret="s" * 43,
        device_kind="board",
        commune="00001",
        profile="led-board-p10",
        hub_keys=[signer.hub_key()],
    )
    agent = Agent(
        fast_config(tmp_path / "agent", require_clock_confirmation=False),
        identity,
        load_profile("led-board-p10"),
        NullPlayer(default_duration_s=0.5),
    )
    now = utcnow()
    document = golden("manifest") | {
        "device_kind": "board",
        "profile": "led-board-p10",
        "issued_at": now.isoformat(),
        "expires_at": (now + timedelta(days=1)).isoformat(),
        "windows": [window_around(now)],
        "bulletins": [
            golden("manifest")["bulletins"][1]
            | {
                "schedule": {
                    "valid_from": (now - timedelta(hours=1)).isoformat(),
                    "valid_until": (now + timedelta(hours=1)).isoformat(),
                }
            }
        ],
    }
    await agent.start()
    try:
        refused = await agent.apply_manifest(
            signed(signer, document | {"contract": CONTRACT_VERSION + 1}).encode()
        )
        assert refused is False and agent.counters.rejected_manifests == 1
        assert await agent.apply_manifest(signed(signer, with_future_fields(document)).encode())
        async with asyncio.timeout(10):
            item = await agent.play_started.get()
        assert item.bulletin_id == "b-text"
    finally:
        await agent.stop()
