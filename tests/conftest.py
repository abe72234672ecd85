"""Fixtures shared by the integration and interop tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import SRC  # noqa: F401  (puts this checkout's src first on sys.path)
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
