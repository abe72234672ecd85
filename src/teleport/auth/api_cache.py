"""GET /v1/cache: what a node or proxy needs to keep serving with every auth server down (CAs,
users' roles and traits, the cluster's roles, the node list for a proxy, the recording mode),
as one snapshot, long-polled: the answer waits until the backend's watch stream reports a
change to those records, or `wait` seconds pass. Never carries secrets (CA private keys,
password hashes, second factors)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web

from teleport import defaults
from teleport.errors import BadParameter

if TYPE_CHECKING:
    from teleport.auth.api import AuthAPI

log = logging.getLogger(__name__)

# backend prefixes whose changes wake a waiting request (the node list only matters to proxies)
WATCHED = ["/authorities/", "/users/", "/roles/"]
WATCHED_BY_PROXIES = [*WATCHED, "/nodes/"]


def add_cache_routes(router: web.UrlDispatcher, api: AuthAPI) -> CacheRoutes:
    routes = CacheRoutes(api)
    router.add_get("/v1/cache", routes.get_cache)
    return routes


def snapshot_version(snap: dict[str, Any]) -> str:
    """A digest of a snapshot's content (without its own version)."""
    body = {k: v for k, v in snap.items() if k != "version"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32]


class CacheRoutes:
    def __init__(self, api: AuthAPI) -> None:
        self.api = api
        self.server = api.server
        self._waiting: set[asyncio.Task[Any]] = set()
        self._stopping = False

    def stop_waiting(self) -> None:
        """Shutdown: end every long poll now, and answer the ones still to come at once (their
        clients ask again, elsewhere if need be; a poll held open would hold the close up)."""
        self._stopping = True
        for task in list(self._waiting):
            task.cancel()

    async def snapshot(self, with_nodes: bool) -> dict[str, Any]:
        """The cache content; `with_nodes` adds the registered nodes (for proxies' routing)."""
        store = self.server.store
        cas = await self.server.get_cert_authorities()
        snap: dict[str, Any] = {
            "cluster_name": self.server.cluster_name,
            "session_recording": self.server.session_recording,
            "authorities": [ca.to_dict() for ca in cas],
            "roles": sorted((r.to_dict() for r in await store.list_roles()),
                            key=lambda r: str(r["metadata"]["name"])),
            # only what the access decision reads: never the password or second factor
            "users": sorted(({"name": u.name, "roles": u.roles, "traits": u.traits}
                             for u in await store.list_users()), key=lambda u: str(u["name"])),
        }
        if with_nodes:
            nodes = [n.to_dict() for n in await store.list_nodes()]
            for n in nodes:  # expiry moves at every heartbeat: not a change worth a wake-up
                n.get("metadata", {}).pop("expires", None)
            snap["nodes"] = sorted(nodes, key=lambda n: str(n["metadata"]["name"]))
        snap["version"] = snapshot_version(snap)
        return snap

    async def _wait_for_change(self, watcher: Any, since: str, wait: float,
                               with_nodes: bool) -> dict[str, Any]:
        """The snapshot once it differs from `since`, or after `wait` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        events = watcher.__aiter__()
        snap = await self.snapshot(with_nodes)
        while (left := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(events.__anext__(), left)
            except Exception:  # timed out, or the watch failed: answer with what we have
                break
            # coalesce a burst of writes (a role and its users) into one answer
            await asyncio.sleep(defaults.CACHE_WATCH_COALESCE)
            snap = await self.snapshot(with_nodes)
            if snap["version"] != since:
                break
        return snap

    async def get_cache(self, request: web.Request) -> web.Response:
        """?since=VERSION&wait=SECONDS: the snapshot at once when it differs from VERSION, else
        when the next change arrives or after `wait` seconds (the same snapshot)."""
        identity = await self.api._authorize(request, "cache", "read")
        since = request.query.get("since", "")
        try:
            wait = float(request.query.get("wait", "0"))
        except ValueError:
            raise BadParameter("wait must be a number of seconds") from None
        wait = max(0.0, min(wait, defaults.CACHE_WATCH_MAX_WAIT))
        with_nodes = identity.system_role != "Node"
        prefixes = WATCHED_BY_PROXIES if with_nodes else WATCHED
        backend = self.server.store.backend
        # watch before reading, so a change between the read and the wait is not missed
        watcher = backend.watch(prefixes) if since and wait and not self._stopping else None
        try:
            snap = await self.snapshot(with_nodes)
            if watcher is None or snap["version"] != since:
                return web.json_response(snap)
            waiter = asyncio.create_task(self._wait_for_change(watcher, since, wait, with_nodes))
            self._waiting.add(waiter)
            try:
                snap = await waiter
            except asyncio.CancelledError:
                if not waiter.cancelled():
                    raise  # the request itself was cancelled
            finally:
                self._waiting.discard(waiter)
            return web.json_response(snap)
        finally:
            if watcher is not None:
                with contextlib.suppress(Exception):
                    await watcher.close()
