"""A node on its own process and data_dir joins with a token, restarts without one, and is refused
with a clear message when the token is bad."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tests.helpers import Cluster, NodeProc, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def node(cluster: Cluster) -> Iterator[NodeProc]:
    n = NodeProc(cluster, f"joined{free_port()}")
    try:
        yield n
    finally:
        n.destroy()


def wait_listed(cluster: Cluster, name: str, present: bool = True, timeout: float = 20) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = cluster.tctl("nodes", "ls").stdout
        if (name in out) == present:
            return out
        time.sleep(0.3)
    raise AssertionError(f"node {name} {'never appeared' if present else 'never left'}:\n{out}")


def test_join_with_dynamic_token_and_pin_then_restart_without_token(cluster: Cluster, node: NodeProc) -> None:
    out = cluster.tctl("nodes", "add", "--ttl=5m").stdout
    token = out.split("--token=")[1].split()[0]
    pin = out.split("--ca-pin=")[1].split()[0]
    node.start(f"--token={token}", f"--ca-pin={pin}", "--labels=env=staging,kernel=[1h:\"uname -r\"]")
    node.wait_listening()
    listed = wait_listed(cluster, node.name)
    line = next(ln for ln in listed.splitlines() if node.name in ln)
    assert "env=staging" in line and f"kernel={os.uname().release}" in line
    assert f"127.0.0.1:{node.port}" in line
    ident = os.path.join(node.root, "data", "keys", "node.json")
    assert oct(os.stat(ident).st_mode & 0o777) == "0o600"

    # revoke the token: the node already holds its identity and restarts without any token
    cluster.tctl("tokens", "del", token)
    node.stop()
    node.start()
    node.wait_listening()
    wait_listed(cluster, node.name)


@pytest.mark.parametrize("case", ["unknown", "expired", "deleted", "bad-pin"])
def test_bad_join_stops_the_node_with_a_clear_message(cluster: Cluster, node: NodeProc, case: str) -> None:
    flags: list[str] = []
    if case == "unknown":
        flags = ["--token=0123456789abcdef0123456789abcdef"]
    elif case == "expired":
        out = cluster.tctl("nodes", "add", "--ttl=1s").stdout
        flags = [f"--token={out.split('--token=')[1].split()[0]}"]
        time.sleep(1.5)
    elif case == "deleted":
        out = cluster.tctl("nodes", "add").stdout
        token = out.split("--token=")[1].split()[0]
        cluster.tctl("tokens", "del", token)
        flags = [f"--token={token}"]
    else:
        out = cluster.tctl("nodes", "add").stdout
        flags = [f"--token={out.split('--token=')[1].split()[0]}", "--ca-pin=sha256:" + "0" * 64]
    node.start(*flags)
    assert node.proc is not None
    output, _ = node.proc.communicate(timeout=30)
    assert node.proc.returncode != 0
    assert "Traceback" not in output
    if case == "bad-pin":
        assert "pin" in output.lower()
    else:
        assert "unknown, expired or deleted" in output
    assert not os.path.exists(os.path.join(node.root, "data", "keys", "node.json"))


def test_label_targets_with_tsh(cluster: Cluster) -> None:
    """`tsh ls key=value` filters, and `tsh ssh login@key=value` runs on every matching node,
    each output line prefixed with the node's name."""
    a, b, c = (NodeProc(cluster, f"lbl{free_port()}") for _ in range(3))
    try:
        for n, env in ((a, "blue"), (b, "blue"), (c, "green")):
            n.start(f"--token={cluster.static_token}", f"--labels=env={env}")
        for n in (a, b, c):
            n.wait_listening()
            wait_listed(cluster, n.name)
        cluster.add_user("labeller", "root")
        cluster.login("labeller")
        ls = cluster.tsh("ls", "env=blue").stdout
        assert a.name in ls and b.name in ls and c.name not in ls
        out = cluster.tsh("ssh", "root@env=blue", "echo", "hi").stdout
        lines = sorted(line for line in out.splitlines() if line.strip())
        assert len(lines) == 2, out
        for n, line in zip(sorted((a, b), key=lambda n: n.name), lines, strict=True):
            assert line == f"[{n.name}] hi", line
    finally:
        for n in (a, b, c):
            n.destroy()
