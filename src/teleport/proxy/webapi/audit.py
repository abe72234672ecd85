"""Web API route for the audit log page.

    GET /v1/webapi/sites/<cluster>/events?type=<t1,t2>&user=<name>&since=<unix>&until=<unix>&limit=<n>

Auth answers for the web session's user under the same rule as `tctl events ls` (event list),
newest first (auth/api_webaudit.py). The page's date pickers send Unix times.
"""

from __future__ import annotations

import math

from aiohttp import web

from teleport import defaults
from teleport.auth.client import AuthClient
from teleport.errors import BadParameter
from teleport.proxy.webapi.security import web_session
from teleport.proxy.webapi.sessions import SessionRoutes


def parse_time_param(name: str, text: str) -> float | None:
    """A Unix time from a query parameter (None when empty); BadParameter when not one."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise BadParameter(f"{name} must be a Unix time in seconds, got {text[:40]!r}")
    return value


def parse_event_query(query: dict[str, str]) -> dict[str, object]:
    """The auth request body for the page's filters (types, user, since, until, limit)."""
    types = [t for t in query.get("type", "").split(",") if t.strip()]
    if any(len(t) > 100 for t in types) or len(types) > 50:
        raise BadParameter("type must be a few comma-separated event types (e.g. session.start)")
    limit_text = query.get("limit", "")
    limit = defaults.WEB_EVENTS_LIMIT
    if limit_text:
        if not (limit_text.isascii() and limit_text.isdigit()) or not 1 <= int(limit_text) <= defaults.WEB_EVENTS_LIMIT:
            raise BadParameter(f"limit must be a number from 1 to {defaults.WEB_EVENTS_LIMIT}")
        limit = int(limit_text)
    since = parse_time_param("since", query.get("since", ""))
    until = parse_time_param("until", query.get("until", ""))
    if since is not None and until is not None and until < since:
        raise BadParameter("the date range ends before it starts: swap the dates")
    return {
        "types": [t.strip() for t in types], "user": query.get("user", "").strip(),
        "since": since, "until": until, "limit": limit,
    }


class AuditRoutes:
    """Handler for the audit log page's event search."""

    def __init__(self, auth: AuthClient, sessions: SessionRoutes) -> None:
        self.auth = auth
        self.sessions = sessions

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v1/webapi/sites/{cluster}/events", self.events)

    async def events(self, request: web.Request) -> web.Response:
        ctx = await web_session(request, self.auth)
        self.sessions.check_cluster(request)
        body = parse_event_query(dict(request.query))
        found = await self.auth.call("POST", "/v1/websessions/events",
                                     {"session_id": ctx.session_id, **body})
        return web.json_response({"items": found if isinstance(found, list) else []})
