"""Auth API routes for web sessions: only a proxy (or an admin) calls them, for a browser.

Session ids travel in request bodies, never in paths, so that no access log or error message
holds one. Every route authorizes its caller before it reads the body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from teleport.auth.websession import WebSession, WebSessions
from teleport.errors import AccessDenied, BadParameter
from teleport.httpapi import json_body

if TYPE_CHECKING:
    from teleport.auth.api import AuthAPI


def add_websession_routes(router: web.UrlDispatcher, api: AuthAPI) -> None:
    """Register the web session routes on the auth API."""
    routes = WebSessionRoutes(api)
    router.add_post("/v1/websessions", routes.create)
    router.add_post("/v1/websessions/get", routes.get)
    router.add_post("/v1/websessions/delete", routes.delete)
    router.add_post("/v1/websessions/certs", routes.certs)


def _field(data: dict[str, Any], key: str, required: bool = True) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise BadParameter(f"missing or invalid field {key!r}")
    return value


class WebSessionRoutes:
    """Handlers; each authorizes its caller first."""

    def __init__(self, api: AuthAPI) -> None:
        self.api = api
        self.sessions = WebSessions(api.server) if api.server is not None else None

    def _svc(self) -> WebSessions:
        assert self.sessions is not None
        return self.sessions

    async def create(self, request: web.Request) -> web.Response:
        """A browser login forwarded by the proxy: {user, password, otp_code, remote_addr}."""
        from teleport.auth.api import peer_addr

        identity = await self.api._authorize(request, "web_session", "create")
        data = await json_body(request)
        user = _field(data, "user")
        remote = _field(data, "remote_addr", False) if identity.system_role == "Proxy" else ""
        remote = remote or peer_addr(request)
        try:
            session_id, ws = await self._svc().create(
                user, _field(data, "password", False), _field(data, "otp_code", False), remote
            )
        except AccessDenied as err:
            self.api.emit("user.login", user=user, method="local", success=False,
                          error=err.message, addr_remote=remote or None)
            raise
        self.api.emit("user.login", user=ws.user, method="web", success=True,
                      addr_remote=remote or None)
        return web.json_response({"session_id": session_id, **await self._view(ws)})

    async def get(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "web_session", "read")
        data = await json_body(request)
        # touch=false: a check that is not the user's doing (an open terminal's poll) must not
        # keep the session from idling out
        ws = await self._svc().get(_field(data, "session_id"), touch=data.get("touch") is not False)
        return web.json_response(await self._view(ws))

    async def _view(self, ws: WebSession) -> dict[str, Any]:
        """The session plus the logins the page offers for "connect" (the roles' logins now)."""
        user = await self.api.server.store.get_user(ws.user)
        logins = (await self.api.server.roleset_for(user)).logins()
        return {**ws.to_dict(), "logins": logins}

    async def delete(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "web_session", "delete")
        data = await json_body(request)
        await self._svc().delete(_field(data, "session_id"))
        return web.json_response({"ok": True})

    async def certs(self, request: web.Request) -> web.Response:
        """A terminal certificate for the user of the session presented: {session_id,
        public_key}. The proxy never names the user: the session does."""
        await self.api._authorize(request, "web_session", "sign")
        data = await json_body(request)
        return web.json_response(
            await self._svc().sign(_field(data, "session_id"), _field(data, "public_key"))
        )
