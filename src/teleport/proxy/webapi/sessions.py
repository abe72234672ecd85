"""Web API routes for browser sessions and the node list.

POST /v1/webapi/sessions logs in (user, password, otp_code) and sets the session cookie;
GET answers who is logged in (and the CSRF token, readable only by same-origin pages);
DELETE logs out on the server. GET /v1/webapi/sites/<cluster>/nodes lists the nodes the user's
roles allow, asked from auth exactly as `tsh ls` is.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from teleport.auth.client import AuthClient
from teleport.errors import BadParameter, NotFound
from teleport.httpapi import json_body
from teleport.limits import LoginRateLimits, source_of
from teleport.proxy import lookup
from teleport.proxy.webapi.security import (
    check_origin,
    clear_session_cookie,
    set_session_cookie,
    web_session,
)


def remote_addr(request: web.Request) -> str:
    """The browser's address as "ip:port" ("" when unknown)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return ""


class SessionRoutes:
    """Handlers for /v1/webapi/sessions and /v1/webapi/sites/<cluster>/nodes."""

    def __init__(self, auth: AuthClient, cluster_name: str, login_rates: LoginRateLimits) -> None:
        self.auth = auth
        self.cluster_name = cluster_name
        # the same limiter as /v1/webapi/ssh/certs: one budget per address and user, whichever
        # door the attempts come through
        self.login_rates = login_rates

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/webapi/sessions", self.login)
        router.add_get("/v1/webapi/sessions", self.current)
        router.add_delete("/v1/webapi/sessions", self.logout)
        router.add_get("/v1/webapi/sites/{cluster}/nodes", self.nodes)

    async def login(self, request: web.Request) -> web.Response:
        # A login form cannot be posted from another site: the Origin must be ours, and the body
        # must be JSON (which a cross-site form cannot send without a CORS preflight we refuse).
        check_origin(request)
        if request.content_type != "application/json":
            raise BadParameter("send the login as application/json")
        data = await json_body(request)
        user = data.get("user")
        if not isinstance(user, str) or not user:
            raise BadParameter("missing user name")
        remote = remote_addr(request)
        self.login_rates.check(source_of(remote), user)
        answer = await self.auth.call("POST", "/v1/websessions", {
            "user": user, "password": str(data.get("password") or ""),
            "otp_code": str(data.get("otp_code") or ""), "remote_addr": remote,
        })
        session_id = str(answer.pop("session_id"))
        resp = web.json_response(self._public(answer))
        set_session_cookie(resp, session_id, float(answer["expires"]) - time.time())
        return resp

    @staticmethod
    def _public(session: dict[str, Any]) -> dict[str, Any]:
        """What the page may know of its session (never the id: that stays in the cookie)."""
        keys = ("user", "csrf_token", "expires", "idle_timeout", "logins")
        return {k: session[k] for k in keys if k in session}

    async def current(self, request: web.Request) -> web.Response:
        ctx = await web_session(request, self.auth)
        return web.json_response({**self._public(ctx.session), "cluster_name": self.cluster_name})

    async def logout(self, request: web.Request) -> web.Response:
        ctx = await web_session(request, self.auth)  # DELETE: needs the CSRF token
        await self.auth.call("POST", "/v1/websessions/delete", {"session_id": ctx.session_id})
        resp = web.json_response({"ok": True})
        clear_session_cookie(resp)
        return resp

    def check_cluster(self, request: web.Request) -> None:
        if request.match_info["cluster"] != self.cluster_name:
            raise NotFound(
                f"cluster {request.match_info['cluster'][:80]!r} is not served by this proxy "
                f"(it serves {self.cluster_name!r})"
            )

    async def nodes(self, request: web.Request) -> web.Response:
        ctx = await web_session(request, self.auth)
        self.check_cluster(request)
        nodes = await self.auth.call("POST", "/v1/access/nodes", {"user": ctx.user})
        out = []
        for n in nodes if isinstance(nodes, list) else []:
            host, port = lookup.node_address(n)
            out.append({
                "id": n.get("metadata", {}).get("name", ""),
                "hostname": n.get("spec", {}).get("hostname", ""),
                "addr": f"{host}:{port}",
                "labels": lookup.node_labels(n),
            })
        out.sort(key=lambda n: (n["hostname"], n["id"]))
        return web.json_response({"items": out})
