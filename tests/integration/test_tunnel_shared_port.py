"""The reverse tunnel listener on the web port (tunnel_listen_addr equal to web_listen_addr):
tsh logs in over HTTPS and a node behind a firewall joins, tunnels and is reached, all on one
port, each connection told apart by its first bytes; junk and silent connections are dropped."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.helpers import Cluster, destroy, new_cluster, os_account
from tests.integration.test_tunnel_via_proxy import NODE, OS_USER, ProxyJoinedNode, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tc() -> Iterator[tuple[Cluster, ProxyJoinedNode]]:
    with os_account(OS_USER):
        c = new_cluster()
        c.ports["tunnel"] = c.ports["web"]  # one port for both
        node = ProxyJoinedNode(c)
        try:
            c.start()
            node.start()
            c.add_user("vic", OS_USER)
            c.login("vic")
            wait_for(lambda: NODE in c.tsh("ls").stdout, 40, "the node never came online", c, node)
            yield c, node
        finally:
            node.destroy()
            destroy(c)


def test_one_port_serves_https_and_tunnels(tc: tuple[Cluster, ProxyJoinedNode]) -> None:
    c, node = tc
    res = c.tsh("ssh", f"{OS_USER}@{NODE}", "echo", "one-port", check=False)
    assert res.returncode == 0 and res.stdout.strip() == "one-port", res.stderr + node.log()
    w = node.watcher
    assert w is not None and w.hits == [] and w.peers == {c.ports["web"]}, w.peers
    assert "shared with the web proxy" in c.log()


def test_junk_and_silence_on_the_shared_port_are_dropped(tc: tuple[Cluster, ProxyJoinedNode]) -> None:
    c, _ = tc
    with socket.create_connection(("127.0.0.1", c.ports["web"]), timeout=30) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")  # plain HTTP on the TLS port: closed
        s.settimeout(30)
        assert s.recv(100) == b""
    with socket.create_connection(("127.0.0.1", c.ports["web"]), timeout=30) as s:
        s.sendall(b"SSH-2.0-junk\r\n" + b"\0" * 64)  # a broken SSH peer: closed
        s.settimeout(30)
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        assert data.startswith(b"SSH-2.0-")  # the tunnel listener's banner, then the close
    # the port still serves both afterwards
    assert c.tsh("ssh", f"{OS_USER}@{NODE}", "true", check=False).returncode == 0
    started = time.time()
    assert "Node Name" in c.tsh("ls").stdout and time.time() - started < 30
