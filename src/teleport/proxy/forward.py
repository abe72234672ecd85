"""Recording proxy mode: the proxy terminates the user's SSH connection and runs it to the node.

For a `proxy:host:port` channel the proxy runs an asyncssh *server* connection over the channel
itself (asyncssh's `connect_reverse` over a tunnel object), presenting a short-lived host
certificate that auth signed for the name the client asked for. Once the client authenticated
(the same user certificate it showed the proxy), the proxy opens its own SSH connection to the
node, logging in with the user's certificate through the agent the client forwarded (to the
proxy connection, as tsh and `ssh -A -s proxy:...` do, or to this inner connection, as
`ssh -A node` through a ProxyCommand does), and relays every channel: sessions (exec, shell,
sftp) and direct-tcpip port forwards. Interactive sessions are recorded here, as a node records
them (node/recorder.py), and the proxy emits the session's audit events with its own host id.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import TYPE_CHECKING, Any, cast

import asyncssh
from asyncssh.forward import SSHForwarder

from teleport import defaults, sshalgs
from teleport.ca import sshcert
from teleport.errors import AccessDenied, BadParameter, NotFound, TeleportError
from teleport.events import schema
from teleport.node.certcheck import cert_line_from_wire
from teleport.proxy import lookup, recmode
from teleport.proxy.fwdsession import ForwardSession
from teleport.service.cachedata import CacheData, labels_of

if TYPE_CHECKING:
    from teleport.proxy.recorder import ProxyRecorder
    from teleport.proxy.sshconn import ProxySession
    from teleport.proxy.sshproxy import DialTarget, ProxySSHService

log = logging.getLogger("teleport.proxy.forward")

DIAL_TIMEOUT = 15.0


class ChannelTunnel:
    """An asyncssh `tunnel=` object that runs the new connection over the outer proxy channel
    (the client's `proxy:host:port` session): no socket, no copy."""

    def __init__(self, outer: ProxySession) -> None:
        self.outer = outer

    async def create_connection(self, session_factory: Any, remote_host: str, remote_port: int) -> tuple[Any, Any]:
        """Attach a new connection protocol to the outer channel; returns (channel, protocol)."""
        conn = session_factory()
        self.outer.attach_inner(conn)
        return self.outer.chan, conn

    def close(self) -> None:
        """The outer channel closes with its own connection."""

    async def wait_closed(self) -> None:
        """See close()."""


class Forwarder:
    """One terminated client connection (one `proxy:host:port` channel) and its node connection."""

    def __init__(self, svc: ProxySSHService, outer: ProxySession, req: lookup.ProxyRequest,
                 target: DialTarget) -> None:
        self.svc = svc
        self.outer = outer
        self.req = req
        self.target = target
        self.user = outer.owner.teleport_user
        self.inner: asyncssh.SSHServerConnection | None = None
        self.login = ""
        self.node: asyncssh.SSHClientConnection | None = None
        self._node_lock = asyncio.Lock()
        self._watch: asyncio.Task[None] | None = None
        # the roles' client_idle_timeout and disconnect_expired_cert, enforced here: an OpenSSH
        # node knows nothing of them (a teleport node enforces them too, on its own connection)
        self.cert_valid_before = 2**64 - 1
        self.last_input = time.monotonic()
        self.sessions: set[ForwardSession] = set()
        self._guard: asyncio.Task[None] | None = None
        self.options: dict[str, Any] = {}  # auth's access answer for this user and login
        self.closing = False  # the client went away (the node connection may outlive it)
        peer = outer.conn.get_extra_info("peername") or ("", 0)
        local = outer.conn.get_extra_info("sockname") or ("", 0)
        self.addr_remote = _fmt(str(peer[0]), int(peer[1]))
        self.addr_local = _fmt(str(local[0]), int(local[1]))

    @property
    def rec(self) -> ProxyRecorder:
        return self.svc.recorder

    def fields(self) -> dict[str, Any]:
        """Audit fields common to this connection's events."""
        node = self.target.node
        hostname = (node or {}).get("spec", {}).get("hostname") if node else None
        return {"user": self.user, "login": self.login, "addr_local": self.addr_local,
                "addr_remote": self.addr_remote, "server_hostname": hostname or self.req.host,
                "server_addr": self.target.shown}

    async def serve(self) -> None:
        """Run the SSH server for the client over the outer channel until it authenticated."""
        key, cert = await self.rec.host_key(self.req.host)
        options = await asyncssh.SSHServerConnectionOptions.construct(
            server_host_keys=[(key, cert)],
            server_factory=lambda: _InnerServer(self),
            encoding=None,
            password_auth=False,
            kbdint_auth=False,
            public_key_auth=True,
            allow_pty=True,
            line_editor=False,
            agent_forwarding=True,  # `ssh -A node` through a ProxyCommand lands here
            x11_forwarding=False,
            login_timeout=self.svc.limits.handshake_timeout,
            **sshalgs.connection_options(),
        )
        sshalgs.restrict_server_host_keys(options)
        self.inner = await asyncssh.connect_reverse(tunnel=ChannelTunnel(self.outer), options=options)
        log.info("recording proxy: %s (%s) terminated for %s", self.addr_remote, self.user,
                 self.target.shown)

    # the node connection -----------------------------------------------------------------
    def _agent_source(self) -> asyncssh.SSHServerConnection | None:
        """The connection whose client forwarded an agent: the proxy connection first (tsh,
        `ssh -A -s proxy:...`), else the inner one (`ssh -A node` through a ProxyCommand)."""
        for conn in (self.outer.conn, self.inner):
            if conn is not None and conn.get_agent_path() is not None:
                return conn
        return None

    async def node_conn(self) -> asyncssh.SSHClientConnection:
        """The SSH connection to the node as the user (opened on first use, then shared)."""
        async with self._node_lock:
            if self.node is None:
                options = self.options = await self._session_options()
                self.node = await self._open_node()
                self._watch = asyncio.ensure_future(self._watch_node(self.node))
                self.enforce(options)
            return self.node

    def enforce(self, options: dict[str, Any]) -> None:
        """Apply the roles' client_idle_timeout and disconnect_expired_cert to this client."""
        idle, expires = recmode.session_limits(options, self.cert_valid_before)
        if self._guard is None and (idle or expires is not None):
            self._guard = asyncio.ensure_future(self._guard_loop(idle, expires))

    async def join_options(self, login: str) -> dict[str, Any]:
        """Auth's answer for this user joining a session of `login` on this connection's host:
        for a registered node the full access check of that login there (as the node checks a
        joiner), for a host outside the registry the options of the user's roles (the login is
        one of the certificate's principals, which is all an OpenSSH node asks)."""
        return await self._session_options(login)

    async def _session_options(self, login: str | None = None) -> dict[str, Any]:
        """Auth's answer for this user and login: for a registered node its full access check,
        for a host outside the registry (an OpenSSH node decides the login itself) the options
        of the user's roles. Fails closed, as a node does. `login`: another than this
        connection's (a session to join)."""
        host_id = str((self.target.node or {}).get("metadata", {}).get("name") or "")
        node = self.target.node or {}

        def decide(data: CacheData) -> dict[str, Any]:
            if not host_id:
                return data.session_options(self.user)
            return data.check_ssh_access(self.user, login or self.login, labels_of(node))

        try:
            return await self.svc.from_auth_or_cache(
                lambda: self.svc.auth.check_access(self.user, login or self.login, host_id), decide)
        except TeleportError:
            raise
        except Exception as exc:
            raise AccessDenied(f"access check for {self.user!r} failed, refusing: {exc}") from None

    def touch(self) -> None:
        """The client typed something: restart the idle clock."""
        self.last_input = time.monotonic()

    async def _guard_loop(self, idle: float, expires: float | None) -> None:
        """Disconnect the client when idle too long or when its certificate expired."""
        while True:
            reason = recmode.disconnect_reason(idle, time.monotonic() - self.last_input, expires, time.time())
            if reason is not None:
                self._disconnect(reason)
                return
            idle_left = self.last_input + idle - time.monotonic() if idle else float("inf")
            cert_left = expires - time.time() if expires is not None else float("inf")
            await asyncio.sleep(max(min(idle_left, cert_left, 60.0), 0) + 0.01)

    def _disconnect(self, message: str) -> None:
        log.info("recording proxy: closing the connection of %s: %s", self.user, message)
        for s in list(self.sessions):
            try:
                s.chan.write_stderr(f"\r\n{message}\r\n".encode())
            except (OSError, asyncssh.Error, BrokenPipeError):
                pass
        inner = self.inner
        if inner is not None:
            # let the message reach the client before the disconnect
            asyncio.get_running_loop().call_later(
                0.2, inner.disconnect, asyncssh.DISC_BY_APPLICATION, message)

    async def _open_node(self) -> asyncssh.SSHClientConnection:
        source = self._agent_source()
        if source is None:
            raise AccessDenied(recmode.NO_AGENT)
        agent = await asyncssh.connect_agent(source)
        try:
            keys = await agent.get_keys()
            chosen = self._pick_key(list(keys))
            sock = await self._dial()
            if self.target.node is not None:
                # signed "this proxy records": the node logs nothing of it a second time
                header = self.svc.proxy_header(self.addr_remote, self.target.shown, recording_proxy=True)
                if header:
                    await asyncio.get_running_loop().sock_sendall(sock, header)
            options: dict[str, Any] = {
                "username": self.login,
                "client_keys": [chosen],
                "agent_path": None,
                "config": None,
                "preferred_auth": "publickey",
                "connect_timeout": DIAL_TIMEOUT,
                "keepalive_interval": defaults.CLIENT_KEEPALIVE_INTERVAL,
                "keepalive_count_max": defaults.CLIENT_KEEPALIVE_COUNT_MAX,
                **sshalgs.client_options(),
            }
            if self.svc.cfg.proxy_service.proxy_checks_host_keys:
                options["known_hosts"] = ([], await self.svc.host_ca_keys(), [])
                options["host_key_alias"] = self.req.host
            else:
                options["known_hosts"] = None
            inner_agent = self.inner.get_agent_path() if self.inner is not None else None
            if inner_agent:
                # the user asked to forward the agent to the node itself (ssh -A node)
                options["agent_forwarding"] = inner_agent
            try:
                return await asyncssh.connect(sock=sock, **options)
            except asyncssh.HostKeyNotVerifiable as exc:
                raise AccessDenied(
                    f"recording proxy mode: node {self.req.host!r} ({self.target.shown}) has no "
                    f"host certificate of this cluster naming it ({exc.reason}); give it one "
                    "('tctl auth sign --host=NAME'), or set proxy_service.proxy_checks_host_keys: "
                    "no to accept plain host keys"
                ) from None
            except asyncssh.PermissionDenied:
                raise AccessDenied(
                    f"node {self.req.host!r} refused login {self.login!r} with your certificate "
                    "(is the login allowed by your roles on that node?)"
                ) from None
            except (OSError, asyncssh.Error) as exc:
                raise NotFound(f"cannot connect to node {self.req.host!r} at "
                               f"{self.target.shown}: {exc}") from None
        finally:
            agent.close()

    def _pick_key(self, keys: list[Any]) -> Any:
        """The agent key whose certificate speaks for this user (signed by the user CA)."""
        ca = self.svc.user_ca_lines()
        offered = []
        for i, kp in enumerate(keys):
            line = cert_line_from_wire(bytes(kp.public_data))
            if line is None:
                continue
            try:
                info = sshcert.verify_cert_signature(line, ca)
            except (AccessDenied, BadParameter):
                continue
            offered.append(recmode.AgentCert(i, info))
        pick = recmode.pick_agent_cert(offered, self.user, self.login, time.time())
        if pick is None:
            raise AccessDenied(recmode.no_certificate(self.user, self.login))
        return keys[pick.index]

    async def _dial(self) -> socket.socket:
        """A TCP connection to one of the target's checked addresses (never the name again)."""
        loop = asyncio.get_running_loop()
        error: BaseException | None = None
        if self.target.tunnel is not None:  # a node behind a firewall: through its reverse tunnel
            peer = self.outer.conn.get_extra_info("peername") or ("", 0)
            return await self.target.dial_tunnel(self.svc, (str(peer[0]), int(peer[1])))
        for addr in self.target.addrs:
            family = socket.AF_INET6 if ":" in addr else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(sock, (addr, self.target.port)), DIAL_TIMEOUT)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except (TimeoutError, OSError) as exc:
                sock.close()
                error = exc
        reason = error.strerror if isinstance(error, OSError) and error.strerror else "timed out"
        raise NotFound(f"cannot connect to {self.req.host!r} at {self.target.shown}: {reason}")

    async def remote_forward(self, listen_host: str, listen_port: int) -> asyncssh.SSHListener | bool:
        """`ssh -R`: ask the node to listen for the client, when the user's roles permit port
        forwarding, and relay each connection it accepts to the client as a forwarded-tcpip
        channel. False (the client's request fails) on any refusal: asyncssh answers the
        client's tcpip-forward request only when this returns, so it must never raise."""
        try:
            node = await self.node_conn()
            if not self.options.get("permit_port_forwarding"):
                log.info("recording proxy: remote forwarding of %s:%d refused for %s: not "
                         "permitted by the roles' port_forwarding", listen_host, listen_port, self.user)
                return False
            bound = [listen_port]

            async def accept(orig_host: str, orig_port: int) -> Any:
                inner = self.inner
                if inner is None or self.closing:
                    raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "the client is gone")
                # as asyncssh's forward_tunneled_connection does for -L, the other way round
                try:
                    _, peer = await inner.create_connection(
                        cast(Any, SSHForwarder), listen_host, bound[0], orig_host, orig_port)
                except asyncssh.ChannelOpenError as exc:
                    log.info("recording proxy: the client of %s refused a connection forwarded "
                             "from %s:%d: %s", self.user, listen_host, bound[0], exc.reason)
                    raise
                return SSHForwarder(cast(SSHForwarder, peer))

            listener = await node.create_server(accept, listen_host, listen_port)
        except (TeleportError, asyncssh.Error, asyncssh.ChannelListenError, OSError) as exc:
            log.info("recording proxy: remote forwarding of %s:%d for %s failed: %s",
                     listen_host, listen_port, self.user, exc)
            return False
        except Exception:
            log.exception("recording proxy: remote forwarding failed")
            return False
        bound[0] = listener.get_port()
        self.rec.emit(schema.PORT_FORWARD, addr=f"{listen_host}:{bound[0]}", **self.fields())
        return listener

    async def _watch_node(self, node: asyncssh.SSHClientConnection) -> None:
        """The node went away (or disconnected us, e.g. idle timeout): end the client's too."""
        await node.wait_closed()
        if self.inner is not None:
            self.inner.disconnect(asyncssh.DISC_BY_APPLICATION, "the connection to the node closed")

    def close(self) -> None:
        """The client is gone: drop the node connection, unless parties that joined one of its
        sessions still use it (then the end of that session closes it: fwdlive.py)."""
        self.closing = True
        if any(live.owner.fwd is self and live.has_joiners() for live in self.rec.live.values()):
            return
        if self.node is not None:
            self.node.close()
        if self._watch is not None:
            self._watch.cancel()
        if self._guard is not None:
            self._guard.cancel()


class _InnerServer(asyncssh.SSHServer):
    """The SSH server the client talks to inside the proxy channel: the user's certificate again
    (the same Teleport user as on the proxy connection), then channels relayed to the node."""

    def __init__(self, fwd: Forwarder) -> None:
        self.fwd = fwd

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        original = conn.validate_public_key
        fwd = self.fwd

        async def validate_public_key(username: str, key_data: bytes, msg: bytes, signature: bytes) -> bool:
            line = cert_line_from_wire(key_data)
            if line is None:
                return False
            try:
                info = sshcert.parse_cert(line)
            except BadParameter:
                return False
            if not info.principals:
                return False  # as on the proxy: a Teleport certificate names its logins
            if info.key_id != fwd.user:
                log.warning("%s", recmode.user_mismatch(fwd.user, info.key_id))
                return False
            ok = await original(username, key_data, msg, signature)
            if ok and msg:
                fwd.login = username
                fwd.cert_valid_before = info.valid_before
            return bool(ok)

        conn.validate_public_key = validate_public_key  # type: ignore[method-assign]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fwd.close()

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False  # certificates only

    async def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return key in await self.fwd.svc.user_ca_keys()

    def session_requested(self) -> ForwardSession:
        return ForwardSession(self.fwd)

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> Any:
        fwd = self.fwd

        async def forward() -> Any:
            try:
                node = await fwd.node_conn()
            except TeleportError as exc:
                raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, str(exc)) from None
            assert fwd.inner is not None
            # the node decides (role port_forwarding, or the certificate's permit-port-forwarding)
            forwarder = await fwd.inner.forward_tunneled_connection(node, dest_host, dest_port)
            fwd.rec.emit(schema.PORT_FORWARD, addr=f"{dest_host}:{dest_port}", **fwd.fields())
            return forwarder

        return forward()

    def server_requested(self, listen_host: str, listen_port: int) -> Any:
        return self.fwd.remote_forward(listen_host, listen_port)

    def unix_connection_requested(self, dest_path: str) -> bool:
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        return False


def _fmt(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
