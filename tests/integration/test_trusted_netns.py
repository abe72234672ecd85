"""A trusted leaf cluster across a real network boundary: the leaf (auth, proxy, node) runs in its
own Linux network namespace, joined to this host by a veth pair in a private test range, behind an
nftables firewall that lets it dial out and drops everything inward. The root's users reach the
leaf's node with tsh and OpenSSH through the root's proxy and the leaf's reverse tunnel, while a
direct dial from the root's side to the leaf fails. Needs root, `ip` and `nft`; skipped otherwise."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator

import pytest

from tests.helpers import Cluster, cli, destroy, env_with, kill_proc, new_cluster, os_account

pytestmark = pytest.mark.integration

OS_USER = "tptrustns"
ROOT, LEAF = "ns-root", "ns-leaf"


def _sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, check=check)


class Netns:
    """A namespace `name` with veth `host_if` (HOST_IP, this side) <-> leaf side (LEAF_IP), and a
    firewall inside it: loopback and replies to its own connections only."""

    def __init__(self) -> None:
        n = random.randrange(1, 250)
        tag = f"{os.getpid() % 10000}{n}"
        self.name = f"tpleaf{tag}"
        self.host_if, self.leaf_if = f"tpv{tag}a"[:15], f"tpv{tag}b"[:15]
        self.host_ip, self.leaf_ip = f"10.231.{n}.1", f"10.231.{n}.2"

    def create(self) -> None:
        _sh("ip", "netns", "add", self.name)
        _sh("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.leaf_if)
        _sh("ip", "link", "set", self.leaf_if, "netns", self.name)
        _sh("ip", "addr", "add", f"{self.host_ip}/24", "dev", self.host_if)
        _sh("ip", "link", "set", self.host_if, "up")
        self.exec("ip", "link", "set", "lo", "up")
        self.exec("ip", "addr", "add", f"{self.leaf_ip}/24", "dev", self.leaf_if)
        self.exec("ip", "link", "set", self.leaf_if, "up")
        rules = textwrap.dedent("""\
            table inet tpfw {
              chain input {
                type filter hook input priority 0; policy drop;
                iif lo accept
                ct state established,related accept
              }
            }
            """)
        subprocess.run(["ip", "netns", "exec", self.name, "nft", "-f", "-"], input=rules, text=True,
                       check=True, capture_output=True)

    def exec(self, *cmd: str) -> subprocess.CompletedProcess[str]:
        return _sh("ip", "netns", "exec", self.name, *cmd)

    def destroy(self) -> None:
        _sh("ip", "netns", "del", self.name, check=False)
        _sh("ip", "link", "del", self.host_if, check=False)


class NetnsCluster(Cluster):
    """A Cluster whose teleport (and tctl) run inside a network namespace, listening on every
    address there (the firewall, not the bind address, keeps the outside out)."""

    ns: Netns

    def write_config(self) -> None:
        super().write_config()
        with open(self.config_path) as f:
            text = f.read()
        text = text.replace("listen_addr: 127.0.0.1:", "listen_addr: 0.0.0.0:")
        with open(self.config_path, "w") as f:
            f.write(text)

    def start(self, timeout: float = 40) -> None:
        self.write_config()
        self.stdout = open(os.path.join(self.root, "stdout.log"), "wb")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns.name, *cli("teleport"), "start", "-c", self.config_path,
             f"--roles={self.roles}"],
            stdout=self.stdout, stderr=subprocess.STDOUT, env=env_with(),
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(os.path.join(self.root, "stdout.log")) as f:
                if "What to do next" in f.read():
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise TimeoutError("the leaf did not start in its namespace:\n" + self.log())

    def run(self, tool: str, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        cmd = ["ip", "netns", "exec", self.ns.name, *cli(tool)]
        if tool == "tctl":
            cmd += ["-c", self.config_path]
        res = subprocess.run([*cmd, *args], input=input, capture_output=True, text=True, timeout=timeout,
                             env=env or env_with(TELEPORT_HOME=self.home))
        if check and res.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} exited {res.returncode}\n{res.stderr}\n{self.log()}")
        return res


def _can_use_netns() -> str:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if not shutil.which("ip") or not shutil.which("nft"):
        return "needs iproute2 (ip) and nftables (nft)"
    probe = f"tpprobe{os.getpid()}"
    if _sh("ip", "netns", "add", probe, check=False).returncode != 0:
        return "this machine cannot create network namespaces"
    _sh("ip", "netns", "del", probe, check=False)
    return ""


def wait_for(cond: object, timeout: float, what: str, *clusters: Cluster) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout}s\n" + "\n".join(c.log() for c in clusters))


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Cluster, NetnsCluster, Netns]]:
    why = _can_use_netns()
    if why:
        pytest.skip(why)
    with os_account(OS_USER):
        ns = Netns()
        root = new_cluster(cluster_name=ROOT, roles="auth,proxy")
        leaf_base = new_cluster(cluster_name=LEAF, roles="auth,proxy,node")
        leaf = NetnsCluster(root=leaf_base.root, ports=leaf_base.ports, cluster_name=LEAF, roles="auth,proxy,node")
        leaf.ns = ns
        leaf_proc: subprocess.Popen[bytes] | None = None
        try:
            ns.create()
            # the root's proxy listens on the veth too, and its host certificate names that address
            root.teleport_extra = f"  advertise_ip: {ns.host_ip}\n"
            root.proxy_extra = ""
            root.start()
            with open(root.config_path) as f:
                text = f.read()
            text = text.replace("web_listen_addr: 127.0.0.1:", "web_listen_addr: 0.0.0.0:").replace(
                "tunnel_listen_addr: 127.0.0.1:", "tunnel_listen_addr: 0.0.0.0:")
            root.stop()
            with open(root.config_path, "w") as f:
                f.write(text)
            root.write_config = lambda: None  # type: ignore[method-assign]
            root.start()
            leaf.start()
            leaf_proc = leaf.proc  # type: ignore[assignment]
            root.add_user("alice", OS_USER)
            root.login("alice")
            yield root, leaf, ns
        finally:
            if leaf_proc is not None:
                kill_proc(leaf_proc)
            leaf.proc = None
            destroy(leaf)
            destroy(root)
            ns.destroy()


def test_root_users_reach_a_firewalled_leaf_through_its_tunnel(world: tuple[Cluster, NetnsCluster, Netns]) -> None:
    root, leaf, ns = world
    # nothing of the leaf answers from the root's side: the firewall drops it
    for port in (leaf.ports["node"], leaf.ports["web"], leaf.ports["auth"], leaf.ports["ssh"]):
        with pytest.raises(OSError):
            socket.create_connection((ns.leaf_ip, port), timeout=2).close()
    # while the leaf dials out to the root's proxy
    leaf.tctl("create", "-", input=textwrap.dedent(f"""\
        kind: role
        version: v3
        metadata: {{name: leaf-access}}
        spec: {{allow: {{logins: [{OS_USER}], node_labels: {{'*': '*'}}}}}}
        """))
    out = root.tctl("tokens", "add", "--type=trusted_cluster").stdout
    token = next(ln.split()[-1] for ln in out.splitlines() if ln.startswith("The trusted_cluster token:"))
    pin = next(ln.split()[-1] for ln in out.splitlines() if "spec.ca_pin" in ln)
    leaf.tctl("create", "-", input=textwrap.dedent(f"""\
        kind: trusted_cluster
        version: v2
        metadata: {{name: {ROOT}}}
        spec:
          token: {token}
          ca_pin: {pin}
          web_proxy_addr: {ns.host_ip}:{root.ports['web']}
          tunnel_addr: {ns.host_ip}:{root.ports['tunnel']}
          role_map: [{{remote: access, local: [leaf-access]}}]
        """))
    wait_for(lambda: f"{LEAF} " in root.tsh("clusters").stdout and "online" in root.tsh("clusters").stdout,
             60, "the leaf never came online", root, leaf)
    wait_for(lambda: "testnode" in root.tsh("ls", f"--cluster={LEAF}", check=False).stdout, 40,
             "the leaf's node is never listed", root, leaf)
    wait_for(lambda: root.tsh("ssh", f"--cluster={LEAF}", f"{OS_USER}@testnode", "true", check=False).returncode == 0,
             30, "the leaf's node never let the root's user in", root, leaf)
    res = root.tsh("ssh", f"--cluster={LEAF}", f"{OS_USER}@testnode", "echo", "ns-$((40+2))", check=False)
    assert res.returncode == 0 and res.stdout.strip() == "ns-42", res.stderr
    # OpenSSH, through the tsh config block (NODE.LEAF)
    cfg = os.path.join(root.root, "ssh_config")
    with open(cfg, "w") as f:
        f.write(root.tsh("config").stdout)
    res = subprocess.run(["ssh", "-F", cfg, "-p", str(leaf.ports["node"]), f"{OS_USER}@testnode.{LEAF}",
                          "echo", "openssh-ns"], capture_output=True, text=True, timeout=60,
                         env=env_with(TELEPORT_HOME=root.home))
    assert res.returncode == 0 and res.stdout.strip() == "openssh-ns", res.stderr
    # the session is in the leaf's audit log
    wait_for(lambda: "alice" in leaf.tctl("events", "ls", "--type=exec").stdout, 20, "no exec event", leaf)
