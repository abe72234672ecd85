"""The proxy's SSH connections (3023), one per client: certificate-only authentication, then the
`proxy:host:port[@cluster]` subsystem relayed to the node (or, in recording proxy mode, handed to
forward.py).

The relay is callback based (asyncio protocols on both sides, no per-chunk coroutines) and uses
the channel's flow control in both directions. The service these connections belong to (routing,
caches, listeners) is sshproxy.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from typing import TYPE_CHECKING, Any

import asyncssh

from teleport import defaults
from teleport.ca.sshcert import CertInfo, parse_cert
from teleport.errors import BadParameter, LimitExceeded, NotFound, TeleportError
from teleport.limits import source_of
from teleport.proxy import lookup, recmode
from teleport.proxy.forward import Forwarder

if TYPE_CHECKING:
    from teleport.proxy.sshproxy import ProxySSHService

log = logging.getLogger("teleport.proxy.ssh")

DIAL_TIMEOUT = 15.0
# Bigger channel windows keep a single TCP stream busy on fast links (the relay is the hot path).
CHANNEL_WINDOW = 8 * 1024 * 1024


def fmt_addr(host: str, port: int) -> str:
    """host:port, with IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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


class ProxyServer(asyncssh.SSHServer):
    """Per connection: certificate-only authentication, then sessions."""

    def __init__(self, svc: ProxySSHService) -> None:
        self.svc = svc
        self.conn: asyncssh.SSHServerConnection | None = None
        self.teleport_user = ""  # the certificate's key id, once authenticated
        self.teleport_cert = ""  # the certificate itself (OpenSSH line), passed to leaf clusters
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
                from teleport.node.certcheck import cert_line_from_wire

                self.teleport_cert = cert_line_from_wire(key_data) or ""
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

    def session_requested(self) -> ProxySession:
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
        return ProxySession(self.svc, self.conn, self)


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

    def __init__(self, session: ProxySession) -> None:
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


class ProxySession(asyncssh.SSHServerSession[bytes]):
    """One session channel: the proxy subsystem (relay) or the node list subsystem."""

    def __init__(
        self, svc: ProxySSHService, conn: asyncssh.SSHServerConnection, owner: ProxyServer
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
        return subsystem.startswith((lookup.PROXY_SUBSYSTEM_PREFIX, lookup.NODES_SUBSYSTEM + "@",
                                     lookup.RECORDING_SUBSYSTEM + "@")) or subsystem in (
            lookup.NODES_SUBSYSTEM, lookup.MODE_SUBSYSTEM, lookup.CLUSTERS_SUBSYSTEM
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
            elif self.subsystem == lookup.CLUSTERS_SUBSYSTEM or self.subsystem.startswith(
                    (lookup.NODES_SUBSYSTEM + "@", lookup.RECORDING_SUBSYSTEM + "@")):
                from teleport.trustedcluster.subsystems import serve_cluster_subsystem

                await serve_cluster_subsystem(self.svc, self.owner, self.chan, self.subsystem)
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
        target = await self.svc.resolve(req, self.owner.teleport_user, self.owner.teleport_cert)
        if target.cluster and recmode.terminates(await self.svc.recording_mode(), req.host):
            raise NotFound(f"cluster {target.cluster!r}: this proxy records sessions itself (recording "
                           "proxy mode), which does not reach trusted clusters")
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
        if target.tunnel is not None or target.cluster:
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
        client_addr = fmt_addr(str(peer[0]), int(peer[1]))
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
