"""The leaf proxy's side of trusted clusters: a reverse tunnel to each trusted root cluster that
asks for one (tunnel_addr), and the channels the root's proxy opens over it.

Every TRUSTED_CLUSTER_POLL seconds the proxy re-reads the trusted CAs from auth: a new root gets
an agent (TunnelAgent, with this proxy's host certificate; the root's proxy is checked against the
root's host CA), a removed or disabled one loses it. Over a tunnel the root asks (clusterchan.py)
for the node list or a dial; this side decides with the root user's certificate, which auth
checks against the root's user CA and maps through role_map: only registered nodes the mapped
roles can see are dialled. The node then checks the login itself, as for any user.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import socket
from typing import TYPE_CHECKING, Any

from teleport import defaults
from teleport.auth.client import AuthClient
from teleport.config.addr import parse_host_port
from teleport.errors import BadParameter, NotFound, TeleportError
from teleport.proxy import lookup
from teleport.reversetunnel import clusterchan, route
from teleport.reversetunnel.agent import TunnelAgent
from teleport.types.identity import HostIdentity

if TYPE_CHECKING:
    from teleport.proxy.sshproxy import ProxySSHService

log = logging.getLogger(__name__)


def wanted_tunnels(records: list[dict[str, Any]]) -> dict[str, tuple[str, list[str]]]:
    """root cluster -> (its tunnel address, its host CA keys) for every enabled root with a
    tunnel_addr, from /v1/trustedcas."""
    out: dict[str, tuple[str, list[str]]] = {}
    for rec in records:
        if rec.get("relation") != "root" or not rec.get("enabled"):
            continue
        name = str(rec.get("cluster_name"))
        addr, keys = out.get(name, ("", []))
        addr = addr or str(rec.get("tunnel_addr") or "")
        if rec.get("type") == "host":
            keys = list(rec.get("checking_keys") or [])
        out[name] = (addr, keys)
    return {k: v for k, v in out.items() if v[0] and v[1]}


class LeafTunnels:
    """The agents of this (leaf) proxy, one per trusted root cluster."""

    def __init__(self, proxy: ProxySSHService, identity: HostIdentity, auth: AuthClient) -> None:
        self.proxy = proxy
        self.identity = identity
        self.auth = auth
        self.agents: dict[str, tuple[str, TunnelAgent, asyncio.Task[None]]] = {}
        self._root_keys: dict[str, list[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Follow the trusted clusters for ever."""
        try:
            while True:
                try:
                    await self.sync(await self.auth.call("GET", "/v1/trustedcas"))
                except (TeleportError, OSError, ValueError) as exc:
                    log.warning("cannot read the trusted clusters (keeping the tunnels): %s", exc)
                await asyncio.sleep(defaults.TRUSTED_CLUSTER_POLL)
        finally:
            await self.close()

    async def sync(self, records: list[dict[str, Any]]) -> None:
        """Start and stop agents to match the trusted clusters."""
        wanted = wanted_tunnels(records if isinstance(records, list) else [])
        for name in list(self.agents):
            addr, agent, task = self.agents[name]
            if wanted.get(name, ("", []))[0] != addr:
                log.info("closing the reverse tunnel to trusted cluster %s", name)
                del self.agents[name]
                await _stop(task)
                await agent.close()
        for name, (addr, keys) in wanted.items():
            self._root_keys[name] = keys
            if name in self.agents:
                continue
            try:
                hp = parse_host_port(addr, defaults.PROXY_TUNNEL_PORT)
            except (BadParameter, ValueError) as exc:
                log.warning("trusted cluster %s: bad tunnel_addr %r: %s", name, addr, exc)
                continue
            agent = TunnelAgent(hp, self._identity, functools.partial(self._keys_of, name), self.handle,
                                server_cluster=name)
            task = asyncio.create_task(agent.run())
            self.agents[name] = (addr, agent, task)
            log.info("opening a reverse tunnel to trusted cluster %s at %s", name, addr)

    def _identity(self) -> HostIdentity:
        return self.identity

    def _keys_of(self, cluster: str) -> list[str]:
        return self._root_keys.get(cluster, [])

    async def close(self) -> None:
        for _, agent, task in list(self.agents.values()):
            await _stop(task)
            await agent.close()
        self.agents.clear()

    # channels from a root's proxy ------------------------------------------------------------
    async def handle(self, sock: socket.socket, orig: str) -> None:
        """Serve one channel: answer a node list, or dial a node and relay."""
        loop = asyncio.get_running_loop()
        try:
            try:
                req = clusterchan.parse_request(await asyncio.wait_for(
                    clusterchan.read_line(sock), defaults.TUNNEL_DIAL_TIMEOUT))
                if req["op"] == "recording":
                    data = await self.auth.call("POST", "/v1/trustedclusters/recording",
                                                {"cert": req["cert"], "sid": req["sid"]}, raw=True)
                    await loop.sock_sendall(sock, b"OK\n" + bytes(data))
                    return
                visible = await self.auth.call("POST", "/v1/access/nodes", {"cert": req["cert"]})
                if req["op"] == "nodes":
                    await loop.sock_sendall(sock, b"OK\n" + json.dumps(visible).encode())
                    return
                node_sock, header = await self._dial(req, visible if isinstance(visible, list) else [])
            except (TeleportError, OSError, TimeoutError, ValueError) as exc:
                message = str(exc) or exc.__class__.__name__
                log.info("request from a trusted cluster's proxy refused: %s", message)
                try:
                    await loop.sock_sendall(sock, f"ERR {message}\n".encode(errors="replace"))
                except OSError:
                    pass
                return
            await loop.sock_sendall(sock, b"OK\n")
            if header:
                await loop.sock_sendall(node_sock, header)
            await clusterchan.splice(sock, node_sock)
        finally:
            sock.close()

    async def _dial(self, req: dict[str, Any], visible: list[dict[str, Any]]) -> tuple[socket.socket, bytes]:
        """A socket to the registered node `req` names, if the user's mapped roles see it."""
        host, port = str(req["host"]), int(req["port"])
        cluster = self.identity.cluster_name
        suffix = "." + cluster
        name = host[: -len(suffix)] if host.lower().endswith(suffix.lower()) else host
        node = lookup.pick_node(lookup.match_nodes(visible, name, port), name)
        if node is None:
            raise NotFound(f"node {host!r} not found in cluster {cluster!r} (or none of your roles, as "
                           f"mapped by {cluster!r}, allows a login on it)")
        client = str(req["client"])
        if route.is_tunnelled(node):
            tunnels = self.proxy.tunnels
            if tunnels is None:
                raise NotFound(f"node {host!r} is behind a reverse tunnel and this proxy has none")
            via = route.route_for(node, tunnels.connected())
            assert via.tunnel is not None
            chost, _, cport = client.rpartition(":")
            sock = await tunnels.dial(via.tunnel, (chost.strip("[]"), int(cport or 0)))
            shown = f"{node.get('spec', {}).get('hostname', '?')} (reverse tunnel)"
        else:
            nhost, nport = lookup.node_address(node)
            sock = await _connect(nhost, nport, host)
            shown = f"{nhost}:{nport}"
        return sock, self.proxy.proxy_header(client, shown)


async def _connect(host: str, port: int, shown: str) -> socket.socket:
    """A raw non-blocking socket connected to host:port (nothing is read from it here)."""
    loop = asyncio.get_running_loop()
    error: Exception | None = None
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise NotFound(f"cannot resolve node {shown!r} at {host}: {exc}") from None
    for family, kind, proto, _, addr in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, addr), defaults.TUNNEL_DIAL_TIMEOUT)
            return sock
        except (OSError, TimeoutError) as exc:
            sock.close()
            error = exc
    raise NotFound(f"cannot connect to node {shown!r} at {host}:{port}: {error}")


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
