"""Hypothesis settings for the fuzz suite.

The default profile ("ci") is bounded so that the whole directory runs in well under a minute on
two cores; ``HYPOTHESIS_PROFILE=long`` runs many more examples for a deeper local search. No
example database is written (``database=None``): nothing lands in the repository.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

import tests.helpers  # noqa: F401  - puts this checkout's src first on sys.path

_COMMON = {
    "deadline": None,
    "database": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
}

settings.register_profile("ci", max_examples=200, **_COMMON)  # type: ignore[arg-type]
settings.register_profile("long", max_examples=5000, **_COMMON)  # type: ignore[arg-type]
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
