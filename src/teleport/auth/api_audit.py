"""Auth API routes for the audit log, active sessions and recordings."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING, Any

from aiohttp import web

from teleport.auth.audit import AuditService
from teleport.auth.authz import check_emit, check_emitter, identity_phrase
from teleport.ca.tlsca import Identity
from teleport.errors import AccessDenied, BadParameter, NotFound
from teleport.events.schema import SESSION_START
from teleport.httpapi import json_body, path_param

if TYPE_CHECKING:
    from teleport.auth.api import AuthAPI

log = logging.getLogger(__name__)

UPLOAD_CHUNK = 1 << 16


def add_audit_routes(router: web.UrlDispatcher, api: AuthAPI, audit: AuditService) -> None:
    routes = AuditRoutes(api, audit)
    router.add_post("/v1/events", routes.post_events)
    router.add_get("/v1/events", routes.search_events)
    router.add_get("/v1/sessions", routes.list_sessions)
    router.add_post("/v1/sessions", routes.upsert_session)
    router.add_get("/v1/sessions/{sid}", routes.get_session)
    router.add_delete("/v1/sessions/{sid}", routes.delete_session)
    router.add_put("/v1/sessions/{sid}/recording", routes.upload_recording)
    router.add_get("/v1/sessions/{sid}/recording", routes.get_recording)
    router.add_get("/v1/recordings", routes.list_recordings)


def host_of(identity: Identity, what: str, recording_proxy: bool = False) -> str:
    """The host id a service identity speaks for; AccessDenied for identities of no host (admins,
    users), which run no sessions, and for a proxy unless it records them (recording proxy
    mode)."""
    hosts = ("Node", "Proxy", "Auth") if recording_proxy else ("Node", "Auth")
    if identity.system_role not in hosts or not identity.host_id:
        raise AccessDenied(
            f"{identity_phrase(identity)} may not {what}: only the node that runs "
            "a session may"
        )
    return identity.host_id


def bind_event(
    identity: Identity, event: Any, recording_proxy: bool = False, hostname: str | None = None
) -> dict[str, Any]:
    """The event as the caller may emit it: of a type its service emits, with server_id set to
    the caller's own host id (and server_hostname to its registered name, when auth knows it)
    whatever the body says."""
    if not isinstance(event, dict):
        raise BadParameter("each event must be a JSON object")
    check_emit(identity, event.get("event"), recording_proxy)
    if not identity.host_id:
        raise AccessDenied(f"{identity_phrase(identity)} has no host id to emit as")
    bound = {**event, "server_id": identity.host_id}
    if hostname is not None and "server_hostname" in event:
        bound["server_hostname"] = hostname
    return bound


class AuditRoutes:
    def __init__(self, api: AuthAPI, audit: AuditService) -> None:
        self.api = api
        self.audit = audit

    @property
    def recording_proxy(self) -> bool:
        """Whether the cluster records at the proxy (a proxy then reports its sessions)."""
        server = getattr(self.api, "server", None)
        return getattr(server, "session_recording", "node") == "proxy"

    async def post_events(self, request: web.Request) -> web.Response:
        """A batch of events from a node or proxy, each bound to the caller (type, server_id);
        stored whole or not at all, redeliveries once."""
        identity = await self.api._authorize(request, "event", "create")
        check_emitter(identity)
        data = await json_body(request)
        events = data.get("events")
        if not isinstance(events, list):
            raise BadParameter("expected {\"events\": [...]}")
        hostname = await self._registered_name(identity)
        bound = [bind_event(identity, ev, self.recording_proxy, hostname) for ev in events]
        # Written and fsynced off the loop; the caller drops its copies once we answer.
        stored = await asyncio.to_thread(self.audit.emit_many, bound)
        for ev in bound:
            if ev["event"] == SESSION_START and isinstance(ev.get("sid"), str):
                try:
                    owner = await self.audit.claim_session(ev["sid"], ev["server_id"])
                except BadParameter:
                    continue  # not a session id we could ever serve a recording for
                if owner != ev["server_id"]:
                    log.warning("node %s logged session.start for session %s, which node %s owns",
                                ev["server_id"], ev["sid"], owner)
        return web.json_response({"accepted": len(events), "stored": sum(stored)})

    async def _registered_name(self, identity: Identity) -> str | None:
        """The nodename a host registered with (None for hosts from before host records)."""
        if not identity.host_id:
            return None
        try:
            record = await self.api.server.store.get_host(identity.host_id)
        except (NotFound, BadParameter):
            return None
        return str(record.get("nodename") or "") or None

    async def search_events(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "event", "list")
        q = request.query
        types = [t for t in q.get("type", "").split(",") if t] or None
        # the stores block (files, or a DynamoDB round trip): off the loop
        events = await asyncio.to_thread(
            self.audit.search,
            since=_float(q.get("since")),
            until=_float(q.get("until")),
            event_types=types,
            user=q.get("user") or None,
            sid=q.get("sid") or None,
            limit=_limit(q.get("limit")),
        )
        return web.json_response(events)

    async def list_sessions(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "session", "list")
        return web.json_response(await self.audit.list_sessions())

    async def get_session(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "session", "read")
        return web.json_response(await self.audit.get_session(path_param(request, "sid")))

    async def upsert_session(self, request: web.Request) -> web.Response:
        identity = await self.api._authorize(request, "session", "create")
        host = host_of(identity, "report sessions", self.recording_proxy)
        data = await json_body(request)
        if data.get("server_id") != host:
            raise AccessDenied("a node may only report its own sessions")
        await self.audit.upsert_session(data, owner=host)
        return web.json_response({"ok": True})

    async def delete_session(self, request: web.Request) -> web.Response:
        identity = await self.api._authorize(request, "session", "create")
        host = host_of(identity, "end sessions", self.recording_proxy)
        await self.audit.delete_session(path_param(request, "sid"), owner=host)
        return web.json_response({"ok": True})

    async def upload_recording(self, request: web.Request) -> web.Response:
        """Stream the owner node's compressed recording to disk, once, within the size bound."""
        identity = await self.api._authorize(request, "session", "create")
        host = host_of(identity, "upload recordings", self.recording_proxy)
        sid = path_param(request, "sid")
        await self.audit.check_uploader(sid, host)
        size = await self.audit.store_recording(
            sid, request.content.iter_chunked(UPLOAD_CHUNK), request.content_length
        )
        return web.json_response({"ok": True, "bytes": size})

    async def get_recording(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "session", "read")
        data = await asyncio.to_thread(self.audit.read_recording, path_param(request, "sid"))
        return web.Response(body=data, content_type="application/gzip")

    async def list_recordings(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "session", "list")
        since = _float(request.query.get("since"))
        return web.json_response(await asyncio.to_thread(self.audit.list_recordings, since=since))


def _float(value: str | None) -> float | None:
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise BadParameter(f"expected a unix time in seconds, got {value!r}")
    return number


def _limit(value: str | None) -> int:
    if value in (None, ""):
        return 0
    if not (value.isascii() and value.isdigit()) or len(value) > 9:
        raise BadParameter(f"limit must be a whole number of events, got {value!r}")
    return int(value)
