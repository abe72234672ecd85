"""A client of the auth API (mutual TLS), used by the proxy, nodes and tctl."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp

from teleport import defaults
from teleport.defaults import AUTH_SERVER_NAME
from teleport.errors import ConnectionProblem, error_from_dict
from teleport.httpapi import error_for_status
from teleport.retry import backoff_delay
from teleport.types.names import api_path

log = logging.getLogger(__name__)


def client_ssl_context(
    ca_pem: bytes | None, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """TLS that trusts only the cluster's CA and presents our identity when we have one."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_pem is not None:
        ctx.load_verify_locations(cadata=ca_pem.decode())
    if cert_file and key_file:
        ctx.load_cert_chain(cert_file, key_file)
    return ctx


class AuthClient:
    """Calls the auth API on one of several auth servers.

    A call goes to the auth server that answered last; when it cannot be reached the next one is
    tried at once, and when none can, the whole list again after a backoff with jitter
    (defaults.AUTH_RETRY_*), a bounded number of rounds, then ConnectionProblem. The list can be
    replaced while calls run (`set_addrs`: what the cluster says its auth servers are).
    """

    def __init__(self, addrs: list[str], ssl_context: ssl.SSLContext, timeout: float = 30,
                 retry_rounds: int = defaults.AUTH_RETRY_ROUNDS,
                 connector: Callable[[ssl.SSLContext], aiohttp.BaseConnector] | None = None) -> None:
        if not addrs:
            raise ConnectionProblem("no auth server address configured (teleport.auth_servers)")
        self.addrs = list(dict.fromkeys(addrs))
        self.ssl = ssl_context
        self.retry_rounds = max(1, retry_rounds)
        self.failovers = 0  # calls that moved to another auth server (tests, benches)
        self.retries = 0  # backoff rounds waited (tests, benches)
        self._preferred = self.addrs[0]
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=5)
        self._session: aiohttp.ClientSession | None = None
        # how connections are made (default: TCP to each address; a node behind a firewall:
        # through the proxy's relay, reversetunnel/viaproxy.py)
        self._connector = connector or (lambda ctx: aiohttp.TCPConnector(ssl=ctx, limit=100))

    def set_addrs(self, addrs: list[str]) -> None:
        """Replace the auth servers to call (empty lists are ignored: never forget them all)."""
        addrs = list(dict.fromkeys(a for a in addrs if a))
        if addrs:
            self.addrs = addrs

    def _order(self) -> list[str]:
        """The preferred (last good) server first, then the others in list order."""
        addrs = list(self.addrs)
        if self._preferred in addrs:
            addrs.remove(self._preferred)
            addrs.insert(0, self._preferred)
        return addrs

    async def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=self._connector(self.ssl), timeout=self._timeout
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> AuthClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def call(self, method: str, path: str, body: Any = None, raw: bool = False) -> Any:
        """One API call; raises the server's error type with its message."""
        session = await self._get_session()
        last: Exception | None = None
        for round_no in range(self.retry_rounds):
            if round_no:
                self.retries += 1
                await asyncio.sleep(backoff_delay(
                    round_no - 1, defaults.AUTH_RETRY_BASE_DELAY, defaults.AUTH_RETRY_MAX_DELAY))
            for i, addr in enumerate(self._order()):
                try:
                    result = await self._call_one(session, addr, method, path, body, raw)
                except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
                        raise ConnectionProblem(
                            f"auth server {addr} presented a certificate not signed by this "
                            f"cluster's CA: {exc.certificate_error}"
                        ) from None
                    log.info("auth server %s: %s; trying the next one", addr, exc)
                    last = exc
                    continue
                if i or round_no:
                    self.failovers += 1
                self._preferred = addr
                return result
        raise ConnectionProblem(
            f"cannot reach the auth server at {', '.join(self.addrs)} "
            f"({self.retry_rounds} attempts): {last}; is it running?"
        )

    async def _call_one(self, session: aiohttp.ClientSession, addr: str, method: str,
                        path: str, body: Any, raw: bool) -> Any:
        async with session.request(
            method, f"https://{addr}{path}", json=body, server_hostname=AUTH_SERVER_NAME
        ) as resp:
            if raw and resp.status == 200:
                return await resp.read()
            try:
                data = await resp.json(content_type=None)
            except Exception:
                data = None
            if resp.status >= 400:
                if isinstance(data, dict) and "error" in data:
                    raise error_from_dict(data)
                raise error_for_status(
                    resp.status, f"auth server {addr} answered HTTP {resp.status}"
                )
            return data

    # typed helpers ------------------------------------------------------------------------
    async def ping(self) -> dict[str, Any]:
        return await self.call("GET", "/v1/ping")

    async def get_authorities(self) -> list[dict[str, Any]]:
        return await self.call("GET", "/v1/authorities")

    async def create_invite(
        self, user: str, logins: list[str], roles: list[str], ttl: float | None, proxy_addr: str
    ) -> dict[str, Any]:
        body = {"user": user, "logins": logins, "roles": roles, "ttl": ttl, "proxy_addr": proxy_addr}
        return await self.call("POST", "/v1/invites", body)

    async def get_invite(self, token: str) -> dict[str, Any]:
        return await self.call("GET", api_path("/v1/invites/{token}", token=token))

    async def complete_invite(self, token: str, password: str, otp_code: str,
                              public_key: str = "", ttl: float | None = None) -> dict[str, Any]:
        """Complete a signup; with `public_key`, also log in (the answer's "login")."""
        body: dict[str, Any] = {"password": password, "otp_code": otp_code}
        if public_key:
            body.update(public_key=public_key, ttl=ttl)
        return await self.call("POST", api_path("/v1/invites/{token}/complete", token=token), body)

    async def list_users(self) -> list[dict[str, Any]]:
        return await self.call("GET", "/v1/users")

    async def delete_user(self, name: str) -> str:
        """Delete a user and/or its pending invite; says which ("user", "invite", ...)."""
        resp = await self.call("DELETE", api_path("/v1/users/{user}", user=name))
        return str(resp.get("removed", "user")) if isinstance(resp, dict) else "user"

    async def authenticate_ssh(
        self, user: str, password: str, otp_code: str, public_key: str, ttl: float | None,
        remote_addr: str = "",
    ) -> dict[str, Any]:
        body = {"password": password, "otp_code": otp_code, "public_key": public_key, "ttl": ttl,
                "remote_addr": remote_addr}
        return await self.call("POST", api_path("/v1/users/{user}/ssh/authenticate", user=user), body)

    async def sign_user(self, user: str, ttl: float | None) -> dict[str, Any]:
        return await self.call("POST", api_path("/v1/users/{user}/certs", user=user), {"ttl": ttl})

    async def sign_host(self, nodename: str, addresses: list[str]) -> dict[str, Any]:
        body = {"nodename": nodename, "addresses": addresses}
        return await self.call("POST", "/v1/hosts/certs", body)

    async def sign_forward_cert(self, public_key: str, principal: str) -> str:
        """Recording proxy mode: a short-lived host certificate for `public_key` naming the node
        `principal`, for this proxy to present to clients (OpenSSH line)."""
        out = await self.call(
            "POST", "/v1/hosts/forward-certs", {"public_key": public_key, "principal": principal}
        )
        return str(out["cert"])

    async def create_token(self, roles: list[str], ttl: float | None) -> dict[str, Any]:
        return await self.call("POST", "/v1/tokens", {"roles": roles, "ttl": ttl})

    async def list_tokens(self) -> list[dict[str, Any]]:
        return await self.call("GET", "/v1/tokens")

    async def delete_token(self, token: str) -> None:
        await self.call("DELETE", api_path("/v1/tokens/{token}", token=token))

    async def list_nodes(self) -> list[dict[str, Any]]:
        return await self.call("GET", "/v1/nodes")

    async def heartbeat(self, server: dict[str, Any]) -> None:
        await self.call("POST", "/v1/nodes", server)

    async def check_access(
        self, user: str, login: str, host_id: str, labels: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Ask auth whether user may log in as login on the node; raises AccessDenied."""
        body: dict[str, Any] = {"user": user, "login": login, "host_id": host_id}
        if labels is not None:
            body["labels"] = labels
        return await self.call("POST", "/v1/access/check", body)

    async def list_proxies(self) -> list[dict[str, Any]]:
        return await self.call("GET", "/v1/proxies")

    async def list_auth_servers(self) -> list[dict[str, Any]]:
        """The auth servers registered in the cluster (each spec.addr is where to dial it)."""
        return await self.call("GET", "/v1/authservers")

    # audit, sessions, recordings -----------------------------------------------------------
    async def emit_events(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """Deliver a batch of audit events (redeliveries are stored once)."""
        return await self.call("POST", "/v1/events", {"events": events})

    async def search_events(self, **query: Any) -> list[dict[str, Any]]:
        from urllib.parse import urlencode

        q = urlencode({k: v for k, v in query.items() if v not in (None, "")})
        return await self.call("GET", "/v1/events" + (f"?{q}" if q else ""))

    async def upsert_session(self, session: dict[str, Any]) -> None:
        await self.call("POST", "/v1/sessions", session)

    async def delete_session(self, sid: str) -> None:
        await self.call("DELETE", api_path("/v1/sessions/{sid}", sid=sid))

    async def list_sessions(self) -> list[dict[str, Any]]:
        return await self.call("GET", "/v1/sessions")

    async def get_session(self, sid: str) -> dict[str, Any]:
        return await self.call("GET", api_path("/v1/sessions/{sid}", sid=sid))

    async def list_recordings(self, since: float | None = None) -> list[dict[str, Any]]:
        return await self.call("GET", "/v1/recordings" + (f"?since={since}" if since else ""))

    async def get_recording(self, sid: str) -> bytes:
        return await self.call("GET", api_path("/v1/sessions/{sid}/recording", sid=sid), raw=True)

    async def upload_recording(self, sid: str, path: str) -> None:
        """Stream a finished recording file to the auth service."""
        session = await self._get_session()
        last: Exception | None = None
        for addr in self._order():
            try:
                with open(path, "rb") as f:
                    async with session.put(
                        f"https://{addr}" + api_path("/v1/sessions/{sid}/recording", sid=sid), data=f,
                        server_hostname=AUTH_SERVER_NAME,
                        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=120),
                    ) as resp:
                        if resp.status >= 400:
                            data = await resp.json(content_type=None)
                            raise error_from_dict(data if isinstance(data, dict) else {})
                        return
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                last = exc
        raise ConnectionProblem(f"cannot upload the recording of {sid}: {last}")
