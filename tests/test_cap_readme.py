"""The README's CAP example, run as written: its shell block, in bash, with `hub` and `curl`,
against a real hub on 127.0.0.1 whose data folder the block's `hub sender add` writes to."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from pathlib import Path

from hub.testing import running_hub

ROOT = Path(__file__).resolve().parent.parent


def readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- cap-example:[^\n]*-->\n```sh\n(.*?)```", text, re.S)
    assert found, "the README's CAP example block is missing"
    return found.group(1)


async def test_the_readme_curl_example_airs_the_alert(tmp_path: Path) -> None:
    async with running_hub(tmp_path / "hub") as hub:
        await hub.commune("00001", name="Xã An Lư", admin_code="11311")
        # `hub` as the installed command runs it: this tree's hub.cli.
        shim = tmp_path / "bin" / "hub"
        shim.parent.mkdir()
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m hub.cli "$@"\n')
        shim.chmod(0o755)
        env = {
            **os.environ,
            "PATH": f"{shim.parent}:{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),
            "HUB": str(hub.client.make_url("")).rstrip("/"),
            "DATA": str(hub.config.data_dir),
        }
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-euo",
            "pipefail",
            "-c",
            readme_block(),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        answer = json.loads(out)
        assert answer["outcome"] == "published", answer
        assert answer["bulletin"]["priority"] == "emergency"
        assert answer["bulletin"]["targets"]["communes"] == ["00001"]
        assert answer["bulletin"]["source_level"] == "central"
