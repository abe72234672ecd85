"""Users, roles and invites: the actions of `tctl users`, `tctl create` and signup."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from teleport import defaults
from teleport.auth import secrets
from teleport.auth.core import AuthCore, _now
from teleport.auth.relyingparty import allows_otp, allows_webauthn
from teleport.durations import parse_duration
from teleport.errors import (
    AccessDenied,
    AlreadyExists,
    BadParameter,
    NotFound,
)
from teleport.rbac import access
from teleport.reversetunnel import route
from teleport.types.names import check_logins, check_new_user_name, check_role_name
from teleport.types.resources import Metadata, Server, User
from teleport.types.role import Role

log = logging.getLogger(__name__)


class UsersMixin(AuthCore):
    """Roles, users and invites."""

    async def check_roles_exist(self, names: list[str]) -> None:
        """BadParameter naming the unknown roles and the existing ones."""
        existing = {r.name for r in await self.store.list_roles()}
        unknown = [n for n in names if n not in existing]
        if unknown:
            raise BadParameter(
                f"unknown role(s) {', '.join(repr(n) for n in unknown)}; existing roles: "
                f"{', '.join(sorted(existing))} (create a role first with 'tctl create FILE')"
            )

    async def put_role(self, role: Role, replace: bool) -> bool:
        """Create a role, or with replace=True create or replace it; True when it was new."""
        if not replace:
            await self.store.create_role(role)
            return True
        try:
            await self.store.get_role(role.name)
            existed = True
        except NotFound:
            existed = False
        await self.store.upsert_role(role)
        return not existed

    async def delete_role(self, name: str) -> None:
        """Delete a role no user holds (deleting one in use would silently cut their access)."""
        await self.store.get_role(name)
        holders = sorted(u.name for u in await self.store.list_users() if name in u.roles)
        if holders:
            raise BadParameter(
                f"role {name!r} is in use by user(s) {', '.join(holders)}: give them other roles "
                "first ('tctl users update NAME --set-roles=...') or delete those users"
            )
        await self.store.delete_role(name)

    async def update_user(
        self, name: str, roles: list[str] | None = None, traits: dict[str, list[str]] | None = None
    ) -> User:
        """Replace a user's roles and/or traits (new logins and roles apply at the next login)."""
        user = await self.store.get_user(name)
        spec = dict(user.spec)
        if roles is not None:
            if not roles:
                raise BadParameter(f"user {name!r} needs at least one role")
            await self.check_roles_exist(roles)
            spec["roles"] = list(roles)
        if traits is not None:
            spec["traits"] = _checked_logins(check_traits(traits))
        updated = User(metadata=user.metadata, spec=spec)
        await self.store.upsert_user(updated)
        return updated

    async def put_user(self, user: User, replace: bool) -> bool:
        """Create a user resource (no password: complete it with a reset) or, with replace=True,
        update an existing one's roles and traits; True when it was new."""
        spec = dict(user.spec)
        unknown = set(spec) - {"roles", "traits", "created_at"}
        if unknown:
            raise BadParameter(
                f"user {user.name!r}: spec keys {', '.join(sorted(unknown))} are not accepted "
                "(only roles and traits; passwords are set with an invite)"
            )
        roles = [str(r) for r in spec.get("roles") or []]
        if not roles:
            raise BadParameter(f"user {user.name!r}: spec.roles must name at least one role")
        await self.check_roles_exist(roles)
        traits = _checked_logins(check_traits(spec.get("traits") or {}))
        try:
            current = await self.store.get_user(user.name)
        except NotFound:
            check_new_user_name(user.name)  # the rule for new users; older names stay readable
            current = None
        if current is not None and not replace:
            raise AlreadyExists(f"user {user.name!r} already exists: use 'tctl create -f' to update it")
        created = (current.spec.get("created_at") if current is not None else None) or datetime.now(
            UTC
        ).strftime("%Y-%m-%dT%H:%M:%SZ")
        new = User(
            metadata=Metadata(name=user.name, labels=user.metadata.labels),
            spec={"roles": roles, "traits": traits, "created_at": created},
        )
        await self.store.upsert_user(new)
        return current is None

    async def online_nodes(self, offline: bool = False) -> list[Server]:
        """The registered nodes, without tunnelled ones whose tunnel no proxy holds (unless
        `offline`): those are offline as soon as their proxy says the tunnel ended."""
        nodes = await self.store.list_nodes()
        if offline:
            return nodes
        proxies = [p.to_dict() for p in await self.store.list_nodes(kind="proxies")]
        keep = {n["metadata"]["name"] for n in route.online_only([n.to_dict() for n in nodes], proxies)}
        return [n for n in nodes if n.name in keep]

    async def node_dicts(self, offline: bool = False) -> list[dict[str, Any]]:
        """online_nodes as resources."""
        return [n.to_dict() for n in await self.online_nodes(offline)]

    async def visible_nodes(self, username: str, offline: bool = False) -> list[Server]:
        """The registered nodes the user's current roles allow some login on (online ones only
        unless `offline`)."""
        try:
            user = await self.store.get_user(username)
        except NotFound:
            raise AccessDenied(f"user {username!r} does not exist (deleted?)") from None
        roleset = await self.roleset_for(user)
        return [n for n in await self.online_nodes(offline) if roleset.can_see_node(server_labels(n))]

    # users and invites -------------------------------------------------------------------
    async def create_invite(
        self, username: str, logins: list[str], roles: list[str], ttl: float | None, proxy_addr: str
    ) -> dict[str, Any]:
        """Create a signup invite; the user does not exist until the invite is completed."""
        check_new_user_name(username)
        try:
            logins = check_logins(logins or [username])
        except BadParameter as exc:
            if logins:
                raise
            raise BadParameter(
                f"{exc.message}; the user name {username!r} is not a valid login, so name the "
                "logins: tctl users add NAME LOGIN1,LOGIN2"
            ) from None
        for name in roles:
            check_role_name(name)
        ttl = defaults.INVITE_TOKEN_TTL if not ttl else parse_duration(ttl)
        if ttl <= 0 or ttl > defaults.MAX_INVITE_TOKEN_TTL:
            raise BadParameter(
                f"invite TTL must be between 1s and {defaults.MAX_INVITE_TOKEN_TTL // 3600}h"
            )
        try:
            await self.store.get_user(username)
            raise AlreadyExists(f"user {username!r} already exists")
        except NotFound:
            pass
        for role in roles:
            await self.store.get_role(role)
        token = secrets.new_token()
        expires = _now() + ttl
        invite = {
            "user": username,
            "logins": logins,
            "roles": roles or ["access"],
            "otp_secret": secrets.new_totp_secret(),
            "created": _now(),
            "issuer": otp_issuer(self.cluster_name, proxy_addr),
        }
        await self.store.put_invite(secrets.token_digest(token), invite, expires)
        return {
            "token": token,
            "url": f"https://{proxy_addr}/web/invite/{token}",
            "expires": expires,
            "user": username,
        }

    async def get_invite(self, token: str) -> dict[str, Any]:
        """What the signup client needs: the user name and the one-time-code secret."""
        _, invite = await self._find_invite(token)
        out = {"user": invite["user"], "second_factor": self.second_factor,
               "logins": invite["logins"], "roles": invite["roles"]}
        if allows_otp(self.second_factor):
            out["otp_secret"] = invite["otp_secret"]
            issuer = invite.get("issuer") or self.cluster_name
            out["otp_uri"] = secrets.totp_uri(invite["otp_secret"], invite["user"], issuer)
        return out

    async def _find_invite(self, token: str) -> tuple[Any, dict[str, Any]]:
        try:
            return await self.store.get_invite(secrets.token_digest(token))
        except NotFound:
            raise NotFound(
                "invite not found: it has expired, was already used, or the URL is wrong; "
                "ask your administrator for a new one"
            ) from None

    async def complete_invite(
        self, token: str, password: str, otp_code: str, key: Any = None
    ) -> User:
        """Set the password and enrol the one-time code and/or a security key (``key``: the
        answer to begin_invite_key's challenge), as second_factor asks; the invite then stops
        working."""
        item, invite = await self._find_invite(token)
        secrets.check_password_strength(password)
        counter = None
        mode = self.second_factor
        if mode == "otp" or (otp_code and allows_otp(mode)):
            counter = secrets.verify_totp(invite["otp_secret"], otp_code, 0).counter
        device = None
        if key is not None and allows_webauthn(mode):
            device = await self.verify_new_device(invite["user"], key)  # type: ignore[attr-defined]
        if mode == "webauthn" and device is None:
            raise BadParameter("this cluster requires a security key: register one to sign up")
        if mode == "on" and device is None and counter is None:
            raise BadParameter("enter the one-time code or register a security key to sign up")
        pwd_hash = await self.hasher.hash(password)  # before consuming: it may be refused (busy)
        await self.store.consume_invite(item)
        user = User(
            metadata=Metadata(name=invite["user"]),
            spec={
                "roles": invite["roles"],
                "traits": {"logins": invite["logins"]},
                "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )
        await self.store.create_user(user)
        await self.store.put_user_secret(user.name, "pwd", {"hash": pwd_hash})
        if counter is not None:
            await self.store.put_user_secret(
                user.name, "totp", {"secret": invite["otp_secret"], "last": counter}
            )
        if device is not None:
            await self.store_device(user.name, device)  # type: ignore[attr-defined]
        return user

    async def begin_invite_key(self, token: str) -> dict[str, Any]:
        """A key registration challenge for an invite's future user."""
        _, invite = await self._find_invite(token)
        return await self.begin_registration(  # type: ignore[attr-defined]
            invite["user"], invite_digest=secrets.token_digest(token))

    async def delete_user(self, name: str) -> str:
        """Delete a user, and revoke the pending invites for that name (an invited user does not
        exist until signup, but `tctl users del NAME` is how an admin takes the invite back).
        Returns what was removed: "user", "invite" or "user and invite"."""
        revoked = 0
        for inv in await self.store.list_invites():
            if inv.get("user") == name:
                try:
                    await self.store.delete_invite(inv["digest"])
                    revoked += 1
                except NotFound:
                    pass  # used or expired meanwhile
        try:
            await self.store.delete_user(name)
        except NotFound:
            if revoked:
                return "invite"
            raise NotFound(f"user {name!r} not found (no user and no pending invite)") from None
        return "user and invite" if revoked else "user"

    async def list_users(self) -> list[User]:
        return await self.store.list_users()

    async def set_password(self, name: str, password: str) -> None:
        """Set a user's password directly (tests and automation; no invite)."""
        await self.store.get_user(name)
        secrets.check_password_strength(password)
        await self.store.put_user_secret(name, "pwd", {"hash": await self.hasher.hash(password)})


def check_traits(traits: Any) -> dict[str, list[str]]:
    """Traits must map names to lists of strings (a single string counts as a list of one)."""
    if not isinstance(traits, dict):
        raise BadParameter("traits must be a mapping of names to lists of strings")
    out: dict[str, list[str]] = {}
    for key, values in traits.items():
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise BadParameter(f"trait {key!r} must be a list of strings, got {values!r}")
        out[str(key)] = list(values)
    return out


def server_labels(node: Server) -> dict[str, str]:
    """A node's static labels plus the latest results of its command labels."""
    return access.node_labels(node.metadata.labels, node.spec.get("cmd_labels"))


def _checked_logins(traits: dict[str, list[str]]) -> dict[str, list[str]]:
    """The `logins` trait checked against the login rule and de-duplicated."""
    if "logins" in traits:
        traits = {**traits, "logins": check_logins(list(traits["logins"]))}
    return traits


def otp_issuer(cluster_name: str, proxy_addr: str) -> str:
    """The otpauth issuer authenticator apps show: the cluster name, or the proxy's public host
    when the cluster has no configured name (a generated UUID tells the user nothing)."""
    try:
        uuid.UUID(cluster_name)
    except ValueError:
        return cluster_name
    from teleport.config.addr import parse_host_port

    try:
        host = parse_host_port(proxy_addr, defaults.PROXY_WEB_PORT).host if proxy_addr else ""
    except BadParameter:
        host = ""
    return host or cluster_name
