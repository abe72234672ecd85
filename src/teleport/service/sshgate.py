"""Connection limits for the asyncssh servers (proxy 3023, node 3022): three calls per connection.

``opened`` when the SSH connection starts (counted by source address), ``authenticated`` once the
user is known (max_users, and the roles' max_connections), ``closed`` when it ends. A refused
connection is told why with an SSH disconnect message (``DISC_TOO_MANY_CONNECTIONS``), which
OpenSSH prints as "Received disconnect ... : <message>" and asyncssh raises as DisconnectError.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncssh

from teleport.errors import LimitExceeded
from teleport.limits import ConnectionLimiter
from teleport.service import memory
from teleport.service.httplistener import ListenerLimits

log = logging.getLogger(__name__)


@dataclass
class _Held:
    source: str
    counted: bool
    user: str | None = None


def refuse(conn: asyncssh.SSHServerConnection, message: str) -> None:
    """Disconnect with a message the client shows. Deferred: called from connection_made,
    asyncssh has not sent its version yet, and the message must follow it."""
    asyncio.get_running_loop().call_soon(
        conn.disconnect, asyncssh.DISC_TOO_MANY_CONNECTIONS, message
    )


class SSHGate:
    """Counts one SSH listener's connections and users (see teleport.limits)."""

    def __init__(self, limits: ListenerLimits, what: str) -> None:
        self.limits = limits
        self.what = what
        self.limiter = ConnectionLimiter(limits.max_connections, limits.max_total,
                                         limits.max_users, what=what)
        self._held: dict[asyncssh.SSHServerConnection, _Held] = {}

    def opened(self, conn: asyncssh.SSHServerConnection, source: str) -> bool:
        """Count a new connection from ``source``; refuse it (False) over a limit."""
        try:
            self.limiter.acquire(source)
        except LimitExceeded as exc:
            log.warning("refused an SSH connection from %s to %s: %s", source, self.what, exc)
            self._held[conn] = _Held(source, counted=False)
            refuse(conn, exc.message)
            return False
        self._held[conn] = _Held(source, counted=True)
        return True

    def authenticated(self, conn: asyncssh.SSHServerConnection, user: str,
                      max_for_user: int = 0) -> bool:
        """Count the user of an authenticated connection; refuse it (False) over max_users or
        the user's own max_connections (from their roles; 0 = unlimited)."""
        held = self._held.get(conn)
        if held is None or not held.counted or not user:
            return held is not None and held.counted
        try:
            self.limiter.acquire_user(user, max_for_user)
        except LimitExceeded as exc:
            log.warning("refused %s's SSH connection from %s to %s: %s", user, held.source,
                        self.what, exc)
            refuse(conn, exc.message)
            return False
        held.user = user
        return True

    def closed(self, conn: asyncssh.SSHServerConnection) -> None:
        """Release what ``conn`` held (safe to call more than once)."""
        held = self._held.pop(conn, None)
        if held is None:
            return
        memory.note_closed()
        if held.counted:
            self.limiter.release(held.source)
        if held.user is not None:
            self.limiter.release_user(held.user)
