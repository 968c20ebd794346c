"""`edge-agent-launch run --data DIR ...`: what systemd starts (issue #14).

It finishes or undoes a release switch a power cut interrupted (edge_agent/releases.py,
`plan_boot`), then replaces itself (exec: the same process id, so systemd's notify socket and
watchdog see the agent itself) with `python -m edge_agent.cli` of the release to run, its
folder first on the import path. It is part of the provisioned install and never of a
release, and does as little as it can: whatever a release breaks, this still boots the one
before it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .releases import Releases, launch_env, prepare_boot

log = logging.getLogger("edge_agent.launch")


def _data_dir(argv: list[str]) -> Path | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--data", type=Path)
    known, _ = parser.parse_known_args(argv)
    data: Path | None = known.data
    return data


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data = _data_dir(args)
    env = dict(os.environ)
    if data is not None and "run" in args:
        try:
            version = prepare_boot(data)
        except Exception:
            # Whatever fails here (a card gone read-only), the device must still play: start
            # what `current` points at rather than nothing.
            log.exception("the release state could not be read or written")
            version = Releases(data).current()
        site = Releases(data).site(version)
        log.info("starting release %s", version)
        # The resolved folder: a later switch must not change the code under a running agent.
        env = launch_env(site.resolve() if site is not None else None, env, version)
    os.execve(sys.executable, [sys.executable, "-P", "-m", "edge_agent.cli", *args], env)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
