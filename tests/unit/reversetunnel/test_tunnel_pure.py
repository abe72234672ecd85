"""Pure parts of reverse tunnels: who may open one, how a node is routed, the agent's backoff."""

from __future__ import annotations

import random

import pytest

from teleport import defaults
from teleport.ca import keys, sshcert
from teleport.client.clusters import check_cluster
from teleport.errors import AccessDenied, NotFound
from teleport.reversetunnel.agent import backoff_delay
from teleport.reversetunnel.authz import check_agent_cert
from teleport.reversetunnel.route import route_for

CLUSTER = "example"


def _ca() -> tuple[keys.PrivateKey, str]:
    k = keys.generate_private_key()
    return k, keys.public_key_to_openssh(k)


def _host_cert(ca: keys.PrivateKey, host_id: str = "h1", role: str = "Node", cluster: str = CLUSTER) -> str:
    pub = keys.public_key_to_openssh(keys.generate_private_key())
    return sshcert.sign_host_cert(ca, pub, host_id=host_id, nodename="n1", cluster_name=cluster, role=role)


def test_own_host_id_only() -> None:
    ca, ca_pub = _ca()
    line = _host_cert(ca)
    assert check_agent_cert(line, f"h1.{CLUSTER}", CLUSTER, [ca_pub]).key_id == "h1"
    for user in (f"h2.{CLUSTER}", "h1", "n1", "h1.other"):
        with pytest.raises(AccessDenied, match="only as"):
            check_agent_cert(line, user, CLUSTER, [ca_pub])


def test_wrong_ca_role_cluster_and_user_certs_refused() -> None:
    ca, ca_pub = _ca()
    other, other_pub = _ca()
    with pytest.raises(AccessDenied):
        check_agent_cert(_host_cert(other), f"h1.{CLUSTER}", CLUSTER, [ca_pub])
    with pytest.raises(AccessDenied, match="Proxy"):
        check_agent_cert(_host_cert(ca, role="Proxy"), f"h1.{CLUSTER}", CLUSTER, [ca_pub])
    with pytest.raises(AccessDenied, match="cluster"):
        check_agent_cert(_host_cert(ca, cluster="leaf"), f"h1.{CLUSTER}", CLUSTER, [ca_pub])
    pub = keys.public_key_to_openssh(keys.generate_private_key())
    user = sshcert.sign_user_cert(ca, pub, username="joe", principals=[f"h1.{CLUSTER}"], ttl=600, roles=["admin"])
    with pytest.raises(AccessDenied, match="user certificate"):
        check_agent_cert(user, f"h1.{CLUSTER}", CLUSTER, [ca_pub])
    del other_pub


def test_route_decision() -> None:
    direct = {"metadata": {"name": "a"}, "spec": {"addr": "10.0.0.1:3022", "hostname": "a"}}
    tunnelled = {"metadata": {"name": "b"}, "spec": {"addr": defaults.TUNNEL_NODE_ADDR, "hostname": "bee"}}
    assert route_for(direct, set()).tunnel is None
    assert route_for(tunnelled, {"b"}).tunnel == "b"
    with pytest.raises(NotFound, match="'bee' .* is offline"):
        route_for(tunnelled, {"a"})


def test_backoff_is_bounded_and_jittered() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, rng) for n in range(40)]
    assert all(0 < d <= defaults.TUNNEL_RECONNECT_MAX for d in delays)
    assert len({round(d, 3) for d in delays[10:]}) > 20  # jitter: not one fixed value
    assert max(backoff_delay(0, random.Random(s)) for s in range(50)) <= defaults.TUNNEL_RECONNECT_MIN


def test_unknown_cluster_is_an_error() -> None:
    assert check_cluster("", "main") == "main"
    assert check_cluster("main", "main") == "main"
    with pytest.raises(NotFound, match="'leaf' is not known.*tsh clusters"):
        check_cluster("leaf", "main")
