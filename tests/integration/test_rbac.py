"""Roles enforced end to end in a real auth+proxy+node process: the certificate, `tsh ls`, proxy
routing, the node's own check against the current role definitions, deny rules, templates and the
auth API's rules for user identities."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from teleport.ca.sshcert import parse_cert
from teleport.defaults import AUTH_SERVER_NAME
from tests.helpers import NODE_LABELS, Cluster, destroy, env_with, new_cluster, wait_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="the node runs sessions as root (needs root)"),
]

PASSWORD = "secret-pass-1"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = new_cluster(roles="auth,proxy,node", ssh_extra=NODE_LABELS)
    try:
        c.start()
        wait_port(c.ports["node"], 20, c.proc)
        deadline = time.time() + 20  # the first heartbeat carries the command label result
        while "arch=x86-test" not in c.tctl("get", "nodes").stdout:
            assert time.time() < deadline, c.tctl("get", "nodes").stdout
            time.sleep(0.3)
        yield c
    finally:
        destroy(c)


# helpers -----------------------------------------------------------------------------------
def home(c: Cluster, user: str) -> str:
    path = os.path.join(c.root, f"home-{user}")
    os.makedirs(path, exist_ok=True)
    return path


def put_role(c: Cluster, name: str, spec: dict[str, Any]) -> None:
    """Create or replace a role through `tctl create -f`."""
    doc = {"kind": "role", "version": "v3", "metadata": {"name": name}, "spec": spec}
    path = os.path.join(c.root, f"role-{name}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    c.tctl("create", "-f", path)


def new_user(c: Cluster, name: str, logins: str, roles: str | None = None, *traits: str) -> None:
    """Sign up a user, optionally set roles/traits, and log in with a home of its own."""
    c.add_user(name, logins)
    if roles or traits:
        args = [f"--set-roles={roles}"] if roles else []
        for t in traits:
            args += ["--set-trait", t]
        c.tctl("users", "update", name, *args)
    code = c.otp.code(name, c.secrets[name])
    c.tsh("--insecure", f"--proxy={c.web_addr}", f"--user={name}", "login",
          input=f"{PASSWORD}\n{code}\n", env=env_with(TELEPORT_HOME=home(c, name)))


def tsh(c: Cluster, user: str, *args: str, check: bool = True) -> Any:
    return c.tsh(*args, check=check, env=env_with(TELEPORT_HOME=home(c, user)))


def key_file(c: Cluster, user: str, suffix: str = "") -> str:
    return os.path.join(home(c, user), "keys", "127.0.0.1", user + suffix)


def cert_of(c: Cluster, user: str) -> Any:
    with open(key_file(c, user, "-cert.pub")) as f:
        return parse_cert(f.read())


def visible(c: Cluster, user: str) -> list[str]:
    nodes = json.loads(tsh(c, user, "ls", "--format=json").stdout)
    return [n["spec"]["hostname"] for n in nodes]


def ssh_ok(c: Cluster, user: str, login: str = "root") -> Any:
    return tsh(c, user, "ssh", f"{login}@testnode", "echo", "via-$((40+2))", check=False)


# the certificate ---------------------------------------------------------------------------
def test_certificate_derives_from_roles(cluster: Cluster) -> None:
    put_role(cluster, "short", {
        "options": {"max_session_ttl": "1h", "port_forwarding": False},
        "allow": {"logins": ["root", "{{internal.logins}}"]},
    })
    put_role(cluster, "fwd", {"options": {"forward_agent": True}, "allow": {"logins": ["fwd-only"]}})
    new_user(cluster, "bob", "bob-login", "short")
    before = time.time()
    cert = cert_of(cluster, "bob")
    assert cert.key_id == "bob"
    assert cert.principals == ["root", "bob-login"]
    assert abs(cert.valid_before - (before + 3600)) < 30, cert.valid_before - before
    assert "permit-pty" in cert.extensions
    assert "permit-port-forwarding" not in cert.extensions
    assert "permit-agent-forwarding" not in cert.extensions
    assert cert.roles == ["short"]

    new_user(cluster, "bob2", "bob2", "short,fwd")
    cert = cert_of(cluster, "bob2")
    assert cert.principals == ["root", "bob2", "fwd-only"]
    assert abs(cert.valid_before - (time.time() + 3600)) < 30  # the shortest max_session_ttl
    assert "permit-agent-forwarding" in cert.extensions  # one role allows it
    assert "permit-port-forwarding" in cert.extensions  # not every role forbids it

    # the preset `access` role: 30h max, agent forwarding, logins from the user's traits
    new_user(cluster, "alice", "root,alice")
    cert = cert_of(cluster, "alice")
    assert cert.principals == ["root", "alice"]
    assert cert.valid_before - time.time() > 22 * 3600  # the default 23h, not clamped
    assert "permit-agent-forwarding" in cert.extensions and "permit-port-forwarding" in cert.extensions


# the proxy: tsh ls and routing -------------------------------------------------------------
def test_tsh_ls_and_proxy_routing_follow_node_labels(cluster: Cluster) -> None:
    put_role(cluster, "carol-r", {"allow": {"logins": ["root"], "node_labels": {"env": "dev"}}})
    new_user(cluster, "carol", "carol", "carol-r")
    assert visible(cluster, "carol") == []
    res = ssh_ok(cluster, "carol")
    assert res.returncode != 0
    assert "access denied" in res.stderr and "may not connect to node 'testnode'" in res.stderr, res.stderr

    # a role edit applies at once, without a new login; command label results count
    put_role(cluster, "carol-r", {"allow": {"logins": ["root"],
                                            "node_labels": {"env": ["dev", "prod"], "arch": "x86-*"}}})
    assert visible(cluster, "carol") == ["testnode"]
    res = ssh_ok(cluster, "carol")
    assert res.returncode == 0 and res.stdout.strip() == "via-42", res.stderr

    put_role(cluster, "carol-r", {"allow": {"logins": ["root"], "node_labels": {"arch": "^arm.*$"}}})
    assert visible(cluster, "carol") == []
    res = ssh_ok(cluster, "carol")
    assert res.returncode != 0 and "access denied" in res.stderr


# the node: its own check against the current roles ------------------------------------------
def test_node_refuses_after_role_edit_without_relogin(cluster: Cluster) -> None:
    put_role(cluster, "dave-r", {"allow": {"logins": ["root", "nobody"], "node_labels": {"*": "*"}}})
    new_user(cluster, "dave", "dave", "dave-r")
    assert "root" in cert_of(cluster, "dave").principals
    res = ssh_ok(cluster, "dave")
    assert res.returncode == 0 and res.stdout.strip() == "via-42", res.stderr

    # root no longer allowed: the proxy still routes (nobody is allowed there), the node refuses
    # although the certificate still names root
    put_role(cluster, "dave-r", {"allow": {"logins": ["nobody"], "node_labels": {"*": "*"}}})
    assert visible(cluster, "dave") == ["testnode"]
    res = ssh_ok(cluster, "dave")
    assert res.returncode != 0
    assert "refused login 'root'" in res.stderr and "may not connect" not in res.stderr, res.stderr

    put_role(cluster, "dave-r", {"allow": {"logins": ["root"], "node_labels": {"team": "core"}}})
    res = ssh_ok(cluster, "dave")
    assert res.returncode == 0 and res.stdout.strip() == "via-42", res.stderr


# deny wins ---------------------------------------------------------------------------------
def test_deny_rules_win_over_allow(cluster: Cluster) -> None:
    put_role(cluster, "no-prod", {"deny": {"node_labels": {"env": "prod"}}})
    new_user(cluster, "erin", "root,erin", "access,no-prod")
    assert visible(cluster, "erin") == []
    res = ssh_ok(cluster, "erin")
    assert res.returncode != 0 and "access denied" in res.stderr

    put_role(cluster, "no-prod", {"deny": {"logins": ["root"]}})
    assert visible(cluster, "erin") == ["testnode"]  # login erin is still allowed there
    res = ssh_ok(cluster, "erin")
    assert res.returncode != 0 and "refused login 'root'" in res.stderr

    put_role(cluster, "no-prod", {"deny": {"logins": ["nobody"]}})
    res = ssh_ok(cluster, "erin")
    assert res.returncode == 0 and res.stdout.strip() == "via-42", res.stderr


# templates ---------------------------------------------------------------------------------
def test_templates_expand_from_traits(cluster: Cluster) -> None:
    put_role(cluster, "tmpl", {"allow": {"logins": ["{{external.unix}}", "{{external.missing}}"],
                                         "node_labels": {"team": "{{external.team}}"}}})
    new_user(cluster, "frank", "frank", "tmpl", "unix=root,franky", "team=core")
    cert = cert_of(cluster, "frank")
    assert cert.principals == ["root", "franky"]  # the missing trait drops out
    assert json.loads(cert.extensions["teleport-traits"])["team"] == ["core"]
    assert visible(cluster, "frank") == ["testnode"]
    res = ssh_ok(cluster, "frank")
    assert res.returncode == 0 and res.stdout.strip() == "via-42", res.stderr

    # traits changed with `tctl create -f` of the user resource: the node label no longer matches
    doc = yaml.safe_load(cluster.tctl("get", "user/frank", "--format=yaml").stdout)
    doc["spec"]["traits"]["team"] = ["other"]
    path = os.path.join(cluster.root, "frank.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(doc, f)
    cluster.tctl("create", "-f", path)
    assert visible(cluster, "frank") == []
    res = ssh_ok(cluster, "frank")
    assert res.returncode != 0 and "access denied" in res.stderr


# the auth API: rules for user identities ---------------------------------------------------
def user_tls(c: Cluster, user: str, tmp: str) -> ssl.SSLContext:
    """The x509 identity `tsh login` stored, with its OpenSSH key converted to PKCS#8 for ssl."""
    with open(key_file(c, user), "rb") as f:
        key = serialization.load_ssh_private_key(f.read(), password=None)
    key_pem = os.path.join(tmp, f"{user}.key")
    with open(key_pem, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(os.path.join(c.data_dir, "keys", "tls-ca.pem")) as f:
        ctx = ssl.create_default_context(cadata=f.read())
    ctx.load_cert_chain(key_file(c, user, "-x509.pem"), key_pem)
    return ctx


async def call(c: Cluster, ctx: ssl.SSLContext, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as s:
        async with s.request(method, f"https://127.0.0.1:{c.ports['auth']}{path}", json=body, ssl=ctx,
                             server_hostname=AUTH_SERVER_NAME) as r:
            return r.status, await r.json(content_type=None)


def status(c: Cluster, ctx: ssl.SSLContext, method: str, path: str, body: Any = None) -> int:
    code, data = asyncio.run(call(c, ctx, method, path, body))
    if code == 403:
        assert "access denied" in data["message"], data
    return code


def test_auth_api_rules_follow_the_roles(cluster: Cluster) -> None:
    new_user(cluster, "aud", "aud", "auditor")
    new_user(cluster, "ed", "ed", "editor")
    new_user(cluster, "acc", "acc", "access")
    invite = {"user": "mallory", "logins": ["root"], "proxy_addr": "x:3080"}
    role = {"kind": "role", "version": "v3", "metadata": {"name": "made-by-api"},
            "spec": {"allow": {"logins": ["x"]}}}
    with tempfile.TemporaryDirectory() as tmp:
        aud, ed, acc = (user_tls(cluster, u, tmp) for u in ("aud", "ed", "acc"))

        assert status(cluster, aud, "GET", "/v1/events") == 200
        assert status(cluster, aud, "GET", "/v1/sessions") == 200
        assert status(cluster, aud, "POST", "/v1/invites", invite) == 403
        assert status(cluster, aud, "POST", "/v1/roles", {"role": role}) == 403
        assert status(cluster, aud, "GET", "/v1/users") == 403
        assert status(cluster, aud, "GET", "/v1/tokens") == 403

        assert status(cluster, ed, "POST", "/v1/roles", {"role": role}) == 200
        assert status(cluster, ed, "GET", "/v1/roles/made-by-api") == 200
        assert status(cluster, ed, "POST", "/v1/roles", {"role": role, "upsert": True}) == 200
        assert status(cluster, aud, "POST", "/v1/roles", {"role": role, "upsert": True}) == 403
        assert status(cluster, ed, "GET", "/v1/users") == 200
        assert status(cluster, ed, "GET", "/v1/events") == 403
        assert status(cluster, ed, "GET", "/v1/sessions") == 403
        assert status(cluster, ed, "DELETE", "/v1/roles/made-by-api") == 200

        assert status(cluster, acc, "GET", "/v1/users") == 403
        assert status(cluster, acc, "GET", "/v1/users/acc") == 403
        assert status(cluster, acc, "GET", "/v1/roles") == 403
        assert status(cluster, acc, "PUT", "/v1/users/acc", {"roles": ["admin"]}) == 403
        assert status(cluster, acc, "GET", "/v1/events") == 403
        assert status(cluster, acc, "GET", "/v1/nodes") == 200
        assert status(cluster, acc, "POST", "/v1/access/nodes", {"user": "alice"}) == 403

        # the API reads the current roles: a role change applies without a new certificate
        cluster.tctl("users", "update", "acc", "--set-roles=access,auditor")
        assert status(cluster, acc, "GET", "/v1/events") == 200
        # a deny rule wins over the allow of another role
        put_role(cluster, "no-events", {"deny": {"rules": [{"resources": ["event"], "verbs": ["*"]}]}})
        cluster.tctl("users", "update", "acc", "--set-roles=access,auditor,no-events")
        assert status(cluster, acc, "GET", "/v1/events") == 403
        assert status(cluster, acc, "GET", "/v1/sessions") == 200
