"""SSH session channels: exec, shell (on a real PTY) and the sftp subsystem, run as the OS login.

Every PTY session is an ActiveSession (node/party.py): recorded, registered with auth, joinable.
A shell request preceded by the env request ``TELEPORT_SESSION=<sid>`` joins that live session.
Audit: ``exec`` for every command, ``scp`` for legacy ``scp -t/-f`` commands and for each file the
sftp subsystem closes (read from ``sftp-server -e -l INFO``'s log), session.* for PTY sessions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import re
import shlex
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncssh

from teleport.errors import AccessDenied, BadParameter
from teleport.events import schema
from teleport.node.party import ActiveSession, Party, SessionServices
from teleport.types.names import check_sid

log = logging.getLogger(__name__)

SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/lib/sftp-server")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"
READ_SIZE = 256 * 1024
STDIN_HIGH_WATER = 1024 * 1024  # stop reading the channel while the child is this far behind
JOIN_ENV = "TELEPORT_SESSION"  # env request naming a live session to join (the tsh join contract)
# env request of a recording proxy: the id it gave the session (so that $TELEPORT_SESSION in the
# shell is the id `tsh join` finds); honoured only on connections the proxy says it records
PROXY_SID_ENV = "TELEPORT_PROXY_SESSION"

# Client env requests we honour (as OpenSSH's default AcceptEnv LANG LC_*, plus a few harmless).
ENV_ALLOW = frozenset({"LANG", "LANGUAGE", "TZ", "COLORTERM"})
# sftp-server -l INFO logs one line per closed file with the bytes moved.
SFTP_CLOSE_RE = re.compile(r'close "(?P<path>.*)" bytes read (?P<read>\d+) written (?P<written>\d+)')


def env_allowed(name: str) -> bool:
    """Whether a client `env` request may set this variable."""
    return name in ENV_ALLOW or name.startswith("LC_")


def _addr(hp: tuple[str, int]) -> str:
    return f"[{hp[0]}]:{hp[1]}" if ":" in hp[0] else f"{hp[0]}:{hp[1]}"


def scp_request(command: str) -> tuple[str, str] | None:
    """(action, path) for a legacy ``scp -t PATH`` (upload to the node) / ``scp -f PATH``
    (download) command, else None."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or os.path.basename(words[0]) != "scp":
        return None
    flags = [w for w in words[1:] if w.startswith("-")]
    args = [w for w in words[1:] if not w.startswith("-")]
    action = None
    for f in flags:
        if "t" in f[1:]:
            action = "upload"
        elif "f" in f[1:]:
            action = "download"
    if action is None:
        return None
    return action, args[-1] if args else "."


def sftp_events(line: str) -> list[tuple[str, str, int]]:
    """(action, path, bytes) for an sftp-server log line about a closed file."""
    m = SFTP_CLOSE_RE.search(line)
    if not m:
        return []
    out = []
    if int(m["written"]):
        out.append(("upload", m["path"], int(m["written"])))
    if int(m["read"]):
        out.append(("download", m["path"], int(m["read"])))
    return out


@dataclass
class SessionContext:
    """What a session needs to know about its connection."""

    login: str
    teleport_user: str
    cluster_name: str
    host_id: str
    client_addr: tuple[str, int]
    local_addr: tuple[str, int]
    agent_path: Callable[[], str | None] = lambda: None
    services: SessionServices = field(default_factory=SessionServices)
    touch: Callable[[], None] = lambda: None  # the client sent input (idle timeout)
    channels: set[Any] = field(default_factory=set)  # this connection's open session handlers
    recorded_by_proxy: bool = False  # a recording proxy records and audits this connection


def login_user(login: str) -> pwd.struct_passwd:
    """The OS account for a login, checked against the daemon's privileges. Raises PermissionError."""
    try:
        pw = pwd.getpwnam(login)
    except KeyError:
        raise PermissionError(f"OS user {login!r} does not exist on this node") from None
    if os.geteuid() != 0 and pw.pw_uid != os.geteuid():
        own = pwd.getpwuid(os.geteuid()).pw_name
        raise PermissionError(
            f"the node runs as {own!r}, not root, so it can only open sessions for {own!r}, "
            f"not {login!r}; run teleport as root to serve other logins"
        )
    return pw


class NodeSession(asyncssh.SSHServerSession):
    """One session channel. Everything the client asks for before the shell/exec/subsystem request
    (pty, env, agent) is collected first; the child starts in session_started."""

    def __init__(self, ctx: SessionContext) -> None:
        self.ctx = ctx
        self.sid = str(uuid.uuid4())
        self.chan: Any = None
        self.command: str | None = None
        self.subsystem: str | None = None
        self.term: str | None = None
        self.size = (0, 0, 0, 0)
        self.proc: asyncio.subprocess.Process | None = None
        self.active: ActiveSession | None = None
        self.party: Party | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._pending: list[bytes] = []  # data that arrived before the child started
        self._eof = False
        self._task: asyncio.Task[None] | None = None
        self._bytes_in = 0
        self._bytes_out = 0
        self._tx = 0  # bytes sent to the client on this channel (session.data)
        self._finished = False

    # requests --------------------------------------------------------------------------
    def connection_made(self, chan: Any) -> None:
        self.chan = chan
        self.ctx.channels.add(self)
        # Count what this channel sends to the client, whichever path writes it (the child's
        # output, a shared session's broadcast, notices) for the session.data event.
        write, write_stderr = chan.write, chan.write_stderr

        def counted(data: Any, *args: Any) -> None:
            self._tx += len(data)
            write(data, *args)

        def counted_stderr(data: Any) -> None:
            self._tx += len(data)
            write_stderr(data)

        chan.write, chan.write_stderr = counted, counted_stderr

    def pty_requested(self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any) -> bool:
        self.term = term_type
        self.size = term_size
        return True

    def shell_requested(self) -> bool:
        return True

    def exec_requested(self, command: str) -> bool:
        self.command = command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        if subsystem != "sftp":
            log.info("refused subsystem %r for %s", subsystem, self.ctx.teleport_user)
            return False
        self.subsystem = subsystem
        return True

    def session_started(self) -> None:
        self._task = asyncio.create_task(self._run())

    # I/O from the client -----------------------------------------------------------------
    def data_received(self, data: bytes, datatype: Any) -> None:
        self.ctx.touch()
        self._bytes_in += len(data)
        if self.active is not None:
            self.active.input(data)
        elif self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.write(data)
            transport = self.proc.stdin.transport
            if transport.get_write_buffer_size() > STDIN_HIGH_WATER:
                self.chan.pause_reading()
                asyncio.ensure_future(self._drain_stdin())
        else:
            self._pending.append(data)

    async def _drain_stdin(self) -> None:
        try:
            if self.proc is not None and self.proc.stdin is not None:
                await self.proc.stdin.drain()
        except (ConnectionError, BrokenPipeError):
            pass
        finally:
            self.chan.resume_reading()

    def eof_received(self) -> bool:
        self._eof = True
        # On a PTY, EOF is the user's business (^D); like sshd we leave the terminal alone.
        if self.active is None and self.proc is not None and self.proc.stdin is not None:
            self._close_stdin()
        return True  # half-open: we still send output and the exit status

    def _close_stdin(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write_eof()
        except (OSError, RuntimeError):
            self.proc.stdin.close()

    def pause_writing(self) -> None:
        self._writable.clear()
        if self.party is not None and self.active is not None:
            self.party.paused = True
            self.active.flow_changed()

    def resume_writing(self) -> None:
        self._writable.set()
        if self.party is not None and self.active is not None:
            self.party.paused = False
            self.active.flow_changed()

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self.size = (width, height, pixwidth, pixheight)
        if self.active is not None and self.party is not None:
            self.active.resize(self.party, width, height, pixwidth, pixheight)

    def signal_received(self, signal_name: str) -> None:
        sig = getattr(signal, f"SIG{signal_name}", None)
        proc = self.active.proc if self.active is not None else self.proc
        if not isinstance(sig, signal.Signals) or proc is None:
            return
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass

    def break_received(self, msec: int) -> bool:
        if self.active is not None:
            self.active.input(b"\x03")  # like a serial break on a terminal: interrupt
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.ctx.channels.discard(self)
        if self.command is not None or self.subsystem is not None or self.term is not None \
                or self._bytes_in or self._tx:
            # one per session channel: bytes the node transmitted to and received from the client
            self.ctx.services.emit(schema.SESSION_DATA, sid=self.sid, tx=self._tx,
                                   rx=self._bytes_in, **self._fields())
        if self.active is not None and self.party is not None:
            self.active.leave(self.party)
        elif self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGHUP)
            except (ProcessLookupError, PermissionError):
                pass

    def notify(self, message: str) -> None:
        """Tell the client something (e.g. why it is being disconnected)."""
        try:
            if self.term is not None:
                self.chan.write(f"\r\n{message}\r\n".encode())
            else:
                self.chan.write_stderr(f"{message}\n".encode())
        except (BrokenPipeError, OSError, RuntimeError):
            pass

    # the child --------------------------------------------------------------------------
    def _environment(self, pw: pwd.struct_passwd) -> dict[str, str]:
        ctx = self.ctx
        env = {k: v for k, v in self.chan.get_environment().items() if env_allowed(k)}
        env.update(
            HOME=pw.pw_dir,
            USER=pw.pw_name,
            LOGNAME=pw.pw_name,
            SHELL=pw.pw_shell or "/bin/sh",
            PATH=DEFAULT_PATH if pw.pw_uid == 0 else USER_PATH,
            SSH_CLIENT=f"{ctx.client_addr[0]} {ctx.client_addr[1]} {ctx.local_addr[1]}",
            SSH_CONNECTION=(
                f"{ctx.client_addr[0]} {ctx.client_addr[1]} {ctx.local_addr[0]} {ctx.local_addr[1]}"
            ),
            TELEPORT_SESSION=self.sid,
            TELEPORT_USER=ctx.teleport_user,
            TELEPORT_CLUSTER_NAME=ctx.cluster_name,
            TELEPORT_HOST_UUID=ctx.host_id,
        )
        if self.term is not None:
            env["TERM"] = self.term or "xterm"
        agent = ctx.agent_path()
        if agent:
            env["SSH_AUTH_SOCK"] = agent
        if self.command is not None:
            env["SSH_ORIGINAL_COMMAND"] = self.command
        return env

    def _argv(self, pw: pwd.struct_passwd) -> tuple[str, list[str]]:
        shell = pw.pw_shell or "/bin/sh"
        if self.subsystem == "sftp":
            server = next((p for p in SFTP_SERVERS if os.access(p, os.X_OK)), None)
            if server is None:
                raise FileNotFoundError(
                    f"no sftp-server on this node (looked for {', '.join(SFTP_SERVERS)}): "
                    "install openssh-sftp-server"
                )
            # log to stderr at INFO: one line per closed file is our scp audit source
            return server, [server, "-e", "-l", "INFO"]
        if self.command is not None:
            return shell, [shell, "-c", self.command]
        return shell, ["-" + os.path.basename(shell)]  # a login shell, as sshd starts it

    def _fields(self) -> dict[str, Any]:
        ctx = self.ctx
        return {"user": ctx.teleport_user, "login": ctx.login,
                "addr_local": _addr(ctx.local_addr), "addr_remote": _addr(ctx.client_addr)}

    def _party(self) -> Party:
        f = self._fields()
        return Party(user=f["user"], login=f["login"], remote_addr=f["addr_remote"],
                     local_addr=f["addr_local"], chan=self.chan, finish=self._finish)

    def _join_sid(self) -> str | None:
        if self.command is not None or self.subsystem is not None:
            return None
        sid = self.chan.get_environment().get(JOIN_ENV)
        return str(sid) if sid else None

    def _adopt_proxy_sid(self) -> None:
        if not self.ctx.recorded_by_proxy:
            return
        sid = self.chan.get_environment().get(PROXY_SID_ENV)
        try:
            self.sid = check_sid(str(sid)) if sid else self.sid
        except BadParameter:
            log.warning("ignoring a malformed session id from the recording proxy: %r", sid)

    async def _run(self) -> None:
        try:
            self._adopt_proxy_sid()
            join = self._join_sid()
            if join is not None:
                await self._join(join)
                return
            pw = login_user(self.ctx.login)
            executable, argv = self._argv(pw)
            kw: dict[str, Any] = {
                "env": self._environment(pw),
                "cwd": pw.pw_dir if os.path.isdir(pw.pw_dir) else "/",
                "start_new_session": True,
                "executable": executable,
            }
            if os.geteuid() == 0:
                kw.update(user=pw.pw_uid, group=pw.pw_gid,
                          extra_groups=os.getgrouplist(pw.pw_name, pw.pw_gid))
            if self.term is not None and self.subsystem is None:
                await self._run_pty(argv, kw)
            else:
                await self._run_pipes(argv, kw)
        except Exception as exc:
            log.warning("session %s for %s failed: %s", self.sid, self.ctx.login, exc)
            if self.command is not None and self.active is None:
                self._audit_command(255, str(exc))
            try:
                self.chan.write_stderr(f"teleport: {exc}\r\n".encode())
                self._finish(255)
            except Exception:  # the channel may already be gone
                pass

    async def _join(self, sid: str) -> None:
        services = self.ctx.services
        active = (services.active if services.joinable is None else services.joinable).get(sid)
        if active is None or active.ended:
            raise AccessDenied(
                f"session {sid} is not active on this node (ended, or on another node; "
                "see `tsh sessions ls`)"
            )
        if active.login != self.ctx.login:
            # Joining shares a shell of the session's login: the roles must allow that login here.
            if services.check_access is None:
                raise AccessDenied("cannot check access to join this session")
            await services.check_access(self.ctx.teleport_user, active.login)
        self.sid = sid
        self.active = active
        self.party = self._party()
        active.join(self.party)
        for data in self._pending:
            active.input(data)
        self._pending = []

    def _finish(self, returncode: int) -> None:
        if self._finished:
            return
        self._finished = True
        if returncode >= 0:
            self.chan.exit(returncode)
        else:
            try:
                name = signal.Signals(-returncode).name[3:]
            except ValueError:
                name = "KILL"
            self.chan.exit_with_signal(name, False, "", "")

    def _audit_command(self, rc: int, error: str = "") -> None:
        if self.command is None:
            return
        services = self.ctx.services
        scp = scp_request(self.command)
        if scp is not None:
            action, path = scp
            n = self._bytes_in if action == "upload" else self._bytes_out
            services.emit(schema.SCP, sid=self.sid, path=path, action=action, len=n, **self._fields())
            if rc == 0:
                return
        if rc < 0 and not error:
            try:
                error = f"signal: {signal.Signals(-rc).name}"
            except ValueError:
                error = f"signal {-rc}"
        services.emit(schema.EXEC, sid=self.sid, command=self.command, exitCode=rc,
                      exitError=error or None, **self._fields())

    async def _run_pipes(self, argv: list[str], kw: dict[str, Any]) -> None:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=READ_SIZE,
            **kw,
        )
        self.proc = proc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        for data in self._pending:
            proc.stdin.write(data)
        self._pending = []
        if self._eof:
            self._close_stdin()
        err = self._sftp_log(proc.stderr) if self.subsystem else self._pump(proc.stderr, self.chan.write_stderr)
        await asyncio.gather(self._pump(proc.stdout, self.chan.write, count=True), err)
        rc = await proc.wait()
        self._audit_command(rc)
        self._finish(rc)

    async def _sftp_log(self, reader: asyncio.StreamReader) -> None:
        services = self.ctx.services
        while True:
            line = await reader.readline()
            if not line:
                return
            for action, path, n in sftp_events(line.decode("utf-8", "replace")):
                services.emit(schema.SCP, sid=self.sid, path=path, action=action, len=n, **self._fields())

    async def _pump(self, reader: asyncio.StreamReader, write: Any, count: bool = False) -> None:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                return
            if count:
                self._bytes_out += len(data)
            await self._writable.wait()
            try:
                write(data)
            except (BrokenPipeError, OSError):
                return

    async def _run_pty(self, argv: list[str], kw: dict[str, Any]) -> None:
        self.party = self._party()
        self.active = ActiveSession(self.ctx.services, self.sid, self.party, self.term or "xterm", self.size)
        for data in self._pending:
            self.active.input(data)
        self._pending = []
        rc = await self.active.run(argv, kw)
        self._audit_command(rc)
