"""The node SSH service (3022) against Debian's OpenSSH client, in a real auth+proxy+node process."""

from __future__ import annotations

import filecmp
import os
import pwd
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from teleport.ca import keys, sshcert
from teleport.node.proxyheader import make_proxy_header
from tests.helpers import (
    NODE_LABELS,
    Cluster,
    cluster_user_ca_key,
    destroy,
    free_port,
    kill_proc,
    new_cluster,
    os_account,
    wait_port,
)

pytestmark = pytest.mark.integration

OS_USER = "tpnodetest"
TP_USER = "alice"


@pytest.fixture(scope="module")
def os_user() -> Iterator[str]:
    """A real OS account (removed at teardown) for sessions on the node."""
    with os_account(OS_USER) as name:
        yield name


@pytest.fixture(scope="module")
def node_cluster(os_user: str) -> Iterator[Cluster]:
    c = new_cluster(roles="auth,proxy,node", ssh_extra=NODE_LABELS)
    try:
        c.start()
        wait_port(c.ports["node"], 20, c.proc)
        c.add_user(TP_USER, f"{os_user},root")
        c.login(TP_USER)
        yield c
    finally:
        destroy(c)


@pytest.fixture(scope="module")
def known_hosts(node_cluster: Cluster) -> str:
    line = node_cluster.tctl("auth", "export", "--type=host").stdout.strip()
    path = os.path.join(node_cluster.root, "node_known_hosts")
    with open(path, "w") as f:
        f.write(line + "\n")
    return path


def key_path(c: Cluster, user: str = TP_USER) -> str:
    return os.path.join(c.home, "keys", "127.0.0.1", user)


def ssh_args(c: Cluster, kh: str, key: str, cert: str | None) -> list[str]:
    args = [
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={kh}",
        "-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "ConnectTimeout=10", "-F", "/dev/null", "-i", key,
    ]
    if cert is not None:
        args += ["-o", f"CertificateFile={cert}"]
    return args


def ssh(c: Cluster, kh: str, login: str, *cmd: str, key: str | None = None, cert: str | None = "default",
        extra: tuple[str, ...] = (), stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    key = key or key_path(c)
    if cert == "default":
        cert = key + "-cert.pub"
    return subprocess.run(
        ["ssh", *ssh_args(c, kh, key, cert), *extra, "-p", str(c.ports["node"]), f"{login}@localhost", *cmd],
        capture_output=True, text=True, timeout=60, input=stdin if stdin is not None else "",
    )


def test_exec_output_and_exit_status(node_cluster: Cluster, known_hosts: str, os_user: str) -> None:
    res = ssh(node_cluster, known_hosts, os_user, "id -un; echo $HOME; echo err >&2; exit 3")
    assert res.returncode == 3, res.stderr
    assert res.stdout.split() == [os_user, pwd.getpwnam(os_user).pw_dir]
    assert res.stderr.strip().endswith("err")
    res = ssh(node_cluster, known_hosts, os_user, "cat | wc -c", stdin="hello world\n")
    assert res.returncode == 0 and res.stdout.strip() == "12"


def test_exec_environment(node_cluster: Cluster, known_hosts: str, os_user: str) -> None:
    res = ssh(node_cluster, known_hosts, os_user, "env", extra=("-o", "SetEnv=LANG=C.UTF-8 EVIL=1"))
    env = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    assert env["USER"] == os_user and env["SHELL"] == "/bin/bash"
    assert env["TELEPORT_USER"] == TP_USER and env["TELEPORT_CLUSTER_NAME"] == node_cluster.cluster_name
    assert env["SSH_CLIENT"].startswith("127.0.0.1 ") and env["SSH_CLIENT"].endswith(str(node_cluster.ports["node"]))
    assert env["LANG"] == "C.UTF-8" and "EVIL" not in env


def test_exit_signal(node_cluster: Cluster, known_hosts: str, os_user: str) -> None:
    res = ssh(node_cluster, known_hosts, os_user, "kill -TERM $$")
    assert res.returncode == 255  # OpenSSH reports a remote signal as 255
    assert "signal" in res.stderr.lower() or res.returncode == 255


def test_pty_session(node_cluster: Cluster, known_hosts: str, os_user: str) -> None:
    res = ssh(node_cluster, known_hosts, os_user, "tty; id -un; echo $TERM; exit 4", extra=("-tt",))
    assert res.returncode == 4, res.stderr
    lines = res.stdout.replace("\r", "").split()
    assert lines[0].startswith("/dev/pts/") and lines[1] == os_user and lines[2] == "xterm"


def test_teleport_status_inside_session(node_cluster: Cluster, known_hosts: str) -> None:
    res = ssh(node_cluster, known_hosts, "root", f"{sys.executable} -m teleport.cli.teleport status")
    assert res.returncode == 0, res.stderr
    assert f"Cluster Name: {node_cluster.cluster_name}" in res.stdout
    assert f"User        : {TP_USER}" in res.stdout
    with open(os.path.join(node_cluster.data_dir, "host_uuid")) as f:
        assert f"Host UUID   : {f.read().strip()}" in res.stdout
    assert "Session ID  : " in res.stdout


def test_scp_sftp_both_ways(node_cluster: Cluster, known_hosts: str, os_user: str, tmp_path: str) -> None:
    c = node_cluster
    src = os.path.join(str(tmp_path), "src.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(3 * 1024 * 1024 + 17))
    home = pwd.getpwnam(os_user).pw_dir
    base = ["scp", *ssh_args(c, known_hosts, key_path(c), key_path(c) + "-cert.pub"), "-P", str(c.ports["node"])]
    for mode, flag in (("sftp", []), ("legacy", ["-O"])):
        up = subprocess.run([*base, *flag, src, f"{os_user}@localhost:up-{mode}.bin"], capture_output=True,
                            text=True, timeout=60)
        assert up.returncode == 0, up.stderr
        remote = os.path.join(home, f"up-{mode}.bin")
        assert filecmp.cmp(src, remote, shallow=False)
        assert os.stat(remote).st_uid == pwd.getpwnam(os_user).pw_uid  # written as the login user
        back = os.path.join(str(tmp_path), f"down-{mode}.bin")
        down = subprocess.run([*base, *flag, f"{os_user}@localhost:up-{mode}.bin", back], capture_output=True,
                              text=True, timeout=60)
        assert down.returncode == 0, down.stderr
        assert filecmp.cmp(src, back, shallow=False)
    batch = os.path.join(str(tmp_path), "batch")
    with open(batch, "w") as f:
        f.write(f"put {src} via-sftp.bin\nls -l via-sftp.bin\n")
    res = subprocess.run(
        ["sftp", *ssh_args(c, known_hosts, key_path(c), key_path(c) + "-cert.pub"), "-P",
         str(c.ports["node"]), "-b", batch, f"{os_user}@localhost"],
        capture_output=True, text=True, timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert filecmp.cmp(src, os.path.join(home, "via-sftp.bin"), shallow=False)


def _echo_server() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(1024)
                conn.sendall(b"echo:" + data)

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


def test_local_port_forwarding(node_cluster: Cluster, known_hosts: str, os_user: str) -> None:
    c = node_cluster
    srv, port = _echo_server()
    local = free_port()
    proc = subprocess.Popen(
        ["ssh", *ssh_args(c, known_hosts, key_path(c), key_path(c) + "-cert.pub"), "-N",
         "-o", "ExitOnForwardFailure=yes", "-L", f"{local}:127.0.0.1:{port}", "-p", str(c.ports["node"]),
         f"{os_user}@localhost"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        wait_port(local, 20, proc)
        with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
            s.sendall(b"ping")
            assert s.recv(1024) == b"echo:ping"
    finally:
        kill_proc(proc)
        srv.close()


def test_refuses_login_not_in_cert(node_cluster: Cluster, known_hosts: str) -> None:
    res = ssh(node_cluster, known_hosts, "nobody", "true")
    assert res.returncode == 255 and "Permission denied" in res.stderr


def test_refuses_plain_public_key(node_cluster: Cluster, known_hosts: str, os_user: str, tmp_path: str) -> None:
    key = os.path.join(str(tmp_path), "plain")
    shutil.copy(key_path(node_cluster), key)
    os.chmod(key, 0o600)
    res = ssh(node_cluster, known_hosts, os_user, "true", key=key, cert=None)
    assert res.returncode == 255 and "Permission denied" in res.stderr


def _write_cert(tmp: str, name: str, cert: str, priv: bytes) -> tuple[str, str]:
    key = os.path.join(tmp, name)
    with open(key, "wb") as f:
        f.write(priv)
    os.chmod(key, 0o600)
    with open(key + "-cert.pub", "w") as f:
        f.write(cert + "\n")
    return key, key + "-cert.pub"


def test_refuses_foreign_ca_and_expired(node_cluster: Cluster, known_hosts: str, os_user: str,
                                        tmp_path: str) -> None:
    user_key = keys.generate_private_key()
    pub = keys.public_key_to_openssh(user_key)
    priv = keys.private_key_to_openssh(user_key)
    foreign = sshcert.sign_user_cert(keys.generate_private_key(), pub, username=TP_USER,
                                     principals=[os_user], ttl=3600, roles=["admin"])
    key, cert = _write_cert(str(tmp_path), "foreign", foreign, priv)
    res = ssh(node_cluster, known_hosts, os_user, "true", key=key, cert=cert)
    assert res.returncode == 255 and "Permission denied" in res.stderr

    # An expired certificate signed by the real user CA (read from the auth server's storage).
    ca_key = cluster_user_ca_key(node_cluster)
    expired = sshcert.sign_user_cert(ca_key, pub, username=TP_USER, principals=[os_user], ttl=120,
                                     roles=["admin"], now=time.time() - 3600)
    key, cert = _write_cert(str(tmp_path), "expired", expired, priv)
    res = ssh(node_cluster, known_hosts, os_user, "true", key=key, cert=cert)
    assert res.returncode == 255 and "Permission denied" in res.stderr
    # The same CA and key, valid now: accepted (so the refusals above are about the CA and time).
    fresh = sshcert.sign_user_cert(ca_key, pub, username=TP_USER, principals=[os_user], ttl=120,
                                   roles=["admin"])
    key, cert = _write_cert(str(tmp_path), "fresh", fresh, priv)
    res = ssh(node_cluster, known_hosts, os_user, "echo ok", key=key, cert=cert)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


def test_bad_proxy_header_closes_connection(node_cluster: Cluster) -> None:
    with socket.create_connection(("127.0.0.1", node_cluster.ports["node"]), timeout=10) as s:
        s.sendall(b"Teleport-Proxy bm90LWpzb24=\r\nSSH-2.0-OpenSSH_9.2\r\n")
        try:
            data = s.recv(1024)
        except ConnectionResetError:  # closed with our unread banner still queued
            data = b""
        assert data == b""  # closed without an SSH banner
    deadline = time.time() + 5
    while "bad proxy header" not in node_cluster.log() and time.time() < deadline:
        time.sleep(0.1)
    assert "bad proxy header" in node_cluster.log()


def test_proxy_header_sets_client_addr(node_cluster: Cluster, known_hosts: str, os_user: str,
                                       tmp_path: str) -> None:
    import json

    with open(os.path.join(node_cluster.data_dir, "keys", "proxy.json")) as f:
        proxy = json.load(f)
    header = make_proxy_header("203.0.113.7:5555", f"127.0.0.1:{node_cluster.ports['node']}",
                               proxy["private_key"].encode(), proxy["cert"])
    hfile = os.path.join(str(tmp_path), "header")
    with open(hfile, "wb") as f:
        f.write(header)
    # A ProxyCommand that writes the header, then relays the SSH bytes (as the proxy will).
    relay = (f"{sys.executable} -c \"import socket,sys,threading;"
             f"s=socket.create_connection(('127.0.0.1',{node_cluster.ports['node']}));"
             f"s.sendall(open('{hfile}','rb').read());"
             "threading.Thread(target=lambda:[s.sendall(b) for b in iter(lambda:sys.stdin.buffer.raw.read(65536),b'')]"
             " or s.shutdown(1),daemon=True).start();"
             "[sys.stdout.buffer.write(b) or sys.stdout.flush() for b in iter(lambda:s.recv(65536),b'')]\"")
    res = ssh(node_cluster, known_hosts, os_user, "echo $SSH_CLIENT", extra=("-o", f"ProxyCommand={relay}"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[:2] == ["203.0.113.7", "5555"]


def test_nodes_ls_shows_labels(node_cluster: Cluster) -> None:
    out = node_cluster.tctl("nodes", "ls").stdout
    row = next(line for line in out.splitlines() if line.startswith("testnode"))
    assert f"127.0.0.1:{node_cluster.ports['node']}" in row
    for label in ("env=prod", "team=core", "arch=x86-test"):
        assert label in row, out


def test_agent_forwarding_follows_role(node_cluster: Cluster, known_hosts: str, os_user: str,
                                       tmp_path: str) -> None:
    sock = os.path.join(str(tmp_path), "agent.sock")
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.05)
        env = dict(os.environ, SSH_AUTH_SOCK=sock)
        subprocess.run(["ssh-add", key_path(node_cluster)], env=env, check=True, capture_output=True)
        cmd = ["ssh", *ssh_args(node_cluster, known_hosts, key_path(node_cluster),
                                key_path(node_cluster) + "-cert.pub"),
               "-A", "-p", str(node_cluster.ports["node"]), f"{os_user}@localhost",
               'echo "sock=$SSH_AUTH_SOCK"; ssh-add -l']
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        with open(key_path(node_cluster) + "-cert.pub") as f:
            cert = sshcert.parse_cert(f.read())
        assert sshcert.EXT_PERMIT_AGENT_FORWARDING in cert.extensions  # the default role forwards
        assert res.returncode == 0, res.stderr
        assert "sock=/" in res.stdout and "ED25519" in res.stdout.upper()
        # without -A there is no agent in the session
        res = subprocess.run([c for c in cmd if c != "-A"], env=env, capture_output=True, text=True, timeout=60)
        assert "sock=\n" in res.stdout
    finally:
        kill_proc(agent)
