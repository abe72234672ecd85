"""Regression tests for the holes an outside review found at the door (issue 7, items 1, 2 and the
"bodies are parsed before authorization" findings), each attack made over the network against
real processes."""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
import uuid
from typing import Any

import aiohttp
import pytest
import yarl

from teleport.defaults import AUTH_SERVER_NAME
from tests.helpers import Cluster

pytestmark = pytest.mark.integration


def _ca(cluster: Cluster) -> str:
    with open(os.path.join(cluster.data_dir, "keys", "tls-ca.pem")) as f:
        return f.read()


async def auth_call(cluster: Cluster, method: str, path: str, body: Any = None,
                    cert: tuple[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any]:
    ctx = ssl.create_default_context(cadata=_ca(cluster))
    if cert:
        ctx.load_cert_chain(*cert)
    url = yarl.URL(f"https://{cluster.auth_addr}{path}", encoded=True)
    async with aiohttp.ClientSession() as s:
        kw: dict[str, Any] = {"data": raw} if raw is not None else {"json": body}
        async with s.request(method, url, ssl=ctx, server_hostname=AUTH_SERVER_NAME, **kw) as r:
            return r.status, await r.json(content_type=None)


async def proxy_get(cluster: Cluster, raw_path: str) -> tuple[int, Any]:
    """GET a path on the proxy's web port exactly as written (no client-side normalisation)."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE
    url = yarl.URL(f"https://{cluster.web_addr}{raw_path}", encoded=True)
    async with aiohttp.ClientSession() as s:
        async with s.get(url, ssl=insecure) as r:
            return r.status, await r.json(content_type=None)


def admin_cert(cluster: Cluster) -> tuple[str, str]:
    keys = os.path.join(cluster.data_dir, "keys")
    return os.path.join(keys, "admin-cert.pem"), os.path.join(keys, "admin-key.pem")


def register(cluster: Cluster, token: str, host_id: str, nodename: str = "n1", role: str = "node",
             cert: tuple[str, str] | None = None) -> tuple[int, Any]:
    body = {"token": token, "role": role, "host_id": host_id, "nodename": nodename,
            "addresses": ["10.0.0.9"]}
    return asyncio.run(auth_call(cluster, "POST", "/v1/register", body, cert))


def save_tls(ident: dict[str, Any], d: str) -> tuple[str, str]:
    cert, key = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
    with open(cert, "w") as f:
        f.write(ident["tls_cert"])
    with open(key, "w") as f:
        f.write(ident["tls_key"])
    return cert, key


# item 1: the proxy must not carry an anonymous caller into other auth API routes ---------------
@pytest.mark.parametrize("evil", [
    "..%2F..%2Fv1%2Fnodes",
    "..%2F..%2Fv1%2Fauthorities",
    "..%2F..%2Fv1%2Fproxies",
    "%2E%2E%2F%2E%2E%2Fv1%2Fnodes",
    "x%2F..%2F..%2F..%2Fv1%2Fnodes%3F",
    "..%252F..%252Fv1%252Fnodes",
])
def test_invite_lookup_cannot_reach_other_auth_routes(cluster: Cluster, evil: str) -> None:
    status, body = asyncio.run(proxy_get(cluster, f"/v1/webapi/users/invites/{evil}"))
    assert status == 400, body
    assert "invalid token" in body["message"]
    text = str(body)
    assert "checking_keys" not in text and "hostname" not in text


def test_auth_routes_refuse_names_outside_their_syntax(cluster: Cluster) -> None:
    cert = admin_cert(cluster)
    for path in ("/v1/users/..%2Fx", "/v1/roles/a%00b", "/v1/authorities/..%2Fusers",
                 "/v1/sessions/..%2F..%2Fetc"):
        status, body = asyncio.run(auth_call(cluster, "GET", path, cert=cert))
        assert status == 400, (path, body)


def test_proxy_identity_may_only_do_what_its_routes_need(cluster: Cluster) -> None:
    keys = os.path.join(cluster.data_dir, "keys")
    cert = os.path.join(keys, "proxy-cert.pem"), os.path.join(keys, "proxy-key.pem")
    # (it lists proxies since the reverse tunnels: agents and proxies discover each other)
    for method, path in (("GET", "/v1/users"), ("GET", "/v1/tokens"),
                         ("GET", "/v1/events"), ("GET", "/v1/roles")):
        status, body = asyncio.run(auth_call(cluster, method, path, cert=cert))
        assert status == 403, (path, body)
    status, _ = asyncio.run(auth_call(cluster, "GET", "/v1/nodes", cert=cert))
    assert status == 200


# item 2: a join token never takes over an existing host -----------------------------------------
def test_join_token_cannot_reissue_an_existing_host(cluster: Cluster) -> None:
    host_id = str(uuid.uuid4())
    status, ident = register(cluster, cluster.static_token, host_id)
    assert status == 200, ident
    # the same host id again, with the static token and with a fresh dynamic token
    status, err = register(cluster, cluster.static_token, host_id, nodename="impostor")
    assert status == 403 and "already registered" in err["message"], err
    out = cluster.tctl("nodes", "add", "--ttl=5m").stdout
    token = out.split("The invite token: ")[1].split()[0]
    status, err = register(cluster, token, host_id)
    assert status == 403 and "already registered" in err["message"], err
    # the host itself, proving it with its current identity, may get a new one
    with tempfile.TemporaryDirectory() as d:
        status, again = register(cluster, token, host_id, cert=save_tls(ident, d))
    assert status == 200 and again["host_id"] == host_id
    # another host's identity is no proof
    with tempfile.TemporaryDirectory() as d:
        _, other = register(cluster, cluster.static_token, str(uuid.uuid4()))
        status, err = register(cluster, token, host_id, cert=save_tls(other, d))
    assert status == 403, err


def test_join_token_cannot_take_over_the_proxy(cluster: Cluster) -> None:
    with open(os.path.join(cluster.data_dir, "host_uuid")) as f:
        proxy_host_id = f.read().strip()
    for role in ("proxy", "node"):
        status, err = register(cluster, cluster.static_token, proxy_host_id, role=role)
        assert status == 403 and "already registered" in err["message"], err


def test_node_identity_heartbeats_only_itself_and_names_stay_unique(cluster: Cluster) -> None:
    victim = str(uuid.uuid4())
    status, victim_ident = register(cluster, cluster.static_token, victim, nodename="victim")
    assert status == 200
    status, ident = register(cluster, cluster.static_token, str(uuid.uuid4()), nodename="attacker")
    assert status == 200
    with tempfile.TemporaryDirectory() as d:
        vcert = save_tls(victim_ident, os.path.join(d))
        beat = {"kind": "node", "version": "v2", "metadata": {"name": victim},
                "spec": {"hostname": "victim", "addr": "127.0.0.1:1"}}
        assert asyncio.run(auth_call(cluster, "POST", "/v1/nodes", beat, vcert))[0] == 200
        os.makedirs(os.path.join(d, "a"))
        acert = save_tls(ident, os.path.join(d, "a"))
        status, err = asyncio.run(auth_call(cluster, "POST", "/v1/nodes", beat, acert))
        assert status == 403 and "only heartbeat for itself" in err["message"]
    # a new host may not register under the name of an online node
    status, err = register(cluster, cluster.static_token, str(uuid.uuid4()), nodename="victim")
    assert status == 403 and "in use by online node" in err["message"], err


def test_token_roles_bound_what_it_registers(cluster: Cluster) -> None:
    out = cluster.tctl("nodes", "add", "--ttl=5m").stdout
    token = out.split("The invite token: ")[1].split()[0]
    for role in ("proxy", "auth"):
        status, err = register(cluster, token, str(uuid.uuid4()), role=role)
        assert status == 403 and "does not allow the role" in err["message"]
    status, err = register(cluster, token, str(uuid.uuid4()), role="admin")
    assert status == 400 and "unknown host role" in err["message"]


# authorize before parsing; bad bodies are 4xx with a message -----------------------------------
@pytest.mark.parametrize("path,kind", [("/v1/roles", "role"), ("/v1/users", "user")])
def test_bodies_are_not_parsed_before_authorization(cluster: Cluster, path: str, kind: str) -> None:
    body = {kind: {"kind": kind, "version": "v3", "metadata": {"name": "x", "expires": 1e20},
                   "spec": {}}}
    status, err = asyncio.run(auth_call(cluster, "POST", path, body))
    assert status == 403 and "client certificate" in err["message"], err


def test_bad_bodies_answer_4xx_with_a_message(cluster: Cluster) -> None:
    cert = admin_cert(cluster)
    cases: list[tuple[str, str, Any, bytes | None]] = [
        ("POST", "/v1/invites", {"user": "u1", "ttl": "nan", "proxy_addr": "p:3080"}, None),
        ("POST", "/v1/invites", {"user": "u1", "ttl": "inf", "proxy_addr": "p:3080"}, None),
        ("POST", "/v1/invites", {"user": "u1", "logins": 5, "proxy_addr": "p:3080"}, None),
        ("POST", "/v1/invites", {"user": "u1", "roles": [1, 2], "proxy_addr": "p:3080"}, None),
        ("POST", "/v1/invites", {"user": "../u1", "proxy_addr": "p:3080"}, None),
        ("POST", "/v1/tokens", {"roles": ["node"], "ttl": "nan"}, None),
        ("POST", "/v1/tokens", {"roles": 7}, None),
        ("POST", "/v1/roles", None, b"{not json"),
        ("POST", "/v1/users", None, b"\xff\xfe"),
        ("PUT", "/v1/users/nobody", {"roles": {"a": 1}}, None),
        ("POST", "/v1/users/u1/certs", {"ttl": "nan"}, None),
        ("POST", "/v1/nodes", {"kind": "node", "metadata": {"name": "../../x"}, "spec": {}}, None),
        ("GET", "/v1/no/such/route", None, None),
        ("PATCH", "/v1/users", None, None),
    ]
    for method, path, body, raw in cases:
        status, err = asyncio.run(auth_call(cluster, method, path, body, cert, raw))
        assert 400 <= status < 500, (method, path, body, status, err)
        assert isinstance(err, dict) and err.get("message"), (path, err)
    # a NaN TTL never makes an invite that does not expire
    invites = [t for t in asyncio.run(auth_call(cluster, "GET", "/v1/tokens", cert=cert))[1]
               if "u1" in t["token"]]
    assert invites == []


# found by the second review: a node must not answer for another's name or address ---------------
def test_node_heartbeats_under_its_registered_name_only(cluster: Cluster) -> None:
    host_id = str(uuid.uuid4())
    status, ident = register(cluster, cluster.static_token, host_id, nodename="honest")
    assert status == 200
    with tempfile.TemporaryDirectory() as d:
        cert = save_tls(ident, d)
        for claimed in ("127.0.0.1", "testnode", "HONEST2"):
            beat = {"kind": "node", "version": "v2", "metadata": {"name": host_id},
                    "spec": {"hostname": claimed, "addr": "127.0.0.1:1"}}
            status, err = asyncio.run(auth_call(cluster, "POST", "/v1/nodes", beat, cert))
            assert status == 403 and "registered as 'honest'" in err["message"], (claimed, err)
        beat["spec"]["hostname"] = "HONEST."  # the same name, spelt otherwise
        assert asyncio.run(auth_call(cluster, "POST", "/v1/nodes", beat, cert))[0] == 200


def test_names_are_compared_normalised_and_ips_are_not_names(cluster: Cluster) -> None:
    status, ident = register(cluster, cluster.static_token, str(uuid.uuid4()), nodename="taken")
    assert status == 200
    with tempfile.TemporaryDirectory() as d:
        beat = {"kind": "node", "version": "v2", "metadata": {"name": ident["host_id"]},
                "spec": {"hostname": "taken", "addr": "127.0.0.1:2"}}
        assert asyncio.run(auth_call(cluster, "POST", "/v1/nodes", beat, save_tls(ident, d)))[0] == 200
        for other in ("TAKEN", "taken."):
            status, err = register(cluster, cluster.static_token, str(uuid.uuid4()), nodename=other)
            assert status == 403 and "in use by online node" in err["message"], (other, err)
        # proving an identity does not buy another node's name either
        status, err = register(cluster, cluster.static_token, str(uuid.uuid4()), nodename="x1")
        status, err = register(cluster, cluster.static_token, ident["host_id"], nodename="Taken",
                               cert=save_tls(ident, d))
        assert status == 200  # its own name, other case
    status, err = register(cluster, cluster.static_token, str(uuid.uuid4()), nodename="10.1.2.3")
    assert status == 400 and "is an IP address" in err["message"], err


def test_upper_case_ids_are_not_other_hosts(cluster: Cluster) -> None:
    host_id = str(uuid.uuid4())
    assert register(cluster, cluster.static_token, host_id)[0] == 200
    status, err = register(cluster, cluster.static_token, host_id.upper())
    assert status == 400 and "lower-case UUID" in err["message"], err


def test_node_asks_about_logins_on_itself_only(cluster: Cluster) -> None:
    status, ident = register(cluster, cluster.static_token, str(uuid.uuid4()), nodename="asker")
    assert status == 200
    with open(os.path.join(cluster.data_dir, "host_uuid")) as f:
        other = f.read().strip()
    with tempfile.TemporaryDirectory() as d:
        body = {"user": "nobody", "login": "root", "host_id": other}
        status, err = asyncio.run(auth_call(cluster, "POST", "/v1/access/check", body, save_tls(ident, d)))
    assert status == 403 and "only ask about logins on itself" in err["message"], err
