"""SSH session channels: exec, shell (on a real PTY) and the sftp subsystem, run as the OS login."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import os
import pwd
import signal
import struct
import termios
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncssh

log = logging.getLogger(__name__)

SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/lib/sftp-server")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"
READ_SIZE = 256 * 1024
STDIN_HIGH_WATER = 1024 * 1024  # stop reading the channel while the child is this far behind
PTY_DRAIN_TIMEOUT = 2.0  # after the child exits, wait this long for the last PTY output

# Client env requests we honour (as OpenSSH's default AcceptEnv LANG LC_*, plus a few harmless).
ENV_ALLOW = frozenset({"LANG", "LANGUAGE", "TZ", "COLORTERM"})


def env_allowed(name: str) -> bool:
    """Whether a client `env` request may set this variable."""
    return name in ENV_ALLOW or name.startswith("LC_")


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


def _set_ctty() -> None:  # runs in the child between fork and exec
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _winsize(fd: int, cols: int, rows: int, xpix: int, ypix: int) -> None:
    if cols and rows:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, xpix, ypix))


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
        self.master: int | None = None
        self._writable = asyncio.Event()
        self._writable.set()
        self._pending: list[bytes] = []  # data that arrived before the child started
        self._eof = False
        self._out_buf = bytearray()  # PTY input not yet written to the master
        self._pty_eof = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # requests --------------------------------------------------------------------------
    def connection_made(self, chan: Any) -> None:
        self.chan = chan

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
        if self.master is not None:
            self._pty_write(data)
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
        if self.master is None and self.proc is not None and self.proc.stdin is not None:
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
        if self.master is not None:
            asyncio.get_running_loop().remove_reader(self.master)

    def resume_writing(self) -> None:
        self._writable.set()
        if self.master is not None and not self._pty_eof.is_set():
            asyncio.get_running_loop().add_reader(self.master, self._pty_readable)

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self.size = (width, height, pixwidth, pixheight)
        if self.master is not None:
            _winsize(self.master, width, height, pixwidth, pixheight)

    def signal_received(self, signal_name: str) -> None:
        sig = getattr(signal, f"SIG{signal_name}", None)
        if not isinstance(sig, signal.Signals) or self.proc is None:
            return
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def break_received(self, msec: int) -> bool:
        if self.master is not None:
            self._pty_write(b"\x03")  # like a serial break on a terminal: interrupt
            return True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGHUP)
            except (ProcessLookupError, PermissionError):
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
            return server, [server]
        if self.command is not None:
            return shell, [shell, "-c", self.command]
        return shell, ["-" + os.path.basename(shell)]  # a login shell, as sshd starts it

    async def _run(self) -> None:
        try:
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
            try:
                self.chan.write_stderr(f"teleport: {exc}\r\n".encode())
                self.chan.exit(255)
            except Exception:  # the channel may already be gone
                pass

    def _finish(self, returncode: int) -> None:
        if returncode >= 0:
            self.chan.exit(returncode)
        else:
            try:
                name = signal.Signals(-returncode).name[3:]
            except ValueError:
                name = "KILL"
            self.chan.exit_with_signal(name, False, "", "")

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
        await asyncio.gather(
            self._pump(proc.stdout, self.chan.write),
            self._pump(proc.stderr, self.chan.write_stderr),
        )
        self._finish(await proc.wait())

    async def _pump(self, reader: asyncio.StreamReader, write: Any) -> None:
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                return
            await self._writable.wait()
            try:
                write(data)
            except (BrokenPipeError, OSError):
                return

    # PTY --------------------------------------------------------------------------------
    async def _run_pty(self, argv: list[str], kw: dict[str, Any]) -> None:
        master, slave = os.openpty()
        try:
            _winsize(slave, *self.size)
            os.set_blocking(master, False)
            kw["env"]["SSH_TTY"] = os.ttyname(slave)
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=slave, stdout=slave, stderr=slave, preexec_fn=_set_ctty, **kw
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)  # only the child holds the slave now, so its exit gives EIO on master
        self.master = master
        loop = asyncio.get_running_loop()
        loop.add_reader(master, self._pty_readable)
        for data in self._pending:
            self._pty_write(data)
        self._pending = []
        try:
            rc = await self.proc.wait()
            try:  # background jobs may keep the terminal open; do not wait for them forever
                await asyncio.wait_for(self._pty_eof.wait(), PTY_DRAIN_TIMEOUT)
            except TimeoutError:
                pass
            self._finish(rc)
        finally:
            loop.remove_reader(master)
            loop.remove_writer(master)
            self.master = None
            os.close(master)

    def _pty_readable(self) -> None:
        assert self.master is not None
        try:
            data = os.read(self.master, READ_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno != errno.EIO:
                log.debug("pty read: %s", exc)
            data = b""
        if not data:  # every slave fd is closed: the session's output is complete
            asyncio.get_running_loop().remove_reader(self.master)
            self._pty_eof.set()
            return
        try:
            self.chan.write(data)
        except (BrokenPipeError, OSError):
            pass

    def _pty_write(self, data: bytes) -> None:
        assert self.master is not None
        had = bool(self._out_buf)
        self._out_buf += data
        if not had:
            self._pty_flush()

    def _pty_flush(self) -> None:
        if self.master is None:
            return
        loop = asyncio.get_running_loop()
        try:
            n = os.write(self.master, self._out_buf)
            del self._out_buf[:n]
        except BlockingIOError:
            pass
        except OSError:
            self._out_buf.clear()
        if self._out_buf:
            loop.add_writer(self.master, self._pty_flush)
        else:
            loop.remove_writer(self.master)
