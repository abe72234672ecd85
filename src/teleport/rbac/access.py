"""The SSH access decision from a user and the cluster's roles: one implementation, used by the auth
service and, from their caches, by nodes and proxies (so that a decision made with auth down has
exactly the semantics of one made by auth). Pure module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teleport.rbac.roleset import RoleSet
from teleport.types.role import Role


def roleset_of(user_roles: list[str], traits: dict[str, list[str]], roles: Mapping[str, Role],
               missing: list[str] | None = None) -> RoleSet:
    """The user's roles evaluated together; role names with no role are skipped (and listed in
    `missing`), as auth has always done for a role deleted under its users."""
    found = []
    for name in user_roles:
        role = roles.get(name)
        if role is None:
            if missing is not None:
                missing.append(name)
            continue
        found.append(role)
    return RoleSet(found, traits)


def session_options(username: str, user_roles: list[str], roleset: RoleSet) -> dict[str, Any]:
    """The session options the roles grant (idle timeout, expired-certificate disconnect,
    forwarding, limits)."""
    return {
        "user": username,
        "roles": list(user_roles),
        "permit_port_forwarding": roleset.permit_port_forwarding(),
        "permit_agent_forwarding": roleset.permit_agent_forwarding(),
        "client_idle_timeout": roleset.client_idle_timeout(),
        "disconnect_expired_cert": roleset.disconnect_expired_cert(),
        "max_connections": roleset.max_connections(),
        "max_sessions": roleset.max_sessions(),
    }


def check_ssh_access(username: str, user_roles: list[str], roleset: RoleSet, login: str,
                     node_labels: dict[str, str]) -> dict[str, Any]:
    """May the user log in as `login` on a node with these labels? The session options when it
    may; raises AccessDenied (with the reason) when not."""
    roleset.check_login(login, node_labels)
    return {"login": login, **session_options(username, user_roles, roleset)}


def node_labels(labels: Mapping[str, str], cmd_labels: Mapping[str, Any] | None) -> dict[str, str]:
    """A node's static labels plus the latest results of its command labels (what roles match)."""
    out = {str(k): str(v) for k, v in labels.items()}
    for name, cmd in (cmd_labels.items() if isinstance(cmd_labels, Mapping) else ()):
        if isinstance(cmd, dict):
            out[str(name)] = str(cmd.get("result", "")).strip()
    return out
