"""Password hashing off the event loop: a small thread pool with a bounded queue.

argon2id costs ~30 ms of CPU and ~19 MiB per check by design. Run on the event loop, a burst of
logins stalls every other request of the auth service; in threads (argon2-cffi releases the GIL
while hashing) the loop keeps serving. The queue is bounded: when HASH_QUEUE_MAX checks already
wait, a new one fails at once with LimitExceeded (HTTP 429) instead of piling up memory and
latency for everyone.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from teleport import defaults
from teleport.auth import secrets
from teleport.errors import LimitExceeded


class PasswordHasher:
    """``await verify(...)`` / ``await hash(...)`` on at most ``workers`` threads."""

    def __init__(self, workers: int = defaults.HASH_WORKERS,
                 queue_max: int = defaults.HASH_QUEUE_MAX) -> None:
        self.workers = workers
        self.queue_max = queue_max
        self.pending = 0  # checks running or waiting (touched on the loop thread only)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")

    def _admit(self) -> None:
        if self.pending >= self.workers + self.queue_max:
            raise LimitExceeded(
                "the auth server is busy checking passwords (too many logins at once); "
                "try again in a few seconds"
            )
        self.pending += 1

    async def verify(self, encoded_hash: str, password: str) -> bool:
        """True when ``password`` matches the argon2 hash; LimitExceeded when the queue is full."""
        self._admit()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._pool, secrets.verify_password, encoded_hash, password
            )
        finally:
            self.pending -= 1

    async def hash(self, password: str) -> str:
        """The argon2id hash of ``password``; LimitExceeded when the queue is full."""
        self._admit()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, secrets.hash_password, password)
        finally:
            self.pending -= 1

    def close(self) -> None:
        """Stop the worker threads (running checks finish first)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
