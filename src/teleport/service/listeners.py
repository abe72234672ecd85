"""Listening sockets that survive a restart: `teleport start` binds through `listen_socket`, and
a SIGHUP restart hands every one of them to the new process (fork/exec with the descriptors
inherited and listed in TELEPORT_LISTEN_FDS, as the original product does), so that no
connection is refused while the old process drains its live sessions."""

from __future__ import annotations

import json
import logging
import os
import socket

log = logging.getLogger(__name__)

ENV_FDS = "TELEPORT_LISTEN_FDS"  # {"host:port": fd, ...}: sockets inherited from the parent
ENV_READY = "TELEPORT_READY_FD"  # a pipe the child writes "ready" to once it serves

_inherited: dict[str, int] | None = None
_active: dict[str, socket.socket] = {}


def _key(host: str, port: int) -> str:
    return f"{host or '0.0.0.0'}:{port}"


def parse_fds(text: str) -> dict[str, int]:
    """TELEPORT_LISTEN_FDS: {"host:port": fd}; anything else is ignored (empty)."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, int) and not isinstance(v, bool) and v > 2}


def _take_inherited(key: str) -> socket.socket | None:
    global _inherited
    if _inherited is None:
        _inherited = parse_fds(os.environ.pop(ENV_FDS, "") or "{}")
    fd = _inherited.pop(key, None)
    if fd is None:
        return None
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        log.warning("inherited listener %s (fd %d) is unusable, binding anew: %s", key, fd, exc)
        return None
    if sock.type != socket.SOCK_STREAM or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) != 1:
        sock.detach()
        return None
    log.info("listening on %s with the socket inherited from the previous process", key)
    return sock


def listen_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A non-blocking listening TCP socket on host:port: the parent's after a restart, else a
    new one (OSError when the address is taken)."""
    key = _key(host, port)
    sock = _take_inherited(key)
    if sock is None:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError:
            sock.close()
            raise
        sock.listen(backlog)
    sock.setblocking(False)
    _active[key] = sock
    return sock


def active() -> dict[str, socket.socket]:
    """The listeners this process serves on (what a restart hands over)."""
    return {k: s for k, s in _active.items() if s.fileno() >= 0}


def forget_unused() -> None:
    """Close inherited sockets no service claimed (the new configuration dropped them)."""
    global _inherited
    for key, fd in (_inherited or {}).items():
        log.info("the new configuration does not listen on %s any more", key)
        try:
            os.close(fd)
        except OSError:
            pass
    _inherited = {}


def notify_ready() -> None:
    """Tell the parent that restarted us that we serve now (it then drains and exits)."""
    text = os.environ.pop(ENV_READY, "")
    if not text.isdigit():
        return
    try:
        os.write(int(text), b"ready\n")
        os.close(int(text))
    except OSError as exc:
        log.warning("cannot tell the previous process that this one is ready: %s", exc)
