"""Preset roles created with every cluster: admin, access, editor, auditor. Pure module."""

from __future__ import annotations

from typing import Any

from teleport.types.role import Role

# Resource kinds named in rules, and the verbs the API checks.
RESOURCES = (
    "user",
    "role",
    "token",
    "node",
    "cert_authority",
    "event",
    "session",
    "cluster_name",
    "trusted_cluster",
)
VERBS = ("list", "read", "create", "update", "delete")
READ_ONLY = ["list", "read"]

ALL_NODES = {"*": "*"}


def _role(name: str, description: str, spec: dict[str, Any]) -> Role:
    return Role.from_dict(
        {
            "kind": "role",
            "version": "v3",
            "metadata": {"name": name, "description": description},
            "spec": spec,
        }
    )


def preset_roles() -> list[Role]:
    """Fresh copies of the preset roles (callers may store or modify them)."""
    return [
        _role(
            "admin",
            "Full access: every node as the user's logins, every API action",
            {
                "options": {"max_session_ttl": "30h", "forward_agent": True},
                "allow": {
                    "logins": ["{{internal.logins}}"],
                    "node_labels": ALL_NODES,
                    "rules": [{"resources": ["*"], "verbs": ["*"]}],
                },
            },
        ),
        _role(
            "access",
            "SSH to every node as the user's logins; list nodes and replay sessions",
            {
                "options": {"max_session_ttl": "30h", "forward_agent": True},
                "allow": {
                    "logins": ["{{internal.logins}}"],
                    "node_labels": ALL_NODES,
                    "rules": [{"resources": ["node", "session"], "verbs": READ_ONLY}],
                },
            },
        ),
        _role(
            "editor",
            "Edit users, roles, tokens and trusted clusters; no node access",
            {
                "options": {"max_session_ttl": "30h"},
                "allow": {
                    "rules": [
                        {
                            "resources": ["user", "role", "token", "trusted_cluster"],
                            "verbs": list(VERBS),
                        },
                        {"resources": ["cluster_name", "cert_authority"], "verbs": READ_ONLY},
                    ],
                },
            },
        ),
        _role(
            "auditor",
            "Read the audit log and session recordings; no node access",
            {
                "options": {"max_session_ttl": "30h"},
                "allow": {"rules": [{"resources": ["event", "session"], "verbs": READ_ONLY}]},
            },
        ),
    ]


def preset_role(name: str) -> Role:
    """One preset role by name (KeyError if there is no such preset)."""
    for role in preset_roles():
        if role.name == name:
            return role
    raise KeyError(name)
