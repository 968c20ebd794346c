"""The hub's signing key moves between nodes and rotates (issue #10 point 3): a device learns a
new key from an endorsement signed by a key it already trusts, and from nothing else."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.agent import Agent
from edge_agent.identity import Identity
from edge_agent.players.null import NullPlayer
from edge_agent.profile import load_profile
from hub.config import HubConfig
from hub.keys import (
    ENDORSEMENTS_FILE,
    KeyFileError,
    export_key,
    import_key,
    load_keyring,
    load_or_create_signer,
    rotate_key,
)
from loa_contract import (
    HubSigner,
    KeyEndorsement,
    SignatureError,
    SignedEnvelope,
    TrustedKeys,
    UnknownKey,
    utcnow,
)
from tests.e2e import LiveHub, enroll_agent, fast_config, live_hub, schedule

T0 = datetime(2026, 12, 1, tzinfo=UTC)
TIMEOUT = 20.0
PASSPHRASE = b"mot hai ba bon nam"


def endorse(old: HubSigner, new: HubSigner) -> SignedEnvelope:
    return old.sign(KeyEndorsement(key=new.hub_key(), previous=old.hub_key(), issued_at=T0))


# ------------------------------------------------------------------ what a device learns


def test_a_chain_of_rotations_is_learned_in_any_order() -> None:
    a, b, c = HubSigner.generate(), HubSigner.generate(), HubSigner.generate()
    keys = TrustedKeys([a.hub_key()])
    document = c.sign(KeyEndorsement(key=a.hub_key(), previous=c.hub_key(), issued_at=T0))
    with pytest.raises(UnknownKey):
        keys.verify_bytes(document)
    learned = keys.learn([endorse(b, c), endorse(a, b)])
    assert [k.key_id for k in learned] == [b.key_id, c.key_id]
    assert keys.verify_bytes(document)
    assert keys.learn([endorse(b, c), endorse(a, b)]) == []  # nothing new the second time


def test_nothing_is_learned_from_what_no_trusted_key_vouches_for() -> None:
    trusted, stranger, new = HubSigner.generate(), HubSigner.generate(), HubSigner.generate()
    keys = TrustedKeys([trusted.hub_key()])
    # Signed by a key the device does not trust.
    assert keys.learn([endorse(stranger, new)]) == []
    # Signed by a trusted key but naming another as the one it replaces.
    lying = trusted.sign(
        KeyEndorsement(key=new.hub_key(), previous=stranger.hub_key(), issued_at=T0)
    )
    assert keys.learn([lying]) == []
    # The payload changed after signing.
    good = endorse(trusted, new)
    payload = json.loads(base64.b64decode(good.payload))
    payload["key"] = stranger.hub_key().model_dump()
    forged = good.model_copy(
        update={"payload": base64.b64encode(json.dumps(payload).encode()).decode()}
    )
    assert keys.learn([forged]) == []
    # A key id that is not its key's hash (an alias of some other key).
    alias = new.hub_key().model_copy(update={"key_id": "0123456789abcdef"})
    aliased = trusted.sign(KeyEndorsement(key=alias, previous=trusted.hub_key(), issued_at=T0))
    assert keys.learn([aliased]) == []
    assert keys.key_ids == {trusted.key_id}
    assert [k.key_id for k in keys.learn([endorse(trusted, new)])] == [new.key_id]


# ------------------------------------------------------------------ the hub's files


def test_rotate_keeps_the_old_key_retired_and_hands_out_the_chain(tmp_path: Path) -> None:
    config = HubConfig(data_dir=tmp_path)
    first = load_or_create_signer(config.key_path)
    previous, new = rotate_key(config.key_path, T0)
    assert previous.key_id == first.key_id and new.key_id != first.key_id
    keyring = load_keyring(config.key_path, config.extra_keys_dir)
    assert keyring.signer.key_id == new.key_id
    assert [k.key_id for k in keyring.hub_keys()] == [new.key_id, first.key_id]
    retired = config.key_path.with_name(f"{config.key_path.name}.retired-{first.key_id}")
    assert HubSigner.from_pem(retired.read_bytes()).key_id == first.key_id
    assert oct(retired.stat().st_mode & 0o777) == "0o600"
    # A device that knew only the first key learns the current one from the keyring's chain.
    device = TrustedKeys([first.hub_key()])
    assert [k.key_id for k in device.learn(keyring.endorsements)] == [new.key_id]

    _, third = rotate_key(config.key_path, T0 + timedelta(days=400))
    device = TrustedKeys([first.hub_key()])
    learned = device.learn(load_keyring(config.key_path, config.extra_keys_dir).endorsements)
    assert [k.key_id for k in learned] == [new.key_id, third.key_id]


def test_a_damaged_endorsement_file_stops_the_hub_with_a_reason(tmp_path: Path) -> None:
    config = HubConfig(data_dir=tmp_path)
    load_or_create_signer(config.key_path)
    rotate_key(config.key_path, T0)
    path = config.key_path.with_name(ENDORSEMENTS_FILE)
    envelopes = json.loads(path.read_text())
    envelopes[0]["signature"] = envelopes[0]["signature"][::-1]
    path.write_text(json.dumps(envelopes))
    with pytest.raises(KeyFileError, match="does not verify"):
        load_keyring(config.key_path, config.extra_keys_dir)
    path.write_text("{not json")
    with pytest.raises(KeyFileError, match="damaged"):
        load_keyring(config.key_path, config.extra_keys_dir)


def test_export_and_import_move_the_key_and_its_endorsements(tmp_path: Path) -> None:
    a = HubConfig(data_dir=tmp_path / "a")
    b = HubConfig(data_dir=tmp_path / "b")
    load_or_create_signer(a.key_path)
    rotate_key(a.key_path, T0)
    bundle = export_key(a.key_path, PASSPHRASE)
    assert b"PRIVATE KEY" in bundle and b"ENCRYPTED" in bundle
    with pytest.raises(KeyFileError, match="passphrase"):
        export_key(a.key_path, b"short")

    with pytest.raises(KeyFileError, match="wrong passphrase"):
        import_key(b.key_path, bundle, b"not the passphrase", replace=False)
    assert not b.key_path.exists()  # nothing written by a failed import
    with pytest.raises(KeyFileError, match="not a hub key export"):
        import_key(b.key_path, b'{"format": "other"}', PASSPHRASE, replace=False)
    with pytest.raises(KeyFileError):
        import_key(b.key_path, b"\x00garbage", PASSPHRASE, replace=False)

    key_id = import_key(b.key_path, bundle, PASSPHRASE, replace=False)
    ring_a = load_keyring(a.key_path, a.extra_keys_dir)
    ring_b = load_keyring(b.key_path, b.extra_keys_dir)
    assert key_id == ring_a.signer.key_id == ring_b.signer.key_id
    assert ring_a.endorsements == ring_b.endorsements
    assert oct(b.key_path.stat().st_mode & 0o777) == "0o600"

    # A node with a key of its own keeps it unless told to replace it.
    c = HubConfig(data_dir=tmp_path / "c")
    own = load_or_create_signer(c.key_path)
    with pytest.raises(KeyFileError, match="--replace"):
        import_key(c.key_path, bundle, PASSPHRASE, replace=False)
    assert load_or_create_signer(c.key_path).key_id == own.key_id
    assert import_key(c.key_path, bundle, PASSPHRASE, replace=True) == key_id


def _hub(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_rotates_exports_and_imports(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    shown = _hub("key", "--data", str(a))
    assert shown.returncode == 0, shown.stderr
    first = shown.stdout.split()[0]
    rotated = _hub("key", "--data", str(a), "rotate")
    assert rotated.returncode == 0 and first in rotated.stdout, rotated.stderr
    current = _hub("key", "--data", str(a), "show").stdout.split()[0]
    assert current != first

    out = tmp_path / "key.json"
    phrase = PASSPHRASE.decode() + "\n"
    exported = _hub("key", "--data", str(a), "export", "--out", str(out), "--passphrase-stdin",
                    stdin=phrase)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    bad = _hub("key", "--data", str(b), "import", str(out), "--passphrase-stdin", stdin="nope\n")
    assert bad.returncode == 2 and "wrong passphrase" in bad.stderr
    missing = _hub("key", "--data", str(b), "import", str(tmp_path / "none"), "--passphrase-stdin",
                   stdin=phrase)  # fmt: skip
    assert missing.returncode == 2 and "No such file" in missing.stderr
    good = _hub("key", "--data", str(b), "import", str(out), "--passphrase-stdin", stdin=phrase)
    assert good.returncode == 0, good.stderr
    assert _hub("key", "--data", str(b)).stdout.split()[0] == current


# ------------------------------------------------------------------ a real device


async def test_a_device_learns_the_rotated_key_and_plays_what_it_signs(tmp_path: Path) -> None:
    async with live_hub(tmp_path / "hub") as hub:
        await hub.add_commune("xa-k")
        agent = await enroll_agent(
            hub,
            tmp_path / "board",
            commune="xa-k",
            kind="board",
            profile="led-board-p10",
            player=NullPlayer(default_duration_s=0.2),
        )
        try:
            first = await _published(hub, "Trước khi đổi khoá")
            await agent.wait_until(lambda: first["id"] in agent.bulletins(), TIMEOUT)
            old_ids = {k.key_id for k in agent.identity.hub_keys}

            await hub.stop()
            _, new = rotate_key(HubConfig(data_dir=hub.data_dir).key_path, utcnow())
            await hub.start()
            await hub.login()
            second = await _published(hub, "Sau khi đổi khoá")
            await agent.wait_until(lambda: second["id"] in agent.bulletins(), TIMEOUT)
            assert new.key_id not in old_ids
            assert new.key_id in agent.keys.key_ids
            # Written down before anything it signed was kept.
            on_disk = Identity.load(tmp_path / "board")
            assert new.key_id in {k.key_id for k in on_disk.hub_keys}

            # An emergency pushed under the new key airs.
            alarm = await hub.call(
                "POST", "/api/v1/emergencies", json={"title": "Cháy rừng", "text": "Sơ tán ngay"}
            )
            await agent.wait_until(lambda: _on_air(agent) == alarm["id"], TIMEOUT)
        finally:
            await agent.stop()

        # A restart verifies the stored manifest with the key learned.
        again = await enroll_again(tmp_path / "board")
        await again.start()
        try:
            assert second["id"] in again.bulletins()
        finally:
            await again.stop()


def _on_air(agent: Agent) -> str | None:
    playing = agent.now_playing()
    return playing.bulletin_id if playing is not None else None


async def enroll_again(data: Path) -> Agent:
    return Agent(
        fast_config(data),
        Identity.load(data),
        load_profile("led-board-p10"),
        NullPlayer(default_duration_s=0.2),
    )


async def _published(hub: LiveHub, title: str) -> dict:  # type: ignore[type-arg]
    return await hub.publish(
        {
            "title": title,
            "kind": "text",
            "priority": "normal",
            "text": f"{title} {uuid.uuid4().hex[:4]}",
            "targets": {"communes": ["xa-k"]},
            "schedule": schedule(utcnow()),
        }
    )


async def test_a_frame_under_a_strange_key_teaches_nothing(tmp_path: Path) -> None:
    """An attacker's frame under its own key makes the device ask the hub once a minute at
    most, learn nothing, and refuse the frame."""
    async with live_hub(tmp_path / "hub") as hub:
        await hub.add_commune("xa-k")
        agent = await enroll_agent(
            hub,
            tmp_path / "board",
            commune="xa-k",
            kind="board",
            profile="led-board-p10",
            player=NullPlayer(default_duration_s=0.2),
        )
        try:
            stranger = HubSigner.generate()
            frame = stranger.sign(
                KeyEndorsement(key=stranger.hub_key(), previous=stranger.hub_key(), issued_at=T0)
            ).model_dump_json()
            before = agent.counters.rejected_commands
            await agent.sync.handle_push(frame)
            await agent.sync.handle_push(frame)
            assert agent.counters.rejected_commands == before + 2
            assert stranger.key_id not in agent.keys.key_ids
            assert not await agent.sync.learn_keys()  # asked once already, within the minute
            with pytest.raises(SignatureError):
                agent.keys.open(frame, KeyEndorsement)
        finally:
            await agent.stop()
