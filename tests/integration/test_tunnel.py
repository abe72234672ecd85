"""Reverse tunnels (proxy 3024): a node with no listener joins, is listed, runs commands through
its tunnel, comes back after the proxy restarts, goes offline with a clear message; the tunnel
listener refuses user certificates and identities speaking for another host."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator

import asyncssh
import pytest

from tests.helpers import Cluster, cli, destroy, env_with, kill_proc, new_cluster, os_account

pytestmark = pytest.mark.integration

OS_USER = "tptunnel"


class TunnelNode:
    """A node process whose ssh_service reaches the cluster only through the proxy's tunnel."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.root = tempfile.mkdtemp(prefix=f"tp-tnode-{name}-")
        self.config = os.path.join(self.root, "teleport.yaml")
        with open(self.config, "w") as f:
            f.write(textwrap.dedent(f"""\
                teleport:
                  nodename: {name}
                  data_dir: {self.root}/data
                  log: {{output: {self.root}/teleport.log, severity: INFO}}
                auth_service: {{enabled: no}}
                proxy_service: {{enabled: no}}
                ssh_service:
                  enabled: yes
                  labels: {{site: behind-fw}}
                  tunnel_addr: 127.0.0.1:{cluster.ports['tunnel']}
                """))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*cli("teleport"), "start", "-c", self.config, "--roles=node",
             f"--auth-server={self.cluster.auth_addr}", f"--token={self.cluster.static_token}"],
            stdout=open(os.path.join(self.root, "stdout.log"), "wb"), stderr=subprocess.STDOUT,
            env=env_with(),
        )

    def log(self) -> str:
        out = []
        for name in ("stdout.log", "teleport.log"):
            path = os.path.join(self.root, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out.append(f"--- node {name}\n{f.read()[-4000:]}")
        return "\n".join(out)

    def stop(self) -> None:
        if self.proc is not None:
            kill_proc(self.proc)
            self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def tc() -> Iterator[tuple[Cluster, TunnelNode]]:
    with os_account(OS_USER):
        c = new_cluster()
        node = TunnelNode(c, "fwnode")
        try:
            c.start()
            node.start()
            c.add_user("joe", OS_USER)
            c.login("joe")
            wait_for(lambda: "fwnode" in c.tctl("nodes", "ls").stdout, 30, "the node never registered",
                     c, node)
            yield c, node
        finally:
            node.destroy()
            destroy(c)


def wait_for(cond: object, timeout: float, what: str, c: Cluster, node: TunnelNode) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise AssertionError(f"{what} within {timeout}s\n{c.log()}\n{node.log()}")


def ssh_ok(c: Cluster, *cmd: str) -> subprocess.CompletedProcess[str]:
    return c.tsh("ssh", f"{OS_USER}@fwnode", *cmd, check=False)


def listening_ports(pid: int) -> list[str]:
    """The TCP ports process `pid` listens on (from `ss`)."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    return [ln for ln in out.splitlines() if f"pid={pid}," in ln]


def test_tunnelled_node_is_listed_and_reachable_without_listening(tc: tuple[Cluster, TunnelNode]) -> None:
    c, node = tc
    line = next(ln for ln in c.tctl("nodes", "ls").stdout.splitlines() if "fwnode" in ln)
    assert "@tunnel" in line and "site=behind-fw" in line
    assert "fwnode" in c.tsh("ls").stdout
    wait_for(lambda: ssh_ok(c, "echo", "via-$((40+2))").returncode == 0, 20, "tsh ssh never worked", c, node)
    res = ssh_ok(c, "echo", "via-$((40+2))")
    assert res.stdout.strip() == "via-42", res.stderr
    res = c.tsh("ssh", f"{OS_USER}@site=behind-fw", "id", "-un", check=False)
    assert res.returncode == 0 and res.stdout.strip() == f"[fwnode] {OS_USER}", res.stderr
    # exit codes travel back through the tunnel
    assert ssh_ok(c, "exit 7").returncode == 7
    assert node.proc is not None and shutil.which("ss")
    assert listening_ports(node.proc.pid) == [], "a tunnelled node must not listen"


def test_node_comes_back_after_the_proxy_restarts(tc: tuple[Cluster, TunnelNode]) -> None:
    c, node = tc
    c.stop()
    c.start()
    started = time.time()
    wait_for(lambda: ssh_ok(c, "true").returncode == 0, 40, "the node never came back", c, node)
    assert time.time() - started < 40


def test_agent_identity_may_serve_only_its_own_host_id(tc: tuple[Cluster, TunnelNode]) -> None:
    c, node = tc
    from teleport.service import identity as idstore

    ident = idstore.load_identity(os.path.join(node.root, "data"), "node")
    assert ident is not None
    key = asyncssh.import_private_key(ident.private_key)
    cert = asyncssh.import_certificate(ident.cert)

    async def attempt(username: str) -> str:
        try:
            conn = await asyncssh.connect(
                "127.0.0.1", c.ports["tunnel"], username=username, client_keys=[(key, cert)],
                known_hosts=None, agent_path=None, password_auth=False, kbdint_auth=False,
            )
        except asyncssh.PermissionDenied:
            return "denied"
        conn.close()
        return "accepted"

    assert asyncio.run(attempt(f"{ident.host_id}.{ident.cluster_name}")) == "accepted"
    assert asyncio.run(attempt(f"someone-else.{ident.cluster_name}")) == "denied"
    assert asyncio.run(attempt(ident.host_id)) == "denied"


def test_user_certificate_cannot_open_a_tunnel(tc: tuple[Cluster, TunnelNode]) -> None:
    c, _ = tc
    keydir = os.path.join(c.home, "keys")
    found = [os.path.join(d, f) for d, _, fs in os.walk(keydir) for f in fs if f.endswith("-cert.pub")]
    assert found, f"no user certificate under {keydir}"
    cert = asyncssh.read_certificate(found[0])
    key = asyncssh.read_private_key(found[0][: -len("-cert.pub")])

    async def attempt(username: str) -> str:
        try:
            conn = await asyncssh.connect(
                "127.0.0.1", c.ports["tunnel"], username=username, client_keys=[(key, cert)],
                known_hosts=None, agent_path=None, password_auth=False, kbdint_auth=False,
            )
        except asyncssh.PermissionDenied:
            return "denied"
        conn.close()
        return "accepted"

    assert asyncio.run(attempt(OS_USER)) == "denied"
    assert asyncio.run(attempt("joe")) == "denied"


def test_offline_node_is_refused_clearly(tc: tuple[Cluster, TunnelNode]) -> None:
    c, node = tc
    node.stop()
    res = None
    deadline = time.time() + 20
    while time.time() < deadline:
        res = ssh_ok(c, "true")
        if res.returncode != 0 and "offline" in res.stderr:
            break
        time.sleep(0.3)
    assert res is not None and res.returncode != 0
    assert "offline" in res.stderr and "reverse tunnel" in res.stderr, res.stderr


def test_tsh_clusters_and_unknown_cluster(tc: tuple[Cluster, TunnelNode]) -> None:
    c, _ = tc
    out = c.tsh("clusters").stdout
    line = next(ln for ln in out.splitlines() if c.cluster_name in ln)
    assert "online" in line
    for cmd in (["ls", "--cluster=nope"], ["ssh", "--cluster=nope", f"{OS_USER}@fwnode", "true"],
                ["scp", "--cluster=nope", f"{OS_USER}@fwnode:/etc/hostname", "/tmp/tp-never"]):
        res = c.tsh(*cmd, check=False)
        assert res.returncode != 0, cmd
        assert "cluster 'nope' is not known to this proxy" in res.stderr and "tsh clusters" in res.stderr, res.stderr
    # the own cluster by name works; fwnode was stopped by the test before: its tunnel is gone,
    # so it is no longer listed (offline at once, not after its heartbeat TTL)
    out = c.tsh("ls", f"--cluster={c.cluster_name}").stdout
    assert "Node Name" in out and "fwnode" not in out
