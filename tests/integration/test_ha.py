"""HIGH AVAILABILITY, with real processes (~60 s): a 3-member etcd cluster, two auth servers on
it, two proxies and a node that lists only the first auth server.

1. The node and proxies learn both auth servers from the cluster (authservers.json, 0600), and a
   user logged in through one proxy uses the other (proxies are stateless).
2. A manual user CA rotation, its phases moved on alternating auth servers.
3. While logins, `tsh ls` and `tsh ssh` run in a loop: kill auth server 1, then the etcd leader,
   then proxy 1. No operation fails after the documented retry: one retry of an operation, and
   for a dead proxy the client's switch to the other proxy (tsh has one proxy per profile).
   Every command that ran is in the audit log the auth servers share (data_dir/log on one file
   system, as the reference's HA setup has it) exactly once, and tctl events ls on either shows it.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers import (
    Cluster,
    ServiceProc,
    cli,
    destroy,
    env_with,
    new_cluster,
)
from tests.unit.backend.conftest import (
    EtcdMember,
    etcd_leader,
    start_etcd_cluster,
    stop_etcd_cluster,
)

pytestmark = [pytest.mark.integration, pytest.mark.etcd]

PASSWORD = "secret-pass-1"
TOKEN = "static-join-token-0123456789abcdef"


@dataclass
class HA:
    etcd: list[EtcdMember]
    auths: list[Cluster]
    proxies: list[ServiceProc]
    node: ServiceProc
    home: str
    counts: dict[str, int] = field(default_factory=lambda: {"tried": 0, "failed": 0, "retried": 0})
    # the word of every `tsh ssh ... echo WORD` tried, and whether it succeeded
    commands: dict[str, bool] = field(default_factory=dict)

    def tsh(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli("tsh"), *args], input=input, capture_output=True, text=True,
                              timeout=60, env=env_with(TELEPORT_HOME=self.home))


def _wait(pred: object, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def ha() -> Iterator[HA]:
    if os.geteuid() != 0:
        pytest.skip("the node serves the root login only when run as root")
    directory = Path(tempfile.mkdtemp(prefix="teleport-etcd-ha-"))
    auths: list[Cluster] = []
    services: list[ServiceProc] = []
    members: list[EtcdMember] = []
    try:
        members = start_etcd_cluster(directory, 3)
        peers = ", ".join(f'"{m.url}"' for m in members)
        # the reference's HA setup: one file system shared by the auth servers at data_dir/log
        shared_log = directory / "shared-log"
        shared_log.mkdir(mode=0o750)
        for _ in range(2):
            a = new_cluster(roles="auth", cluster_name="ha-cluster", static_token=TOKEN,
                            second_factor="off",
                            storage=f"{{type: etcd, peers: [{peers}], prefix: /tp-ha}}")
            auths.append(a)
            os.makedirs(a.data_dir, mode=0o700, exist_ok=True)
            os.symlink(shared_log, os.path.join(a.data_dir, "log"))
            a.start()
        addrs = [a.auth_addr for a in auths]
        proxies = [ServiceProc(f"proxy{i}", "proxy", addrs, TOKEN) for i in (1, 2)]
        node = ServiceProc("hanode", "node", addrs[:1], TOKEN)  # knows only auth 1 from its file
        services += [*proxies, node]
        for s in services:
            s.start()
        home = os.path.join(auths[0].root, "tsh-home")
        ha = HA(members, auths, proxies, node, home)
        out = auths[0].tctl("users", "add", "hauser", "--roles=admin", "--logins=root").stdout
        url = next(w for w in out.split() if w.startswith("https://"))
        res = ha.tsh("--insecure", "signup", url, input=f"{PASSWORD}\n{PASSWORD}\n")
        assert res.returncode == 0, res.stderr
        yield ha
    finally:
        for s in services:
            s.destroy()
        for a in auths:
            destroy(a)
        stop_etcd_cluster(members)
        shutil.rmtree(directory, ignore_errors=True)


def login(ha: HA, proxy: ServiceProc) -> subprocess.CompletedProcess[str]:
    return ha.tsh("--insecure", f"--proxy={proxy.web_addr}", "--user=hauser", "login",
                  input=f"{PASSWORD}\n")


def test_nodes_and_proxies_learn_auth_servers_and_proxies_are_stateless(ha: HA) -> None:
    cache = os.path.join(ha.node.data_dir, "authservers.json")
    # the node was configured with auth 1 only; the cluster told it about auth 2
    _wait(lambda: os.path.exists(cache) and
          ha.auths[1].auth_addr in json.load(open(cache))["auth_servers"], 20, "authservers.json")
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    assert set(json.load(open(cache))["auth_servers"]) == {a.auth_addr for a in ha.auths}
    # logged in through proxy 1, the same profile's key works through proxy 2
    assert login(ha, ha.proxies[0]).returncode == 0
    res = ha.tsh("--insecure", f"--proxy={ha.proxies[1].web_addr}", "ls")
    assert res.returncode == 0 and "hanode" in res.stdout, res.stdout + res.stderr
    res = ha.tsh("--insecure", f"--proxy={ha.proxies[1].web_addr}", "ssh", "root@hanode",
                 "echo", "via-proxy-2")
    assert res.returncode == 0 and "via-proxy-2" in res.stdout, res.stdout + res.stderr


def test_user_ca_rotation_with_two_auth_servers(ha: HA) -> None:
    """A manual user CA rotation, each phase moved on a different auth server: logins through
    both proxies (signed by whichever auth server answers) and sessions work in every phase, and
    after the last one the old certificate is refused."""
    assert login(ha, ha.proxies[0]).returncode == 0
    old_home = ha.home + "-before-rotation"
    shutil.copytree(ha.home, old_home)

    def ssh_ok(proxy: ServiceProc, home: str, word: str) -> bool:
        res = subprocess.run([*cli("tsh"), "--insecure", f"--proxy={proxy.web_addr}", "ssh",
                              "root@hanode", "echo", word], capture_output=True, text=True,
                             timeout=60, env=env_with(TELEPORT_HOME=home))
        return res.returncode == 0 and word in res.stdout

    try:
        for i, phase in enumerate(["init", "update_clients", "update_servers", "standby"]):
            out = ha.auths[i % 2].tctl("auth", "rotate", "--manual", "--type=user",
                                       f"--phase={phase}").stdout
            assert f"user CA: rotation phase is now {phase}" in out, out
            for proxy in ha.proxies:
                # the other auth server and the caches pick the phase up within a second or so
                _wait(lambda p=proxy, ph=phase: login(ha, p).returncode == 0 and  # type: ignore[misc]
                      ssh_ok(p, ha.home, f"rot-{ph}"), 30, f"login and ssh in phase {phase}")
                if phase != "standby":
                    assert ssh_ok(proxy, old_home, f"old-{phase}"), phase
        for proxy in ha.proxies:
            _wait(lambda p=proxy: not ssh_ok(p, old_home, "refused"), 30,  # type: ignore[misc]
                  "the old certificate to be refused")
        for a in ha.auths:
            assert "user CA: standby" in a.tctl("status").stdout
    finally:
        shutil.rmtree(old_home, ignore_errors=True)


def test_kill_auth_etcd_member_and_proxy_under_load(ha: HA) -> None:
    """The loop: login, ls, ssh through the current proxy; each operation is retried once, and a
    proxy that cannot be reached makes the client switch to the other proxy."""
    proxies = list(ha.proxies)
    failures: list[str] = []

    def op(name: str, *args: str, **kw: str) -> None:
        for attempt in range(2):
            ha.counts["tried"] += 1
            proxy = proxies[0]
            expect = kw.get("expect", "")
            if name == "login":
                res = login(ha, proxy)
            elif name == "ssh":
                # a word of its own per attempt: its exec event is counted below
                expect = f"ha-{len(ha.commands)}"
                res = ha.tsh("--insecure", f"--proxy={proxy.web_addr}", *args, expect)
            else:
                res = ha.tsh("--insecure", f"--proxy={proxy.web_addr}", *args)
            ok = res.returncode == 0 and expect in res.stdout
            if name == "ssh":
                ha.commands[expect] = ok
            if ok:
                return
            if proxy.proc is not None and proxy.proc.poll() is not None and len(proxies) > 1:
                proxies.pop(0)  # the client's failover to the next proxy
            if attempt == 0:
                ha.counts["retried"] += 1
                time.sleep(0.5)
        ha.counts["failed"] += 1
        failures.append(f"{name}: {res.returncode} {res.stdout[-300:]} {res.stderr[-500:]}")

    def rounds(n: int) -> None:
        for _ in range(n):
            op("login")
            op("ls", "ls", expect="hanode")
            op("ssh", "ssh", "root@hanode", "echo")

    rounds(2)
    ha.auths[0].proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    ha.auths[0].proc.wait(timeout=10)  # type: ignore[union-attr]
    rounds(3)
    leader = etcd_leader(ha.etcd)
    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait(timeout=10)
    rounds(3)
    ha.proxies[0].kill()
    rounds(3)
    print(f"\nHA loop: {ha.counts['tried']} operations tried, {ha.counts['failed']} failed, "
          f"{ha.counts['retried']} retried")
    assert ha.counts["failed"] == 0, failures

    # every command that ran is in the audit log of the auth servers exactly once (the node
    # buffers what it could not deliver and sends it to whichever auth server answers)
    expected = [w for w, ok in ha.commands.items() if ok]

    def found() -> dict[str, int]:
        counts: dict[str, int] = {}
        # both auth servers' data_dir/log are the one shared directory: read each file once
        paths = {os.path.realpath(p) for a in ha.auths
                 for p in glob.glob(os.path.join(a.data_dir, "log", "*.log"))}
        for path in sorted(paths):
            with open(path, errors="replace") as f:
                for line in f:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    cmd = str(ev.get("command", "")) if ev.get("event") == "exec" else ""
                    if cmd.startswith("echo ha-"):
                        word = cmd.split()[-1]
                        counts[word] = counts.get(word, 0) + 1
        return counts

    _wait(lambda: all(w in found() for w in expected), 90, "every command's exec event")
    counts = found()
    print(f"HA events: {len(expected)} exec events expected, {sum(counts.get(w, 0) for w in expected)} "
          f"found ({len(counts)} distinct commands logged)")
    assert {w: counts.get(w, 0) for w in expected} == {w: 1 for w in expected}
    assert all(n == 1 for n in counts.values()), counts
    # tctl events ls on any live auth server (auth 1 was killed) shows every command, each once
    live = [a for a in ha.auths if a.proc is not None and a.proc.poll() is None]
    assert live
    for a in live:
        listed = a.tctl("events", "ls", "--format=json").stdout
        words = [str(e.get("command", "")).split()[-1] for e in json.loads(listed)
                 if e.get("event") == "exec" and str(e.get("command", "")).startswith("echo ha-")]
        assert sorted(words) == sorted(expected), (a.auth_addr, words)
