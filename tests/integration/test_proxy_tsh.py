"""The proxy's SSH subsystem and tsh ssh/scp/ls/config against a real OpenSSH sshd (real processes)."""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from tests.helpers import Cluster, destroy, env_with, free_port, kill_proc, new_cluster, wait_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
pytestmark = pytest.mark.skipif(
    not (os.path.exists(SSHD) and shutil.which("ssh") and os.geteuid() == 0),
    reason="needs OpenSSH sshd/ssh and root (sshd runs as root with UsePAM)",
)
LOGIN = "root"


class Sshd:
    """An OpenSSH sshd trusting the cluster's user CA, with a host certificate from its host CA."""

    def __init__(self, cluster: Cluster, name: str = "sshnode") -> None:
        self.dir = tempfile.mkdtemp(prefix="tp-sshd-")
        self.port = free_port()
        self.name = name
        key = os.path.join(self.dir, "host")
        cluster.tctl("auth", "sign", f"--host={name},127.0.0.1", "-o", key)
        users_ca = cluster.tctl("auth", "export", "--type=user").stdout
        ca_lines = [ln.split(None, 1)[1] for ln in users_ca.splitlines() if ln.startswith("cert-authority ")]
        with open(os.path.join(self.dir, "user_ca"), "w") as f:
            f.write("\n".join(ca_lines) + "\n")
        conf = os.path.join(self.dir, "sshd_config")
        with open(conf, "w") as f:
            f.write(
                f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {key}\n"
                f"HostCertificate {key}-cert.pub\nTrustedUserCAKeys {self.dir}/user_ca\n"
                "UsePAM yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                "AuthorizedKeysFile none\nPermitRootLogin yes\nStrictModes no\n"
                f"PidFile {self.dir}/sshd.pid\nSubsystem sftp internal-sftp\n"
            )
        os.makedirs("/run/sshd", exist_ok=True)
        self.log = open(os.path.join(self.dir, "sshd.log"), "wb")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", conf], stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port, 10, self.proc)

    def stop(self) -> None:
        kill_proc(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# The OpenSSH servers these tests start are not registered nodes: the proxy dials them only
# because this allow list names their address.
ALLOW_LOOPBACK = "  ssh_allowed_hosts: [127.0.0.1]\n"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = new_cluster(proxy_extra=ALLOW_LOOPBACK)
    try:
        c.start()
        c.add_user("joe", LOGIN)
        c.login("joe")
        yield c
    finally:
        destroy(c)


@pytest.fixture(scope="module")
def sshd(cluster: Cluster) -> Iterator[Sshd]:
    s = Sshd(cluster)
    try:
        yield s
    finally:
        s.stop()


def tsh(cluster: Cluster, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run tsh as the logged-in user, stdin closed; with check, assert it succeeded."""
    res = subprocess.run(
        [sys.executable, "-m", "teleport.cli.tsh", *args],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        env=env_with(TELEPORT_HOME=cluster.home), check=False,
    )
    if check:
        assert res.returncode == 0, f"tsh {args} -> {res.returncode}\n{res.stdout}\n{res.stderr}\n{cluster.log()}"
    return res


def test_tsh_ssh_exec_and_exit_status(cluster: Cluster, sshd: Sshd) -> None:
    res = tsh(cluster, "ssh", "-p", str(sshd.port), f"{LOGIN}@127.0.0.1", "echo", "hello-$((6*7))")
    assert res.stdout == "hello-42\n"
    res = tsh(cluster, "ssh", "-p", str(sshd.port), f"{LOGIN}@127.0.0.1", "exit 7", check=False)
    assert res.returncode == 7, res.stderr


def test_reference_form_with_proxy_flag(cluster: Cluster, sshd: Sshd) -> None:
    res = tsh(cluster, f"--proxy={cluster.web_addr}", "ssh", "-p", str(sshd.port), f"{LOGIN}@127.0.0.1", "id -un")
    assert res.stdout.strip() == LOGIN


def test_login_not_in_cert_refused(cluster: Cluster, sshd: Sshd) -> None:
    res = tsh(cluster, "ssh", "-p", str(sshd.port), "nobody@127.0.0.1", "true", check=False)
    assert res.returncode != 0
    assert "not in your certificate" in res.stderr


def test_unknown_cluster_and_unreachable_host(cluster: Cluster, sshd: Sshd) -> None:
    res = tsh(cluster, "ssh", "--cluster=other", "-p", str(sshd.port), f"{LOGIN}@127.0.0.1", "true", check=False)
    assert res.returncode != 0 and "cluster 'other' is not known" in res.stderr, res.stderr
    res = tsh(cluster, "ssh", "-p", str(free_port()), f"{LOGIN}@127.0.0.1", "true", check=False)
    assert res.returncode != 0 and "cannot connect to 127.0.0.1" in res.stderr, res.stderr


def test_tsh_scp_both_ways(cluster: Cluster, sshd: Sshd, tmp_path: object) -> None:
    base = str(tmp_path)
    src = os.path.join(base, "up.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024 + 17))
    remote_dir = tempfile.mkdtemp(prefix="tp-scp-")
    try:
        tsh(cluster, "scp", "-P", str(sshd.port), src, f"{LOGIN}@127.0.0.1:{remote_dir}/r.bin")
        assert filecmp.cmp(src, os.path.join(remote_dir, "r.bin"), shallow=False)
        back = os.path.join(base, "down.bin")
        tsh(cluster, "scp", "-P", str(sshd.port), f"{LOGIN}@127.0.0.1:{remote_dir}/r.bin", back)
        assert filecmp.cmp(src, back, shallow=False)
        # -r: a directory tree
        tree = os.path.join(base, "tree")
        os.makedirs(os.path.join(tree, "sub"))
        with open(os.path.join(tree, "sub", "x.txt"), "w") as f:
            f.write("x")
        tsh(cluster, "scp", "-r", "-P", str(sshd.port), tree, f"{LOGIN}@127.0.0.1:{remote_dir}/")
        with open(os.path.join(remote_dir, "tree", "sub", "x.txt")) as f:
            assert f.read() == "x"
        res = tsh(cluster, "scp", "-P", str(sshd.port), f"{LOGIN}@127.0.0.1:{remote_dir}/missing", back, check=False)
        assert res.returncode != 0 and "scp:" in res.stderr
    finally:
        shutil.rmtree(remote_dir, ignore_errors=True)


def test_tsh_ls(cluster: Cluster) -> None:
    res = tsh(cluster, "ls")
    assert res.stdout.splitlines()[0].split() == ["Node", "Name", "Node", "ID", "Address", "Labels"]
    data = json.loads(tsh(cluster, "ls", "--format=json").stdout)
    assert isinstance(data, list)
    # whatever is registered, every listed node has the resource shape
    for node in data:
        assert node["metadata"]["name"] and "addr" in node["spec"]


def test_foreign_host_ca_refused(cluster: Cluster, sshd: Sshd) -> None:
    """An sshd whose host cert comes from another cluster's CA is refused, never trusted on first use."""
    other = new_cluster(cluster_name="other-cluster")
    foreign: Sshd | None = None
    try:
        other.start()
        foreign = Sshd(other, name="foreign")
        # it trusts our user CA so that only host verification can fail
        shutil.copy(os.path.join(sshd.dir, "user_ca"), os.path.join(foreign.dir, "user_ca"))
        res = tsh(cluster, "ssh", "-p", str(foreign.port), f"{LOGIN}@127.0.0.1", "true", check=False)
        assert res.returncode != 0
        assert "not trusted" in res.stderr and "host CA of cluster 'test-cluster'" in res.stderr, res.stderr
    finally:
        if foreign is not None:
            foreign.stop()
        destroy(other)


def _key_files(cluster: Cluster, user: str = "joe") -> tuple[str, str, str]:
    base = os.path.join(cluster.home, "keys", "127.0.0.1", user)
    return base, base + "-cert.pub", os.path.join(cluster.home, "known_hosts")


def test_openssh_proxycommand(cluster: Cluster, sshd: Sshd) -> None:
    key, cert, kh = _key_files(cluster)
    common = ["-F", "none", "-i", key, "-o", f"CertificateFile={cert}", "-o", f"UserKnownHostsFile={kh}",
              "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    pc = " ".join(["ssh", *common, "-p", str(cluster.ports["ssh"]), "%r@127.0.0.1", "-s", "proxy:%h:%p"])
    res = subprocess.run(
        ["ssh", *common, "-o", f"ProxyCommand={pc}", "-p", str(sshd.port), f"{LOGIN}@127.0.0.1", "echo via-openssh"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env_with(),
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == "via-openssh\n"
    # the proxy refuses a login that is not in the certificate
    res = subprocess.run(
        ["ssh", *common, "-p", str(cluster.ports["ssh"]), "nobody@127.0.0.1", "-s", f"proxy:127.0.0.1:{sshd.port}"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env_with(),
    )
    assert res.returncode == 255 and "Permission denied" in res.stderr


def test_openssh_with_tsh_config(cluster: Cluster, sshd: Sshd, tmp_path: object) -> None:
    conf = os.path.join(str(tmp_path), "ssh_config")
    with open(conf, "w") as f:
        f.write(tsh(cluster, "config").stdout)
    env = env_with()
    res = subprocess.run(
        ["ssh", "-F", conf, "-p", str(sshd.port), f"{LOGIN}@127.0.0.1", "echo config-ok"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == "config-ok\n"
    src = os.path.join(str(tmp_path), "f.txt")
    with open(src, "w") as f:
        f.write("scp-through-proxy\n")
    remote_dir = tempfile.mkdtemp(prefix="tp-scp-")
    try:
        for extra in ([], ["-O"]):
            res = subprocess.run(
                ["scp", "-F", conf, *extra, "-P", str(sshd.port), src, f"{LOGIN}@127.0.0.1:{remote_dir}/g.txt"],
                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env,
            )
            assert res.returncode == 0, res.stderr
            assert filecmp.cmp(src, os.path.join(remote_dir, "g.txt"), shallow=False)
            os.remove(os.path.join(remote_dir, "g.txt"))
    finally:
        shutil.rmtree(remote_dir, ignore_errors=True)


def test_tsh_agent_serves_cert(cluster: Cluster) -> None:
    res = tsh(cluster, "agent")
    values = dict(re.findall(r"(SSH_AUTH_SOCK|SSH_AGENT_PID)=([^;]+);", res.stdout))
    sock, pid = values["SSH_AUTH_SOCK"], int(values["SSH_AGENT_PID"])
    try:
        out = subprocess.run(["ssh-add", "-L"], capture_output=True, text=True, env={**os.environ, "SSH_AUTH_SOCK": sock})
        assert "-cert-v01@openssh.com" in out.stdout, out
    finally:
        os.kill(pid, 15)


@pytest.fixture(scope="module")
def full_cluster() -> Iterator[Cluster]:
    c = new_cluster(roles="auth,proxy,node")
    try:
        c.start()
        c.add_user("joe", LOGIN)
        c.login("joe")
        yield c
    finally:
        destroy(c)


def _wait_node_listed(c: Cluster) -> list[dict[str, object]]:
    import time

    deadline = time.time() + 20
    while time.time() < deadline:
        nodes = json.loads(tsh(c, "ls", "--format=json").stdout)
        if nodes:
            return nodes
        time.sleep(0.3)
    raise AssertionError("the node never appeared in tsh ls\n" + c.log())


def test_teleport_node_through_proxy(full_cluster: Cluster) -> None:
    c = full_cluster
    nodes = _wait_node_listed(c)
    assert [n["spec"]["hostname"] for n in nodes] == ["testnode"]  # type: ignore[index]
    assert "testnode" in tsh(c, "ls").stdout
    res = tsh(c, "ssh", f"{LOGIN}@testnode", "echo", "on-node")
    assert res.stdout == "on-node\n"
    res = tsh(c, "ssh", f"{LOGIN}@testnode", "exit 3", check=False)
    assert res.returncode == 3, res.stderr
    # by node ID too
    uuid = str(nodes[0]["metadata"]["name"])  # type: ignore[index]
    assert tsh(c, "ssh", f"{LOGIN}@{uuid}", "echo", "by-id").stdout == "by-id\n"


def test_teleport_node_openssh_config_and_tsh_scp(full_cluster: Cluster, tmp_path: object) -> None:
    c = full_cluster
    _wait_node_listed(c)
    conf = os.path.join(str(tmp_path), "ssh_config")
    with open(conf, "w") as f:
        f.write(tsh(c, "config").stdout)
    # the block matches cluster-qualified names and the proxy host only; others stay direct
    other = subprocess.run(["ssh", "-G", "-F", conf, "example.org"], capture_output=True, text=True,
                           check=True).stdout
    assert "proxycommand" not in other
    for name in (f"testnode.{c.cluster_name}", "127.0.0.1"):
        res = subprocess.run(
            ["ssh", "-F", conf, "-p", str(c.ports["node"]), f"{LOGIN}@{name}", "echo ok"],
            capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, env=env_with(),
        )
        assert (res.returncode, res.stdout) == (0, "ok\n"), res.stderr
    src = os.path.join(str(tmp_path), "a.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(1024 * 1024 + 3))
    remote_dir = tempfile.mkdtemp(prefix="tp-scp-")
    try:
        tsh(c, "scp", src, f"{LOGIN}@testnode:{remote_dir}/a.bin")
        assert filecmp.cmp(src, os.path.join(remote_dir, "a.bin"), shallow=False)
    finally:
        shutil.rmtree(remote_dir, ignore_errors=True)
