"""Typed access to the cluster state in a Backend: one place that knows the key layout.

Nothing here knows which backend it runs on.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from teleport.backend.base import Backend, Item
from teleport.errors import AlreadyExists, BadParameter, CompareFailed, NotFound
from teleport.types.names import check_ca_type, check_host_id, check_role_name, check_user_name
from teleport.types.resources import CertAuthority, ProvisionToken, ProxyServer, Server, User
from teleport.types.role import Role

CLUSTER_NAME_KEY = "/cluster/name"


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _user(name: str) -> str:
    # names become backend keys: checked here too, whatever checked them before
    return f"/users/{check_user_name(name)}"


def _role(name: str) -> str:
    return f"/roles/{check_role_name(name)}"


def _expires(resource_expires: Any) -> float | None:
    return resource_expires.timestamp() if resource_expires is not None else None


class ClusterStore:
    """Reads and writes users, roles, tokens, CAs, nodes and login state."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    # cluster name -------------------------------------------------------------------------
    async def get_cluster_name(self) -> str:
        return (await self.backend.get(CLUSTER_NAME_KEY)).value.decode()

    async def create_cluster_name(self, name: str) -> str:
        """Store the name unless one exists; return the stored name either way."""
        try:
            await self.backend.create(Item(CLUSTER_NAME_KEY, name.encode()))
            return name
        except AlreadyExists:
            return await self.get_cluster_name()

    # certificate authorities --------------------------------------------------------------
    async def get_ca(self, ca_type: str) -> CertAuthority:
        try:
            item = await self.backend.get(f"/authorities/{check_ca_type(ca_type)}")
        except NotFound:
            raise NotFound(f"certificate authority {ca_type!r} not found") from None
        return CertAuthority.from_json(item.value)  # type: ignore[return-value]

    async def create_ca(self, ca: CertAuthority) -> bool:
        """Create the CA if absent; False when another auth server already made it."""
        try:
            await self.backend.create(Item(f"/authorities/{check_ca_type(ca.name)}", ca.to_json()))
            return True
        except AlreadyExists:
            return False

    async def swap_ca(
        self, ca_type: str, change: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> dict[str, Any]:
        """Replace the CA's spec with change(spec) by compare-and-swap, retrying when another auth
        server changed it in between (so two rotations never interleave); returns the new spec."""
        key = f"/authorities/{check_ca_type(ca_type)}"
        for _ in range(10):
            item = await self.backend.get(key)
            ca = CertAuthority.from_json(item.value)
            spec = change(ca.spec)
            new = CertAuthority(metadata=ca.metadata, spec=spec)
            try:
                await self.backend.compare_and_swap(item, Item(key, new.to_json()))
                return spec
            except CompareFailed:
                continue
        raise CompareFailed(f"the {ca_type} CA keeps changing under us: try again")

    # users --------------------------------------------------------------------------------
    async def get_user(self, name: str) -> User:
        try:
            item = await self.backend.get(f"{_user(name)}/params")
        except NotFound:
            raise NotFound(f"user {name!r} not found") from None
        return User.from_json(item.value)  # type: ignore[return-value]

    async def list_users(self) -> list[User]:
        items = await self.backend.get_range("/users/")
        return [User.from_json(i.value) for i in items if i.key.endswith("/params")]  # type: ignore[misc]

    async def create_user(self, user: User) -> None:
        try:
            await self.backend.create(Item(f"{_user(user.name)}/params", user.to_json()))
        except AlreadyExists:
            raise AlreadyExists(f"user {user.name!r} already exists") from None

    async def upsert_user(self, user: User) -> None:
        await self.backend.put(Item(f"{_user(user.name)}/params", user.to_json()))

    async def delete_user(self, name: str) -> None:
        await self.get_user(name)
        await self.backend.delete_range(f"{_user(name)}/")

    async def get_user_secret(self, name: str, what: str) -> dict[str, Any]:
        """Per-user private state: 'pwd' (hash), 'totp' (secret, last counter), 'attempts'."""
        return json.loads((await self.backend.get(f"{_user(name)}/{what}")).value)

    async def put_user_secret(self, name: str, what: str, value: dict[str, Any]) -> None:
        await self.backend.put(Item(f"{_user(name)}/{what}", _json(value)))

    async def swap_user_secret(
        self, name: str, what: str, old: dict[str, Any], new: dict[str, Any]
    ) -> None:
        """Atomically replace per-user state; CompareFailed when someone else changed it."""
        key = f"{_user(name)}/{what}"
        await self.backend.compare_and_swap(Item(key, _json(old)), Item(key, _json(new)))

    # login attempts, per (user, source address) --------------------------------------------
    @staticmethod
    def _attempts_key(user: str, source: str) -> str:
        # Both parts come from the network (any user name, known or not): a digest is a safe,
        # fixed-length key whatever they contain.
        digest = hashlib.sha256(f"{user}\0{source}".encode()).hexdigest()
        return f"/loginattempts/{digest}"

    async def get_login_attempts(self, user: str, source: str) -> dict[str, Any]:
        """{"failures": n, "locked_until": t} for logins of ``user`` from ``source``."""
        try:
            item = await self.backend.get(self._attempts_key(user, source))
        except NotFound:
            return {"failures": 0, "locked_until": 0}
        return dict(json.loads(item.value))

    async def put_login_attempts(
        self, user: str, source: str, state: dict[str, Any], expires: float
    ) -> None:
        """Store the attempt state; it disappears by itself at ``expires``."""
        await self.backend.put(Item(self._attempts_key(user, source), _json(state), expires))

    async def delete_login_attempts(self, user: str, source: str) -> None:
        try:
            await self.backend.delete(self._attempts_key(user, source))
        except NotFound:
            pass

    # roles --------------------------------------------------------------------------------
    async def get_role(self, name: str) -> Role:
        try:
            item = await self.backend.get(_role(name))
        except NotFound:
            raise NotFound(f"role {name!r} not found") from None
        return Role.from_json(item.value)

    async def list_roles(self) -> list[Role]:
        return [Role.from_json(i.value) for i in await self.backend.get_range("/roles/")]

    async def upsert_role(self, role: Role) -> None:
        await self.backend.put(Item(_role(role.name), role.to_json()))

    async def create_role(self, role: Role) -> None:
        try:
            await self.backend.create(Item(_role(role.name), role.to_json()))
        except AlreadyExists:
            raise AlreadyExists(
                f"role {role.name!r} already exists: use 'tctl create -f' to replace it"
            ) from None

    async def delete_role(self, name: str) -> None:
        try:
            await self.backend.delete(_role(name))
        except NotFound:
            raise NotFound(f"role {name!r} not found") from None

    # join tokens and invites (stored under the digest of the token) ------------------------
    async def put_token(self, digest: str, token: ProvisionToken) -> None:
        await self.backend.create(
            Item(f"/tokens/{digest}", token.to_json(), expires=_expires(token.metadata.expires))
        )

    async def get_token(self, digest: str) -> ProvisionToken:
        item = await self.backend.get(f"/tokens/{digest}")
        return ProvisionToken.from_json(item.value)  # type: ignore[return-value]

    async def list_tokens(self) -> list[ProvisionToken]:
        return [
            ProvisionToken.from_json(i.value)  # type: ignore[misc]
            for i in await self.backend.get_range("/tokens/")
        ]

    async def delete_token(self, digest: str) -> None:
        await self.backend.delete(f"/tokens/{digest}")

    async def put_invite(self, digest: str, invite: dict[str, Any], expires: float) -> None:
        await self.backend.create(Item(f"/invites/{digest}", _json(invite), expires=expires))

    async def get_invite(self, digest: str) -> tuple[Item, dict[str, Any]]:
        item = await self.backend.get(f"/invites/{digest}")
        return item, json.loads(item.value)

    async def list_invites(self) -> list[dict[str, Any]]:
        out = []
        for item in await self.backend.get_range("/invites/"):
            data = json.loads(item.value)
            data["expires"] = item.expires
            data["digest"] = item.key.rsplit("/", 1)[-1]
            out.append(data)
        return out

    async def consume_invite(self, item: Item) -> None:
        """Delete the invite only if it is unchanged, so that it works exactly once."""
        try:
            await self.backend.compare_and_swap(item, Item(item.key, b"", expires=time.time() + 1))
        except (CompareFailed, NotFound):
            raise BadParameter("this invite was already used or has expired") from None
        await self.backend.delete(item.key)

    async def delete_invite(self, digest: str) -> None:
        await self.backend.delete(f"/invites/{digest}")

    # web sessions (keyed by the SHA-256 digest of the session id: the id itself is a secret) -
    async def put_web_session(self, digest: str, session: dict[str, Any], expires: float) -> None:
        await self.backend.put(Item(f"/websessions/{digest}", _json(session), expires=expires))

    async def get_web_session(self, digest: str) -> dict[str, Any]:
        try:
            item = await self.backend.get(f"/websessions/{digest}")
        except NotFound:
            raise NotFound("web session not found (expired or logged out)") from None
        return dict(json.loads(item.value))

    async def delete_web_session(self, digest: str) -> None:
        try:
            await self.backend.delete(f"/websessions/{digest}")
        except NotFound:
            pass

    # nodes --------------------------------------------------------------------------------
    async def upsert_node(self, server: Server, ttl: float, kind: str = "nodes") -> None:
        """Record a heartbeat of a node (kind 'nodes') or proxy (kind 'proxies') for ttl."""
        await self.backend.put(
            Item(
                f"/{kind}/{server.metadata.namespace}/{server.name}",
                server.to_json(),
                expires=time.time() + ttl,
            )
        )

    async def delete_node(self, name: str, kind: str = "nodes", namespace: str = "default") -> None:
        """Forget a heartbeat at once (a proxy that stops); absent is fine."""
        try:
            await self.backend.delete(f"/{kind}/{namespace}/{check_host_id(name)}")
        except NotFound:
            pass

    async def list_nodes(self, namespace: str = "default", kind: str = "nodes") -> list[Server]:
        cls = ProxyServer if kind == "proxies" else Server
        return [
            cls.from_json(i.value)  # type: ignore[misc]
            for i in await self.backend.get_range(f"/{kind}/{namespace}/")
        ]

    # hosts: every host identity ever issued, so that a join token never re-issues one -------
    async def get_host(self, host_id: str) -> dict[str, Any]:
        """The record of an issued host identity: {roles, nodename, created}; NotFound if none."""
        return json.loads((await self.backend.get(f"/hosts/{check_host_id(host_id)}")).value)

    async def add_host_role(self, host_id: str, role: str, nodename: str, new: bool = False) -> None:
        """Record that `host_id` holds an identity for `role`; with new=True the host must not
        exist yet (AlreadyExists otherwise, also when a concurrent call created it first)."""
        key = f"/hosts/{check_host_id(host_id)}"
        for _ in range(10):
            try:
                old = await self.backend.get(key)
            except NotFound:
                record = {"roles": [role], "nodename": nodename, "created": time.time()}
                try:
                    await self.backend.create(Item(key, _json(record)))
                    return
                except AlreadyExists:
                    if new:
                        raise
                    continue
            if new:
                raise AlreadyExists(f"host {host_id} already exists")
            record = json.loads(old.value)
            if role in record.get("roles", []) and record.get("nodename") == nodename:
                return
            record["roles"] = sorted(set(record.get("roles", [])) | {role})
            record["nodename"] = nodename
            try:
                await self.backend.compare_and_swap(old, Item(key, _json(record)))
                return
            except (CompareFailed, NotFound):
                continue
        raise CompareFailed(f"host {host_id} is being registered concurrently; try again")
