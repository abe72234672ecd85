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
import uuid
from typing import TYPE_CHECKING, Any

import asyncssh

from teleport import defaults, sshalgs
from teleport.ca import sshcert
from teleport.errors import AccessDenied, BadParameter, NotFound, TeleportError
from teleport.events import schema
from teleport.node.audit import AuditEmitter
from teleport.node.certcheck import cert_line_from_wire
from teleport.node.party import _plain
from teleport.node.recorder import RecordingUploader, SessionRecorder
from teleport.node.sessions import JOIN_ENV, scp_request
from teleport.proxy import lookup, recmode
from teleport.proxy.sftpaudit import SftpAudit
from teleport.service.cachedata import CacheData, labels_of

if TYPE_CHECKING:
    from teleport.proxy.sshconn import ProxySession
    from teleport.proxy.sshproxy import DialTarget, ProxySSHService

log = logging.getLogger("teleport.proxy.forward")

DIAL_TIMEOUT = 15.0
CERT_RENEW_MARGIN = 300.0  # renew a forwarding host certificate this long before it expires


class ProxyRecorder:
    """What the proxy needs to audit and record sessions itself: an event spool shipped to auth
    and a recording uploader, in their own directories (a node in the same process keeps its
    own), plus the forwarding host key and its certificates per host name."""

    def __init__(self, svc: ProxySSHService, data_dir: str) -> None:
        import os

        base = os.path.join(data_dir, "log", "upload", "proxy")
        self.svc = svc
        self.emitter = AuditEmitter(os.path.join(base, "events.spool"), svc.auth.emit_events)
        self.uploader = RecordingUploader(
            os.path.join(base, "sessions"), svc.auth.upload_recording, self.emitter
        )
        self._key: asyncssh.SSHKey | None = None
        self._certs: dict[str, tuple[asyncssh.SSHCertificate, float]] = {}
        self._lock = asyncio.Lock()
        self._bg: set[asyncio.Task[Any]] = set()

    def start(self) -> None:
        """Ship pending events and upload recordings a crashed proxy left behind."""
        self.emitter.start()
        self.uploader.start()

    async def close(self) -> None:
        """Stop the background work (what is left goes at the next start)."""
        await self.uploader.close()
        await self.emitter.close()

    def emit(self, event_type: str, **fields: Any) -> bool:
        """Spool one audit event as this proxy; never breaks a session. Whether it is spooled."""
        try:
            self.emitter.emit(event_type, server_id=self.svc.identity.host_id, **fields)
        except Exception as exc:
            log.error("cannot spool %s audit event: %s", event_type, exc)
            return False
        return True

    def background(self, coro: Any) -> None:
        """Run a best-effort coroutine (uploads) without awaiting it."""
        task = asyncio.ensure_future(coro)
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def host_key(self, principal: str) -> tuple[asyncssh.SSHKey, asyncssh.SSHCertificate]:
        """The proxy's forwarding key and a host certificate naming `principal` (auth signs it
        in recording proxy mode only; cached until shortly before it expires)."""
        async with self._lock:
            if self._key is None:
                self._key = asyncssh.generate_private_key("ssh-ed25519")
            cached = self._certs.get(principal)
            if cached is not None and cached[1] - CERT_RENEW_MARGIN > time.time():
                return self._key, cached[0]
            pub = self._key.export_public_key().decode().strip()
            line = await self.svc.auth.sign_forward_cert(pub, principal)
            cert = asyncssh.import_certificate(line)
            self._certs[principal] = (cert, float(sshcert.parse_cert(line).valid_before))
            return self._key, cert


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
        self.sessions: set[_ForwardSession] = set()
        self._guard: asyncio.Task[None] | None = None
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
                options = await self._session_options()
                self.node = await self._open_node()
                self._watch = asyncio.ensure_future(self._watch_node(self.node))
                idle, expires = recmode.session_limits(options, self.cert_valid_before)
                if idle or expires is not None:
                    self._guard = asyncio.ensure_future(self._guard_loop(idle, expires))
            return self.node

    async def _session_options(self) -> dict[str, Any]:
        """Auth's answer for this user and login: for a registered node its full access check,
        for a host outside the registry (an OpenSSH node decides the login itself) the options
        of the user's roles. Fails closed, as a node does."""
        host_id = str((self.target.node or {}).get("metadata", {}).get("name") or "")
        node = self.target.node or {}

        def decide(data: CacheData) -> dict[str, Any]:
            if not host_id:
                return data.session_options(self.user)
            return data.check_ssh_access(self.user, self.login, labels_of(node))

        try:
            return await self.svc.from_auth_or_cache(
                lambda: self.svc.auth.check_access(self.user, self.login, host_id), decide)
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
                header = self.svc.proxy_header(self.addr_remote, self.target.shown)
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

    async def _watch_node(self, node: asyncssh.SSHClientConnection) -> None:
        """The node went away (or disconnected us, e.g. idle timeout): end the client's too."""
        await node.wait_closed()
        if self.inner is not None:
            self.inner.disconnect(asyncssh.DISC_BY_APPLICATION, "the connection to the node closed")

    def close(self) -> None:
        """The client is gone: drop the node connection."""
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

    def session_requested(self) -> _ForwardSession:
        return _ForwardSession(self.fwd)

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

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False  # remote forwarding through a recording proxy: not supported yet

    def unix_connection_requested(self, dest_path: str) -> bool:
        return False

    def unix_server_requested(self, listen_path: str) -> bool:
        return False


class _NodeSide(asyncssh.SSHClientSession[bytes]):
    """The node's end of one relayed session: output to the client (and the recording)."""

    def __init__(self, session: _ForwardSession) -> None:
        self.session = session

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.session.from_node(data, datatype)

    def eof_received(self) -> bool:
        self.session.node_eof()
        return True

    def pause_writing(self) -> None:
        self.session.chan.pause_reading()

    def resume_writing(self) -> None:
        self.session.chan.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.node_closed(exc)


class _ForwardSession(asyncssh.SSHServerSession[bytes]):
    """One session channel of the client, relayed to a session channel on the node; what a node
    would log about it is logged here (session.start/end and resize for a terminal, exec and scp
    for commands) and a terminal session is recorded."""

    def __init__(self, fwd: Forwarder) -> None:
        self.fwd = fwd
        self.chan: asyncssh.SSHServerChannel[bytes] = None  # type: ignore[assignment]
        self.node_chan: asyncssh.SSHClientChannel[bytes] | None = None
        self.command: str | None = None
        self.subsystem: str | None = None
        self.term: str | None = None
        self.size = (0, 0, 0, 0)
        self.modes: dict[int, int] = {}
        self.sid = str(uuid.uuid4())
        self.pending: list[bytes] = []
        self.pending_eof = False
        self.recorder: SessionRecorder | None = None
        self.started = 0.0
        self.bytes_in = 0
        self.bytes_out = 0
        self.task: asyncio.Task[None] | None = None
        self.done = False
        # the sftp subsystem: files read and written, from the relayed SFTP packets
        self.sftp: SftpAudit | None = None

    # requests ------------------------------------------------------------------------------
    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self.chan = chan
        self.fwd.sessions.add(self)

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any) -> bool:
        self.term = term_type or "xterm"
        self.size = term_size
        self.modes = dict(term_modes or {})
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self.command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self.subsystem = subsystem
        if subsystem == "sftp":
            self.sftp = SftpAudit()
        return True

    def _audit_sftp(self, files: list[tuple[str, str, int]]) -> None:
        """scp events for the files an SFTP session closed, as a node logs them."""
        for action, path, n in files:
            self.fwd.rec.emit(schema.SCP, sid=self.sid, path=path, action=action, len=n,
                              **self.fwd.fields())

    def session_started(self) -> None:
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        fwd = self.fwd
        env = {k: v for k, v in self.chan.get_environment().items()}
        if env.get(JOIN_ENV) and self.command is None and self.subsystem is None:
            self._fail("joining a session through a recording proxy is not supported yet")
            return
        try:
            node = await fwd.node_conn()
            kw: dict[str, Any] = {"env": env, "encoding": None}
            if self.term is not None:
                kw.update(term_type=self.term, term_size=self.size, term_modes=self.modes)
            chan, _ = await node.create_session(
                lambda: _NodeSide(self), command=self.command, subsystem=self.subsystem, **kw
            )
        except (TeleportError, OSError, asyncssh.Error) as exc:
            msg = exc.reason if isinstance(exc, asyncssh.Error) else str(exc)
            self._fail(msg)
            return
        except Exception as exc:  # the client must always learn why its session closed
            log.exception("recording proxy session failed")
            self._fail(f"internal proxy error: {exc}")
            return
        self.node_chan = chan
        self._begin()
        for data in self.pending:
            chan.write(data)
        self.pending = []
        if self.pending_eof:
            chan.write_eof()

    def _fail(self, message: str) -> None:
        log.info("recording proxy: session of %s refused: %s", self.fwd.user, message)
        try:
            self.chan.write_stderr(f"ERROR: {message}\r\n".encode())
            self.chan.exit(255)
        except (OSError, asyncssh.Error, BrokenPipeError):
            pass

    # audit ---------------------------------------------------------------------------------
    def _interactive(self) -> bool:
        return self.term is not None and self.subsystem is None

    def _begin(self) -> None:
        fwd = self.fwd
        self.started = time.time()
        if not self._interactive():
            return
        cols, rows = (self.size[0] or 80), (self.size[1] or 24)
        fwd.rec.emit(schema.SESSION_START, sid=self.sid, size=(cols, rows), **fwd.fields())
        if fwd.svc.mode != recmode.PROXY:
            return
        f = fwd.fields()
        meta = {
            "fields": {**_plain({k: f[k] for k in ("user", "login", "addr_local", "addr_remote")}),
                       "server_id": fwd.svc.identity.host_id,
                       "server_hostname": f["server_hostname"]},
            "session_start": schema.format_time(self.started),
            "participants": [fwd.user],
        }
        try:
            self.recorder = SessionRecorder(
                fwd.rec.uploader.dir, self.sid, cols, rows, meta,
                env={"TERM": self.term or "xterm", "SHELL": "/bin/sh"},
                on_backlog=self._backlog,
            )
            fwd.rec.uploader.active.add(self.sid)
        except OSError as exc:
            log.error("cannot record session %s: %s", self.sid, exc)

    def _backlog(self, on: bool) -> None:
        # the recording falls behind: stop reading the node until it caught up
        if self.node_chan is not None:
            if on:
                self.node_chan.pause_reading()
            else:
                self.node_chan.resume_reading()

    def _end(self, rc: int | None, signal_name: str | None) -> None:
        fwd = self.fwd
        if self.sftp is not None:
            self._audit_sftp(self.sftp.close())
        if self.command is not None:
            scp = scp_request(self.command)
            if scp is not None:
                action, path = scp
                n = self.bytes_in if action == "upload" else self.bytes_out
                fwd.rec.emit(schema.SCP, sid=self.sid, path=path, action=action, len=n, **fwd.fields())
            if scp is None or rc != 0:
                code = rc if rc is not None else -1
                fwd.rec.emit(schema.EXEC, sid=self.sid, command=self.command, exitCode=code,
                             exitError=f"signal: SIG{signal_name}" if signal_name else None,
                             **fwd.fields())
        if not self._interactive() or not self.started:
            return
        logged = fwd.rec.emit(
            schema.SESSION_END, sid=self.sid, participants=[fwd.user], interactive=True,
            session_start=schema.format_time(self.started),
            session_stop=schema.format_time(time.time()), **fwd.fields())
        if self.recorder is not None:
            uploader = fwd.rec.uploader
            sid = self.sid

            def recorded() -> None:
                uploader.active.discard(sid)
                if logged:
                    fwd.rec.background(uploader.upload(sid))

            self.recorder.close(done=recorded, ended=logged)
            self.recorder = None

    # client -> node ------------------------------------------------------------------------
    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        self.bytes_in += len(data)
        self.fwd.touch()
        if self.sftp is not None:
            self._audit_sftp(self.sftp.client(data))
        if self.node_chan is not None:
            self.node_chan.write(data)
        else:
            self.pending.append(data)

    def eof_received(self) -> bool:
        if self.node_chan is not None:
            self.node_chan.write_eof()
        else:
            self.pending_eof = True
        return True

    def pause_writing(self) -> None:
        if self.node_chan is not None:
            self.node_chan.pause_reading()

    def resume_writing(self) -> None:
        if self.node_chan is not None:
            self.node_chan.resume_reading()

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        if (width, height) == self.size[:2]:
            return
        self.size = (width, height, pixwidth, pixheight)
        if self.node_chan is not None:
            self.node_chan.change_terminal_size(width, height, pixwidth, pixheight)
        if self.recorder is not None:
            self.recorder.resize(width, height)
        if self._interactive() and self.started:
            self.fwd.rec.emit(schema.SESSION_RESIZE, sid=self.sid, size=(width, height),
                              **self.fwd.fields())

    def signal_received(self, signal: str) -> None:
        if self.node_chan is not None:
            self.node_chan.send_signal(signal)

    def break_received(self, msec: int) -> bool:
        if self.node_chan is not None:
            self.node_chan.send_break(msec)
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.fwd.sessions.discard(self)
        if self.node_chan is not None:
            self.node_chan.close()
        elif self.task is not None and not self.task.done():
            self.task.cancel()
        if not self.done:
            self.done = True
            self._end(None, None)

    # node -> client ------------------------------------------------------------------------
    def from_node(self, data: bytes, datatype: asyncssh.DataType) -> None:
        try:
            if datatype == asyncssh.EXTENDED_DATA_STDERR:
                self.chan.write_stderr(data)
            else:
                self.bytes_out += len(data)
                self.chan.write(data)
                if self.sftp is not None:
                    self._audit_sftp(self.sftp.server(data))
        except (OSError, asyncssh.Error, BrokenPipeError):
            return
        if self.recorder is not None:
            self.recorder.output(data)

    def node_eof(self) -> None:
        try:
            self.chan.write_eof()
        except (OSError, asyncssh.Error, BrokenPipeError):
            pass

    def node_closed(self, exc: Exception | None) -> None:
        chan = self.node_chan
        rc = chan.get_exit_status() if chan is not None else None
        sig = chan.get_exit_signal() if chan is not None else None
        if not self.done:
            self.done = True
            self._end(rc, sig[0] if sig else None)
        try:
            if sig:
                self.chan.exit_with_signal(sig[0], sig[1], sig[2], sig[3])
            elif rc is not None:
                self.chan.exit(rc)
            else:
                if exc is not None:
                    self.chan.write_stderr(f"ERROR: the connection to the node was lost: {exc}\r\n".encode())
                self.chan.close()
        except (OSError, asyncssh.Error, BrokenPipeError):
            pass


def _fmt(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
