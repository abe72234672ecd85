"""Auth API routes that read sessions, recordings and events for a browser's user.

A proxy (or an admin) calls them with a web session id in the body; the answer is what that
session's user may read under the same RBAC rules as `tsh sessions ls`, `tsh play` and `tctl
events ls` would give the user directly (session list/read, event list). The proxy's own
identity grants nothing here: it only proves that the request comes through a proxy.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from teleport import defaults
from teleport.auth.api_audit import _float
from teleport.auth.audit import AuditService
from teleport.auth.websession import WebSessions
from teleport.errors import BadParameter
from teleport.httpapi import json_body

if TYPE_CHECKING:
    from teleport.auth.api import AuthAPI


def add_webaudit_routes(router: web.UrlDispatcher, api: AuthAPI, audit: AuditService) -> None:
    """Register the browser's read-only audit routes on the auth API."""
    routes = WebAuditRoutes(api, audit)
    router.add_post("/v1/websessions/sessions", routes.list_sessions)
    router.add_post("/v1/websessions/sessions/get", routes.get_session)
    router.add_post("/v1/websessions/recordings", routes.list_recordings)
    router.add_post("/v1/websessions/recordings/get", routes.get_recording)
    router.add_post("/v1/websessions/events", routes.search_events)


def _str(data: dict[str, Any], key: str, required: bool = True) -> str:
    value = data.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str) or (required and not value):
        raise BadParameter(f"missing or invalid field {key!r}")
    return value


def newest_first(events: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The `limit` newest of events given oldest first, newest first."""
    return list(reversed(events[-limit:])) if limit > 0 else list(reversed(events))


class WebAuditRoutes:
    """Handlers; each authorizes the calling service, then the web session's user."""

    def __init__(self, api: AuthAPI, audit: AuditService) -> None:
        self.api = api
        self.audit = audit

    async def _user_may(self, request: web.Request, resource: str, verb: str) -> dict[str, Any]:
        """The body, once the caller is a proxy (or admin) and the session's user's roles
        allow verb on resource (AccessDenied otherwise, with the roles' refusal)."""
        await self.api._authorize(request, "web_session", "read")
        data = await json_body(request)
        ws = await WebSessions(self.api.server).get(_str(data, "session_id"))
        user = await self.api.server.store.get_user(ws.user)
        roleset = await self.api.server.roleset_for(user)
        roleset.check_rule(resource, verb)
        return data

    async def list_sessions(self, request: web.Request) -> web.Response:
        await self._user_may(request, "session", "list")
        return web.json_response(await self.audit.list_sessions())

    async def get_session(self, request: web.Request) -> web.Response:
        data = await self._user_may(request, "session", "read")
        return web.json_response(await self.audit.get_session(_str(data, "sid")))

    async def list_recordings(self, request: web.Request) -> web.Response:
        await self._user_may(request, "session", "list")
        return web.json_response(await asyncio.to_thread(self.audit.list_recordings))

    async def get_recording(self, request: web.Request) -> web.Response:
        data = await self._user_may(request, "session", "read")
        body = await asyncio.to_thread(self.audit.read_recording, _str(data, "sid"))
        return web.Response(body=body, content_type="application/gzip")

    async def search_events(self, request: web.Request) -> web.Response:
        """Events matching {type: [..], user, since, until}, newest first, at most `limit`."""
        data = await self._user_may(request, "event", "list")
        types = data.get("types") or None
        if types is not None and not (
            isinstance(types, list) and all(isinstance(t, str) for t in types)
        ):
            raise BadParameter("types must be a list of event type names")
        limit = data.get("limit", defaults.WEB_EVENTS_LIMIT)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= defaults.WEB_EVENTS_LIMIT:
            raise BadParameter(f"limit must be a number from 1 to {defaults.WEB_EVENTS_LIMIT}")
        since, until = data.get("since"), data.get("until")
        events = await asyncio.to_thread(
            self.audit.search,
            since=_float(None if since is None else str(since)),
            until=_float(None if until is None else str(until)),
            event_types=types,
            user=_str(data, "user", False) or None,
        )
        return web.json_response(newest_first(events, limit))
