"""Login-flood benchmark: `tsh ls` latency while bad logins hammer the proxy, against idle.

Starts a real cluster (auth+proxy+node in one `teleport start`, default limits), signs up and
logs in one user, then times whole `tsh ls` processes:
  1. idle;
  2. during a flood of bad logins (POST /v1/webapi/ssh/certs), CONCURRENCY at a time, TOTAL in all,
     all from 127.0.0.1 against one user name (the review's attack: rate limits answer most);
  3. during the same flood spread over 100 loopback source addresses (127.0.0.x) and random user
     names, so that it passes the rate limits and every attempt costs auth an argon2 check.
Prints the medians, the ratio to idle, and what the flood requests got (status counts).

Run: python bench/bench_login_flood.py [--total 1200] [--concurrency 300] [--runs 9]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import ssl
import statistics
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import aiohttp  # noqa: E402
from tests.helpers import cli, destroy, env_with, new_cluster  # noqa: E402


def tsh_ls(home: str) -> float:
    t = time.perf_counter()
    subprocess.run([*cli("tsh"), "ls"], env=env_with(TELEPORT_HOME=home), check=True,
                   capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    return time.perf_counter() - t


async def time_ls(home: str, runs: int) -> list[float]:
    return [await asyncio.to_thread(tsh_ls, home) for _ in range(runs)]


async def flood(url: str, total: int, concurrency: int, spread: bool,
                stop: asyncio.Event) -> collections.Counter[int]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    addrs = [f"127.0.0.{i}" for i in range(2, 102)] if spread else ["127.0.0.1"]
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        ssl=ctx, local_addr=(a, 0), limit=concurrency)) for a in addrs]
    counts: collections.Counter[int] = collections.Counter()
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            user = f"u-{uuid.uuid4().hex[:8]}" if spread else "bench"
            body = {"user": user, "password": "wrong-password", "otp_token": "000000",
                    "pub_key": "x"}
            try:
                async with sessions[i % len(sessions)].post(url, json=body) as resp:
                    await resp.read()
                    counts[resp.status] += 1
            except (aiohttp.ClientError, OSError, TimeoutError):
                counts[0] += 1

    try:
        i = 0
        while not stop.is_set():  # keep the flood going for as long as tsh ls is timed
            await asyncio.gather(*(one(i + k) for k in range(total)))
            i += total
    finally:
        for s in sessions:
            await s.close()
    return counts


async def main(args: argparse.Namespace) -> None:
    c = new_cluster()
    try:
        c.start()
        c.add_user("bench", "root")
        c.login("bench")
        url = f"https://{c.web_addr}/v1/webapi/ssh/certs"
        idle = await time_ls(c.home, args.runs)
        print(f"tsh ls idle: median {statistics.median(idle):.2f}s over {args.runs} runs")
        for label, spread in (("one address, one user", False),
                              ("100 addresses, random users", True)):
            stop = asyncio.Event()
            task = asyncio.create_task(flood(url, args.total, args.concurrency, spread, stop))
            await asyncio.sleep(1)  # let the flood build up
            during = await time_ls(c.home, args.runs)
            stop.set()
            counts = await task
            med = statistics.median(during)
            print(f"tsh ls during a flood ({label}, {args.concurrency} at a time): median "
                  f"{med:.2f}s, ratio to idle {med / statistics.median(idle):.2f}; flood "
                  f"answers: {json.dumps(dict(sorted(counts.items())))}")
            await asyncio.sleep(3)
    finally:
        destroy(c)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--total", type=int, default=1200)
    p.add_argument("--concurrency", type=int, default=300)
    p.add_argument("--runs", type=int, default=9)
    asyncio.run(main(p.parse_args()))
