"""The node simulator of bench/ (issue 12): its agents are real members of the cluster. 100
agents in two processes join with a token, heartbeat with their labels, are listed by tctl and
tsh, and a session to one of them runs a command on it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.helpers import SRC, Cluster, destroy, env_with, new_cluster, os_account

NODESIM = os.path.join(os.path.dirname(SRC), "bench", "nodesim.py")
AGENTS = 100
OS_USER = "tpnodesim"


@pytest.fixture(scope="module")
def sim() -> Iterator[tuple[Cluster, subprocess.Popen[str]]]:
    with os_account(OS_USER):
        c = new_cluster(roles="auth,proxy")
        data = tempfile.mkdtemp(prefix="nodesim-")
        proc: subprocess.Popen[str] | None = None
        try:
            c.start()
            c.add_user("sim", OS_USER)
            c.login("sim")
            out = c.tctl("nodes", "add", "--ttl=10m").stdout
            token = out.split("--token=")[1].split()[0]
            pin = out.split("--ca-pin=")[1].split()[0]
            proc = subprocess.Popen(
                [sys.executable, NODESIM, "--auth", f"127.0.0.1:{c.ports['auth']}",
                 "--token", token, "--ca-pin", pin, "--agents", str(AGENTS), "--workers", "2",
                 "--data-dir", data, "--report", "1"],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_with(),
                start_new_session=True)
            yield c, proc
        finally:
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            shutil.rmtree(data, ignore_errors=True)
            destroy(c)


def _sim_nodes(c: Cluster) -> list[dict[str, object]]:
    nodes = json.loads(c.tsh("ls", "--format=json").stdout)
    return [n for n in nodes if n["metadata"]["labels"].get("sim") == "sim"]  # type: ignore[index]


def test_agents_join_heartbeat_and_are_listed(sim: tuple[Cluster, subprocess.Popen[str]]) -> None:
    c, proc = sim
    deadline = time.time() + 120
    nodes: list[dict[str, object]] = []
    while len(nodes) < AGENTS:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.time() < deadline, f"only {len(nodes)} of {AGENTS} agents registered\n{c.log()}"
        time.sleep(1)
        nodes = _sim_nodes(c)
    names = {n["spec"]["hostname"] for n in nodes}  # type: ignore[index]
    assert names == {f"sim-{i:05d}" for i in range(AGENTS)}
    # each agent holds its own identity: distinct host ids and listeners
    assert len({n["metadata"]["name"] for n in nodes}) == AGENTS  # type: ignore[index]
    assert len({n["spec"]["addr"] for n in nodes}) == AGENTS  # type: ignore[index]
    # labels as a heartbeat carries them, and label filters see them
    assert "sim-00042" in c.tsh("ls", "group=g42").stdout
    assert "sim-00042" in c.tctl("nodes", "ls").stdout


def test_a_session_to_a_simulated_node_runs_on_it(sim: tuple[Cluster, subprocess.Popen[str]]) -> None:
    c, _ = sim
    deadline = time.time() + 120
    while "sim-00007" not in c.tsh("ls").stdout:
        assert time.time() < deadline, "agent sim-00007 never registered"
        time.sleep(1)
    out = c.tsh("ssh", f"{OS_USER}@sim-00007", "echo", "sim-$((6*7))", "&&", "whoami")
    assert out.stdout.split() == ["sim-42", OS_USER]
    events = c.tctl("events", "ls", "--format=json").stdout
    assert "sim-00007" in events  # the agent emitted the session's audit events
