"""What the proxy dials for `proxy:host:port`, attacked over the network (issue 7, item 3).

A real auth+proxy+node process; users drive the proxy's SSH port with asyncssh and their own
certificates, the way `ssh -s proxy:...` would. Decoy TCP listeners started here tell whether the
proxy dialled them at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import asyncssh
import pytest
import yaml
from cryptography.hazmat.primitives.serialization import ssh as cssh

from teleport.ca import keys
from tests.helpers import Cluster, cluster_user_ca_key, destroy, env_with, new_cluster, wait_port

pytestmark = pytest.mark.integration

PASSWORD = "secret-pass-1"
BANNER = b"SSH-2.0-decoy\r\n"


class Decoy:
    """A TCP listener on 127.0.0.1 that greets with an SSH banner and counts connections."""

    def __init__(self, port: int | None = None) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port or 0))
        self.sock.listen(16)
        self.port = int(self.sock.getsockname()[1])
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                conn.sendall(BANNER)
                time.sleep(0.2)
            finally:
                conn.close()

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def decoys() -> Iterator[tuple[Decoy, Decoy]]:
    allowed, other = Decoy(), Decoy()
    try:
        yield allowed, other
    finally:
        allowed.close()
        other.close()


@pytest.fixture(scope="module")
def cluster(decoys: tuple[Decoy, Decoy]) -> Iterator[Cluster]:
    allowed, _ = decoys
    c = new_cluster(roles="auth,proxy,node")
    # The allow list names the decoy, and also (to show they stay refused whatever the
    # configuration says) the auth port and the proxy's own web port.
    c.proxy_extra = (
        f'  ssh_allowed_hosts: ["127.0.0.1:{allowed.port}", "127.0.0.1:{c.ports["auth"]}", '
        f'"localhost:{c.ports["web"]}", "::1"]\n'
    )
    try:
        c.start()
        wait_port(c.ports["node"], 20, c.proc)
        deadline = time.time() + 20
        while "testnode" not in c.tctl("nodes", "ls").stdout:
            assert time.time() < deadline, "the node never registered\n" + c.log()
            time.sleep(0.3)
        _role(c, "no-nodes", {"allow": {"logins": ["nobody"], "node_labels": {"env": "nowhere"}}})
        _user(c, "nina", "nobody", "no-nodes")
        _user(c, "pete", "root")
        yield c
    finally:
        destroy(c)


def _role(c: Cluster, name: str, spec: dict[str, Any]) -> None:
    path = os.path.join(c.root, f"role-{name}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump({"kind": "role", "version": "v3", "metadata": {"name": name}, "spec": spec}, f)
    c.tctl("create", "-f", path)


def _home(c: Cluster, user: str) -> str:
    path = os.path.join(c.root, f"home-{user}")
    os.makedirs(path, exist_ok=True)
    return path


def _user(c: Cluster, name: str, logins: str, roles: str | None = None) -> None:
    c.add_user(name, logins)
    if roles:
        c.tctl("users", "update", name, f"--set-roles={roles}")
    code = c.otp.code(name, c.secrets[name])
    c.tsh("--insecure", f"--proxy={c.web_addr}", f"--user={name}", "login",
          input=f"{PASSWORD}\n{code}\n", env=env_with(TELEPORT_HOME=_home(c, name)))


def _key_path(c: Cluster, user: str) -> str:
    return os.path.join(_home(c, user), "keys", "127.0.0.1", user)


async def _open(c: Cluster, key: asyncssh.SSHKey, cert: asyncssh.SSHCertificate, login: str,
                subsystem: str) -> tuple[bytes, str, int | None]:
    """Open `subsystem` on the proxy; (first stdout bytes, stderr, exit status or None)."""
    async with asyncssh.connect(
        "127.0.0.1", c.ports["ssh"], username=login, client_keys=[(key, cert)], known_hosts=None,
        agent_path=None, config=None, preferred_auth="publickey", connect_timeout=15,
    ) as conn:
        proc = await conn.create_process(subsystem=subsystem, encoding=None)
        try:
            out = await asyncio.wait_for(proc.stdout.read(len(BANNER)), 5)
        except TimeoutError:
            out = b""  # a relay to something that waits for the client (the old code's auth dial)
        if out:
            proc.close()
            return out, "", None
        try:
            await asyncio.wait_for(proc.wait_closed(), 5)
        except TimeoutError:
            proc.close()
        err = await asyncio.wait_for(proc.stderr.read(), 5)
        return out, err.decode(errors="replace") if isinstance(err, bytes) else str(err), proc.exit_status


def subsystem(c: Cluster, user: str, name: str) -> tuple[bytes, str, int | None]:
    base = _key_path(c, user)
    key = asyncssh.read_private_key(base)
    cert = asyncssh.read_certificate(base + "-cert.pub")
    login = str(cert.principals[0])
    return asyncio.run(_open(c, key, cert, login, name))


def node_uuid(c: Cluster) -> str:
    nodes = json.loads(c.tctl("get", "nodes", "--format=json").stdout)
    return str(nodes[0]["metadata"]["name"])


# --- refused -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost", "127.1", "0.0.0.0"])
def test_auth_port_refused_even_when_allow_listed(cluster: Cluster, spelling: str) -> None:
    out, err, status = subsystem(cluster, "nina", f"proxy:{spelling}:{cluster.ports['auth']}")
    assert out == b"" and status == 1, (out, err, status)
    assert "the cluster's auth server" in err and "never dials" in err, err


@pytest.mark.parametrize("which", ["ssh", "web", "tunnel"])
def test_proxy_own_ports_refused(cluster: Cluster, which: str) -> None:
    for host in ("127.0.0.1", "localhost"):
        out, err, status = subsystem(cluster, "pete", f"proxy:{host}:{cluster.ports[which]}")
        assert out == b"" and status == 1, (host, out, err, status)
        assert "access denied" in err and "proxy" in err, err


def test_unlisted_local_listener_refused_and_never_dialled(cluster: Cluster, decoys: tuple[Decoy, Decoy]) -> None:
    _, other = decoys
    before = other.accepted
    for user in ("nina", "pete"):
        out, err, status = subsystem(cluster, user, f"proxy:127.0.0.1:{other.port}")
        assert out == b"" and status == 1, (out, err, status)
        assert "is not a registered node you may reach" in err, err
        assert "proxy_service.ssh_allowed_hosts" in err, err
    assert other.accepted == before  # the proxy never opened a connection to it


@pytest.mark.parametrize("spelling", ["127.0.0.1", "[::ffff:127.0.0.1]", "testnode", "TESTNODE.", "uuid"])
def test_node_refused_for_user_without_access_in_every_spelling(cluster: Cluster, spelling: str) -> None:
    host = node_uuid(cluster) if spelling == "uuid" else spelling
    out, err, status = subsystem(cluster, "nina", f"proxy:{host}:{cluster.ports['node']}")
    assert out == b"" and status == 1, (out, err, status)
    assert "may not connect to node 'testnode'" in err, err


@pytest.mark.parametrize("name", ["proxy:bad\x00name:22", "proxy:" + "a" * 64 + ".example.com:22"])
def test_malformed_names_are_bad_input(cluster: Cluster, name: str) -> None:
    out, err, status = subsystem(cluster, "pete", name)
    assert status == 1 and "bad proxy subsystem" in err and "internal" not in err, err


# --- allowed -----------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["127.0.0.1", "[::ffff:127.0.0.1]", "testnode", "testnode.test-cluster", "uuid"])
def test_permitted_user_reaches_the_node(cluster: Cluster, spelling: str) -> None:
    host = node_uuid(cluster) if spelling == "uuid" else spelling
    out, err, _ = subsystem(cluster, "pete", f"proxy:{host}:{cluster.ports['node']}")
    assert out.startswith(b"SSH-2.0-"), (out, err)


def test_permitted_user_runs_a_command_on_the_node(cluster: Cluster) -> None:
    res = cluster.tsh("ssh", "root@testnode", "echo", "node-$((6*7))",
                      env=env_with(TELEPORT_HOME=_home(cluster, "pete")))
    assert res.stdout == "node-42\n"


def test_allow_listed_host_reachable(cluster: Cluster, decoys: tuple[Decoy, Decoy]) -> None:
    allowed, _ = decoys
    for spelling in ("127.0.0.1", "[::ffff:127.0.0.1]"):
        out, err, _ = subsystem(cluster, "nina", f"proxy:{spelling}:{allowed.port}")
        assert out == BANNER, (spelling, out, err)


def test_auth_gateway_still_serves_the_user(cluster: Cluster) -> None:
    """`proxy:@cluster` stays the one way to the auth API: tsh speaks mutual TLS over it."""
    res = cluster.tsh("recordings", "ls", env=env_with(TELEPORT_HOME=_home(cluster, "pete")), check=False)
    assert res.returncode == 0, res.stderr


# --- item: certificates without principals -------------------------------------------------------


def test_cert_without_principals_refused_by_proxy(cluster: Cluster) -> None:
    """asyncssh reads an empty principal list as "any login"; the proxy must not."""
    ca = cluster_user_ca_key(cluster)
    user_key = keys.generate_private_key()
    now = int(time.time())
    builder = (
        cssh.SSHCertificateBuilder()
        .public_key(cssh.load_ssh_public_key(keys.public_key_to_openssh(user_key).encode()))
        .serial(4242)
        .type(cssh.SSHCertificateType.USER)
        .key_id(b"pete")
        .valid_for_all_principals()
        .valid_after(now - 60)
        .valid_before(now + 600)
        .add_extension(b"permit-pty", b"")
    )
    line = builder.sign(ca).public_bytes()
    key = asyncssh.import_private_key(keys.private_key_to_openssh(user_key))
    cert = asyncssh.import_certificate(line)
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(_open(cluster, key, cert, "root", f"proxy:testnode:{cluster.ports['node']}"))
    # the same user's real certificate still works (the refusal is about the principals)
    out, err, _ = subsystem(cluster, "pete", f"proxy:testnode:{cluster.ports['node']}")
    assert out.startswith(b"SSH-2.0-"), err


# --- bounded: a user cannot spend the proxy's connections to auth (second review) ---------------


def _connect_as(c: Cluster, user: str) -> Any:
    base = _key_path(c, user)
    key = asyncssh.read_private_key(base)
    cert = asyncssh.read_certificate(base + "-cert.pub")
    return asyncssh.connect(
        "127.0.0.1", c.ports["ssh"], username=str(cert.principals[0]), client_keys=[(key, cert)],
        known_hosts=None, agent_path=None, config=None, preferred_auth="publickey",
        connect_timeout=15,
    )


def test_auth_streams_per_user_are_bounded(cluster: Cluster) -> None:
    from teleport import defaults

    async def flood() -> str:
        gateway = f"proxy:@{cluster.cluster_name}"
        async with _connect_as(cluster, "nina") as one, _connect_as(cluster, "nina") as two:
            held = [await (one if i % 2 else two).create_process(subsystem=gateway, encoding=None)
                    for i in range(defaults.PROXY_MAX_AUTH_GATEWAYS_PER_USER)]
            await asyncio.sleep(0.5)
            extra = await two.create_process(subsystem=gateway, encoding=None)
            err = (await asyncio.wait_for(extra.stderr.read(), 10)).decode()
            for p in held:
                p.close()
            return err

    err = asyncio.run(flood())
    assert "too many streams to the auth service for user 'nina'" in err, err
    # the proxy still reaches auth for everyone else
    assert cluster.tsh("ls", env=env_with(TELEPORT_HOME=_home(cluster, "pete"))).returncode == 0


def test_sessions_per_connection_are_bounded(cluster: Cluster) -> None:
    from teleport import defaults

    async def flood() -> tuple[int, str]:
        async with _connect_as(cluster, "pete") as conn:
            held, refused = [], ""
            try:
                # relays to the node stay open while the node waits for our SSH login
                while len(held) <= defaults.PROXY_MAX_SESSIONS_PER_CONNECTION:
                    held.append(await conn.create_process(
                        subsystem=f"proxy:testnode:{cluster.ports['node']}", encoding=None))
            except asyncssh.ChannelOpenError as exc:
                refused = exc.reason
            for p in held:
                p.close()
            return len(held), refused

    opened, refused = asyncio.run(flood())
    assert opened == defaults.PROXY_MAX_SESSIONS_PER_CONNECTION
    assert "too many sessions on one connection" in refused, refused
