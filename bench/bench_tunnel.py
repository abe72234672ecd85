"""Reverse tunnel benchmark: a node reached through its tunnel vs a directly dialled node, in one
run on this machine, both behind the same Teleport proxy.

  - a single-host cluster (auth + proxy + a node on a loopback port: "testnode", dialled directly);
  - a second node given only the proxy's web address ("fwjoin"): it joins through the proxy and
    is reached only through its reverse tunnel.
Measures, interleaved so that noise hits both alike:
  1. connection latency p50/p95 of whole processes: `tsh ssh root@NODE true`;
  2. throughput of an upload and a download of one file (default 256 MiB) with `tsh scp`.
Prints tunnel / direct ratios (aim: at most 10 % more latency, at most 10 % less throughput).

Run (as root, from the repository root):  python bench/bench_tunnel.py [--runs 20] [--mib 256]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench.bench_ssh import pct, timed  # noqa: E402
from tests.helpers import cli, destroy, env_with, new_cluster, wait_port  # noqa: E402
from tests.integration.test_tunnel_via_proxy import NODE, ProxyJoinedNode  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--mib", type=int, default=256)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the sessions log in as root on this machine")

    d = tempfile.mkdtemp(prefix="bench-tunnel-")
    cluster = new_cluster(roles="auth,proxy,node")
    fw: ProxyJoinedNode | None = None
    try:
        cluster.start()
        wait_port(cluster.ports["node"], 20, cluster.proc)
        fw = ProxyJoinedNode(cluster)
        fw.start()
        cluster.add_user("bench", "root")
        cluster.login("bench")
        env = env_with(TELEPORT_HOME=cluster.home)
        tsh = [*cli("tsh")]
        deadline = time.time() + 40
        while True:
            out = subprocess.run([*tsh, "ls"], env=env, capture_output=True, text=True).stdout
            if "testnode" in out and NODE in out:
                break
            if time.time() > deadline:
                raise RuntimeError("the nodes were not listed:\n" + out + fw.log())
            time.sleep(0.3)

        # 1. latency
        direct, tunnel = [], []
        for host in ("testnode", NODE):  # warm caches
            timed([*tsh, "ssh", f"root@{host}", "true"], env)
        for _ in range(args.runs):
            direct.append(timed([*tsh, "ssh", "root@testnode", "true"], env))
            tunnel.append(timed([*tsh, "ssh", f"root@{NODE}", "true"], env))

        # 2. throughput
        src = os.path.join(d, "blob.bin")
        with open(src, "wb") as f:
            chunk = os.urandom(1 << 20)
            for _ in range(args.mib):
                f.write(chunk)
        size = args.mib * (1 << 20)
        rdir = tempfile.mkdtemp(prefix="bench-tunnel-remote-")
        res = {}
        for way in ("upload", "download"):
            for name, host in (("direct", "testnode"), ("tunnel", NODE)):
                remote = f"root@{host}:{rdir}/{name}.bin"
                local = os.path.join(d, f"{name}-back.bin")
                cmd = [src, remote] if way == "upload" else [remote, local]
                res[f"{name} {way}"] = timed([*tsh, "scp", "-q", *cmd], env)
        shutil.rmtree(rdir, ignore_errors=True)

        ms = 1000
        print(f"connection latency, whole processes (tsh ssh NODE true), {args.runs} runs each:")
        print(f"  direct node   p50 {pct(direct, 50) * ms:7.1f} ms   p95 {pct(direct, 95) * ms:7.1f} ms")
        print(f"  tunnel node   p50 {pct(tunnel, 50) * ms:7.1f} ms   p95 {pct(tunnel, 95) * ms:7.1f} ms")
        print(f"  ratio (tunnel / direct)  p50 {pct(tunnel, 50) / pct(direct, 50):.2f}x   "
              f"p95 {pct(tunnel, 95) / pct(direct, 95):.2f}x   (aim <= 1.10x)")
        print(f"throughput, {args.mib} MiB file (tsh scp):")
        for way in ("upload", "download"):
            t = size / res[f"tunnel {way}"] / (1 << 20)
            o = size / res[f"direct {way}"] / (1 << 20)
            print(f"  {way:8s}  tunnel {t:7.1f} MiB/s   direct {o:7.1f} MiB/s   ratio {t / o:.2f}x   (aim >= 0.90x)")
    finally:
        if fw is not None:
            fw.destroy()
        destroy(cluster)
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
