"""The pure connection and rate limiters (teleport.limits)."""

from __future__ import annotations

import pytest

from teleport.errors import LimitExceeded
from teleport.limits import ConnectionLimiter, RateLimiter, check_sessions, source_of


@pytest.mark.parametrize(
    ("addr", "want"),
    [
        ("10.0.0.1:4000", "10.0.0.1"),
        ("[::1]:22", "::1"),
        ("[::ffff:10.0.0.1]:22", "10.0.0.1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
        (("10.0.0.2", 5), "10.0.0.2"),
        (("fe80::1%eth0", 5, 0, 2), "fe80::1"),
        ("10.0.0.3", "10.0.0.3"),
        ("", ""),
        (None, ""),
    ],
)
def test_source_of(addr: object, want: str) -> None:
    assert source_of(addr) == want  # type: ignore[arg-type]


def test_per_source_and_total_limits_and_release() -> None:
    lim = ConnectionLimiter(max_per_source=2, max_total=3, what="the proxy")
    lim.acquire("a")
    lim.acquire("a")
    with pytest.raises(LimitExceeded, match="too many connections from a to the proxy .limit 2."):
        lim.acquire("a")
    lim.acquire("b")
    with pytest.raises(LimitExceeded, match="limit of 3 connections"):
        lim.acquire("c")
    assert lim.total == 3 and lim.count("a") == 2
    lim.release("a")
    lim.acquire("c")
    for s in ("a", "b", "c"):
        lim.release(s)
    assert lim.total == 0 and lim._by_source == {}  # no empty entries left behind


def test_zero_means_unlimited() -> None:
    lim = ConnectionLimiter(0, 0, 0)
    for i in range(1000):
        lim.acquire("x")
        lim.acquire_user(f"u{i}")
    assert lim.total == 1000 and lim.users == 1000


def test_max_users_counts_distinct_users() -> None:
    lim = ConnectionLimiter(10, max_users=2, what="node n1")
    lim.acquire_user("alice")
    lim.acquire_user("alice")  # the same user again: still one user
    lim.acquire_user("bob")
    with pytest.raises(LimitExceeded, match="limit of 2 users"):
        lim.acquire_user("carol")
    lim.release_user("bob")
    lim.acquire_user("carol")
    lim.release_user("alice")
    assert lim.user_count("alice") == 1
    lim.release_user("alice")
    assert lim.users == 1 and lim.user_count("alice") == 0


def test_per_user_role_limit() -> None:
    lim = ConnectionLimiter(10)
    lim.acquire_user("alice", max_for_user=2)
    lim.acquire_user("alice", max_for_user=2)
    with pytest.raises(LimitExceeded, match=r"max_connections: 2"):
        lim.acquire_user("alice", max_for_user=2)
    lim.acquire_user("bob", max_for_user=2)


def test_check_sessions() -> None:
    check_sessions(0, 1)
    check_sessions(50, 0)
    with pytest.raises(LimitExceeded, match=r"max_sessions: 2"):
        check_sessions(2, 2)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_token_bucket_burst_then_rate() -> None:
    clock = Clock()
    rl = RateLimiter(rate=2.0, burst=3, what="login attempts", clock=clock)
    for _ in range(3):
        rl.check("ip")
    with pytest.raises(LimitExceeded, match="too many login attempts from x: try again in 1s"):
        rl.check("ip", "from x")
    rl.check("other")  # keys are independent
    clock.t += 0.5  # one token back at 2/s
    assert rl.retry_after("ip") == 0
    rl.check("ip")
    with pytest.raises(LimitExceeded):
        rl.check("ip")
    clock.t += 100  # refills only up to the burst
    for _ in range(3):
        rl.check("ip")
    with pytest.raises(LimitExceeded):
        rl.check("ip")


def test_rate_limiter_memory_is_bounded() -> None:
    clock = Clock()
    rl = RateLimiter(rate=1.0, burst=1, max_keys=100, clock=clock)
    for i in range(10_000):
        rl.check(f"k{i}")
    assert len(rl) == 100
    with pytest.raises(LimitExceeded):
        rl.check("k9999")  # the most recent keys are kept


def test_rate_limiter_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0, burst=1)
