"""Command label runner."""

from __future__ import annotations

import asyncio

from teleport.config.model import CommandLabel
from teleport.node.labels import CommandLabels, run_label_command


async def test_output_is_stripped() -> None:
    assert await run_label_command(["printf", "  5.10.0\\n\\n"]) == "5.10.0"


async def test_failures_are_reported() -> None:
    assert (await run_label_command(["sh", "-c", "echo boom >&2; exit 2"])).startswith("error: exit status 2: boom")
    assert (await run_label_command(["/nonexistent/cmd"])).startswith("error: cannot run")
    assert await run_label_command(["sleep", "5"], timeout=0.2) == "error: timed out after 0.2s"


async def test_periodic_refresh_and_change_callback(tmp_path: object) -> None:
    counter = f"{tmp_path}/n"
    script = f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; echo $n"
    changes: list[dict[str, str]] = []
    labels = CommandLabels([CommandLabel("count", ["sh", "-c", script], 0.2),
                            CommandLabel("const", ["echo", "same"], 0.2)])
    labels.on_change = lambda: changes.append(labels.values())
    await labels.start()
    try:
        assert labels.values() == {"count": "1", "const": "same"}
        await asyncio.sleep(0.7)
        assert int(labels.values()["count"]) >= 3
        # only the changing label fires (plus the first complete round)
        assert len(changes) >= 3 and all(c["const"] == "same" for c in changes)
        spec = labels.spec()
        assert spec["const"] == {"period": 0.2, "command": ["echo", "same"], "result": "same"}
    finally:
        await labels.close()
    frozen = labels.values()["count"]
    await asyncio.sleep(0.4)
    assert labels.values()["count"] == frozen  # stopped
