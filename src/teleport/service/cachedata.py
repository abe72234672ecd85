"""What a node or proxy knows of the cluster when auth is down: a snapshot of GET /v1/cache,
checked and indexed, and the decisions made from it (the same rbac code auth uses). Pure module:
no network, no event loop."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from teleport.errors import AccessDenied, BadParameter
from teleport.rbac import access
from teleport.rbac.roleset import RoleSet
from teleport.types.resources import Server
from teleport.types.role import Role

NEVER_FILLED = (
    "access denied: the auth server cannot be reached and this {what} has no cached copy of the "
    "cluster's roles yet (it fills when auth answers once); try again when auth is back"
)


@dataclass
class CacheData:
    """A checked snapshot: CAs, roles by name, users (roles, traits) by name, nodes, config."""

    version: str
    cluster_name: str
    session_recording: str
    authorities: list[dict[str, Any]]
    roles: dict[str, Role]
    users: dict[str, tuple[list[str], dict[str, list[str]]]]
    nodes: list[dict[str, Any]] | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, snap: Any, cluster_name: str) -> CacheData:
        """Check a snapshot (from auth or from disk) for this cluster; BadParameter says what is wrong."""
        if not isinstance(snap, dict):
            raise BadParameter("cache snapshot: expected an object")
        if snap.get("cluster_name") != cluster_name:
            raise BadParameter(
                f"cache snapshot is of cluster {snap.get('cluster_name')!r}, not {cluster_name!r}")
        version = snap.get("version")
        if not isinstance(version, str) or not version:
            raise BadParameter("cache snapshot: missing version")
        cas = snap.get("authorities")
        if not isinstance(cas, list) or not all(isinstance(c, dict) for c in cas):
            raise BadParameter("cache snapshot: authorities must be a list of objects")
        roles: dict[str, Role] = {}
        for r in _list(snap, "roles"):
            role = Role.from_dict(r)
            roles[role.name] = role
        users: dict[str, tuple[list[str], dict[str, list[str]]]] = {}
        for u in _list(snap, "users"):
            name, user_roles, traits = u.get("name"), u.get("roles") or [], u.get("traits") or {}
            if not isinstance(name, str) or not isinstance(user_roles, list) or not isinstance(traits, dict):
                raise BadParameter("cache snapshot: a user needs a name, roles and traits")
            users[name] = (
                [str(r) for r in user_roles],
                {str(k): [str(v) for v in vs] for k, vs in traits.items() if isinstance(vs, list)},
            )
        nodes = snap.get("nodes")
        if nodes is not None:
            for n in _list(snap, "nodes"):
                Server.from_dict(n)  # what auth sent: a node resource, checked as auth checks one
        mode = snap.get("session_recording")
        return cls(version, cluster_name, str(mode) if mode else "node", cas, roles, users, nodes, snap)

    def to_json(self) -> bytes:
        return json.dumps(self.raw, sort_keys=True).encode()

    def _roleset(self, username: str) -> tuple[list[str], RoleSet]:
        found = self.users.get(username)
        if found is None:
            raise AccessDenied(f"user {username!r} does not exist (deleted?)")
        user_roles, traits = found
        return user_roles, access.roleset_of(user_roles, traits, self.roles)

    def check_ssh_access(self, username: str, login: str, node_labels: dict[str, str]) -> dict[str, Any]:
        """auth's /v1/access/check, decided here: the session options, or AccessDenied."""
        user_roles, roleset = self._roleset(username)
        return access.check_ssh_access(username, user_roles, roleset, login, node_labels)

    def session_options(self, username: str) -> dict[str, Any]:
        user_roles, roleset = self._roleset(username)
        return access.session_options(username, user_roles, roleset)

    def visible_nodes(self, username: str) -> list[dict[str, Any]]:
        """auth's /v1/access/nodes, decided here: the nodes the user's roles allow some login on."""
        _, roleset = self._roleset(username)
        return [n for n in self.nodes or [] if roleset.can_see_node(labels_of(n))]


def labels_of(node: dict[str, Any]) -> dict[str, str]:
    """The labels roles match on a node resource (static plus command results)."""
    meta, spec = node.get("metadata") or {}, node.get("spec") or {}
    return access.node_labels(meta.get("labels") or {}, spec.get("cmd_labels"))


def _list(snap: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = snap.get(key)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise BadParameter(f"cache snapshot: {key} must be a list of objects")
    return value
