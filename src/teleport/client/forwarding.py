"""tsh ssh -L, -R, -D and -f: port forwarding specs and their start on a node connection."""

from __future__ import annotations

import os

import asyncssh

from teleport.errors import AccessDenied, BadParameter, ConnectionProblem


def parse_forward(spec: str) -> tuple[str, int, str, int]:
    """`-L [bind:]port:host:hostport` -> (bind, port, host, hostport)."""
    parts = spec.split(":")
    if len(parts) == 3:
        parts = ["127.0.0.1", *parts]
    if len(parts) != 4 or not parts[1].isdigit() or not parts[3].isdigit():
        raise BadParameter(f"bad -L {spec!r}: use [bind_address:]port:host:hostport")
    return parts[0] or "127.0.0.1", int(parts[1]), parts[2], int(parts[3])


def parse_remote_forward(spec: str) -> tuple[str, int, str, int]:
    """`-R [bind:]port:host:hostport` -> (bind on the node, port, local host, local port).
    Without a bind address the node listens on its loopback only, as OpenSSH's default."""
    parts = spec.split(":")
    if len(parts) == 3:
        parts = ["localhost", *parts]
    if len(parts) != 4 or not parts[1].isdigit() or not parts[3].isdigit():
        raise BadParameter(f"bad -R {spec!r}: use [bind_address:]port:host:hostport")
    return parts[0] or "localhost", int(parts[1]), parts[2], int(parts[3])


def parse_dynamic_forward(spec: str) -> tuple[str, int]:
    """`-D [bind:]port` -> (local bind address, port); loopback by default."""
    bind, _, port = spec.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise BadParameter(f"bad -D {spec!r}: use [bind_address:]port")
    return bind or "127.0.0.1", int(port)


async def start_forwards(
    conn: asyncssh.SSHClientConnection, local: list[str], remote: list[str], dynamic: list[str]
) -> None:
    """Start -L, -R and -D forwardings; a refused one is an error that says why."""
    for spec in local:
        bind, lport, rhost, rport = parse_forward(spec)
        try:
            await conn.forward_local_port(bind, lport, rhost, rport)
        except OSError as exc:
            raise ConnectionProblem(f"-L {spec}: cannot listen on {bind}:{lport}: {exc.strerror}") from None
    for spec in remote:
        rbind, rlport, lhost, lport = parse_remote_forward(spec)
        try:
            await conn.forward_remote_port(rbind, rlport, lhost, lport)
        except asyncssh.ChannelListenError:
            raise AccessDenied(
                f"-R {spec}: the node refused to listen on {rbind}:{rlport} (port forwarding "
                "is not allowed by your roles' port_forwarding option, or the port is taken or "
                "privileged)"
            ) from None
    for spec in dynamic:
        bind, port = parse_dynamic_forward(spec)
        try:
            await conn.forward_socks(bind, port)
        except OSError as exc:
            raise ConnectionProblem(f"-D {spec}: cannot listen on {bind}:{port}: {exc.strerror}") from None


def go_background() -> None:
    """ssh -f: once connected, the parent returns to the shell and the child carries on
    (detached from the terminal, stdin from /dev/null)."""
    pid = os.fork()
    if pid:
        os._exit(0)  # the parent must not run the event loop's cleanup: the child owns it
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.close(devnull)
