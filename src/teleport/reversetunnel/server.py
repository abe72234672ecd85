"""The proxy's reverse tunnel listener (proxy_service.tunnel_listen_addr, 3024).

An asyncssh server that accepts only agents: a node of this cluster logging in as
``<host_id>.<cluster>`` with its *host* certificate (authz.check_agent_cert). asyncssh accepts only
user certificates for client authentication, so the certificate is checked here and asyncssh then
verifies the client's signature with the certified key itself (never re-implemented). An
authenticated agent asks for a "remote listener" on (TUNNEL_NODE_LISTEN_HOST, port): no socket is
opened, the request only marks the connection as the tunnel of that host id; the proxy then opens
channels to it with ``create_connection`` (forwarded-tcpip) and the agent hands each to its
node's SSH server. Agents may open nothing towards the proxy: no sessions, no direct-tcpip.
Handshake timeout and connection limits as on every listener (SSHGate), modern algorithms only.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

import asyncssh

from teleport import defaults, sshalgs
from teleport.config.addr import HostPort
from teleport.errors import AccessDenied, NotFound
from teleport.limits import source_of
from teleport.node.certcheck import cert_line_from_wire
from teleport.reversetunnel import authz
from teleport.reversetunnel.bridge import ChannelBridge, socket_pair
from teleport.service import listeners
from teleport.service.httplistener import ListenerLimits
from teleport.service.sshgate import SSHGate
from teleport.types.identity import HostIdentity

log = logging.getLogger(__name__)

HostCAKeys = Callable[[], Awaitable[list[str]]]


class TunnelServer:
    """The listener and the registry of connected tunnels (host id -> SSH connection)."""

    def __init__(self, addr: HostPort, identity: HostIdentity, host_ca_keys: HostCAKeys,
                 limits: ListenerLimits) -> None:
        self.addr = addr
        self.identity = identity
        self.cluster_name = identity.cluster_name
        self.host_ca_keys = host_ca_keys
        self.limits = limits
        self.gate = SSHGate(limits, f"the reverse tunnel listener ({addr})")
        self.tunnels: dict[str, asyncssh.SSHServerConnection] = {}
        # trusted leaf clusters: cluster -> host id of its proxy -> tunnel (see clusters.py)
        self.clusters: dict[str, dict[str, asyncssh.SSHServerConnection]] = {}
        # cluster -> host CA keys of the leaf clusters whose tunnels are accepted (set by the
        # process when this cluster trusts others)
        self.trusted_host_cas: Callable[[], Awaitable[dict[str, list[str]]]] | None = None
        self._conns: set[asyncssh.SSHServerConnection] = set()
        self._server: asyncssh.SSHAcceptor | None = None
        self._options: asyncssh.SSHServerConnectionOptions | None = None
        # called when a tunnel comes or goes (the proxy announces its tunnels to auth at once)
        self.on_change: Callable[[], None] = lambda: None

    def connected(self) -> set[str]:
        """The host ids whose tunnels are connected now."""
        return set(self.tunnels)

    async def start(self, listen: bool = True) -> None:
        """Listen (unless `listen` is false); OSError names the address when the port is taken."""
        options = await asyncssh.SSHServerConnectionOptions.construct(
            server_host_keys=[(asyncssh.import_private_key(self.identity.private_key),
                               asyncssh.import_certificate(self.identity.cert))],
            encoding=None,
            password_auth=False,
            kbdint_auth=False,
            public_key_auth=True,
            allow_pty=False,
            agent_forwarding=False,
            x11_forwarding=False,
            login_timeout=self.limits.handshake_timeout,
            keepalive_interval=defaults.TUNNEL_KEEPALIVE_INTERVAL,
            keepalive_count_max=defaults.TUNNEL_KEEPALIVE_COUNT_MAX,
            **sshalgs.connection_options(),
        )
        sshalgs.restrict_server_host_keys(options)
        self._options = options
        if not listen:
            return  # connections come from serve_socket (a port shared with the web proxy)
        try:
            self._server = await asyncssh.create_server(
                lambda: _TunnelConn(self), options=options,
                sock=listeners.listen_socket(self.addr.host, self.addr.port),  # kept across a restart
            )
        except OSError as exc:
            raise OSError(f"cannot listen on {self.addr} for reverse tunnels: {exc.strerror or exc}") from None
        log.info("reverse tunnel listener on %s", self.addr)

    async def serve_socket(self, sock: socket.socket) -> None:
        """Run the tunnel protocol on one connection accepted elsewhere (its first bytes were
        an SSH banner on the shared web port)."""
        if self._options is None:
            sock.close()
            return
        try:
            await asyncssh.run_server(sock, options=self._options, server_factory=lambda: _TunnelConn(self))
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            log.info("reverse tunnel connection on the shared port failed: %s", exc)

    def bound_port(self) -> int:
        """The port actually listened on (for an ephemeral port)."""
        return int(self._server.get_port()) if self._server is not None else 0

    def stop_accepting(self) -> None:
        """Graceful shutdown: no new tunnels; the open ones carry the sessions they carry."""
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        """Stop listening and drop every tunnel."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for conn in list(self._conns):
            conn.abort()
        self._conns.clear()
        self.tunnels.clear()
        self.clusters.clear()

    def _register(self, host_id: str, conn: asyncssh.SSHServerConnection) -> None:
        old = self.tunnels.get(host_id)
        self.tunnels[host_id] = conn
        if old is not None and old is not conn:
            # the agent reconnected (its old connection may be half dead): the newest wins
            log.info("host %s opened a new reverse tunnel; closing its previous one", host_id)
            old.close()
        log.info("reverse tunnel from host %s connected (%s)", host_id,
                 source_of(conn.get_extra_info("peername")))
        self.on_change()

    def _unregister(self, host_id: str, conn: asyncssh.SSHServerConnection) -> None:
        if self.tunnels.get(host_id) is conn:
            del self.tunnels[host_id]
            log.info("reverse tunnel from host %s disconnected", host_id)
            self.on_change()

    async def dial(self, host_id: str, client_addr: tuple[str, int]) -> socket.socket:
        """A stream socket connected, through host `host_id`'s tunnel, to its node's SSH server.
        `client_addr` is the user's address (the forwarded-tcpip originator; the signed proxy
        header the caller writes first is what the node believes)."""
        conn = self.tunnels.get(host_id)
        if conn is None:
            raise NotFound(f"node {host_id} is offline: its reverse tunnel is not connected")
        mine, theirs = socket_pair()
        try:
            await asyncio.wait_for(
                conn.create_connection(
                    lambda: ChannelBridge(theirs), defaults.TUNNEL_NODE_LISTEN_HOST,
                    defaults.TUNNEL_NODE_LISTEN_PORT, str(client_addr[0]), int(client_addr[1]),
                    window=defaults.TUNNEL_WINDOW, max_pktsize=defaults.TUNNEL_MAX_PACKET,
                ),
                defaults.TUNNEL_DIAL_TIMEOUT,
            )
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            mine.close()
            theirs.close()
            reason = getattr(exc, "reason", "") or str(exc) or exc.__class__.__name__
            raise NotFound(f"cannot reach node {host_id} through its reverse tunnel: {reason}") from None
        return mine


class _NoListener(asyncssh.SSHListener):
    """What server_requested answers: no socket; the listener's life is the tunnel's."""

    def __init__(self, port: int) -> None:
        self._port = port

    def get_port(self) -> int:
        return self._port

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass


class _TunnelConn(asyncssh.SSHServer):
    """One agent connection: host certificate login, then one tunnel registration."""

    def __init__(self, svc: TunnelServer) -> None:
        self.svc = svc
        self.conn: asyncssh.SSHServerConnection | None = None
        self.host_id = ""  # set once the agent authenticated
        self.cluster = ""  # a trusted leaf cluster's name when the agent is its proxy
        self._expect: asyncssh.SSHKey | None = None  # the certified key being checked
        self._registered = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.svc._conns.add(conn)
        self.svc.gate.opened(conn, source_of(conn.get_extra_info("peername")))
        original = conn.validate_public_key

        # asyncssh takes only *user* certificates for client auth. Check the host certificate
        # ourselves, then let asyncssh verify the client's signature with the certified key
        # (passed as a plain key, which validate_public_key below accepts once).
        async def validate_public_key(username: str, key_data: bytes, msg: bytes, signature: bytes) -> bool:
            line = cert_line_from_wire(key_data)
            if line is None:
                log.warning("reverse tunnel refused for %r: plain keys are not accepted", username)
                return False
            try:
                try:
                    info = authz.check_agent_cert(line, username, self.svc.cluster_name,
                                                  await self.svc.host_ca_keys())
                    cluster = ""
                except AccessDenied:
                    if self.svc.trusted_host_cas is None:
                        raise
                    info, cluster = authz.check_cluster_agent_cert(
                        line, username, await self.svc.trusted_host_cas())
                key = asyncssh.import_certificate(line).key
            except AccessDenied as exc:
                if msg:
                    log.warning("%s (from %s)", exc, source_of(conn.get_extra_info("peername")))
                return False
            except (ValueError, asyncssh.KeyImportError):
                return False
            self._expect = key
            try:
                ok = bool(await original(username, key.public_data, msg, signature))
            finally:
                self._expect = None
            if ok and msg:
                self.host_id = info.key_id
                self.cluster = cluster
            return ok

        conn.validate_public_key = validate_public_key  # type: ignore[method-assign]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.svc._conns.discard(self.conn)
            self.svc.gate.closed(self.conn)
            if self.cluster:
                from teleport.reversetunnel.clusters import unregister_cluster

                unregister_cluster(self.svc, self.cluster, self.host_id, self.conn)
            elif self.host_id:
                self.svc._unregister(self.host_id, self.conn)

    def auth_completed(self) -> None:
        if self.conn is not None:
            self.svc.gate.authenticated(self.conn, self.host_id)

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # only the certified key our wrapper above is checking, never a plain key on its own
        return self._expect is not None and key == self._expect

    def server_requested(self, listen_host: str, listen_port: int) -> asyncssh.SSHListener | bool:
        if (not self.host_id or self._registered or self.conn is None
                or listen_host != defaults.TUNNEL_NODE_LISTEN_HOST):
            log.warning("host %s asked for an unexpected listener %s:%s on the tunnel: refused",
                        self.host_id or "?", listen_host, listen_port)
            return False
        self._registered = True
        if self.cluster:
            from teleport.reversetunnel.clusters import register_cluster

            register_cluster(self.svc, self.cluster, self.host_id, self.conn)
        else:
            self.svc._register(self.host_id, self.conn)
        return _NoListener(listen_port)
