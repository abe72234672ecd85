"""Auth API routes for the audit log, active sessions and recordings."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from aiohttp import web

from teleport.auth.audit import AuditService, check_sid
from teleport.errors import AccessDenied, BadParameter

if TYPE_CHECKING:
    from teleport.auth.api import AuthAPI

MAX_RECORDING_BYTES = 4 * 1024 * 1024 * 1024


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


class AuditRoutes:
    def __init__(self, api: AuthAPI, audit: AuditService) -> None:
        self.api = api
        self.audit = audit

    async def post_events(self, request: web.Request) -> web.Response:
        """A batch of events from a node or proxy; redeliveries are stored once."""
        await self.api._authorize(request, "event", "create")
        data = await request.json()
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list):
            raise BadParameter("expected {\"events\": [...]}")
        stored = 0
        for ev in events:
            if not isinstance(ev, dict):
                raise BadParameter("each event must be a JSON object")
            stored += int(self.audit.emit(ev))
        return web.json_response({"accepted": len(events), "stored": stored})

    async def search_events(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "event", "list")
        q = request.query
        types = [t for t in q.get("type", "").split(",") if t] or None
        events = self.audit.search(
            since=_float(q.get("since")),
            until=_float(q.get("until")),
            event_types=types,
            user=q.get("user") or None,
            sid=q.get("sid") or None,
            limit=int(q.get("limit") or 0),
        )
        return web.json_response(events)

    async def list_sessions(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "session", "list")
        return web.json_response(await self.audit.list_sessions())

    async def get_session(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "session", "read")
        return web.json_response(await self.audit.get_session(request.match_info["sid"]))

    async def upsert_session(self, request: web.Request) -> web.Response:
        identity = await self.api._authorize(request, "session", "create")
        data: dict[str, Any] = await request.json()
        if identity.system_role == "Node" and data.get("server_id") != identity.host_id:
            raise AccessDenied("a node may only report its own sessions")
        await self.audit.upsert_session(data)
        return web.json_response({"ok": True})

    async def delete_session(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "session", "create")
        await self.audit.delete_session(request.match_info["sid"])
        return web.json_response({"ok": True})

    async def upload_recording(self, request: web.Request) -> web.Response:
        """Stream a node's compressed recording to disk (not limited by client_max_size)."""
        await self.api._authorize(request, "session", "create")
        sid = check_sid(request.match_info["sid"])
        tmp, f = self.audit.open_upload(sid)
        size = 0
        try:
            async for chunk in request.content.iter_chunked(1 << 16):
                size += len(chunk)
                if size > MAX_RECORDING_BYTES:
                    raise BadParameter("recording is too large")
                f.write(chunk)
            f.flush()
            f.close()
            self.audit.finish_upload(sid, tmp)
        except BaseException:
            f.close()
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return web.json_response({"ok": True, "bytes": size})

    async def get_recording(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "session", "read")
        data = self.audit.read_recording(request.match_info["sid"])
        return web.Response(body=data, content_type="application/gzip")

    async def list_recordings(self, request: web.Request) -> web.Response:
        await self.api._authorize(request, "session", "list")
        return web.json_response(self.audit.list_recordings(since=_float(request.query.get("since"))))


def _float(value: str | None) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise BadParameter(f"expected a unix time, got {value!r}") from None
