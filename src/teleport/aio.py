"""Small asyncio helpers shared by the services."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def cancel_and_wait(tasks: Iterable[asyncio.Task[object] | asyncio.Future[object]]) -> None:
    """Cancel background tasks and wait until each has finished, ignoring how it ended
    (they are being shut down: their errors were already logged where they happened)."""
    pending = list(tasks)
    for t in pending:
        t.cancel()
    for t in pending:
        try:
            await t
        except (asyncio.CancelledError, Exception):
            pass
