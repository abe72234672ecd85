"""CA rotation with real processes: `tctl auth rotate --manual` through every phase of the user and
host CAs while users log in and `tsh ssh` to the node, a rollback, and old certificates refused
by the proxy and by the node once a rotation completes."""

from __future__ import annotations

import asyncio
import glob
import json
import os
import shutil
import time
from collections.abc import Iterator

import asyncssh
import pytest

from tests.helpers import Cluster, destroy, new_cluster, os_account, wait_port

pytestmark = pytest.mark.integration

OS_USER = "tprotate"
USER = "rot"
POLL = 1.0  # TELEPORT_CA_POLL_INTERVAL of the cluster: nodes and proxies follow the CAs this fast


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    old = os.environ.get("TELEPORT_CA_POLL_INTERVAL")
    os.environ["TELEPORT_CA_POLL_INTERVAL"] = str(POLL)
    with os_account(OS_USER):
        c = new_cluster(roles="auth,proxy,node")
        try:
            c.start()
            wait_port(c.ports["node"], 20, c.proc)
            c.add_user(USER, OS_USER)
            c.login(USER)
            yield c
        finally:
            destroy(c)
            if old is None:
                os.environ.pop("TELEPORT_CA_POLL_INTERVAL", None)
            else:
                os.environ["TELEPORT_CA_POLL_INTERVAL"] = old


def rotate(c: Cluster, ca: str, phase: str) -> None:
    out = c.tctl("auth", "rotate", "--manual", f"--type={ca}", f"--phase={phase}").stdout
    assert f"{ca} CA: rotation phase is now {phase}" in out, out
    time.sleep(POLL * 3)  # nodes and proxies poll the CAs every POLL seconds


def save_home(c: Cluster, name: str) -> str:
    """A copy of tsh's home (profile, keys, known_hosts) as it is now."""
    dst = os.path.join(c.root, name)
    shutil.copytree(c.home, dst)
    return dst


def tsh_ssh(c: Cluster, home: str | None = None, check: bool = True) -> bool:
    from tests.helpers import env_with

    env = env_with(TELEPORT_HOME=home or c.home)
    res = c.tsh("ssh", f"{OS_USER}@testnode", "echo", "rotated-ok", check=check, env=env, timeout=60)
    return res.returncode == 0 and "rotated-ok" in res.stdout


def key_files(home: str) -> tuple[str, str]:
    cert = glob.glob(os.path.join(home, "**", f"{USER}-cert.pub"), recursive=True)[0]
    return cert[: -len("-cert.pub")], cert


def direct_node_login(c: Cluster, home: str) -> bool:
    """Log in to the node's own port (not through the proxy) with the user cert in `home`."""
    key_path, cert_path = key_files(home)

    async def go() -> bool:
        key = asyncssh.read_private_key(key_path)
        cert = asyncssh.read_certificate(cert_path)
        try:
            async with asyncssh.connect(
                "127.0.0.1", c.ports["node"], username=OS_USER, client_keys=[(key, cert)],
                known_hosts=None, agent_path=None, connect_timeout=15,
            ) as conn:
                res = await conn.run("echo direct-ok", check=False)
                return "direct-ok" in str(res.stdout)
        except asyncssh.PermissionDenied:
            return False

    return asyncio.run(go())


def signer(cert_line: str) -> bytes:
    return bytes(asyncssh.import_certificate(cert_line).signing_key.public_data)  # type: ignore[attr-defined]


def user_cert_signer(home: str) -> bytes:
    with open(key_files(home)[1]) as f:
        return signer(f.read().strip())


def node_host_cert(c: Cluster) -> str:
    with open(os.path.join(c.data_dir, "keys", "node.json")) as f:
        return str(json.load(f)["cert"])


def checking_keys(c: Cluster, ca: str) -> list[bytes]:
    lines = c.tctl("auth", "export", f"--type={ca}", "--format=openssh-ca").stdout.split("\n")
    return [bytes(asyncssh.import_public_key(ln).public_data) for ln in lines if ln.strip()]


def test_manual_user_ca_rotation_through_every_phase(cluster: Cluster) -> None:
    c = cluster
    assert tsh_ssh(c) and direct_node_login(c, c.home)
    old_home = save_home(c, "home-before-user-rotation")
    old_key = user_cert_signer(old_home)
    assert checking_keys(c, "user") == [old_key]

    rotate(c, "user", "init")  # new keys trusted, old still sign
    assert len(checking_keys(c, "user")) == 2
    c.login(USER)
    assert user_cert_signer(c.home) == old_key
    assert tsh_ssh(c)
    assert "phase: init" in c.tctl("status").stdout

    rotate(c, "user", "update_clients")  # new keys sign; the old certificate still works
    c.login(USER)
    new_key = user_cert_signer(c.home)
    assert new_key != old_key and checking_keys(c, "user") == [new_key, old_key]
    assert tsh_ssh(c) and direct_node_login(c, c.home)
    assert tsh_ssh(c, old_home) and direct_node_login(c, old_home)

    rotate(c, "user", "update_servers")
    c.login(USER)
    assert tsh_ssh(c) and tsh_ssh(c, old_home)

    rotate(c, "user", "standby")  # complete: only the new keys
    assert checking_keys(c, "user") == [new_key]
    assert tsh_ssh(c) and direct_node_login(c, c.home)
    # the certificate of the old CA: refused by the proxy and by the node itself
    assert not tsh_ssh(c, old_home, check=False)
    assert not direct_node_login(c, old_home)
    status = c.tctl("status").stdout
    assert "user CA: standby" in status and "never" not in status.split("user CA:")[1].split("\n")[0]


def test_manual_rotation_rolled_back_at_update_servers(cluster: Cluster) -> None:
    c = cluster
    before = save_home(c, "home-before-rollback")
    rotate(c, "user", "init")
    rotate(c, "user", "update_clients")
    c.login(USER)
    during = save_home(c, "home-during-rollback")
    assert user_cert_signer(during) != user_cert_signer(before)
    rotate(c, "user", "update_servers")
    assert tsh_ssh(c, during) and tsh_ssh(c, before)
    rotate(c, "user", "rollback")  # old keys sign again, both still trusted
    assert tsh_ssh(c, before) and tsh_ssh(c, during)
    rotate(c, "user", "standby")  # rollback complete: the new keys are gone
    assert checking_keys(c, "user") == [user_cert_signer(before)]
    assert tsh_ssh(c, before) and direct_node_login(c, before)
    assert not tsh_ssh(c, during, check=False) and not direct_node_login(c, during)
    c.login(USER)
    assert user_cert_signer(c.home) == user_cert_signer(before)


def test_manual_host_ca_rotation_nodes_reissue(cluster: Cluster) -> None:
    c = cluster
    c.login(USER)
    old_host = signer(node_host_cert(c))
    stale_home = save_home(c, "home-old-host-ca")  # knows only the old host CA
    rotate(c, "host", "init")
    c.login(USER)  # known_hosts now holds the old and the new host CA
    assert tsh_ssh(c)
    rotate(c, "host", "update_clients")
    assert signer(node_host_cert(c)) == old_host  # servers move only in update_servers
    assert tsh_ssh(c) and tsh_ssh(c, stale_home)
    rotate(c, "host", "update_servers")
    deadline = time.time() + 20
    while signer(node_host_cert(c)) == old_host and time.time() < deadline:
        time.sleep(0.5)
    new_host = signer(node_host_cert(c))
    assert new_host != old_host and checking_keys(c, "host")[0] == new_host
    assert tsh_ssh(c)  # node and proxy present certificates of the new host CA
    # a client that never learned the new host CA refuses the re-issued hosts
    assert not tsh_ssh(c, stale_home, check=False)
    rotate(c, "host", "standby")
    assert checking_keys(c, "host") == [new_host]
    c.login(USER)
    assert tsh_ssh(c) and direct_node_login(c, c.home)


def test_auto_rotation_of_all_cas_with_zero_failures(cluster: Cluster) -> None:
    """`tctl auth rotate` (auto, 30 s grace) of the user and host CAs while `tsh ssh` runs in a
    loop and the user logs in again once during update_clients: no operation fails."""
    c = cluster
    c.login(USER)
    before = save_home(c, "home-before-auto")
    out = c.tctl("auth", "rotate", "--type=all", "--grace-period=30s").stdout
    assert "user CA: rotation phase is now init" in out and "host CA: rotation phase is now init" in out
    failures: list[str] = []
    ok, relogged, done = 0, False, False
    deadline = time.time() + 90
    while time.time() < deadline and not done:
        status = c.tctl("status").stdout
        if not relogged and status.count("phase: update_clients") == 2:
            c.login(USER)  # picks up the new user certificate and the new host CA
            relogged = True
        if tsh_ssh(c, check=False):
            ok += 1
        else:
            failures.append(status)
        done = relogged and "phase:" not in status  # both back in standby
    assert done, "the automatic rotation did not complete in 90 s"
    assert not failures and ok >= 5, (ok, failures)
    assert "moves to" not in c.tctl("status").stdout
    assert not tsh_ssh(c, before, check=False) and not direct_node_login(c, before)
