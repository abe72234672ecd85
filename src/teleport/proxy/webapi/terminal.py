"""The browser terminal: a WebSocket that the proxy turns into an SSH session on a node.

    GET /v1/webapi/sites/<cluster>/connect?node=<name or id>&login=<login>&cols=<n>&rows=<n>

The cookie's web session is checked before the upgrade; the page's first message must carry the
session's CSRF token ({"type": "auth", "csrf_token": ...}) before anything is dialled (a WebSocket
cannot carry custom headers, and secrets never go into URLs). The proxy then routes exactly as
the SSH proxy does (ProxySSHService.resolve: the same node lookup, access check and dial policy),
generates a key in memory, has auth sign it for the session's user for a few minutes, and logs in
to the node with it as `tsh ssh` would: the node sees an ordinary session (its own access check,
audit events and recording). The key is never written anywhere and dies with the session.

Messages: binary frames both ways are terminal bytes; text frames from the page are JSON
({"type": "resize", "cols", "rows"} or {"type": "input", "data"}); text frames from the proxy
are JSON {"type": "error" | "closed", "message"}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from typing import TYPE_CHECKING, Any

import asyncssh
from aiohttp import WSMsgType, web

from teleport import defaults, sshalgs
from teleport.auth.client import AuthClient
from teleport.errors import AccessDenied, BadParameter, ConnectionProblem, NotFound, TeleportError
from teleport.proxy import lookup
from teleport.proxy.webapi.security import SECURITY_HEADERS, WebContext, check_csrf, web_session
from teleport.proxy.webapi.sessions import SessionRoutes, remote_addr
from teleport.types.names import check_login

if TYPE_CHECKING:
    from teleport.proxy.sshproxy import DialTarget, ProxySSHService

log = logging.getLogger(__name__)


def _size(request: web.Request, name: str, default: int, top: int) -> int:
    text = request.query.get(name, "")
    if not text:
        return default
    if not text.isdigit() or not 1 <= int(text) <= top:
        raise BadParameter(f"{name} must be a number from 1 to {top}")
    return int(text)


class TerminalRoutes:
    """The /connect WebSocket; needs the proxy's SSH service for routing (set once it runs)."""

    def __init__(self, auth: AuthClient, sessions: SessionRoutes) -> None:
        self.auth = auth
        self.sessions = sessions
        self.ssh_proxy: ProxySSHService | None = None

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v1/webapi/sites/{cluster}/connect", self.connect)

    async def connect(self, request: web.Request) -> web.StreamResponse:
        ctx = await web_session(request, self.auth, csrf=False)  # the token comes in-band
        self.sessions.check_cluster(request)
        node = request.query.get("node", "")
        login = check_login(request.query.get("login", ""))
        cols = _size(request, "cols", 80, defaults.WEB_TERMINAL_MAX_COLS)
        rows = _size(request, "rows", 24, defaults.WEB_TERMINAL_MAX_ROWS)
        # the SSH proxy's own parser: the same syntax checks as `proxy:host@cluster`
        req = lookup.parse_proxy_subsystem(f"proxy:{node}@{self.sessions.cluster_name}")
        if not req.host:
            raise BadParameter("missing node: give ?node=<name or id>")
        ws = web.WebSocketResponse(
            max_msg_size=defaults.WEB_TERMINAL_MAX_MESSAGE, heartbeat=defaults.WEB_TERMINAL_PING_INTERVAL,
        )
        ws.headers.update(SECURITY_HEADERS)
        if not ws.can_prepare(request).ok:
            raise BadParameter("this route is a WebSocket: connect with a WebSocket client")
        await ws.prepare(request)
        try:
            await self._serve(request, ws, ctx, req, login, cols, rows)
        except TeleportError as err:
            await _say(ws, "error", err.message)
        except (asyncssh.Error, OSError) as exc:
            await _say(ws, "error", f"the SSH session failed: {exc}")
        finally:
            await ws.close()
        return ws

    async def _serve(
        self, request: web.Request, ws: web.WebSocketResponse, ctx: WebContext,
        req: lookup.ProxyRequest, login: str, cols: int, rows: int,
    ) -> None:
        try:
            first = await asyncio.wait_for(ws.receive(), defaults.WEB_TERMINAL_AUTH_TIMEOUT)
        except TimeoutError:
            raise AccessDenied("the page sent no CSRF token: reload it") from None
        token = ""
        if first.type == WSMsgType.TEXT:
            with contextlib.suppress(ValueError):
                msg = json.loads(first.data)
                if isinstance(msg, dict) and msg.get("type") == "auth":
                    token = str(msg.get("csrf_token") or "")
        check_csrf(token, str(ctx.session.get("csrf_token", "")))
        svc = self.ssh_proxy
        if svc is None:
            raise ConnectionProblem("the proxy's SSH service is still starting: try again")
        # In recording proxy mode too the browser terminal reaches registered teleport nodes
        # only, with a plain signed header: such a node records and audits the session itself
        # (it keeps quiet only about connections a recording proxy says it records), so each
        # event is stored once. OpenSSH hosts are refused below in every mode.
        target = await svc.resolve(req, ctx.user)
        if target.node is None:
            raise AccessDenied(
                f"{req.host!r} is not a registered node: the browser terminal connects to the "
                "cluster's nodes only"
            )
        conn = await self._open_ssh(request, svc, ctx, target, login)
        try:
            await _relay(ws, conn, cols, rows, target)
        finally:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)

    async def _open_ssh(
        self, request: web.Request, svc: ProxySSHService, ctx: WebContext, target: DialTarget,
        login: str,
    ) -> asyncssh.SSHClientConnection:
        """Log in to the node as `login` with a fresh in-memory key and a short-lived
        certificate that auth signs for the web session's user."""
        key = asyncssh.generate_private_key("ssh-ed25519")
        signed = await self.auth.call("POST", "/v1/websessions/certs", {
            "session_id": ctx.session_id,
            "public_key": key.export_public_key("openssh").decode(),
        })
        if login not in signed.get("logins", []):
            raise AccessDenied(
                f"login {login!r} is not allowed by your roles (your logins: "
                f"{', '.join(signed.get('logins', [])) or 'none'})"
            )
        cert = asyncssh.import_certificate(str(signed["cert"]))
        host_cas = [asyncssh.import_public_key(k) for k in signed["host_ca_keys"]]
        assert target.node is not None
        node_id = str(target.node["metadata"]["name"])
        error: Exception | None = None
        loop = asyncio.get_running_loop()
        # a node behind a firewall is reached through its reverse tunnel, the others by the
        # checked addresses themselves (never the name again)
        dials: list[str | None] = [None] if target.tunnel is not None else list(target.addrs)
        for addr in dials:
            if addr is None:
                peer = request.transport.get_extra_info("peername") if request.transport else None
                browser = (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else ("", 0)
                sock = await target.dial_tunnel(svc, browser)
                sock.setblocking(False)
            else:
                family = socket.AF_INET6 if ":" in addr else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
            try:
                if addr is not None:
                    await asyncio.wait_for(loop.sock_connect(sock, (addr, target.port)), 15)
                # the signed header tells the node the browser's address, as for tsh
                header = svc.proxy_header(remote_addr(request), target.shown)
                if header:
                    await loop.sock_sendall(sock, header)
                return await asyncssh.connect(
                    sock=sock, username=login, client_keys=[(key, cert)],
                    # the node must prove it is node_id with a certificate of the host CA
                    known_hosts=([], host_cas, []), host_key_alias=node_id,
                    agent_path=None, config=None, preferred_auth="publickey",
                    connect_timeout=30, **sshalgs.client_options(),
                )
            except asyncssh.PermissionDenied:
                sock.close()
                raise AccessDenied(f"node {target.shown} refused login {login!r}") from None
            except (TimeoutError, OSError, asyncssh.Error) as exc:
                sock.close()
                error = exc
        raise NotFound(f"cannot connect to node {target.shown}: {error or 'no address'}")


async def _say(ws: web.WebSocketResponse, kind: str, message: str) -> None:
    if not ws.closed:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps({"type": kind, "message": message}))


async def _relay(
    ws: web.WebSocketResponse, conn: asyncssh.SSHClientConnection, cols: int, rows: int,
    target: DialTarget,
) -> None:
    """Bytes both ways until the shell exits or the page goes away."""
    proc: asyncssh.SSHClientProcess[bytes] = await conn.create_process(
        term_type="xterm-256color", term_size=(cols, rows), encoding=None,
    )

    async def output() -> None:
        while True:
            data = await proc.stdout.read(32 * 1024)
            if not data:
                return
            await ws.send_bytes(data)

    pump = asyncio.ensure_future(output())
    reader = asyncio.ensure_future(_from_page(ws, proc))
    try:
        await asyncio.wait({pump, reader}, return_when=asyncio.FIRST_COMPLETED)
        if pump.done():
            await proc.wait_closed()
            status = proc.exit_status
            await _say(ws, "closed", f"session ended (exit status {status if status is not None else '?'})")
    finally:
        for t in (pump, reader):
            t.cancel()
        await asyncio.gather(pump, reader, return_exceptions=True)
        proc.close()


async def _from_page(ws: web.WebSocketResponse, proc: Any) -> None:
    async for msg in ws:
        if msg.type == WSMsgType.BINARY:
            proc.stdin.write(msg.data)
        elif msg.type == WSMsgType.TEXT:
            try:
                data = json.loads(msg.data)
            except ValueError:
                continue
            if not isinstance(data, dict):
                continue
            if data.get("type") == "input" and isinstance(data.get("data"), str):
                proc.stdin.write(data["data"].encode())
            elif data.get("type") == "resize":
                c, r = data.get("cols"), data.get("rows")
                if (isinstance(c, int) and isinstance(r, int)
                        and 1 <= c <= defaults.WEB_TERMINAL_MAX_COLS
                        and 1 <= r <= defaults.WEB_TERMINAL_MAX_ROWS):
                    proc.change_terminal_size(c, r)
        elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
            return
