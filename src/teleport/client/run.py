"""tsh running a shell or a command on a node: the local terminal in raw mode, escape sequences,
window changes and signals forwarded, and the remote exit status as ours."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import asyncssh

from teleport.errors import ConnectionProblem


class _Terminal:
    """Raw mode on the local terminal for an interactive session; restored on exit."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.saved: list[Any] | None = None

    def __enter__(self) -> _Terminal:
        if self.enabled:
            import termios
            import tty

            self.saved = termios.tcgetattr(0)
            tty.setraw(0)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)


def _term_size() -> tuple[int, int]:
    size = os.get_terminal_size(sys.stdout.fileno() if sys.stdout.isatty() else 0)
    return size.columns, size.lines


async def run_session(
    conn: asyncssh.SSHClientConnection,
    command: str | None,
    tty: bool | None,
    env: dict[str, str] | None = None,
    escape_char: str | None = None,
    host: str = "",
) -> int:
    """Run `command` (or a shell) with local stdio; returns the remote exit status. `env` is sent
    as SSH `env` requests before the shell/exec request. With `escape_char` and a terminal,
    OpenSSH's escape sequences work (see client/escape.py)."""
    stdin_tty = os.isatty(0)
    want_pty = tty if tty is not None else (command is None and stdin_tty)
    kwargs: dict[str, Any] = {}
    if env:
        kwargs["env"] = env
    if want_pty:
        kwargs["term_type"] = os.environ.get("TERM", "xterm")
        try:
            kwargs["term_size"] = _term_size()
        except OSError:
            kwargs["term_size"] = (80, 24)
    # as OpenSSH: escapes only for a terminal session typed at a terminal
    escapes = escape_char is not None and want_pty and stdin_tty
    blocking = {fd: os.get_blocking(fd) for fd in (0, 1, 2)}
    loop = asyncio.get_running_loop()
    try:
        with _Terminal(want_pty and stdin_tty):
            proc = await conn.create_process(
                command,
                stdin=asyncssh.PIPE if escapes else _stdin_source(),
                stdout=os.dup(1),
                stderr=os.dup(2),
                encoding=None,
                **kwargs,
            )
            if want_pty and stdin_tty:
                loop.add_signal_handler(
                    signal.SIGWINCH, lambda: proc.change_terminal_size(*_term_size())
                )
            disconnected = asyncio.Event()
            if escapes:
                assert escape_char is not None
                _pump_with_escapes(proc, conn, escape_char, disconnected)
            try:
                waiter = asyncio.ensure_future(proc.wait())
                cut = asyncio.ensure_future(disconnected.wait())
                await asyncio.wait({waiter, cut}, return_when=asyncio.FIRST_COMPLETED)
                if escapes:
                    loop.remove_reader(0)
                if not waiter.done():
                    waiter.cancel()
                    conn.close()
                    os.write(2, f"Connection to {host or 'the node'} closed.\r\n".encode())
                    return 255
                cut.cancel()
                result = waiter.result()
            finally:
                if want_pty and stdin_tty:
                    loop.remove_signal_handler(signal.SIGWINCH)
    finally:
        # asyncio made the shared descriptors non-blocking; the user's shell needs them back
        for fd, value in blocking.items():
            try:
                os.set_blocking(fd, value)
            except OSError:
                pass
    return _exit_code(result)


def _pump_with_escapes(
    proc: Any, conn: asyncssh.SSHClientConnection, escape_char: str, disconnected: asyncio.Event
) -> None:
    """Read the terminal ourselves, pass it through the escape filter, act on escapes."""
    from teleport.client.escape import EscapeAction, EscapeFilter, help_text

    filt = EscapeFilter(escape_char)
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(0, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            proc.stdin.write_eof()
            return
        for item in filt.feed(data):
            if item is EscapeAction.DISCONNECT:
                loop.remove_reader(0)
                disconnected.set()
                return
            if item is EscapeAction.HELP:
                os.write(2, help_text(escape_char).encode())
            elif isinstance(item, bytes):
                proc.stdin.write(item)

    os.set_blocking(0, False)
    loop.add_reader(0, readable)


def _exit_code(result: asyncssh.SSHCompletedProcess) -> int:
    """The remote exit status (128+N for signal N); ConnectionProblem when the session ended
    without one: the connection to the node dropped (node killed, host or network gone, the
    keep-alives unanswered) before the command finished."""
    if result.exit_status is not None:
        return result.exit_status
    if result.exit_signal is not None:
        return 128 + _signal_number(result.exit_signal[0])
    raise ConnectionProblem(
        "the connection to the node was lost before the session ended (the node or the network "
        "to it went away); the command may have been cut short"
    )


def _stdin_source() -> Any:
    """Our stdin in a form asyncssh can read: pipes, sockets and terminals are polled; epoll
    refuses regular files and /dev/null, which are read as files (or not at all)."""
    import stat

    st = os.fstat(0)
    if os.isatty(0) or stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode):
        return os.dup(0)
    if stat.S_ISCHR(st.st_mode) and os.path.samestat(st, os.stat(os.devnull)):
        return asyncssh.DEVNULL
    return os.fdopen(os.dup(0), "rb")


def _signal_number(name: str) -> int:
    try:
        return int(getattr(signal, "SIG" + name))
    except (AttributeError, TypeError, ValueError):
        return 1


async def run_prefixed(
    conn: asyncssh.SSHClientConnection, command: str, prefix: str
) -> int:
    """Run `command` and print each output line as `[prefix] line` (stdout and stderr)."""
    proc = await conn.create_process(command, stdin=asyncssh.DEVNULL, encoding=None)

    async def pump(stream: asyncssh.SSHReader[bytes], out: Any) -> None:
        while True:
            line = await stream.readline()
            if not line:
                return
            out.write(f"[{prefix}] ".encode() + line + (b"" if line.endswith(b"\n") else b"\n"))
            out.flush()

    await asyncio.gather(pump(proc.stdout, sys.stdout.buffer), pump(proc.stderr, sys.stderr.buffer))
    result = await proc.wait()
    try:
        return _exit_code(result)
    except ConnectionProblem as exc:
        sys.stderr.write(f"[{prefix}] ERROR: {exc}\n")
        return 255
