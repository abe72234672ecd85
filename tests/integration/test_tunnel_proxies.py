"""Several proxies: a node behind a firewall keeps a tunnel to every proxy of its cluster, so any
proxy routes to it; it picks up a proxy that starts and drops one that stops, without a restart.

The cluster runs proxy A with auth; proxy B and later proxy C run in their own processes. The
node joins through A's web address only and learns the others from the proxies' heartbeats."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import (
    Cluster,
    cli,
    destroy,
    env_with,
    free_port,
    kill_proc,
    new_cluster,
    os_account,
    wait_port,
)
from tests.integration.test_tunnel_via_proxy import NODE, OS_USER, ProxyJoinedNode, wait_for

pytestmark = pytest.mark.integration

DISCOVERY = 1.0  # TELEPORT_TUNNEL_DISCOVERY_INTERVAL of the node


class ProxyProc:
    """Another proxy of the cluster, in its own process and data_dir."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster, self.name = cluster, name
        self.root = tempfile.mkdtemp(prefix=f"tp-proxy-{name}-")
        self.ports = {k: free_port() for k in ("ssh", "web", "tunnel")}
        self.config = os.path.join(self.root, "teleport.yaml")
        with open(self.config, "w") as f:
            f.write(textwrap.dedent(f"""\
                teleport:
                  nodename: {name}
                  data_dir: {self.root}/data
                  auth_token: {cluster.static_token}
                  auth_servers: ["{cluster.auth_addr}"]
                  advertise_ip: 127.0.0.1
                  log: {{output: {self.root}/teleport.log, severity: INFO}}
                auth_service: {{enabled: no}}
                ssh_service: {{enabled: no}}
                proxy_service:
                  enabled: yes
                  listen_addr: 127.0.0.1:{self.ports['ssh']}
                  web_listen_addr: 127.0.0.1:{self.ports['web']}
                  tunnel_listen_addr: 127.0.0.1:{self.ports['tunnel']}
                  public_addr: 127.0.0.1:{self.ports['web']}
                """))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def tunnel_addr(self) -> str:
        return f"127.0.0.1:{self.ports['tunnel']}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*cli("teleport"), "start", "-c", self.config, "--roles=proxy"],
            stdout=open(os.path.join(self.root, "stdout.log"), "ab"), stderr=subprocess.STDOUT,
            env=env_with(),
        )
        wait_port(self.ports["tunnel"], 30, self.proc)

    def stop(self) -> None:
        if self.proc is not None:
            kill_proc(self.proc)  # SIGTERM: a clean stop
            self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Cluster, ProxyProc, ProxyJoinedNode]]:
    old = os.environ.get("TELEPORT_TUNNEL_DISCOVERY_INTERVAL")
    os.environ["TELEPORT_TUNNEL_DISCOVERY_INTERVAL"] = str(DISCOVERY)
    with os_account(OS_USER):
        c = new_cluster()
        b = ProxyProc(c, "proxyb")
        node = ProxyJoinedNode(c)
        try:
            c.start()
            b.start()
            node.start()
            c.add_user("vic", OS_USER)
            c.login("vic")
            wait_for(lambda: NODE in c.tsh("ls").stdout, 40, "the node never came online", c, node)
            yield c, b, node
        finally:
            node.destroy()
            b.destroy()
            destroy(c)
            if old is None:
                os.environ.pop("TELEPORT_TUNNEL_DISCOVERY_INTERVAL", None)
            else:
                os.environ["TELEPORT_TUNNEL_DISCOVERY_INTERVAL"] = old


def proxies(c: Cluster) -> dict[str, dict[str, Any]]:
    """The proxies' heartbeats, by tunnel address (as auth holds them)."""
    from tests.integration.test_recording import admin_client

    async def go() -> list[dict[str, Any]]:
        async with admin_client(c) as client:
            return list(await client.list_proxies())

    return {p["spec"].get("tunnel_public_addr", ""): p for p in asyncio.run(go())}


def holds(c: Cluster, tunnel_addr: str, host_id: str) -> bool:
    p = proxies(c).get(tunnel_addr)
    return p is not None and host_id in (p["spec"].get("tunnels") or [])


def node_host_id(node: ProxyJoinedNode) -> str:
    with open(os.path.join(node.root, "data", "host_uuid")) as f:
        return f.read().strip()


def ssh_via(c: Cluster, ssh_port: int, *cmd: str) -> subprocess.CompletedProcess[str]:
    """OpenSSH to the node through the proxy listening on `ssh_port` (ProxyCommand)."""
    kh = os.path.join(c.root, "known_hosts_ca")
    if not os.path.exists(kh):
        with open(kh, "w") as f:
            f.write(c.tctl("auth", "export", "--type=host").stdout)
    k = os.path.join(c.home, "keys", "127.0.0.1", "vic")
    base = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", k,
            "-o", f"CertificateFile={k}-cert.pub", "-o", f"UserKnownHostsFile={kh}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"]
    pc = " ".join(["ssh", *base, "-p", str(ssh_port), "%r@127.0.0.1", "-s", "proxy:%h:%p"])
    return subprocess.run(["ssh", *base, "-o", f"ProxyCommand={pc}", f"{OS_USER}@{NODE}", *cmd],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_node_tunnels_to_every_proxy_and_each_routes_to_it(
        world: tuple[Cluster, ProxyProc, ProxyJoinedNode]) -> None:
    c, b, node = world
    hid = node_host_id(node)
    a_tunnel = f"127.0.0.1:{c.ports['tunnel']}"
    wait_for(lambda: holds(c, a_tunnel, hid) and holds(c, b.tunnel_addr, hid), 30,
             "both proxies never held the node's tunnel", c, node)
    for port in (c.ports["ssh"], b.ports["ssh"]):
        res = ssh_via(c, port, "echo", f"via-{port}")
        assert res.returncode == 0 and res.stdout.strip() == f"via-{port}", res.stderr + node.log()


def test_a_new_proxy_is_picked_up_and_a_stopped_one_dropped(
        world: tuple[Cluster, ProxyProc, ProxyJoinedNode]) -> None:
    c, b, node = world
    assert node.proc is not None
    pid = node.proc.pid
    hid = node_host_id(node)
    new = ProxyProc(c, "proxyc")
    try:
        new.start()
        wait_for(lambda: holds(c, new.tunnel_addr, hid), 30, "the new proxy never got the tunnel", c, node)
        res = ssh_via(c, new.ports["ssh"], "echo", "via-new")
        assert res.returncode == 0 and res.stdout.strip() == "via-new", res.stderr + node.log()
        b.stop()
        # B removed its heartbeat as it stopped: the agent closes its tunnel to B for good
        assert b.tunnel_addr not in proxies(c)

        def dropped() -> bool:
            with open(os.path.join(node.root, "teleport.log"), errors="replace") as f:
                return f"the proxy at {b.tunnel_addr} is no longer announced" in f.read()

        wait_for(dropped, 20, "the node never dropped the stopped proxy", c, node)
        # and still reachable through the others, without a restart
        res = ssh_via(c, c.ports["ssh"], "echo", "still")
        assert res.returncode == 0 and res.stdout.strip() == "still", res.stderr
        assert node.proc is not None and node.proc.pid == pid
    finally:
        new.destroy()
