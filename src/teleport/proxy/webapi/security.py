"""Browser-facing protections: security headers, the session cookie, CSRF and Origin checks.

The proxy holds no session state: every request's cookie is checked by the auth service
(auth/websession.py), so that any proxy serves any session and a logout ends it everywhere.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from teleport import defaults
from teleport.auth.client import AuthClient
from teleport.errors import AccessDenied, NotAuthenticated
from teleport.httpapi import Handler

log = logging.getLogger(__name__)

# No inline script anywhere (the pages load only their own files). Styles allow 'unsafe-inline'
# because xterm.js writes a <style> element for its theme; styles cannot run code.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_API_PREFIXES = ("/v1/", "/webapi/")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer gets the security headers; API answers are never cached (they hold
    per-user data)."""
    resp = await handler(request)
    if resp.prepared:  # a WebSocket: its headers are already sent (set in the handler)
        return resp
    resp.headers.update(SECURITY_HEADERS)
    if request.path.startswith(_API_PREFIXES):
        resp.headers["Cache-Control"] = "no-store"
    return resp


def set_session_cookie(resp: web.StreamResponse, session_id: str, max_age: float) -> None:
    """The session cookie: HttpOnly (no script reads it), Secure, SameSite=Strict, host-only."""
    resp.set_cookie(
        defaults.WEB_SESSION_COOKIE, session_id, max_age=int(max_age), path="/",
        secure=True, httponly=True, samesite="Strict",
    )


def clear_session_cookie(resp: web.StreamResponse) -> None:
    resp.set_cookie(
        defaults.WEB_SESSION_COOKIE, "", max_age=0, path="/", secure=True, httponly=True,
        samesite="Strict",
    )


def check_origin(request: web.Request) -> None:
    """Refuse requests a browser sent from another site: the Origin, when present, must be this
    very host (browsers always send it on WebSocket upgrades and cross-site POSTs)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    if origin != f"https://{request.host}":
        raise AccessDenied("cross-origin request refused")


@dataclass
class WebContext:
    """The authenticated caller of a web API request."""

    session_id: str
    session: dict[str, Any]

    @property
    def user(self) -> str:
        return str(self.session["user"])


async def web_session(request: web.Request, auth: AuthClient, csrf: bool | None = None) -> WebContext:
    """The caller's live web session (NotAuthenticated without one). State-changing methods
    (or `csrf=True`) also need the session's CSRF token in the X-CSRF-Token header."""
    session_id = request.cookies.get(defaults.WEB_SESSION_COOKIE, "")
    if not session_id:
        raise NotAuthenticated("you are not logged in: log in first")
    check_origin(request)
    try:
        session = await auth.call("POST", "/v1/websessions/get", {"session_id": session_id})
    except AccessDenied as err:
        raise NotAuthenticated(err.message) from None
    need_csrf = csrf if csrf is not None else request.method not in _SAFE_METHODS
    if need_csrf:
        sent = request.headers.get(defaults.WEB_CSRF_HEADER, "")
        check_csrf(sent, str(session.get("csrf_token", "")))
    return WebContext(session_id, session)


def check_csrf(sent: str, expected: str) -> None:
    """AccessDenied unless the page sent the session's CSRF token (constant-time compare)."""
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise AccessDenied("missing or wrong CSRF token: reload the page and try again")
