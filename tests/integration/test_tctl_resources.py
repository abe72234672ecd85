"""`tctl create/get/rm`, `tctl users update` and `tctl events ls` against a real cluster process."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.helpers import Cluster, destroy, new_cluster, wait_port

pytestmark = pytest.mark.integration

DEV_ROLES = textwrap.dedent(
    """\
    kind: role
    version: v3
    metadata:
      name: dev
      description: developers
    spec:
      options:
        max_session_ttl: 8h
        forward_agent: false
      allow:
        logins: [dev, '{{internal.logins}}']
        node_labels:
          env: [staging, dev]
          'team': '^core-.*$'
        rules:
          - resources: [node]
            verbs: [list, read]
      deny:
        logins: [root]
    ---
    kind: role
    version: v3
    metadata:
      name: ops
    spec:
      allow:
        logins: [ops]
    """
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = new_cluster(roles="auth,proxy,node")
    try:
        c.start()
        wait_port(c.ports["node"], 20, c.proc)
        yield c
    finally:
        destroy(c)


def write(c: Cluster, name: str, text: str) -> str:
    path = os.path.join(c.root, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def get_json(c: Cluster, ref: str) -> Any:
    return json.loads(c.tctl("get", ref, "--format=json").stdout)


def test_presets_listed_as_table(cluster: Cluster) -> None:
    out = cluster.tctl("get", "roles").stdout
    lines = out.splitlines()
    assert lines[0].split() == ["Role", "Allowed", "to", "login", "as", "Node", "Labels", "Access", "to",
                                "resources"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert {"admin", "access", "auditor", "editor"} <= set(rows)
    assert "{{internal.logins}}" in rows["access"] and "<all nodes>" in rows["access"]
    assert "event:list" in rows["auditor"] and "event:read" in rows["auditor"]
    assert "*:*" in rows["admin"]


def test_create_get_replace_and_yaml_round_trip(cluster: Cluster) -> None:
    path = write(cluster, "dev.yaml", DEV_ROLES)
    res = cluster.tctl("create", path)
    assert "role 'dev' has been created" in res.stdout and "role 'ops' has been created" in res.stdout
    # a second create without -f refuses and says what to do
    res = cluster.tctl("create", path, check=False)
    assert res.returncode != 0 and "already exists" in res.stderr and "tctl create -f" in res.stderr

    dev = get_json(cluster, "role/dev")
    assert isinstance(dev, dict)
    assert dev["spec"]["allow"]["node_labels"] == {"env": ["staging", "dev"], "team": "^core-.*$"}
    assert dev["spec"]["deny"]["logins"] == ["root"]
    assert dev["spec"]["options"]["max_session_ttl"] == "8h"

    # YAML out -> create -f -> the same resource, unchanged
    text = cluster.tctl("get", "role/dev", "--format=yaml").stdout
    again = write(cluster, "dev-again.yaml", text)
    assert "role 'dev' has been updated" in cluster.tctl("create", "-f", again).stdout
    assert get_json(cluster, "role/dev") == dev

    # all roles in one YAML stream round-trip too (documents separated by ---)
    all_text = cluster.tctl("get", "roles", "--format=yaml").stdout
    assert all_text.count("\n---\n") >= 5
    cluster.tctl("create", "-f", write(cluster, "all.yaml", all_text))
    assert cluster.tctl("get", "roles", "--format=yaml").stdout == all_text

    # an edit through -f replaces
    edited = write(cluster, "dev-edit.yaml", text.replace("max_session_ttl: 8h", "max_session_ttl: 2h"))
    cluster.tctl("create", "-f", edited)
    dev2 = get_json(cluster, "role/dev")
    assert isinstance(dev2, dict) and dev2["spec"]["options"]["max_session_ttl"] == "2h"

    # JSON input works as well
    as_json = dict(dev2)
    as_json["metadata"] = {"name": "dev-json"}
    cluster.tctl("create", write(cluster, "r.json", json.dumps(as_json)))
    assert get_json(cluster, "role/dev-json")["spec"] == dev2["spec"]
    cluster.tctl("rm", "role/dev-json")


def test_invalid_resources_are_refused_with_the_key_path(cluster: Cluster) -> None:
    bad = DEV_ROLES.split("---")[0].replace("max_session_ttl", "max_sesion_ttl").replace("dev\n", "bad1\n", 1)
    res = cluster.tctl("create", write(cluster, "bad.yaml", bad), check=False)
    assert res.returncode != 0 and "max_sesion_ttl" in res.stderr and "spec.options" in res.stderr
    res = cluster.tctl("create", write(cluster, "bad2.yaml", "kind: widget\nmetadata: {name: x}\n"),
                       check=False)
    assert res.returncode != 0 and "cannot create kind 'widget'" in res.stderr
    res = cluster.tctl("create", write(cluster, "bad3.yaml", "kind: role\nspec: [\n"), check=False)
    assert res.returncode != 0 and "not valid YAML" in res.stderr
    res = cluster.tctl("get", "widgets", check=False)
    assert res.returncode != 0 and "unknown resource" in res.stderr
    assert "bad1" not in cluster.tctl("get", "roles").stdout


def test_users_resources_update_and_rm(cluster: Cluster) -> None:
    cluster.add_user("ursula", "ursula,root")
    users = get_json(cluster, "users")
    assert isinstance(users, list)
    (u,) = [x for x in users if x["metadata"]["name"] == "ursula"]
    assert u["spec"]["roles"] == ["access"] and u["spec"]["traits"]["logins"] == ["ursula", "root"]
    raw = json.dumps(users).lower()
    for secret in ("hash", "argon", "otp", "password", "totp"):
        assert secret not in raw, secret
    # text table
    out = cluster.tctl("get", "users").stdout
    assert any(line.split()[:3] == ["ursula", "access", "ursula,root"] for line in out.splitlines())

    # --set-roles: unknown role is a clear error; known roles apply
    res = cluster.tctl("users", "update", "ursula", "--set-roles=access,nosuch", check=False)
    assert res.returncode != 0 and "unknown role(s) 'nosuch'" in res.stderr and "auditor" in res.stderr
    cluster.tctl("create", write(cluster, "dev2.yaml", DEV_ROLES), check=False)
    cluster.tctl("users", "update", "ursula", "--set-roles=access,dev", "--set-trait", "team=a,b")
    user = get_json(cluster, "user/ursula")
    assert isinstance(user, dict)
    assert user["spec"]["roles"] == ["access", "dev"]
    assert user["spec"]["traits"] == {"logins": ["ursula", "root"], "team": ["a", "b"]}

    # user YAML round trip with -f: traits changed through the file
    text = cluster.tctl("get", "user/ursula", "--format=yaml").stdout
    doc = yaml.safe_load(text)
    doc["spec"]["traits"]["logins"] = ["ursula"]
    cluster.tctl("create", "-f", write(cluster, "u.yaml", yaml.safe_dump(doc)))
    user2 = get_json(cluster, "user/ursula")
    assert user2["spec"]["traits"]["logins"] == ["ursula"]
    assert user2["spec"]["created_at"] == user["spec"]["created_at"]
    res = cluster.tctl("create", "-f", write(cluster, "u2.yaml", yaml.safe_dump(
        {"kind": "user", "metadata": {"name": "x"}, "spec": {"roles": ["access"], "password": "p"}})),
        check=False)
    assert res.returncode != 0 and "password" in res.stderr

    # a role in use cannot be deleted; the message names the users
    res = cluster.tctl("rm", "role/dev", check=False)
    assert res.returncode != 0 and "in use by user(s) ursula" in res.stderr
    cluster.tctl("users", "update", "ursula", "--set-roles=access")
    assert "role 'dev' has been deleted" in cluster.tctl("rm", "role/dev").stdout
    res = cluster.tctl("get", "role/dev", check=False)
    assert res.returncode != 0 and "not found" in res.stderr

    # a user created from a resource file, then removed with rm
    cluster.tctl("create", write(cluster, "v.yaml", yaml.safe_dump(
        {"kind": "user", "version": "v2", "metadata": {"name": "victor"},
         "spec": {"roles": ["auditor"], "traits": {"logins": ["victor"]}}})))
    assert get_json(cluster, "user/victor")["spec"]["roles"] == ["auditor"]
    cluster.tctl("rm", "user/victor")
    res = cluster.tctl("get", "user/victor", check=False)
    assert res.returncode != 0 and "not found" in res.stderr


def test_get_nodes_and_tokens_and_rm_token(cluster: Cluster) -> None:
    nodes = get_json(cluster, "nodes")
    assert isinstance(nodes, list) and nodes and nodes[0]["kind"] == "node"
    assert nodes[0]["spec"]["hostname"] == "testnode"
    assert "testnode" in cluster.tctl("get", "nodes").stdout
    out = cluster.tctl("nodes", "add", "--ttl=5m").stdout
    token = out.split("The invite token: ")[1].split()[0]
    tokens = get_json(cluster, "tokens")
    assert isinstance(tokens, list)
    names = [t["metadata"]["name"] for t in tokens]
    assert token in names and cluster.static_token in names
    assert "token '" in cluster.tctl("rm", f"token/{token}").stdout
    assert token not in [t["metadata"]["name"] for t in get_json(cluster, "tokens")]


def test_events_ls(cluster: Cluster) -> None:
    cluster.add_user("eve", "eve")
    cluster.login("eve")
    res = cluster.login("eve", "wrong-password", check=False)
    assert res.returncode != 0
    events = json.loads(cluster.tctl("events", "ls", "--since=1h", "--type=user.login",
                                     "--user=eve", "--format=json").stdout)
    # signup logs the user in (one success), then the login, then the failure
    assert [(e["event"], e["code"], e["success"]) for e in events] == [
        ("user.login", "T1000I", True), ("user.login", "T1000I", True),
        ("user.login", "T1000W", False)]
    out = cluster.tctl("events", "ls", "--type=user.login", "--user=eve").stdout
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["Time", "Event", "User", "Login"]
    assert "user.login (T1000I)" in out and "failure: invalid user name" in out
    # filters exclude: another user, another type
    assert json.loads(cluster.tctl("events", "ls", "--user=nobody-here", "--format=json").stdout) == []
    assert all(e["event"] == "exec" for e in json.loads(
        cluster.tctl("events", "ls", "--type=exec", "--format=json").stdout))
    res = cluster.tctl("events", "ls", "--since=yesterday", check=False)
    assert res.returncode != 0 and "duration" in res.stderr.lower()
