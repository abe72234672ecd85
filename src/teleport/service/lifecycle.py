"""How `teleport start` lives and ends: signals (SIGTERM/SIGINT at once, SIGQUIT after the live
sessions, SIGHUP by handing the listeners to a successor process), the pid file, and the banner
that tells the user what to do next. The services themselves are process.py's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from teleport import defaults
from teleport.aio import cancel_and_wait
from teleport.config.model import FileConfig
from teleport.files import write_public
from teleport.service import restart
from teleport.service.process import TeleportProcess

log = logging.getLogger("teleport")


@dataclass
class Lifecycle:
    """How `teleport start` ends: SIGTERM/SIGINT at once, SIGQUIT after the live sessions,
    SIGHUP by handing over to a successor process (then as SIGQUIT)."""

    shutdown_timeout: float = defaults.SHUTDOWN_TIMEOUT
    pid_file: str = ""
    check_config: Callable[[], object] | None = None  # re-reads teleport.yaml before a restart
    signals: asyncio.Queue[str] = field(default_factory=asyncio.Queue)


SIGNALS = {signal.SIGINT: "fast", signal.SIGTERM: "fast", signal.SIGQUIT: "graceful",
           signal.SIGHUP: "restart"}


async def run(cfg: FileConfig, ready: asyncio.Event | None = None,
              life: Lifecycle | None = None) -> None:
    """Start the configured services, print what the user does next, and run until signalled."""
    from teleport.service import listeners

    life = life or Lifecycle()
    proc = TeleportProcess(cfg)
    loop = asyncio.get_running_loop()
    for sig, how in SIGNALS.items():
        loop.add_signal_handler(sig, life.signals.put_nowait, how)
    try:
        if not await _start_unless_stopped(proc, life):
            return
        listeners.forget_unused()
        if life.pid_file:
            write_public(life.pid_file, f"{os.getpid()}\n")
        print_banner(proc)
        listeners.notify_ready()
        if ready is not None:
            ready.set()
        while True:
            how = await life.signals.get()
            if how == "restart":
                if life.check_config is None:
                    log.error("SIGHUP: this process cannot restart itself; ignoring")
                    continue
                if await restart.spawn_successor(life.check_config) is None:
                    continue  # keep serving as we are
            if how in ("graceful", "restart"):
                log.warning("%s: no new connections; waiting for %d live connection(s) to end "
                            "(at most %.0f s)", "restart" if how == "restart" else "SIGQUIT",
                            proc.live_connections(), life.shutdown_timeout)
                proc.stop_accepting()
                await _drain_or_fast(proc, life)
            break
    finally:
        await proc.close()
        _remove_pid_file(life.pid_file)


async def _start_unless_stopped(proc: TeleportProcess, life: Lifecycle) -> bool:
    """Start the services; False when SIGTERM/SIGINT/SIGQUIT came first (a start may wait on an
    auth server or a backend that does not answer: the signal must not wait for it)."""
    starting: asyncio.Task[Any] = asyncio.create_task(proc.start())
    while True:
        signalled = asyncio.create_task(life.signals.get())
        await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            signalled.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await signalled
            starting.result()  # a failed start raises here
            return True
        how = signalled.result()
        if how == "restart":
            log.warning("SIGHUP while starting: ignored (send it again once the process serves)")
            continue
        log.warning("stopping before the services finished starting")
        await cancel_and_wait([starting])
        return False


async def _drain_or_fast(proc: TeleportProcess, life: Lifecycle) -> None:
    """Drain, cut short by SIGTERM/SIGINT (a second SIGQUIT or SIGHUP changes nothing)."""
    drain = asyncio.create_task(proc.drain(life.shutdown_timeout))

    async def fast_signal() -> None:
        while await life.signals.get() != "fast":
            pass

    tasks: list[asyncio.Task[Any]] = [drain, asyncio.create_task(fast_signal())]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    await cancel_and_wait(tasks)


def _remove_pid_file(path: str) -> None:
    """Remove the pid file if it still names us (a successor writes its own)."""
    if not path:
        return
    try:
        with open(path) as f:
            if f.read().strip() == str(os.getpid()):
                os.unlink(path)
    except OSError:
        pass


def print_banner(proc: TeleportProcess) -> None:
    import sys

    cfg = proc.cfg
    lines = list(proc.banner)
    if cfg.auth_service.enabled:
        conf = f" -c {cfg.source}" if cfg.source and os.path.exists(cfg.source) else ""
        proxy = proc.web_public_addr() if cfg.proxy_service.enabled else "PROXY:3080"
        lines += [
            "",
            "Teleport is running. What to do next, in another terminal:",
            f"  1. invite a user:        tctl{conf} users add $USER",
            "  2. complete the invite:  tsh --insecure signup <the URL it prints>",
            f"  3. log in:               tsh --insecure --proxy={proxy} login --user=$USER",
            "  4. see your certificate: tsh status",
            "(--insecure because the proxy uses a self-signed certificate; see proxy_service.https_cert_file)",
        ]
    print("\n".join(lines), flush=True)
    sys.stdout.flush()
