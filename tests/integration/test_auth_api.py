"""The auth API over mutual TLS: join tokens, host identities, and who may call what."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import tempfile
import time
import uuid
from typing import Any

import aiohttp
import pytest

from teleport.defaults import AUTH_SERVER_NAME
from tests.helpers import Cluster

pytestmark = pytest.mark.integration


def ca_pem(cluster: Cluster) -> bytes:
    with open(os.path.join(cluster.data_dir, "keys", "tls-ca.pem"), "rb") as f:
        return f.read()


async def call(cluster: Cluster, method: str, path: str, body: Any = None,
               cert: tuple[str, str] | None = None) -> tuple[int, Any]:
    ctx = ssl.create_default_context(cadata=ca_pem(cluster).decode())
    if cert:
        ctx.load_cert_chain(*cert)
    async with aiohttp.ClientSession() as s:
        async with s.request(method, f"https://{cluster.auth_addr}{path}", json=body, ssl=ctx,
                             server_hostname=AUTH_SERVER_NAME) as r:
            return r.status, await r.json(content_type=None)


def register(cluster: Cluster, token: str, role: str = "node") -> tuple[int, Any]:
    body = {"token": token, "role": role, "host_id": str(uuid.uuid4()), "nodename": "n1",
            "addresses": ["10.0.0.7"]}
    return asyncio.run(call(cluster, "POST", "/v1/register", body))


def node_identity(cluster: Cluster, tmp: str) -> tuple[str, str]:
    status, ident = register(cluster, cluster.static_token)
    assert status == 200, ident
    cert, key = os.path.join(tmp, "node-cert.pem"), os.path.join(tmp, "node-key.pem")
    with open(cert, "w") as f:
        f.write(ident["tls_cert"])
    with open(key, "w") as f:
        f.write(ident["tls_key"])
    return cert, key


def test_register_with_static_and_dynamic_tokens(cluster: Cluster) -> None:
    status, ident = register(cluster, cluster.static_token)
    assert status == 200
    assert ident["cluster_name"] == cluster.cluster_name and ident["role"] == "Node"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "host-cert.pub")
        with open(path, "w") as f:
            f.write(ident["cert"])
        info = subprocess.run(["ssh-keygen", "-L", "-f", path], capture_output=True, text=True,
                              check=True).stdout
    assert "host certificate" in info and "Valid: forever" in info
    principals = info.split("Principals:")[1].split("Critical Options:")[0].split()
    hid = ident["host_id"]
    assert principals == [f"{hid}.{cluster.cluster_name}", hid, f"n1.{cluster.cluster_name}", "n1",
                          "localhost", "127.0.0.1", "::1", "10.0.0.7"]

    out = cluster.tctl("nodes", "add", "--ttl=5m").stdout
    token = out.split("The invite token: ")[1].split()[0]
    assert "--ca-pin=sha256:" in out and f"--token={token}" in out and "--roles=node" in out
    assert register(cluster, token)[0] == 200
    # the token allows node only
    status, err = register(cluster, token, role="proxy")
    assert status == 403 and "does not allow the role" in err["message"]


def test_refused_tokens(cluster: Cluster) -> None:
    status, err = register(cluster, "no-such-token")
    assert status == 403 and "unknown, expired or deleted" in err["message"]

    out = cluster.tctl("nodes", "add").stdout
    token = out.split("The invite token: ")[1].split()[0]
    cluster.tctl("tokens", "del", token)
    status, err = register(cluster, token)
    assert status == 403 and "unknown, expired or deleted" in err["message"]

    out = cluster.tctl("nodes", "add", "--ttl=1s").stdout
    token = out.split("The invite token: ")[1].split()[0]
    time.sleep(1.5)
    status, err = register(cluster, token)
    assert status == 403 and "unknown, expired or deleted" in err["message"]


def test_token_ttl_cannot_be_lengthened(cluster: Cluster) -> None:
    res = cluster.tctl("nodes", "add", "--ttl=2h", check=False)
    assert res.returncode != 0 and "can be shortened, not lengthened" in res.stderr


def test_tokens_ls_and_static_token_cannot_be_deleted(cluster: Cluster) -> None:
    out = cluster.tctl("nodes", "add", "--roles=node,proxy").stdout
    token = out.split("The invite token: ")[1].split()[0]
    ls = cluster.tctl("tokens", "ls").stdout
    static_line = next(line for line in ls.splitlines() if cluster.static_token in line)
    assert static_line.split()[-1] == "never" and "Proxy,Node" in static_line
    dyn_line = next(line for line in ls.splitlines() if token in line)
    assert "Node,Proxy" in dyn_line and "UTC" in dyn_line
    res = cluster.tctl("tokens", "del", cluster.static_token, check=False)
    assert res.returncode != 0 and "static token" in res.stderr


def test_client_without_certificate_is_refused(cluster: Cluster) -> None:
    for method, path in (("GET", "/v1/users"), ("POST", "/v1/invites"), ("GET", "/v1/authorities"),
                         ("GET", "/v1/tokens")):
        status, err = asyncio.run(call(cluster, method, path, {}))
        assert status == 403, path
        assert "client certificate" in err["message"]
    # the public endpoints answer
    status, ping = asyncio.run(call(cluster, "GET", "/v1/ping"))
    assert status == 200 and ping["cluster_name"] == cluster.cluster_name


def test_node_identity_is_limited(cluster: Cluster) -> None:
    with tempfile.TemporaryDirectory() as d:
        cert = node_identity(cluster, d)
        invite = {"user": "evil", "logins": ["root"], "proxy_addr": "x:3080"}
        status, err = asyncio.run(call(cluster, "POST", "/v1/invites", invite, cert))
        assert status == 403 and "node identity may not create user" in err["message"]
        status, _ = asyncio.run(call(cluster, "POST", "/v1/users/joe/certs", {}, cert))
        assert status == 403
        status, _ = asyncio.run(call(cluster, "POST", "/v1/users/joe/ssh/authenticate",
                                     {"public_key": "x"}, cert))
        assert status == 403
        status, err = asyncio.run(call(cluster, "GET", "/v1/authorities/user?with_secrets=1", None, cert))
        assert status == 403 and "never leave" in err["message"]
        status, cas = asyncio.run(call(cluster, "GET", "/v1/authorities", None, cert))
        assert status == 200
        assert all("signing_keys" not in ca["spec"] for ca in cas)
        assert "PRIVATE" not in json.dumps(cas)


def test_certificate_from_another_ca_is_refused(cluster: Cluster) -> None:
    from teleport.ca import keys, tlsca

    key_pem, cert_pem = tlsca.create_tls_ca("other")
    ident = tlsca.Identity(username="admin", system_role="Admin")
    k = tlsca.generate_tls_key()
    forged = tlsca.issue_identity_cert(key_pem, cert_pem, k.public_key(), ident, 3600)
    with tempfile.TemporaryDirectory() as d:
        c, kf = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
        with open(c, "wb") as f:
            f.write(forged)
        with open(kf, "wb") as f:
            f.write(keys.private_key_to_pem(k))
        with pytest.raises(aiohttp.ClientError):
            asyncio.run(call(cluster, "GET", "/v1/users", None, (c, kf)))
