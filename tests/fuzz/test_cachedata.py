"""Fuzz: the cache snapshot a node or proxy reads from auth and from its data_dir: any input is a
checked CacheData or a BadParameter, never another exception."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from teleport.errors import AccessDenied, TeleportError
from teleport.service.cachedata import CacheData
from tests.fuzz.strategies import expect_ok_or_error, mutated

_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)

VALID: dict[str, Any] = {
    "cluster_name": "c1", "version": "v", "session_recording": "node",
    "authorities": [{"spec": {"type": "user", "checking_keys": []}}],
    "roles": [{"kind": "role", "version": "v3", "metadata": {"name": "r"},
               "spec": {"allow": {"logins": ["root"], "node_labels": {"*": "*"}}}}],
    "users": [{"name": "u", "roles": ["r"], "traits": {"logins": ["root"]}}],
    "nodes": [{"metadata": {"name": "n", "labels": {"a": "b"}}, "spec": {}}],
}


def _decide(data: CacheData) -> None:
    for user in ("u", "x"):
        try:
            data.check_ssh_access(user, "root", {"a": "b"})
            data.visible_nodes(user)
        except AccessDenied:
            pass


@given(st.one_of(_json, mutated(VALID)))
def test_a_snapshot_is_checked_or_refused(value: Any) -> None:
    data = expect_ok_or_error(CacheData.parse, value, "c1", errors=(TeleportError,))
    if data is not None:
        assert data.cluster_name == "c1"
        _decide(data)
