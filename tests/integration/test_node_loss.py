"""tsh ends quickly, non-zero and with a clear message when the node dies mid-session (issue 7).

The node is its own `teleport start --roles=node` process, so that it can be killed (SIGKILL: the
kernel closes its sockets) or frozen (SIGSTOP: it vanishes without a FIN, as a host that loses
power or network would; only keep-alives can tell).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.helpers import (
    Cluster,
    NodeProc,
    cli,
    destroy,
    env_with,
    free_port,
    new_cluster,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="the node runs sessions as root (needs root)"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = new_cluster()  # auth + proxy; the nodes are separate processes
    try:
        c.start()
        c.add_user("lou", "root")
        c.login("lou")
        yield c
    finally:
        destroy(c)


@pytest.fixture
def node(cluster: Cluster) -> Iterator[NodeProc]:
    n = NodeProc(cluster, f"doomed{free_port()}")
    try:
        n.start(f"--token={cluster.static_token}")
        n.wait_listening()
        deadline = time.time() + 30
        while n.name not in cluster.tsh("ls").stdout:
            assert time.time() < deadline, "the node never registered"
            time.sleep(0.3)
        yield n
    finally:
        n.destroy()


def _session(cluster: Cluster, node: NodeProc) -> subprocess.Popen[str]:
    """`tsh ssh node sleep 100`, returned once the remote command runs."""
    tsh = subprocess.Popen(
        [*cli("tsh"), "ssh", f"root@{node.name}", "echo started; sleep 100"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env_with(TELEPORT_HOME=cluster.home),
    )
    assert tsh.stdout is not None
    line = tsh.stdout.readline()
    if line != "started\n":
        tsh.wait(10)
        raise AssertionError(f"the session did not start: {line!r}, {tsh.stderr.read() if tsh.stderr else ''}")
    return tsh


def _wait_end(tsh: subprocess.Popen[str], limit: float) -> tuple[float, int, str]:
    started = time.monotonic()
    try:
        _, err = tsh.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        tsh.kill()
        _, err = tsh.communicate()
        raise AssertionError(f"tsh still runs {limit:g}s after the node died; stderr: {err}") from None
    return time.monotonic() - started, tsh.returncode, err


def test_tsh_ends_when_the_node_is_killed(cluster: Cluster, node: NodeProc) -> None:
    tsh = _session(cluster, node)
    node.proc.send_signal(signal.SIGKILL)
    elapsed, code, err = _wait_end(tsh, 15)
    assert code != 0, err
    assert "connection to the node was lost" in err, err
    print(f"tsh exited {code} {elapsed:.2f}s after SIGKILL of the node")


def test_tsh_ends_when_the_node_vanishes_without_a_fin(cluster: Cluster, node: NodeProc) -> None:
    tsh = _session(cluster, node)
    node.proc.send_signal(signal.SIGSTOP)
    elapsed, code, err = _wait_end(tsh, 40)
    assert code != 0, err
    assert "connection to the node was lost" in err, err
    print(f"tsh exited {code} {elapsed:.2f}s after SIGSTOP of the node")
