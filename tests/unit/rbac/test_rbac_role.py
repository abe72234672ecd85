"""Role resource parsing, validation messages and round trips."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from teleport.errors import BadParameter
from teleport.rbac.presets import preset_roles
from teleport.types.resources import Metadata
from teleport.types.role import Role

EXAMPLE = """
kind: role
version: v3
metadata: {name: dev}
spec:
  options:
    max_session_ttl: 8h
    forward_agent: true
    port_forwarding: true
    client_idle_timeout: 0
    disconnect_expired_cert: false
  allow:
    logins: ['{{internal.logins}}', root]
    node_labels: {'*': '*'}
    rules: [{resources: [role, user], verbs: [list, read, create, update, delete]}]
  deny:
    logins: [root]
    node_labels: {env: prod}
"""


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE)


def test_example_parses() -> None:
    role = Role.from_dict(example())
    assert role.name == "dev"
    assert role.options.max_session_ttl == 8 * 3600
    assert role.options.forward_agent is True
    assert role.options.client_idle_timeout == 0
    assert role.allow.logins == ["{{internal.logins}}", "root"]
    assert role.allow.node_labels == {"*": ["*"]}
    assert role.allow.rules[0].verbs == ["list", "read", "create", "update", "delete"]
    assert role.deny.node_labels == {"env": ["prod"]}


def test_defaults() -> None:
    role = Role.from_dict({"kind": "role", "version": "v3", "metadata": {"name": "x"}, "spec": {}})
    assert role.options.max_session_ttl == 30 * 3600
    assert role.options.forward_agent is False
    assert role.options.port_forwarding is True
    assert role.options.client_idle_timeout == 0
    assert role.options.disconnect_expired_cert is False
    assert role.allow.logins == [] and role.allow.node_labels == {}
    assert role.deny.logins == [] and role.deny.rules == []


def test_v3_logins_without_node_labels_mean_all_nodes() -> None:
    role = Role.from_dict({"metadata": {"name": "x"}, "spec": {"allow": {"logins": ["a"]}}})
    assert role.allow.node_labels == {"*": ["*"]}
    # deny has no such default: deny logins alone are enough (see the roleset tests)
    role = Role.from_dict({"metadata": {"name": "x"}, "spec": {"deny": {"logins": ["a"]}}})
    assert role.deny.node_labels == {}


def test_constructor_validates_spec_too() -> None:
    with pytest.raises(BadParameter, match=r"spec.allow: unknown key 'login'"):
        Role(metadata=Metadata("x"), spec={"allow": {"login": ["a"]}})


def _with(path: str, value: Any) -> dict[str, Any]:
    """The example role with one key (dotted path) set to value."""
    data = example()
    node = data
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return data


PARSE_ERRORS = [
    pytest.param(_with("spec.allow.loginz", ["a"]), "role 'dev': spec.allow: unknown key 'loginz'", id="unknown-allow-key"),
    pytest.param(_with("spec.options.ttl", "1h"), "spec.options: unknown key 'ttl'", id="unknown-option"),
    pytest.param(_with("spec.extra", {}), "spec: unknown key 'extra'", id="unknown-spec-key"),
    pytest.param(_with("status", {}), "role: unknown key 'status'", id="unknown-top-key"),
    pytest.param(_with("metadata.owner", "x"), "metadata: unknown key 'owner'", id="unknown-metadata-key"),
    pytest.param(_with("kind", "user"), "kind: expected 'role', got 'user'", id="wrong-kind"),
    pytest.param(_with("version", "v2"), "version: expected 'v3', got 'v2'", id="wrong-version"),
    pytest.param(_with("metadata.name", ""), "metadata.name: a role needs a non-empty name", id="empty-name"),
    pytest.param(_with("metadata.name", "a/b"), "metadata.name: 'a/b' may not contain", id="slash-in-name"),
    pytest.param(_with("spec.options.max_session_ttl", "8 hours"), "spec.options.max_session_ttl: expected a duration", id="bad-duration"),
    pytest.param(_with("spec.options.max_session_ttl", "-1h"), "negative durations", id="negative-duration"),
    pytest.param(_with("spec.options.client_idle_timeout", True), "spec.options.client_idle_timeout: expected a duration", id="bool-duration"),
    pytest.param(_with("spec.options.forward_agent", "yes"), "spec.options.forward_agent: expected true or false", id="string-bool"),
    pytest.param(_with("spec.options.cert_format", "new"), "spec.options.cert_format: expected one of standard, oldssh", id="bad-cert-format"),
    pytest.param(_with("spec.options.max_connections", -1), "spec.options.max_connections: expected a whole number", id="negative-max-connections"),
    pytest.param(_with("spec.allow.logins", {"a": 1}), "spec.allow.logins: expected a list of strings", id="logins-mapping"),
    pytest.param(_with("spec.allow.logins", ["ok", 5]), "spec.allow.logins[1]: expected a non-empty string", id="login-not-string"),
    pytest.param(_with("spec.allow.logins", ["ok", "a b"]), "spec.allow.logins[1]: a login may not contain spaces", id="login-with-space"),
    pytest.param(_with("spec.allow.logins", ["{{internal.logins"]), "spec.allow.logins[0]: '{{internal.logins' has unbalanced", id="bad-login-template"),
    pytest.param(_with("spec.allow.node_labels", {"*": "prod"}), "spec.allow.node_labels.*: the label name '*' may only", id="star-key-non-star-value"),
    pytest.param(_with("spec.deny.node_labels", {"name": "^(db$"}), "spec.deny.node_labels.name: bad regular expression", id="bad-regex"),
    pytest.param(_with("spec.allow.node_labels", {"env": 1}), "spec.allow.node_labels.env: expected a string or a list", id="label-int"),
    pytest.param(_with("spec.allow.rules", [{"resources": ["role"]}]), "spec.allow.rules[0].verbs: must list at least one", id="rule-without-verbs"),
    pytest.param(_with("spec.allow.rules", [{"resources": ["role"], "verbs": ["read"], "who": 1}]), "spec.allow.rules[0]: unknown key 'who'", id="rule-unknown-key"),
    pytest.param(_with("spec.allow.rules", {"resources": ["role"]}), "spec.allow.rules: expected a list", id="rules-not-list"),
    pytest.param(_with("spec", ["x"]), "spec: expected a mapping", id="spec-not-mapping"),
]


@pytest.mark.parametrize(("data", "message"), PARSE_ERRORS)
def test_parse_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(BadParameter) as info:
        Role.from_dict(data)
    assert message in str(info.value)


def test_single_login_string_is_a_list_of_one() -> None:
    assert Role.from_dict(_with("spec.allow.logins", "root")).allow.logins == ["root"]


ROUND_TRIPS = [
    pytest.param(EXAMPLE, id="brief-example"),
    pytest.param("metadata: {name: empty}", id="minimal"),
    pytest.param(
        "metadata: {name: r, description: d, labels: {team: x}}\n"
        "spec: {options: {max_session_ttl: 1h30m, client_idle_timeout: 90s, cert_format: oldssh,"
        " max_sessions: 3}, allow: {logins: ['{{external.unix}}'], node_labels: {env: [a, 'b*'],"
        " name: '^db-[0-9]+$'}}}",
        id="options-and-lists",
    ),
    pytest.param(
        "metadata: {name: w}\nspec: {deny: {rules: [{resources: ['*'], verbs: [delete], where: 'x'}]}}",
        id="rule-with-where",
    ),
    pytest.param("metadata: {name: t}\nspec: {options: {client_idle_timeout: 1.5}}", id="fractional-seconds"),
]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_round_trip(text: str) -> None:
    role = Role.from_dict(yaml.safe_load(text))
    again = Role.from_dict(role.to_dict())
    assert again == role
    assert again.to_dict() == role.to_dict()
    # through YAML and JSON too, as tctl and the backend store them
    assert Role.from_dict(yaml.safe_load(yaml.safe_dump(role.to_dict()))) == role
    assert Role.from_json(role.to_json()) == role


@pytest.mark.parametrize("role", preset_roles(), ids=lambda r: f"preset-{r.name}")
def test_presets_round_trip(role: Role) -> None:
    assert Role.from_dict(copy.deepcopy(role.to_dict())) == role
