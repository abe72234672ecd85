"""Login protection in AuthServer on a real SQLite backend: one answer for unknown, wrong and
locked logins, lockout per (user, source address), rate limits, hashing off the event loop."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from teleport import defaults
from teleport.auth.server import AuthServer
from teleport.auth.store import ClusterStore
from teleport.backend.sqlite import SQLiteBackend
from teleport.errors import AccessDenied, LimitExceeded
from teleport.limits import LoginRateLimits
from teleport.types.resources import Metadata, User

PASSWORD = "right-pass-1"


@pytest.fixture
async def auth() -> AsyncIterator[AuthServer]:
    with tempfile.TemporaryDirectory() as d:
        backend = await SQLiteBackend.open(os.path.join(d, "state.db"))
        try:
            server = await AuthServer.init(ClusterStore(backend), "unit", second_factor="off")
            user = User(metadata=Metadata(name="alice"), spec={"roles": ["access"], "traits": {}})
            await server.put_user(user, replace=False)
            await server.set_password("alice", PASSWORD)
            yield server
        finally:
            server.hasher.close()
            await backend.close()


async def refusal(auth: AuthServer, name: str, password: str, addr: str) -> str:
    with pytest.raises(AccessDenied) as info:
        await auth.check_credentials(name, password, "", addr)
    return info.value.message


async def test_lock_is_per_source_address_and_logged(auth: AuthServer) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    auth.on_event = lambda event_type, **fields: events.append((event_type, fields))
    for _ in range(defaults.MAX_LOGIN_ATTEMPTS):
        await refusal(auth, "alice", "wrong-pass-1", "10.0.0.66:40000")
    # locked from the attacker's address, even with the right password ...
    assert await refusal(auth, "alice", PASSWORD, "10.0.0.66:40001") == defaults.LOGIN_FAILED_MESSAGE
    # ... but the real user, from another address, still logs in
    user = await auth.check_credentials("alice", PASSWORD, "", "192.168.1.5:50000")
    assert user.name == "alice"
    # the lock was announced once in the audit log, naming the address
    locks = [f for t, f in events if t == "user.login" and "locked" in f.get("error", "")]
    assert len(locks) == 1
    assert locks[0]["user"] == "alice" and locks[0]["addr_remote"] == "10.0.0.66"
    assert "10.0.0.66" in locks[0]["error"] and locks[0]["success"] is False


async def test_ipv4_mapped_address_shares_the_lock(auth: AuthServer) -> None:
    for _ in range(defaults.MAX_LOGIN_ATTEMPTS):
        await refusal(auth, "alice", "wrong-pass-1", "10.0.0.7:1")
    await refusal(auth, "alice", PASSWORD, "[::ffff:10.0.0.7]:2")


async def test_unknown_locked_and_wrong_get_one_message(auth: AuthServer) -> None:
    unknown = await refusal(auth, "nobody", "wrong-pass-1", "10.0.0.1:1")
    wrong = await refusal(auth, "alice", "wrong-pass-1", "10.0.0.2:1")
    for _ in range(defaults.MAX_LOGIN_ATTEMPTS):
        await refusal(auth, "alice", "wrong-pass-1", "10.0.0.3:1")
    locked = await refusal(auth, "alice", PASSWORD, "10.0.0.3:1")
    nopass = User(metadata=Metadata(name="bob"), spec={"roles": ["access"], "traits": {}})
    await auth.put_user(nopass, replace=False)
    no_password = await refusal(auth, "bob", "whatever-1", "10.0.0.4:1")
    assert unknown == wrong == locked == no_password == defaults.LOGIN_FAILED_MESSAGE
    assert "nobody" not in unknown and "alice" not in locked


async def test_locked_and_unknown_users_still_verify_a_hash(auth: AuthServer) -> None:
    for _ in range(defaults.MAX_LOGIN_ATTEMPTS):
        await refusal(auth, "alice", "wrong-pass-1", "10.0.0.9:1")
    calls: list[str] = []
    real = auth.hasher.verify

    async def counting(encoded: str, password: str) -> bool:
        calls.append(encoded)
        return await real(encoded, password)

    auth.hasher.verify = counting  # type: ignore[method-assign]
    await refusal(auth, "alice", PASSWORD, "10.0.0.9:1")  # locked
    await refusal(auth, "ghost", PASSWORD, "10.0.0.9:1")  # unknown
    assert len(calls) == 2 and all(c.startswith("$argon2id$") for c in calls)


async def test_concurrent_burst_checks_at_most_max_attempts(auth: AuthServer) -> None:
    checked: list[str] = []
    real = auth.hasher.verify

    async def counting(encoded: str, password: str) -> bool:
        checked.append(encoded)
        return await real(encoded, password)

    auth.hasher.verify = counting  # type: ignore[method-assign]
    results = await asyncio.gather(
        *(auth.check_credentials("alice", "wrong-pass-1", "", "10.1.1.1:1")
          for _ in range(defaults.LOGIN_BURST_PER_USER)),
        return_exceptions=True,
    )
    assert all(isinstance(r, AccessDenied) for r in results)
    # every attempt costs one hash, but only the first MAX_LOGIN_ATTEMPTS used the real one
    real_hash = (await auth.store.get_user_secret("alice", "pwd"))["hash"]
    assert checked.count(real_hash) == defaults.MAX_LOGIN_ATTEMPTS
    assert len(checked) == defaults.LOGIN_BURST_PER_USER


async def test_success_resets_the_count(auth: AuthServer) -> None:
    for _ in range(defaults.MAX_LOGIN_ATTEMPTS - 1):
        await refusal(auth, "alice", "wrong-pass-1", "10.2.2.2:1")
    await auth.check_credentials("alice", PASSWORD, "", "10.2.2.2:1")
    for _ in range(defaults.MAX_LOGIN_ATTEMPTS - 1):
        await refusal(auth, "alice", "wrong-pass-1", "10.2.2.2:1")
    assert (await auth.check_credentials("alice", PASSWORD, "", "10.2.2.2:1")).name == "alice"


async def test_login_rate_limits_per_address_and_per_user(auth: AuthServer) -> None:
    auth.login_rates = LoginRateLimits(clock=lambda: 1000.0)  # no refill while the test runs
    for _ in range(defaults.LOGIN_BURST_PER_ADDR):
        try:
            await auth.check_credentials(f"u{time.monotonic_ns()}", "x-pass-12", "", "10.3.3.3:1")
        except AccessDenied:
            pass
    with pytest.raises(LimitExceeded, match="too many login attempts from 10.3.3.3"):
        await auth.check_credentials("alice", PASSWORD, "", "10.3.3.3:1")
    # per user name from one address (below that address's own limit)
    for _ in range(defaults.LOGIN_BURST_PER_USER):
        with pytest.raises(AccessDenied):
            await auth.check_credentials("carol", "x-pass-12", "", "10.4.0.1:1")
    with pytest.raises(LimitExceeded, match="for user 'carol' from 10.4.0.1"):
        await auth.check_credentials("carol", "x-pass-12", "", "10.4.0.1:1")
    # ... which does not keep carol out from her own address
    with pytest.raises(AccessDenied):
        await auth.check_credentials("carol", "x-pass-12", "", "10.4.0.2:1")


async def test_hashing_leaves_the_event_loop_free(auth: AuthServer) -> None:
    """While logins hash, the loop keeps ticking: no tick waits for a whole argon2 check."""
    gaps: list[float] = []
    stop = False

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    t = asyncio.create_task(ticker())
    await asyncio.gather(
        *(auth.check_credentials(f"ghost{i}", "wrong-pass-1", "", f"10.5.0.{i}:1") for i in range(8)),
        return_exceptions=True,
    )
    stop = True
    await t
    # one argon2 check takes tens of ms; on the loop, gaps would be at least that long
    start = time.perf_counter()
    from teleport.auth import secrets
    secrets.verify_password((await auth.store.get_user_secret("alice", "pwd"))["hash"], "x")
    one_hash = time.perf_counter() - start
    assert max(gaps) < one_hash, (max(gaps), one_hash)


async def test_full_hash_queue_answers_limit_exceeded(auth: AuthServer) -> None:
    auth.hasher.queue_max = 0  # only the workers: the next check is refused
    auth.hasher.pending = auth.hasher.workers
    with pytest.raises(LimitExceeded, match="busy checking passwords"):
        await auth.check_credentials("alice", PASSWORD, "", "10.6.0.1:1")
    auth.hasher.pending = 0
