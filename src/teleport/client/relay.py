"""`tsh proxy ssh`: a byte stream to a node through the proxy, on stdin/stdout.

Two uses. As OpenSSH's ProxyCommand (`ssh -o "ProxyCommand tsh proxy ssh %r@%h:%p" ...`), like
`ssh -W` through a jump host. And inside tsh itself: a bulk copy runs the outer SSH layer (to
the proxy) in a second process, as OpenSSH's `scp -J` does with its ProxyJump `ssh -W`, so the two
layers of encryption use two cores instead of sharing one Python thread.

For tsh's own use (`--tsh-relay`) the relay writes one byte (READY) once the proxy has accepted
the `proxy:host:port` channel, so the parent can tell "relaying" from "failed before relaying"
(the reason then on stderr).
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
from typing import Any

import asyncssh

from teleport.client import ssh
from teleport.errors import ConnectionProblem

READY = b"\x00"
# Exit status of a relay that refused because the proxy records sessions itself (recording proxy
# mode): the caller then connects in-process, forwarding its agent as that mode needs.
EXIT_PROXY_MODE = 3


class _Relay(asyncssh.SSHClientSession[bytes]):
    """The proxy channel's side: data to our output, the proxy's errors to stderr."""

    def __init__(self, out: asyncio.WriteTransport, done: asyncio.Future[None]) -> None:
        self.out = out
        self.done = done
        self.chan: asyncssh.SSHClientChannel[bytes] | None = None

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self.chan = chan

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            sys.stderr.buffer.write(data)
            sys.stderr.flush()
        else:
            self.out.write(data)

    def eof_received(self) -> bool:
        if self.out.can_write_eof():
            self.out.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


class _Input(asyncio.Protocol):
    """Our input's side: bytes into the proxy channel, paused while the channel is full."""

    def __init__(self) -> None:
        self.chan: asyncssh.SSHClientChannel[bytes] | None = None
        self.transport: asyncio.BaseTransport | None = None
        self.pending: list[bytes] = []
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.chan is None:
            self.pending.append(data)
            return
        self.chan.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.chan is not None:
            self.chan.write_eof()
        return True


async def _stdio_transports(loop: asyncio.AbstractEventLoop, inp: _Input) -> asyncio.WriteTransport:
    """Transports on fds 0 and 1: one socket transport when they are a socket (tsh's own use),
    pipe transports otherwise (OpenSSH's ProxyCommand)."""
    if stat.S_ISSOCK(os.fstat(0).st_mode) and os.path.sameopenfile(0, 1):
        sock = socket.socket(fileno=os.dup(0))
        transport, _ = await loop.create_connection(lambda: inp, sock=sock)
        return transport
    await loop.connect_read_pipe(lambda: inp, os.fdopen(0, "rb", buffering=0))
    out, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(1, "wb", buffering=0))
    return out


async def relay_stdio(creds: ssh.Credentials, login: str, host: str, port: int, cluster: str,
                      for_tsh: bool = False) -> int:
    """Relay stdin/stdout to `host:port` through the proxy until either side closes. `for_tsh`:
    tsh's own relay (READY first; recording proxy mode refused, tsh then works in-process)."""
    from teleport.client import recproxy

    proxy = await ssh.connect_proxy(creds, login)
    stop: Any = None
    try:
        if await recproxy.recording_mode(proxy) == "proxy":
            if for_tsh:
                return EXIT_PROXY_MODE
            # the proxy logs in to the node on our behalf with our certificate, reached
            # through an agent forwarded on this connection (ssh's ForwardAgent)
            agent, stop = await recproxy.agent_for(creds.key, creds.cert, creds.valid_before)
            proxy.close()
            proxy = await ssh.connect_proxy(creds, login, agent_path=agent)
        loop = asyncio.get_running_loop()
        inp = _Input()
        out = await _stdio_transports(loop, inp)
        done: asyncio.Future[None] = loop.create_future()
        tunnel = ssh.SubsystemTunnel(proxy, cluster)
        try:
            chan, _ = await proxy.create_session(
                lambda: _Relay(out, done), subsystem=tunnel.subsystem(host, port), encoding=None,
                window=ssh.CHANNEL_WINDOW, max_pktsize=ssh.MAX_PACKET)
        except asyncssh.ChannelOpenError as exc:
            raise ConnectionProblem(f"the proxy refused the connection: {exc.reason}") from None
        if for_tsh:
            out.write(READY)
        inp.chan = chan
        for data in inp.pending:
            chan.write(data)
        if inp.eof:
            chan.write_eof()
        await done
        return 0
    finally:
        proxy.close()
        if stop is not None:
            await stop()


def start(argv: list[str]) -> tuple[subprocess.Popen[bytes], socket.socket]:
    """Start a relay process (`argv` runs `tsh proxy ssh ...`); return it and our end of the
    stream, on which READY arrives first."""
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(argv, stdin=theirs.fileno(), stdout=theirs.fileno(),
                                stderr=subprocess.PIPE, close_fds=True)
    finally:
        theirs.close()
    return proc, ours


async def wait_ready(proc: subprocess.Popen[bytes], sock: socket.socket) -> str | None:
    """None once the relay is ready; otherwise what it said on stderr (it has exited)."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    first = await loop.sock_recv(sock, 1)
    if first == READY:
        return None
    code = await loop.run_in_executor(None, proc.wait)
    err = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
    if code == EXIT_PROXY_MODE:
        return "proxy-mode"
    return err.removeprefix("ERROR: ") or f"the relay exited with status {code}"


def relay_argv(login: str, host: str, port: int, cluster: str, proxy: str | None,
               insecure: bool) -> list[str]:
    """The command line of a relay process for this tsh."""
    argv = [sys.executable, "-m", "teleport.cli.tsh"]
    if proxy:
        argv.append(f"--proxy={proxy}")
    if insecure:
        argv.append("--insecure")
    argv += ["proxy", "ssh", "--tsh-relay"]
    if cluster:
        argv.append(f"--cluster={cluster}")
    h = f"[{host}]" if ":" in host else host
    return [*argv, f"{login}@{h}:{port}"]


def close(proc: subprocess.Popen[Any], sock: socket.socket) -> None:
    """End a relay: close our end (it sees EOF) and reap it."""
    sock.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stderr:
        proc.stderr.close()
