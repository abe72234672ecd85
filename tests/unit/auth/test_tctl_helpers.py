"""tctl's pure helpers: resource files, references, output formats (YAML round trip)."""

from __future__ import annotations

import json

import pytest
import yaml

from teleport.cli import tctl_resources as tctl
from teleport.errors import BadParameter
from teleport.rbac.presets import preset_roles
from teleport.types.role import Role


def test_parse_documents_multi_yaml_and_json() -> None:
    text = "kind: role\nmetadata: {name: a}\n---\n---\nkind: user\nmetadata: {name: b}\n"
    assert [d["metadata"]["name"] for d in tctl.parse_documents(text, "f")] == ["a", "b"]
    as_json = json.dumps([{"kind": "role", "metadata": {"name": "c"}}])
    assert tctl.parse_documents(as_json, "f")[0]["metadata"]["name"] == "c"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no resources found"),
        ("kind: node\nmetadata: {name: x}\n", "cannot create kind 'node'"),
        ("kind: role\n", "metadata.name is missing"),
        ("- 1\n- 2\n", "document 1 is not a mapping"),
        ("kind: role\nmetadata: {name: [\n", "not valid YAML"),
    ],
)
def test_parse_documents_errors(text: str, message: str) -> None:
    with pytest.raises(BadParameter, match=message):
        tctl.parse_documents(text, "file.yaml")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [("roles", ("role", "")), ("role/dev", ("role", "dev")), ("users", ("user", "")),
     ("user/joe", ("user", "joe")), ("nodes", ("node", "")), ("tokens", ("token", "")),
     ("Role/x", ("role", "x"))],
)
def test_parse_ref(ref: str, expected: tuple[str, str]) -> None:
    assert tctl.parse_ref(ref, tctl.GET_KINDS) == expected


def test_parse_ref_unknown() -> None:
    with pytest.raises(BadParameter, match="unknown resource 'widgets'"):
        tctl.parse_ref("widgets", tctl.GET_KINDS)
    with pytest.raises(BadParameter):
        tctl.parse_ref("nodes", tctl.RM_KINDS)


def test_yaml_output_round_trips_every_preset() -> None:
    items = [r.to_dict() for r in preset_roles()]
    text = tctl.render("role", items, "yaml")
    docs = tctl.parse_documents(text, "out")
    assert [Role.from_dict(d).to_dict() for d in docs] == items
    single = json.loads(tctl.render("role", items[:1], "json", single=True))
    assert single == items[0]
    assert json.loads(tctl.render("role", items, "json")) == items


def test_roles_table_columns() -> None:
    dev = Role.from_dict({"kind": "role", "version": "v3", "metadata": {"name": "dev"}, "spec": {
        "allow": {"logins": ["dev"], "node_labels": {"env": ["a", "b"]},
                  "rules": [{"resources": ["node"], "verbs": ["list"]}]},
        "deny": {"logins": ["root"]}}})
    out = tctl.render("role", [preset_roles()[0].to_dict(), dev.to_dict()], "text")
    lines = out.splitlines()
    assert lines[0].startswith("Role") and "Allowed to login as" in lines[0]
    assert "Node Labels" in lines[0] and "Access to resources" in lines[0]
    assert lines[2].split() == ["admin", "{{internal.logins}}", "<all", "nodes>", "*:*"]
    assert lines[3].split() == ["dev", "dev", "deny:root", "env=a|b", "node:list"]


def test_users_and_tokens_text() -> None:
    user = {"kind": "user", "metadata": {"name": "joe"},
            "spec": {"roles": ["access", "auditor"], "traits": {"logins": ["joe", "root"]}}}
    assert tctl.render("user", [user], "text").splitlines()[2].split() == ["joe", "access,auditor", "joe,root"]
    tok = tctl.token_resource({"token": "abc", "roles": ["node"], "expires": 0, "static": True})
    assert tok == {"kind": "token", "version": "v2", "metadata": {"name": "abc"},
                   "spec": {"roles": ["node"], "static": True}}
    assert tctl.render("token", [tok], "text").splitlines()[2].split() == ["abc", "Node", "never"]
    assert yaml.safe_load(tctl.render("token", [tok], "yaml")) == tok


def test_events_table() -> None:
    events = [
        {"event": "user.login", "code": "T1000W", "time": "2026-01-01T00:00:00Z", "user": "joe",
         "method": "local", "success": False, "error": "bad password"},
        {"event": "exec", "code": "T3002I", "time": "2026-01-01T00:00:01Z", "user": "joe",
         "login": "root", "server_hostname": "web1", "sid": "0123456789abcdef", "command": "ls " * 40,
         "exitCode": 0},
    ]
    lines = tctl.events_table(events).splitlines()
    assert lines[0].split() == ["Time", "Event", "User", "Login", "Node/Session", "Details"]
    assert "user.login (T1000W)" in lines[2] and "local failure: bad password" in lines[2]
    assert "exec (T3002I)" in lines[3] and "web1/01234567" in lines[3] and lines[3].endswith("...")
