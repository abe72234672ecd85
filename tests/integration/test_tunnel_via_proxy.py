"""A node behind a firewall that is given only the proxy's web address (3080): it joins with its
token through the proxy, keeps a reverse tunnel, and reaches auth only through the proxy's relay.
A watcher samples the node's TCP connections the whole time and the test fails if it ever holds
one to auth's port. Then tsh ssh / scp, label targets, OpenSSH via ProxyCommand, session
recording and the audit log work for it; it goes offline (from tsh ls / tctl nodes ls) as soon as
its tunnel is gone and comes back when it returns."""

from __future__ import annotations

import filecmp
import glob
import json
import os
import shutil
import subprocess
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import Cluster, cli, destroy, env_with, kill_proc, new_cluster, os_account

pytestmark = pytest.mark.integration

OS_USER = "tpviaproxy"
NODE = "fwjoin"


class ConnWatcher(threading.Thread):
    """Samples `ss` for the TCP connections of one process; remembers those to `port`."""

    def __init__(self, pid: int, port: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.port = pid, port
        self.hits: list[str] = []
        self.samples = 0
        self.peers: set[int] = set()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            out = subprocess.run(["ss", "-Htnp"], capture_output=True, text=True).stdout
            for ln in out.splitlines():
                if f"pid={self.pid}," not in ln:
                    continue
                peer = ln.split()[4]
                port = int(peer.rsplit(":", 1)[1])
                self.peers.add(port)
                if port == self.port:
                    self.hits.append(ln)
            self.samples += 1
            self._halt.wait(0.1)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def ca_pin(c: Cluster) -> str:
    """The cluster's CA pin, as `tctl nodes add` prints it (the node checks auth's CA by it)."""
    from teleport.ca import tlsca

    with open(os.path.join(c.data_dir, "keys", "tls-ca.pem"), "rb") as f:
        return tlsca.ca_pin(f.read())


class ProxyJoinedNode:
    """A node whose only address is the proxy's web port: teleport.auth_servers = proxy:3080."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.root = tempfile.mkdtemp(prefix=f"tp-{NODE}-")
        self.config = os.path.join(self.root, "teleport.yaml")
        self.proc: subprocess.Popen[bytes] | None = None
        self.watcher: ConnWatcher | None = None

    def write_config(self) -> None:
        """The node knows the proxy's web address and the cluster's CA pin, nothing else."""
        with open(self.config, "w") as f:
            f.write(textwrap.dedent(f"""\
                teleport:
                  nodename: {NODE}
                  data_dir: {self.root}/data
                  auth_token: {self.cluster.static_token}
                  auth_servers: ["{self.cluster.web_addr}"]
                  ca_pin: {ca_pin(self.cluster)}
                  log: {{output: {self.root}/teleport.log, severity: INFO}}
                auth_service: {{enabled: no}}
                proxy_service: {{enabled: no}}
                ssh_service:
                  enabled: yes
                  labels: {{zone: dmz}}
                """))

    def start(self) -> None:
        self.write_config()
        if self.watcher is not None:
            self.watcher.stop()
        self.proc = subprocess.Popen(
            [*cli("teleport"), "start", "-c", self.config, "--roles=node"],
            stdout=open(os.path.join(self.root, "stdout.log"), "ab"), stderr=subprocess.STDOUT,
            env=env_with(),
        )
        self.watcher = ConnWatcher(self.proc.pid, self.cluster.ports["auth"])
        self.watcher.start()

    def log(self) -> str:
        out = []
        for name in ("stdout.log", "teleport.log"):
            path = os.path.join(self.root, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    out.append(f"--- node {name}\n{f.read()[-4000:]}")
        return "\n".join(out)

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.proc is not None:
            kill_proc(self.proc)
            self.proc = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def wait_for(cond: Any, timeout: float, what: str, c: Cluster, node: ProxyJoinedNode) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"{what} within {timeout}s\n{c.log()}\n{node.log()}")


@pytest.fixture(scope="module")
def tc() -> Iterator[tuple[Cluster, ProxyJoinedNode]]:
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


def auth_events(c: Cluster) -> list[dict[str, Any]]:
    out = []
    for path in sorted(glob.glob(os.path.join(c.data_dir, "log", "*.log"))):
        with open(path) as f:
            out += [json.loads(line) for line in f if line.strip()]
    return out


def host_id(node: ProxyJoinedNode) -> str:
    with open(os.path.join(node.root, "data", "host_uuid")) as f:
        return f.read().strip()


def test_joins_through_the_proxy_and_runs_commands(tc: tuple[Cluster, ProxyJoinedNode]) -> None:
    c, node = tc
    line = next(ln for ln in c.tctl("nodes", "ls").stdout.splitlines() if NODE in ln)
    assert "@tunnel" in line and "zone=dmz" in line
    with open(os.path.join(node.root, "data", "proxies.json")) as f:
        saved = json.load(f)["proxies"]
    assert saved == [{"web_addr": c.web_addr, "tunnel_addr": f"127.0.0.1:{c.ports['tunnel']}"}]
    assert not os.path.exists(os.path.join(node.root, "data", "authservers.json"))
    res = c.tsh("ssh", f"{OS_USER}@{NODE}", "echo via-$((40+2)); exit 5", check=False)
    assert res.returncode == 5 and res.stdout.strip() == "via-42", res.stderr + node.log()
    res = c.tsh("ssh", f"{OS_USER}@zone=dmz", "id", "-un", check=False)
    assert res.returncode == 0 and res.stdout.strip() == f"[{NODE}] {OS_USER}", res.stderr


def test_scp_both_ways(tc: tuple[Cluster, ProxyJoinedNode], tmp_path: Any) -> None:
    c, _ = tc
    src = os.path.join(str(tmp_path), "up.bin")
    with open(src, "wb") as f:
        f.write(os.urandom(2 * 1024 * 1024 + 5))
    os.chmod(str(tmp_path), 0o755)
    os.chmod(src, 0o644)
    c.tsh("scp", src, f"{OS_USER}@{NODE}:/tmp/tp-viaproxy-up.bin")
    back = os.path.join(str(tmp_path), "back.bin")
    c.tsh("scp", f"{OS_USER}@{NODE}:/tmp/tp-viaproxy-up.bin", back)
    assert filecmp.cmp(src, back, shallow=False)
    c.tsh("ssh", f"{OS_USER}@{NODE}", "rm -f /tmp/tp-viaproxy-up.bin")


def test_openssh_proxycommand_session_is_recorded_and_audited(tc: tuple[Cluster, ProxyJoinedNode]) -> None:
    c, node = tc
    kh = os.path.join(c.root, "known_hosts_ca")
    with open(kh, "w") as f:
        f.write(c.tctl("auth", "export", "--type=host").stdout)
    k = os.path.join(c.home, "keys", "127.0.0.1", "vic")
    base = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", k,
            "-o", f"CertificateFile={k}-cert.pub", "-o", f"UserKnownHostsFile={kh}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"]
    pc = " ".join(["ssh", *base, "-p", str(c.ports["ssh"]), "%r@127.0.0.1", "-s", "proxy:%h:%p"])
    # -tt: a PTY session, which the node records
    res = subprocess.run(["ssh", *base, "-o", f"ProxyCommand={pc}", "-tt", f"{OS_USER}@{NODE}"],
                         input="echo rec-$((6*7))-orded\nexit 0\n", capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and "rec-42-orded" in res.stdout, res.stderr + node.log()
    hid = host_id(node)
    start = wait_for(lambda: [e for e in auth_events(c) if e.get("event") == "session.start"
                              and e.get("server_id") == hid and e.get("login") == OS_USER],
                     30, "the node's session.start in auth's audit log", c, node)
    sid = start[-1]["sid"]
    wait_for(lambda: [e for e in auth_events(c) if e.get("event") == "session.upload" and e.get("sid") == sid],
             30, "the recording's upload", c, node)
    cast = c.tsh("play", "--format=cast", sid).stdout
    assert "rec-42-orded" in cast


def test_node_never_connects_to_auth(tc: tuple[Cluster, ProxyJoinedNode]) -> None:
    c, node = tc
    w = node.watcher
    assert w is not None and w.samples > 20
    assert w.hits == [], "the node connected to auth's port directly:\n" + "\n".join(w.hits)
    # what it did connect to: the proxy's web port (the relay) and its tunnel listener
    assert {c.ports["web"], c.ports["tunnel"]} <= w.peers, w.peers


def test_live_session_on_the_tunnelled_node_can_be_joined(tc: tuple[Cluster, ProxyJoinedNode]) -> None:
    from tests.integration.test_tsh_audit_cmds import PtyProc

    c, node = tc
    env = env_with(TELEPORT_HOME=c.home)
    host = PtyProc([*cli("tsh"), "ssh", f"{OS_USER}@{NODE}"], env)
    joiner: PtyProc | None = None
    try:
        host.expect(b"$ ", 30)
        rows: list[str] = wait_for(
            lambda: [r for r in c.tsh("sessions", "ls").stdout.splitlines()[2:] if NODE in r],
            20, "no live session on the node in 'tsh sessions ls'", c, node)
        sid = rows[0].split()[0]
        joiner = PtyProc([*cli("tsh"), "join", sid], env)
        joiner.expect(b"joined session", 30)
        time.sleep(0.5)
        joiner.send(b"echo joined-$((6*7))\r")
        joiner.expect(b"joined-42")
        host.expect(b"joined-42")
        host.send(b"exit\r")
        assert host.wait() == 0
        joiner.wait()
    finally:
        host.close()
        if joiner is not None:
            joiner.close()


def test_a_wrong_ca_pin_refuses_to_join_through_the_proxy(tc: tuple[Cluster, ProxyJoinedNode],
                                                         tmp_path: Any) -> None:
    """The pin is checked on auth's CA fetched through the relay: a proxy (or anything between)
    that is not in front of this cluster never gets the token sent into a TLS it cannot check."""
    from teleport.ca import tlsca

    c, _ = tc
    with open(os.path.join(c.data_dir, "keys", "tls-ca.pem"), "rb") as f:
        right = tlsca.ca_pin(f.read())
    wrong = "sha256:" + ("0" * 64)
    conf = os.path.join(str(tmp_path), "teleport.yaml")
    with open(conf, "w") as f:
        f.write(f"teleport: {{nodename: pinned, data_dir: {tmp_path}/data}}\n"
                "auth_service: {enabled: no}\nproxy_service: {enabled: no}\n")
    res = subprocess.run(
        [*cli("teleport"), "start", "-c", conf, "--roles=node",
         f"--auth-server={c.web_addr}", f"--token={c.static_token}", f"--ca-pin={wrong}"],
        capture_output=True, text=True, timeout=60, env=env_with(),
    )
    assert res.returncode != 0
    assert "pin" in (res.stdout + res.stderr).lower(), res.stdout + res.stderr
    assert right != wrong and not os.path.exists(os.path.join(str(tmp_path), "data", "keys", "node.json"))


def test_offline_as_soon_as_the_tunnel_is_gone_and_back_after(tc: tuple[Cluster, ProxyJoinedNode]) -> None:
    c, node = tc
    assert node.proc is not None
    node.proc.kill()  # no goodbye: the proxy sees the tunnel drop
    node.proc.wait()
    node.proc = None
    started = time.time()
    wait_for(lambda: NODE not in c.tsh("ls").stdout and NODE not in c.tctl("nodes", "ls").stdout,
             15, "the node was still listed after its tunnel was gone", c, node)
    # far sooner than the heartbeat TTL
    from teleport import defaults

    assert time.time() - started < defaults.SERVER_TTL / 2
    node.start()
    wait_for(lambda: NODE in c.tsh("ls").stdout, 40, "the node never came back", c, node)
    res = c.tsh("ssh", f"{OS_USER}@{NODE}", "true", check=False)
    assert res.returncode == 0, res.stderr + node.log()
