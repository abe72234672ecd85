"""Joining a live session from the browser, as `tsh join` does (client/join.py): the session's
node and login come from auth, which answers only if the web session's user may read sessions;
the terminal then dials that node as that login with the ``TELEPORT_SESSION`` env request, and
the node makes its own checks (the login must be one the user's certificate allows there).
"""

from __future__ import annotations

from typing import Any

from teleport.auth.client import AuthClient
from teleport.client.join import SESSION_ENV, session_target
from teleport.errors import AccessDenied, BadParameter, NotFound
from teleport.proxy.webapi.security import WebContext
from teleport.types.names import check_sid
from teleport.types.session import target_of

__all__ = ["SESSION_ENV", "JoinTarget", "join_target"]


class JoinTarget:
    """Where a joined session runs."""

    def __init__(self, sid: str, node: str, login: str) -> None:
        self.sid, self.node, self.login = sid, node, login


async def join_target(auth: AuthClient, ctx: WebContext, sid: str) -> JoinTarget:
    """The live session `sid` the user may join: its node and login (clear errors otherwise)."""
    check_sid(sid)
    try:
        sess: dict[str, Any] = await auth.call(
            "POST", "/v1/websessions/sessions/get", {"session_id": ctx.session_id, "sid": sid})
    except NotFound:
        raise NotFound(
            f"session {sid} is not active (it ended, or never existed): pick one from the list"
        ) from None
    except AccessDenied as exc:
        raise AccessDenied(
            f"you may not join session {sid}: {exc.message} (your roles need read access to "
            "sessions)"
        ) from None
    if target_of(sess) is not None:
        # run by a proxy in recording proxy mode: its parties attach at that proxy's SSH service,
        # which the browser terminal does not go through
        raise BadParameter(
            f"session {sid} is relayed and recorded by the proxy (recording proxy mode): join it "
            f"with 'tsh join {sid}'"
        )
    node, _port, login = session_target(sess, sid)
    return JoinTarget(sid, node, login)
