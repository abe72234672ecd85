"""RoleSet evaluation: logins, node access, visibility, options, rules and presets."""

from __future__ import annotations

from typing import Any

import pytest

from teleport.errors import AccessDenied
from teleport.rbac.presets import RESOURCES, preset_role, preset_roles
from teleport.rbac.roleset import RoleSet
from teleport.types.role import Role


def role(name: str, allow: dict[str, Any] | None = None, deny: dict[str, Any] | None = None,
         **options: Any) -> Role:
    spec: dict[str, Any] = {"options": options}
    if allow is not None:
        spec["allow"] = allow
    if deny is not None:
        spec["deny"] = deny
    return Role.from_dict({"kind": "role", "version": "v3", "metadata": {"name": name}, "spec": spec})


TRAITS = {"logins": ["alice", "deploy"], "unix": ["ops"], "envs": ["stag*"]}
PROD = {"env": "prod", "name": "db-1"}
STAGING = {"env": "staging", "name": "web-2"}
BARE: dict[str, str] = {}

DEV = role("dev", allow={"logins": ["{{internal.logins}}"], "node_labels": {"env": "staging"}})
OPS = role("ops", allow={"logins": ["{{external.unix}}", "root"], "node_labels": {"*": "*"}})
NO_ROOT = role("no-root", deny={"logins": ["root"]})
NO_PROD = role("no-prod", deny={"node_labels": {"env": "prod"}})
ROOT_ON_PROD = role("root-on-prod", deny={"logins": ["root"], "node_labels": {"env": "prod"}})
DENY_ALL = role("deny-all", deny={"node_labels": {"*": "*"}})
TPL_LABELS = role("tpl", allow={"logins": ["alice"], "node_labels": {"env": "{{external.envs}}"}})
MISSING = role("missing", allow={"logins": ["{{external.nope}}"], "node_labels": {"*": "*"}})
NO_LABELS = role("no-labels", allow={"logins": ["alice"], "node_labels": {}})

# (roles, login, node labels, allowed?, fragment of the denial message)
ACCESS_CASES = [
    pytest.param([DEV], "alice", STAGING, True, "", id="template-login-on-matching-node"),
    pytest.param([DEV], "alice", PROD, False, "do not select this node", id="login-ok-labels-not"),
    pytest.param([DEV], "bob", STAGING, False, "no role allows login 'bob'", id="login-not-allowed"),
    pytest.param([DEV], "{{internal.logins}}", STAGING, False, "no role allows", id="raw-template-is-not-a-login"),
    pytest.param([OPS], "root", PROD, True, "", id="literal-login-wildcard-node"),
    pytest.param([OPS], "ops", BARE, True, "", id="external-trait-login-node-without-labels"),
    pytest.param([DEV, OPS], "alice", PROD, False, "do not select", id="login-and-labels-must-match-in-one-role"),
    pytest.param([DEV, OPS], "root", STAGING, True, "", id="second-role-allows"),
    pytest.param([OPS, NO_ROOT], "root", STAGING, False, "role 'no-root' denies login 'root'", id="deny-login-everywhere"),
    pytest.param([OPS, NO_ROOT], "ops", PROD, True, "", id="deny-login-leaves-others"),
    pytest.param([OPS, NO_PROD], "ops", PROD, False, "role 'no-prod' denies access to nodes", id="deny-labels-any-login"),
    pytest.param([OPS, NO_PROD], "ops", STAGING, True, "", id="deny-labels-other-node"),
    pytest.param([OPS, ROOT_ON_PROD], "ops", PROD, False, "root-on-prod", id="deny-is-or-labels-match"),
    pytest.param([OPS, ROOT_ON_PROD], "root", STAGING, False, "root-on-prod", id="deny-is-or-login-match"),
    pytest.param([OPS, DENY_ALL], "ops", BARE, False, "deny-all", id="deny-wildcard-labels"),
    pytest.param([TPL_LABELS], "alice", STAGING, True, "", id="templated-label-value-glob"),
    pytest.param([TPL_LABELS], "alice", PROD, False, "do not select", id="templated-label-value-no-match"),
    pytest.param([MISSING], "alice", PROD, False, "allowed logins: none", id="missing-trait-drops-login"),
    pytest.param([NO_LABELS], "alice", PROD, False, "do not select", id="empty-selector-no-node"),
    pytest.param([], "alice", PROD, False, "the user has no roles", id="no-roles"),
]


@pytest.mark.parametrize(("roles", "login", "labels", "allowed", "message"), ACCESS_CASES)
def test_check_login(roles: list[Role], login: str, labels: dict[str, str], allowed: bool,
                     message: str) -> None:
    rs = RoleSet(roles, TRAITS)
    if allowed:
        rs.check_login(login, labels)
        assert rs.allows_login(login, labels)
        return
    with pytest.raises(AccessDenied) as info:
        rs.check_login(login, labels)
    text = str(info.value)
    assert f"login {login!r}" in text and message in text
    assert not rs.allows_login(login, labels)


def test_denial_message_names_node_labels() -> None:
    with pytest.raises(AccessDenied, match=r"labels \[env=prod,name=db-1\]"):
        RoleSet([DEV], TRAITS).check_login("alice", PROD)


LOGINS_CASES = [
    pytest.param([DEV], ["alice", "deploy"], id="internal-logins"),
    pytest.param([DEV, OPS], ["alice", "deploy", "ops", "root"], id="union-in-order"),
    pytest.param([OPS, DEV, OPS], ["ops", "root", "alice", "deploy"], id="deduplicated"),
    pytest.param([OPS, NO_ROOT], ["ops"], id="deny-login-removed"),
    pytest.param([OPS, ROOT_ON_PROD], ["ops"], id="deny-login-with-labels-removed"),
    pytest.param([OPS, NO_PROD], ["ops", "root"], id="deny-labels-only-keeps-logins"),
    pytest.param([OPS, DENY_ALL], [], id="deny-every-node-no-principals"),
    pytest.param([MISSING], [], id="missing-trait"),
    pytest.param([preset_role("auditor")], [], id="auditor-no-logins"),
]


@pytest.mark.parametrize(("roles", "expected"), LOGINS_CASES)
def test_logins(roles: list[Role], expected: list[str]) -> None:
    assert RoleSet(roles, TRAITS).logins() == expected


def test_logins_drop_trait_values_that_cannot_be_logins() -> None:
    rs = RoleSet([DEV], {"logins": ["good", "John Smith", ""]})
    assert rs.logins() == ["good"]


VISIBILITY_CASES = [
    pytest.param([DEV], STAGING, True, id="allowed-labels"),
    pytest.param([DEV], PROD, False, id="labels-not-selected"),
    pytest.param([OPS, NO_PROD], PROD, False, id="denied-labels"),
    pytest.param([OPS, NO_ROOT], PROD, True, id="one-login-left"),
    pytest.param([role("r", allow={"logins": ["root"]}), NO_ROOT], PROD, False, id="only-login-denied"),
    pytest.param([MISSING], PROD, False, id="labels-but-no-logins"),
    pytest.param([preset_role("auditor")], BARE, False, id="auditor-sees-no-nodes"),
]


@pytest.mark.parametrize(("roles", "labels", "visible"), VISIBILITY_CASES)
def test_can_see_node(roles: list[Role], labels: dict[str, str], visible: bool) -> None:
    rs = RoleSet(roles, TRAITS)
    assert rs.can_see_node(labels) is visible
    # the documented rule: visible exactly when some login would be allowed
    assert visible == any(rs.allows_login(x, labels) for x in ["alice", "deploy", "ops", "root"])


A = role("a", max_session_ttl="8h", forward_agent=True, port_forwarding=False,
         client_idle_timeout="10m", max_connections=5)
B = role("b", max_session_ttl="2h", port_forwarding=False, client_idle_timeout="0",
         disconnect_expired_cert=True, cert_format="oldssh")
C = role("c", client_idle_timeout="5m", max_connections=0)
D = role("d")

OPTION_CASES = [
    pytest.param([A, B], "adjust_session_ttl", 23 * 3600, 2 * 3600, id="ttl-shortest-role"),
    pytest.param([A], "adjust_session_ttl", 3600, 3600, id="ttl-request-shorter"),
    pytest.param([D], "adjust_session_ttl", 40 * 3600, 30 * 3600, id="ttl-default-30h"),
    pytest.param([A, B], "permit_port_forwarding", None, False, id="port-forwarding-all-forbid"),
    pytest.param([A, B, D], "permit_port_forwarding", None, True, id="port-forwarding-or"),
    pytest.param([], "permit_port_forwarding", None, False, id="port-forwarding-no-roles"),
    pytest.param([A, B], "permit_agent_forwarding", None, True, id="agent-forwarding-or"),
    pytest.param([B, D], "permit_agent_forwarding", None, False, id="agent-forwarding-default-off"),
    pytest.param([A, B, C], "client_idle_timeout", None, 300.0, id="idle-shortest-nonzero"),
    pytest.param([B, D], "client_idle_timeout", None, 0.0, id="idle-zero-is-never"),
    pytest.param([A, D], "disconnect_expired_cert", None, False, id="disconnect-default-off"),
    pytest.param([A, B], "disconnect_expired_cert", None, True, id="disconnect-any"),
    pytest.param([A, C], "max_connections", None, 5, id="max-connections-nonzero-min"),
    pytest.param([A, B], "cert_format", None, "oldssh", id="cert-format-most-permissive"),
    pytest.param([A], "cert_format", None, "standard", id="cert-format-default"),
]


@pytest.mark.parametrize(("roles", "method", "arg", "expected"), OPTION_CASES)
def test_options(roles: list[Role], method: str, arg: float | None, expected: Any) -> None:
    fn = getattr(RoleSet(roles, {}), method)
    assert (fn() if arg is None else fn(arg)) == expected


EDIT_USERS = role("edit-users", allow={"rules": [{"resources": ["user"], "verbs": ["list", "read", "create"]}]})
NO_DELETE = role("no-delete", deny={"rules": [{"resources": ["*"], "verbs": ["delete"]}]})
ALL = role("all", allow={"rules": [{"resources": ["*"], "verbs": ["*"]}]})
NO_ROLES = role("no-roles", deny={"rules": [{"resources": ["role"], "verbs": ["*"]}]})
WHERE_ALLOW = role("where-allow", allow={"rules": [{"resources": ["session"], "verbs": ["read"], "where": "contains(user.spec.roles, \"x\")"}]})
WHERE_DENY = role("where-deny", deny={"rules": [{"resources": ["user"], "verbs": ["read"], "where": "equals(1, 1)"}]})

RULE_CASES = [
    pytest.param([EDIT_USERS], "user", "create", True, id="allowed-verb"),
    pytest.param([EDIT_USERS], "user", "delete", False, id="verb-not-listed"),
    pytest.param([EDIT_USERS], "role", "read", False, id="resource-not-listed"),
    pytest.param([ALL], "trusted_cluster", "update", True, id="wildcards"),
    pytest.param([ALL, NO_DELETE], "node", "delete", False, id="deny-wildcard-resource-wins"),
    pytest.param([ALL, NO_DELETE], "node", "read", True, id="deny-other-verb"),
    pytest.param([ALL, NO_ROLES], "role", "list", False, id="deny-wildcard-verb-wins"),
    pytest.param([NO_DELETE], "user", "read", False, id="deny-only-allows-nothing"),
    pytest.param([], "user", "read", False, id="no-roles"),
    pytest.param([WHERE_ALLOW], "session", "read", False, id="allow-with-where-does-not-grant"),
    pytest.param([ALL, WHERE_DENY], "user", "read", False, id="deny-with-where-applies"),
]


@pytest.mark.parametrize(("roles", "resource", "verb", "allowed"), RULE_CASES)
def test_check_rule(roles: list[Role], resource: str, verb: str, allowed: bool) -> None:
    rs = RoleSet(roles, {})
    assert rs.allows_rule(resource, verb) is allowed
    if allowed:
        rs.check_rule(resource, verb)
    else:
        with pytest.raises(AccessDenied) as info:
            rs.check_rule(resource, verb)
        assert str(info.value) == f"access denied to perform action '{verb}' on '{resource}'"


PRESET_CASES = [
    pytest.param("admin", "role", "delete", True, id="admin-deletes-roles"),
    pytest.param("admin", "cert_authority", "update", True, id="admin-rotates"),
    pytest.param("access", "node", "list", True, id="access-lists-nodes"),
    pytest.param("access", "session", "read", True, id="access-reads-sessions"),
    pytest.param("access", "user", "create", False, id="access-cannot-create-users"),
    pytest.param("access", "event", "list", False, id="access-cannot-read-audit-log"),
    pytest.param("auditor", "event", "list", True, id="auditor-lists-events"),
    pytest.param("auditor", "session", "read", True, id="auditor-reads-sessions"),
    pytest.param("auditor", "session", "delete", False, id="auditor-read-only"),
    pytest.param("auditor", "node", "list", False, id="auditor-no-nodes"),
    pytest.param("editor", "role", "update", True, id="editor-edits-roles"),
    pytest.param("editor", "cluster_name", "update", False, id="editor-reads-cluster-name-only"),
]


@pytest.mark.parametrize(("name", "resource", "verb", "allowed"), PRESET_CASES)
def test_preset_rules(name: str, resource: str, verb: str, allowed: bool) -> None:
    assert RoleSet([preset_role(name)], {}).allows_rule(resource, verb) is allowed


def test_presets_names_and_logins() -> None:
    assert [r.name for r in preset_roles()] == ["admin", "access", "editor", "auditor"]
    traits = {"logins": ["alice", "root"]}
    admin = RoleSet([preset_role("admin")], traits)
    assert admin.logins() == ["alice", "root"]
    admin.check_login("root", {"env": "prod"})
    assert all(admin.allows_rule(res, verb) for res in RESOURCES for verb in ["list", "delete"])
    access = RoleSet([preset_role("access")], traits)
    assert access.logins() == ["alice", "root"] and access.can_see_node({})
    assert RoleSet([preset_role("admin")], {}).logins() == []


def test_names_and_ttl_from_yaml_example() -> None:
    rs = RoleSet([DEV, OPS], TRAITS)
    assert rs.names == ["dev", "ops"]
    assert rs.adjust_session_ttl(10.0) == 10.0
