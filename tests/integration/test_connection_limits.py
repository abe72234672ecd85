"""connection_limits and handshake timeouts on every listener of real teleport processes:
the N+1th connection from one address is refused with a message, and a connection that never
completes its TLS/SSH handshake (or never sends a request) is closed after handshake_timeout."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import Iterator

import asyncssh
import pytest

from tests.helpers import Cluster, destroy, new_cluster

pytestmark = pytest.mark.integration

LIMIT = 4
TIMEOUT = 4.0  # handshake_timeout of the test clusters
LIMITS = f"  connection_limits: {{max_connections: {LIMIT}, handshake_timeout: {TIMEOUT:g}s}}\n"


@pytest.fixture(scope="module")
def limited() -> Iterator[Cluster]:
    c = new_cluster(roles="auth,proxy,node", teleport_extra=LIMITS)
    try:
        c.start()
        yield c
    finally:
        destroy(c)


@pytest.fixture(scope="module")
def auth_only() -> Iterator[Cluster]:
    """An auth server alone: no proxy or node holding connections to it from 127.0.0.1."""
    c = new_cluster(roles="auth", teleport_extra=LIMITS)
    try:
        c.start()
        yield c
    finally:
        destroy(c)


def _tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _http_get(sock: ssl.SSLSocket, path: str) -> tuple[int, bytes]:
    """One keep-alive request on an open TLS socket: (status, body)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {buf!r}"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk
        body += chunk
    return int(head.split()[1]), body


def _open_tls(port: int) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    return _tls().wrap_socket(raw)


def _closed_within(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closes ``sock`` (fails after ``limit``)."""
    start = time.monotonic()
    sock.settimeout(limit)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, ssl.SSLError, OSError) as exc:
        if isinstance(exc, TimeoutError | socket.timeout):
            pytest.fail(f"the server kept a silent connection open for more than {limit}s")
    return time.monotonic() - start


def _check_http_limit(port: int, path: str) -> None:
    holders = []
    try:
        for _ in range(LIMIT):
            s = _open_tls(port)
            assert _http_get(s, path)[0] == 200  # served, and kept alive
            holders.append(s)
        extra = _open_tls(port)
        status, body = _http_get(extra, path)
        extra.close()
        assert status == 429, body
        err = json.loads(body)
        assert err["error"] == "LimitExceeded"
        assert "too many connections from 127.0.0.1" in err["message"]
        assert f"limit {LIMIT}" in err["message"] and "max_connections" in err["message"]
    finally:
        for s in holders:
            s.close()
    # released on close: a new connection is served again
    deadline = time.monotonic() + 10
    while True:
        s = _open_tls(port)
        status, _ = _http_get(s, path)
        s.close()
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200


def test_web_proxy_refuses_the_connection_over_the_limit(limited: Cluster) -> None:
    _check_http_limit(limited.ports["web"], "/webapi/ping")


def test_auth_refuses_the_connection_over_the_limit(auth_only: Cluster) -> None:
    _check_http_limit(auth_only.ports["auth"], "/v1/ping")


@pytest.mark.parametrize("service", ["web", "auth"])
def test_tls_listeners_drop_silent_and_requestless_connections(limited: Cluster, service: str) -> None:
    port = limited.ports[service]
    # TCP only: the TLS handshake never starts
    start = time.monotonic()
    raw = socket.create_connection(("127.0.0.1", port), timeout=20)
    # TLS done, but no request ever comes
    tls = _open_tls(port)
    _closed_within(raw, TIMEOUT + 10)
    t1 = time.monotonic() - start
    _closed_within(tls, TIMEOUT + 10)
    t2 = time.monotonic() - start
    raw.close()
    tls.close()
    assert t1 >= TIMEOUT * 0.5 and t2 >= TIMEOUT * 0.5  # closed by the timeout, not at once


async def _ssh_refusal(port: int) -> str:
    with pytest.raises(asyncssh.DisconnectError) as info:
        conn = await asyncssh.connect("127.0.0.1", port, known_hosts=None, username="nobody",
                                      client_keys=None, agent_path=None, connect_timeout=20)
        conn.close()
    return str(info.value.reason)


@pytest.mark.parametrize("service", ["ssh", "node", "tunnel"])
def test_ssh_listeners_refuse_the_connection_over_the_limit(limited: Cluster, service: str) -> None:
    port = limited.ports[service]
    holders = []
    try:
        for _ in range(LIMIT):
            s = socket.create_connection(("127.0.0.1", port), timeout=20)
            s.sendall(b"SSH-2.0-holder\r\n")  # an SSH client that goes no further
            holders.append(s)
        time.sleep(0.3)
        reason = asyncio.run(_ssh_refusal(port))
    finally:
        for s in holders:
            s.close()
    assert "too many connections from 127.0.0.1" in reason and f"limit {LIMIT}" in reason


@pytest.mark.parametrize("service", ["ssh", "node", "tunnel"])
def test_ssh_listeners_drop_connections_that_never_log_in(limited: Cluster, service: str) -> None:
    s = socket.create_connection(("127.0.0.1", limited.ports[service]), timeout=20)
    s.sendall(b"SSH-2.0-silent\r\n")
    elapsed = _closed_within(s, TIMEOUT + 10)
    s.close()
    assert elapsed >= TIMEOUT * 0.5
