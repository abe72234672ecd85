"""Connection and rate limits: counting only, no I/O and no asyncio (the listeners call in).

* ConnectionLimiter: concurrent connections per source address and in total for one listener,
  plus the authenticated users holding them (``max_users`` distinct users; a per-user cap for
  the roles' ``max_connections``). Every ``acquire_*`` that succeeds must be paired with its
  ``release_*``; a refused one must not be released.
* RateLimiter: token buckets by key (a source address, a user name), memory bounded by
  ``max_keys`` (the least recently used buckets are forgotten first: a forgotten bucket is a
  full one, so forgetting only ever errs on the side of letting a client in).

Both raise LimitExceeded with a message for the client that says what limit was hit and what to
do about it.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from teleport import defaults
from teleport.errors import LimitExceeded


def source_of(addr: str | tuple[object, ...] | None) -> str:
    """The source a connection is counted under: the IP address without the port, IPv4-mapped
    IPv6 addresses as plain IPv4 (so ``::ffff:1.2.3.4`` and ``1.2.3.4`` share one count).

    Accepts ``"ip:port"``, ``"[v6]:port"``, a bare address, or a socket peername tuple."""
    if addr is None:
        return ""
    if isinstance(addr, tuple):
        host = str(addr[0]) if addr else ""
    else:
        host = addr
        if host.startswith("["):
            host = host[1:].partition("]")[0]
        elif host.count(":") == 1:
            host = host.partition(":")[0]
    host = host.partition("%")[0]  # an IPv6 zone names the interface, not the client
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class ConnectionLimiter:
    """Counts one listener's open connections by source and the users authenticated on them.

    ``max_per_source`` and ``max_total`` bound connections (0 = unlimited); ``max_users`` bounds
    how many distinct users may hold connections at once (0 = unlimited)."""

    def __init__(self, max_per_source: int, max_total: int = 0, max_users: int = 0,
                 what: str = "this server") -> None:
        self.max_per_source = max_per_source
        self.max_total = max_total
        self.max_users = max_users
        self.what = what
        self.total = 0
        self._by_source: dict[str, int] = {}
        self._by_user: dict[str, int] = {}

    def count(self, source: str) -> int:
        """Open connections from ``source``."""
        return self._by_source.get(source, 0)

    def user_count(self, user: str) -> int:
        """Open connections held by ``user``."""
        return self._by_user.get(user, 0)

    @property
    def users(self) -> int:
        """Distinct users holding connections."""
        return len(self._by_user)

    def acquire(self, source: str) -> None:
        """Count a new connection from ``source``; LimitExceeded when a limit is reached."""
        if self.max_total and self.total >= self.max_total:
            raise LimitExceeded(
                f"{self.what} has reached its limit of {self.max_total} connections; "
                "try again later, or ask an administrator to raise "
                "teleport.connection_limits.max_connections"
            )
        held = self._by_source.get(source, 0)
        if self.max_per_source and held >= self.max_per_source:
            raise LimitExceeded(
                f"too many connections from {source or 'your address'} to {self.what} "
                f"(limit {self.max_per_source}); close some and try again, or ask an "
                "administrator to raise teleport.connection_limits.max_connections"
            )
        self._by_source[source] = held + 1
        self.total += 1

    def release(self, source: str) -> None:
        """Forget a connection counted by ``acquire``."""
        held = self._by_source.get(source, 0)
        if held <= 1:
            self._by_source.pop(source, None)  # empty entries would grow without bound
        else:
            self._by_source[source] = held - 1
        self.total = max(0, self.total - 1)

    def acquire_user(self, user: str, max_for_user: int = 0) -> None:
        """Count a connection authenticated as ``user``; LimitExceeded when ``max_users`` other
        users already hold connections, or the user already holds ``max_for_user`` (the roles'
        max_connections; 0 = unlimited)."""
        held = self._by_user.get(user, 0)
        if held == 0 and self.max_users and len(self._by_user) >= self.max_users:
            raise LimitExceeded(
                f"{self.what} already serves its limit of {self.max_users} users; try again "
                "later, or ask an administrator to raise teleport.connection_limits.max_users"
            )
        if max_for_user and held >= max_for_user:
            raise LimitExceeded(
                f"user {user!r} already has {held} connection(s) open, the limit of their "
                f"roles (max_connections: {max_for_user}); close one and try again"
            )
        self._by_user[user] = held + 1

    def release_user(self, user: str) -> None:
        """Forget a connection counted by ``acquire_user``."""
        held = self._by_user.get(user, 0)
        if held <= 1:
            self._by_user.pop(user, None)
        else:
            self._by_user[user] = held - 1


def check_sessions(open_sessions: int, max_sessions: int) -> None:
    """LimitExceeded when a connection that already has ``open_sessions`` session channels may
    not open another one (the roles' max_sessions; 0 = unlimited)."""
    if max_sessions and open_sessions >= max_sessions:
        raise LimitExceeded(
            f"this connection already has {open_sessions} session(s) open, the limit of your "
            f"roles (max_sessions: {max_sessions}); close one or open a new connection"
        )


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets by key: ``burst`` attempts at once, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int, max_keys: int = 100_000,
                 what: str = "requests", clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limiter needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.what = what
        self.clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _bucket(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        return bucket

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0 when it may now)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = min(float(self.burst), bucket.tokens + (self.clock() - bucket.at) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def check(self, key: str, label: str = "") -> None:
        """Take one token for ``key``; LimitExceeded (saying when to retry) when none is left."""
        now = self.clock()
        bucket = self._bucket(key, now)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return
        wait = math.ceil((1 - bucket.tokens) / self.rate)
        raise LimitExceeded(
            f"too many {self.what}{' ' + label if label else ''}: try again in {wait}s"
        )


class LoginRateLimits:
    """Login attempts per source address, and per user name from that address; the proxy and
    the auth service each keep one, so a flood is refused before it costs an argon2 check.

    The user bucket is per (user, address) on purpose: a bucket per user alone lets anybody keep
    a user out by trying that name from elsewhere. Guessing one user's password from many
    addresses is bounded by the lockout per (user, address) and the second factor."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.by_addr = RateLimiter(
            defaults.LOGIN_RATE_PER_ADDR, defaults.LOGIN_BURST_PER_ADDR,
            defaults.LOGIN_RATE_MAX_KEYS, what="login attempts", clock=clock,
        )
        self.by_user = RateLimiter(
            defaults.LOGIN_RATE_PER_USER, defaults.LOGIN_BURST_PER_USER,
            defaults.LOGIN_RATE_MAX_KEYS, what="login attempts", clock=clock,
        )

    def check(self, source: str, user: str) -> None:
        """LimitExceeded when this address or this user name has tried too often."""
        where = source or "your address"
        self.by_addr.check(source, f"from {where}")
        self.by_user.check(f"{user}\0{source}", f"for user {user!r} from {where}")
