"""Exponential backoff with full jitter: the one retry schedule of the auth client and etcd. Pure.

Full jitter (a uniform delay between 0 and the capped exponential) keeps many nodes and proxies
that lost the same auth server from coming back at the same instant.
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """The wait before retry number ``attempt`` (0 = the first retry): uniform in
    [base/2, min(cap, base * 2**attempt)], so never zero (a retry never spins) and never above cap."""
    high = min(cap, base * (2 ** max(attempt, 0)))
    low = min(base / 2, high)
    return (rng or random).uniform(low, high)
