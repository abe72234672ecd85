"""Who may call what: built-in rules for service identities, role rules for users (table-driven)."""

from __future__ import annotations

import pytest

from teleport.auth.authz import authorize
from teleport.ca.tlsca import Identity
from teleport.errors import AccessDenied
from teleport.rbac.presets import preset_role
from teleport.rbac.roleset import RoleSet
from teleport.types.role import Role


def user(*roles: str) -> tuple[Identity, RoleSet]:
    return Identity(username="u", system_role="User", roles=list(roles)), RoleSet(
        [preset_role(r) for r in roles]
    )


CASES = [
    # (roles, resource, verb, allowed)
    (("auditor",), "event", "list", True),
    (("auditor",), "session", "read", True),
    (("auditor",), "user", "create", False),
    (("auditor",), "role", "create", False),
    (("auditor",), "user", "list", False),
    (("editor",), "role", "create", True),
    (("editor",), "role", "update", True),
    (("editor",), "role", "delete", True),
    (("editor",), "user", "update", True),
    (("editor",), "token", "create", True),
    (("editor",), "event", "list", False),
    (("editor",), "cert_authority", "read", True),
    (("editor",), "cert_authority", "update", False),
    (("access",), "user", "list", False),
    (("access",), "user", "read", False),
    (("access",), "node", "list", True),
    (("access",), "role", "list", False),
    (("access",), "access", "check", False),
    (("access", "auditor"), "event", "list", True),
    (("admin",), "cluster_name", "read", True),
    (("admin",), "access", "check", True),
    ((), "node", "list", False),
]


@pytest.mark.parametrize(("roles", "resource", "verb", "allowed"), CASES)
def test_user_rules(roles: tuple[str, ...], resource: str, verb: str, allowed: bool) -> None:
    ident, rs = user(*roles)
    if allowed:
        authorize(ident, resource, verb, rs)
    else:
        with pytest.raises(AccessDenied, match=f"{verb!r} on {resource!r}"):
            authorize(ident, resource, verb, rs)


def test_deny_rule_wins_over_admin() -> None:
    deny = Role.from_dict({"kind": "role", "version": "v3", "metadata": {"name": "no-roles"},
                           "spec": {"deny": {"rules": [{"resources": ["role"], "verbs": ["*"]}]}}})
    ident = Identity(username="u", system_role="User", roles=["admin", "no-roles"])
    rs = RoleSet([preset_role("admin"), deny])
    with pytest.raises(AccessDenied):
        authorize(ident, "role", "read", rs)
    authorize(ident, "user", "read", rs)


@pytest.mark.parametrize(
    ("system_role", "resource", "verb", "allowed"),
    [
        ("Proxy", "access", "check", True),
        ("Proxy", "node", "list", True),
        ("Proxy", "role", "list", False),
        ("Proxy", "user", "create", False),
        ("Node", "access", "check", True),
        ("Node", "role", "create", False),
        ("Node", "event", "list", False),
        ("Admin", "role", "delete", True),
        ("Auth", "user", "update", True),
    ],
)
def test_builtin_rules(system_role: str, resource: str, verb: str, allowed: bool) -> None:
    ident = Identity(username="h.c", system_role=system_role, host_id="h")
    if allowed:
        authorize(ident, resource, verb, None)
    else:
        with pytest.raises(AccessDenied):
            authorize(ident, resource, verb, None)


def test_no_certificate_and_user_without_roleset() -> None:
    with pytest.raises(AccessDenied, match="client certificate"):
        authorize(None, "node", "list", None)
    with pytest.raises(AccessDenied):
        authorize(Identity(username="u", system_role="User"), "node", "list", None)


# Audit events: each identity posts only the event types its own service emits.
EMIT_CASES = [
    ("Node", "session.start", True),
    ("Node", "exec", True),
    ("Node", "scp", True),
    ("Node", "auth", True),
    ("Node", "session.upload", True),
    ("Node", "user.login", False),
    ("Proxy", "auth", True),
    ("Proxy", "exec", False),
    ("Proxy", "session.end", False),
    ("Proxy", "user.login", False),
    ("Admin", "session.end", False),
    ("Admin", "user.login", False),
    ("User", "exec", False),
    ("Auth", "user.login", True),
    ("Node", "no.such.event", False),
    ("Node", None, False),
]


@pytest.mark.parametrize("role,etype,allowed", EMIT_CASES)
def test_check_emit(role: str, etype: object, allowed: bool) -> None:
    from teleport.auth.authz import check_emit

    ident = Identity(username="h", system_role=role, host_id="00000000-0000-4000-8000-000000000001")
    if allowed:
        check_emit(ident, etype)
    else:
        with pytest.raises(AccessDenied, match=repr(etype).replace(".", r"\.")):
            check_emit(ident, etype)
