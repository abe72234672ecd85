"""Auth API routes for trusted clusters: the other clusters' CAs, the `trusted_cluster`
resources (the leaf's side) and the root's side of the CA exchange (called by its proxy).

Every route authorizes its caller first (auth/authz.py); the exchange is reached from outside only
through the root proxy's public `/v1/webapi/trustedclusters/validate`, which proves nothing but
the token: the token is the whole authorization, and it works once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from teleport.errors import BadParameter
from teleport.httpapi import json_body, path_param
from teleport.trustedcluster import resource as tcres

if TYPE_CHECKING:
    from teleport.auth.api import AuthAPI


def add_trust_routes(router: web.UrlDispatcher, api: AuthAPI) -> None:
    """Register the trusted cluster routes on the auth API."""
    routes = TrustRoutes(api)
    router.add_get("/v1/trustedcas", routes.list_cas)
    router.add_get("/v1/trustedclusters", routes.list_clusters)
    router.add_post("/v1/trustedclusters", routes.put_cluster)
    router.add_delete("/v1/trustedclusters/{cluster}", routes.delete_cluster)
    router.add_post("/v1/trustedclusters/validate", routes.validate)
    router.add_post("/v1/trustedclusters/recording", routes.recording)


class TrustRoutes:
    """Handlers; each authorizes its caller first."""

    def __init__(self, api: AuthAPI) -> None:
        self.api = api
        self.server = api.server

    async def list_cas(self, request: web.Request) -> web.Response:
        """The public keys of the other clusters' CAs (nodes, proxies, tctl auth ls)."""
        await self.api._authorize(request, "cert_authority", "read")
        return web.json_response(await self.server.trusted_cas())

    async def list_clusters(self, request: web.Request) -> web.Response:
        """The trusted_cluster resources (without their tokens)."""
        await self.api._authorize(request, "trusted_cluster", "list")
        return web.json_response([tc.to_dict() for tc in await self.server.list_trusted_clusters()])

    async def put_cluster(self, request: web.Request) -> web.Response:
        """Create a trusted cluster (exchanging CAs with the root); with upsert, also update it."""
        await self.api._authorize(request, "trusted_cluster", "create")
        data = await json_body(request)
        upsert = data.get("upsert") is True
        if upsert:
            await self.api._authorize(request, "trusted_cluster", "update")
        tc = tcres.parse_trusted_cluster(data.get("trusted_cluster"))
        created = await self.server.upsert_trusted_cluster(tc, upsert)
        return web.json_response({"name": tc.name, "created": created})

    async def delete_cluster(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "trusted_cluster", "delete")
        name = path_param(request, "cluster")
        await self.server.delete_trusted_cluster(name)
        return web.json_response({"deleted": name})

    async def validate(self, request: web.Request) -> web.Response:
        """The root's side of the exchange: {token, cluster_name, cas} -> our CAs."""
        await self.api._authorize(request, "trusted_cluster", "validate")
        data = await json_body(request)
        token, leaf = data.get("token"), data.get("cluster_name")
        if not isinstance(token, str) or not token or len(token) > 512:
            raise BadParameter("missing or invalid field 'token'")
        if not isinstance(leaf, str):
            raise BadParameter("missing or invalid field 'cluster_name'")
        return web.json_response(await self.server.validate_trusted_cluster(token, leaf, data.get("cas") or {}))

    async def recording(self, request: web.Request) -> web.Response:
        """A session recording for a root cluster's user (`tsh --cluster=LEAF play`), asked by
        our proxy on its behalf: the user's certificate, its roles mapped here, must allow
        reading sessions."""
        import asyncio

        from teleport.types.names import check_sid

        await self.api._authorize(request, "trusted_cluster", "recording")
        data = await json_body(request)
        cert, sid = data.get("cert"), data.get("sid")
        if not isinstance(cert, str) or not cert or not isinstance(sid, str):
            raise BadParameter("expected {cert, sid}")
        check_sid(sid)
        _, _, roleset = await self.server.remote_roleset(cert)
        roleset.check_rule("session", "read")
        if self.api.audit is None:
            raise BadParameter("this auth service keeps no recordings")
        body = await asyncio.to_thread(self.api.audit.read_recording, sid)
        return web.Response(body=body, content_type="application/gzip")
