"""Fuzz: what a node joining through a proxy reads from the network or disk (the proxy's ping
answer, its saved list of proxies) and the proxies' tunnel announcements auth filters nodes by."""

from __future__ import annotations

import os
import tempfile

from hypothesis import given
from hypothesis import strategies as st

from teleport.errors import BadParameter
from teleport.reversetunnel import viaproxy
from teleport.reversetunnel.route import online_only, tunnels_of

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
_ping = st.one_of(_json, st.fixed_dictionaries(
    {"proxy": st.fixed_dictionaries({"tunnel": st.fixed_dictionaries({"public_addr": _json})})}))


@given(_ping)
def test_ping_gives_an_address_or_a_clear_refusal(ping: object) -> None:
    try:
        out = viaproxy.tunnel_addr_of(ping, "proxy.example:3080")
    except BadParameter as exc:
        assert "tunnel address" in str(exc)
        return
    host, _, port = out.rpartition(":")
    assert host and 1 <= int(port) <= 65535 and host not in ("0.0.0.0", "::")


@given(st.binary(max_size=200))
def test_saved_proxies_file_never_breaks_startup(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "proxies.json"), "wb") as f:
            f.write(data)
        out = viaproxy.load_cached(d)
        assert all(isinstance(p, viaproxy.ProxyInfo) for p in out)


@given(st.lists(_json, max_size=5), st.lists(_json, max_size=5))
def test_tunnel_announcements_of_any_shape(proxies: list[object], nodes: list[object]) -> None:
    ps = [p for p in proxies if isinstance(p, dict)]
    ns = [n for n in nodes if isinstance(n, dict)]
    assert all(isinstance(i, str) for i in tunnels_of(ps))
    kept = online_only(ns, ps)
    assert all(n in ns for n in kept)


@given(st.lists(st.one_of(_json, st.fixed_dictionaries({"spec": st.fixed_dictionaries(
    {"tunnel_public_addr": _json, "public_addr": _json})})), max_size=6))
def test_proxy_announcements_give_addresses_only(proxies: list[object]) -> None:
    from teleport.reversetunnel import discovery

    for addrs in (discovery.announced_tunnel_addrs(proxies), discovery.announced_web_addrs(proxies)):
        for a in addrs:
            host, _, port = a.rpartition(":")
            assert host and host not in ("0.0.0.0", "::") and 1 <= int(port) <= 65535


@given(st.binary(max_size=16))
def test_shared_port_sniffing_is_decided_by_the_banner_only(first: bytes) -> None:
    from teleport.reversetunnel.mux import SSH_BANNER, is_ssh

    out = is_ssh(first)
    if first.startswith(SSH_BANNER):
        assert out is True
    elif SSH_BANNER.startswith(first):
        assert out is None  # a prefix of the banner (or nothing): wait for more
    else:
        assert out is False
