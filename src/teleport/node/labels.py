"""Command labels: run each label's command on its period and keep the latest output."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from teleport.aio import cancel_and_wait
from teleport.config.model import CommandLabel

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 30.0  # a label command that hangs longer than this yields an error result
MAX_OUTPUT = 4096  # label values are short; cap what we keep


async def run_label_command(argv: list[str], timeout: float = COMMAND_TIMEOUT) -> str:
    """Run one label command; its stripped stdout, or an ``error: ...`` text when it fails."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        return f"error: cannot run {argv[0]!r}: {exc.strerror or exc}"
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return f"error: timed out after {timeout:g}s"
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip()[:200]
        return f"error: exit status {proc.returncode}" + (f": {detail}" if detail else "")
    return out.decode(errors="replace").strip()[:MAX_OUTPUT]


class CommandLabels:
    """Runs every command label on its own period; `on_change` fires when a result changes."""

    def __init__(
        self,
        commands: list[CommandLabel],
        on_change: Callable[[], None] | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> None:
        self.commands = list(commands)
        self.results: dict[str, str] = {}
        self.on_change = on_change
        self.timeout = timeout
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Run every command once (so the first heartbeat carries results), then keep refreshing."""
        await asyncio.gather(*(self._refresh(c) for c in self.commands))
        self._tasks = [asyncio.create_task(self._loop(c)) for c in self.commands]

    async def _refresh(self, cmd: CommandLabel) -> None:
        result = await run_label_command(cmd.command, self.timeout)
        changed = self.results.get(cmd.name) != result
        self.results[cmd.name] = result
        if changed and self.on_change is not None and len(self.results) == len(self.commands):
            self.on_change()

    async def _loop(self, cmd: CommandLabel) -> None:
        while True:
            await asyncio.sleep(cmd.period)
            try:
                await self._refresh(cmd)
            except Exception:  # one broken label must not stop the others
                log.exception("command label %s failed", cmd.name)

    def spec(self) -> dict[str, dict[str, object]]:
        """The heartbeat's ``cmd_labels``: {name: {period, command, result}}."""
        return {
            c.name: {"period": c.period, "command": list(c.command), "result": self.results.get(c.name, "")}
            for c in self.commands
        }

    def values(self) -> dict[str, str]:
        """{name: latest result}, for access checks."""
        return {c.name: self.results.get(c.name, "") for c in self.commands}

    async def close(self) -> None:
        """Stop refreshing."""
        await cancel_and_wait(self._tasks)
        self._tasks = []
