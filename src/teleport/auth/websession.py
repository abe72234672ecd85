"""Web sessions: what a browser login buys, kept in the backend so that any proxy can serve it.

A web session is created by a password + second factor login that a proxy forwards for the
browser. Its id is a 256-bit random secret that only the browser (in an HttpOnly cookie) and the
proxy in transit ever see; the backend stores the record under the id's SHA-256 digest, so a copy
of the backend does not hold usable sessions. Each session has an idle timeout and an absolute
expiry, and carries a CSRF token the proxy checks on state-changing requests.

The proxy cannot mint certificates for users by itself: `sign_for_web_session` signs only for the
user of a live session whose id the proxy presents (the browser's cookie), for a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from teleport import defaults
from teleport.errors import AccessDenied, BadParameter, NotFound

if TYPE_CHECKING:
    from teleport.auth.server import AuthServer

# A session id is 32 random bytes, URL-safe base64 (43 characters); anything else is refused
# before it reaches the backend.
_ID_LENGTH = 43
_ID_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
EXPIRED_MESSAGE = "your web session has expired or was ended: log in again"


def _digest(session_id: str) -> str:
    if len(session_id) != _ID_LENGTH or not set(session_id) <= _ID_ALPHABET:
        # the same answer as an unknown session: a malformed cookie is just not a session
        raise AccessDenied(EXPIRED_MESSAGE)
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class WebSession:
    """A live web session, as the proxy sees it (the id itself is only returned at creation)."""

    user: str
    csrf_token: str
    created: float
    expires: float
    idle_timeout: float
    last_active: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user, "csrf_token": self.csrf_token, "created": self.created,
            "expires": self.expires, "idle_timeout": self.idle_timeout,
            "last_active": self.last_active,
        }

    def deadline(self) -> float:
        """When the session ends if it is not used again."""
        return min(self.expires, self.last_active + self.idle_timeout)


class WebSessions:
    """Creates, checks, ends web sessions and signs terminal certificates for them."""

    def __init__(self, server: AuthServer) -> None:
        self.server = server

    async def create(
        self, user: str, password: str, otp_code: str, remote_addr: str
    ) -> tuple[str, WebSession]:
        """Log in (the same checks, limits and lockout as `tsh login`) and start a session."""
        checked = await self.server.check_credentials(user, password, otp_code, remote_addr)
        return await self.start(checked.name)

    async def start(self, user: str) -> tuple[str, WebSession]:
        """A new session for a user whose credentials the caller has just checked (a login, a
        security key login, a completed signup)."""
        now = time.time()
        session_id = secrets.token_urlsafe(32)
        ws = WebSession(
            user=user, csrf_token=secrets.token_urlsafe(32), created=now,
            expires=now + defaults.WEB_SESSION_TTL,
            idle_timeout=float(defaults.WEB_SESSION_IDLE_TIMEOUT), last_active=now,
        )
        await self.server.store.put_web_session(_digest(session_id), ws.to_dict(), ws.deadline())
        return session_id, ws

    async def get(self, session_id: str, touch: bool = True) -> WebSession:
        """The live session with this id (AccessDenied when unknown, idle or expired); a use
        moves its idle deadline (written back at most every WEB_SESSION_TOUCH_INTERVAL)."""
        digest = _digest(session_id)
        try:
            data = await self.server.store.get_web_session(digest)
        except NotFound:
            raise AccessDenied(EXPIRED_MESSAGE) from None
        ws = WebSession(**{k: data[k] for k in WebSession.__dataclass_fields__})
        now = time.time()
        if now >= ws.deadline():
            await self.server.store.delete_web_session(digest)
            raise AccessDenied(EXPIRED_MESSAGE)
        try:
            await self.server.store.get_user(ws.user)
        except NotFound:
            await self.server.store.delete_web_session(digest)
            raise AccessDenied(f"user {ws.user!r} no longer exists") from None
        if touch and now - ws.last_active >= defaults.WEB_SESSION_TOUCH_INTERVAL:
            ws.last_active = now
            await self.server.store.put_web_session(digest, ws.to_dict(), ws.deadline())
        return ws

    async def delete(self, session_id: str) -> None:
        """Log out: the session ends on the server, whatever copies of the cookie exist."""
        await self.server.store.delete_web_session(_digest(session_id))

    async def check_csrf(self, session_id: str, token: str) -> WebSession:
        """The session, after checking the CSRF token the page sent with it."""
        ws = await self.get(session_id)
        if not token or not hmac.compare_digest(token.encode(), ws.csrf_token.encode()):
            raise AccessDenied("missing or wrong CSRF token: reload the page")
        return ws

    async def sign(self, session_id: str, public_key: str) -> dict[str, Any]:
        """A short-lived SSH certificate for the session's user, for one browser terminal: valid
        WEB_TERMINAL_CERT_TTL at most and never beyond the session's end."""
        ws = await self.get(session_id)
        left = ws.deadline() - time.time()
        if left < defaults.MIN_USER_CERT_TTL:
            raise AccessDenied("your web session ends in less than a minute: log in again")
        ttl = min(defaults.WEB_TERMINAL_CERT_TTL, left)
        user = await self.server.store.get_user(ws.user)
        if not public_key:
            raise BadParameter("missing public_key")
        result = await self.server.generate_user_certs(user, public_key, ttl)
        return {
            "cert": result.cert, "username": result.username, "logins": result.logins,
            "expires": result.expires, "host_ca_keys": await self.server.checking_keys("host"),
        }
