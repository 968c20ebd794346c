"""A small stand-in for systemd running the agent's unit (systemd/loa-agent.service), for tests
on machines where systemd is not running: it starts the command, and whenever the process
ends, however it ends (exit code, signal, SIGKILL), starts it again after `restart_s`, as
`Restart=always` with `RestartSec=` does. It does not do the rest of a unit (notify socket,
watchdog, sandboxing); tests that need those are not written against it.

Its log is what the test waits on: every line the agent prints, and one line per start and per
exit, each awaited as an event (`wait_for`), never by sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Sequence


class Restarter:
    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str],
        *,
        restart_s: float = 0.2,
        fault_env: dict[str, str] | None = None,
    ) -> None:
        """`fault_env` is added to the environment until a start ends by SIGKILL (the fault
        it injects has happened), then dropped: the power comes back without the fault."""
        self.command = list(command)
        self.env = env
        self.restart_s = restart_s
        self.fault_env = dict(fault_env or {})
        self.lines: list[str] = []
        self.starts = 0
        self.exits: list[int] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._keep())

    async def _note(self, line: str) -> None:
        async with self._changed:
            self.lines.append(line)
            self._changed.notify_all()

    async def _keep(self) -> None:
        while not self._stopping:
            env = {**self.env, **self.fault_env}
            self._process = process = await asyncio.create_subprocess_exec(
                *self.command,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
            self.starts += 1
            await self._note(f"[restarter] start {self.starts} pid {process.pid}")
            assert process.stdout is not None
            async for raw in process.stdout:
                await self._note(raw.decode(errors="replace").rstrip())
            code = await process.wait()
            self.exits.append(code)
            if code == -signal.SIGKILL:
                self.fault_env = {}
            await self._note(f"[restarter] exit {code}")
            if self._stopping:
                return
            await asyncio.sleep(self.restart_s)  # RestartSec=

    async def wait_for(self, pattern: str, timeout: float = 60.0, *, after: int = 0) -> str:
        """The first line (from index `after` on) matching `pattern` (a regex)."""
        wanted = re.compile(pattern)
        try:
            async with asyncio.timeout(timeout), self._changed:
                while True:
                    for line in self.lines[after:]:
                        if wanted.search(line):
                            return line
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"no line matching {pattern!r}; the log:\n{self.log()}") from None

    def mark(self) -> int:
        """The index to pass as `after` to wait only for lines from now on."""
        return len(self.lines)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, sig)

    async def stop(self) -> None:
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                async with asyncio.timeout(20):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def log(self) -> str:
        return "\n".join(self.lines[-200:])
