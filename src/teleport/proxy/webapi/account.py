"""The account page's API: what the user's account holds, password change, security keys.

    GET    /web/account                         the app's page
    GET    /v1/webapi/account                   cluster, session expiry, keys, second factor
    PUT    /v1/webapi/account/password          {old_password, new_password, otp_code | webauthn}
    POST   /v1/webapi/account/keys/begin        a key registration challenge
    POST   /v1/webapi/account/keys              {password, webauthn: {challenge_id, credential, name}}
    DELETE /v1/webapi/account/keys              {password, id}

Every route needs the session cookie; the state-changing ones its CSRF token too. The proxy
passes the session id, never a user name: auth acts for the session's own user only.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from teleport import defaults
from teleport.auth.client import AuthClient
from teleport.httpapi import json_body
from teleport.proxy.webapi.security import web_session
from teleport.proxy.webapi.static import StaticRoutes


class AccountRoutes:
    def __init__(self, auth: AuthClient, cluster_name: str) -> None:
        self.auth = auth
        self.cluster_name = cluster_name

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/web/account", StaticRoutes().page)
        router.add_get("/v1/webapi/account", self.account)
        router.add_put("/v1/webapi/account/password", self.password)
        router.add_post("/v1/webapi/account/keys/begin", self.key_begin)
        router.add_post("/v1/webapi/account/keys", self.key_add)
        router.add_delete("/v1/webapi/account/keys", self.key_delete)

    async def _call(self, request: web.Request, path: str, keys: tuple[str, ...] = ()) -> Any:
        """Check the session (and CSRF token) before reading the body; pass on its string
        fields `keys` (and a `webauthn` answer) with the session id."""
        ctx = await web_session(request, self.auth)
        body: dict[str, Any] = {"session_id": ctx.session_id}
        if keys:
            data = await json_body(request)
            body.update({k: data[k] for k in keys if isinstance(data.get(k), str)})
            if isinstance(data.get("webauthn"), dict):
                body["webauthn"] = data["webauthn"]
        return await self.auth.call("POST", path, body)

    async def account(self, request: web.Request) -> web.Response:
        ctx = await web_session(request, self.auth)
        info = await self.auth.call("POST", "/v1/websessions/account", {"session_id": ctx.session_id})
        s = ctx.session
        return web.json_response({
            **info, "cluster_name": self.cluster_name, "session_expires": s.get("expires"),
            "idle_timeout": s.get("idle_timeout"), "logins": s.get("logins", []),
            "terminal_cert_ttl": defaults.WEB_TERMINAL_CERT_TTL,
        })

    async def password(self, request: web.Request) -> web.Response:
        return web.json_response(await self._call(
            request, "/v1/websessions/password", ("old_password", "new_password", "otp_code")))

    async def key_begin(self, request: web.Request) -> web.Response:
        return web.json_response(await self._call(request, "/v1/websessions/keys/begin"))

    async def key_add(self, request: web.Request) -> web.Response:
        return web.json_response(await self._call(request, "/v1/websessions/keys", ("password",)))

    async def key_delete(self, request: web.Request) -> web.Response:
        return web.json_response(
            await self._call(request, "/v1/websessions/keys/delete", ("password", "id")))
