"""`tsh join SID`: join a live interactive session on its node.

The wire contract with the node: a PTY shell request preceded by the SSH `env` request
`TELEPORT_SESSION=<sid>`; the node then attaches this channel to the live session instead of
starting a new shell. The session's node and login come from the auth API (GET /v1/sessions/SID).
"""

from __future__ import annotations

from typing import Any

import asyncssh

from teleport import defaults
from teleport.client import run, ssh
from teleport.client.authtunnel import auth_client_via_proxy
from teleport.errors import AccessDenied, NotFound

SESSION_ENV = "TELEPORT_SESSION"


async def lookup_session(creds: ssh.Credentials, proxy: asyncssh.SSHClientConnection,
                         sid: str) -> dict[str, Any]:
    """The live session record from auth; clear errors for unknown/ended sessions and denials."""
    async with auth_client_via_proxy(creds, proxy) as auth:
        try:
            return await auth.get_session(sid)
        except NotFound:
            raise NotFound(
                f"session {sid} is not active (it ended, or never existed): see 'tsh sessions ls' "
                "for live sessions"
            ) from None
        except AccessDenied as exc:
            raise AccessDenied(
                f"you may not join session {sid}: {exc} (your roles need read access to sessions)"
            ) from None


def session_target(sess: dict[str, Any], sid: str) -> tuple[str, str]:
    """(node to dial, login) of a session record."""
    node = str(sess.get("server_id") or sess.get("server_hostname") or "")
    login = str(sess.get("login") or "")
    if not node or not login:
        raise NotFound(f"session {sid} has no node or login recorded: it cannot be joined")
    return node, login


async def join_session(creds: ssh.Credentials, sid: str, port: int = defaults.NODE_SSH_PORT) -> int:
    """Join live session `sid` with the local terminal; returns when the session ends."""
    proxy = await ssh.connect_proxy(creds)
    try:
        sess = await lookup_session(creds, proxy, sid)
        node, login = session_target(sess, sid)
        where = sess.get("server_hostname") or node
        if login not in creds.logins:
            raise AccessDenied(
                f"session {sid} runs as login {login!r} on node {where}; your certificate does not "
                f"allow that login (your logins: {', '.join(creds.logins) or 'none'})"
            )
        conn = await ssh.connect_node(proxy, creds, node, port, login)
        async with conn:
            code = await run.run_session(conn, None, True, env={SESSION_ENV: sid})
        return code
    finally:
        proxy.close()
