"""Recorded vs unrecorded interactive sessions: throughput of printing N MB in a PTY session on a
real node, and the stored recording's size against the bytes printed.

Run (as root, from the repository root): python bench/bench_session_recording.py [--mb 200] [--rounds 2]

Starts two single-process clusters (auth+proxy+node) in temporary directories, one with
`session_recording: node`, one with `off`. In each it opens an interactive PTY session straight to
the node with OpenSSH's `ssh -tt` (the user's real certificate from `tsh login`) and runs
`(for i in $(seq 10000); do cat LISTING || break; done) | head -c N`, LISTING being the output of
`ls -laR /usr` saved once (ls itself, at ~10 MB/s, would otherwise be what is measured), timing the whole ssh run (connection included, the same in
both) while the output is read and discarded. Rounds alternate between the clusters so both see the same
machine state; the best round of each is reported. Then it waits for the recordings' upload and
compares the stored `.cast.gz` sizes with the bytes printed. Everything is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.helpers import Cluster, destroy  # noqa: E402
from tests.integration.test_recording import LOGIN, TP_USER, node_cluster, wait_for  # noqa: E402

MB = 1024 * 1024


async def one_session(c: Cluster, nbytes: int, corpus: str) -> tuple[float, int, str]:
    """Print nbytes of `ls -laR /usr` output (cat of a saved listing) in a PTY session with
    OpenSSH's `ssh -tt` (a C client, so the client's own CPU use stays small); (seconds, bytes
    read, sid of the recording or "")."""
    key = os.path.join(c.home, "keys", "127.0.0.1", TP_USER)
    cmd = (f"(for i in $(seq 10000); do cat {corpus} || break; done) 2>/dev/null | head -c {nbytes}; "
           "echo; echo SID=$TELEPORT_SESSION")
    argv = ["ssh", "-tt", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-F", "/dev/null", "-i", key,
            "-o", f"CertificateFile={key}-cert.pub", "-p", str(c.ports["node"]), f"{LOGIN}@127.0.0.1", cmd]
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    got = 0
    last = b""
    while True:
        data = await proc.stdout.read(1 << 20)
        if not data:
            break
        got += len(data)
        last = (last + data)[-200:]
    await proc.wait()
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"ssh exited {proc.returncode}")
    sid = last.decode("utf-8", "replace").rsplit("SID=", 1)[-1].strip()
    return elapsed, got, sid


def stored(c: Cluster, sid: str) -> str:
    return os.path.join(c.data_dir, "log", "sessions", "default", f"{sid}.cast.gz")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the node serves the root login only when it runs as root")
    nbytes = args.mb * MB
    fd, corpus = tempfile.mkstemp(prefix="bench-ls-", suffix=".txt")
    with os.fdopen(fd, "wb") as f:
        subprocess.run(["ls", "-laR", "/usr"], stdout=f, stderr=subprocess.DEVNULL, check=False)
    os.chmod(corpus, 0o644)
    print(f"starting two clusters (recording node / off); {args.mb} MB per session, {args.rounds} rounds")
    on = await asyncio.to_thread(node_cluster, "node")
    off = None
    try:
        off = await asyncio.to_thread(node_cluster, "off")
        best: dict[str, float] = {"node": float("inf"), "off": float("inf")}
        sids: list[tuple[str, int]] = []
        for r in range(args.rounds):
            for name, c in (("off", off), ("node", on)):
                secs, got, sid = await one_session(c, nbytes, corpus)
                best[name] = min(best[name], secs)
                print(f"  round {r + 1} recording={name:4}: {got / MB:7.1f} MB in {secs:6.2f} s "
                      f"= {got / MB / secs:6.1f} MB/s")
                if name == "node":
                    sids.append((sid, got))
        for sid, _ in sids:
            await asyncio.to_thread(wait_for, lambda sid=sid: os.path.exists(stored(on, sid)), 120,
                                    "the upload")
        assert not glob.glob(os.path.join(off.data_dir, "log", "sessions", "default", "*.cast.gz"))
        rate_on, rate_off = nbytes / MB / best["node"], nbytes / MB / best["off"]
        print(f"\nthroughput recorded {rate_on:.1f} MB/s, not recorded {rate_off:.1f} MB/s: "
              f"ratio {rate_on / rate_off:.2f}x (aim >= 0.9x)")
        for sid, got in sids:
            size = os.path.getsize(stored(on, sid))
            print(f"recording {sid}: {size / MB:.2f} MB stored for {got / MB:.1f} MB printed: "
                  f"1/{got / size:.1f} of the raw bytes (aim <= 1/10)")
    finally:
        os.remove(corpus)
        destroy(on)
        if off is not None:
            destroy(off)


if __name__ == "__main__":
    # a SIGTERM (e.g. `timeout`) still runs the cleanup in main()'s finally
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(main())
