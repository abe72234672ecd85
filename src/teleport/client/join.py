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
from teleport.types.session import target_of

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


def session_target(sess: dict[str, Any], sid: str, port: int = defaults.NODE_SSH_PORT) -> tuple[str, int, str]:
    """(host to dial, port, login) of a session record: a node's own session is joined on that
    node; one a recording proxy relays, through the proxy, at the host and port its owner asked
    for (the proxy that runs it attaches the joiner there)."""
    login = str(sess.get("login") or "")
    via = target_of(sess)
    if via is not None and login:
        return via[0], via[1], login
    node = str(sess.get("server_id") or sess.get("server_hostname") or "")
    if not node or not login:
        raise NotFound(f"session {sid} has no node or login recorded: it cannot be joined")
    return node, port, login


async def join_session(creds: ssh.Credentials, sid: str, port: int = defaults.NODE_SSH_PORT) -> int:
    """Join live session `sid` with the local terminal; returns when the session ends."""
    proxy = await ssh.connect_proxy(creds)
    try:
        sess = await lookup_session(creds, proxy, sid)
        node, port, login = session_target(sess, sid, port)
        where = sess.get("server_hostname") or node
        if login not in creds.logins:
            raise AccessDenied(
                f"session {sid} runs as login {login!r} on node {where}; your certificate does not "
                f"allow that login (your logins: {', '.join(creds.logins) or 'none'})"
            )
        conn = await ssh.connect_node(proxy, creds, node, port, login)
        async with conn:
            # OpenSSH's escapes as in `tsh ssh` (~. leaves the session, which goes on)
            code = await run.run_session(conn, None, True, env={SESSION_ENV: sid},
                                         escape_char=defaults.ESCAPE_CHAR)
        return code
    finally:
        proxy.close()
