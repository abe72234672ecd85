"""The proxy's HTTPS listener (3080): the login gateway for tsh and the web UI.

It holds no secrets of its own beyond its TLS key: every credential is checked by the auth
service, which the proxy calls with its own cluster identity. The web UI's routes (browser
sessions, nodes, the terminal WebSocket, the app's files) live in proxy/webapi/.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from aiohttp import web

from teleport import __version__, defaults
from teleport.auth.client import AuthClient
from teleport.errors import BadParameter, ConnectionProblem
from teleport.httpapi import error_middleware, json_body
from teleport.limits import LoginRateLimits, source_of
from teleport.proxy.webapi.account import AccountRoutes
from teleport.proxy.webapi.audit import AuditRoutes
from teleport.proxy.webapi.recordings import RecordingRoutes
from teleport.proxy.webapi.security import security_headers
from teleport.proxy.webapi.sessions import SessionRoutes
from teleport.proxy.webapi.signup import SignupRoutes
from teleport.proxy.webapi.sso import SSORoutes
from teleport.proxy.webapi.static import StaticRoutes
from teleport.proxy.webapi.terminal import TerminalRoutes
from teleport.reversetunnel.authrelay import AuthRelay

log = logging.getLogger(__name__)

# a login needs auth (it checks the password and signs the certificate); what is already signed
# keeps working from the proxies' and nodes' caches
LOGIN_AUTH_DOWN = (
    "cannot log in now: the cluster's auth service cannot be reached ({error}). Users already "
    "logged in can still list nodes and connect; try again when the auth service is back"
)


class WebProxy:
    """Routes of the public web API (/v1/webapi/...) and the invite page."""

    def __init__(self, auth: AuthClient, cluster_name: str, ssh_public_addr: str, web_public_addr: str) -> None:
        self.auth = auth
        self.cluster_name = cluster_name
        self.ssh_public_addr = ssh_public_addr
        self.web_public_addr = web_public_addr
        self.tunnel_public_addr = ""  # where agents reach the tunnel listener (set by the process)
        self._second_factor: str | None = None
        # Refuse login floods here, before they cost auth an argon2 check (auth limits too).
        self.login_rates = LoginRateLimits()
        self.sessions = SessionRoutes(auth, cluster_name, self.login_rates)
        self.terminal = TerminalRoutes(auth, self.sessions)
        self.signup = SignupRoutes(auth, self.login_rates)
        self.account = AccountRoutes(auth, cluster_name)
        self.recordings = RecordingRoutes(auth, self.sessions)
        self.audit = AuditRoutes(auth, self.sessions)
        self.sso = SSORoutes(auth, self.login_rates)

    def set_ssh_proxy(self, ssh_proxy: Any) -> None:
        """The SSH proxy service the browser terminal routes through (once it runs)."""
        self.terminal.ssh_proxy = ssh_proxy

    def app(self) -> web.Application:
        # security_headers outermost: error answers get the headers too
        app = web.Application(middlewares=[security_headers, error_middleware],
                              client_max_size=1024 * 1024)
        r = app.router
        r.add_get("/", self.index)
        r.add_get("/webapi/ping", self.ping)
        r.add_get("/v1/webapi/ping", self.ping)
        r.add_post("/v1/webapi/ssh/certs", self.ssh_certs)
        r.add_post("/v1/webapi/users", self.complete_invite)
        self.signup.add_routes(r)  # the invite page and API, key logins
        self.account.add_routes(r)
        r.add_post("/v1/webapi/trustedclusters/validate", self.validate_trusted_cluster)
        self.sessions.add_routes(r)
        self.terminal.add_routes(r)
        # nodes behind a firewall: their own TLS to auth, relayed (reversetunnel/authrelay.py)
        AuthRelay(lambda: list(self.auth.addrs)).add_routes(r)
        self.recordings.add_routes(r)
        self.audit.add_routes(r)
        self.sso.add_routes(r)
        StaticRoutes().add_routes(r)
        return app

    async def second_factor(self) -> str:
        if self._second_factor is None:
            self._second_factor = str((await self.auth.ping())["second_factor"])
        return self._second_factor

    async def ping(self, request: web.Request) -> web.Response:
        try:
            auth = await self.sso.ping_auth(await self.second_factor())
        except (ConnectionProblem, TimeoutError, OSError):
            # auth is down: the proxy still says what it knows (a login then fails with the
            # clear "cannot log in now"; logged-in users keep working from the caches)
            auth = {"type": defaults.AUTH_TYPE,
                    "second_factor": self._second_factor or defaults.SECOND_FACTOR,
                    "connector_name": "", "connectors": []}
        return web.json_response(
            {
                "auth": auth,
                "proxy": {
                    "ssh": {"public_addr": self.ssh_public_addr},
                    "web": {"public_addr": self.web_public_addr},
                    "tunnel": {"public_addr": self.tunnel_public_addr},
                },
                "cluster_name": self.cluster_name,
                "server_version": __version__,
            }
        )

    async def validate_trusted_cluster(self, request: web.Request) -> web.Response:
        """A leaf cluster's CA exchange: its token (the whole authorization, rate limited as a
        login is) and CAs go to auth, our CAs come back."""
        data = await json_body(request)
        self.login_rates.check(source_of(_remote(request)), "trusted_cluster")
        body = {"token": data.get("token"), "cluster_name": data.get("cluster_name"), "cas": data.get("cas")}
        return web.json_response(await self.auth.call("POST", "/v1/trustedclusters/validate", body))

    async def ssh_certs(self, request: web.Request) -> web.Response:
        data = await json_body(request)
        user = data.get("user")
        if not isinstance(user, str) or not user:
            raise BadParameter("missing user name")
        source = source_of(_remote(request))
        self.login_rates.check(source, user)
        try:
            result = await self.auth.authenticate_ssh(
                user,
                str(data.get("password") or ""),
                str(data.get("otp_token") or ""),
                str(data.get("pub_key") or ""),
                data.get("ttl"),
                remote_addr=_remote(request),
            )
        except ConnectionProblem as exc:
            raise ConnectionProblem(LOGIN_AUTH_DOWN.format(error=exc.message)) from None
        return web.json_response(self._certs_body(result))

    @staticmethod
    def _certs_body(result: dict[str, Any]) -> dict[str, Any]:
        """A login's answer to tsh: certificates, host CA keys, cluster."""
        return {
            "username": result["username"],
            "cert": result["cert"],
            "tls_cert": result["tls_cert"],
            "roles": result["roles"],
            "logins": result["logins"],
            "expires": result["expires"],
            "host_signers": [
                {
                    "cluster_name": result["cluster_name"],
                    "type": "host",
                    "checking_keys": result["host_ca_keys"],
                }
            ],
            "tls_ca": result["tls_ca"],
            "cluster_name": result["cluster_name"],
        }

    async def complete_invite(self, request: web.Request) -> web.Response:
        data = await json_body(request)
        token = data.get("invite_token")
        if not isinstance(token, str) or not token:
            raise BadParameter("missing invite_token")
        pub_key = data.get("pub_key")
        result = await self.auth.complete_invite(
            token, str(data.get("password") or ""), str(data.get("otp_code") or ""),
            public_key=pub_key if isinstance(pub_key, str) else "", ttl=data.get("ttl"),
        )
        if isinstance(result.get("login"), dict):
            # tsh signup ends logged in: the same answer as /v1/webapi/ssh/certs
            result["login"] = self._certs_body(result["login"])
        return web.json_response(result)

    async def index(self, request: web.Request) -> web.Response:
        body = (
            f"<!doctype html><title>Teleport: {html.escape(self.cluster_name)}</title>"
            f"<h1>Cluster {html.escape(self.cluster_name)}</h1>"
            f"<p>Log in from a terminal: <code>tsh --proxy={html.escape(self.web_public_addr)} login</code></p>"
            '<p>or in the browser: <a href="/web">the web UI</a></p>'
        )
        return web.Response(text=body, content_type="text/html")


def _remote(request: web.Request) -> str:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return ""

