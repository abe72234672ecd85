"""Every aiohttp listener (auth 3025, proxy web 3080) behind one gate that enforces
``connection_limits`` and bounds idle and half-open connections.

Per accepted TCP connection, a small protocol (the gate) sits between the socket and aiohttp:

* it counts the connection by source address before anything else (teleport.limits), so a
  flood of connections that never finish a TLS handshake is bounded like any other;
* it runs the TLS handshake itself (``loop.start_tls``) with a timeout, so a client that
  connects and stays silent is dropped after ``handshake_timeout``;
* it gives the first request's headers ``handshake_timeout`` to arrive (aiohttp itself has no
  header timeout; between requests its ``keepalive_timeout`` applies);
* for a connection over a limit it answers ``429`` with a JSON message itself and closes:
  aiohttp never sees it;
* otherwise it hands every byte to an aiohttp request handler (it stays the transport's protocol
  and forwards, so nothing private of aiohttp is touched).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from teleport import defaults
from teleport.config.addr import HostPort
from teleport.config.model import GlobalConfig
from teleport.errors import LimitExceeded, error_to_dict
from teleport.limits import ConnectionLimiter, source_of
from teleport.service import listeners, memory

log = logging.getLogger(__name__)

# (transport after TLS) -> the authenticated user to count for max_users, or None.
UserOf = Callable[[asyncio.BaseTransport], str | None]


@dataclass(frozen=True)
class ListenerLimits:
    """The limits one listener enforces (0 = unlimited)."""

    max_connections: int = defaults.MAX_CONNECTIONS  # per source address
    max_total: int = defaults.MAX_CONNECTIONS * defaults.CONNECTIONS_TOTAL_FACTOR
    max_users: int = defaults.MAX_USERS
    handshake_timeout: float = defaults.HANDSHAKE_TIMEOUT
    keepalive_timeout: float = defaults.HTTP_KEEPALIVE_TIMEOUT

    @classmethod
    def from_config(cls, g: GlobalConfig) -> ListenerLimits:
        """The limits of ``teleport.connection_limits``."""
        return cls(
            max_connections=g.max_connections,
            max_total=g.max_connections * defaults.CONNECTIONS_TOTAL_FACTOR,
            max_users=g.max_users,
            handshake_timeout=g.handshake_timeout,
        )


def refusal_response(err: LimitExceeded) -> bytes:
    """A complete HTTP/1.1 429 response carrying the error as JSON, then closing."""
    body = json.dumps(error_to_dict(err)).encode()
    head = (
        "HTTP/1.1 429 Too Many Requests\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


class HTTPListener:
    """Serves an aiohttp application on host:port (TLS when ``ssl_ctx``) behind the gate."""

    def __init__(self, app: web.Application, limits: ListenerLimits, what: str,
                 user_of: UserOf | None = None) -> None:
        self.app = app
        self.limits = limits
        self.what = what
        self.user_of = user_of
        self.limiter = ConnectionLimiter(limits.max_connections, limits.max_total,
                                         limits.max_users, what=what)
        self.refusing = 0  # refused connections being told why
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                    keepalive_timeout=limits.keepalive_timeout)
        self.ssl_ctx: ssl.SSLContext | None = None
        self._server: asyncio.Server | None = None
        self._gates: set[_Gate] = set()

    async def start(self, addr: HostPort, ssl_ctx: ssl.SSLContext | None) -> None:
        """Listen; OSError naming the address when it is taken."""
        self.ssl_ctx = ssl_ctx
        await self.runner.setup()
        loop = asyncio.get_running_loop()
        try:
            sock = listeners.listen_socket(addr.host, addr.port)  # inherited across a SIGHUP restart
            self._server = await loop.create_server(lambda: _Gate(self), sock=sock, backlog=1024)
        except OSError as exc:
            await self.runner.cleanup()
            raise OSError(f"cannot listen on {addr}: {exc.strerror or exc}") from None

    async def start_unbound(self, ssl_ctx: ssl.SSLContext | None) -> None:
        """Serve connections accepted elsewhere (serve_accepted): a port shared with another
        protocol (reversetunnel/mux.py)."""
        self.ssl_ctx = ssl_ctx
        await self.runner.setup()

    async def serve_accepted(self, sock: socket.socket) -> None:
        """Serve one connection accepted by someone else, behind the same gate."""
        await asyncio.get_running_loop().connect_accepted_socket(lambda: _Gate(self), sock)

    @property
    def sockets(self) -> list[socket.socket]:
        return list(self._server.sockets) if self._server is not None else []

    def handler(self) -> asyncio.Protocol:
        """A fresh aiohttp request handler (one per connection)."""
        server = self.runner.server
        assert server is not None
        return server()

    def stop_accepting(self) -> None:
        """Graceful shutdown: no new connections; the open ones carry on."""
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        """Stop listening, close the open connections, stop the application."""
        if self._server is not None:
            self._server.close()
        for gate in list(self._gates):
            gate.abort()
        await self.runner.cleanup()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


class _Gate(asyncio.Protocol):
    """One connection: limits, TLS handshake, header deadline, then a pure forwarder."""

    def __init__(self, listener: HTTPListener) -> None:
        self.listener = listener
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.source = ""
        self.counted = False
        self.user: str | None = None
        self.refusal: LimitExceeded | None = None
        self.inner: asyncio.Protocol | None = None
        self.early: list[bytes] = []  # bytes that arrived before the hand-over
        self.early_eof = False
        self.deadline: asyncio.TimerHandle | None = None
        self.headers_done = False
        self.tail = b""
        self.task: asyncio.Task[None] | None = None
        self.handed = False  # past the handshake: inner handler set, or refusing
        self.closed = False

    # lifecycle ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        lst = self.listener
        self.transport = transport
        lst._gates.add(self)
        self.source = source_of(transport.get_extra_info("peername"))
        try:
            lst.limiter.acquire(self.source)
            self.counted = True
        except LimitExceeded as exc:
            if lst.refusing >= defaults.MAX_REFUSING_CONNECTIONS:
                transport.abort()  # too many to even tell: drop at once
                return
            lst.refusing += 1
            self.refusal = exc
        # A deadline for the whole handshake phase: TLS, then the first request's headers.
        self.deadline = self.loop.call_later(lst.limits.handshake_timeout, self._timed_out)
        if lst.ssl_ctx is not None:
            transport.pause_reading()  # the ClientHello waits in the kernel for start_tls
            self.task = self.loop.create_task(self._tls(transport, lst.ssl_ctx))
        else:
            self._hand_over(transport)

    async def _tls(self, raw: asyncio.Transport, ctx: ssl.SSLContext) -> None:
        try:
            tls = await self.loop.start_tls(
                raw, self, ctx, server_side=True,
                ssl_handshake_timeout=self.listener.limits.handshake_timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError, ConnectionError, asyncio.CancelledError) as exc:
            # A failed or timed-out handshake never reaches connection_lost: release here.
            log.debug("TLS handshake from %s failed: %r", self.source, exc)
            raw.abort()
            self._finish()
            return
        if tls is None or self.closed:
            raw.abort()
            self._finish()
            return
        self.transport = tls
        self._hand_over(tls)

    def _hand_over(self, transport: asyncio.Transport) -> None:
        lst = self.listener
        self.handed = True
        if self.refusal is None and lst.user_of is not None:
            user = lst.user_of(transport)
            if user:
                try:
                    lst.limiter.acquire_user(user)
                    self.user = user
                except LimitExceeded as exc:
                    self.refusal = exc
                    lst.refusing += 1
        if self.refusal is not None:
            log.warning("refused a connection from %s to %s: %s", self.source, lst.what,
                        self.refusal.message)
            if self.early:
                self._refuse()
            return  # the 429 goes out when the request arrives (see data_received)
        self.inner = lst.handler()
        self.inner.connection_made(transport)
        for chunk in self.early:
            self._forward(chunk)
        self.early.clear()
        if self.early_eof:
            self.inner.eof_received()

    def _refuse(self) -> None:
        assert self.refusal is not None and self.transport is not None
        if not self.transport.is_closing():
            self.transport.write(refusal_response(self.refusal))
            self.transport.close()  # after the response is flushed

    def _timed_out(self) -> None:
        self.deadline = None
        if not self.headers_done and self.transport is not None:
            log.info("closing a connection from %s to %s: no request within %gs",
                     self.source, self.listener.what, self.listener.limits.handshake_timeout)
            self.transport.abort()
            if self.task is not None:
                self.task.cancel()

    def abort(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.transport is not None:
            self.transport.abort()

    def _finish(self) -> None:
        """Release everything this connection holds (once)."""
        if self.closed:
            return
        self.closed = True
        memory.note_closed()
        lst = self.listener
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        if self.counted:
            lst.limiter.release(self.source)
        if self.user is not None:
            lst.limiter.release_user(self.user)
        if self.refusal is not None:
            lst.refusing -= 1
        lst._gates.discard(self)
        self.inner = None
        self.early.clear()

    # forwarding --------------------------------------------------------------------------
    def _forward(self, data: bytes) -> None:
        if not self.headers_done:
            # The first request's headers end with an empty line; until then the deadline runs.
            seen = self.tail + data
            if b"\r\n\r\n" in seen or b"\n\n" in seen:
                self.headers_done = True
                if self.deadline is not None:
                    self.deadline.cancel()
                    self.deadline = None
            self.tail = seen[-3:]
        assert self.inner is not None
        self.inner.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self._forward(data)
        elif self.handed and self.refusal is not None:
            self._refuse()
        else:
            self.early.append(data)  # decrypted before start_tls returned: keep the order

    def eof_received(self) -> bool | None:
        if self.inner is not None:
            return self.inner.eof_received()
        self.early_eof = True
        return None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        inner = self.inner
        self._finish()
        if inner is not None:
            inner.connection_lost(exc)


def user_identity_of(transport: asyncio.BaseTransport) -> str | None:
    """For the auth API: the user named by a client certificate of a *user* identity (nodes and
    proxies are not users and are not counted against max_users)."""
    from teleport.ca import tlsca

    ssl_obj = transport.get_extra_info("ssl_object")
    if ssl_obj is None:
        return None
    der = ssl_obj.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        identity = tlsca.identity_from_cert(der)
    except Exception:  # not ours to judge here: the API refuses bad identities per request
        return None
    if identity is None or identity.system_role != "User":
        return None
    return str(identity.username)
