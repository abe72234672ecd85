"""Property tests of the proxy subsystem parser: it faces every logged-in client."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from teleport.errors import BadParameter
from teleport.proxy.lookup import ProxyRequest, format_proxy_subsystem, parse_proxy_subsystem

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)
hostnames = st.lists(_label, min_size=1, max_size=4).map(".".join).filter(lambda h: len(h) <= 253)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(min_value=1, max_value=65535)
clusters = st.one_of(st.just(""), st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}", fullmatch=True))


@FUZZ
@given(st.text(max_size=300))
def test_any_text_is_parsed_or_bad_parameter(text: str) -> None:
    try:
        req = parse_proxy_subsystem("proxy:" + text)
    except BadParameter:
        return
    assert isinstance(req, ProxyRequest)
    assert "\x00" not in req.host and 0 <= req.port < 65536


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_decoded_are_parsed_or_bad_parameter(raw: bytes) -> None:
    # asyncssh hands the subsystem name over decoded; arbitrary bytes end up as surrogates
    text = raw.decode("utf-8", errors="surrogateescape")
    for name in (text, "proxy:" + text):
        try:
            parse_proxy_subsystem(name)
        except BadParameter:
            pass


@FUZZ
@given(st.one_of(hostnames, ipv4, ipv6), ports, clusters)
def test_valid_requests_round_trip(host: str, port: int, cluster: str) -> None:
    req = ProxyRequest(host, port, cluster)
    assert parse_proxy_subsystem(format_proxy_subsystem(req)) == req


@FUZZ
@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,30}", fullmatch=True))
def test_auth_gateway_form_round_trips(cluster: str) -> None:
    req = parse_proxy_subsystem(f"proxy:@{cluster}")
    assert req == ProxyRequest("", 0, cluster)
    assert format_proxy_subsystem(req) == f"proxy:@{cluster}"


@pytest.mark.parametrize(
    "name",
    [
        "proxy:node\x00evil:22",  # NUL byte
        "proxy:" + "a" * 64 + ".example.com:22",  # label over 63 characters
        "proxy:" + ".".join(["a" * 60] * 5) + ":22",  # name over 253 characters
        "proxy:host:22@",  # empty cluster
        "proxy:host:22@bad cluster",
        "proxy:host:22@-x",
        "proxy:host:",  # empty port
        "proxy:[host]:22",  # a name in brackets
        "proxy:[127.0.0.1]:22",
        "proxy:fe80::1%eth0",  # zone id
        "proxy:ho st:22",
        "proxy:host:٣٣",  # non-ASCII digits
        "proxy:host:0",
        "proxy:-host:22",
        "proxy:host..name:22",
        "proxy:" + "a" * 2000,
    ],
)
def test_bad_names_are_bad_parameter(name: str) -> None:
    with pytest.raises(BadParameter) as info:
        parse_proxy_subsystem(name)
    assert "\x00" not in info.value.message  # shown escaped, never raw, in logs and stderr


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("proxy:[::ffff:127.0.0.1]:3022", ProxyRequest("::ffff:127.0.0.1", 3022)),
        ("proxy:TestNode.:22@c1", ProxyRequest("TestNode.", 22, "c1")),
        ("proxy:node_1:22", ProxyRequest("node_1", 22)),  # node names may carry "_"
        ("proxy:" + "a" * 63 + ".com:22", ProxyRequest("a" * 63 + ".com", 22)),
    ],
)
def test_edge_names_accepted(name: str, want: ProxyRequest) -> None:
    assert parse_proxy_subsystem(name) == want
