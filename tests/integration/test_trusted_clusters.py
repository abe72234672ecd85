"""Trusted clusters on loopback, with real processes: a root and leaf clusters (each its own
auth + proxy + node). The dynamic form (token, `kind: trusted_cluster`, CA exchange, role_map,
enabled: false, remove and re-create) and the static form (tctl auth export, key_file,
allow_logins, tunnel_addr, restart); root users reach leaf nodes with tsh through the root proxy
and the leaf's tunnel, the leaf logs the sessions, and trust is one way."""

from __future__ import annotations

import json
import os
import ssl
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.helpers import Cluster, destroy, env_with, new_cluster, os_account

pytestmark = pytest.mark.integration

OS_USER = "tptrust"
ROOT, LEAF, STATIC = "root-cl", "leaf-cl", "leaf-static"


def wait_for(cond: Callable[[], object], timeout: float, what: str, *clusters: Cluster) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout}s\n" + "\n".join(c.log() for c in clusters))


def node_id(c: Cluster) -> str:
    line = next(ln for ln in c.tctl("nodes", "ls").stdout.splitlines() if "testnode" in ln)
    return line.split()[1]


def status_of(root: Cluster, name: str) -> str:
    res = root.tsh("clusters", check=False)
    for ln in res.stdout.splitlines():
        parts = ln.split()
        if parts and parts[0] == name:
            return parts[1]
    return "absent"


def leaf_ssh(root: Cluster, cluster: str, *cmd: str) -> object:
    return root.tsh("ssh", f"--cluster={cluster}", f"{OS_USER}@testnode", *cmd, check=False)


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Cluster, Cluster]]:
    with os_account(OS_USER):
        root = new_cluster(cluster_name=ROOT, roles="auth,proxy,node")
        leaf = new_cluster(cluster_name=LEAF, roles="auth,proxy,node", ssh_extra="  labels: {env: leafy}\n")
        try:
            root.start()
            leaf.start()
            root.add_user("alice", OS_USER)
            root.login("alice")
            leaf.add_user("bob", OS_USER)
            leaf.login("bob")
            wait_for(lambda: "testnode" in root.tctl("nodes", "ls").stdout
                     and "testnode" in leaf.tctl("nodes", "ls").stdout, 30, "nodes never registered", root, leaf)
            yield root, leaf
        finally:
            destroy(leaf)
            destroy(root)


def make_token(root: Cluster, *extra: str) -> tuple[str, str]:
    out = root.tctl("tokens", "add", "--type=trusted_cluster", *extra).stdout
    token = next(ln.split()[-1] for ln in out.splitlines() if ln.startswith("The trusted_cluster token:"))
    pin = next(ln.split()[-1] for ln in out.splitlines() if "spec.ca_pin" in ln)
    return token, pin


def trusted_yaml(root: Cluster, token: str, pin: str, enabled: bool = True, remote: str = "*") -> str:
    return textwrap.dedent(f"""\
        kind: trusted_cluster
        version: v2
        metadata:
          name: {ROOT}
        spec:
          enabled: {"true" if enabled else "false"}
          token: {token}
          ca_pin: {pin}
          web_proxy_addr: {root.web_addr}
          tunnel_addr: 127.0.0.1:{root.ports['tunnel']}
          role_map:
            - remote: "{remote}"
              local: [leaf-access]
        """)


def create_tc(leaf: Cluster, text: str, *flags: str, check: bool = True) -> object:
    path = os.path.join(leaf.root, "tc.yaml")
    with open(path, "w") as f:
        f.write(text)
    return leaf.tctl("create", *flags, path, check=check)


LEAF_ROLE = textwrap.dedent(f"""\
    kind: role
    version: v3
    metadata: {{name: leaf-access}}
    spec:
      allow:
        logins: [{OS_USER}]
        node_labels: {{'*': '*'}}
        rules: [{{resources: [session], verbs: [read]}}]
    """)


def validate_raw(root: Cluster, token: str) -> tuple[int, str]:
    """POST the CA exchange to the root proxy as a leaf would (self-signed proxy: unverified)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    body = json.dumps({"token": token, "cluster_name": "intruder",
                       "cas": {"host": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"]}}).encode()
    req = urllib.request.Request(f"https://{root.web_addr}/v1/webapi/trustedclusters/validate", body,
                                 {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_dynamic_trust_role_map_and_access(pair: tuple[Cluster, Cluster]) -> None:
    root, leaf = pair
    leaf.tctl("create", "-", input=LEAF_ROLE)
    # a token of another type is refused, with what to do
    status, text = validate_raw(root, "not-a-real-token")
    assert status == 403 and "unknown, expired or already used" in text, text
    token, pin = make_token(root)
    # a wrong pin: the token never leaves the leaf
    bad = create_tc(leaf, trusted_yaml(root, token, "sha256:" + "0" * 64), check=False)
    assert bad.returncode != 0 and "ca_pin" in bad.stderr, bad.stderr
    create_tc(leaf, trusted_yaml(root, token, pin))
    got = leaf.tctl("get", "trusted_clusters").stdout
    assert ROOT in got and "yes" in got and "leaf-access" in got
    assert token not in leaf.tctl("get", "trusted_cluster/" + ROOT, "--format=yaml").stdout
    # the token works once
    status, text = validate_raw(root, token)
    assert status == 403 and "already used" in text, text
    wait_for(lambda: status_of(root, LEAF) == "online", 40, "the leaf never came online", root, leaf)
    # the root user lists and reaches the leaf's node, through the root proxy and the tunnel
    leaf_node = node_id(leaf)
    assert leaf_node in root.tsh("ls", f"--cluster={LEAF}").stdout
    assert leaf_node in root.tsh(f"--cluster={LEAF}", "ls").stdout  # the manual's spelling
    assert leaf_node not in root.tsh("ls").stdout
    # the leaf's node trusts the root's user CA once it re-read the trusted CAs
    wait_for(lambda: leaf_ssh(root, LEAF, "true").returncode == 0, 30, "the leaf node never let alice in",  # type: ignore[attr-defined]
             root, leaf)
    res = leaf_ssh(root, LEAF, "echo", "leaf-$((40+2))")
    assert res.returncode == 0 and res.stdout.strip() == "leaf-42", res.stderr  # type: ignore[attr-defined]
    # a label target runs on the leaf's matching nodes
    res = root.tsh("ssh", f"--cluster={LEAF}", f"{OS_USER}@env=leafy", "echo", "labelled", check=False)
    assert res.returncode == 0 and res.stdout.strip() == "[testnode] labelled", res.stderr
    # scp both ways
    src = os.path.join(root.root, "payload.txt")
    with open(src, "w") as f:
        f.write("over the tunnel\n")
    root.tsh("scp", f"--cluster={LEAF}", src, f"{OS_USER}@testnode:/tmp/tp-trust-copy.txt")
    back = os.path.join(root.root, "back.txt")
    root.tsh("scp", f"--cluster={LEAF}", f"{OS_USER}@testnode:/tmp/tp-trust-copy.txt", back)
    with open(back) as f:
        assert f.read() == "over the tunnel\n"
    os.remove("/tmp/tp-trust-copy.txt")
    # the leaf's audit log has the root user's session; the root's has none of it
    wait_for(lambda: "alice" in leaf.tctl("events", "ls", "--type=exec").stdout, 20, "no exec event on the leaf",
             leaf)
    assert "leaf-" not in root.tctl("events", "ls", "--type=exec", "--format=json").stdout
    # an unknown cluster is an error, never the local one
    res = root.tsh("ls", "--cluster=nope", check=False)
    assert res.returncode != 0 and "cluster 'nope' is not known" in res.stderr, res.stderr


def test_leaf_recording_plays_from_the_root(pair: tuple[Cluster, Cluster]) -> None:
    root, leaf = pair
    res = root.tsh("ssh", "-t", f"--cluster={LEAF}", f"{OS_USER}@testnode",
                   "echo SID=$TELEPORT_SESSION; echo rec-$((6*7))", check=False)
    assert res.returncode == 0 and "rec-42" in res.stdout, res.stderr
    sid = res.stdout.split("SID=")[1].split()[0].strip()

    def uploaded() -> bool:
        out = leaf.tctl("events", "ls", "--type=session.upload", "--format=json").stdout
        return any(e.get("sid") == sid for e in json.loads(out))

    wait_for(uploaded, 30, "the leaf never stored the recording", leaf)
    cast = root.tsh("play", f"--cluster={LEAF}", "--format=cast", sid).stdout
    assert "rec-42" in cast and json.loads(cast.splitlines()[0])["version"] == 2
    # the root never had it, and a session the leaf does not know is refused
    assert root.tsh("play", "--format=cast", sid, check=False).returncode != 0
    res = root.tsh("play", f"--cluster={LEAF}", "--format=cast", "00000000-0000-4000-8000-000000000000", check=False)
    assert res.returncode != 0 and "tsh recordings ls" in res.stderr, res.stderr


def test_leaf_node_behind_the_leafs_own_tunnel(pair: tuple[Cluster, Cluster]) -> None:
    from tests.integration.test_tunnel import TunnelNode

    root, leaf = pair
    node = TunnelNode(leaf, "fwleaf")
    try:
        node.start()
        wait_for(lambda: "fwleaf" in leaf.tctl("nodes", "ls").stdout, 30, "the tunnelled node never joined", leaf)
        wait_for(lambda: root.tsh("ssh", f"--cluster={LEAF}", f"{OS_USER}@fwleaf", "true", check=False).returncode == 0,
                 30, "the leaf's tunnelled node is never reachable", root, leaf)
        res = root.tsh("ssh", f"--cluster={LEAF}", f"{OS_USER}@fwleaf", "echo", "two-tunnels", check=False)
        assert res.returncode == 0 and res.stdout.strip() == "two-tunnels", res.stderr
    finally:
        node.destroy()


def test_role_map_unmapped_and_deny(pair: tuple[Cluster, Cluster]) -> None:
    root, leaf = pair
    token, pin = make_token(root)
    # roles with no mapping get nothing
    create_tc(leaf, trusted_yaml(root, token, pin, remote="nomatch"), "-f")
    res = None
    deadline = time.time() + 20
    while time.time() < deadline:
        res = leaf_ssh(root, LEAF, "true")
        if res.returncode != 0:  # type: ignore[attr-defined]
            break
        time.sleep(0.5)
    assert res is not None and res.returncode != 0  # type: ignore[attr-defined]
    assert "gets no role here" in res.stderr, res.stderr  # type: ignore[attr-defined]
    ls = root.tsh("ls", f"--cluster={LEAF}", check=False)
    assert ls.returncode != 0 and "none of its roles (access) is mapped by role_map" in ls.stderr, ls.stderr
    # mapped again, then a deny rule of the leaf wins
    create_tc(leaf, trusted_yaml(root, token, pin, remote="access"), "-f")
    wait_for(lambda: leaf_ssh(root, LEAF, "true").returncode == 0, 20, "mapped access never worked", root, leaf)  # type: ignore[attr-defined]
    leaf.tctl("create", "-f", "-", input=LEAF_ROLE.replace("  allow:", f"  deny:\n    logins: [{OS_USER}]\n  allow:"))
    res = leaf_ssh(root, LEAF, "true")
    assert res.returncode != 0 and "allows a login on it" in res.stderr, res  # type: ignore[attr-defined]
    leaf.tctl("create", "-f", "-", input=LEAF_ROLE)
    assert leaf_ssh(root, LEAF, "true").returncode == 0  # type: ignore[attr-defined]


def test_trust_is_one_way(pair: tuple[Cluster, Cluster]) -> None:
    root, leaf = pair
    res = leaf.tsh("ssh", f"--cluster={ROOT}", f"{OS_USER}@testnode", "true", check=False)
    assert res.returncode != 0 and f"cluster '{ROOT}' is not known" in res.stderr, res.stderr
    assert ROOT not in leaf.tsh("clusters").stdout
    # the leaf user's certificate does not open a session on a root node either
    res = leaf.tsh("ssh", "-p", str(root.ports["node"]), f"{OS_USER}@127.0.0.1", "true", check=False)
    assert res.returncode != 0


def test_disable_remove_and_recreate(pair: tuple[Cluster, Cluster]) -> None:
    root, leaf = pair
    token, pin = make_token(root)
    create_tc(leaf, trusted_yaml(root, token, pin, enabled=False), "-f")
    wait_for(lambda: status_of(root, LEAF) == "offline", 30, "the disabled leaf stayed online", root, leaf)
    assert leaf_ssh(root, LEAF, "true").returncode != 0  # type: ignore[attr-defined]
    assert "no" in leaf.tctl("get", "trusted_clusters").stdout
    leaf.tctl("rm", f"trusted_cluster/{ROOT}")
    assert ROOT not in leaf.tctl("get", "trusted_clusters").stdout
    assert ROOT not in leaf.tctl("auth", "ls").stdout
    # re-created with a fresh token it works again
    token, pin = make_token(root)
    create_tc(leaf, trusted_yaml(root, token, pin))
    wait_for(lambda: status_of(root, LEAF) == "online", 40, "the re-created leaf never came online", root, leaf)
    wait_for(lambda: leaf_ssh(root, LEAF, "true").returncode == 0, 20, "access never came back", root, leaf)  # type: ignore[attr-defined]


def test_offline_leaf_fails_clearly_and_reconnects(pair: tuple[Cluster, Cluster]) -> None:
    root, leaf = pair
    wait_for(lambda: status_of(root, LEAF) == "online", 40, "the leaf is not online", root, leaf)
    leaf.stop()
    wait_for(lambda: status_of(root, LEAF) == "offline", 40, "the stopped leaf stayed online", root)
    res = leaf_ssh(root, LEAF, "true")
    assert res.returncode != 0 and f"cluster '{LEAF}' is offline" in res.stderr, res.stderr  # type: ignore[attr-defined]
    leaf.start()
    wait_for(lambda: status_of(root, LEAF) == "online", 60, "the restarted leaf never reconnected", root, leaf)
    wait_for(lambda: leaf_ssh(root, LEAF, "true").returncode == 0, 30, "no access after the restart", root, leaf)  # type: ignore[attr-defined]


def test_static_form_and_restart(pair: tuple[Cluster, Cluster]) -> None:
    root, _ = pair
    static = new_cluster(cluster_name=STATIC, roles="auth,proxy,node")
    try:
        static.start()
        root_cas = os.path.join(static.root, "root.cas")
        static_cas = os.path.join(root.root, "static.cas")
        with open(root_cas, "w") as f:
            f.write(root.tctl("auth", "export").stdout)
        with open(static_cas, "w") as f:
            f.write(static.tctl("auth", "export").stdout)
        root.auth_extra = f"  trusted_clusters:\n    - key_file: {static_cas}\n"
        static.auth_extra = (f"  trusted_clusters:\n    - key_file: {root_cas}\n      allow_logins: {OS_USER}\n"
                             f"      tunnel_addr: 127.0.0.1:{root.ports['tunnel']}\n")
        root.stop()
        static.stop()
        root.start()
        static.start()
        out = static.tctl("auth", "ls").stdout
        assert f"CA keys for the local cluster {STATIC}" in out and "CA Keys for Trusted Clusters" in out
        rows = [ln.split() for ln in out.split("CA Keys for Trusted Clusters")[1].splitlines() if ln.startswith(ROOT)]
        assert [r[1] for r in rows] == ["user", "host"] and rows[0][-1] == OS_USER and rows[1][-1] == "N/A", out
        wait_for(lambda: status_of(root, STATIC) == "online", 40, "the static leaf never came online", root, static)
        # the dynamic leaf reconnected after the root's restart
        wait_for(lambda: status_of(root, LEAF) == "online", 40, "the dynamic leaf never came back", root)
        wait_for(lambda: "testnode" in static.tctl("nodes", "ls").stdout, 30, "no node", static)
        res = leaf_ssh(root, STATIC, "echo", "static-ok")
        assert res.returncode == 0 and res.stdout.strip() == "static-ok", res.stderr  # type: ignore[attr-defined]
        # OpenSSH through the tsh config block: NODE.LEAF
        cfg = os.path.join(root.root, "ssh_config")
        with open(cfg, "w") as f:
            f.write(root.tsh("config").stdout)
        import subprocess

        res2 = subprocess.run(["ssh", "-F", cfg, "-p", str(static.ports["node"]), f"{OS_USER}@testnode.{STATIC}",
                               "echo", "openssh-ok"], capture_output=True, text=True, timeout=60,
                              env=env_with(TELEPORT_HOME=root.home))
        assert res2.returncode == 0 and res2.stdout.strip() == "openssh-ok", res2.stderr
    finally:
        root.auth_extra = ""
        destroy(static)
