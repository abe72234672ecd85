"""What the proxy may dial: normalisation, the ssh_allowed_hosts rules, the protected ports."""

from __future__ import annotations

import ipaddress

import pytest

from teleport.errors import AccessDenied, BadParameter
from teleport.proxy.dialpolicy import (
    Endpoint,
    allowed_by_config,
    name_allowed,
    normalize_host,
    not_allowed,
    own_endpoint,
    parse_allow_entry,
    parse_allow_list,
    parse_ip,
    wildcard,
)
from teleport.proxy.lookup import match_nodes

ip = ipaddress.ip_address


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ("::FFFF:7f00:1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("FE80::1", "fe80::1"),
        ("TestNode.", "testnode"),
        ("Node.Example.COM.", "node.example.com"),
    ],
)
def test_normalize_host(text: str, want: str) -> None:
    assert normalize_host(text) == want


def test_parse_ip_refuses_non_canonical_forms() -> None:
    # the resolver reads these as 127.0.0.1; they are names here and the proxy resolves them
    for text in ("127.1", "0x7f000001", "2130706433", "fe80::1%eth0", "localhost"):
        assert parse_ip(text) is None


def test_allow_entries() -> None:
    rules = parse_allow_list(["10.0.0.0/8", "192.168.1.5:22", "[fd00::/8]:2222", "*.db.internal",
                              "web-?.example.com:22", "::ffff:172.16.0.0/108"])
    assert allowed_by_config(rules, None, ip("10.2.3.4"), 1234)
    assert allowed_by_config(rules, None, ip("192.168.1.5"), 22)
    assert not allowed_by_config(rules, None, ip("192.168.1.5"), 23)  # the port is part of it
    assert allowed_by_config(rules, None, ip("fd00::7"), 2222)
    assert not allowed_by_config(rules, None, ip("fd00::7"), 22)
    assert allowed_by_config(rules, "PG.db.internal.", ip("203.0.113.9"), 5432)  # name rule
    assert allowed_by_config(rules, "web-1.example.com", ip("203.0.113.9"), 22)
    assert not allowed_by_config(rules, "web-10.example.com", ip("203.0.113.9"), 22)
    # a mapped IPv6 network is the IPv4 network it maps
    assert allowed_by_config(rules, None, ip("172.16.9.9"), 22)
    # a name rule never matches an IP literal request
    assert not allowed_by_config(parse_allow_list(["*"]), None, ip("127.0.0.1"), 22)
    assert name_allowed(rules, "x.db.internal", 1) and not name_allowed(rules, "x.db.external", 1)
    # empty by default: nothing is allowed
    assert not allowed_by_config((), "anything", ip("10.0.0.1"), 22)


@pytest.mark.parametrize(
    "entry",
    ["", "10.0.0.0/33", "10.0.0.0/8:0", "host:99999", "a b", "host:x", "[::1", "[::1]x",
     ":22", "bad_glob!", "x" * 64 + ".com", "10.0.0.0/8/8"],
)
def test_bad_allow_entries(entry: str) -> None:
    with pytest.raises(BadParameter):
        parse_allow_entry(entry)


def _never_local(_: object) -> bool:
    return False


def test_own_endpoint_spellings_of_this_host() -> None:
    eps = [
        Endpoint("auth server", 3025, frozenset({ip("127.0.0.1")})),
        Endpoint("proxy web listener", 3080, None),  # 0.0.0.0: every local address
    ]
    for target in ("127.0.0.1", "127.0.0.2", "::ffff:127.0.0.1", "::1", "0.0.0.0", "::"):
        assert own_endpoint(eps, ip(target), 3025, _never_local) is not None, target
        assert own_endpoint(eps, ip(target), 3080, _never_local) is not None, target
    # this host's other address, told by is_local
    assert own_endpoint(eps, ip("10.9.9.9"), 3080, lambda a: str(a) == "10.9.9.9") is not None
    assert own_endpoint(eps, ip("10.9.9.9"), 3080, _never_local) is None
    # other ports of this host and the same port elsewhere are not protected
    assert own_endpoint(eps, ip("127.0.0.1"), 3022, _never_local) is None
    assert own_endpoint(eps, ip("10.1.1.1"), 3025, _never_local) is None
    # a remote auth server by its address
    remote = [Endpoint("auth server", 3025, frozenset({ip("10.0.0.5")}))]
    assert own_endpoint(remote, ip("::ffff:10.0.0.5"), 3025, _never_local) is not None
    assert own_endpoint(remote, ip("10.0.0.6"), 3025, _never_local) is None


def test_wildcard_listen_hosts() -> None:
    assert all(wildcard(h) for h in ("", "0.0.0.0", "::", "[::]"))
    assert not wildcard("127.0.0.1") and not wildcard("localhost")


def test_refusal_message_says_what_to_do() -> None:
    exc = not_allowed("10.0.0.1", 22)
    assert isinstance(exc, AccessDenied)
    assert "not a registered node you may reach" in exc.message
    assert "proxy_service.ssh_allowed_hosts" in exc.message


def _node(uuid: str, hostname: str, addr: str) -> dict[str, object]:
    return {"metadata": {"name": uuid}, "spec": {"hostname": hostname, "addr": addr}}


def test_match_nodes_normalises_every_spelling() -> None:
    nodes = [_node("3f2a-uuid", "Luna", "127.0.0.1:3022"), _node("u-6", "six", "[::1]:3022")]
    for host in ("127.0.0.1", "::ffff:127.0.0.1", "[::ffff:127.0.0.1]", "luna", "LUNA.", "3F2A-UUID"):
        assert [n["metadata"]["name"] for n in match_nodes(nodes, host, 3022)] == ["3f2a-uuid"], host  # type: ignore[index]
    assert [n["metadata"]["name"] for n in match_nodes(nodes, "0:0::1", 3022)] == ["u-6"]  # type: ignore[index]
    # resolved addresses are normalised too
    assert match_nodes(nodes, "alias", 3022, ["::ffff:127.0.0.1"])[0]["metadata"]["name"] == "3f2a-uuid"  # type: ignore[index]
