"""Web API routes for live sessions and recordings: what `tsh sessions ls`, `tsh recordings ls`
and `tsh play` show, for the browser.

    GET /v1/webapi/sites/<cluster>/sessions          live sessions (join them with /connect?sid=)
    GET /v1/webapi/sites/<cluster>/recordings        recorded sessions, newest first
    GET /v1/webapi/sites/<cluster>/recordings/<sid>  one recording, as JSON the player renders

The proxy reads nothing itself: auth answers for the web session's user, under the same RBAC
rules (session list/read) as the user's own certificate would get (auth/api_webaudit.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from teleport.auth.client import AuthClient
from teleport.client.sessions import node_name, participants, session_id, to_unix
from teleport.proxy.webapi.security import web_session
from teleport.proxy.webapi.sessions import SessionRoutes
from teleport.recording.asciicast import load_cast
from teleport.types.names import check_sid

# the player shows output and resizes; typed input (which may hold what a terminal did not echo,
# such as passwords) never leaves the proxy
PLAYED_KINDS = frozenset({"o", "r"})


def live_session_view(sess: Mapping[str, Any]) -> dict[str, Any]:
    """One live session as the page lists it."""
    return {
        "sid": session_id(sess),
        "node": node_name(sess),
        "server_id": str(sess.get("server_id") or ""),
        "login": str(sess.get("login") or ""),
        "user": str(sess.get("user") or ""),
        "parties": participants(sess),
        "created": to_unix(sess.get("created")),
    }


def recording_view(ev: Mapping[str, Any]) -> dict[str, Any]:
    """One recorded session (from its session.end event) as the page lists it."""
    start = to_unix(ev.get("session_start")) or to_unix(ev.get("time"))
    stop = to_unix(ev.get("session_stop")) or to_unix(ev.get("time"))
    return {
        "sid": str(ev.get("sid") or ""),
        "user": str(ev.get("user") or ""),
        "login": str(ev.get("login") or ""),
        "node": node_name(ev),
        "start": start,
        "duration": (stop - start) if start is not None and stop is not None else None,
    }


def playback_view(data: bytes) -> dict[str, Any]:
    """A recording for the browser's player: its size, output and resize events, and what kept
    it from being read whole."""
    cast = load_cast(data)
    header = cast.header
    width, height = header.get("width"), header.get("height")
    return {
        "width": width if isinstance(width, int) and width > 0 else 80,
        "height": height if isinstance(height, int) and height > 0 else 24,
        "events": [[t, k, d] for t, k, d in cast.events if k in PLAYED_KINDS],
        "problems": cast.problems,
    }


class RecordingRoutes:
    """Handlers for the live session and recording lists and the player's data."""

    def __init__(self, auth: AuthClient, sessions: SessionRoutes) -> None:
        self.auth = auth
        self.sessions = sessions

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v1/webapi/sites/{cluster}/sessions", self.live)
        router.add_get("/v1/webapi/sites/{cluster}/recordings", self.recordings)
        router.add_get("/v1/webapi/sites/{cluster}/recordings/{sid}", self.recording)

    async def live(self, request: web.Request) -> web.Response:
        ctx = await web_session(request, self.auth)
        self.sessions.check_cluster(request)
        found = await self.auth.call("POST", "/v1/websessions/sessions",
                                     {"session_id": ctx.session_id})
        items = [live_session_view(s) for s in found if isinstance(s, dict)]
        items.sort(key=lambda s: s["created"] or 0.0)
        return web.json_response({"items": items})

    async def recordings(self, request: web.Request) -> web.Response:
        ctx = await web_session(request, self.auth)
        self.sessions.check_cluster(request)
        found = await self.auth.call("POST", "/v1/websessions/recordings",
                                     {"session_id": ctx.session_id})
        items = [recording_view(e) for e in found if isinstance(e, dict)]
        items.sort(key=lambda r: r["start"] or 0.0, reverse=True)
        return web.json_response({"items": items})

    async def recording(self, request: web.Request) -> web.Response:
        ctx = await web_session(request, self.auth)
        self.sessions.check_cluster(request)
        sid = check_sid(request.match_info["sid"])
        data = await self.auth.call("POST", "/v1/websessions/recordings/get",
                                    {"session_id": ctx.session_id, "sid": sid}, raw=True)
        return web.json_response(await asyncio.to_thread(playback_view, data))
