"""`tsh bench` against real processes: every scheduled session is counted, exec and interactive
both run the command on the node, failures are counted (not fatal), and the export has a line per
session."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator

import pytest

from tests.helpers import Cluster, destroy, new_cluster, os_account

OS_USER = "tpbench"


@pytest.fixture(scope="module")
def bc() -> Iterator[Cluster]:
    with os_account(OS_USER):
        c = new_cluster(roles="auth,proxy,node")
        try:
            c.start()
            c.add_user("ben", OS_USER)
            c.login("ben")
            deadline = time.time() + 20
            while "testnode" not in c.tsh("ls").stdout:
                assert time.time() < deadline, "the node never registered\n" + c.log()
                time.sleep(0.3)
            yield c
        finally:
            destroy(c)


def _target(c: Cluster) -> list[str]:
    return ["-p", str(c.ports["node"]), f"{OS_USER}@testnode"]


def test_bench_exec_counts_every_session_and_exports(bc: Cluster) -> None:
    marker = os.path.join(tempfile.gettempdir(), f"tpbench-{os.getpid()}")
    with tempfile.TemporaryDirectory() as d:
        export = os.path.join(d, "bench.csv")
        out = bc.tsh("bench", "--rate=8", "--duration=1s", f"--export={export}", *_target(bc),
                     f"echo x >> {marker}")
        try:
            assert "* Requests originated: 8" in out.stdout, out.stdout + out.stderr
            assert "* Requests failed: 0" in out.stdout, out.stdout
            for label in ("50", "95", "99.9", "max"):
                assert any(line.startswith(label + " ") for line in out.stdout.splitlines()), out.stdout
            # the command really ran on the node, once per session
            with open(marker) as f:
                assert f.read().count("x") == 8
            rows = open(export).read().splitlines()
            assert rows[0] == "due_s,latency_ms,ok,error" and len(rows) == 9
            assert all(r.split(",")[2] == "1" for r in rows[1:])
        finally:
            if os.path.exists(marker):
                os.unlink(marker)


def test_bench_interactive_runs_the_command_in_a_shell(bc: Cluster) -> None:
    out = bc.tsh("bench", "--interactive", "--rate=3", "--duration=1s", *_target(bc), "true")
    assert "* Requests originated: 3" in out.stdout and "* Requests failed: 0" in out.stdout, \
        out.stdout + out.stderr


def test_bench_counts_failures_and_exits_nonzero_when_all_fail(bc: Cluster) -> None:
    out = bc.tsh("bench", "--rate=4", "--duration=1s", *_target(bc), "exit 3", check=False)
    assert out.returncode == 1
    assert "* Requests failed: 4" in out.stdout and "4 x exit status 3" in out.stdout, out.stdout


def test_bench_refuses_bad_arguments(bc: Cluster) -> None:
    for args, says in (
        (["--rate=0", *_target(bc), "true"], "--rate"),
        (["--duration=soon", *_target(bc), "true"], "duration"),
        ([*_target(bc)], "needs a command"),
    ):
        out = bc.tsh("bench", *args, check=False)
        assert out.returncode != 0 and says in out.stderr, (args, out.stderr)
