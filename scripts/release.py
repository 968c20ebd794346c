"""Build an agent release: `make release [VERSION=0.2.0] [WHEELHOUSE=dir]` runs this.

    python -m scripts.release --version 0.2.0 --out dist [--source .] [--wheelhouse DIR]

The release is one uncompressed tar (its wheels are compressed already):

    RELEASE.json                  name, version, python, the wheel, the dependency lock
    wheels/loa-0.2.0-py3-none-any.whl   the agent's code (loa_contract + edge_agent)
    wheels/<dependency>.whl       locked dependencies found in --wheelhouse (for the Pi:
                                  `pip download --only-binary=:all: --platform
                                  manylinux_2_36_aarch64 --python-version 3.11 -d DIR ...`)

Why wheels and not a ready virtual environment: a venv is tied to the absolute path and the
interpreter it was made with, and can only be built on the Pi's architecture; the project's
code is pure Python, so one wheel serves every Pi, and the lock says exactly which
dependencies it was tested with. The device unpacks the wheels beside the running release
(edge_agent/releases.py) and refuses the release if a locked dependency is neither bundled
nor already installed at that version. An update that changes no dependency (the common
case) is then a few hundred kilobytes over a 3G link instead of a 100 MB venv.

The wheel is written here (PEP 427: a zip with a dist-info folder), not by setuptools: the
build needs no network, no build isolation and no particular setuptools, and the same
sources give the same bytes (sorted entries, fixed times), so a release can be rebuilt and
compared.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import re
import sys
import tarfile
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path

#: The packages a device runs; the hub's code stays on the hub. The hardware profiles go
#: beside them, where edge_agent/profile.py looks (next to the package folder).
AGENT_PACKAGES = ("loa_contract", "edge_agent", "firmware_profiles")
#: Zip entries and tar members carry this time (1980-01-01, zip's epoch) so builds compare.
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
RELEASE_FORMAT = 1


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    match = re.match(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if match is None:
        raise ValueError(f"cannot read the requirement {requirement!r}")
    return match.group(1)


def agent_requirements(pyproject: dict[str, object]) -> list[str]:
    project = pyproject["project"]
    assert isinstance(project, dict)
    extras = project.get("optional-dependencies", {})
    assert isinstance(extras, dict)
    return [*project["dependencies"], *extras.get("agent", [])]


def lock(requirements: list[str]) -> dict[str, str]:
    """Each requirement pinned at the version installed where the release is built (and
    tested): what the device must hold too."""
    pinned: dict[str, str] = {}
    for requirement in requirements:
        name = _requirement_name(requirement)
        try:
            pinned[_normalize(name)] = metadata.version(name)
        except metadata.PackageNotFoundError as exc:
            raise SystemExit(f"{name} is not installed here: cannot lock it") from exc
    return dict(sorted(pinned.items()))


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_wheel(source: Path, version: str, out: Path) -> Path:
    """The agent's pure-Python wheel from `source` (a checkout), at `version`."""
    pyproject = tomllib.loads((source / "pyproject.toml").read_text())
    project = pyproject["project"]
    name = project["name"]
    dist_info = f"{name}-{version}.dist-info"
    files: dict[str, bytes] = {}
    for package in AGENT_PACKAGES:
        for path in sorted((source / package).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            files[path.relative_to(source).as_posix()] = path.read_bytes()
    requires = "".join(f"Requires-Dist: {r}\n" for r in agent_requirements(pyproject))
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        f"Summary: {project.get('description', '')}\n"
        f"Requires-Python: {project.get('requires-python', '')}\n{requires}"
    ).encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: loa scripts/release.py\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n"
    )
    files[f"{dist_info}/entry_points.txt"] = (
        b"[console_scripts]\nedge-agent = edge_agent.cli:main\n"
        b"edge-agent-launch = edge_agent.launch:main\n"
    )
    record = [_record_line(n, d) for n, d in sorted(files.items())]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for entry, data in sorted(files.items()):
            info = zipfile.ZipInfo(entry, FIXED_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return wheel


def _bundled(wheelhouse: Path | None, pinned: dict[str, str]) -> list[Path]:
    if wheelhouse is None:
        return []
    found = []
    for wheel in sorted(wheelhouse.glob("*.whl")):
        dist, version = wheel.name.split("-")[:2]
        if pinned.get(_normalize(dist)) == version:
            found.append(wheel)
    return found


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 315532800  # FIXED_ZIP_TIME, as a Unix time
    tar.addfile(info, io.BytesIO(data))


def build_release(source: Path, version: str, out: Path, wheelhouse: Path | None = None) -> Path:
    """Write `out/loa-agent-VERSION.tar` and return its path."""
    work = out / f".build-{version}"
    wheel = build_wheel(source, version, work)
    pyproject = tomllib.loads((source / "pyproject.toml").read_text())
    pinned = lock(agent_requirements(pyproject))
    bundled = _bundled(wheelhouse, pinned)
    manifest = {
        "format": RELEASE_FORMAT,
        "name": "loa-agent",
        "version": version,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "wheel": wheel.name,
        "requires": pinned,
        "bundled": [w.name for w in bundled],
    }
    target = out / f"loa-agent-{version}.tar"
    tmp = target.with_name(target.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "RELEASE.json", json.dumps(manifest, indent=2, sort_keys=True).encode())
        for path in [wheel, *bundled]:
            _add(tar, f"wheels/{path.name}", path.read_bytes())
    tmp.replace(target)
    wheel.unlink()
    work.rmdir()
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts.release", description=__doc__.split("\n")[0])
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--version", help="the release's version (default: pyproject's)")
    parser.add_argument("--out", type=Path, default=root / "dist")
    parser.add_argument("--source", type=Path, default=root, help="the checkout to build")
    parser.add_argument("--wheelhouse", type=Path, help="dependency wheels to bundle")
    args = parser.parse_args(argv)
    version = (
        args.version
        or tomllib.loads((args.source / "pyproject.toml").read_text())["project"]["version"]
    )
    path = build_release(args.source, version, args.out, args.wheelhouse)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    print(f"{path} {path.stat().st_size} bytes sha256 {digest}")
    print(f"record and sign it on the hub: hub release add --data HUB_DATA {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
