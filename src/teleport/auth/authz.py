"""Who may call what on the auth API: built-in rules per system role, RBAC rules for users. Pure."""

from __future__ import annotations

from teleport.ca.tlsca import Identity
from teleport.errors import AccessDenied
from teleport.rbac.roleset import RoleSet

# (resource, verb) pairs each service identity may use: exactly what its routes need (a proxy
# checks CAs, routes to nodes, logs users in and completes invites; a node heartbeats and reports
# its sessions). Anything not listed is refused.
BUILTIN_RULES: dict[str, frozenset[tuple[str, str]]] = {
    "Proxy": frozenset(
        {
            ("cert_authority", "read"),
            ("invite", "read"),
            ("invite", "use"),
            ("user", "authenticate"),
            ("node", "list"),
            ("proxy", "heartbeat"),
            ("event", "create"),
            ("access", "check"),
        }
    ),
    "Node": frozenset(
        {
            ("cert_authority", "read"),
            ("node", "heartbeat"),
            ("event", "create"),
            ("session", "create"),
            ("access", "check"),
        }
    ),
}

ALL_POWERFUL = frozenset({"Admin", "Auth"})


def authorize(identity: Identity | None, resource: str, verb: str, roleset: RoleSet | None) -> None:
    """Raise AccessDenied unless the identity may perform verb on resource."""
    if identity is None:
        raise AccessDenied(
            "this endpoint needs a client certificate issued by the cluster: "
            "log in with 'tsh login' or join with a token"
        )
    if identity.system_role in ALL_POWERFUL:
        return
    builtin = BUILTIN_RULES.get(identity.system_role)
    if builtin is not None:
        if (resource, verb) in builtin:
            return
        raise AccessDenied(
            f"a {identity.system_role.lower()} identity may not {verb} {resource}"
        )
    if identity.system_role == "User" and roleset is not None:
        roleset.check_rule(resource, verb)
        return
    raise AccessDenied(f"access denied to perform action {verb!r} on {resource!r}")
