"""Auth API routes for security keys and the web UI's account page (a proxy calls them for a
browser). Account routes name the web session, never the user: the session says who it is.
Every route authorizes its caller before it reads the body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from teleport.auth.api_websession import WebSessionRoutes, _field
from teleport.auth.websession import WebSession, WebSessions
from teleport.errors import AccessDenied
from teleport.httpapi import json_body, path_param

if TYPE_CHECKING:
    from teleport.auth.api import AuthAPI


def add_mfa_routes(router: web.UrlDispatcher, api: AuthAPI) -> None:
    """Register the security key and account routes on the auth API."""
    routes = MFARoutes(api)
    router.add_post("/v1/invites/{token}/webauthn", routes.invite_key)
    router.add_post("/v1/webauthn/login/begin", routes.login_begin)
    router.add_post("/v1/websessions/webauthn", routes.login_finish)
    router.add_post("/v1/websessions/account", routes.account)
    router.add_post("/v1/websessions/password", routes.password)
    router.add_post("/v1/websessions/keys/begin", routes.key_begin)
    router.add_post("/v1/websessions/keys", routes.key_add)
    router.add_post("/v1/websessions/keys/delete", routes.key_delete)


async def start_web_session(api: AuthAPI, user: str, remote: str) -> dict[str, Any]:
    """A web session for a user just authenticated, as the web login answers it."""
    assert api.server is not None
    session_id, ws = await WebSessions(api.server).start(user)
    api.emit("user.login", user=user, method="web", success=True, addr_remote=remote or None)
    return {"session_id": session_id, **await WebSessionRoutes(api)._view(ws)}


class MFARoutes:
    def __init__(self, api: AuthAPI) -> None:
        self.api = api

    def _remote(self, request: web.Request, data: dict[str, Any], role: str) -> str:
        from teleport.auth.api import peer_addr

        remote = _field(data, "remote_addr", False) if role == "Proxy" else ""
        return remote or peer_addr(request)

    async def _session(self, data: dict[str, Any]) -> WebSession:
        return await WebSessions(self.api.server).get(_field(data, "session_id"))

    async def invite_key(self, request: web.Request) -> web.Response:
        """A key registration challenge for an invite (signup in the browser)."""
        await self.api._authorize(request, "invite", "use")
        return web.json_response(await self.api.server.begin_invite_key(path_param(request, "token")))

    async def login_begin(self, request: web.Request) -> web.Response:
        """{user, password}: the first half of a security key login."""
        identity = await self.api._authorize(request, "user", "authenticate")
        data = await json_body(request)
        user = _field(data, "user")
        remote = self._remote(request, data, identity.system_role)
        try:
            answer = await self.api.server.begin_key_login(user, _field(data, "password", False), remote)
        except AccessDenied as err:
            self.api.emit("user.login", user=user, method="webauthn", success=False,
                          error=err.message, addr_remote=remote or None)
            raise
        return web.json_response(answer)

    async def login_finish(self, request: web.Request) -> web.Response:
        """{user, webauthn: {challenge_id, credential}}: the key's answer; starts a web session."""
        identity = await self.api._authorize(request, "web_session", "create")
        data = await json_body(request)
        user = _field(data, "user")
        remote = self._remote(request, data, identity.system_role)
        try:
            checked = await self.api.server.finish_key_login(user, data.get("webauthn"))
        except AccessDenied as err:
            self.api.emit("user.login", user=user, method="webauthn", success=False,
                          error=err.message, addr_remote=remote or None)
            raise
        return web.json_response(await start_web_session(self.api, checked.name, remote))

    async def account(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "web_session", "read")
        ws = await self._session(await json_body(request))
        return web.json_response({"user": ws.user, **await self.api.server.mfa_summary(ws.user)})

    async def password(self, request: web.Request) -> web.Response:
        """{session_id, old_password, new_password, otp_code | webauthn}."""
        identity = await self.api._authorize(request, "web_session", "update")
        data = await json_body(request)
        ws = await self._session(data)
        await self.api.server.change_password(
            ws.user, _field(data, "old_password", False), _field(data, "new_password"),
            _field(data, "otp_code", False), data.get("webauthn"),
            self._remote(request, data, identity.system_role),
        )
        self.api.emit("user.password_change", user=ws.user)
        return web.json_response({"ok": True})

    async def key_begin(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "web_session", "update")
        ws = await self._session(await json_body(request))
        return web.json_response(await self.api.server.begin_registration(ws.user))

    async def key_add(self, request: web.Request) -> web.Response:
        """{session_id, password, webauthn: {challenge_id, credential, name}}."""
        await self.api._authorize(request, "web_session", "update")
        data = await json_body(request)
        ws = await self._session(data)
        device = await self.api.server.add_device(
            ws.user, _field(data, "password", False), data.get("webauthn"))
        self.api.emit("mfa.add", user=ws.user, mfa_device_name=device["name"])
        return web.json_response(device)

    async def key_delete(self, request: web.Request) -> web.Response:
        """{session_id, password, id}."""
        await self.api._authorize(request, "web_session", "update")
        data = await json_body(request)
        ws = await self._session(data)
        await self.api.server.remove_device(ws.user, _field(data, "password", False), _field(data, "id"))
        self.api.emit("mfa.delete", user=ws.user, mfa_device_id=_field(data, "id"))
        return web.json_response({"ok": True})
