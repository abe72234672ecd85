"""CACHES: a proxy and a node keep serving with every auth server down (~60 s, real processes).

An auth server alone, a proxy and a node each in their own process and data_dir. With auth
killed (SIGKILL) and then frozen (SIGSTOP): a logged-in user still lists nodes and runs commands;
the node, restarted while auth is down, starts from its cache on disk; a new login fails saying
why; a role change made before the outage applies (the access decision is made from the cached
roles). The sessions' audit events, buffered on disk during the outage, reach auth when it returns.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml

from tests.helpers import (
    Cluster,
    ServiceProc,
    cli,
    destroy,
    env_with,
    new_cluster,
    os_account,
)

pytestmark = pytest.mark.integration

PASSWORD = "secret-pass-1"
TOKEN = "static-join-token-0123456789abcdef"


class Outage:
    def __init__(self, auth: Cluster, proxy: ServiceProc, node: ServiceProc, home: str) -> None:
        self.auth, self.proxy, self.node, self.home = auth, proxy, node, home

    def tsh(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        t0 = time.monotonic()
        res = subprocess.run([*cli("tsh"), "--insecure", f"--proxy={self.proxy.web_addr}", *args],
                             input=input, capture_output=True, text=True, timeout=120,
                             env=env_with(TELEPORT_HOME=self.home))
        print(f"tsh {' '.join(args[:2])}: exit {res.returncode} in {time.monotonic() - t0:.1f} s")
        return res

    def login(self) -> subprocess.CompletedProcess[str]:
        return self.tsh("--user=carol", "login", input=f"{PASSWORD}\n")

    def put_role(self, spec: dict[str, Any]) -> None:
        doc = {"kind": "role", "version": "v3", "metadata": {"name": "outage-r"}, "spec": spec}
        path = os.path.join(self.auth.root, "outage-r.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        self.auth.tctl("create", "-f", path)

    def cached_roles(self, service: ServiceProc) -> dict[str, Any]:
        path = os.path.join(service.data_dir, "cache", f"{service.role}.json")
        if not os.path.exists(path):
            return {}
        with open(path) as f:
            return {r["metadata"]["name"]: r["spec"] for r in json.load(f)["roles"]}


def _wait(pred: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def outage() -> Iterator[Outage]:
    if os.geteuid() != 0:
        pytest.skip("the node serves the root login only when run as root")
    with os_account("tpcache"):
        yield from _outage()


def _outage() -> Iterator[Outage]:
    auth = new_cluster(roles="auth", second_factor="off", static_token=TOKEN)
    proxy = node = None
    try:
        auth.start()
        proxy = ServiceProc("cproxy", "proxy", [auth.auth_addr], TOKEN)
        node = ServiceProc("cnode", "node", [auth.auth_addr], TOKEN, labels={"env": "outage"})
        proxy.start()
        node.start()
        o = Outage(auth, proxy, node, os.path.join(auth.root, "tsh-home"))
        o.put_role({"allow": {"logins": ["root", "tpcache"], "node_labels": {"env": "outage"}}})
        out = auth.tctl("users", "add", "carol", "--roles=outage-r", "--logins=root,tpcache").stdout
        url = next(w for w in out.split() if w.startswith("https://"))
        res = subprocess.run([*cli("tsh"), "--insecure", "signup", url], input=f"{PASSWORD}\n{PASSWORD}\n",
                             capture_output=True, text=True, timeout=60, env=env_with(TELEPORT_HOME=o.home))
        assert res.returncode == 0, res.stderr
        yield o
    finally:
        for s in (proxy, node):
            if s is not None:
                s.destroy()
        if auth.proc is not None and auth.proc.poll() is None:
            auth.proc.send_signal(signal.SIGCONT)
        destroy(auth)


def _ssh(o: Outage, login: str, word: str) -> subprocess.CompletedProcess[str]:
    return o.tsh("ssh", f"{login}@cnode", "echo", word)


def _events(o: Outage) -> str:
    return o.auth.tctl("events", "ls", "--format=json", check=False).stdout


def test_serves_from_the_cache_with_auth_down(outage: Outage) -> None:
    o = outage
    assert o.login().returncode == 0
    res = o.tsh("ls")
    assert res.returncode == 0 and "cnode" in res.stdout, res.stdout + res.stderr
    assert _ssh(o, "root", "before-outage").stdout.strip() == "before-outage"
    for svc in (o.proxy, o.node):
        path = os.path.join(svc.data_dir, "cache", f"{svc.role}.json")
        _wait(lambda p=path: os.path.exists(p), 30, f"the {svc.role}'s cache file")  # type: ignore[misc]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert "password" not in open(path).read().lower()

    # the role change made before the outage: root is no longer allowed, tpcache still is
    o.put_role({"allow": {"logins": ["tpcache"], "node_labels": {"env": "outage"}}})
    for svc in (o.proxy, o.node):
        _wait(lambda s=svc: o.cached_roles(s).get("outage-r", {}).get("allow", {}).get("logins")  # type: ignore[misc]
              == ["tpcache"], 30, f"the role change in the {svc.role}'s cache")

    assert o.auth.proc is not None
    o.auth.proc.send_signal(signal.SIGKILL)
    o.auth.proc.wait(timeout=10)

    res = o.tsh("ls")
    assert res.returncode == 0 and "cnode" in res.stdout, res.stdout + res.stderr + o.proxy.log()
    res = _ssh(o, "tpcache", "during-outage")
    assert res.returncode == 0 and res.stdout.strip() == "during-outage", res.stderr + o.node.log()
    res = _ssh(o, "root", "refused")
    assert res.returncode != 0 and "refused login 'root'" in res.stderr, res.stdout + res.stderr

    # a node restarted while auth is down starts from its cache
    o.node.stop()
    o.node.start()
    res = _ssh(o, "tpcache", "after-node-restart")
    assert res.returncode == 0 and res.stdout.strip() == "after-node-restart", res.stderr + o.node.log()
    assert "started from the cached cluster state" in o.node.log(tail=10**7)

    # a new login cannot work without auth, and says so
    res = o.login()
    assert res.returncode != 0
    assert "cannot log in now: the cluster's auth service cannot be reached" in res.stderr, res.stderr

    # auth returns: the events buffered on disk during the outage are delivered
    o.auth.start()
    _wait(lambda: "during-outage" in _events(o) or "after-node-restart" in _events(o), 60,
          "the outage's events in the audit log")


def test_serves_from_the_cache_with_auth_frozen(outage: Outage) -> None:
    """SIGSTOP: connections to auth hang instead of failing; the proxy stops waiting for it."""
    o = outage
    assert o.login().returncode == 0
    assert o.auth.proc is not None
    fallbacks = o.proxy.log(tail=10**7).count("deciding from the cache")
    o.auth.proc.send_signal(signal.SIGSTOP)
    try:
        res = o.tsh("ls")
        assert res.returncode == 0 and "cnode" in res.stdout, res.stdout + res.stderr
        res = _ssh(o, "tpcache", "while-frozen")
        assert res.returncode == 0 and res.stdout.strip() == "while-frozen", res.stderr
        # the proxy asked the frozen auth, gave up after CACHE_FALLBACK_AFTER, used its cache
        assert o.proxy.log(tail=10**7).count("deciding from the cache") > fallbacks
    finally:
        o.auth.proc.send_signal(signal.SIGCONT)
