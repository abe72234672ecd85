"""The proxy's relay to its auth servers for nodes that joined through the proxy (behind a
firewall, with no route to auth's 3025): GET RELAY_PATH upgrades to a WebSocket whose binary
messages are a raw byte stream to one of the proxy's auth servers.

The node runs its own TLS with auth inside it, end to end: at join the TLS CA it fetches is
checked against its CA pin and the token travels only inside TLS to auth; after the join every
call is the node's own mutual TLS, so auth authorizes the node by its x509 identity exactly as
when dialled directly and the proxy, which never sees inside, speaks for nobody. What an
unauthenticated caller can reach this way is what auth serves without a client certificate
(its CA, the token join), bounded in total and per source address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiohttp import WSMsgType, web

from teleport import defaults
from teleport.errors import BadParameter, ConnectionProblem
from teleport.limits import ConnectionLimiter, source_of
from teleport.proxy.webapi.security import SECURITY_HEADERS

log = logging.getLogger(__name__)

RELAY_PATH = "/v1/webapi/auth/stream"


def split_addr(addr: str) -> tuple[str, int]:
    """("host", port) of "host:port" or "[v6]:port"."""
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


class AuthRelay:
    """The route; `auth_addrs` says where the proxy's auth servers are now (its client's list)."""

    def __init__(self, auth_addrs: Callable[[], list[str]]) -> None:
        self.auth_addrs = auth_addrs
        self.limiter = ConnectionLimiter(
            defaults.AUTH_RELAY_MAX_PER_SOURCE, defaults.AUTH_RELAY_MAX_STREAMS,
            what="the proxy's relay to the auth service",
        )

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(RELAY_PATH, self.stream)

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        last: Exception | None = None
        for addr in self.auth_addrs():
            try:
                host, port = split_addr(addr)
                return await asyncio.wait_for(asyncio.open_connection(host, port),
                                              defaults.AUTH_RELAY_DIAL_TIMEOUT)
            except (OSError, ValueError, TimeoutError) as exc:
                last = exc
        raise ConnectionProblem(f"the proxy cannot reach the auth service: {last or 'no auth server known'}")

    async def stream(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=defaults.AUTH_RELAY_MAX_MESSAGE,
                                   heartbeat=defaults.AUTH_RELAY_PING_INTERVAL)
        ws.headers.update(SECURITY_HEADERS)
        if not ws.can_prepare(request).ok:
            raise BadParameter("this route is a WebSocket relay to the auth service for nodes "
                               "that join through the proxy: connect with a WebSocket client")
        peer = request.transport.get_extra_info("peername") if request.transport else None
        source = source_of(peer)
        self.limiter.acquire(source)  # LimitExceeded: a 429 before the upgrade
        try:
            reader, writer = await self._dial()
            try:
                await ws.prepare(request)
                await _pump(ws, reader, writer)
            finally:
                writer.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await writer.wait_closed()
        finally:
            self.limiter.release(source)
        return ws


async def _pump(ws: web.WebSocketResponse, reader: asyncio.StreamReader,
                writer: asyncio.StreamWriter) -> None:
    """Bytes both ways until either side ends (TLS never half-closes: one end ends both)."""

    async def to_auth() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY:
                break
            writer.write(msg.data)
            await writer.drain()

    async def to_node() -> None:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await ws.send_bytes(data)

    tasks = [asyncio.ensure_future(to_auth()), asyncio.ensure_future(to_node())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        with contextlib.suppress(Exception):
            await ws.close()
