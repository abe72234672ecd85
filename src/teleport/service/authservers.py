"""Several auth servers: each registers itself; nodes and proxies learn the list and keep it.

An auth server heartbeats an ``auth_server`` resource (its advertised address in spec.addr) into
the shared backend, as proxies do. Nodes and proxies read the list through the auth API
(GET /v1/authservers) every AUTH_SERVERS_REFRESH_INTERVAL, hand it to their AuthClient, and keep
it in ``data_dir/authservers.json`` (0600, written atomically) so that after a restart they start
from the servers the cluster last named, which take precedence over teleport.auth_servers as the
reference says. The configured servers are kept after the learned ones, so a stale file never
leaves a process with nowhere to go.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any, ClassVar

from teleport import defaults
from teleport.auth.client import AuthClient
from teleport.auth.store import ClusterStore
from teleport.backend.base import Item
from teleport.files import write_secret
from teleport.types.resources import Server

log = logging.getLogger(__name__)

PREFIX = f"/authservers/{defaults.NAMESPACE}/"  # the backend's key space for their heartbeats


class AuthServerInfo(Server):
    """An auth server heartbeat. spec: addr (where nodes and proxies dial it), hostname."""

    KIND: ClassVar[str] = "auth_server"


def cache_path(data_dir: str) -> str:
    return os.path.join(data_dir, defaults.AUTH_SERVERS_FILE)


def load_cached(data_dir: str) -> list[str]:
    """The auth servers saved by a previous run ([] when none or the file is unreadable)."""
    try:
        with open(cache_path(data_dir)) as f:
            data = json.load(f)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s", cache_path(data_dir), exc)
        return []
    addrs = data.get("auth_servers") if isinstance(data, dict) else None
    if not isinstance(addrs, list):
        return []
    return [a for a in addrs if isinstance(a, str) and a]


def save_cached(data_dir: str, addrs: list[str]) -> None:
    """Keep the list for the next start (0600: it tells where the cluster's secrets are served)."""
    write_secret(cache_path(data_dir), json.dumps({"auth_servers": addrs}, indent=2) + "\n")


def merge(preferred: list[str], fallback: list[str]) -> list[str]:
    """``preferred`` first, then what ``fallback`` adds; no duplicates."""
    return list(dict.fromkeys([*preferred, *fallback]))


def startup_addrs(data_dir: str, configured: list[str]) -> list[str]:
    """Where a node or proxy reaches auth at startup: authservers.json, then the config file."""
    return merge(load_cached(data_dir), configured)


def auth_server_resource(host_id: str, hostname: str, addr: str) -> AuthServerInfo:
    res = AuthServerInfo.from_dict({
        "kind": "auth_server",
        "version": "v2",
        "metadata": {"name": host_id},
        "spec": {"addr": addr, "hostname": hostname},
    })
    assert isinstance(res, AuthServerInfo)
    return res


async def heartbeat_loop(store: ClusterStore, host_id: str, hostname: str, addr: str,
                         interval: float = defaults.AUTH_SERVER_HEARTBEAT_INTERVAL) -> None:
    """Register this auth server in the shared backend, again and again (the record expires
    SERVER_TTL after the last beat, so a server that is gone drops off the list by itself)."""
    while True:
        try:
            res = auth_server_resource(host_id, hostname, addr)
            await store.backend.put(Item(PREFIX + host_id, res.to_json(),
                                         expires=time.time() + defaults.SERVER_TTL))
        except Exception as exc:  # the backend may be electing: beat again next time
            log.warning("auth server heartbeat failed: %s", exc)
        await asyncio.sleep(interval)


async def list_registered(store: ClusterStore) -> list[dict[str, Any]]:
    """Every live auth server heartbeat, as resources."""
    return [AuthServerInfo.from_json(i.value).to_dict()
            for i in await store.backend.get_range(PREFIX)]


async def refresh_once(client: AuthClient, data_dir: str, configured: list[str]) -> list[str]:
    """Ask the cluster for its auth servers, update the client and authservers.json."""
    servers = await client.list_auth_servers()
    learned = sorted({str(s.get("spec", {}).get("addr") or "") for s in servers} - {""})
    if not learned:
        return client.addrs
    addrs = merge(learned, configured)
    if addrs != client.addrs or load_cached(data_dir) != addrs:
        log.info("auth servers of the cluster: %s", ", ".join(addrs))
        client.set_addrs(addrs)
        save_cached(data_dir, addrs)
    return addrs


async def refresh_loop(client: AuthClient, data_dir: str, configured: list[str],
                       interval: float = defaults.AUTH_SERVERS_REFRESH_INTERVAL) -> None:
    while True:
        try:
            await refresh_once(client, data_dir, configured)
        except Exception as exc:  # auth unreachable for now: keep the list we have
            log.warning("cannot refresh the list of auth servers: %s", exc)
        await asyncio.sleep(interval)
