"""What N real nodes cost one auth server (issue 12's first figures).

Starts a real auth+proxy process (SQLite by default), then bench/nodesim.py with N agents in W
processes, and reports:
  - join: time until every agent has joined (token -> host identity -> first heartbeat);
  - steady state over one heartbeat interval: the auth process's CPU (share of one core) and RSS,
    and the heartbeat round trip (sent -> stored -> answered) p50 / p99 across agents;
  - `tsh ls` and `tctl nodes ls` wall time at N nodes (median of 3 whole processes);
  - auth restart: time from auth being back until every agent has had a heartbeat answered again.

Run: python bench/bench_nodes.py [--agents 10000] [--workers 4] [--window 60]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.helpers import cli, destroy, env_with, new_cluster  # noqa: E402

NODESIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nodesim.py")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Reports:
    """The simulator's JSON lines, read in a thread; `latest` is the newest."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.latest: dict[str, Any] = {}
        self.all: list[tuple[float, dict[str, Any]]] = []
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                self.latest = json.loads(line)
            except ValueError:
                continue
            self.all.append((time.time(), self.latest))


def timed(argv: list[str], home: str) -> float:
    t = time.perf_counter()
    subprocess.run(argv, env=env_with(TELEPORT_HOME=home), check=True, capture_output=True,
                   stdin=subprocess.DEVNULL, timeout=300)
    return time.perf_counter() - t


def wait_for(what: str, cond: Any, timeout: float) -> float:
    t = time.time()
    while not cond():
        if time.time() - t > timeout:
            raise SystemExit(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.5)
    return time.time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--window", type=float, default=60.0, help="steady-state window (s)")
    args = ap.parse_args()

    c = new_cluster(roles="auth,proxy")
    data = tempfile.mkdtemp(prefix="nodesim-")
    sim: subprocess.Popen[str] | None = None
    try:
        c.start()
        c.add_user("bench", "root")
        c.login("bench")
        out = c.tctl("nodes", "add", "--ttl=30m").stdout
        token = out.split("--token=")[1].split()[0]
        pin = out.split("--ca-pin=")[1].split()[0]
        sim = subprocess.Popen(
            [sys.executable, NODESIM, "--auth", f"127.0.0.1:{c.ports['auth']}", "--token", token,
             "--ca-pin", pin, "--agents", str(args.agents), "--workers", str(args.workers),
             "--data-dir", data, "--report", "2", "--json"],
            stdout=subprocess.PIPE, text=True, env=env_with(), start_new_session=True)
        rep = Reports(sim)
        join_s = wait_for("every agent to join",
                          lambda: rep.latest.get("running", 0) + rep.latest.get("failed", 0) >= args.agents,
                          timeout=3600)
        print(f"{args.agents} agents in {args.workers} processes: joined in {join_s:.1f} s "
              f"({rep.latest.get('failed', 0)} failed {rep.latest.get('errors') or ''})")
        assert c.proc is not None
        pid = c.proc.pid
        cpu0, t0 = cpu_seconds(pid), time.time()
        time.sleep(args.window)
        cpu = (cpu_seconds(pid) - cpu0) / (time.time() - t0)
        window = [r for at, r in rep.all if at >= t0]
        p99s = [r["lag_p99"] for r in window if not math.isnan(r["lag_p99"])]
        p50s = [r["lag_p50"] for r in window if not math.isnan(r["lag_p50"])]
        beats = sum(r["beats"] for r in window)
        print(f"steady state over {args.window:.0f} s: auth+proxy process {cpu:.2f} of a core, "
              f"RSS {rss_mb(pid):.0f} MB; {beats} heartbeats; round trip p50 "
              f"{statistics.median(p50s) * 1000 if p50s else float('nan'):.0f} ms, p99 "
              f"{max(p99s) * 1000 if p99s else float('nan'):.0f} ms; simulator RSS "
              f"{rep.latest.get('rss_mb', 0):.0f} MB ({rep.latest.get('rss_mb', 0) / max(1, args.agents) * 1024:.0f} KB/agent)")
        tsh = [statistics.median(timed([*cli("tsh"), "ls"], c.home) for _ in range(3))]
        tctl = [statistics.median(
            timed([*cli("tctl"), "-c", c.config_path, "nodes", "ls"], c.home) for _ in range(3))]
        print(f"at {args.agents} nodes: tsh ls {tsh[0]:.2f} s, tctl nodes ls {tctl[0]:.2f} s")
        c.stop()
        time.sleep(2)
        c.start()
        back = time.time()
        again = wait_for("every agent to heartbeat after the restart",
                         lambda: rep.latest.get("oldest_ok", 0) > back, timeout=1800)
        print(f"auth restarted: every agent answered again {again:.1f} s after auth was back")
    finally:
        if sim is not None and sim.poll() is None:
            os.killpg(sim.pid, signal.SIGTERM)
            try:
                sim.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(sim.pid, signal.SIGKILL)
        shutil.rmtree(data, ignore_errors=True)
        destroy(c)


if __name__ == "__main__":
    main()
