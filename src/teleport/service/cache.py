"""The local cache of a node or proxy: filled and kept fresh from auth's GET /v1/cache long poll
(over the service's mutual-TLS identity, the only source it accepts), written to
data_dir/cache/<role>.json (0600) so that a service started while auth is down starts from it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from urllib.parse import urlencode

from teleport import defaults
from teleport.auth.client import AuthClient
from teleport.errors import AccessDenied, TeleportError
from teleport.files import ensure_private_dir, write_secret
from teleport.service.cachedata import NEVER_FILLED, CacheData

log = logging.getLogger(__name__)


def cache_path(data_dir: str, role: str) -> str:
    return os.path.join(data_dir, defaults.CACHE_DIR, f"{role}.json")


class LocalCache:
    """The last snapshot auth sent (or the one on disk), `online` while auth answers."""

    def __init__(self, client: AuthClient, data_dir: str, role: str, cluster_name: str) -> None:
        self.client = client
        self.role = role
        self.cluster_name = cluster_name
        self.path = cache_path(data_dir, role)
        self.data: CacheData | None = None
        self.online = False
        self.updates = 0  # snapshots received from auth (tests)
        self._listeners: list[Callable[[CacheData], None]] = []
        self._filled = asyncio.Event()

    def on_update(self, listener: Callable[[CacheData], None]) -> None:
        """Call `listener` with every new snapshot (and now, when one is loaded)."""
        self._listeners.append(listener)
        if self.data is not None:
            listener(self.data)

    def load(self) -> bool:
        """Start from the copy on disk, if there is a good one for this cluster."""
        try:
            with open(self.path, "rb") as f:
                data = CacheData.parse(json.load(f), self.cluster_name)
        except FileNotFoundError:
            return False
        except (OSError, ValueError, TeleportError) as exc:
            log.warning("ignoring the cache file %s: %s", self.path, exc)
            return False
        self._apply(data)
        log.info("started from the cached cluster state in %s", self.path)
        return True

    def _apply(self, data: CacheData) -> None:
        self.data = data
        self._filled.set()
        for listener in self._listeners:
            try:
                listener(data)
            except Exception as exc:  # one bad consumer must not stop the cache
                log.warning("cache listener failed: %s", exc)

    async def poll_once(self, wait: float) -> bool:
        """One long poll; True when the snapshot changed."""
        since = self.data.version if self.data is not None else ""
        q = urlencode({"since": since, "wait": wait if since else 0})
        # a wait of 0 answers at once; "since" still tells auth what we have
        snap = await self.client.call("GET", f"/v1/cache?{q}")
        self.online = True
        data = CacheData.parse(snap, self.cluster_name)
        if self.data is not None and data.version == self.data.version:
            return False
        ensure_private_dir(os.path.dirname(self.path))
        write_secret(self.path, data.to_json())
        self.updates += 1
        self._apply(data)
        return True

    async def run(self) -> None:
        """Follow auth for ever: long polls while it answers, a retry every few seconds when not."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                # back from an outage: answer at once (and be online) before waiting for changes
                waited = self.online
                started = loop.time()
                changed = await self.poll_once(defaults.CACHE_WATCH_WAIT if waited else 0)
                if waited and not changed and loop.time() - started < defaults.CACHE_RETRY_DELAY:
                    # an unchanged answer that did not wait: auth's watch is failing; do not spin
                    await asyncio.sleep(defaults.CACHE_RETRY_DELAY)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.online:
                    log.warning("the auth server cannot be reached; serving from the cache: %s", exc)
                self.online = False
                await asyncio.sleep(defaults.CACHE_RETRY_DELAY)

    async def get(self, what: str) -> CacheData:
        """The cached data; waits a little for the first fill, then fails closed (AccessDenied)."""
        if self.data is None:
            try:
                await asyncio.wait_for(self._filled.wait(), defaults.CACHE_FIRST_FILL_TIMEOUT)
            except TimeoutError:
                pass
        if self.data is None:
            raise AccessDenied(NEVER_FILLED.format(what=what))
        return self.data
