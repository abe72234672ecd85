"""Fuzz: the `recording_proxy` part of an active-session record (read by `tsh join` from auth's
registry): a (host, port) to dial through the proxy, or None; never an exception."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from teleport.types.session import RECORDING_PROXY, target_of

_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)


@given(st.one_of(_json, st.fixed_dictionaries({"host": _json, "port": _json})))
def test_target_is_a_host_and_port_or_none(via: Any) -> None:
    out = target_of({RECORDING_PROXY: via})
    if out is not None:
        host, port = out
        assert isinstance(host, str) and host
        assert type(port) is int and 0 < port < 65536
