"""What a tunnel agent trusts and presents: it tunnels only to a server holding a *proxy* host
certificate of its cluster (a server with a node's host certificate of the same CA is refused
before the agent authenticates), and after a host CA rotation the running agent presents its
re-issued certificate to a restarted proxy that no longer trusts the old CA, without a restart
of the node."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import asyncssh
import pytest

from tests.helpers import Cluster, destroy, new_cluster, os_account
from tests.integration.test_tunnel_via_proxy import NODE, OS_USER, ProxyJoinedNode, wait_for

pytestmark = pytest.mark.integration

POLL = 1.0  # TELEPORT_CA_POLL_INTERVAL for the cluster and the node: they follow the CAs this fast


@pytest.fixture(scope="module")
def tc() -> Iterator[tuple[Cluster, ProxyJoinedNode]]:
    old = os.environ.get("TELEPORT_CA_POLL_INTERVAL")
    os.environ["TELEPORT_CA_POLL_INTERVAL"] = str(POLL)
    with os_account(OS_USER):
        c = new_cluster()
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
            if old is None:
                os.environ.pop("TELEPORT_CA_POLL_INTERVAL", None)
            else:
                os.environ["TELEPORT_CA_POLL_INTERVAL"] = old


def host_ca_key(c: Cluster) -> Any:
    """The cluster's host CA private key, read from the auth server's storage (to forge a
    certificate of the real CA for a server that is not a proxy)."""
    from teleport.auth.store import ClusterStore
    from teleport.backend import open_backend
    from teleport.ca import keys
    from teleport.config.fileconf import load_config_file

    async def read() -> Any:
        cfg = load_config_file(c.config_path)
        backend = await open_backend(cfg.teleport.storage, c.data_dir)
        try:
            ca = await ClusterStore(backend).get_ca("host")
        finally:
            await backend.close()
        return keys.load_private_key(ca.spec["signing_keys"][0])

    return asyncio.run(read())


def node_identity(node: ProxyJoinedNode) -> Any:
    from teleport.service import identity as idstore

    ident = idstore.load_identity(os.path.join(node.root, "data"), "node")
    assert ident is not None
    return ident


async def _agent_against(role: str, ca: Any, ident: Any) -> str:
    """Run one agent connection against a server holding a host certificate of the cluster's
    host CA with `role`; how it ended."""
    from teleport.ca import keys, sshcert
    from teleport.config.addr import HostPort
    from teleport.reversetunnel.agent import TunnelAgent

    k = keys.generate_private_key()
    line = sshcert.sign_host_cert(ca, keys.public_key_to_openssh(k), host_id="impostor",
                                  nodename="impostor", cluster_name=ident.cluster_name, role=role,
                                  addresses=["127.0.0.1"])
    authed: list[str] = []

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            authed.append(username)  # the agent got as far as offering its identity
            return True

    server = await asyncssh.create_server(
        Server, "127.0.0.1", 0,
        server_host_keys=[(asyncssh.import_private_key(keys.private_key_to_openssh(k)),
                           asyncssh.import_certificate(line))],
    )
    try:
        agent = TunnelAgent(HostPort("127.0.0.1", int(server.get_port())), lambda: ident,
                            lambda: list(ident.host_ca_keys), lambda sock, addr: asyncio.sleep(0))
        try:
            await agent._serve_once()
        except asyncssh.HostKeyNotVerifiable as exc:
            assert not authed, "the agent authenticated before checking the server"
            return f"refused: {exc}"
        except asyncssh.PermissionDenied:
            return "authenticated"
        return "connected"
    finally:
        server.close()
        await server.wait_closed()


def test_agent_refuses_a_server_with_a_non_proxy_certificate(tc: tuple[Cluster, ProxyJoinedNode]) -> None:
    c, node = tc
    ca, ident = host_ca_key(c), node_identity(node)
    out = asyncio.run(_agent_against("Node", ca, ident))
    assert out.startswith("refused") and "not of a proxy" in out, out
    out = asyncio.run(_agent_against("Auth", ca, ident))
    assert out.startswith("refused") and "not of a proxy" in out, out
    # the control: the same server with a proxy's certificate passes the check (and then
    # refuses the agent's login, as this fake server accepts nobody)
    assert asyncio.run(_agent_against("Proxy", ca, ident)) == "authenticated"


def _rotate(c: Cluster, phase: str) -> None:
    out = c.tctl("auth", "rotate", "--manual", "--type=host", f"--phase={phase}").stdout
    assert f"host CA: rotation phase is now {phase}" in out, out
    time.sleep(POLL * 3)


def _signer(cert_line: str) -> bytes:
    return bytes(asyncssh.import_certificate(cert_line).signing_key.public_data)  # type: ignore[attr-defined]


def test_running_agent_presents_its_reissued_certificate(tc: tuple[Cluster, ProxyJoinedNode]) -> None:
    c, node = tc
    assert node.proc is not None
    pid = node.proc.pid
    old = _signer(node_identity(node).cert)
    for phase in ("init", "update_clients", "update_servers"):
        _rotate(c, phase)
    wait_for(lambda: _signer(node_identity(node).cert) != old, 30,
             "the node's host certificate was never re-issued", c, node)
    _rotate(c, "standby")  # the old host CA is gone: only re-issued certificates open tunnels
    with open(os.path.join(node.root, "data", "keys", "node.json")) as f:
        assert _signer(json.load(f)["cert"]) != old
    c.stop()  # the tunnel drops; the agent must come back with the new certificate
    c.start()
    c.login("vic")  # known_hosts with the new host CA
    wait_for(lambda: c.tsh("ssh", f"{OS_USER}@{NODE}", "echo", "re-$((1+1))", check=False).stdout.strip() == "re-2",
             60, "the node never came back with its re-issued certificate", c, node)
    assert node.proc is not None and node.proc.pid == pid and node.proc.poll() is None  # never restarted
