"""Connection-flood benchmark: memory of a real teleport process before, during and after floods
of idle connections, and how many of them the connection limits let in.

Starts a real auth+proxy process (one `teleport start`, default connection_limits) on loopback,
then reads its VmRSS from /proc/PID/status:
  1. web proxy (3080): N TLS connections opened at once and held idle (no request), then closed;
  2. web proxy: N plain TCP connections that never start TLS, held, then closed;
  3. auth (3025): CYCLES rounds of M TLS connections opened, held and closed (the review's
     "9 cycles of 500").
Prints RSS (MiB) at each step, the connections accepted / refused, and the RSS after the flood
relative to before.

Run: python bench/bench_flood.py [--conns 2000] [--cycles 9] [--per-cycle 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tests.helpers import destroy, new_cluster  # noqa: E402


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def tls_ctx() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def open_many(port: int, n: int, tls: bool) -> tuple[list[asyncio.StreamWriter], int]:
    """Open n connections (TLS handshake done when tls); returns (held writers, failures)."""
    ctx = tls_ctx() if tls else None
    sem = asyncio.Semaphore(200)

    async def one() -> asyncio.StreamWriter | None:
        async with sem:
            try:
                _, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, ssl=ctx), 30)
                return w
            except (OSError, TimeoutError, ssl.SSLError):
                return None

    res = await asyncio.gather(*(one() for _ in range(n)))
    held = [w for w in res if w is not None]
    return held, n - len(held)


async def alive(writers: list[asyncio.StreamWriter]) -> int:
    await asyncio.sleep(0.5)
    return sum(1 for w in writers if not w.transport.is_closing())


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for w in writers:
        w.transport.abort()
    await asyncio.sleep(0)


async def main(args: argparse.Namespace) -> None:
    c = new_cluster(roles="auth,proxy")
    try:
        c.start()
        assert c.proc is not None
        pid = c.proc.pid
        web, auth = c.ports["web"], c.ports["auth"]
        await asyncio.sleep(2)
        base = rss_mib(pid)
        print(f"teleport pid {pid} (auth+proxy), default limits: max_connections 1000 per "
              "address, 2000 per listener")
        print(f"RSS before any flood: {base:.0f} MiB")

        for label, tls in (("TLS connections, idle", True), ("TCP connections, no TLS", False)):
            t = time.perf_counter()
            held, failed = await open_many(web, args.conns, tls)
            during = rss_mib(pid)
            still = await alive(held)
            print(f"web proxy, {args.conns} {label}: opened {len(held)} ({failed} failed) in "
                  f"{time.perf_counter() - t:.1f}s, {still} still open after 0.5s; "
                  f"RSS during {during:.0f} MiB")
            await close_all(held)
            await asyncio.sleep(3)
            soon = rss_mib(pid)
            await asyncio.sleep(args.settle)
            print(f"  RSS 3s after closing: {soon:.0f} MiB, {args.settle + 3:.0f}s after: "
                  f"{rss_mib(pid):.0f} MiB")

        rows = []
        for cycle in range(args.cycles):
            held, failed = await open_many(auth, args.per_cycle, True)
            during = rss_mib(pid)
            await close_all(held)
            await asyncio.sleep(1)
            rows.append((cycle + 1, len(held), failed, during, rss_mib(pid)))
        print(f"auth, {args.cycles} cycles of {args.per_cycle} TLS connections:")
        for cycle, ok, failed, during, after in rows:
            print(f"  cycle {cycle}: opened {ok} ({failed} failed), RSS during {during:.0f} MiB, "
                  f"after {after:.0f} MiB")
        await asyncio.sleep(args.settle)
        final = rss_mib(pid)
        print(f"RSS {args.settle:.0f}s after the last flood: {final:.0f} MiB (before: {base:.0f} MiB, "
              f"ratio {final / base:.2f})")
    finally:
        destroy(c)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--conns", type=int, default=2000)
    p.add_argument("--cycles", type=int, default=9)
    p.add_argument("--per-cycle", type=int, default=500)
    p.add_argument("--settle", type=float, default=35.0,
                   help="seconds to wait after a flood (> handshake_timeout, 30s by default)")
    asyncio.run(main(p.parse_args()))
