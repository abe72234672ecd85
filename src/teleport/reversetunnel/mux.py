"""One port for the web proxy and the reverse tunnel listener (tunnel_listen_addr equal to
web_listen_addr): each accepted connection is told apart by its first bytes, an SSH banner
("SSH-") going to the tunnel listener and anything else (a TLS ClientHello) to the web proxy,
which then applies its own limits and TLS handshake. The bytes are only peeked (MSG_PEEK): each
server reads the connection from its first byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable

from teleport import defaults
from teleport.config.addr import HostPort
from teleport.service import listeners

log = logging.getLogger(__name__)

SSH_BANNER = b"SSH-"

Serve = Callable[[socket.socket], Awaitable[None]]


def is_ssh(first: bytes) -> bool | None:
    """True for an SSH banner, False for anything else, None while too few bytes tell."""
    n = min(len(first), len(SSH_BANNER))
    if first[:n] != SSH_BANNER[:n]:
        return False
    return True if n == len(SSH_BANNER) else None


async def _peek(sock: socket.socket) -> bytes:
    """The first bytes of the connection, left unread (b"" when it closed first)."""
    loop = asyncio.get_running_loop()
    while True:
        ready: asyncio.Future[None] = loop.create_future()

        def wake(fut: asyncio.Future[None] = ready) -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(sock.fileno(), wake)
        try:
            await ready
        finally:
            loop.remove_reader(sock.fileno())
        try:
            data = sock.recv(len(SSH_BANNER), socket.MSG_PEEK)
        except BlockingIOError:
            continue
        if not data or is_ssh(data) is not None:
            return data
        await asyncio.sleep(0.01)  # a banner arriving byte by byte: wait for the rest


class PortMux:
    """Accepts on `addr` and hands each connection to `web` or `tunnel` (start(), close())."""

    def __init__(self, addr: HostPort, web: Serve, tunnel: Serve, handshake_timeout: float) -> None:
        self.addr = addr
        self.web = web
        self.tunnel = tunnel
        self.handshake_timeout = handshake_timeout
        self._sock: socket.socket | None = None
        self._accept: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Listen; OSError names the address when the port is taken."""
        try:
            # kept across a SIGHUP restart, like every other listener (service/listeners.py)
            sock = listeners.listen_socket(self.addr.host or "0.0.0.0", self.addr.port)
        except OSError as exc:
            raise OSError(f"cannot listen on {self.addr}: {exc.strerror or exc}") from None
        self._sock = sock
        self._accept = asyncio.create_task(self._accept_loop())
        log.info("web proxy and reverse tunnel listener share %s", self.addr)

    def bound_port(self) -> int:
        return int(self._sock.getsockname()[1]) if self._sock is not None else 0

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError as exc:  # out of descriptors, for instance: try again shortly
                log.warning("accept on %s failed: %s", self.addr, exc)
                await asyncio.sleep(0.1)
                continue
            if len(self._pending) >= defaults.PORT_MUX_MAX_PENDING:
                conn.close()  # a flood of silent connections: drop rather than queue
                continue
            conn.setblocking(False)
            task = asyncio.create_task(self._dispatch(conn))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _dispatch(self, conn: socket.socket) -> None:
        try:
            first = await asyncio.wait_for(_peek(conn), self.handshake_timeout)
        except (TimeoutError, OSError):
            conn.close()
            return
        if not first:
            conn.close()
            return
        serve = self.tunnel if is_ssh(first) else self.web
        try:
            # returns once the server owns the connection (the tunnel: after the agent's login)
            await serve(conn)
        except OSError as exc:
            log.info("connection on %s failed: %s", self.addr, exc)
            conn.close()

    def stop_accepting(self) -> None:
        """Graceful shutdown: accept nothing more (the connections handed over go on)."""
        if self._accept is not None:
            self._accept.cancel()

    async def close(self) -> None:
        """Stop accepting (connections already handed over belong to their servers)."""
        if self._accept is not None:
            self._accept.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accept
        for t in list(self._pending):
            t.cancel()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
