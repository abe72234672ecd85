"""Node simulator: N real node agents in a few processes, for measuring what nodes cost a cluster.

Every agent is a real member, built from the same code as `teleport start --roles=node`: it joins
with a token (auth issues it a host identity: key, SSH host certificate, x509), runs a
`NodeService` (its own SSH listener on loopback, heartbeats with static labels on the normal
interval, CA refresh, the audit spool and recording uploader), and answers SSH sessions like any
node. Only the process is shared: WORKERS processes run AGENTS/WORKERS agents each, in one event
loop per process, each agent with its own data directory, identity and auth connection.

Each worker prints one JSON line per REPORT seconds: agents joined and running, join failures,
and the heartbeat round trips of the last period (sent -> stored and answered by auth). The parent
sums them and prints a line per period; `--duration` ends the run (0: until Ctrl-C).

Run (from the repository root, against a running auth server and a join token):
    tctl nodes add --ttl=1h            # prints the token and the CA pin
    python bench/nodesim.py --auth 127.0.0.1:3025 --token TOKEN --ca-pin PIN \
        --agents 10000 --workers 4 --data-dir /tmp/nodesim
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

JOIN_CONCURRENCY = 16  # joins in flight per worker: a fleet coming up, not a stampede


def _config_text(name: str, data_dir: str, auth: str, labels: dict[str, str]) -> str:
    label_lines = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in labels.items())
    return (
        "teleport:\n"
        f"  nodename: {name}\n"
        f"  data_dir: {data_dir}\n"
        f"  auth_servers: [{auth}]\n"
        "  log: {output: stderr, severity: ERROR}\n"
        "auth_service: {enabled: no}\n"
        "proxy_service: {enabled: no}\n"
        "ssh_service:\n"
        "  enabled: yes\n"
        "  listen_addr: 127.0.0.1:0\n"
        "  labels:\n" + label_lines
    )


class Agent:
    """One simulated node: a real join, then a real NodeService."""

    def __init__(self, index: int, args: argparse.Namespace, lags: list[float]) -> None:
        self.name = f"{args.prefix}-{index:05d}"
        self.data_dir = os.path.join(args.data_dir, self.name)
        labels = {"sim": args.prefix, "group": f"g{index % 100}"}
        for pair in args.label:
            k, _, v = pair.partition("=")
            labels[k] = v
        self.args = args
        self.labels = labels
        self.lags = lags
        self.service: Any = None
        self.last_ok = 0.0  # time.time() of the last heartbeat auth answered

    async def start(self) -> None:
        from teleport.auth.client import AuthClient, client_ssl_context
        from teleport.config.fileconf import parse_config_text
        from teleport.node.service import NodeService
        from teleport.service import identity as idstore

        os.makedirs(self.data_dir, mode=0o700, exist_ok=True)
        cfg = parse_config_text(_config_text(self.name, self.data_dir, self.args.auth, self.labels))
        ident = idstore.load_identity(self.data_dir, "node")
        if ident is None:
            ident = await idstore.join_cluster(
                [self.args.auth], self.args.token, "node", str(uuid.uuid4()), self.name, [],
                self.args.ca_pin or None)
            idstore.save_identity(self.data_dir, ident)
        cert, key = idstore.identity_tls_files(self.data_dir, ident)
        auth = AuthClient([self.args.auth], client_ssl_context(ident.tls_ca, cert, key))
        beat = auth.heartbeat
        lags = self.lags

        async def timed_heartbeat(resource: dict[str, Any]) -> Any:
            t = time.monotonic()
            out = await beat(resource)
            lags.append(time.monotonic() - t)
            self.last_ok = time.time()
            return out

        auth.heartbeat = timed_heartbeat  # type: ignore[method-assign]
        self.service = NodeService(cfg, ident, auth, self.data_dir)
        await self.service.start()
        self._serve = asyncio.create_task(self.service.serve_until_cancelled())


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s))) - 1))]


async def worker(args: argparse.Namespace, first: int, count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    lags: list[float] = []
    agents = [Agent(first + i, args, lags) for i in range(count)]
    running: list[Agent] = []
    failures: dict[str, int] = {}
    gate = asyncio.Semaphore(JOIN_CONCURRENCY)

    async def bring_up(a: Agent) -> None:
        async with gate:
            try:
                await a.start()
                running.append(a)
            except Exception as exc:  # counted and reported, the others go on
                text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                failures[text] = failures.get(text, 0) + 1

    started = time.monotonic()
    ups = asyncio.gather(*(bring_up(a) for a in agents))
    while True:
        done = ups.done()
        period, lags[:] = list(lags), []
        print(json.dumps({
            "t": round(time.monotonic() - started, 1), "running": len(running),
            "failed": sum(failures.values()), "errors": failures, "beats": len(period),
            "lag_p50": _percentile(period, 50), "lag_p99": _percentile(period, 99),
            "lag_max": max(period, default=float("nan")),
            "rss_mb": _rss_mb(),
            # the oldest "last heartbeat answered" among running agents (after an auth restart,
            # every agent is back once this is later than the restart)
            "oldest_ok": min((a.last_ok for a in running), default=0.0),
        }), flush=True)
        if done and args.once:
            return
        await asyncio.sleep(args.report)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _known(values: Any) -> list[float]:
    return [v for v in values if v == v]  # NaN: no heartbeat in that worker's period


def _fmt(x: float) -> str:
    return "-" if x != x else f"{x * 1000:.0f}ms"


def parent(args: argparse.Namespace) -> int:
    per = [args.agents // args.workers + (1 if i < args.agents % args.workers else 0)
           for i in range(args.workers)]
    procs = []
    first = 0
    os.makedirs(args.data_dir, mode=0o700, exist_ok=True)
    for n in per:
        argv = [sys.executable, os.path.abspath(__file__), "--worker", f"{first}:{n}",
                *sys.argv[1:]]
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                                      start_new_session=True))
        first += n
    latest: dict[int, dict[str, Any]] = {}

    def stop(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    deadline = time.time() + args.duration if args.duration else None
    try:
        import selectors

        sel = selectors.DefaultSelector()
        for i, p in enumerate(procs):
            assert p.stdout is not None
            sel.register(p.stdout, selectors.EVENT_READ, i)
        last_print = 0.0
        while deadline is None or time.time() < deadline:
            for key, _ in sel.select(timeout=1.0):
                line = key.fileobj.readline()  # type: ignore[union-attr]
                if not line:
                    sel.unregister(key.fileobj)
                    continue
                latest[key.data] = json.loads(line)
            if not sel.get_map():
                break
            if latest and time.time() - last_print >= args.report:
                last_print = time.time()
                rows = list(latest.values())
                errors: dict[str, int] = {}
                for r in rows:
                    for k, v in r["errors"].items():
                        errors[k] = errors.get(k, 0) + v
                if args.json:
                    print(json.dumps({
                        "t": max(r["t"] for r in rows),
                        "running": sum(r["running"] for r in rows),
                        "failed": sum(r["failed"] for r in rows), "errors": errors,
                        "beats": sum(r["beats"] for r in rows),
                        "lag_p99": max(_known(r["lag_p99"] for r in rows), default=float("nan")),
                        "lag_p50": statistics.median(_known(r["lag_p50"] for r in rows) or [float("nan")]),
                        "rss_mb": sum(r["rss_mb"] for r in rows),
                        "oldest_ok": min(r["oldest_ok"] for r in rows),
                    }), flush=True)
                    continue
                print(
                    f"t={max(r['t'] for r in rows):>6.1f}s running={sum(r['running'] for r in rows)} "
                    f"failed={sum(r['failed'] for r in rows)} beats={sum(r['beats'] for r in rows)} "
                    f"lag p50~{_fmt(statistics.median(_known(r['lag_p50'] for r in rows) or [float('nan')]))} "
                    f"p99<={_fmt(max(_known(r['lag_p99'] for r in rows), default=float('nan')))} "
                    f"rss={sum(r['rss_mb'] for r in rows):.0f}MB"
                    + (f" errors={errors}" if errors else ""),
                    flush=True,
                )
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if args.cleanup:
            shutil.rmtree(args.data_dir, ignore_errors=True)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--auth", required=True, help="auth server HOST:PORT (3025)")
    ap.add_argument("--token", required=True, help="node join token (tctl nodes add)")
    ap.add_argument("--ca-pin", default="", help="the CA pin tctl nodes add prints")
    ap.add_argument("--agents", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    ap.add_argument("--data-dir", default="/tmp/nodesim")
    ap.add_argument("--prefix", default="sim", help="node names are PREFIX-00000, ...")
    ap.add_argument("--label", action="append", default=[], metavar="K=V", help="extra static label")
    ap.add_argument("--report", type=float, default=10.0, help="seconds between reports")
    ap.add_argument("--duration", type=float, default=0, help="seconds to run (0: until Ctrl-C)")
    ap.add_argument("--cleanup", action="store_true", help="remove --data-dir at the end")
    ap.add_argument("--json", action="store_true", help="print each report as a JSON line")
    ap.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        first, _, count = args.worker.partition(":")
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        asyncio.run(worker(args, int(first), int(count)))
        return 0
    return parent(args)


if __name__ == "__main__":
    sys.exit(main())
