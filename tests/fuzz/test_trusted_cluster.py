"""Fuzz: the trusted cluster parsers (the `trusted_cluster` resource, the static key_file, the
requests a root's proxy writes on a leaf's tunnel): junk gives BadParameter, never a crash."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from teleport.errors import BadParameter
from teleport.reversetunnel.clusterchan import parse_request
from teleport.trustedcluster.resource import parse_key_file, parse_trusted_cluster
from tests.fuzz.strategies import expect_ok_or_error, json_like, mutated

VALID: dict[str, Any] = {
    "kind": "trusted_cluster",
    "version": "v2",
    "metadata": {"name": "main"},
    "spec": {
        "enabled": True,
        "token": "abc",
        "web_proxy_addr": "main:3080",
        "tunnel_addr": "main:3024",
        "role_map": [{"remote": "^a.*$", "local": ["x"]}],
    },
}


@given(st.data())
def test_trusted_cluster_resource_mutations(data: st.DataObject) -> None:
    doc = data.draw(mutated(copy.deepcopy(VALID)))  # type: ignore[arg-type]
    tc = expect_ok_or_error(parse_trusted_cluster, doc, errors=(BadParameter,))
    if tc is not None:
        assert parse_trusted_cluster(tc.to_dict(with_token=True)) == tc


@given(json_like)
def test_trusted_cluster_resource_junk(doc: Any) -> None:
    expect_ok_or_error(parse_trusted_cluster, doc, errors=(BadParameter,))


@given(st.text(max_size=400))
def test_key_file_junk(text: str) -> None:
    expect_ok_or_error(parse_key_file, text, "f", errors=(BadParameter,))


@given(st.binary(max_size=300))
def test_cluster_request_junk(raw: bytes) -> None:
    expect_ok_or_error(parse_request, raw, errors=(BadParameter,))
