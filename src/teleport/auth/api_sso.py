"""Auth API routes for single sign-on: connector resources (`tctl create/get/rm`) and the login
requests and callbacks a proxy runs for tsh and browsers. Each route authorizes its caller
before it reads the body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from teleport.auth.sso.connectors import check_connector_name, check_kind, parse_connector
from teleport.errors import BadParameter
from teleport.httpapi import json_body

if TYPE_CHECKING:
    from teleport.auth.api import AuthAPI


def add_sso_routes(router: web.UrlDispatcher, api: AuthAPI) -> None:
    """Register the connector and SSO login routes on the auth API."""
    routes = SSORoutes(api)
    router.add_get("/v1/connectors", routes.list_connectors)
    router.add_post("/v1/connectors", routes.put_connector)
    router.add_delete("/v1/connectors/{kind}/{name}", routes.delete_connector)
    router.add_get("/v1/sso/connectors", routes.public_connectors)
    router.add_post("/v1/sso/requests", routes.create_request)
    router.add_post("/v1/sso/callback", routes.callback)


def _text(data: dict[str, Any], key: str, required: bool = False) -> str:
    value = data.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str) or (required and not value):
        raise BadParameter(f"missing or invalid field {key!r}")
    return value


class SSORoutes:
    """Handlers; each authorizes its caller first."""

    def __init__(self, api: AuthAPI) -> None:
        self.api = api

    # connectors (admins) ---------------------------------------------------------------------
    async def list_connectors(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "connector", "list")
        conns = await self.api.server.sso.list_connectors()
        return web.json_response([c.without_secrets() for c in conns])

    async def put_connector(self, request: web.Request) -> web.Response:
        """Create a connector; with upsert, create or replace it (needs both verbs)."""
        await self.api._authorize(request, "connector", "create")
        data = await json_body(request)
        upsert = data.get("upsert") is True
        if upsert:
            await self.api._authorize(request, "connector", "update")
        conn = parse_connector(data.get("connector"))
        sso = self.api.server.sso
        if not upsert:
            from teleport.errors import AlreadyExists, NotFound

            try:
                await sso.get_connector(conn.KIND, conn.name)
                raise AlreadyExists(
                    f"{conn.KIND} connector {conn.name!r} already exists: use 'tctl create -f' to replace it"
                )
            except NotFound:
                pass
        created = await sso.put_connector(conn)
        return web.json_response({"kind": conn.KIND, "name": conn.name, "created": created})

    async def delete_connector(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "connector", "delete")
        kind = check_kind(request.match_info["kind"])
        name = check_connector_name(request.match_info["name"])
        await self.api.server.sso.delete_connector(kind, name)
        return web.json_response({"deleted": name, "kind": kind})

    # logins (the proxy) ----------------------------------------------------------------------
    async def public_connectors(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "sso", "read")
        return web.json_response(await self.api.server.public_connectors())

    async def create_request(self, request: web.Request) -> web.Response:
        """{kind, connector_id, [public_key, ttl, redirect_url, response_key] | binding}."""
        await self.api._authorize(request, "sso", "login")
        data = await json_body(request)
        ttl = data.get("ttl")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float)):
            raise BadParameter("ttl must be a number of seconds")
        answer = await self.api.server.create_sso_request(
            _text(data, "kind", True), _text(data, "connector_id", True),
            public_key=_text(data, "public_key"), ttl=ttl,
            client_redirect_url=_text(data, "redirect_url"),
            response_key=_text(data, "response_key"), binding_digest=_text(data, "binding"),
        )
        return web.json_response(answer)

    async def callback(self, request: web.Request) -> web.Response:
        """{kind, params: {state, code | error, ...}, binding, remote_addr}."""
        identity = await self.api._authorize(request, "sso", "login")
        data = await json_body(request)
        params = data.get("params")
        if not isinstance(params, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in params.items()
        ):
            raise BadParameter("params must map the callback's query names to strings")
        keep = ("state", "code", "error", "error_description", "iss")
        remote = _text(data, "remote_addr") if identity.system_role == "Proxy" else ""
        answer = await self.api.server.sso_callback(
            check_kind(data.get("kind")), {k: params[k] for k in keep if k in params},
            binding_digest=_text(data, "binding"), remote_addr=remote,
        )
        return web.json_response(answer)
