"""Parsing the proxy subsystem and finding the target node."""

from __future__ import annotations

from typing import Any

import pytest

from teleport.errors import BadParameter, NotFound
from teleport.proxy.lookup import (
    ProxyRequest,
    filter_by_labels,
    label_selector,
    match_nodes,
    node_labels,
    parse_proxy_subsystem,
    pick_node,
)


def node(uuid: str, hostname: str, addr: str, labels: dict[str, str] | None = None,
         cmd: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": uuid, "labels": labels or {}},
            "spec": {"hostname": hostname, "addr": addr, "cmd_labels": cmd or {}}}


NODES = [
    node("u-1", "luna", "10.0.0.1:3022", {"env": "prod"}),
    node("u-2", "mars", "10.0.0.2:3022", {"env": "dev"}, {"kernel": {"period": "1h", "command": ["uname"], "result": "6.1\n"}}),
    node("u-3", "twin", "10.0.0.3:3022"),
    node("u-4", "twin", "10.0.0.4:3022"),
]


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("proxy:luna:3022", ProxyRequest("luna", 3022)),
        ("proxy:luna:1522@east", ProxyRequest("luna", 1522, "east")),
        ("proxy:luna", ProxyRequest("luna", 3022)),
        ("proxy:luna@east", ProxyRequest("luna", 3022, "east")),
        ("proxy:[::1]:22", ProxyRequest("::1", 22)),
        ("proxy:10.0.0.1:22", ProxyRequest("10.0.0.1", 22)),
    ],
)
def test_parse_proxy_subsystem(name: str, want: ProxyRequest) -> None:
    assert parse_proxy_subsystem(name) == want


@pytest.mark.parametrize("name", ["sftp", "proxy:", "proxy::22", "proxy:h:99999", "proxy:h:x", "proxy:[::1"])
def test_parse_proxy_subsystem_rejects(name: str) -> None:
    with pytest.raises(BadParameter):
        parse_proxy_subsystem(name)


def test_match_by_uuid_name_and_address() -> None:
    assert [n["metadata"]["name"] for n in match_nodes(NODES, "u-2", 3022)] == ["u-2"]
    assert [n["metadata"]["name"] for n in match_nodes(NODES, "luna", 22)] == ["u-1"]
    assert [n["metadata"]["name"] for n in match_nodes(NODES, "10.0.0.2", 3022)] == ["u-2"]
    assert match_nodes(NODES, "10.0.0.2", 22) == []  # same IP, another port: not that node
    assert [n["metadata"]["name"] for n in match_nodes(NODES, "mars.example", 3022, ["10.0.0.2"])] == ["u-2"]
    assert match_nodes(NODES, "venus", 3022) == []


def test_ambiguous_and_missing() -> None:
    with pytest.raises(NotFound, match="ambiguous node 'twin'"):
        pick_node(match_nodes(NODES, "twin", 3022), "twin")
    assert pick_node([], "x") is None
    assert pick_node(match_nodes(NODES, "u-3", 3022), "u-3") == NODES[2]


def test_labels() -> None:
    assert label_selector("luna") is None
    assert label_selector("env=prod,kernel=6.1") == {"env": "prod", "kernel": "6.1"}
    with pytest.raises(BadParameter):
        label_selector("=x")
    assert node_labels(NODES[1]) == {"env": "dev", "kernel": "6.1"}
    assert [n["metadata"]["name"] for n in filter_by_labels(NODES, {"env": "prod"})] == ["u-1"]
    assert [n["metadata"]["name"] for n in filter_by_labels(NODES, {"kernel": "6.1"})] == ["u-2"]
    assert filter_by_labels(NODES, {"env": "qa"}) == []


def test_an_ip_literal_matches_addresses_never_names() -> None:
    """A node calling itself "127.0.0.1" must not receive traffic meant for that address."""
    from teleport.proxy.lookup import match_nodes

    impostor = {"metadata": {"name": "b"}, "spec": {"hostname": "127.0.0.1", "addr": "127.0.0.1:4001"}}
    real = {"metadata": {"name": "a"}, "spec": {"hostname": "alpha", "addr": "127.0.0.1:4000"}}
    assert match_nodes([impostor, real], "127.0.0.1", 4000) == [real]
    assert match_nodes([impostor, real], "::ffff:127.0.0.1", 4000) == [real]
    assert match_nodes([impostor, real], "alpha", 3022) == [real]
