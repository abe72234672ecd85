"""The proxy's SSH listener (3023): certificate-only logins and the `proxy:host:port` subsystem.

A client authenticates with a user certificate signed by the cluster's user CA, then asks for the
subsystem `proxy:host:port[@cluster]`; the proxy finds the node, dials it and relays raw bytes, so
the client runs SSH end to end with the node (which authenticates the user a second time).
In recording proxy mode (auth_service.session_recording: proxy) the proxy instead terminates the
client's SSH on that channel and records the session itself: see forward.py.
The relay is callback based (asyncio protocols on both sides, no per-chunk coroutines) and uses
the channel's flow control in both directions.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncssh

from teleport import defaults, sshalgs
from teleport.auth.client import AuthClient
from teleport.auth.server import HostIdentity
from teleport.ca.sshcert import CertInfo, parse_cert
from teleport.config.model import FileConfig
from teleport.config.start import effective_auth_servers
from teleport.errors import AccessDenied, BadParameter, LimitExceeded, NotFound, TeleportError
from teleport.limits import source_of
from teleport.proxy import dialpolicy, lookup, recmode
from teleport.proxy.forward import Forwarder, ProxyRecorder
from teleport.reversetunnel import route
from teleport.service.httplistener import ListenerLimits
from teleport.service.sshgate import SSHGate

if TYPE_CHECKING:
    from teleport.reversetunnel.server import TunnelServer

log = logging.getLogger("teleport.proxy.ssh")

NODES_CACHE_SECONDS = 5.0
NODES_MISS_REFRESH_SECONDS = 1.0
ENDPOINTS_CACHE_SECONDS = 60.0
CA_CACHE_SECONDS = 30.0
DIAL_TIMEOUT = 15.0
# Bigger channel windows keep a single TCP stream busy on fast links (the relay is the hot path).
CHANNEL_WINDOW = 8 * 1024 * 1024

HeaderFunc = Callable[[str, str, bytes, str], bytes]


def _load_header_func() -> HeaderFunc | None:
    """The node service's proxy-header encoder, once that module exists."""
    try:
        from teleport.node.proxyheader import make_proxy_header
    except ImportError:
        return None
    return make_proxy_header


def _fmt_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ProxySSHService:
    """The proxy SSH service: `await start()` listens on proxy_service.listen_addr."""

    def __init__(
        self, cfg: FileConfig, identity: HostIdentity, auth_client: AuthClient, data_dir: str
    ) -> None:
        self.cfg = cfg
        self.identity = identity
        self.auth = auth_client
        self.data_dir = data_dir
        self.cluster_name = identity.cluster_name
        self._server: asyncssh.SSHAcceptor | None = None
        self._nodes: list[dict[str, Any]] = []
        self._nodes_at = 0.0
        self._nodes_lock = asyncio.Lock()
        self._ca_keys: set[asyncssh.SSHKey] = {
            asyncssh.import_public_key(k) for k in identity.user_ca_keys
        }
        self._ca_lines: list[str] = list(identity.user_ca_keys)
        self._host_ca_keys: list[asyncssh.SSHKey] = [
            asyncssh.import_public_key(k) for k in identity.host_ca_keys
        ]
        self._ca_at = 0.0
        # auth_service.session_recording, from auth's ping (re-read every RECORDING_MODE_REFRESH)
        self.mode = "node"
        self._mode_at = 0.0
        self.recorder = ProxyRecorder(self, data_dir)
        self._header = _load_header_func()
        self._conns: set[asyncssh.SSHServerConnection] = set()
        self.gateways: dict[str, int] = {}  # open `proxy:@cluster` streams per Teleport user
        self.allowed_hosts = dialpolicy.parse_allow_list(cfg.proxy_service.ssh_allowed_hosts)
        self._endpoints: list[dialpolicy.Endpoint] | None = None
        self._endpoints_at = 0.0
        self._bound_port = 0
        self.limits = ListenerLimits.from_config(cfg.teleport)
        self.gate = SSHGate(self.limits, f"the SSH proxy ({cfg.proxy_service.listen_addr})")
        # the reverse tunnel listener (set by the process once it listens): routes tunnelled nodes
        self.tunnels: TunnelServer | None = None

    @property
    def listen_addr(self) -> str:
        return str(self.cfg.proxy_service.listen_addr)

    async def start(self) -> None:
        """Listen for SSH clients; raises OSError with the address when the port is taken."""
        addr = self.cfg.proxy_service.listen_addr
        host_key = asyncssh.import_private_key(self.identity.private_key)
        cert = asyncssh.import_certificate(self.identity.cert)
        options = await asyncssh.SSHServerConnectionOptions.construct(
            server_host_keys=[(host_key, cert)],
            encoding=None,
            window=CHANNEL_WINDOW,
            allow_pty=False,
            # recording proxy mode logs in to nodes through the agent the client forwards here
            agent_forwarding=True,
            x11_forwarding=False,
            keepalive_interval=defaults.SSH_KEEPALIVE_INTERVAL,
            keepalive_count_max=defaults.SSH_KEEPALIVE_COUNT_MAX,
            login_timeout=self.limits.handshake_timeout,
            **sshalgs.connection_options(),
        )
        sshalgs.restrict_server_host_keys(options)
        try:
            self._server = await asyncssh.create_server(
                lambda: _ProxyServer(self),
                addr.host or None,
                addr.port,
                options=options,
                reuse_address=True,
            )
        except OSError as exc:
            raise OSError(f"cannot listen on {addr}: {exc.strerror or exc}") from None
        if addr.port == 0:  # an ephemeral port is one of ours too
            self._bound_port = int(self._server.get_port())
        await self.recording_mode()
        self.recorder.start()
        log.info("proxy SSH service listening on %s (session recording: %s)", addr, self.mode)

    async def close(self) -> None:
        """Stop listening and drop the open client connections."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for conn in list(self._conns):
            conn.abort()
        self._conns.clear()
        await self.recorder.close()

    # cluster state ----------------------------------------------------------------------
    async def recording_mode(self) -> str:
        """auth_service.session_recording as auth last announced it (node | proxy | off)."""
        if time.monotonic() - self._mode_at > defaults.RECORDING_MODE_REFRESH:
            try:
                self.mode = recmode.parse_mode((await self.auth.ping()).get("session_recording"), self.mode)
                self._mode_at = time.monotonic()
            except (TeleportError, OSError, ValueError) as exc:
                log.warning("cannot read the session recording mode, keeping %r: %s", self.mode, exc)
        return self.mode

    def user_ca_lines(self) -> list[str]:
        """The user CA's checking keys as OpenSSH lines (as last refreshed by user_ca_keys)."""
        return self._ca_lines

    async def host_ca_keys(self) -> list[asyncssh.SSHKey]:
        """The host CA's checking keys (refreshed with the user CA's)."""
        await self.user_ca_keys()
        return self._host_ca_keys

    async def user_ca_keys(self) -> set[asyncssh.SSHKey]:
        """The user CA's checking keys (refreshed from auth; the last known set on failure)."""
        if time.monotonic() - self._ca_at > CA_CACHE_SECONDS:
            try:
                self.apply_authorities(await self.auth.get_authorities())
            except (TeleportError, OSError, ValueError) as exc:
                log.warning("cannot refresh the user CA from auth (using the cached one): %s", exc)
        return self._ca_keys

    def apply_authorities(self, cas: list[dict[str, Any]]) -> None:
        """Trust every checking key of the user and host CAs (old and new during a rotation)."""
        keys: set[asyncssh.SSHKey] = set()
        lines: list[str] = []
        host: list[asyncssh.SSHKey] = []
        for ca in cas:
            spec = ca.get("spec", {})
            if spec.get("cluster_name") != self.cluster_name:
                continue
            if spec.get("type") == "user":
                lines += spec.get("checking_keys", [])
                keys.update(asyncssh.import_public_key(k) for k in spec.get("checking_keys", []))
            elif spec.get("type") == "host":
                host += [asyncssh.import_public_key(k) for k in spec.get("checking_keys", [])]
        if keys:
            self._ca_keys, self._ca_lines = keys, lines
        if host:
            self._host_ca_keys = host
        self._ca_at = time.monotonic()

    async def reload_identity(self, identity: HostIdentity) -> None:
        """CA rotation re-issued this proxy's identity: present the new host certificate to new
        clients (open connections keep theirs)."""
        self.identity = identity
        if self._server is not None:
            self._server.update(server_host_keys=[
                (asyncssh.import_private_key(identity.private_key), asyncssh.import_certificate(identity.cert))
            ])

    async def nodes(self, max_age: float = NODES_CACHE_SECONDS) -> list[dict[str, Any]]:
        """The registered nodes, cached for up to `max_age` seconds."""
        async with self._nodes_lock:
            if time.monotonic() - self._nodes_at > max_age:
                self._nodes = await self.auth.list_nodes()
                self._nodes_at = time.monotonic()
            return self._nodes

    async def resolve(self, req: lookup.ProxyRequest, user: str) -> DialTarget:
        """Where to dial for `req` on behalf of Teleport user `user`, after every check of the dial
        policy (see dialpolicy.py); AccessDenied / NotFound say why not."""
        if req.cluster and req.cluster != self.cluster_name:
            raise NotFound(
                f"cluster {req.cluster!r} is not known to this proxy, which serves cluster "
                f"{self.cluster_name!r} (trusted clusters are not supported yet; 'tsh clusters' "
                "lists them)"
            )
        if not req.host:
            # proxy:@cluster: a byte stream to the cluster's auth API (the client then speaks
            # mutual TLS with its own x509 identity, end to end): a deliberate gateway, the one
            # way through to the auth port
            auth = effective_auth_servers(self.cfg)[0]
            return DialTarget(_fmt_addr(auth.host, auth.port), [auth.host], auth.port, None)
        ips: list[str] | None = None
        matches: list[dict[str, Any]] = []
        # a miss asks auth again (at most once a second): a node that just joined is routable
        for max_age in (NODES_CACHE_SECONDS, NODES_MISS_REFRESH_SECONDS):
            nodes = await self.nodes(max_age)
            matches = lookup.match_nodes(nodes, req.host, req.port)
            suffix = "." + self.cluster_name
            if not matches and dialpolicy.normalize_host(req.host).endswith(suffix.lower()):
                # `node.<cluster>` (the ssh_config `Host *.<cluster>` form) names node `node`
                matches = lookup.match_nodes(nodes, req.host.rstrip(".")[: -len(suffix)], req.port)
            if not matches:
                if ips is None:
                    ips = await _resolve_ips(req.host)
                matches = lookup.match_nodes(nodes, req.host, req.port, ips)
            if matches:
                break
        node = lookup.pick_node(matches, req.host)
        if node is not None and route.is_tunnelled(node):
            await self.check_route(user, node)
            connected = self.tunnels.connected() if self.tunnels is not None else set()
            via = route.route_for(node, connected)
            shown = f"{node.get('spec', {}).get('hostname', '?')} (reverse tunnel)"
            return DialTarget(shown, [], 0, node, via.tunnel)
        if node is not None:
            await self.check_route(user, node)
            host, port = lookup.node_address(node)
            candidates = [dialpolicy.unmap(ip) for ip in _ips(await _resolve_ips(host))]
            if not candidates:
                raise NotFound(f"cannot resolve the address {host!r} of node {req.host!r}")
            shown = _fmt_addr(host, port)
        else:
            port = req.port
            if ips is None:
                ips = await _resolve_ips(req.host)
            name = None if dialpolicy.parse_ip(req.host) is not None else req.host
            # the protected ports first, whatever the allow list says, for the clearer message
            await self._refuse_own(req.host, _ips(ips), port)
            candidates = [
                ip for ip in _ips(ips)
                if dialpolicy.allowed_by_config(self.allowed_hosts, name, ip, port)
            ]
            if not candidates:
                if not ips and name is not None and dialpolicy.name_allowed(self.allowed_hosts, name, port):
                    raise NotFound(f"cannot resolve host {req.host!r}")
                raise dialpolicy.not_allowed(req.host, port)
            shown = _fmt_addr(req.host, port)
        await self._refuse_own(req.host, candidates, port)
        return DialTarget(shown, [str(ip) for ip in candidates], port, node)

    async def _refuse_own(self, host: str, ips: list[dialpolicy.IPAddress], port: int) -> None:
        """AccessDenied when any of `ips`:`port` is the auth API or one of this proxy's ports."""
        endpoints = await self.protected_endpoints()
        for ip in ips:
            ep = dialpolicy.own_endpoint(endpoints, ip, port, _is_local_ip)
            if ep is not None:
                raise dialpolicy.own_port_refused(host, port, ep)

    async def protected_endpoints(self) -> list[dialpolicy.Endpoint]:
        """The auth API and this proxy's own listeners, with the addresses they resolve to
        (cached for a minute: names in auth_servers may move)."""
        if self._endpoints is not None and time.monotonic() - self._endpoints_at < ENDPOINTS_CACHE_SECONDS:
            return self._endpoints
        px = self.cfg.proxy_service
        named: list[tuple[str, str, int]] = [
            ("proxy SSH listener", px.listen_addr.host, px.listen_addr.port),
            ("proxy web listener", px.web_listen_addr.host, px.web_listen_addr.port),
            ("proxy tunnel listener", px.tunnel_listen_addr.host, px.tunnel_listen_addr.port),
        ]
        named += [("auth server", a.host, a.port) for a in effective_auth_servers(self.cfg)]
        if self.cfg.auth_service.enabled:
            a = self.cfg.auth_service.listen_addr
            named.append(("auth server", a.host, a.port))
        if self._bound_port:
            named.append(("proxy SSH listener", px.listen_addr.host, self._bound_port))
        out = []
        for what, host, port in named:
            if dialpolicy.wildcard(host):
                out.append(dialpolicy.Endpoint(what, port, None))
            else:
                found = frozenset(_ips(await _resolve_ips(host)))
                # a name that does not resolve now may later: treat it as every local address
                out.append(dialpolicy.Endpoint(what, port, found or None))
        self._endpoints, self._endpoints_at = out, time.monotonic()
        return out

    async def visible_nodes(self, user: str) -> list[dict[str, Any]]:
        """The nodes the user's current roles can see, asked fresh from auth (a role edit applies
        to the next `tsh ls` and the next connection)."""
        if not user:
            raise AccessDenied("access denied: the proxy could not tell which Teleport user you are")
        nodes = await self.auth.call("POST", "/v1/access/nodes", {"user": user})
        return nodes if isinstance(nodes, list) else []

    async def check_route(self, user: str, node: dict[str, Any]) -> None:
        """AccessDenied unless some role of the user allows a login on this registered node."""
        name = node.get("metadata", {}).get("name")
        if any(n.get("metadata", {}).get("name") == name for n in await self.visible_nodes(user)):
            return
        hostname = node.get("spec", {}).get("hostname", "?")
        raise AccessDenied(
            f"access denied: user {user!r} may not connect to node {hostname!r} ({name}): "
            "none of your roles allows a login on it"
        )

    def proxy_header(self, client_addr: str, node_addr: str) -> bytes:
        """The signed header telling a Teleport node the real client address (b"" when the node
        service that reads it is not installed)."""
        if self._header is None:
            return b""
        return self._header(client_addr, node_addr, self.identity.private_key, self.identity.cert)


async def _resolve_ips(host: str) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return []
    return list(dict.fromkeys(str(i[4][0]) for i in infos))


def _ips(texts: list[str]) -> list[dialpolicy.IPAddress]:
    out = []
    for t in texts:
        ip = dialpolicy.parse_ip(t.partition("%")[0])
        if ip is not None and ip not in out:
            out.append(ip)
    return out


def _tune_relay_socket(sock: socket.socket) -> None:
    """No Nagle delay on the relay; kernel keep-alives so a node host that vanishes without a FIN
    (power, network) ends the relay with an error instead of holding it open for hours."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", defaults.RELAY_TCP_KEEPIDLE),
        ("TCP_KEEPINTVL", defaults.RELAY_TCP_KEEPINTVL),
        ("TCP_KEEPCNT", defaults.RELAY_TCP_KEEPCNT),
    ):
        opt = getattr(socket, name, None)  # Linux names; other systems keep their defaults
        if opt is not None:
            sock.setsockopt(socket.IPPROTO_TCP, opt, value)


def _is_local_ip(ip: dialpolicy.IPAddress) -> bool:
    """Does `ip` belong to this host? (Binding to an address succeeds only for local ones.)"""
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((str(ip), 0))
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class DialTarget:
    """What the proxy dials: the addresses (checked IPs, tried in order) and port; `shown` names
    it in messages and the proxy header; `node` is the registered node, None for an allow-listed
    OpenSSH host or the auth gateway."""

    shown: str
    addrs: list[str]
    port: int
    node: dict[str, Any] | None
    tunnel: str | None = None  # the host id whose reverse tunnel reaches the node (addrs unused)

    async def dial_tunnel(self, svc: ProxySSHService, client_addr: tuple[str, int]) -> socket.socket:
        """A socket to the node through its reverse tunnel (NotFound when it is offline)."""
        assert self.tunnel is not None
        if svc.tunnels is None:
            raise NotFound(f"node {self.shown} is reached through a reverse tunnel, and this proxy "
                           "has no tunnel listener")
        return await svc.tunnels.dial(self.tunnel, client_addr)


class _ProxyServer(asyncssh.SSHServer):
    """Per connection: certificate-only authentication, then sessions."""

    def __init__(self, svc: ProxySSHService) -> None:
        self.svc = svc
        self.conn: asyncssh.SSHServerConnection | None = None
        self.teleport_user = ""  # the certificate's key id, once authenticated
        self.open_sessions = 0  # session channels open on this connection

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.svc._conns.add(conn)
        self.svc.gate.opened(conn, source_of(conn.get_extra_info("peername")))
        # asyncssh does not expose the client certificate; wrap this connection's key check
        # (the same hook node/certcheck.py subclasses; tested with asyncssh 2.14-2.24) to learn
        # the Teleport user (key id) after asyncssh accepted the certificate and its signature.
        original = conn.validate_public_key

        async def validate_public_key(username: str, key_data: bytes, msg: bytes, signature: bytes) -> bool:
            info = _cert_info(key_data)
            if info is None and _is_cert(key_data):
                return False  # a certificate we cannot read is not one we let through
            if info is not None and not info.principals:
                # asyncssh reads an empty principal list as "valid for every login" (as the
                # OpenSSH format says); a Teleport user certificate always names its logins,
                # and the node refuses such a certificate, so the proxy does too.
                if msg:
                    self._audit_refused(conn, username, info.key_id, "it names no principals")
                return False
            ok = await original(username, key_data, msg, signature)
            if ok and msg:
                self.teleport_user = info.key_id if info is not None else ""
            elif not ok and info is not None and info.key_id:
                self._audit_refused(conn, username, info.key_id)
            return bool(ok)

        conn.validate_public_key = validate_public_key  # type: ignore[method-assign]

    def _audit_refused(
        self, conn: asyncssh.SSHServerConnection, login: str, user: str, why: str = ""
    ) -> None:
        """Log a refused user certificate as an `auth` (T3007W) event, best effort."""
        from teleport.events.schema import AUTH_ATTEMPT, make_event

        peer, local = conn.get_extra_info("peername") or ("", 0), conn.get_extra_info("sockname") or ("", 0)
        ev = make_event(
            AUTH_ATTEMPT, user=user, login=login, success=False, server_id=self.svc.identity.host_id,
            error=f"certificate refused by the proxy: {why}" if why else
                  "certificate refused by the proxy: not signed by the user CA, expired, or "
                  f"{login!r} is not among its principals",
            addr_remote=f"{peer[0]}:{peer[1]}", addr_local=f"{local[0]}:{local[1]}",
        )
        task = asyncio.ensure_future(self.svc.auth.emit_events([ev]))
        _AUDIT_TASKS.add(task)  # the loop keeps only weak references to tasks

        def done(t: asyncio.Future[Any]) -> None:
            _AUDIT_TASKS.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.warning("cannot log a refused certificate: %s", t.exception())

        task.add_done_callback(done)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            self.svc._conns.discard(self.conn)
            self.svc.gate.closed(self.conn)

    def auth_completed(self) -> None:
        if self.conn is not None:
            self.svc.gate.authenticated(self.conn, self.teleport_user)

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False  # plain keys never: only certificates from the user CA

    async def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # asyncssh then checks the validity window and that `username` is a principal.
        return key in await self.svc.user_ca_keys()

    def session_requested(self) -> _ProxySession:
        assert self.conn is not None
        if self.open_sessions >= defaults.PROXY_MAX_SESSIONS_PER_CONNECTION:
            # every channel may cost a connection to a node or to auth: bound them per connection
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                f"too many sessions on one connection (at most "
                f"{defaults.PROXY_MAX_SESSIONS_PER_CONNECTION}, as OpenSSH's MaxSessions): "
                "open another connection",
            )
        self.open_sessions += 1
        return _ProxySession(self.svc, self.conn, self)


_AUDIT_TASKS: set[asyncio.Future[Any]] = set()


def _is_cert(key_data: bytes) -> bool:
    from teleport.node.certcheck import cert_line_from_wire

    return cert_line_from_wire(key_data) is not None


def _cert_info(key_data: bytes) -> CertInfo | None:
    """The content of a certificate in SSH wire form (None for a plain key or an unreadable one)."""
    from teleport.node.certcheck import cert_line_from_wire

    line = cert_line_from_wire(key_data)
    if line is None:
        return None
    try:
        return parse_cert(line)
    except BadParameter:
        return None


class _NodeProtocol(asyncio.Protocol):
    """The TCP side of the relay: node bytes go straight into the SSH channel."""

    def __init__(self, session: _ProxySession) -> None:
        self.session = session
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.session.chan.write(data)

    def eof_received(self) -> bool:
        # SSH (and the TLS of the auth gateway) never half-close: the node's EOF ends the relay.
        # Keeping the socket half open would leave both ends waiting for each other for ever.
        self.session.chan.write_eof()
        return False

    def pause_writing(self) -> None:
        self.session.chan.pause_reading()

    def resume_writing(self) -> None:
        self.session.chan.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.node_closed(exc)


class _ProxySession(asyncssh.SSHServerSession[bytes]):
    """One session channel: the proxy subsystem (relay) or the node list subsystem."""

    def __init__(
        self, svc: ProxySSHService, conn: asyncssh.SSHServerConnection, owner: _ProxyServer
    ) -> None:
        self.svc = svc
        self.conn = conn
        self.owner = owner
        self.chan: asyncssh.SSHServerChannel[bytes] = None  # type: ignore[assignment]
        self.subsystem = ""
        self.node: _NodeProtocol | None = None
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.pending_paused = False  # reading the channel paused until the node is connected
        self.pending_eof = False
        self.closed = False
        self.task: asyncio.Task[None] | None = None
        self.gateway_user: str | None = None  # set while this channel holds an auth stream
        # recording proxy mode: the SSH server connection running over this channel
        self.inner: asyncssh.SSHServerConnection | None = None
        self.forwarder: Forwarder | None = None

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self.chan = chan

    def attach_inner(self, conn: asyncssh.SSHServerConnection) -> None:
        """Recording proxy mode: run `conn` over this channel, starting with what the client
        already sent."""
        self.inner = conn
        conn.connection_made(self.chan)  # type: ignore[arg-type]  # the channel is its transport
        if self.pending_paused:
            self.pending_paused = False
            self.chan.resume_reading()
        for data in self.pending:
            conn.data_received(data)
        self.pending.clear()
        self.pending_size = 0

    def subsystem_requested(self, subsystem: str) -> bool:
        self.subsystem = subsystem
        return subsystem.startswith(lookup.PROXY_SUBSYSTEM_PREFIX) or subsystem in (
            lookup.NODES_SUBSYSTEM, lookup.MODE_SUBSYSTEM
        )

    def shell_requested(self) -> bool:
        return True  # accepted only to explain what this server is for

    def exec_requested(self, command: str) -> bool:
        return True

    def session_started(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            if self.subsystem == lookup.MODE_SUBSYSTEM:
                self.chan.write((await self.svc.recording_mode()).encode() + b"\n")
                self.chan.exit(0)
            elif self.subsystem == lookup.NODES_SUBSYSTEM:
                nodes = await self.svc.visible_nodes(self.owner.teleport_user)
                self.chan.write(json.dumps(nodes).encode() + b"\n")
                self.chan.exit(0)
            elif self.subsystem:
                req = lookup.parse_proxy_subsystem(self.subsystem)
                if not req.host:
                    self._take_gateway()
                await self._connect(req)
            else:
                raise BadParameter(
                    "this is a Teleport proxy: it runs no shells or commands; reach a node "
                    "with 'tsh ssh NODE' or 'ssh -p 3023 USER@PROXY -s proxy:NODE:3022'"
                )
        except (TimeoutError, TeleportError, OSError) as exc:
            self._fail(str(exc) or exc.__class__.__name__)
        except Exception as exc:  # the client must always learn why its channel closed
            log.exception("proxy subsystem %r failed", self.subsystem)
            self._fail(f"internal proxy error: {exc}")

    def _take_gateway(self) -> None:
        """Count a `proxy:@cluster` stream against its user: each holds a connection to auth,
        whose per-address limit the proxy's own calls share."""
        user = self.owner.teleport_user
        held = self.svc.gateways.get(user, 0)
        if held >= defaults.PROXY_MAX_AUTH_GATEWAYS_PER_USER:
            raise LimitExceeded(
                f"too many streams to the auth service for user {user!r} (at most "
                f"{defaults.PROXY_MAX_AUTH_GATEWAYS_PER_USER} at once): close some tsh commands"
            )
        self.svc.gateways[user] = held + 1
        self.gateway_user = user

    def _release_gateway(self) -> None:
        user, self.gateway_user = self.gateway_user, None
        if user is not None:
            left = self.svc.gateways.get(user, 1) - 1
            if left > 0:
                self.svc.gateways[user] = left
            else:
                self.svc.gateways.pop(user, None)

    def _fail(self, message: str) -> None:
        if self.closed:
            return
        log.info("proxy request %r refused: %s", self.subsystem, message)
        try:
            self.chan.write_stderr(f"ERROR: {message}\n".encode())
            self.chan.exit(1)
        except (OSError, asyncssh.Error, BrokenPipeError):
            pass

    async def _connect(self, req: lookup.ProxyRequest) -> None:
        target = await self.svc.resolve(req, self.owner.teleport_user)
        if recmode.terminates(await self.svc.recording_mode(), req.host):
            self.forwarder = Forwarder(self.svc, self, req, target)
            await self.forwarder.serve()
            return
        node = target.node
        loop = asyncio.get_running_loop()
        proto: _NodeProtocol | None = None
        error: BaseException | None = None
        # Dial the checked addresses themselves, never the name again: a second lookup could
        # answer differently (DNS rebinding) and land on an address the policy never saw.
        if target.tunnel is not None:
            peer = self.conn.get_extra_info("peername") or ("", 0)
            tsock = await target.dial_tunnel(self.svc, (str(peer[0]), int(peer[1])))
            try:
                _, proto = await loop.create_connection(lambda: _NodeProtocol(self), sock=tsock)
            except OSError as exc:
                tsock.close()
                error = exc
        for addr in target.addrs:
            try:
                _, proto = await asyncio.wait_for(
                    loop.create_connection(lambda: _NodeProtocol(self), addr, target.port),
                    DIAL_TIMEOUT,
                )
                break
            except (TimeoutError, OSError) as exc:
                error = exc
        if proto is None:
            what = f"node {req.host!r} at {target.shown}" if node else target.shown
            reason = (
                error.strerror if isinstance(error, OSError) and error.strerror
                else (str(error) or "timed out")
            )
            raise NotFound(f"cannot connect to {what}: {reason}")
        if self.closed:
            assert proto.transport is not None
            proto.transport.close()
            return
        self.node = proto
        assert proto.transport is not None
        sock = proto.transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            _tune_relay_socket(sock)
        peer = self.conn.get_extra_info("peername") or ("", 0)
        client_addr = _fmt_addr(str(peer[0]), int(peer[1]))
        if node is not None:
            header = self.svc.proxy_header(client_addr, target.shown)
            if header:
                proto.transport.write(header)
        log.info(
            "proxying %s (%s) to %s%s", client_addr, self.conn.get_extra_info("username"), target.shown,
            f" (node {node['metadata']['name']})" if node else "",
        )
        self.flush_pending(proto.transport)

    def flush_pending(self, transport: asyncio.WriteTransport) -> None:
        """Hand what the client sent before the node was connected to the node's transport, and
        read the channel again if the pending bound had paused it."""
        if self.pending_paused:
            # before the write below: it may pause the channel again (node backpressure)
            self.pending_paused = False
            self.chan.resume_reading()
        if self.pending:
            transport.write(b"".join(self.pending))
            self.pending.clear()
            self.pending_size = 0
        if self.pending_eof:
            transport.write_eof()

    # channel -> node ----------------------------------------------------------------------
    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        node = self.node
        if self.inner is not None:
            self.inner.data_received(data)
        elif node is not None and node.transport is not None:
            node.transport.write(data)
        else:
            # the client speaks first, before the node is dialled; past a bound, stop reading
            # the channel (the client's window then fills) instead of buffering without limit
            self.pending.append(data)
            self.pending_size += len(data)
            if self.pending_size >= defaults.RELAY_PENDING_LIMIT and not self.pending_paused:
                self.pending_paused = True
                self.chan.pause_reading()

    def eof_received(self) -> bool:
        node = self.node
        if self.inner is not None:
            return False  # SSH never half-closes: the client is done
        if node is not None and node.transport is not None:
            if node.transport.can_write_eof():
                node.transport.write_eof()
        else:
            self.pending_eof = True
        return True

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()
        elif self.node is not None and self.node.transport is not None:
            self.node.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()
        elif self.node is not None and self.node.transport is not None:
            self.node.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.owner.open_sessions -= 1
        self.closed = True
        self._release_gateway()
        if self.inner is not None:
            self.inner.connection_lost(exc)
        if self.forwarder is not None:
            self.forwarder.close()
        if self.node is not None and self.node.transport is not None:
            self.node.transport.close()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def node_closed(self, exc: Exception | None) -> None:
        if self.closed:
            return
        try:
            if exc is not None:
                self.chan.write_stderr(f"ERROR: connection to the node was lost: {exc}\n".encode())
                self.chan.exit(1)
            else:
                self.chan.exit(0)
        except (OSError, asyncssh.Error):
            pass
