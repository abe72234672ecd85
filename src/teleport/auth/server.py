"""The auth service's logic: CA custody, users and invites, login, join tokens, host identities.

It talks only to a ClusterStore (never to a network); auth/api.py exposes it over mutual TLS.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from teleport import defaults
from teleport.auth import secrets
from teleport.auth.hashing import PasswordHasher
from teleport.auth.store import ClusterStore
from teleport.ca import keys as cakeys
from teleport.ca import sshcert, tlsca
from teleport.durations import parse_duration
from teleport.errors import (
    AccessDenied,
    AlreadyExists,
    BadParameter,
    CompareFailed,
    NotFound,
)
from teleport.limits import LoginRateLimits, source_of
from teleport.proxy.dialpolicy import normalize_host, parse_ip
from teleport.rbac.presets import preset_roles
from teleport.rbac.roleset import RoleSet
from teleport.types.names import (
    check_host_id,
    check_host_principal,
    check_logins,
    check_new_user_name,
    check_role_name,
)
from teleport.types.resources import CertAuthority, Metadata, ProvisionToken, Server, User
from teleport.types.role import Role

log = logging.getLogger(__name__)

CA_TYPES = ("user", "host", "tls")

# Principal given to a certificate whose roles allow no login: an empty principal list would
# make OpenSSH accept the certificate for ANY login.
NO_LOGIN_PRINCIPAL = "-teleport-nologin-"


@dataclass
class StaticToken:
    roles: list[str]
    token: str = field(repr=False)


@dataclass
class LoginResult:
    cert: str
    tls_cert: bytes
    username: str
    roles: list[str]
    logins: list[str]
    expires: float


@dataclass
class HostIdentity:
    host_id: str
    role: str
    private_key: bytes  # OpenSSH private key (the SSH host key)
    cert: str  # OpenSSH host certificate
    tls_key: bytes
    tls_cert: bytes
    tls_ca: bytes
    cluster_name: str
    user_ca_keys: list[str]
    host_ca_keys: list[str]


def _now() -> float:
    return time.time()


def clamp_ttl(requested: float | None) -> int:
    """Clamp a requested user certificate TTL to [1 min, 30 h] (default 23 h)."""
    ttl = defaults.USER_CERT_TTL if not requested else parse_duration(requested)
    return int(min(max(ttl, defaults.MIN_USER_CERT_TTL), defaults.MAX_USER_CERT_TTL))


class AuthServer:
    """Holds the cluster's CAs and state; every method is an action the API authorizes first."""

    def __init__(
        self,
        store: ClusterStore,
        cluster_name: str,
        static_tokens: list[StaticToken] | None = None,
        second_factor: str = defaults.SECOND_FACTOR,
        ca_key_type: str = defaults.CA_KEY_TYPE,
    ) -> None:
        self.store = store
        self.cluster_name = cluster_name
        self.static_tokens = static_tokens or []
        self.second_factor = second_factor
        self.ca_key_type = ca_key_type
        self.session_recording = "node"  # node | proxy | off: where sessions are recorded
        self._signers: dict[str, Any] = {}
        self._tls_ca: tuple[bytes, bytes] | None = None
        # login protection: hashing off the loop, attempt rates, per-(user, address) lockout
        self.hasher = PasswordHasher()
        self.login_rates = LoginRateLimits()
        self._attempts_lock = asyncio.Lock()
        # Where the auth service's own audit events go (set by the process to the audit log):
        # (event type, fields) -> None.
        self.on_event: Callable[..., None] = lambda event_type, **fields: None

    # start-up ---------------------------------------------------------------------------
    @classmethod
    async def init(
        cls,
        store: ClusterStore,
        cluster_name: str | None,
        static_tokens: list[StaticToken] | None = None,
        second_factor: str = defaults.SECOND_FACTOR,
        ca_key_type: str = defaults.CA_KEY_TYPE,
    ) -> AuthServer:
        """First start: create cluster name, CAs and preset roles; later starts: load them."""
        wanted = cluster_name or str(uuid.uuid4())
        stored = await store.create_cluster_name(wanted)
        if cluster_name and stored != cluster_name:
            raise BadParameter(
                f"auth_service.cluster_name is {cluster_name!r} but this cluster's storage was "
                f"created as {stored!r}: renaming a cluster invalidates all its keys; set "
                f"cluster_name back to {stored!r} or start with an empty data_dir"
            )
        server = cls(store, stored, static_tokens, second_factor, ca_key_type)
        for ca_type in CA_TYPES:
            await server._ensure_ca(ca_type)
        for role in preset_roles():
            try:
                await store.create_role(role)
            except AlreadyExists:
                pass
        await server._load_signers()
        return server

    async def _ensure_ca(self, ca_type: str) -> None:
        try:
            await self.store.get_ca(ca_type)
            return
        except NotFound:
            pass
        if ca_type == "tls":
            key_pem, cert_pem = tlsca.create_tls_ca(self.cluster_name)
            spec = {
                "type": "tls",
                "cluster_name": self.cluster_name,
                "checking_keys": [cert_pem.decode()],
                "signing_keys": [key_pem.decode()],
            }
        else:
            key = cakeys.generate_private_key(self.ca_key_type)
            spec = {
                "type": ca_type,
                "cluster_name": self.cluster_name,
                "checking_keys": [cakeys.public_key_to_openssh(key)],
                "signing_keys": [cakeys.private_key_to_pem(key).decode()],
            }
        ca = CertAuthority(metadata=Metadata(name=ca_type), spec=spec)
        if await self.store.create_ca(ca):
            log.info("created the %s certificate authority", ca_type)

    async def _load_signers(self) -> None:
        for ca_type in ("user", "host"):
            ca = await self.store.get_ca(ca_type)
            self._signers[ca_type] = cakeys.load_private_key(ca.spec["signing_keys"][0].encode())
        tls = await self.store.get_ca("tls")
        self._tls_ca = (tls.spec["signing_keys"][0].encode(), tls.spec["checking_keys"][0].encode())

    # certificate authorities (public parts only: private keys never leave this object) ----
    async def get_cert_authorities(self) -> list[CertAuthority]:
        return [(await self.store.get_ca(t)).without_secrets() for t in CA_TYPES]

    async def checking_keys(self, ca_type: str) -> list[str]:
        return list((await self.store.get_ca(ca_type)).spec["checking_keys"])

    @property
    def tls_ca_cert(self) -> bytes:
        assert self._tls_ca is not None
        return self._tls_ca[1]

    def issue_tls_identity(
        self, identity: tlsca.Identity, public_key: Any, ttl: int, dns_names: list[str] = ()  # type: ignore[assignment]
    ) -> bytes:
        """Sign an x509 identity for the internal API."""
        assert self._tls_ca is not None
        return tlsca.issue_identity_cert(
            self._tls_ca[0], self._tls_ca[1], public_key, identity, ttl, dns_names=list(dns_names)
        )

    def new_tls_identity(
        self, identity: tlsca.Identity, ttl: int = defaults.INTERNAL_TLS_TTL, dns_names: list[str] = ()  # type: ignore[assignment]
    ) -> tuple[bytes, bytes]:
        """Generate a key and an x509 identity; returns (key PEM, cert PEM)."""
        key = tlsca.generate_tls_key()
        cert = self.issue_tls_identity(identity, key.public_key(), ttl, dns_names)
        return cakeys.private_key_to_pem(key), cert

    # roles ---------------------------------------------------------------------------------
    async def roleset_for(self, user: User) -> RoleSet:
        roles = []
        for name in user.roles:
            try:
                roles.append(await self.store.get_role(name))
            except NotFound:
                log.warning("user %s refers to a missing role %s", user.name, name)
        return RoleSet(roles, user.traits)

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

    async def visible_nodes(self, username: str) -> list[Server]:
        """The registered nodes the user's current roles allow some login on."""
        try:
            user = await self.store.get_user(username)
        except NotFound:
            raise AccessDenied(f"user {username!r} does not exist (deleted?)") from None
        roleset = await self.roleset_for(user)
        return [n for n in await self.store.list_nodes() if roleset.can_see_node(server_labels(n))]

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
        out = {"user": invite["user"], "second_factor": self.second_factor}
        if self.second_factor == "otp":
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

    async def complete_invite(self, token: str, password: str, otp_code: str) -> User:
        """Set the password and enrol the one-time code; the invite then stops working."""
        item, invite = await self._find_invite(token)
        secrets.check_password_strength(password)
        counter = 0
        if self.second_factor == "otp":
            counter = secrets.verify_totp(invite["otp_secret"], otp_code, 0).counter
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
        await self.store.put_user_secret(
            user.name, "totp", {"secret": invite["otp_secret"], "last": counter}
        )
        return user

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

    # login -----------------------------------------------------------------------------
    async def _begin_attempt(self, name: str, source: str) -> tuple[bool, int]:
        """Count an attempt before checking it: (locked, failures counted before this one).

        Counting first, under one lock, means a burst of concurrent attempts cannot all read
        "0 failures" and all get a try: at most MAX_LOGIN_ATTEMPTS are ever checked."""
        async with self._attempts_lock:
            state = await self.store.get_login_attempts(name, source)
            locked_until = float(state.get("locked_until", 0))
            failures = int(state.get("failures", 0))
            if locked_until > _now():
                return True, failures
            if locked_until:
                failures = 0  # an expired lock: start afresh
            elif failures >= defaults.MAX_LOGIN_ATTEMPTS:
                return True, failures  # the last allowed attempts are still being checked
            await self.store.put_login_attempts(
                name, source, {"failures": failures + 1, "locked_until": 0},
                _now() + defaults.ACCOUNT_LOCK_SECONDS,
            )
            return False, failures

    async def _end_attempt(self, name: str, source: str, ok: bool, failures_before: int) -> None:
        """Settle a counted attempt: success clears the count; the MAX_LOGIN_ATTEMPTS-th failure
        locks this user out from this source address, and says so in the audit log (that is how
        the real user learns of it)."""
        async with self._attempts_lock:
            if ok:
                await self.store.delete_login_attempts(name, source)
                return
            if failures_before + 1 != defaults.MAX_LOGIN_ATTEMPTS:
                return  # not the attempt that sets the lock
            until = _now() + defaults.ACCOUNT_LOCK_SECONDS
            await self.store.put_login_attempts(
                name, source, {"failures": failures_before + 1, "locked_until": until}, until
            )
        when = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        reason = (
            f"logins of {name!r} from {source or 'an unknown address'} are locked until {when} "
            f"after {defaults.MAX_LOGIN_ATTEMPTS} failed attempts (other addresses are not affected)"
        )
        log.warning("%s", reason)
        self.on_event("user.login", user=name, method="local", success=False, error=reason,
                      addr_remote=source or None)

    async def check_credentials(
        self, name: str, password: str, otp_code: str, remote_addr: str = ""
    ) -> User:
        """Password then one-time code, for a login from ``remote_addr`` (the client's address).

        Unknown users, wrong passwords or codes and locked (user, address) pairs all get the same
        AccessDenied message after the same work (one argon2 check, the same backend reads and
        writes), so the answer tells nobody which users exist. Attempts are rate-limited per
        address and per user name (LimitExceeded), and MAX_LOGIN_ATTEMPTS failures lock the user
        out from that address only."""
        source = source_of(remote_addr)
        self.login_rates.check(source, name)
        locked, failures_before = await self._begin_attempt(name, source)
        try:
            user: User | None = await self.store.get_user(name)
        except NotFound:
            user = None
        encoded = _DUMMY_HASH
        reason = ""
        if user is None:
            reason = "unknown user"
        elif locked:
            reason = "locked after too many failed attempts from this address"
        else:
            try:
                encoded = (await self.store.get_user_secret(name, "pwd"))["hash"]
            except NotFound:
                reason = "the user has no password yet (invite not completed)"
        # Always one hash check, against the dummy hash when there is nothing to check against,
        # so that every refusal costs the same time.
        ok = await self.hasher.verify(encoded, password)
        if not reason and not ok:
            reason = "wrong password"
        if not reason and self.second_factor == "otp":
            try:
                await self._check_totp(name, otp_code)
            except AccessDenied as exc:
                reason = f"one-time code refused: {exc.message}"
        if reason:
            if not locked:
                await self._end_attempt(name, source, False, failures_before)
            log.info("login of %r from %s refused: %s", name, source or "?", reason)
            raise AccessDenied(defaults.LOGIN_FAILED_MESSAGE)
        await self._end_attempt(name, source, True, failures_before)
        assert user is not None
        return user

    async def _check_totp(self, name: str, code: str) -> None:
        for _ in range(5):
            totp = await self.store.get_user_secret(name, "totp")
            check = secrets.verify_totp(totp["secret"], code or "", int(totp.get("last", 0)))
            try:
                await self.store.swap_user_secret(name, "totp", totp, {**totp, "last": check.counter})
                return
            except CompareFailed:
                continue  # a concurrent login used a code; re-check against the new counter
        raise AccessDenied("one-time code was already used: wait for the next code")

    async def authenticate_ssh(
        self, name: str, password: str, otp_code: str, public_key: str, ttl: float | None,
        remote_addr: str = "",
    ) -> LoginResult:
        """Check credentials and sign the client's key: SSH user certificate + x509 identity."""
        user = await self.check_credentials(name, password, otp_code, remote_addr)
        return await self.generate_user_certs(user, public_key, ttl)

    async def generate_user_certs(
        self, user: User, public_key: str, ttl: float | None, route_to_cluster: str = ""
    ) -> LoginResult:
        """Sign a user's public key with the user CA, limited by the user's roles."""
        try:
            pub = cakeys.load_public_key(public_key)
        except Exception as exc:
            raise BadParameter(f"bad public key: {exc}") from None
        roleset = await self.roleset_for(user)
        effective = int(roleset.adjust_session_ttl(clamp_ttl(ttl)))
        effective = max(effective, defaults.MIN_USER_CERT_TTL)
        logins = roleset.logins()
        principals = logins or [NO_LOGIN_PRINCIPAL + str(uuid.uuid4())]
        now = _now()
        cert = sshcert.sign_user_cert(
            self._signers["user"],
            public_key,
            username=user.name,
            principals=principals,
            ttl=effective,
            roles=user.roles,
            traits=user.traits,
            permit_port_forwarding=roleset.permit_port_forwarding(),
            permit_agent_forwarding=roleset.permit_agent_forwarding(),
            route_to_cluster=self.cluster_name,
            now=now,
        )
        identity = tlsca.Identity(
            username=user.name,
            system_role="User",
            roles=user.roles,
            logins=logins,
            cluster_name=self.cluster_name,
        )
        tls_cert = self.issue_tls_identity(identity, pub, effective)
        return LoginResult(cert, tls_cert, user.name, user.roles, logins, now + effective)

    async def sign_for_automation(self, name: str, ttl: float | None) -> tuple[bytes, str]:
        """`tctl auth sign --user`: a fresh key and certificate for an existing user."""
        user = await self.store.get_user(name)
        key = cakeys.generate_private_key("ed25519")
        result = await self.generate_user_certs(user, cakeys.public_key_to_openssh(key), ttl)
        return cakeys.private_key_to_openssh(key), result.cert

    async def check_ssh_access(self, username: str, login: str, node_labels: dict[str, str]) -> dict[str, Any]:
        """Decide with the user's current roles whether login is allowed on a node with these
        labels; returns the session options the roles grant. Raises AccessDenied."""
        try:
            user = await self.store.get_user(username)
        except NotFound:
            raise AccessDenied(f"user {username!r} does not exist (deleted?)") from None
        roleset = await self.roleset_for(user)
        roleset.check_login(login, node_labels)
        return {
            "user": username,
            "login": login,
            "roles": user.roles,
            "permit_port_forwarding": roleset.permit_port_forwarding(),
            "permit_agent_forwarding": roleset.permit_agent_forwarding(),
            "client_idle_timeout": roleset.client_idle_timeout(),
            "disconnect_expired_cert": roleset.disconnect_expired_cert(),
            "max_connections": roleset.max_connections(),
            "max_sessions": roleset.max_sessions(),
        }

    # join tokens -----------------------------------------------------------------------
    async def create_join_token(self, roles: list[str], ttl: float | None) -> ProvisionToken:
        """A random token for `tctl nodes add`; lifetime at most 30 minutes."""
        roles = _check_system_roles(roles or ["node"])
        ttl = defaults.NODE_TOKEN_TTL if not ttl else parse_duration(ttl)
        if ttl <= 0 or ttl > defaults.MAX_NODE_TOKEN_TTL:
            raise BadParameter(
                f"token TTL must be between 1s and {defaults.MAX_NODE_TOKEN_TTL // 60}m "
                "(it can be shortened, not lengthened)"
            )
        token = secrets.new_token()
        res = ProvisionToken(
            metadata=Metadata(name=token, expires=datetime.fromtimestamp(_now() + ttl, UTC)),
            spec={"roles": roles},
        )
        await self.store.put_token(secrets.token_digest(token), res)
        return res

    async def list_tokens(self) -> list[dict[str, Any]]:
        """Static, dynamic and invite tokens, for `tctl tokens ls`."""
        out: list[dict[str, Any]] = [
            {"token": t.token, "roles": t.roles, "expires": None, "static": True}
            for t in self.static_tokens
        ]
        for tok in await self.store.list_tokens():
            exp = tok.metadata.expires
            out.append(
                {
                    "token": tok.name,
                    "roles": tok.roles,
                    "expires": exp.timestamp() if exp else None,
                    "static": False,
                }
            )
        for inv in await self.store.list_invites():
            # The token itself is stored only as its digest; an id from the digest names the
            # invite for `tctl tokens del` without revealing the token.
            out.append(
                {"token": invite_id(inv["digest"]), "roles": ["signup"], "user": inv["user"],
                 "expires": inv["expires"], "static": False}
            )
        return out

    async def delete_token(self, token: str) -> None:
        for static in self.static_tokens:
            if secrets.tokens_equal(static.token, token):
                raise BadParameter(
                    "this is a static token from auth_service.tokens in teleport.yaml: remove it "
                    "from the file and restart the auth service instead"
                )
        if token.startswith(INVITE_ID_PREFIX):
            for inv in await self.store.list_invites():
                if invite_id(inv["digest"]) == token:
                    await self.store.delete_invite(inv["digest"])
                    return
            raise NotFound(f"invite {token} not found (used, expired or already deleted)")
        digest = secrets.token_digest(token)
        try:
            await self.store.delete_token(digest)
            return
        except NotFound:
            pass
        try:
            await self.store.delete_invite(digest)
        except NotFound:
            raise NotFound(f"token {token[:4]}... not found (expired or already deleted)") from None

    async def validate_join_token(self, token: str, role: str) -> None:
        """Refuse unknown, expired, deleted tokens, and roles the token does not carry."""
        roles: list[str] | None = None
        for static in self.static_tokens:
            if secrets.tokens_equal(static.token, token):
                roles = static.roles
        if roles is None:
            try:
                tok = await self.store.get_token(secrets.token_digest(token))
            except NotFound:
                raise AccessDenied(
                    "the join token is unknown, expired or deleted: ask an administrator for a "
                    "new one ('tctl nodes add')"
                ) from None
            roles = tok.roles
        if role.lower() not in roles:
            raise AccessDenied(
                f"the join token does not allow the role {role!r} (it allows {', '.join(roles)})"
            )

    async def register_host(
        self,
        token: str,
        role: str,
        host_id: str,
        nodename: str,
        addresses: list[str],
        caller: tlsca.Identity | None = None,
    ) -> HostIdentity:
        """Join: a valid token buys an SSH host certificate and an x509 identity for the role.

        A token creates new identities only: a host id that already exists is re-issued only to
        a caller that proves, with its current identity (`caller`), that it is that host.
        """
        if role.lower() not in defaults.SERVICE_ROLES:
            raise BadParameter(
                f"unknown host role {role!r}: expected one of {', '.join(defaults.SERVICE_ROLES)}"
            )
        await self.validate_join_token(token, role)
        check_host_id(host_id)
        proven = (
            caller is not None
            and caller.host_id == host_id
            and caller.cluster_name == self.cluster_name
            and caller.system_role in ("Node", "Proxy", "Auth")
        )
        if role.lower() == "node":
            await self._refuse_taken_nodename(host_id, nodename)
        if not proven:
            await self._refuse_existing_host(host_id)
            try:
                await self.store.add_host_role(host_id, role.capitalize(), nodename, new=True)
            except AlreadyExists:
                await self._refuse_existing_host(host_id)  # raises: someone registered it first
        return await self.issue_host_identity(role, host_id, nodename, addresses)

    async def _refuse_existing_host(self, host_id: str) -> None:
        known = True
        try:
            await self.store.get_host(host_id)
        except NotFound:
            # clusters from before host records: a heartbeat also proves the host exists
            known = False
            for kind in ("nodes", "proxies"):
                known = known or any(s.name == host_id for s in await self.store.list_nodes(kind=kind))
        if known:
            raise AccessDenied(
                f"host id {host_id} is already registered in this cluster: a join token only "
                "creates new hosts. If this host lost its identity, delete "
                "DATA_DIR/host_uuid (and DATA_DIR/keys) so that it joins as a new host"
            )

    async def _refuse_taken_nodename(self, host_id: str, nodename: str) -> None:
        if parse_ip(nodename) is not None:
            raise BadParameter(
                f"nodename {nodename!r} is an IP address: a node's name must be a host name "
                "(users reach it by name; its addresses come from advertise_ip and listen_addr)"
            )
        wanted = normalize_host(nodename)
        for node in await self.store.list_nodes():
            if node.name != host_id and normalize_host(str(node.spec.get("hostname", ""))) == wanted:
                raise AccessDenied(
                    f"the name {nodename!r} is in use by online node {node.name}: start this "
                    "host with another nodename (teleport.nodename or --nodename)"
                )

    async def check_heartbeat(self, host_id: str, hostname: str) -> None:
        """A host heartbeats under the name it registered with (AccessDenied otherwise), so that
        no node can answer for another's name. Hosts from before host records are not checked."""
        try:
            record = await self.store.get_host(host_id)
        except NotFound:
            return
        registered = str(record.get("nodename", ""))
        if normalize_host(hostname) != normalize_host(registered):
            raise AccessDenied(
                f"host {host_id} registered as {registered!r} may not heartbeat as {hostname!r}: "
                "start it with its registered nodename, or join it as a new host"
            )

    async def sign_forward_cert(self, proxy_host_id: str, public_key: str, principal: str) -> str:
        """A short-lived host certificate for a recording proxy to present to clients as the node
        `principal` (recording proxy mode only: in the other modes no proxy terminates SSH)."""
        if self.session_recording != "proxy":
            raise AccessDenied(
                "forwarding host certificates are issued only in recording proxy mode "
                f"(auth_service.session_recording is {self.session_recording!r})"
            )
        check_host_id(proxy_host_id)
        check_host_principal(principal)
        if not isinstance(public_key, str) or not public_key or len(public_key) > 16384:
            raise BadParameter("public_key must be an OpenSSH public key line")
        cakeys.load_public_key(public_key)  # BadParameter names what is wrong with it
        return sshcert.sign_forward_host_cert(
            self._signers["host"], public_key, proxy_host_id=proxy_host_id,
            cluster_name=self.cluster_name, principal=principal,
            ttl=defaults.FORWARD_HOST_CERT_TTL,
        )

    async def issue_host_identity(
        self, role: str, host_id: str, nodename: str, addresses: list[str]
    ) -> HostIdentity:
        """Generate and sign the keys of a node, proxy or auth server."""
        role_title = role.capitalize()
        if role_title not in ("Node", "Proxy", "Auth"):
            raise BadParameter(f"unknown host role {role!r}: expected node, proxy or auth")
        check_host_id(host_id)
        await self.store.add_host_role(host_id, role_title, nodename)
        key = cakeys.generate_private_key("ed25519")
        cert = sshcert.sign_host_cert(
            self._signers["host"],
            cakeys.public_key_to_openssh(key),
            host_id=host_id,
            nodename=nodename,
            cluster_name=self.cluster_name,
            role=role_title,
            addresses=addresses,
        )
        identity = tlsca.Identity(
            username=f"{host_id}.{self.cluster_name}",
            system_role=role_title,
            cluster_name=self.cluster_name,
            host_id=host_id,
        )
        dns = [nodename, f"{host_id}.{self.cluster_name}", "localhost"]
        tls_key, tls_cert = self.new_tls_identity(identity, dns_names=dns)
        return HostIdentity(
            host_id=host_id,
            role=role_title,
            private_key=cakeys.private_key_to_openssh(key),
            cert=cert,
            tls_key=tls_key,
            tls_cert=tls_cert,
            tls_ca=self.tls_ca_cert,
            cluster_name=self.cluster_name,
            user_ca_keys=await self.checking_keys("user"),
            host_ca_keys=await self.checking_keys("host"),
        )


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
    labels = dict(node.metadata.labels)
    for name, cmd in (node.spec.get("cmd_labels") or {}).items():
        if isinstance(cmd, dict):
            labels[str(name)] = str(cmd.get("result", "")).strip()
    return labels


def _check_system_roles(roles: list[str]) -> list[str]:
    out = []
    for r in roles:
        r = r.strip().lower()
        if r not in defaults.SYSTEM_ROLES:
            raise BadParameter(
                f"unknown role {r!r}: expected one of {', '.join(defaults.SYSTEM_ROLES)}"
            )
        out.append(r)
    return out


def host_identity_to_dict(h: HostIdentity) -> dict[str, Any]:
    return {
        "host_id": h.host_id,
        "role": h.role,
        "private_key": h.private_key.decode(),
        "cert": h.cert,
        "tls_key": h.tls_key.decode(),
        "tls_cert": h.tls_cert.decode(),
        "tls_ca": h.tls_ca.decode(),
        "cluster_name": h.cluster_name,
        "user_ca_keys": h.user_ca_keys,
        "host_ca_keys": h.host_ca_keys,
    }


def host_identity_from_dict(d: dict[str, Any]) -> HostIdentity:
    return HostIdentity(
        host_id=d["host_id"],
        role=d["role"],
        private_key=d["private_key"].encode(),
        cert=d["cert"],
        tls_key=d["tls_key"].encode(),
        tls_cert=d["tls_cert"].encode(),
        tls_ca=d["tls_ca"].encode(),
        cluster_name=d["cluster_name"],
        user_ca_keys=list(d["user_ca_keys"]),
        host_ca_keys=list(d["host_ca_keys"]),
    )


_DUMMY_HASH = secrets.hash_password("not-a-real-password-" + str(uuid.uuid4()))


def _checked_logins(traits: dict[str, list[str]]) -> dict[str, list[str]]:
    """The `logins` trait checked against the login rule and de-duplicated."""
    if "logins" in traits:
        traits = {**traits, "logins": check_logins(list(traits["logins"]))}
    return traits


INVITE_ID_PREFIX = "invite-"


def invite_id(digest: str) -> str:
    """The id `tctl tokens ls` shows for an invite (a prefix of its token's digest)."""
    return INVITE_ID_PREFIX + digest[:16]


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
