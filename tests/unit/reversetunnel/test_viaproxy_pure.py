"""Pure parts of joining through the proxy and of going offline with the tunnel: the tunnel
address a proxy announces, the saved list of proxies, and which tunnelled nodes are online."""

from __future__ import annotations

import json
import os

import pytest

from teleport import defaults
from teleport.errors import BadParameter
from teleport.reversetunnel import viaproxy
from teleport.reversetunnel.route import online_only, tunnels_of


def _node(host_id: str, addr: str = defaults.TUNNEL_NODE_ADDR) -> dict[str, object]:
    return {"kind": "node", "metadata": {"name": host_id}, "spec": {"addr": addr, "hostname": host_id}}


def test_tunnel_address_from_ping() -> None:
    ping = {"proxy": {"tunnel": {"public_addr": "proxy.example.com:4024"}}}
    assert viaproxy.tunnel_addr_of(ping, "proxy.example.com:3080") == "proxy.example.com:4024"
    # no port: the default tunnel port; nothing announced: the web host and the default port
    assert viaproxy.tunnel_addr_of({"proxy": {"tunnel": {"public_addr": "p.example"}}}, "x:1") == \
        f"p.example:{defaults.PROXY_TUNNEL_PORT}"
    assert viaproxy.tunnel_addr_of({"proxy": {}}, "10.0.0.5:3080") == f"10.0.0.5:{defaults.PROXY_TUNNEL_PORT}"
    assert viaproxy.tunnel_addr_of({"proxy": {}}, "[fd00::1]:3080") == f"[fd00::1]:{defaults.PROXY_TUNNEL_PORT}"


@pytest.mark.parametrize("bad", ["0.0.0.0:3024", "host:99999", "a b:1", "-oProxyCommand=x:1"])
def test_bad_announced_tunnel_address_is_refused(bad: str) -> None:
    with pytest.raises(BadParameter, match="tunnel address"):
        viaproxy.tunnel_addr_of({"proxy": {"tunnel": {"public_addr": bad}}}, "p:3080")


def test_saved_proxies_round_trip_and_junk(tmp_path: object) -> None:
    d = str(tmp_path)
    assert viaproxy.load_cached(d) == []
    infos = [viaproxy.ProxyInfo("p1:3080", "p1:3024"), viaproxy.ProxyInfo("p2:3080", "p2:3024")]
    viaproxy.save_cached(d, infos)
    assert os.stat(viaproxy.cache_path(d)).st_mode & 0o777 == 0o600
    assert viaproxy.load_cached(d) == infos
    for junk in ("{", json.dumps({"proxies": [{"web_addr": 1}]}), json.dumps([1]), "null"):
        with open(viaproxy.cache_path(d), "w") as f:
            f.write(junk)
        assert viaproxy.load_cached(d) == []


def test_tunnelled_node_is_online_only_while_a_proxy_holds_its_tunnel() -> None:
    direct, t1, t2 = _node("d", "10.0.0.1:3022"), _node("t1"), _node("t2")
    proxies = [{"spec": {"tunnels": ["t1"]}}, {"spec": {"tunnels": "junk"}}, {"spec": {}}]
    assert tunnels_of(proxies) == {"t1"}
    assert online_only([direct, t1, t2], proxies) == [direct, t1]
    # no proxy at all: every tunnelled node is offline, direct nodes are untouched
    assert online_only([direct, t1, t2], []) == [direct]
    # any of several proxies is enough
    assert online_only([t2], [{"spec": {"tunnels": ["x"]}}, {"spec": {"tunnels": ["t2"]}}]) == [t2]


def test_agents_follow_the_announced_tunnel_addresses() -> None:
    from teleport.reversetunnel import discovery

    proxies = [
        {"spec": {"tunnel_public_addr": "p1.example:3024", "public_addr": "p1.example:3080"}},
        {"spec": {"tunnel_public_addr": "p2.example", "public_addr": "p2.example"}},
        {"spec": {"tunnel_public_addr": "0.0.0.0:3024"}},  # names no host: skipped
        {"spec": {"tunnel_public_addr": "bad host:1"}},
        {"spec": {}}, {"spec": "junk"}, "junk",
    ]
    assert discovery.announced_tunnel_addrs(proxies) == ["p1.example:3024", f"p2.example:{defaults.PROXY_TUNNEL_PORT}"]
    assert discovery.announced_web_addrs(proxies) == ["p1.example:3080", f"p2.example:{defaults.PROXY_WEB_PORT}"]
    # nothing announced (no proxy registered yet): keep the configured address
    assert discovery.wanted([], "lb.example:3024") == ["lb.example:3024"]
    assert discovery.wanted(["a:1", "b:2"], "lb.example:3024") == ["a:1", "b:2"]


def test_shared_port_tells_ssh_from_tls_by_the_first_bytes() -> None:
    from teleport.reversetunnel.mux import is_ssh

    assert is_ssh(b"SSH-2.0-x") is True and is_ssh(b"SSH-") is True
    assert is_ssh(b"S") is None and is_ssh(b"SSH") is None  # not enough yet
    assert is_ssh(b"\x16\x03\x01") is False and is_ssh(b"GET ") is False and is_ssh(b"SSX") is False
