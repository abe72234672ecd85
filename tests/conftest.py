"""Fixtures shared by the integration and interop tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# importing tests.helpers puts this checkout's src first on sys.path
from tests.helpers import Cluster, destroy, new_cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A real auth+proxy process on loopback ports in a temporary data_dir, stopped by pid."""
    c = new_cluster()
    try:
        c.start()
        yield c
    finally:
        destroy(c)
