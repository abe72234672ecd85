"""One SSH channel <-> one local stream socket (an end of a socketpair), with flow control.

Both ends of a tunnel use it: the proxy turns a channel opened back to an agent into a socket it
relays like a dialled TCP connection, and the agent turns the channel it accepts into a socket
it hands to the node's SSH server (which then reads the signed proxy header and runs asyncssh
on it exactly as on an accepted TCP connection).
"""

from __future__ import annotations

import asyncio
import logging
import socket

import asyncssh

log = logging.getLogger(__name__)


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair of non-blocking stream sockets."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    a.setblocking(False)
    b.setblocking(False)
    return a, b


class _SocketSide(asyncio.Protocol):
    """Socket bytes go straight into the channel."""

    def __init__(self, bridge: ChannelBridge) -> None:
        self.bridge = bridge

    def data_received(self, data: bytes) -> None:
        chan = self.bridge.chan
        if chan is not None:
            chan.write(data)

    def eof_received(self) -> bool:
        # SSH over the channel never half-closes: the other side's EOF ends the stream
        if self.bridge.chan is not None:
            self.bridge.chan.write_eof()
        return False

    def pause_writing(self) -> None:
        if self.bridge.chan is not None:
            self.bridge.chan.pause_reading()

    def resume_writing(self) -> None:
        if self.bridge.chan is not None:
            self.bridge.chan.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.bridge.chan is not None:
            self.bridge.chan.close()


class ChannelBridge(asyncssh.SSHTCPSession[bytes]):
    """The asyncssh session of the channel; owns `sock` (closed with the channel)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.chan: asyncssh.SSHTCPChannel[bytes] | None = None
        self.transport: asyncio.Transport | None = None
        self._pending: list[bytes] = []
        self._eof = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self.chan = chan
        # what arrives before the socket transport exists is buffered (it is the first packet
        # or two of an SSH handshake: small)
        self._task = asyncio.ensure_future(self._attach())

    async def _attach(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_connection(lambda: _SocketSide(self), sock=self.sock)
        except OSError as exc:
            log.warning("cannot attach a tunnel channel to its socket: %s", exc)
            if self.chan is not None:
                self.chan.close()
            return
        if self._closed:
            transport.close()
            return
        self.transport = transport
        if self._pending:
            transport.write(b"".join(self._pending))
            self._pending.clear()
        if self._eof and transport.can_write_eof():
            transport.write_eof()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if self.transport is not None:
            self.transport.write(data)
        else:
            self._pending.append(data)

    def eof_received(self) -> bool:
        if self.transport is not None:
            if self.transport.can_write_eof():
                self.transport.write_eof()
        else:
            self._eof = True
        return True

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.close()
        elif self._task is not None and self._task.done():
            self.sock.close()
        # else: _attach sees _closed and closes what it made
