"""SSHGate: the SSH listeners' hooks refuse with a disconnect message and release on close."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh

from teleport.service.httplistener import ListenerLimits
from teleport.service.sshgate import SSHGate


class FakeConn:
    def __init__(self) -> None:
        self.disconnects: list[tuple[int, str]] = []

    def disconnect(self, code: int, reason: str) -> None:
        self.disconnects.append((code, reason))


async def test_max_users_and_role_max_connections() -> None:
    gate = SSHGate(ListenerLimits(max_connections=10, max_total=20, max_users=2), "node n1")
    conns: list[Any] = [FakeConn() for _ in range(5)]
    for c in conns:
        assert gate.opened(c, "10.0.0.1")
    assert gate.authenticated(conns[0], "alice", max_for_user=2)
    assert gate.authenticated(conns[1], "alice", max_for_user=2)
    assert not gate.authenticated(conns[2], "alice", max_for_user=2)  # role max_connections
    assert gate.authenticated(conns[3], "bob")
    assert not gate.authenticated(conns[4], "carol")  # max_users: alice and bob hold it
    await asyncio.sleep(0)  # the disconnects are deferred past asyncssh's version line
    assert conns[2].disconnects == [(asyncssh.DISC_TOO_MANY_CONNECTIONS, conns[2].disconnects[0][1])]
    assert "max_connections: 2" in conns[2].disconnects[0][1]
    assert "limit of 2 users" in conns[4].disconnects[0][1]
    for c in conns:
        gate.closed(c)
        gate.closed(c)  # twice is harmless
    assert gate.limiter.total == 0 and gate.limiter.users == 0


async def test_per_source_refusal_is_told_and_not_released_twice() -> None:
    gate = SSHGate(ListenerLimits(max_connections=1, max_total=5, max_users=0), "the SSH proxy")
    a: Any = FakeConn()
    b: Any = FakeConn()
    assert gate.opened(a, "10.0.0.1")
    assert not gate.opened(b, "10.0.0.1")
    await asyncio.sleep(0)
    assert "too many connections from 10.0.0.1 to the SSH proxy (limit 1)" in b.disconnects[0][1]
    gate.closed(b)  # a refused connection releases nothing
    assert gate.limiter.count("10.0.0.1") == 1
    gate.closed(a)
    assert gate.limiter.total == 0
