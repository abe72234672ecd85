"""The root's side of leaf cluster tunnels: which leaves are connected, and channels to them.

A leaf's proxy holds a tunnel to this proxy (authz.check_cluster_agent_cert); the SSH proxy
reaches a leaf node by opening a channel over it and writing a request (clusterchan.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from typing import TYPE_CHECKING, Any

import asyncssh

from teleport import defaults
from teleport.errors import AccessDenied, NotFound
from teleport.limits import source_of
from teleport.reversetunnel import clusterchan
from teleport.reversetunnel.bridge import ChannelBridge, socket_pair

if TYPE_CHECKING:
    from teleport.reversetunnel.server import TunnelServer

log = logging.getLogger(__name__)


def register_cluster(svc: TunnelServer, cluster: str, host_id: str, conn: asyncssh.SSHServerConnection) -> None:
    """A leaf proxy's tunnel is up (a reconnect replaces the proxy's previous one)."""
    proxies = svc.clusters.setdefault(cluster, {})
    old = proxies.get(host_id)
    proxies[host_id] = conn
    if old is not None and old is not conn:
        old.close()
    log.info("reverse tunnel from proxy %s of trusted cluster %s connected (%s)", host_id, cluster,
             source_of(conn.get_extra_info("peername")))


def unregister_cluster(svc: TunnelServer, cluster: str, host_id: str, conn: asyncssh.SSHServerConnection) -> None:
    proxies = svc.clusters.get(cluster, {})
    if proxies.get(host_id) is conn:
        del proxies[host_id]
        if not proxies:
            svc.clusters.pop(cluster, None)
        log.info("reverse tunnel from proxy %s of trusted cluster %s disconnected", host_id, cluster)


def drop_cluster(svc: TunnelServer, cluster: str) -> None:
    """Close the tunnels of a cluster this one no longer trusts."""
    for conn in list(svc.clusters.pop(cluster, {}).values()):
        conn.close()


async def open_channel(svc: TunnelServer, cluster: str, req: dict[str, Any], client: tuple[str, int]) -> socket.socket:
    """A socket whose other end is a fresh channel to `cluster`'s proxy, with `req` sent and
    the leaf's "OK" read; NotFound (offline) or AccessDenied (the leaf's refusal) otherwise."""
    proxies = list(svc.clusters.get(cluster, {}).values())
    if not proxies:
        raise NotFound(f"cluster {cluster!r} is offline: its reverse tunnel to this proxy is not connected")
    loop = asyncio.get_running_loop()
    error = ""
    for conn in reversed(proxies):  # the newest tunnel first
        mine, theirs = socket_pair()
        try:
            await asyncio.wait_for(
                conn.create_connection(functools.partial(ChannelBridge, theirs), defaults.TUNNEL_NODE_LISTEN_HOST,
                                       defaults.TUNNEL_NODE_LISTEN_PORT, str(client[0]), int(client[1])),
                defaults.TUNNEL_DIAL_TIMEOUT,
            )
            await loop.sock_sendall(mine, clusterchan.encode_request(req))
            answer = (await asyncio.wait_for(clusterchan.read_line(mine), defaults.TUNNEL_DIAL_TIMEOUT)).decode(
                errors="replace")
        except (asyncssh.Error, OSError, TimeoutError, NotFound) as exc:
            mine.close()
            theirs.close()
            error = getattr(exc, "reason", "") or str(exc) or exc.__class__.__name__
            continue
        if answer == "OK":
            return mine
        mine.close()
        raise AccessDenied(answer.removeprefix("ERR ").strip() or "refused by the leaf cluster")
    raise NotFound(f"cannot reach cluster {cluster!r} through its reverse tunnel: {error}")


async def read_all(svc: TunnelServer, cluster: str, req: dict[str, Any], client: tuple[str, int],
                   limit: int) -> bytes:
    """Send `req` to `cluster` and read its whole answer (at most `limit` bytes)."""
    sock = await open_channel(svc, cluster, req, client)
    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(defaults.TUNNEL_DIAL_TIMEOUT * 4):
            size = 0
            while chunk := await loop.sock_recv(sock, 1 << 16):  # the answer, then EOF
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise AccessDenied(f"cluster {cluster!r} answered over {limit >> 20} MiB: refused")
    finally:
        sock.close()
    return b"".join(chunks)


async def list_nodes(svc: TunnelServer, cluster: str, cert: str, client: tuple[str, int]) -> list[dict[str, Any]]:
    """The leaf's nodes the user (its certificate) may see, as the leaf decides."""
    import json

    raw = await read_all(svc, cluster, {"op": "nodes", "cert": cert}, client, defaults.CLUSTER_NODES_MAX)
    data = json.loads(raw or b"[]")
    return data if isinstance(data, list) else []
