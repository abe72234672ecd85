"""`tsh proxy ssh` and tsh scp's relay process when the proxy records sessions itself
(session_recording: proxy): OpenSSH through `tsh proxy ssh` gets its session recorded by the proxy
(tsh forwards an agent with the user's certificate on its own), and tsh scp, whose relay refuses
this mode, still copies through the in-process path."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.helpers import SRC, Cluster, cli, destroy, env_with, new_cluster, wait_port

LOGIN = "root"


@pytest.fixture(scope="module")
def pc() -> Iterator[Cluster]:
    c = new_cluster(roles="auth,proxy,node", auth_extra="  session_recording: proxy\n")
    try:
        c.start()
        wait_port(c.ports["node"], 20, c.proc)
        c.add_user("relayer", LOGIN)
        c.login("relayer")
        deadline = time.time() + 20
        while "testnode" not in c.tsh("ls").stdout:
            assert time.time() < deadline, "node never listed"
            time.sleep(0.3)
        yield c
    finally:
        destroy(c)


def test_openssh_through_tsh_proxy_ssh_in_proxy_mode(pc: Cluster, tmp_path: str) -> None:
    kh = os.path.join(str(tmp_path), "kh")
    with open(kh, "w") as f:
        f.write(pc.tctl("auth", "export", "--type=host").stdout)
    key = os.path.join(pc.home, "keys", "127.0.0.1", "relayer")
    relay = (f"env TELEPORT_HOME={pc.home} PYTHONPATH={SRC} SSH_AUTH_SOCK= "
             f"{sys.executable} -m teleport.cli.tsh proxy ssh %r@%h:%p")
    res = subprocess.run(
        ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", key,
         "-o", f"CertificateFile={key}-cert.pub", "-o", f"UserKnownHostsFile={kh}",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
         "-o", f"ProxyCommand={relay}", "-p", str(pc.ports["node"]), f"{LOGIN}@testnode",
         "echo proxy-mode-$((6*7))"],
        capture_output=True, text=True, timeout=90, env={**os.environ, "SSH_AUTH_SOCK": ""})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "proxy-mode-42"
    # the proxy, not the node, recorded it: its exec event names the command
    deadline = time.time() + 30
    while "proxy-mode-" not in pc.tctl("events", "ls", "--format=json").stdout:
        assert time.time() < deadline, "no audit event for the relayed session"
        time.sleep(0.5)


def test_tsh_scp_falls_back_from_the_relay_in_proxy_mode(pc: Cluster, tmp_path: str) -> None:
    src = os.path.join(str(tmp_path), "small.bin")
    data = os.urandom(100_000)
    with open(src, "wb") as f:
        f.write(data)
    env = env_with(TELEPORT_HOME=pc.home, TSH_SCP_RELAY="1")
    remote = f"{LOGIN}@testnode:{tmp_path}/up.bin"
    back = os.path.join(str(tmp_path), "back.bin")
    for args in ([src, remote], [remote, back]):
        res = subprocess.run([*cli("tsh"), "scp", "-q", "-P", str(pc.ports["node"]), *args],
                             env=env, capture_output=True, text=True, timeout=90)
        assert res.returncode == 0, res.stderr
    with open(back, "rb") as f:
        assert f.read() == data
