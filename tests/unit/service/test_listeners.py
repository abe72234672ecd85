"""Listening sockets handed to a successor process: the TELEPORT_LISTEN_FDS format, a socket
taken over by address, and garbage or unusable descriptors ignored (a fresh bind instead)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator

import pytest

from teleport.service import listeners
from tests.helpers import free_port


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(listeners, "_inherited", None)
    monkeypatch.setattr(listeners, "_active", {})
    monkeypatch.delenv(listeners.ENV_FDS, raising=False)
    yield
    for s in listeners._active.values():
        s.close()


def test_parse_fds_keeps_only_descriptors() -> None:
    assert listeners.parse_fds('{"127.0.0.1:3022": 7, "x": "8", "y": true, "z": 1, "w": -3}') == \
        {"127.0.0.1:3022": 7}
    assert listeners.parse_fds("[1,2]") == {}
    assert listeners.parse_fds("not json") == {}


def test_an_inherited_socket_is_taken_by_its_address(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    parent = socket.socket()
    parent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    parent.bind(("127.0.0.1", port))
    parent.listen(8)
    fd = os.dup(parent.fileno())
    monkeypatch.setenv(listeners.ENV_FDS, json.dumps({f"127.0.0.1:{port}": fd}))
    sock = listeners.listen_socket("127.0.0.1", port)
    assert sock.fileno() == fd and sock.getsockname() == ("127.0.0.1", port)
    assert listeners.ENV_FDS not in os.environ  # not passed on to the sessions' shells
    # both descriptors are the same listening socket: a client is accepted through the new one
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(True)
    conn, _ = sock.accept()
    conn.close()
    client.close()
    parent.close()
    assert listeners.active() == {f"127.0.0.1:{port}": sock}


def test_an_unusable_descriptor_means_a_fresh_bind(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    r, w = os.pipe()  # not a socket at all
    monkeypatch.setenv(listeners.ENV_FDS, json.dumps({f"127.0.0.1:{port}": r}))
    try:
        sock = listeners.listen_socket("127.0.0.1", port)
        assert sock.fileno() != r and sock.getsockname()[1] == port
    finally:
        os.close(w)
        try:
            os.close(r)
        except OSError:
            pass


def test_unclaimed_inherited_sockets_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    fd = os.dup(s.fileno())
    s.close()
    monkeypatch.setenv(listeners.ENV_FDS, json.dumps({"127.0.0.1:1": fd}))
    listeners.listen_socket("127.0.0.1", 0)  # reads the variable; claims nothing of it
    listeners.forget_unused()
    with pytest.raises(OSError):
        os.fstat(fd)
