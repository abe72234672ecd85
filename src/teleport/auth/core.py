"""The auth service's core: the cluster's CAs and the identities signed with them, and the roles
a user holds. The actions (users, login, hosts) are mixins over this core; auth/server.py joins
them. It talks only to a ClusterStore (never to a network).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from teleport import defaults
from teleport.auth.hashing import PasswordHasher
from teleport.auth.store import ClusterStore
from teleport.ca import keys as cakeys
from teleport.ca import tlsca
from teleport.errors import (
    AlreadyExists,
    BadParameter,
    NotFound,
)
from teleport.limits import LoginRateLimits
from teleport.rbac.access import roleset_of
from teleport.rbac.presets import preset_roles
from teleport.rbac.roleset import RoleSet
from teleport.types.resources import CertAuthority, Metadata, User

log = logging.getLogger(__name__)


CA_TYPES = ("user", "host", "tls")


@dataclass
class StaticToken:
    roles: list[str]
    token: str = field(repr=False)


def _now() -> float:
    return time.time()


class AuthCore:
    """The cluster's CAs and state, shared by the action mixins."""

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
    ) -> Self:
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
        roles = {}
        for name in user.roles:
            try:
                roles[name] = await self.store.get_role(name)
            except NotFound:
                pass
        missing: list[str] = []
        roleset = roleset_of(user.roles, user.traits, roles, missing)
        for name in missing:
            log.warning("user %s refers to a missing role %s", user.name, name)
        return roleset
