"""Session options from the access check, through a real in-process node and asyncssh client:
client_idle_timeout disconnects an idle client with a message, input keeps it alive, and
disconnect_expired_cert closes the connection when the certificate expires."""

from __future__ import annotations

import asyncio
import os
import pwd
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncssh
import pytest

from teleport.ca import keys, sshcert
from teleport.node.server import NodeServer

LOGIN = pwd.getpwuid(os.geteuid()).pw_name
Node = tuple[NodeServer, dict[str, Any], keys.PrivateKey, int]


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    user_ca, host_ca, host_key = (keys.generate_private_key() for _ in range(3))
    host_cert = sshcert.sign_host_cert(host_ca, keys.public_key_to_openssh(host_key), host_id="h1",
                                       nodename="n", cluster_name="c")
    access: dict[str, Any] = {"permit_port_forwarding": False, "permit_agent_forwarding": False}

    async def check(user: str, login: str) -> dict[str, Any]:
        return dict(access)

    srv = NodeServer(
        asyncssh.import_private_key(keys.private_key_to_openssh(host_key)),
        asyncssh.import_certificate(host_cert), "c", "h1",
        lambda: [keys.public_key_to_openssh(user_ca)], lambda: [keys.public_key_to_openssh(host_ca)],
        check,
    )
    _, port = await srv.listen("127.0.0.1", 0)
    yield srv, access, user_ca, port
    await srv.close()


async def _connect(user_ca: keys.PrivateKey, port: int, ttl: int = 300) -> asyncssh.SSHClientConnection:
    key = keys.generate_private_key()
    cert = sshcert.sign_user_cert(user_ca, keys.public_key_to_openssh(key), username="alice",
                                  principals=[LOGIN], ttl=ttl, roles=["r"])
    return await asyncssh.connect(
        "127.0.0.1", port, username=LOGIN, known_hosts=None, agent_path=None,
        client_keys=[(asyncssh.import_private_key(keys.private_key_to_openssh(key)),
                      asyncssh.import_certificate(cert))],
    )


async def _read_until_closed(proc: asyncssh.SSHClientProcess[bytes], timeout: float,
                             tick: Callable[[], None] | None = None) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(proc.stdout.read(4096), 0.3)
        except TimeoutError:
            if tick is not None:
                tick()
            continue
        except (asyncssh.Error, ConnectionError):
            break
        if not data:
            break
        out += data
    return bytes(out)


async def test_idle_client_is_disconnected_with_a_message(node: Node) -> None:
    _, access, ca, port = node
    access["client_idle_timeout"] = 1.0
    conn = await _connect(ca, port)
    proc = await conn.create_process(term_type="xterm", encoding=None)
    start = time.monotonic()
    out = await _read_until_closed(proc, 10)
    assert 0.9 < time.monotonic() - start < 5
    assert b"client idle for more than 1s" in out
    await asyncio.wait_for(conn.wait_closed(), 5)


async def test_input_keeps_the_session_alive(node: Node) -> None:
    _, access, ca, port = node
    access["client_idle_timeout"] = 1.0
    async with await _connect(ca, port) as conn:
        proc = await conn.create_process(term_type="xterm", encoding=None)
        out = await _read_until_closed(proc, 2.5, tick=lambda: proc.stdin.write(b" "))
        assert b"idle" not in out
        proc.stdin.write(b"\x15echo alive-$((2*3))\n")
        out = await _read_until_closed(proc, 0.8)
        assert b"alive-6" in out and not proc.is_closing()


async def test_expired_certificate_disconnects(node: Node) -> None:
    _, access, ca, port = node
    access["disconnect_expired_cert"] = True
    conn = await _connect(ca, port, ttl=2)
    proc = await conn.create_process(term_type="xterm", encoding=None)
    start = time.monotonic()
    out = await _read_until_closed(proc, 10, tick=lambda: proc.stdin.write(b" "))
    assert time.monotonic() - start < 6
    assert b"certificate has expired" in out
    await asyncio.wait_for(conn.wait_closed(), 5)


async def test_no_options_no_disconnect(node: Node) -> None:
    _, _, ca, port = node
    conn = await _connect(ca, port, ttl=2)
    try:
        proc = await conn.create_process(term_type="xterm", encoding=None)
        await _read_until_closed(proc, 3)
        assert not proc.is_closing()
    finally:
        conn.close()
