"""`tsh ls` at scale: whole `tsh ls` processes against a cluster holding N node heartbeats.

Starts a real auth+proxy process on SQLite, logs one user in, writes N node heartbeats into its
backend (each with two static labels, as a heartbeat would store them; they expire in an hour),
then times whole processes, interleaved round by round:
  - `python -c pass` (the interpreter alone) and `python -c "import teleport.cli.tsh"`;
  - `tsh ls` (table), `tsh ls --format=json`, and `tsh ls env=prod` (a label filter);
  - `tctl nodes ls`, beside `tctl users ls` (tctl's own start-up: config, identity, one call);
and prints the medians. Where the time goes inside one `tsh ls` is printed too: connecting to the
proxy, the node list over SSH (the proxy's RBAC filter included), and formatting.

Run: python bench/bench_ls.py [--nodes 10000] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.helpers import cli, destroy, env_with, new_cluster  # noqa: E402


async def fill(data_dir: str, storage: dict[str, str], count: int) -> None:
    from teleport.backend import open_backend
    from teleport.backend.base import Item
    from teleport.types.resources import Server

    backend = await open_backend(storage, data_dir)
    try:
        for i in range(count):
            host_id = str(uuid.uuid4())
            server = Server.from_dict({
                "kind": "node", "version": "v2",
                "metadata": {"name": host_id, "namespace": "default",
                             "labels": {"env": "prod" if i % 2 else "dev", "team": f"t{i % 50}"}},
                "spec": {"addr": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:3022",
                         "hostname": f"node-{i:05d}"},
            })
            await backend.put(Item(f"/nodes/default/{host_id}", server.to_json(),
                                   expires=time.time() + 3600))
    finally:
        await backend.close()


def timed(argv: list[str], home: str) -> float:
    t = time.perf_counter()
    subprocess.run(argv, env=env_with(TELEPORT_HOME=home), check=True, capture_output=True,
                   stdin=subprocess.DEVNULL, timeout=120)
    return time.perf_counter() - t


def breakdown(home: str) -> dict[str, float]:
    """One in-process `tsh ls`, timed by stage."""
    code = (
        "import asyncio, json, time\n"
        "t0 = time.perf_counter()\n"
        "from teleport.client import ssh\n"
        "from teleport.cli.common import table\n"
        "from teleport.proxy.lookup import node_labels\n"
        "t1 = time.perf_counter()\n"
        "async def main():\n"
        "    creds = ssh.load_credentials()\n"
        "    a = time.perf_counter()\n"
        "    proxy = await ssh.connect_proxy(creds)\n"
        "    b = time.perf_counter()\n"
        "    nodes = await ssh.list_nodes(proxy)\n"
        "    c = time.perf_counter()\n"
        "    proxy.close()\n"
        "    rows = [[n['spec'].get('hostname', ''), n['metadata']['name'], n['spec'].get('addr', ''),\n"
        "             ','.join(f'{k}={v}' for k, v in sorted(node_labels(n).items()))] for n in nodes]\n"
        "    out = table(['Node Name', 'Node ID', 'Address', 'Labels'], rows)\n"
        "    d = time.perf_counter()\n"
        "    return b - a, c - b, d - c, len(nodes), len(out)\n"
        "conn, lst, fmt, n, size = asyncio.run(main())\n"
        "print(json.dumps({'imports': t1 - t0, 'connect': conn, 'list': lst, 'format': fmt,\n"
        "                  'nodes': n, 'bytes': size}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env_with(TELEPORT_HOME=home),
                         check=True, capture_output=True, text=True, timeout=120)
    import json

    return dict(json.loads(out.stdout))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()

    c = new_cluster(roles="auth,proxy")
    try:
        c.start()
        c.add_user("bench", "root")
        c.login("bench")
        t = time.perf_counter()
        asyncio.run(fill(c.data_dir, {"type": "dir"}, args.nodes))
        print(f"wrote {args.nodes} node heartbeats in {time.perf_counter() - t:.1f} s")
        tsh = cli("tsh")
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "import teleport.cli.tsh": [sys.executable, "-c", "import teleport.cli.tsh"],
            "tsh ls": [*tsh, "ls"],
            "tsh ls --format=json": [*tsh, "ls", "--format=json"],
            "tsh ls env=prod": [*tsh, "ls", "env=prod"],
            "tctl nodes ls": [*cli("tctl"), "-c", c.config_path, "nodes", "ls"],
            "tctl users ls (baseline)": [*cli("tctl"), "-c", c.config_path, "users", "ls"],
        }
        deadline = time.time() + 30  # the proxy's node cache refreshes within seconds
        def listed() -> int:
            out = subprocess.run([*tsh, "ls", "--format=json"], env=env_with(TELEPORT_HOME=c.home),
                                 capture_output=True, text=True, check=True).stdout
            return out.count('"hostname"')

        while listed() < args.nodes:
            if time.time() > deadline:
                raise SystemExit("the proxy never listed every node")
            time.sleep(1)
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.runs):
            for name, argv in cases.items():
                times[name].append(timed(argv, c.home))
        print(f"\nwhole processes, median of {args.runs} interleaved runs, {args.nodes} nodes:")
        for name, values in times.items():
            print(f"  {name:<26} {statistics.median(values):.3f} s")
        stages = [breakdown(c.home) for _ in range(3)]
        print("\none tsh ls in-process, median of 3 (s):")
        for key in ("imports", "connect", "list", "format"):
            print(f"  {key:<10} {statistics.median(s[key] for s in stages):.3f}")
        print(f"  table of {stages[0]['nodes']} nodes, {stages[0]['bytes']} characters")
    finally:
        destroy(c)


if __name__ == "__main__":
    main()
