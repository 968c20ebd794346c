"""What a careless merge leaves behind never lands: conflict markers in any tracked file."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^(<{7} |>{7} |={7}$)", re.MULTILINE)


def test_no_conflict_markers_in_tracked_files() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    found = []
    for name in filter(None, listed):
        path = ROOT / name.decode()
        if not path.is_file() or path.suffix in {".png", ".wav", ".pdf", ".jpg", ".gif", ".ttf"}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += [
            f"{name.decode()}:{text[: m.start()].count(chr(10)) + 1}" for m in MARKER.finditer(text)
        ]
    assert found == [], f"merge conflict markers: {found}"
