"""The node and proxy SSH servers offer no algorithm that ssh-audit fails (issue 7, weak
algorithms): a real auth+proxy+node process audited over the network."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import Cluster, destroy, new_cluster, wait_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("ssh_audit") is None,
        reason="ssh-audit is not installed (pip install ssh-audit, or the test extra)",
    ),
]

WEAK = {
    "diffie-hellman-group14-sha1", "diffie-hellman-group1-sha1", "diffie-hellman-group-exchange-sha1",
    "ecdh-sha2-1.3.132.0.10", "hmac-sha1", "hmac-sha1-etm@openssh.com", "umac-64@openssh.com",
    "umac-64-etm@openssh.com", "ssh-rsa",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = new_cluster(roles="auth,proxy,node")
    try:
        c.start()
        wait_port(c.ports["node"], 20, c.proc)
        yield c
    finally:
        destroy(c)


def audit(port: int) -> dict[str, Any]:
    res = subprocess.run(
        [sys.executable, "-m", "ssh_audit", "-j", "-p", str(port), "127.0.0.1"],
        capture_output=True, text=True, timeout=120,
    )
    try:
        return dict(json.loads(res.stdout))
    except json.JSONDecodeError:
        raise AssertionError(f"ssh-audit gave no JSON (exit {res.returncode}):\n{res.stdout}\n{res.stderr}") from None


def failures(report: dict[str, Any]) -> list[str]:
    """Every algorithm ssh-audit marks as "fail", with why."""
    out = []
    for section in ("kex", "key", "enc", "mac"):
        for alg in report.get(section, []):
            notes = alg.get("notes", {})
            if notes.get("fail"):
                out.append(f"{section} {alg.get('algorithm')}: {'; '.join(notes['fail'])}")
    return out


def offered(report: dict[str, Any]) -> set[str]:
    return {str(a.get("algorithm")) for s in ("kex", "key", "enc", "mac") for a in report.get(s, [])}


@pytest.mark.parametrize("which", ["node", "ssh"])
def test_no_failing_algorithms(cluster: Cluster, which: str) -> None:
    started = time.monotonic()
    report = audit(cluster.ports[which])
    assert report.get("kex"), report  # the audit really talked to the server
    assert failures(report) == []
    assert not offered(report) & WEAK, offered(report) & WEAK
    assert time.monotonic() - started < 120
