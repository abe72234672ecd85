"""tsh reaches the cluster's auth API as the user, through the proxy.

The proxy's `proxy:@cluster` subsystem is a raw byte stream to the auth API. tsh listens on
127.0.0.1:<ephemeral>, opens one such subsystem channel on its proxy SSH connection for every
accepted TCP connection and relays bytes both ways; an ordinary AuthClient then speaks mutual TLS
over it with the user's x509 certificate, so the auth API authorizes the user by their roles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import ssl
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import asyncssh

from teleport.auth.client import AuthClient
from teleport.client.ssh import Credentials, connect_proxy
from teleport.errors import ConnectionProblem, NotAuthenticated

log = logging.getLogger(__name__)

RELAY_CHUNK = 64 * 1024


def auth_subsystem(cluster: str) -> str:
    """The proxy subsystem that is a byte stream to `cluster`'s auth API."""
    return f"proxy:@{cluster}"


def tls_paths(creds: Credentials) -> tuple[str, str]:
    """(x509 certificate, TLS CA) files of the current login in ~/.tsh."""
    base = creds.key_path
    cert, ca = base + "-x509.pem", base + "-tlsca.pem"
    for path in (cert, ca):
        if not os.path.exists(path):
            raise NotAuthenticated(
                f"no TLS identity at {path} (logged in with an older tsh?): run 'tsh login' again"
            )
    return cert, ca


def user_ssl_context(creds: Credentials) -> ssl.SSLContext:
    """TLS trusting only the cluster's TLS CA, presenting the user's x509 cert and private key.

    The key is stored in OpenSSH format; the ssl module wants PEM, so a PKCS8 copy lives for the
    moment of loading in a private (0700) temp dir that is removed right after.
    """
    cert_path, ca_path = tls_paths(creds)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_path)
    tmp = tempfile.mkdtemp(prefix="tsh-tls-")  # mkdtemp creates it 0700
    try:
        key_file = os.path.join(tmp, "key.pem")
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(creds.key.export_private_key("pkcs8-pem"))
        try:
            ctx.load_cert_chain(cert_path, key_file)
        except ssl.SSLError as exc:
            raise NotAuthenticated(
                f"your TLS certificate {cert_path} does not match your key ({exc.reason}): "
                "run 'tsh login' again"
            ) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ctx


class AuthTunnel:
    """A loopback listener whose connections are relayed to auth over `proxy:@cluster`."""

    def __init__(self, proxy: asyncssh.SSHClientConnection, cluster: str) -> None:
        self.proxy = proxy
        self.cluster = cluster
        self.port = 0
        self.last_error = ""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        """Listen on 127.0.0.1:<ephemeral>; returns the port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._relay(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            chan_w, chan_r, chan_err = await self.proxy.open_session(
                subsystem=auth_subsystem(self.cluster), encoding=None
            )
        except (asyncssh.Error, OSError) as exc:
            self.last_error = f"the proxy refused the auth subsystem: {exc}"
            writer.close()
            return

        async def upstream() -> None:
            while data := await reader.read(RELAY_CHUNK):
                chan_w.write(data)
                await chan_w.drain()
            chan_w.write_eof()

        async def downstream() -> None:
            while data := await chan_r.read(RELAY_CHUNK):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

        async def errors() -> None:
            # the proxy reports a failure to reach auth as text on stderr, not as TLS bytes
            err = await chan_err.read()
            if err:
                text = err.decode(errors="replace").strip()
                self.last_error = text[len("ERROR: "):] if text.startswith("ERROR: ") else text

        try:
            await asyncio.gather(upstream(), downstream(), errors())
        except (OSError, asyncssh.Error) as exc:
            log.debug("auth tunnel connection ended: %s", exc)
        finally:
            chan_w.close()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def close(self) -> None:
        """Stop listening and end the relayed connections."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class TunnelAuthClient(AuthClient):
    """An AuthClient over an AuthTunnel: connection errors name the proxy's reason."""

    def __init__(self, tunnel: AuthTunnel, ssl_context: ssl.SSLContext) -> None:
        super().__init__([f"127.0.0.1:{tunnel.port}"], ssl_context)
        self.tunnel = tunnel

    async def call(self, method: str, path: str, body: Any = None, raw: bool = False) -> Any:
        """As AuthClient.call, with a connection failure explained as the proxy saw it."""
        try:
            return await super().call(method, path, body, raw)
        except ConnectionProblem as exc:
            why = self.tunnel.last_error or str(exc)
            raise ConnectionProblem(
                f"cannot reach the auth service of cluster {self.tunnel.cluster!r} through the "
                f"proxy: {why}"
            ) from None


@contextlib.asynccontextmanager
async def auth_client_via_proxy(
    creds: Credentials, proxy_conn: asyncssh.SSHClientConnection | None = None
) -> AsyncIterator[AuthClient]:
    """An AuthClient acting as the logged-in user, reaching auth through the proxy.

    Uses `proxy_conn` when given (left open for its owner), else its own proxy connection.
    """
    ctx = user_ssl_context(creds)
    proxy = proxy_conn or await connect_proxy(creds)
    tunnel = AuthTunnel(proxy, creds.profile.cluster)
    client: AuthClient | None = None
    try:
        await tunnel.start()
        client = TunnelAuthClient(tunnel, ctx)
        yield client
    finally:
        if client is not None:
            await client.close()
        await tunnel.close()
        if proxy_conn is None:
            proxy.close()
            await proxy.wait_closed()
