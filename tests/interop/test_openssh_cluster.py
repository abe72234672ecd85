"""Debian's OpenSSH tools and Ansible against a real auth+proxy+node cluster, through the proxy.

Covers the interoperability list of the SSH-access issue: ssh via ProxyCommand and via the
`tsh config` block, scp (SFTP and -O) and sftp -b, every certificate read by ssh-keygen -L,
Ansible ad-hoc ping and copy, and refusals of foreign-CA, expired and wrong-login certificates
by both the proxy and the node.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from teleport.ca import keys, sshcert
from tests.helpers import (
    SRC,
    Cluster,
    cli,
    cluster_user_ca_key,
    destroy,
    env_with,
    new_cluster,
    os_account,
    wait_port,
)

pytestmark = pytest.mark.interop

OS_USER = "tpinterop"
TP_USER = "ops"


@pytest.fixture(scope="module")
def os_user() -> Iterator[str]:
    """A real OS account (removed at teardown) for sessions on the node."""
    with os_account(OS_USER) as name:
        yield name


@pytest.fixture(scope="module")
def cl(os_user: str) -> Iterator[Cluster]:
    c = new_cluster(roles="auth,proxy,node")
    try:
        c.start()
        wait_port(c.ports["node"], 20, c.proc)
        c.add_user(TP_USER, f"{os_user},root")
        c.login(TP_USER)
        deadline = time.time() + 20
        while "testnode" not in c.tsh("ls").stdout:
            assert time.time() < deadline, "node never listed"
            time.sleep(0.3)
        yield c
    finally:
        destroy(c)


@pytest.fixture(scope="module")
def kh(cl: Cluster) -> str:
    """known_hosts made only of `tctl auth export --type=host` (what the reference says to do)."""
    path = os.path.join(cl.root, "exported_known_hosts")
    with open(path, "w") as f:
        f.write(cl.tctl("auth", "export", "--type=host").stdout)
    return path


def key(cl: Cluster) -> str:
    return os.path.join(cl.home, "keys", "127.0.0.1", TP_USER)


def base_opts(kh: str, k: str, cert: str) -> list[str]:
    return ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", k,
            "-o", f"CertificateFile={cert}", "-o", f"UserKnownHostsFile={kh}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"]


def proxy_command(cl: Cluster, kh: str, k: str, cert: str) -> str:
    return " ".join(["ssh", *base_opts(kh, k, cert), "-p", str(cl.ports["ssh"]),
                     "%r@127.0.0.1", "-s", "proxy:%h:%p"])


def via_proxy(cl: Cluster, kh: str, k: str | None = None, cert: str | None = None) -> list[str]:
    k = k or key(cl)
    cert = cert or k + "-cert.pub"
    return [*base_opts(kh, k, cert), "-o", f"ProxyCommand={proxy_command(cl, kh, k, cert)}",
            "-o", f"Port={cl.ports['node']}"]


def run(*cmd: str, input: str = "", env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, input=input, env=env, timeout=timeout)


def test_ssh_through_proxycommand_with_exported_host_ca(cl: Cluster, kh: str, os_user: str) -> None:
    res = run("ssh", *via_proxy(cl, kh), f"{os_user}@testnode", "echo hello from $(whoami); exit 7")
    assert res.returncode == 7, res.stderr
    assert res.stdout.strip() == f"hello from {os_user}"


def test_ssh_with_tsh_config_block(cl: Cluster, os_user: str, tmp_path: str) -> None:
    cfg = os.path.join(str(tmp_path), "ssh_config")
    with open(cfg, "w") as f:
        f.write(cl.tsh("config").stdout)
    # the block matches the cluster's names (NODE.CLUSTER) only
    res = run("ssh", "-F", cfg, "-o", "BatchMode=yes", "-p", str(cl.ports["node"]),
              f"{os_user}@testnode.{cl.cluster_name}", "id -un")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == os_user


def test_scp_both_modes_and_sftp_batch(cl: Cluster, kh: str, os_user: str, tmp_path: str) -> None:
    d = str(tmp_path)
    src = os.path.join(d, "payload.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024 + 17))
    remote_dir = f"/home/{os_user}"
    opts = via_proxy(cl, kh)
    for mode, extra in (("sftp", []), ("legacy", ["-O"])):
        up = run("scp", *opts, *extra, src, f"{os_user}@testnode:{remote_dir}/up-{mode}.bin")
        assert up.returncode == 0, (mode, up.stderr)
        back = os.path.join(d, f"back-{mode}.bin")
        down = run("scp", *opts, *extra, f"{os_user}@testnode:{remote_dir}/up-{mode}.bin", back)
        assert down.returncode == 0, (mode, down.stderr)
        assert filecmp.cmp(src, back, shallow=False)
        owner = run("ssh", *opts, f"{os_user}@testnode", f"stat -c %U {remote_dir}/up-{mode}.bin")
        assert owner.stdout.strip() == os_user  # written as the login user, not the daemon

    batch = os.path.join(d, "batch")
    with open(batch, "w") as f:
        f.write(f"put {src} {remote_dir}/sftp.bin\nget {remote_dir}/sftp.bin {d}/sftp-back.bin\nls -l {remote_dir}\n")
    res = run("sftp", *opts, "-b", batch, f"{os_user}@testnode")
    assert res.returncode == 0, res.stderr
    assert filecmp.cmp(src, os.path.join(d, "sftp-back.bin"), shallow=False)


def test_every_certificate_reads_with_ssh_keygen(cl: Cluster, tmp_path: str) -> None:
    d = str(tmp_path)
    paths = [key(cl) + "-cert.pub"]
    for role in ("node", "proxy"):
        with open(os.path.join(cl.data_dir, "keys", f"{role}.json")) as f:
            ident = json.load(f)
        p = os.path.join(d, f"{role}-cert.pub")
        with open(p, "w") as f:
            f.write(ident["cert"] + "\n")
        paths.append(p)
    cl.tctl("auth", "sign", f"--user={TP_USER}", "-o", os.path.join(d, "bot"))
    cl.tctl("auth", "sign", "--host=legacy-host,10.1.2.3", "-o", os.path.join(d, "legacy"))
    paths += [os.path.join(d, "bot-cert.pub"), os.path.join(d, "legacy-cert.pub")]
    for p in paths:
        res = run("ssh-keygen", "-L", "-f", p)
        assert res.returncode == 0, (p, res.stderr)
        assert "Signing CA:" in res.stdout and "Key ID:" in res.stdout


def test_ansible_ping_and_copy(cl: Cluster, os_user: str, tmp_path: str) -> None:
    ansible = shutil.which("ansible")
    if ansible is None:
        pytest.fail("ansible not found: install Debian's ansible-core (apt-get install ansible-core)")
    d = str(tmp_path)
    cfg = os.path.join(d, "ssh_config")
    with open(cfg, "w") as f:
        f.write(cl.tsh("config").stdout)
    inv = os.path.join(d, "hosts")
    with open(inv, "w") as f:
        # the tsh config block matches NODE.CLUSTER names
        f.write(f"testnode.{cl.cluster_name} ansible_user={os_user} ansible_port={cl.ports['node']} "
                "ansible_python_interpreter=/usr/bin/python3\n")
    env = dict(os.environ, ANSIBLE_SSH_ARGS=f"-F {cfg}", ANSIBLE_HOME=os.path.join(d, "ansible"),
               ANSIBLE_LOCAL_TEMP=os.path.join(d, "tmp"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_SSH_TRANSFER_METHOD="scp")
    env.pop("SSH_AUTH_SOCK", None)
    ping = run(ansible, "-i", inv, "all", "-m", "ping", env=env, timeout=180)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert '"ping": "pong"' in ping.stdout
    src = os.path.join(d, "motd.txt")
    with open(src, "w") as f:
        f.write("deployed through the proxy\n")
    dest = f"/home/{os_user}/motd-copy.txt"
    copy = run(ansible, "-i", inv, "all", "-m", "copy", "-a", f"src={src} dest={dest}", env=env, timeout=180)
    assert copy.returncode == 0, copy.stdout + copy.stderr
    with open(dest) as f:
        assert f.read() == "deployed through the proxy\n"


@pytest.mark.parametrize("case", ["foreign-ca", "expired", "wrong-login"])
def test_refusals_at_proxy_and_node(cl: Cluster, kh: str, os_user: str, tmp_path: str, case: str) -> None:
    user_key = keys.generate_private_key()
    pub = keys.public_key_to_openssh(user_key)
    ca = keys.generate_private_key() if case == "foreign-ca" else cluster_user_ca_key(cl)
    principals = ["somebody-else"] if case == "wrong-login" else [os_user]
    now = time.time() - 3600 if case == "expired" else None
    cert = sshcert.sign_user_cert(ca, pub, username=TP_USER, principals=principals, ttl=600,
                                  roles=["access"], now=now)
    k = os.path.join(str(tmp_path), case)
    with open(k, "wb") as f:
        f.write(keys.private_key_to_openssh(user_key))
    os.chmod(k, 0o600)
    with open(k + "-cert.pub", "w") as f:
        f.write(cert + "\n")
    opts = base_opts(kh, k, k + "-cert.pub")
    # the proxy refuses the user before any routing
    at_proxy = run("ssh", *opts, "-p", str(cl.ports["ssh"]), f"{os_user}@127.0.0.1",
                   "-s", f"proxy:testnode:{cl.ports['node']}")
    assert at_proxy.returncode == 255 and "Permission denied" in at_proxy.stderr, at_proxy.stderr
    # and the node refuses it on its own when dialled directly
    at_node = run("ssh", *opts, "-p", str(cl.ports["node"]), f"{os_user}@localhost", "true")
    assert at_node.returncode == 255 and "Permission denied" in at_node.stderr, at_node.stderr


def _tsh_proxy_command(cl: Cluster) -> str:
    env = f"TELEPORT_HOME={cl.home} PYTHONPATH={SRC}"
    return f"env {env} {sys.executable} -m teleport.cli.tsh proxy ssh %r@%h:%p"


def test_ssh_through_tsh_proxy_ssh(cl: Cluster, kh: str, os_user: str) -> None:
    """`tsh proxy ssh` as OpenSSH's ProxyCommand, like `ssh -W` through a jump host."""
    k = key(cl)
    res = run("ssh", *base_opts(kh, k, k + "-cert.pub"), "-o",
              f"ProxyCommand={_tsh_proxy_command(cl)}", "-p", str(cl.ports["node"]),
              f"{os_user}@testnode", "echo relayed $(whoami); exit 5")
    assert res.returncode == 5, res.stderr
    assert res.stdout.strip() == f"relayed {os_user}"
    # an unknown node: the proxy's reason reaches the user, and ssh fails
    res = run("ssh", *base_opts(kh, k, k + "-cert.pub"), "-o",
              f"ProxyCommand={_tsh_proxy_command(cl)}", "-p", str(cl.ports["node"]),
              f"{os_user}@no-such-node", "true")
    assert res.returncode == 255 and "no-such-node" in res.stderr, res.stderr


def test_tsh_scp_through_a_relay_process_and_without(cl: Cluster, os_user: str, tmp_path: str) -> None:
    """tsh scp's relay process (outer layer in a second process) copies the same bytes as the
    in-process path, both ways."""
    src = os.path.join(str(tmp_path), "blob.bin")
    data = os.urandom(3 * 1024 * 1024 + 17)
    with open(src, "wb") as f:
        f.write(data)
    os.chmod(str(tmp_path), 0o755)
    os.chmod(src, 0o644)
    home = os.path.expanduser(f"~{os_user}")
    for relay in ("1", "0"):
        env = env_with(TELEPORT_HOME=cl.home, TSH_SCP_RELAY=relay)
        remote = f"{os_user}@testnode:{home}/relay-{relay}.bin"
        back = os.path.join(str(tmp_path), f"back-{relay}.bin")
        for args in (["-q", src, remote], ["-q", remote, back]):
            res = run(*cli("tsh"), "scp", "-P", str(cl.ports["node"]), *args, env=env)
            assert res.returncode == 0, (relay, args, res.stderr)
        with open(back, "rb") as f:
            assert f.read() == data
