"""Agent releases on the device: A/B folders, one atomic switch, and the way back (issue #14).

Layout under `<data>/releases/`:

    <version>/site/        the release's wheels unpacked (its code, its bundled dependencies)
    <version>/RELEASE.json what scripts/release.py wrote into it
    current -> <version>   the release the launcher starts; absent: the provisioned install
    state.json             a switch under way (`pending`), versions refused, the last outcome
    download/              the release files, fetched and verified like media (cache.py)

A switch is: write `pending` (the version, the one before, when the old one stopped airing),
then rename a new `current` link over the old one (one atomic step), then exit; systemd
(`Restart=always`) starts the launcher (edge_agent/launch.py) again, which runs the new
release. The new one must prove itself (edge_agent/updater.py) and then clears `pending`;
otherwise it points `current` back itself, or, if it cannot even start, the launcher does so
after a few attempts. Each file is written to a temporary name, fsynced and renamed, so a
power cut at any moment leaves either the old or the new state, both of which boot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from loa_contract import UpdateReport

from .cache import fsync_dir
from .identity import write_durably

RELEASES = "releases"
CURRENT = "current"
STATE = "state.json"
#: The name a release is known by when no `current` link exists: the provisioned install.
BASE = "base"
#: Starts of a pending release that did not get as far as proving itself before the launcher
#: gives up on it and switches back.
MAX_START_ATTEMPTS = 3
#: The largest file a release may unpack to (a wheel entry); a release is a few MB.
MAX_MEMBER_BYTES = 256 * 1024 * 1024
#: How long the imports of a freshly installed release may take to load in a check.
SMOKE_TIMEOUT_S = 120.0


class ReleaseError(Exception):
    """A release file or folder that cannot be installed or run here; the message says why."""


@dataclass
class Pending:
    """A switch under way: written before `current` moves, cleared once the new release has
    proved itself (or was switched away from)."""

    version: str
    #: The release to go back to (BASE for the provisioned install).
    previous: str
    #: Wall-clock time the old release stopped its programme (the silence starts there).
    stopped_at: float
    #: Starts of the new release so far (the launcher counts them).
    attempts: int = 0
    #: Set when the switch back has begun, with the reason.
    gave_up: str | None = None


@dataclass(frozen=True)
class HashRefusal:
    """A release file (by its signed sha256) whose bytes did not hash to it: how often in a
    row, and the wall-clock time before which it is not fetched again (edge_agent/updater.py,
    `after_mismatch`)."""

    failures: int
    retry_at: float


@dataclass
class ReleaseState:
    pending: Pending | None = None
    #: Versions this device will not install again, with the reason.
    refused: dict[str, str] = field(default_factory=dict)
    #: The last outcome, reported to the hub with every update check.
    last: dict[str, Any] | None = None
    #: The release that ran before the current one, kept installed to go back to.
    previous: str | None = None
    #: Release files refused for a wrong hash, by sha256: not downloaded again at every
    #: check while the hub's copy stays damaged.
    mismatched: dict[str, HashRefusal] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ReleaseState:
        raw = json.loads(data)
        pending = raw.get("pending")
        return cls(
            pending=Pending(**pending) if pending else None,
            refused=dict(raw.get("refused") or {}),
            last=raw.get("last"),
            previous=raw.get("previous"),
            mismatched={
                sha: HashRefusal(failures=int(r["failures"]), retry_at=float(r["retry_at"]))
                for sha, r in (raw.get("mismatched") or {}).items()
            },
        )

    def report(self, running: str) -> UpdateReport:
        last = self.last or {}
        return UpdateReport(
            running_version=running[:64],
            state=last.get("state", "idle"),
            target_version=last.get("target_version"),
            reason=(last.get("reason") or None) and str(last["reason"])[:500],
            switch_silence_s=last.get("switch_silence_s"),
        )


class Releases:
    """The releases folder of one device. Every method is blocking file work (the updater
    runs them in a thread)."""

    def __init__(self, data_dir: Path) -> None:
        self.root = data_dir / RELEASES
        self.download = self.root / "download"

    # ------------------------------------------------------------------ state

    def load_state(self) -> ReleaseState:
        try:
            return ReleaseState.from_json((self.root / STATE).read_bytes())
        except FileNotFoundError:
            return ReleaseState()
        except (OSError, ValueError, TypeError) as exc:
            # A state file the card garbled: no switch can be trusted to be under way, so
            # whatever `current` says runs, and the refusals are learned again.
            return ReleaseState(last={"state": "failed", "reason": f"state.json unreadable: {exc}"})

    def save_state(self, state: ReleaseState) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_durably(self.root / STATE, state.to_json())

    # ------------------------------------------------------------------ which runs

    def current(self) -> str:
        """The release `current` names, BASE when there is none (or it points nowhere)."""
        link = self.root / CURRENT
        try:
            target = os.readlink(link)
        except OSError:
            return BASE
        return target if (self.root / target / "site").is_dir() else BASE

    def site(self, version: str) -> Path | None:
        """The folder to put first on the import path for `version`; None for BASE."""
        return None if version == BASE else self.root / version / "site"

    def is_installed(self, version: str) -> bool:
        return version == BASE or (self.root / version / "site").is_dir()

    def point_current(self, version: str) -> None:
        """Make `version` what starts next, in one atomic step (rename over the link)."""
        self.root.mkdir(parents=True, exist_ok=True)
        link = self.root / CURRENT
        if version == BASE:
            link.unlink(missing_ok=True)
        else:
            if not self.is_installed(version):
                raise ReleaseError(f"release {version} is not installed")
            tmp = self.root / f".{CURRENT}.{uuid.uuid4().hex}"
            os.symlink(version, tmp)
            os.replace(tmp, link)
        fsync_dir(self.root)

    def prune(self, keep: set[str]) -> list[str]:
        """Remove installed releases (and half-made installs) other than `keep`."""
        removed: list[str] = []
        if not self.root.is_dir():
            return removed
        for entry in self.root.iterdir():
            if entry.name in (CURRENT, STATE, "download") or entry.name in keep:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        return removed

    # ------------------------------------------------------------------ install

    def install(self, archive: Path, version: str) -> Path:
        """Unpack a verified release file into `<version>/`, whole or not at all."""
        if self.is_installed(version):
            return self.root / version
        self.root.mkdir(parents=True, exist_ok=True)
        work = self.root / f".install-{version}-{uuid.uuid4().hex[:8]}"
        try:
            work.mkdir()
            manifest = _unpack(archive, work, version)
            site = work / "site"
            site.mkdir()
            for wheel in [manifest["wheel"], *manifest.get("bundled", [])]:
                _unpack_wheel(work / "wheels" / wheel, site)
            shutil.rmtree(work / "wheels")
            # Everything on the card before the name appears: after a power cut a release
            # folder is whole, or it is a `.install-*` that prune() removes.
            os.sync()
            dest = self.root / version
            os.replace(work, dest)
            fsync_dir(self.root)
            return dest
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def smoke_check(self, version: str) -> None:
        """Import the installed release in a fresh interpreter, the way the launcher will run
        it, and check it is the version it claims and that its locked dependencies are here.
        A release that cannot even load is refused before the device goes quiet for it."""
        site = self.site(version)
        assert site is not None
        manifest = json.loads((self.root / version / "RELEASE.json").read_text())
        env = {**os.environ, "PYTHONPATH": _path_with(site, os.environ.get("PYTHONPATH"))}
        try:
            done = subprocess.run(
                [sys.executable, "-P", "-c", _SMOKE, json.dumps(manifest)],
                env=env,
                capture_output=True,
                text=True,
                timeout=SMOKE_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ReleaseError(
                f"release {version} took over {SMOKE_TIMEOUT_S:.0f} s to load"
            ) from exc
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
            raise ReleaseError(f"release {version} does not load here: {lines[-1][:300]}")


#: Run in the new release's interpreter by smoke_check: its code loads, its version is the
#: one signed, its locked dependencies are installed at their versions.
_SMOKE = """
import json, sys
from importlib import metadata
manifest = json.loads(sys.argv[1])
import edge_agent.cli, edge_agent.agent  # noqa: F401
have = metadata.version("loa")
if have != manifest["version"]:
    sys.exit(f"its code says version {have}, not {manifest['version']}")
wrong = []
for name, version in manifest["requires"].items():
    try:
        found = metadata.version(name)
    except metadata.PackageNotFoundError:
        found = None
    if found != version:
        wrong.append(f"{name}=={version} (here: {found or 'missing'})")
if wrong:
    sys.exit("locked dependencies neither bundled nor installed: " + ", ".join(wrong))
"""


def _path_with(first: Path, rest: str | None) -> str:
    return str(first) if not rest else f"{first}{os.pathsep}{rest}"


def launch_env(site: Path | None, environ: dict[str, str], version: str) -> dict[str, str]:
    """The environment the agent runs in: the release's folder first on the import path."""
    env = dict(environ)
    if site is not None:
        env["PYTHONPATH"] = _path_with(site, environ.get("PYTHONPATH"))
    env["LOA_RELEASE"] = version
    return env


def _safe_name(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ReleaseError(f"unsafe path in the release: {name!r}")
    return path


def _unpack(archive: Path, work: Path, version: str) -> dict[str, Any]:
    # tarfile and zipfile are imported where a release is unpacked, a few times a year: a
    # running agent should not carry them (issue #8, a light agent).
    import tarfile

    try:
        with tarfile.open(archive, "r:") as tar:
            members = tar.getmembers()
            names = {m.name for m in members}
            if "RELEASE.json" not in names:
                raise ReleaseError("not a release: no RELEASE.json")
            for member in members:
                path = _safe_name(member.name)
                if not member.isfile() or member.size > MAX_MEMBER_BYTES:
                    raise ReleaseError(f"unexpected entry in the release: {member.name!r}")
                if not (path.parts[0] == "wheels" and len(path.parts) == 2) and (
                    member.name != "RELEASE.json"
                ):
                    raise ReleaseError(f"unexpected entry in the release: {member.name!r}")
                source = tar.extractfile(member)
                assert source is not None
                dest = work / path
                dest.parent.mkdir(parents=True, exist_ok=True)
                with source, open(dest, "wb") as out:
                    shutil.copyfileobj(source, out)
    except (tarfile.TarError, OSError) as exc:
        raise ReleaseError(f"the release file cannot be read: {exc}") from exc
    try:
        manifest: dict[str, Any] = json.loads((work / "RELEASE.json").read_text())
        wheels = [manifest["wheel"], *manifest.get("bundled", [])]
        requires = manifest["requires"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReleaseError(f"RELEASE.json is not what a release holds: {exc}") from exc
    if manifest.get("version") != version:
        raise ReleaseError(f"the file holds release {manifest.get('version')}, not {version}")
    if not isinstance(requires, dict) or any(
        not (work / "wheels" / str(w)).is_file() or "/" in str(w) for w in wheels
    ):
        raise ReleaseError("RELEASE.json names wheels the release does not hold")
    return manifest


def _unpack_wheel(wheel: Path, site: Path) -> None:
    """A wheel into `site`: pure and platform wheels both unpack in place (PEP 427); the
    device runs `python -m edge_agent.cli`, so no script wrappers are needed."""
    import zipfile  # see _unpack: only while a release is installed

    try:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                path = _safe_name(info.filename)
                if info.is_dir():
                    continue
                if info.file_size > MAX_MEMBER_BYTES:
                    raise ReleaseError(f"{wheel.name}: {info.filename} is too large")
                dest = site / path
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as source, open(dest, "wb") as out:
                    shutil.copyfileobj(source, out)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ReleaseError(f"{wheel.name} cannot be unpacked: {exc}") from exc


# ---------------------------------------------------------------------- going back


def give_up(state: ReleaseState, reason: str, now: float) -> tuple[ReleaseState, ReleaseState]:
    """The two states of a switch back from the pending release: the mark written before
    `current` moves back (so a cut in between still ends the switch back, see plan_boot),
    and the state after it."""
    pending = state.pending
    assert pending is not None
    marked = replace(pending, gave_up=reason)
    final = replace(
        state,
        pending=None,
        refused={**state.refused, pending.version: reason},
        last={
            "state": "rolled_back",
            "target_version": pending.version,
            "reason": reason,
            "switch_silence_s": round(max(0.0, now - pending.stopped_at), 3),
        },
    )
    return replace(state, pending=marked), final


def switch_back(releases: Releases, state: ReleaseState, reason: str, now: float) -> ReleaseState:
    """Point `current` back at the release before the pending one, durably, in an order a
    power cut cannot turn into a device stuck on the release that failed."""
    pending = state.pending
    assert pending is not None
    marked, final = give_up(state, reason, now)
    releases.save_state(marked)
    # The release before is kept installed; should it be gone (a card someone tidied), the
    # provisioned install is the one that is always there.
    back = pending.previous if releases.is_installed(pending.previous) else BASE
    releases.point_current(back)
    releases.save_state(final)
    return final


# ---------------------------------------------------------------------- at boot


@dataclass(frozen=True)
class BootPlan:
    """What the launcher does before it starts the agent."""

    #: The release to start.
    run: str
    #: The state to write (None: leave it as it is).
    state: ReleaseState | None
    #: Why the pending release is given up (then `run` is the one before it).
    give_up: str | None = None


def plan_boot(state: ReleaseState, current: str) -> BootPlan:
    """Pure: which release starts, given the state left by the last run and where `current`
    points. Every case a power cut can leave is here:

    - no switch under way: `current` starts;
    - a switch back was begun (`gave_up` marked): finish it, whatever `current` says;
    - `pending` written but `current` never moved: the switch did not happen; drop it;
    - the new release has been started fewer than MAX_START_ATTEMPTS times: start it again
      (the attempt is counted first, so a crash loop ends);
    - it has been started that often without proving itself: go back to `previous`.
    """
    pending = state.pending
    if pending is None:
        return BootPlan(current, None)
    if pending.gave_up is not None:
        return BootPlan(pending.previous, None, give_up=pending.gave_up)
    if current != pending.version:
        return BootPlan(
            current,
            replace(
                state,
                pending=None,
                # Not the release's fault (a power cut, a kill): it is tried again, and the
                # hub does not count it against the roll-out.
                last={
                    "state": "waiting",
                    "target_version": pending.version,
                    "reason": "the switch was interrupted before it took place; trying again",
                },
            ),
        )
    if pending.attempts >= MAX_START_ATTEMPTS:
        reason = (
            f"release {pending.version} did not prove itself in {pending.attempts} starts;"
            f" switched back to {pending.previous}"
        )
        return BootPlan(pending.previous, None, give_up=reason)
    counted = replace(pending, attempts=pending.attempts + 1)
    return BootPlan(current, replace(state, pending=counted))


def prepare_boot(data_dir: Path, now: float | None = None) -> str:
    """Apply plan_boot to the device's folder; return the release to start."""
    releases = Releases(data_dir)
    state = releases.load_state()
    plan = plan_boot(state, releases.current())
    if plan.give_up is not None:
        switch_back(releases, state, plan.give_up, time.time() if now is None else now)
        return releases.current()
    if plan.state is not None:
        releases.save_state(plan.state)
    return plan.run
