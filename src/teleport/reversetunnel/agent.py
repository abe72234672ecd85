"""The agent side of a reverse tunnel: a node behind a firewall dials the proxy's 3024 and keeps
the connection, so the proxy can reach its SSH server without any inbound port.

The agent logs in as ``<host_id>.<cluster>`` with its host certificate, checks the proxy's host
certificate against the cluster's host CA, asks for the tunnel "listener", and hands every
channel the proxy opens to `handle` (the node's server: NodeServer.handle_socket). When the
connection drops (the proxy restarted, the network cut) it reconnects with exponential backoff
and full jitter, so a restarted proxy is not hit by every agent at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable

import asyncssh

from teleport import defaults, sshalgs
from teleport.config.addr import HostPort
from teleport.errors import AccessDenied
from teleport.node.certcheck import cert_line_from_wire
from teleport.reversetunnel.authz import agent_login, check_proxy_cert
from teleport.reversetunnel.bridge import ChannelBridge, socket_pair
from teleport.types.identity import HostIdentity

log = logging.getLogger(__name__)

SocketHandler = Callable[[socket.socket, str], Awaitable[None]]


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before reconnect `attempt` (0-based): full jitter over an exponential
    ceiling from TUNNEL_RECONNECT_MIN to TUNNEL_RECONNECT_MAX."""
    ceiling = min(defaults.TUNNEL_RECONNECT_MAX, defaults.TUNNEL_RECONNECT_MIN * (2 ** min(attempt, 16)))
    return (rng or random).uniform(defaults.TUNNEL_RECONNECT_MIN / 2, ceiling)


class TunnelAgent:
    """Keeps one reverse tunnel to the proxy at `addr` open (run() until cancelled)."""

    def __init__(self, addr: HostPort, identity: Callable[[], HostIdentity],
                 host_ca_keys: Callable[[], list[str]], handle: SocketHandler,
                 server_cluster: str = "") -> None:
        self.addr = addr
        # the cluster whose proxy we tunnel to: our own, or (a leaf's proxy) the trusted root
        self.server_cluster = server_cluster
        # read at every connect: a CA rotation re-issues the node's certificate while it runs
        self.identity = identity
        self.host_ca_keys = host_ca_keys
        self.handle = handle
        self.connected = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff and jitter; forever."""
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                await self._serve_once()
                why = "the proxy closed the tunnel"
            except (OSError, asyncssh.Error, TimeoutError) as exc:
                why = str(exc) or exc.__class__.__name__
            finally:
                self.connected.clear()
            if time.monotonic() - started >= defaults.TUNNEL_STABLE_AFTER:
                attempt = 0
            delay = backoff_delay(attempt)
            attempt += 1
            log.warning("reverse tunnel to %s: %s; reconnecting in %.1fs", self.addr, why, delay)
            await asyncio.sleep(delay)

    async def _serve_once(self) -> None:
        ident = self.identity()
        key = asyncssh.import_private_key(ident.private_key)
        cert = asyncssh.import_certificate(ident.cert)
        ca_lines = list(self.host_ca_keys())
        ca_keys = [asyncssh.import_public_key(k) for k in ca_lines]
        conn = await asyncio.wait_for(
            asyncssh.connect(
                self.addr.host, self.addr.port,
                client_factory=lambda: _ProxyCheck(self.server_cluster or ident.cluster_name, ca_lines),
                username=agent_login(ident.host_id, ident.cluster_name),
                client_keys=[(key, cert)],
                # the proxy must show a host certificate of this cluster's host CA for the
                # address we dialled (plain host keys are not trusted)
                known_hosts=([], ca_keys, []),
                agent_path=None,
                password_auth=False,
                kbdint_auth=False,
                encoding=None,
                window=defaults.TUNNEL_WINDOW,
                max_pktsize=defaults.TUNNEL_MAX_PACKET,
                keepalive_interval=defaults.TUNNEL_KEEPALIVE_INTERVAL,
                keepalive_count_max=defaults.TUNNEL_KEEPALIVE_COUNT_MAX,
                **sshalgs.client_options(),
            ),
            defaults.TUNNEL_CONNECT_TIMEOUT,
        )
        try:
            await conn.create_server(
                self._session, defaults.TUNNEL_NODE_LISTEN_HOST, defaults.TUNNEL_NODE_LISTEN_PORT,
            )
            self.connected.set()
            log.info("reverse tunnel to %s connected", self.addr)
            await conn.wait_closed()
        finally:
            conn.close()

    def _session(self, orig_host: str, orig_port: int) -> ChannelBridge:
        """A channel from the proxy: one end of a socket pair to it, the other to the node."""
        mine, theirs = socket_pair()
        task = asyncio.ensure_future(self.handle(theirs, f"{orig_host}:{orig_port}"))
        self._tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._tasks.discard)
        return ChannelBridge(mine)

    async def close(self) -> None:
        """Stop the channel hand-offs still running."""
        for t in list(self._tasks):
            t.cancel()


class _ProxyCheck(asyncssh.SSHClient):
    """Refuses, during the key exchange and so before the agent authenticates, a server whose
    host certificate is not a proxy's of this cluster. asyncssh checks the certificate's CA
    and principals and keeps only the certified key; this hook sees the certificate itself."""

    def __init__(self, cluster_name: str, host_ca_lines: list[str]) -> None:
        self.cluster_name = cluster_name
        self.host_ca_lines = host_ca_lines

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        original = conn.validate_server_host_key

        def validate_server_host_key(key_data: bytes) -> asyncssh.SSHKey:
            key = original(key_data)  # CA, validity and principals: asyncssh's own check
            line = cert_line_from_wire(key_data)
            if line is None:
                raise asyncssh.HostKeyNotVerifiable("the tunnel server showed a plain host key")
            try:
                check_proxy_cert(line, self.cluster_name, self.host_ca_lines)
            except AccessDenied as exc:
                raise asyncssh.HostKeyNotVerifiable(str(exc)) from None
            return key

        conn.validate_server_host_key = validate_server_host_key  # type: ignore[method-assign]
