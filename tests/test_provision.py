"""raspberry_pi/provision.sh: dry-run prints every action and changes nothing; shellcheck-clean."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "raspberry_pi" / "provision.sh"


def _dry_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc" / "fstab").write_text("PARTUUID=ab-02  /  ext4  defaults  0  1\n")
    return subprocess.run(
        ["bash", str(SCRIPT), "--dry-run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LOA_ROOT": str(tmp_path)},
        check=False,
    )


def test_dry_run_prints_every_action_and_changes_nothing(tmp_path: Path) -> None:
    result = _dry_run(
        tmp_path, "--profile", "speaker-cluster", "--hub", "https://hub.example.vn", "--code", "C1"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    actions = [line[2:] for line in out.splitlines() if line.startswith("+ ")]
    assert "apt-get install" in out or "all packages present" in out
    assert any(a.startswith("useradd --system") for a in actions) or "user loa" in out
    assert any("python3 -m venv --system-site-packages" in a for a in actions)
    assert any("pip install" in a and "[agent]" in a for a in actions)
    assert any(
        "edge-agent enroll --hub https://hub.example.vn --code C1" in a
        and "--profile speaker-cluster" in a
        for a in actions
    )
    assert f"write {tmp_path}/etc/systemd/journald.conf.d/loa.conf (mode 0644)" in actions
    assert any(a.startswith("sed -i") and "noatime" in a for a in actions)
    assert f"write {tmp_path}/etc/systemd/system/loa-agent.service (mode 0644)" in actions
    assert "systemctl daemon-reload" in actions
    assert "systemctl enable --now loa-agent.service" in actions
    # Nothing was written under the fake root.
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["etc", "etc/fstab"]
    assert (tmp_path / "etc" / "fstab").read_text().count("noatime") == 0


def test_an_unknown_profile_is_refused(tmp_path: Path) -> None:
    result = _dry_run(tmp_path, "--profile", "toaster")
    assert result.returncode == 2
    assert "no such profile" in result.stderr


def test_without_a_profile_it_lists_the_known_ones(tmp_path: Path) -> None:
    result = _dry_run(tmp_path)
    assert result.returncode == 2
    assert "speaker-cluster" in result.stderr and "led-board-p10" in result.stderr


def test_units_are_hardened_and_notify() -> None:
    agent = (ROOT / "systemd" / "loa-agent.service").read_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=always",
        "User=loa",
        "SupplementaryGroups=audio video gpio",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/loa",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "StateDirectory=loa",
        # Agent releases (issue #14): the launcher picks the release, then execs the agent.
        "ExecStart=/opt/loa/venv/bin/edge-agent-launch run --data /var/lib/loa/agent",
    ):
        assert line in agent
    hub = (ROOT / "systemd" / "loa-hub.service").read_text()
    assert "Restart=always" in hub and "ProtectSystem=strict" in hub
    journald = (ROOT / "systemd" / "journald-loa.conf").read_text()
    assert "Storage=volatile" in journald


@pytest.mark.skipif(
    shutil.which("shellcheck") is None and not os.environ.get("CI"),
    reason="shellcheck is not installed",
)
def test_provision_is_shellcheck_clean() -> None:
    result = subprocess.run(
        ["shellcheck", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None and not os.environ.get("CI"),
    reason="systemd-analyze is not installed",
)
def test_units_verify_with_systemd() -> None:
    """systemd's own parser on every unit; the only complaint allowed is that the venv this
    machine has no /opt/loa for."""
    units = sorted((ROOT / "systemd").glob("*.service")) + sorted(
        (ROOT / "systemd").glob("*.timer")
    )
    assert {u.name for u in units} >= {
        "loa-agent.service",
        "loa-hub.service",
        "loa-hub-backup.service",
        "loa-hub-backup.timer",
    }
    for unit in units:
        result = subprocess.run(
            ["systemd-analyze", "verify", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        complaints = [
            line
            for line in (result.stdout + result.stderr).splitlines()
            if line.strip() and "/opt/loa/venv/bin/" not in line
        ]
        assert not complaints, (unit.name, complaints)
    backup = (ROOT / "systemd" / "loa-hub-backup.service").read_text()
    assert "hub backup --data /var/lib/loa/hub" in backup and "UMask=0077" in backup
