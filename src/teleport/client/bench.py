"""`tsh bench`: an open-loop load generator. Each request is a whole `tsh ssh`: a connection to
the proxy, one to the node through it, and the command (or an interactive shell that runs it).

Requests start on the schedule of benchstats.schedule whatever happened to the previous ones;
each is timed from its scheduled start (see benchstats.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from teleport import defaults
from teleport.client import ssh
from teleport.client.benchstats import Result, schedule

# What the interactive form types: the command, then leaving the shell.
_EXIT = "\nexit\n"


async def _one(creds: ssh.Credentials, target: dict[str, Any], due: float,
               origin: float, timeout: float) -> Result:
    loop = asyncio.get_running_loop()
    error = ""
    try:
        async with asyncio.timeout(timeout):
            await _session(creds, target)
    except TimeoutError:
        error = f"no answer within {timeout:g} s"
    except Exception as exc:  # every failure is a data point, never the end of the run
        error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return Result(due=due, latency=loop.time() - (origin + due), error=error)


async def _session(creds: ssh.Credentials, t: dict[str, Any]) -> None:
    proxy = await ssh.connect_proxy(creds, t["login"])
    try:
        conn = await ssh.connect_node(proxy, creds, t["host"], t["port"], t["login"], t["cluster"])
        async with conn:
            if t["interactive"]:
                proc = await conn.create_process(term_type="xterm", term_size=(80, 24),
                                                 encoding=None)
                proc.stdin.write(t["command"].encode() + _EXIT.encode())
                await proc.stdout.read()  # the shell's output until it exits
                result = await proc.wait(check=False)
            else:
                result = await conn.run(t["command"], check=False, encoding=None)
            if result.exit_status not in (0, None) or result.exit_signal:
                raise RuntimeError(f"exit status {result.exit_status}")
    finally:
        proxy.close()


async def run(creds: ssh.Credentials, login: str, host: str, port: int, command: str, *,
              rate: float, duration: float, interactive: bool = False, cluster: str = "",
              timeout: float = defaults.BENCH_REQUEST_TIMEOUT,
              max_in_flight: int = defaults.BENCH_MAX_IN_FLIGHT) -> tuple[list[Result], float]:
    """Run the load; return every request's result and the wall time from the first due start
    to the last answer."""
    offsets = schedule(rate, duration)
    target = {"login": login, "host": host, "port": port, "command": command,
              "interactive": interactive, "cluster": cluster}
    loop = asyncio.get_running_loop()
    origin = loop.time() + 0.05
    tasks: list[asyncio.Task[Result]] = []
    refused: list[Result] = []
    in_flight = 0

    def done(_: asyncio.Task[Result]) -> None:
        nonlocal in_flight
        in_flight -= 1

    for due in offsets:
        delay = origin + due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if in_flight >= max_in_flight:
            refused.append(Result(due, 0.0, f"more than {max_in_flight} requests in flight"))
            continue
        in_flight += 1
        task = asyncio.create_task(_one(creds, target, due, origin, timeout))
        task.add_done_callback(done)
        tasks.append(task)
    results = list(await asyncio.gather(*tasks)) + refused
    return results, loop.time() - origin
