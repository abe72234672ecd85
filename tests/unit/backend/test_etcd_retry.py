"""Transient etcd errors are retried with bounded backoff, never surfaced to the caller.

One fake gateway (deterministic: it answers exactly the errors real etcd answers during an
election) and one real 3-member etcd cluster whose leader is killed under a read/write loop.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from teleport.backend.base import Item
from teleport.backend.etcd import EtcdBackend, is_transient
from teleport.errors import ConnectionProblem, NotFound
from tests.helpers import free_port
from tests.unit.backend.conftest import (
    EtcdMember,
    _stop,
    etcd_leader,
    start_etcd_cluster,
    stop_etcd_cluster,
)

LEADER_CHANGED = {"error": "etcdserver: leader changed", "code": 14,
                  "message": "etcdserver: leader changed"}


def test_transient_messages() -> None:
    for text in ("etcdserver: leader changed", "etcdserver: no leader",
                 "etcdserver: request timed out", "context deadline exceeded",
                 "grpc: the client connection is closing"):
        assert is_transient(text)
    for text in ("etcdserver: requested lease not found", "etcdserver: permission denied",
                 "etcdserver: mvcc: required revision has been compacted"):
        assert not is_transient(text)


@pytest.fixture
async def fake_gateway() -> AsyncIterator[tuple[str, list[int]]]:
    """A gateway that fails the first N range reads with 'leader changed' (N = state[0])."""
    state = [0, 0]  # [failures still to give, requests seen]

    async def range_(request: web.Request) -> web.Response:
        state[1] += 1
        if state[0] > 0:
            state[0] -= 1
            return web.json_response(LEADER_CHANGED, status=503)
        return web.json_response({"header": {"revision": "5"}, "count": "0"})

    app = web.Application()
    app.router.add_post("/v3/kv/range", range_)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        await runner.cleanup()


async def test_leader_changed_is_retried(fake_gateway: tuple[str, list[int]]) -> None:
    url, state = fake_gateway
    b = EtcdBackend([url], prefix="t")
    try:
        state[0] = 3
        with pytest.raises(NotFound):  # the read went through: the key is simply absent
            await b.get("/k")
        assert state[1] == 4 and b.retries == 3
    finally:
        await b.close()


async def test_retries_are_bounded_then_clear(fake_gateway: tuple[str, list[int]]) -> None:
    url, state = fake_gateway
    b = EtcdBackend([url], prefix="t")
    b.retry_attempts = 4
    try:
        state[0] = 1000
        started = time.monotonic()
        with pytest.raises(ConnectionProblem) as err:
            await b.get("/k")
        assert state[1] == 4  # exactly the attempts, no more
        assert "leader changed" in err.value.message and "4 attempts" in err.value.message
        assert "majority" in err.value.message
        assert time.monotonic() - started < 5
    finally:
        await b.close()


async def test_no_member_reachable_is_retried_then_clear() -> None:
    b = EtcdBackend([f"http://127.0.0.1:{free_port()}"], prefix="t")
    b.retry_attempts = 3
    try:
        with pytest.raises(ConnectionProblem) as err:
            await b.get("/k")
        assert "3 attempts" in err.value.message and "is etcd running" in err.value.message
        assert b.retries == 2
    finally:
        await b.close()


@pytest.fixture(scope="module")
def etcd3() -> Iterator[list[EtcdMember]]:
    """ONE 3-member cluster for this module."""
    directory = Path(tempfile.mkdtemp(prefix="teleport-etcd3-"))
    members = start_etcd_cluster(directory, 3)
    try:
        yield members
    finally:
        stop_etcd_cluster(members)
        shutil.rmtree(directory, ignore_errors=True)


async def test_killing_the_leader_fails_no_operation(etcd3: list[EtcdMember]) -> None:
    """Reads and writes in a loop while the raft leader is killed: none fails."""
    b = EtcdBackend([m.url for m in etcd3], prefix=f"ha-{uuid.uuid4().hex[:8]}")
    await b.connect()
    ops = failed = 0
    errors: list[str] = []
    stop = asyncio.Event()

    async def loop(n: int) -> None:
        nonlocal ops, failed
        i = 0
        while not stop.is_set():
            i += 1
            try:
                await b.put(Item(f"/w{n}/{i}", b"v", expires=time.time() + 60))
                assert (await b.get(f"/w{n}/{i}")).value == b"v"
                await b.get_range(f"/w{n}/")
            except Exception as exc:  # counted, reported below
                failed += 1
                errors.append(f"{type(exc).__name__}: {exc}")
            ops += 1

    try:
        workers = [asyncio.create_task(loop(n)) for n in range(3)]
        await asyncio.sleep(0.5)
        leader = etcd_leader(etcd3)
        before = ops
        await asyncio.to_thread(_stop, leader.proc)
        await asyncio.sleep(3)
        stop.set()
        await asyncio.gather(*workers)
        print(f"etcd leader kill: {ops} op rounds, {failed} failed, {b.retries} retried")
        assert ops > before, "no operation completed after the leader was killed"
        assert failed == 0, errors[:3]
    finally:
        await b.close()
