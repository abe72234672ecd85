"""authservers.json (0600, atomic, precedence over the file), the backoff schedule, and an
AuthClient failing over between auth servers with bounded, jittered rounds."""

from __future__ import annotations

import os
import random
import ssl
import stat
import time
from pathlib import Path

import pytest

from teleport import defaults
from teleport.auth.client import AuthClient
from teleport.errors import ConnectionProblem
from teleport.retry import backoff_delay
from teleport.service import authservers
from tests.helpers import free_port


def test_backoff_is_jittered_bounded_and_never_zero() -> None:
    rng = random.Random(1)
    for attempt in range(12):
        delays = {backoff_delay(attempt, 0.25, 2.0, rng) for _ in range(50)}
        assert min(delays) >= 0.125 and max(delays) <= min(2.0, 0.25 * 2**attempt)
        if attempt:
            assert len(delays) > 40  # jitter: not one fixed value


def test_cache_file_is_private_and_takes_precedence(tmp_path: Path) -> None:
    d = str(tmp_path)
    assert authservers.startup_addrs(d, ["a:3025"]) == ["a:3025"]  # no file yet
    authservers.save_cached(d, ["b:3025", "c:3025"])
    path = authservers.cache_path(d)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [n for n in os.listdir(d) if ".tmp" in n] == []  # written by rename, no leftovers
    # the cluster's list first, the configured server kept after it
    assert authservers.startup_addrs(d, ["a:3025", "c:3025"]) == ["b:3025", "c:3025", "a:3025"]
    with open(path, "w") as f:
        f.write("{broken")
    assert authservers.startup_addrs(d, ["a:3025"]) == ["a:3025"]


async def test_client_gives_up_after_bounded_rounds() -> None:
    dead = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    client = AuthClient(dead, ssl.create_default_context(), retry_rounds=3)
    try:
        started = time.monotonic()
        with pytest.raises(ConnectionProblem) as err:
            await client.ping()
        took = time.monotonic() - started
        assert "3 attempts" in err.value.message and dead[0] in err.value.message
        assert client.retries == 2
        cap = defaults.AUTH_RETRY_BASE_DELAY + 2 * defaults.AUTH_RETRY_BASE_DELAY
        assert defaults.AUTH_RETRY_BASE_DELAY / 2 * 2 <= took < cap + 2
    finally:
        await client.close()


def test_set_addrs_never_empties_the_list() -> None:
    client = AuthClient(["a:1"], ssl.create_default_context())
    client.set_addrs([])
    assert client.addrs == ["a:1"]
    client.set_addrs(["b:1", "a:1", "b:1"])
    assert client.addrs == ["b:1", "a:1"]
