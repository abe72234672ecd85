"""tsh and a recording proxy: forward the user's key to the proxy through an SSH agent.

In recording proxy mode (auth_service.session_recording: proxy) the proxy terminates the SSH
connection and logs in to the node with the user's own certificate, which it reaches only
through an agent the client forwards to it. tsh asks the proxy which mode it runs in (the
`teleport-session-recording` subsystem) and, in proxy mode, opens the connection that carries the
node's channel with agent forwarding: to the running ssh-agent when it already holds this
certificate (`tsh login` loads it there), else to a private OpenSSH `ssh-agent` holding only the
key and certificate, stopped when the connection ends.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncssh

from teleport.errors import BadParameter

MODE_SUBSYSTEM = "teleport-session-recording"
AGENT_START_TIMEOUT = 5.0


async def recording_mode(proxy: asyncssh.SSHClientConnection) -> str:
    """The proxy's session recording mode ("node" when it does not say: older proxies)."""
    try:
        result = await proxy.run(subsystem=MODE_SUBSYSTEM, encoding=None)
    except (asyncssh.Error, OSError):
        return "node"
    out = result.stdout if isinstance(result.stdout, bytes) else b""
    mode = out.decode(errors="replace").strip()
    return mode if result.exit_status == 0 and mode in ("node", "proxy", "off") else "node"


async def _agent_holds(path: str, cert: asyncssh.SSHCertificate) -> bool:
    try:
        agent = await asyncssh.connect_agent(path)
    except (OSError, asyncssh.Error):
        return False
    try:
        keys = await agent.get_keys()
    except (OSError, asyncssh.Error):
        return False
    finally:
        agent.close()
    blob = cert.public_data
    return any(bytes(k.public_data) == blob for k in keys)


async def agent_for(
    key: asyncssh.SSHKey, cert: asyncssh.SSHCertificate, valid_before: float
) -> tuple[str, Callable[[], Awaitable[None]]]:
    """(agent socket path, stop) for forwarding this key and certificate to the proxy."""
    running = os.environ.get("SSH_AUTH_SOCK")
    if running and await _agent_holds(running, cert):
        async def keep() -> None:
            return None

        return running, keep
    tool = shutil.which("ssh-agent")
    if tool is None:
        raise BadParameter(
            "the proxy records sessions (recording proxy mode) and needs your key through an "
            "SSH agent: install OpenSSH's ssh-agent, or start one and run 'tsh login' again"
        )
    tmp = tempfile.mkdtemp(prefix="tsh-agent-")
    path = os.path.join(tmp, "agent.sock")
    proc = subprocess.Popen([tool, "-D", "-a", path], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def kill() -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(kill)  # whatever happens to the session, the private agent goes with tsh

    async def stop() -> None:
        kill()
        atexit.unregister(kill)

    deadline = time.monotonic() + AGENT_START_TIMEOUT
    while True:
        # the socket file appears at bind(), a moment before the agent listens on it
        try:
            agent = await asyncssh.connect_agent(path)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                await stop()
                raise BadParameter(f"ssh-agent did not start (exit status {proc.poll()})") from None
            await asyncio.sleep(0.01)
    try:
        lifetime = max(int(valid_before - time.time()), 1)
        await agent.add_keys([(key, cert)], lifetime=lifetime)
    except Exception:
        await stop()
        raise
    finally:
        agent.close()
    return path, stop


def close_after(conn: asyncssh.SSHClientConnection, *cleanups: Any) -> None:
    """Run the cleanups (close the proxy connection, stop the agent) once `conn` closed."""

    async def wait() -> None:
        try:
            await conn.wait_closed()
        finally:
            for c in cleanups:
                result = c()
                if asyncio.iscoroutine(result):
                    await result

    task = asyncio.ensure_future(wait())
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)


_TASKS: set[asyncio.Task[None]] = set()
