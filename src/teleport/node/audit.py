"""The node's audit emitter: every event goes to a durable on-disk spool first, and a background
shipper delivers batches to the auth service, acking them only after auth has stored them.

When auth is unreachable the events stay in ``<data_dir>/log/upload/events.spool`` (fsynced) and
are delivered, once, when it is back (auth de-duplicates redeliveries by ``uid``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from teleport.events.schema import make_event
from teleport.events.spool import EventSpool

log = logging.getLogger(__name__)

BATCH_SIZE = 500
RETRY_MIN = 0.5  # first retry after a failed delivery; doubles up to RETRY_MAX
RETRY_MAX = 5.0

Sender = Callable[[list[dict[str, Any]]], Awaitable[Any]]


def spool_path(data_dir: str) -> str:
    """Where a node keeps its undelivered events."""
    return os.path.join(data_dir, "log", "upload", "events.spool")


class AuditEmitter:
    """Builds events with the node's common fields, spools them durably and ships them to auth."""

    def __init__(self, path: str, send: Sender, common: dict[str, str] | None = None) -> None:
        self.spool = EventSpool(path)
        self.send = send
        self.common = dict(common or {})
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def emit(self, event_type: str, **fields: Any) -> dict[str, Any]:
        """Build (make_event), spool (fsynced) and schedule one event for delivery; returns it.

        Never raises for a delivery problem: the event is on disk and the shipper retries."""
        merged = {**self.common, **fields}
        ev = make_event(event_type, **merged)
        self.spool.put(ev)
        self._idle.clear()
        self._wake.set()
        return ev

    @property
    def running(self) -> bool:
        """Whether the background shipper is delivering events."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the background shipper (delivers whatever the spool already holds too)."""
        if self._task is None:
            self._wake.set()
            self._task = asyncio.create_task(self._ship_loop())

    async def ship_once(self) -> int:
        """Deliver every pending event in batches; returns how many were acked. Raises on failure."""
        done = 0
        while True:
            batch = self.spool.pending()[:BATCH_SIZE]
            if not batch:
                return done
            await self.send(batch)
            done += self.spool.ack(ev["uid"] for ev in batch)

    async def _ship_loop(self) -> None:
        delay = RETRY_MIN
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.ship_once()
                delay = RETRY_MIN
                if not len(self.spool):
                    self._idle.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # auth down or restarting: keep the events, retry later
                log.warning(
                    "cannot deliver %d audit event(s) to the auth service, keeping them on disk "
                    "and retrying in %.1fs: %s", len(self.spool), delay, exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                self._wake.set()

    async def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the spool is empty (True) or the timeout passes (False)."""
        if not len(self.spool):
            return True
        self._wake.set()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return not len(self.spool)

    async def close(self, flush_timeout: float = 2.0) -> None:
        """Try briefly to deliver what is pending, stop the shipper, close the spool."""
        if self._task is not None:
            await self.flush(flush_timeout)
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        self.spool.close()
