"""Auth API routes for role and user resources (`tctl create/get/rm`) and role-filtered node lists.

Every route is authorized by a (resource, verb) rule: built-in rules for service identities,
the roles' `rules` for users (see auth/authz.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from teleport.errors import AccessDenied, BadParameter
from teleport.httpapi import json_body, list_field, path_param
from teleport.types.names import check_role_name, check_user_name
from teleport.types.resources import User
from teleport.types.role import Role

if TYPE_CHECKING:
    from teleport.auth.api import AuthAPI


def add_resource_routes(router: web.UrlDispatcher, api: AuthAPI) -> None:
    """Register the role, user-update and visible-node routes on the auth API."""
    routes = ResourceRoutes(api)
    router.add_get("/v1/roles", routes.list_roles)
    router.add_post("/v1/roles", routes.put_role)
    router.add_get("/v1/roles/{role}", routes.get_role)
    router.add_delete("/v1/roles/{role}", routes.delete_role)
    router.add_post("/v1/users", routes.put_user)
    router.add_put("/v1/users/{user}", routes.update_user)
    router.add_post("/v1/access/nodes", routes.visible_nodes)


def _resource(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    if not isinstance(value, dict):
        raise BadParameter(f"expected {{{key!r}: {{kind, version, metadata, spec}}, 'upsert': bool}}")
    return value


class ResourceRoutes:
    """Handlers; each authorizes its caller first."""

    def __init__(self, api: AuthAPI) -> None:
        self.api = api
        self.server = api.server

    # roles ----------------------------------------------------------------------------------
    async def list_roles(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "role", "list")
        roles = sorted(await self.server.store.list_roles(), key=lambda r: r.name)
        return web.json_response([r.to_dict() for r in roles])

    async def get_role(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "role", "read")
        role = await self.server.store.get_role(path_param(request, "role"))
        return web.json_response(role.to_dict())

    async def put_role(self, request: web.Request) -> web.Response:
        """Create a role; with upsert, create or replace it (needs the create and update verbs)."""
        # authorize before parsing: an anonymous body never reaches a parser. Create-or-replace
        # needs both verbs, so that the answer does not depend on (and reveal) whether it exists.
        await self.api._authorize(request, "role", "create")
        data = await json_body(request)
        upsert = data.get("upsert") is True
        if upsert:
            await self.api._authorize(request, "role", "update")
        role = Role.from_dict(_resource(data, "role"))
        check_role_name(role.name)
        created = await self.server.put_role(role, upsert)
        return web.json_response({"name": role.name, "created": created})

    async def delete_role(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "role", "delete")
        name = path_param(request, "role")
        await self.server.delete_role(name)
        return web.json_response({"deleted": name})

    # users ----------------------------------------------------------------------------------
    async def put_user(self, request: web.Request) -> web.Response:
        """Create a user resource; with upsert, also update an existing user's roles/traits."""
        await self.api._authorize(request, "user", "create")
        data = await json_body(request)
        upsert = data.get("upsert") is True
        if upsert:
            await self.api._authorize(request, "user", "update")
        user = User.from_dict(_resource(data, "user"))
        check_user_name(user.name)
        created = await self.server.put_user(user, upsert)  # type: ignore[arg-type]
        return web.json_response({"name": user.name, "created": created})

    async def update_user(self, request: web.Request) -> web.Response:
        """Set a user's roles and/or traits: {roles: [...], traits: {...}}."""
        await self.api._authorize(request, "user", "update")
        data = await json_body(request)
        roles = list_field(data, "roles") if data.get("roles") is not None else None
        traits = data.get("traits")
        if roles is None and traits is None:
            raise BadParameter("nothing to update: give 'roles' and/or 'traits'")
        user = await self.server.update_user(path_param(request, "user"), roles, traits)
        return web.json_response(user.to_dict())

    # node visibility (the proxy's `tsh ls` and routing) ---------------------------------------
    async def visible_nodes(self, request: web.Request) -> web.Response:
        """The nodes a user's current roles can see: {user} -> [node, ...] (the proxy asks for
        any user; a user only for itself)."""
        identity = await self.api._authorize(request, "node", "list")
        data = await json_body(request)
        cert = data.get("cert")
        if isinstance(cert, str) and cert and identity.system_role in ("Proxy", "Admin"):
            # a root cluster's user, seen through its proxy: the mapped roles decide
            return web.json_response([n.to_dict() for n in await self.server.remote_visible_nodes(cert)])
        user = data.get("user")
        if not isinstance(user, str) or not user:
            raise BadParameter("missing or invalid field 'user'")
        if identity.system_role == "User" and user != identity.username:
            raise AccessDenied("access denied: a user may only list the nodes it can reach itself")
        nodes = await self.server.visible_nodes(user, offline=data.get("offline") is True)
        return web.json_response([n.to_dict() for n in nodes])
