"""SIGHUP: start the successor process with this one's listening sockets (fork/exec, the
descriptors inherited and named in TELEPORT_LISTEN_FDS), wait until it says it serves, and only
then let this one drain. A successor that fails (bad teleport.yaml, crash, no answer in time) is
stopped and this process keeps serving as before."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable

from teleport import defaults
from teleport.service import listeners

log = logging.getLogger("teleport")


def successor_argv() -> list[str]:
    """The command line this process was started with, to run again (re-reading teleport.yaml)."""
    argv = list(getattr(sys, "orig_argv", []) or [sys.executable, *sys.argv])
    if argv and argv[0] != sys.executable and os.path.basename(argv[0]).startswith("python"):
        argv[0] = sys.executable
    return argv


async def spawn_successor(check_config: Callable[[], object]) -> subprocess.Popen[bytes] | None:
    """Start the new process and wait for it to serve; None (and this one carries on) on failure."""
    try:
        check_config()  # a broken file must not take down a serving process
    except Exception as exc:
        log.error("not restarting: the configuration cannot be loaded: %s", exc)
        return None
    socks = listeners.active()
    fds = {key: s.fileno() for key, s in socks.items()}
    for fd in fds.values():
        os.set_inheritable(fd, True)
    read_end, write_end = os.pipe()
    env = dict(os.environ)
    env[listeners.ENV_FDS] = json.dumps(fds)
    env[listeners.ENV_READY] = str(write_end)
    try:
        child = subprocess.Popen(successor_argv(), env=env, pass_fds=[*fds.values(), write_end])
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        log.error("not restarting: cannot start the new process: %s", exc)
        return None
    finally:
        for fd in fds.values():
            os.set_inheritable(fd, False)
    os.close(write_end)
    log.warning("restarting: started process %d with %d listeners; waiting for it to serve",
                child.pid, len(fds))
    loop = asyncio.get_running_loop()
    read = loop.run_in_executor(None, os.read, read_end, 64)
    try:
        answer = await asyncio.wait_for(asyncio.shield(read), defaults.RESTART_READY_TIMEOUT)
    except TimeoutError:
        answer = b""
    if answer.strip() != b"ready":
        log.error("not restarting: the new process %d did not start serving; stopping it", child.pid)
        child.kill()
        await loop.run_in_executor(None, child.wait)
        await read  # EOF once the child is gone
        os.close(read_end)
        return None
    os.close(read_end)
    log.warning("restarting: process %d serves now; this one (%d) stops accepting and lets its "
                "live sessions finish", child.pid, os.getpid())
    return child
