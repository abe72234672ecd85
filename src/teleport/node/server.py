"""The node's SSH listener: reads an optional proxy header, then hands the socket to asyncssh."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncssh

from teleport import defaults, sshalgs
from teleport.ca.sshcert import CertInfo
from teleport.errors import AccessDenied, LimitExceeded
from teleport.events import schema
from teleport.limits import check_sessions, source_of
from teleport.node import proxyheader
from teleport.node.certcheck import CertCaptureConnection
from teleport.node.party import SessionServices
from teleport.node.sessions import NodeSession, SessionContext, login_user
from teleport.service import listeners
from teleport.service.httplistener import ListenerLimits
from teleport.service.sshgate import SSHGate

log = logging.getLogger(__name__)

HEADER_WAIT = 2.0  # a client that says nothing for this long is treated as a direct client
HEADER_TIMEOUT = 10.0  # a proxy header must be complete within this time


def ca_blobs(ca_lines: list[str]) -> set[bytes]:
    """The SSH wire blobs of OpenSSH public key lines (to compare with asyncssh keys)."""
    out = set()
    for line in ca_lines:
        parts = line.split()
        if len(parts) >= 2:
            try:
                out.add(base64.b64decode(parts[1]))
            except ValueError:
                continue
    return out


def split_addr(addr: str) -> tuple[str, int]:
    """'ip:port' or '[v6]:port' -> (ip, port)."""
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


class NodeSSHServer(asyncssh.SSHServer):
    """The asyncssh owner of one connection: certificates only, sessions and allowed forwarding."""

    def __init__(self, node: NodeServer) -> None:
        self.node = node
        self.services = node.services  # set per connection in connection_made
        self.conn: CertCaptureConnection | None = None
        self.channels: set[NodeSession] = set()
        self.last_input = time.monotonic()
        self._guard: asyncio.Task[None] | None = None
        self.open_sessions = 0  # session channels open on this connection (max_sessions)
        self._session_waiters: set[asyncio.Future[None]] = set()

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        assert isinstance(conn, CertCaptureConnection)
        self.conn = conn
        self.node.gate.opened(conn, source_of(conn.teleport_client_addr))
        # a recording proxy that said (signed) it records this connection logs its sessions,
        # port forwards and recordings: the node keeps quiet, so each event is stored once
        if conn.recorded_by_proxy:
            self.services = self.node.proxy_recorded_services()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._guard is not None:
            self._guard.cancel()
        if self.conn is not None:
            self.node.gate.closed(self.conn)
            self.node._conns.discard(self.conn)  # or every connection ever made stays in memory

    def auth_completed(self) -> None:
        conn = self.conn
        if conn is not None and conn.teleport_cert is not None:
            limit = int(conn.teleport_access.get("max_connections") or 0)
            self.node.gate.authenticated(conn, conn.teleport_cert.key_id, limit)

    def _session_closed(self, waiter: asyncio.Future[None]) -> None:
        self._session_waiters.discard(waiter)
        self.open_sessions -= 1

    def touch(self) -> None:
        """The client typed something: restart the idle clock."""
        self.last_input = time.monotonic()

    def _start_guard(self) -> None:
        if self._guard is None:
            self._guard = asyncio.ensure_future(self._guard_loop())

    async def _guard_loop(self) -> None:
        """Enforce the roles' client_idle_timeout and disconnect_expired_cert on this connection."""
        conn = self.conn
        assert conn is not None and conn.teleport_cert is not None
        idle = float(conn.teleport_access.get("client_idle_timeout") or 0)
        expires: float | None = None
        if conn.teleport_access.get("disconnect_expired_cert") and conn.teleport_cert.valid_before < 2**40:
            expires = float(conn.teleport_cert.valid_before)
        while idle or expires:
            idle_left = self.last_input + idle - time.monotonic() if idle else float("inf")
            cert_left = expires - time.time() if expires else float("inf")
            if cert_left <= 0:
                self._disconnect("teleport: your certificate has expired; log in again (tsh login)")
                return
            if idle_left <= 0:
                self._disconnect(f"teleport: disconnecting: client idle for more than {idle:g}s "
                                 "(client_idle_timeout of your role)")
                return
            await asyncio.sleep(min(idle_left, cert_left, 60.0) + 0.01)

    def _disconnect(self, message: str) -> None:
        conn = self.conn
        assert conn is not None
        log.info("closing the connection of %s: %s", conn.teleport_login, message)
        for ch in list(self.channels):
            ch.notify(message)
        # Let the message reach the client before the disconnect.
        asyncio.get_running_loop().call_later(
            0.2, conn.disconnect, asyncssh.DISC_BY_APPLICATION, message
        )

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False  # plain keys never; certificates go through validate_ca_key

    def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return key.public_data in ca_blobs(self.node.user_ca_keys())

    def session_requested(self) -> Any:
        conn = self.conn
        assert conn is not None and conn.teleport_cert is not None
        peer = split_addr(conn.teleport_client_addr)
        local = conn.get_extra_info("sockname") or ("", 0)
        ctx = SessionContext(
            login=conn.teleport_login,
            teleport_user=conn.teleport_cert.key_id,
            cluster_name=self.node.cluster_name,
            host_id=self.node.host_id,
            client_addr=peer,
            local_addr=(str(local[0]), int(local[1])),
            agent_path=conn.get_agent_path,  # read late: the agent request precedes shell/exec
            services=self.services,
            touch=self.touch,
            channels=self.channels,
            recorded_by_proxy=conn.recorded_by_proxy,
        )
        try:
            check_sessions(self.open_sessions, int(conn.teleport_access.get("max_sessions") or 0))
        except LimitExceeded as exc:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, exc.message) from None
        self._start_guard()
        chan = conn.create_server_channel(encoding=None)
        session = NodeSession(ctx)
        self.open_sessions += 1
        waiter = asyncio.ensure_future(chan.wait_closed())
        self._session_waiters.add(waiter)  # the loop holds tasks weakly
        waiter.add_done_callback(self._session_closed)
        return chan, session

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        conn = self.conn
        assert conn is not None and conn.teleport_cert is not None
        if not conn.teleport_access.get("permit_port_forwarding"):
            log.warning(
                "port forwarding to %s:%d refused for %s: not permitted by role",
                dest_host, dest_port, conn.teleport_cert.key_id,
            )
            return False
        # asyncssh has already checked the certificate's permit-port-forwarding.
        log.info("port forwarding for %s to %s:%d", conn.teleport_cert.key_id, dest_host, dest_port)
        self._start_guard()
        local = conn.get_extra_info("sockname") or ("", 0)
        self.services.emit(
            schema.PORT_FORWARD, user=conn.teleport_cert.key_id, login=conn.teleport_login,
            addr=f"{dest_host}:{dest_port}", addr_remote=conn.teleport_client_addr,
            addr_local=f"{local[0]}:{local[1]}",
        )
        return True

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        """Remote forwarding (ssh -R): the node listens for the client, when the role's
        port_forwarding allows it (as for -L), on an unprivileged port unless the login is root
        (OpenSSH's rule)."""
        conn = self.conn
        assert conn is not None and conn.teleport_cert is not None
        who = conn.teleport_cert.key_id
        if not conn.teleport_access.get("permit_port_forwarding"):
            log.warning("remote forwarding of %s:%d refused for %s: not permitted by role",
                        listen_host, listen_port, who)
            return False
        if 0 < listen_port < 1024 and conn.teleport_login != "root":
            log.warning("remote forwarding of privileged port %d refused for login %s",
                        listen_port, conn.teleport_login)
            return False
        log.info("remote forwarding for %s on %s:%d", who, listen_host, listen_port)
        self._start_guard()
        local = conn.get_extra_info("sockname") or ("", 0)
        self.services.emit(
            schema.PORT_FORWARD, user=who, login=conn.teleport_login,
            addr=f"{listen_host}:{listen_port}", addr_remote=conn.teleport_client_addr,
            addr_local=f"{local[0]}:{local[1]}",
        )
        return True

    def unix_connection_requested(self, dest_path: str) -> bool:
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        return False


class NodeServer:
    """Accepts TCP connections and runs the SSH server on them."""

    def __init__(
        self,
        host_key: asyncssh.SSHKey,
        host_cert: asyncssh.SSHCertificate,
        cluster_name: str,
        host_id: str,
        user_ca_keys: Callable[[], list[str]],
        host_ca_keys: Callable[[], list[str]],
        check_access: Callable[[str, str], Awaitable[dict[str, Any]]],
        services: SessionServices | None = None,
        limits: ListenerLimits | None = None,
    ) -> None:
        self.host_key = host_key
        self.host_cert = host_cert
        self.cluster_name = cluster_name
        self.host_id = host_id
        self.user_ca_keys = user_ca_keys
        self.host_ca_keys = host_ca_keys
        self.check_access = check_access  # (teleport user, login) -> access result
        # (certificate line, login) -> access result for a user of a trusted (root) cluster, or
        # None when the certificate is of this cluster's own user CA (set by the node service)
        self.remote_access: Callable[[str, str], Awaitable[dict[str, Any] | None]] | None = None
        self.services = services or SessionServices(server_id=host_id, check_access=check_access)
        self._options: asyncssh.SSHServerConnectionOptions | None = None
        self._sock: socket.socket | None = None
        self._accept_task: asyncio.Task[None] | None = None
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self._conns: set[CertCaptureConnection] = set()
        self._quiet: SessionServices | None = None
        self.limits = limits or ListenerLimits()
        self.gate = SSHGate(self.limits, "this node")

    def proxy_recorded_services(self) -> SessionServices:
        """The session services for connections a recording proxy records and audits: no
        events, no recording, no entry in auth's session registry (the proxy registers the
        session; joining goes through it), the same access checks. Their sessions are joinable
        only through the proxy; they may join a session the node runs (and audits) itself."""
        if self._quiet is None:
            s = self.services
            self._quiet = SessionServices(
                server_id=s.server_id, server_hostname=s.server_hostname, server_addr=s.server_addr,
                check_access=s.check_access, joinable=s.active,
            )
        self._quiet.server_addr = self.services.server_addr
        return self._quiet

    async def prepare(self) -> None:
        """Build the asyncssh options (listen() does it; a tunnelled node calls it alone and hands
        connections in with handle_socket)."""
        if self._options is not None:
            return
        self._options = await asyncssh.SSHServerConnectionOptions.construct(
            server_host_keys=[(self.host_key, self.host_cert)],
            server_factory=lambda: NodeSSHServer(self),
            password_auth=False,
            kbdint_auth=False,
            public_key_auth=True,
            allow_pty=True,
            line_editor=False,
            agent_forwarding=True,
            x11_forwarding=False,
            login_timeout=self.limits.handshake_timeout,
            keepalive_interval=defaults.SSH_KEEPALIVE_INTERVAL,
            keepalive_count_max=defaults.SSH_KEEPALIVE_COUNT_MAX,
            **sshalgs.connection_options(),
        )
        sshalgs.restrict_server_host_keys(self._options)

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """Bind and start accepting; returns the bound address."""
        await self.prepare()
        try:
            sock = listeners.listen_socket(host, port)  # inherited across a SIGHUP restart
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port} for the node SSH service: {exc.strerror}") from None
        self._sock = sock
        self._accept_task = asyncio.create_task(self._accept_loop())
        bound = sock.getsockname()
        return str(bound[0]), int(bound[1])

    def reload_host_key(self, host_key: asyncssh.SSHKey, host_cert: asyncssh.SSHCertificate) -> None:
        """Present a new host key and certificate (CA rotation) to connections accepted from now on."""
        self.host_key, self.host_cert = host_key, host_cert
        if self._options is not None:
            self._options.update(server_host_keys=[(host_key, host_cert)])
            sshalgs.restrict_server_host_keys(self._options)

    async def _accept_loop(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        while True:
            try:
                csock, _ = await loop.sock_accept(self._sock)
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            task = asyncio.create_task(self._handle(csock))
            self._conn_tasks.add(task)
            task.add_done_callback(self._conn_tasks.discard)

    async def _handle(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = sock.getpeername()
        client_addr = f"{peer[0]}:{peer[1]}" if sock.family == socket.AF_INET else f"[{peer[0]}]:{peer[1]}"
        await self.handle_socket(sock, client_addr)

    async def handle_socket(self, sock: socket.socket, client_addr: str) -> None:
        """Serve one connection on `sock` (accepted here, or a reverse tunnel channel's socket):
        an optional signed proxy header, then SSH. `client_addr` is the peer the socket came
        from; a valid proxy header replaces it with the user's real address."""
        recorded = False
        try:
            line = await asyncio.wait_for(read_proxy_header(sock), HEADER_TIMEOUT)
            if line is not None:
                fields = proxyheader.parse_proxy_header(line, self.host_ca_keys())
                log.debug("connection from %s via proxy %s", fields["client_addr"], client_addr)
                client_addr = fields["client_addr"]
                recorded = bool(fields[proxyheader.RECORDING_PROXY])
        except (AccessDenied, OSError, TimeoutError, ConnectionError) as exc:
            log.warning("closing connection from %s: bad proxy header: %s", client_addr, exc)
            sock.close()
            return
        loop = asyncio.get_running_loop()
        assert self._options is not None
        options = self._options

        def factory() -> CertCaptureConnection:
            conn = CertCaptureConnection(
                loop, options, self._authorize, self.user_ca_keys, client_addr,
                on_failure=lambda user, login, reason: self._auth_failed(user, login, reason, client_addr),
            )
            self._conns.add(conn)
            conn.recorded_by_proxy = recorded
            return conn

        try:
            await loop.connect_accepted_socket(factory, sock)
        except OSError as exc:
            log.warning("connection from %s failed: %s", client_addr, exc)
            sock.close()

    async def _authorize(self, login: str, cert: CertInfo, conn: CertCaptureConnection) -> dict[str, Any]:
        try:
            pw = login_user(login)
        except PermissionError as exc:
            raise AccessDenied(str(exc)) from None
        access = None
        if self.remote_access is not None and conn.teleport_cert_line:
            access = await self.remote_access(conn.teleport_cert_line, login)
        if access is None:
            access = await self.check_access(cert.key_id, login)
        conn.agent_owner = (pw.pw_uid, pw.pw_gid)
        log.info("%s logged in as %s from %s", cert.key_id, login, conn.teleport_client_addr)
        return access

    def _auth_failed(self, user: str, login: str, reason: str, client_addr: str) -> None:
        local = self._sock.getsockname() if self._sock is not None else ("", 0)
        self.services.emit(
            schema.AUTH_ATTEMPT, user=user, login=login, success=False, error=reason,
            addr_remote=client_addr, addr_local=f"{local[0]}:{local[1]}",
        )

    def stop_accepting(self) -> None:
        """Graceful shutdown: accept no new connection; live sessions carry on."""
        if self._accept_task is not None:
            self._accept_task.cancel()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def live_connections(self) -> int:
        return len(self._conns)

    async def close(self) -> None:
        """Stop accepting and drop every connection."""
        if self._accept_task is not None:
            self._accept_task.cancel()
            try:
                await self._accept_task
            except (asyncio.CancelledError, Exception):
                pass
        for t in list(self._conn_tasks):
            t.cancel()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for conn in list(self._conns):
            conn.close()
        self._conns.clear()


async def _wait_readable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_reader(sock.fileno(), ready)
    try:
        await fut
    finally:
        loop.remove_reader(sock.fileno())


async def read_proxy_header(sock: socket.socket) -> bytes | None:
    """Consume a ``Teleport-Proxy ...\\r\\n`` line from a fresh socket, or return None (leaving every
    byte in the socket) when the client starts with anything else. Peeks, so asyncssh later reads
    the SSH banner straight from the kernel: no copy, no relay."""
    prefix = proxyheader.PREFIX
    try:
        await asyncio.wait_for(_wait_readable(sock), HEADER_WAIT)
    except TimeoutError:
        return None  # a client that waits for our banner first cannot be a proxy
    seen = 0
    while True:
        data = sock.recv(proxyheader.MAX_HEADER_LEN, socket.MSG_PEEK)
        if not data:
            raise ConnectionError("client closed the connection before the SSH banner")
        head = data[: len(prefix)]
        if not prefix.startswith(head):
            return None
        end = data.find(b"\n")
        if end >= 0:
            return _recv_exact(sock, end + 1)
        if len(data) >= proxyheader.MAX_HEADER_LEN:
            raise ConnectionError("proxy header too long")
        if len(data) == seen:
            await asyncio.sleep(0.005)  # partial header: readable stays true, so poll briefly
        seen = len(data)
        await _wait_readable(sock)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    # The bytes were already peeked, so they are in the socket buffer: recv cannot block.
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("connection closed inside the proxy header")
        out += chunk
    return bytes(out)
