"""A node that reaches auth only through the proxy (its auth_servers is the proxy's web address).

`probe` asks an address whether it is a proxy (its /v1/webapi/ping answer, which also says where
its tunnel listener is). `RelayDialer` opens one WebSocket to the proxy's auth relay per
connection and hands back a local socket carrying its bytes; `relay_connector` makes aiohttp run
its TLS over such sockets, so AuthClient and the join speak mutual TLS to auth end to end exactly
as they do when they dial auth directly (the proxy relays bytes it cannot read).

The outer HTTPS to the proxy is not what anything relies on: its certificate is often
self-signed, and the TLS inside is checked against the cluster's CA (pinned at join). A forged
ping can only name another tunnel address, where the agent checks the proxy's host certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from teleport import defaults
from teleport.config.addr import HostPort, parse_host_port
from teleport.errors import BadParameter
from teleport.files import write_secret
from teleport.reversetunnel.authrelay import RELAY_PATH
from teleport.reversetunnel.bridge import socket_pair

log = logging.getLogger(__name__)

Dial = Callable[[str, int], Awaitable[socket.socket]]


def _outer_tls() -> ssl.SSLContext:
    """TLS to the proxy's web port only as a carrier (see the module docstring)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass(frozen=True)
class ProxyInfo:
    """A proxy a node joins through: its web address and its reverse tunnel address."""

    web_addr: str
    tunnel_addr: str


def tunnel_addr_of(ping: Any, web_addr: str) -> str:
    """The tunnel address (host:port) a proxy's ping announces: its web host and the default
    port when it announces none; BadParameter when what it announces is not an address."""
    proxy = ping.get("proxy") if isinstance(ping, dict) else None
    tunnel = proxy.get("tunnel") if isinstance(proxy, dict) else None
    announced = tunnel.get("public_addr") if isinstance(tunnel, dict) else None
    if isinstance(announced, str) and announced:
        try:
            addr = parse_host_port(announced, defaults.PROXY_TUNNEL_PORT)
        except BadParameter as exc:
            raise BadParameter(f"the proxy at {web_addr} announces a bad tunnel address: {exc}") from None
        if addr.host in ("0.0.0.0", "::"):
            raise BadParameter(f"the proxy at {web_addr} announces the tunnel address {announced!r}, "
                               "which names no host: set its proxy_service.tunnel_public_addr")
        return str(addr)
    host = parse_host_port(web_addr, defaults.PROXY_WEB_PORT).host
    return str(HostPort(host, defaults.PROXY_TUNNEL_PORT))


async def probe(addr: str) -> ProxyInfo | None:
    """ProxyInfo when `addr` answers as a Teleport proxy; None when it answers otherwise (an auth
    server); OSError / aiohttp.ClientError when it cannot be reached."""
    timeout = aiohttp.ClientTimeout(total=defaults.PROXY_PROBE_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        async with s.get(f"https://{addr}/v1/webapi/ping", ssl=_outer_tls()) as resp:
            if resp.status != 200:
                return None
            try:
                data = await resp.json(content_type=None)
            except ValueError:
                return None
    if not isinstance(data, dict) or not isinstance(data.get("proxy"), dict):
        return None
    return ProxyInfo(addr, tunnel_addr_of(data, addr))


def cache_path(data_dir: str) -> str:
    return os.path.join(data_dir, defaults.VIA_PROXY_FILE)


def load_cached(data_dir: str) -> list[ProxyInfo]:
    """The proxies this node joined through, as a previous run saved them ([] when none)."""
    try:
        with open(cache_path(data_dir)) as f:
            data = json.load(f)
        return [ProxyInfo(str(p["web_addr"]), str(p["tunnel_addr"])) for p in data["proxies"]]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring %s: %s", cache_path(data_dir), exc)
        return []


def save_cached(data_dir: str, proxies: list[ProxyInfo]) -> None:
    body = {"proxies": [{"web_addr": p.web_addr, "tunnel_addr": p.tunnel_addr} for p in proxies]}
    write_secret(cache_path(data_dir), json.dumps(body, indent=2) + "\n")


async def find_proxies(configured: list[str], data_dir: str) -> list[ProxyInfo]:
    """The configured addresses that are proxies ([] when they are auth servers). A proxy that
    cannot be reached now counts as one when a previous run joined through it."""
    cached = {p.web_addr: p for p in load_cached(data_dir)}
    found: list[ProxyInfo] = []
    for addr in configured:
        try:
            info = await probe(addr)
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            if addr in cached:
                log.warning("proxy %s is unreachable now (%s); it is retried", addr, exc)
                found.append(cached[addr])
            continue
        if info is not None:
            found.append(info)
    if found and found != list(cached.values()):
        save_cached(data_dir, found)
    return found


class RelayDialer:
    """Sockets to auth through proxies' relays: dial(host, port) goes through proxy host:port."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    async def dial(self, host: str, port: int) -> socket.socket:
        """A local socket whose bytes reach an auth server through the proxy at host:port."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=defaults.AUTH_RELAY_DIAL_TIMEOUT))
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            ws = await self._session.ws_connect(
                f"wss://{where}{RELAY_PATH}", ssl=_outer_tls(),
                max_msg_size=defaults.AUTH_RELAY_MAX_MESSAGE, heartbeat=defaults.AUTH_RELAY_PING_INTERVAL,
                timeout=aiohttp.ClientWSTimeout(ws_close=5),
            )
        except aiohttp.WSServerHandshakeError as exc:
            raise ConnectionRefusedError(f"the proxy at {where} refused the auth relay: HTTP {exc.status}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConnectionRefusedError(f"cannot reach the proxy at {where}: {exc}") from None
        mine, theirs = socket_pair()
        task = asyncio.ensure_future(_pump(ws, mine))
        self._pumps.add(task)
        task.add_done_callback(self._pumps.discard)
        return theirs

    async def close(self) -> None:
        for t in list(self._pumps):
            t.cancel()
        if self._session is not None:
            await self._session.close()


async def _pump(ws: aiohttp.ClientWebSocketResponse, sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()

    async def up() -> None:
        while True:
            data = await loop.sock_recv(sock, 65536)
            if not data:
                break
            await ws.send_bytes(data)

    async def down() -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.BINARY:
                break
            await loop.sock_sendall(sock, msg.data)

    tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        sock.close()
        with contextlib.suppress(Exception):
            await ws.close()


class _NoDNS(AbstractResolver):
    """The relay connector never resolves names: the URL's host:port names the proxy to go
    through, and the dialer finds it."""

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET,
                              proto=0, flags=0)]

    async def close(self) -> None:
        pass


class _RelayConnector(aiohttp.TCPConnector):
    """aiohttp's connector with its TCP dial replaced by `dial` (TLS, pooling unchanged)."""

    def __init__(self, dial: Dial, **kw: Any) -> None:
        super().__init__(resolver=_NoDNS(), **kw)
        self._dial = dial

    # aiohttp's hook between name resolution and TLS (its arguments vary across 3.x releases,
    # hence *args/**kwargs: only the factory, ssl, server_hostname and req are used)
    async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> Any:
        req = kwargs["req"]
        try:
            sock = await self._dial(str(req.url.host), int(req.url.port))
        except OSError as exc:
            raise aiohttp.ClientConnectorError(req.connection_key, exc) from exc
        try:
            return await self._loop.create_connection(
                args[0], sock=sock, ssl=kwargs.get("ssl"), server_hostname=kwargs.get("server_hostname"),
            )
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise aiohttp.ClientConnectorCertificateError(req.connection_key, exc) from exc
        except (ssl.SSLError, OSError) as exc:
            sock.close()
            raise aiohttp.ClientConnectorError(req.connection_key, exc) from exc


def relay_connector(dial: Dial, ssl_ctx: ssl.SSLContext | bool,
                    limit: int = defaults.AUTH_RELAY_CLIENT_LIMIT) -> aiohttp.TCPConnector:
    """An aiohttp connector whose connections are sockets from `dial`."""
    return _RelayConnector(dial, ssl=ssl_ctx, limit=limit)
