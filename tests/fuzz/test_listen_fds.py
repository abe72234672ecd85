"""Fuzz: TELEPORT_LISTEN_FDS, read by a process started by a SIGHUP restart: any text gives a map
of addresses to descriptors above stderr, never an exception."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from teleport.service.listeners import parse_fds

_values = st.one_of(st.integers(-5, 2**40), st.booleans(), st.text(max_size=5), st.none(), st.floats())


@given(st.one_of(st.text(max_size=200), st.dictionaries(st.text(max_size=20), _values).map(json.dumps),
                 st.lists(_values).map(json.dumps)))
def test_listen_fds_are_addresses_to_descriptors(text: str) -> None:
    out = parse_fds(text)
    assert all(isinstance(k, str) and type(v) is int and v > 2 for k, v in out.items())
