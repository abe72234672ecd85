"""Join tokens and host identities: a token creates a host; it never re-issues one."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from teleport import defaults
from teleport.auth import secrets
from teleport.auth.core import AuthCore, _now
from teleport.ca import keys as cakeys
from teleport.ca import sshcert, tlsca
from teleport.durations import parse_duration
from teleport.errors import (
    AccessDenied,
    AlreadyExists,
    BadParameter,
    NotFound,
)
from teleport.proxy.dialpolicy import normalize_host, parse_ip
from teleport.types.identity import HostIdentity, host_identity_from_dict, host_identity_to_dict  # noqa: F401
from teleport.types.names import (
    check_host_id,
    check_host_principal,
)
from teleport.types.resources import Metadata, ProvisionToken

log = logging.getLogger(__name__)


class HostsMixin(AuthCore):
    """Join tokens, registration, heartbeats and the certificates of hosts."""

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


INVITE_ID_PREFIX = "invite-"


def invite_id(digest: str) -> str:
    """The id `tctl tokens ls` shows for an invite (a prefix of its token's digest)."""
    return INVITE_ID_PREFIX + digest[:16]
