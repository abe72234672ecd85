"""Trusted clusters on the auth service: the CAs of other clusters this one trusts, the
`trusted_cluster` resources (the leaf's side), the root's side of the CA exchange, and access
decisions for users of a root cluster (their roles mapped to local ones).

Stored records (JSON), one per (cluster, CA type) under /trust/cas/<cluster>/<type>:
  checking_keys   the other cluster's public CA keys
  relation        "root": we are its leaf (its user CA is trusted for the mapped roles);
                  "leaf": it is our leaf (its host CA is trusted for its reverse tunnel only)
  source          "static" (auth_service.trusted_clusters, re-read at start) or "dynamic"
  enabled         false: the resource is disabled (no access, no tunnel)
  allow_logins    static form: the logins its users get here
  role_map        dynamic form: [{remote, local: [...]}]
Trust is one way: a leaf's user CA is never trusted for logins on the root.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from teleport.auth.core import AuthCore
from teleport.auth.users import server_labels
from teleport.backend.base import Item
from teleport.ca import sshcert
from teleport.ca.sshcert import CertInfo
from teleport.errors import AccessDenied, AlreadyExists, BadParameter, NotFound
from teleport.rbac.roleset import RoleSet
from teleport.trustedcluster import resource as tcres
from teleport.types.resources import Metadata, Server
from teleport.types.role import Role

log = logging.getLogger(__name__)

CA_PREFIX = "/trust/cas/"
TC_PREFIX = "/trust/clusters/"
CA_KINDS = ("user", "host")


def _ca_key(cluster: str, ca_type: str) -> str:
    tcres.check_cluster_name(cluster, "cluster name")
    if ca_type not in CA_KINDS:
        raise BadParameter(f"unknown CA type {ca_type!r}")
    return f"{CA_PREFIX}{cluster}/{ca_type}"


def _keys(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value) or len(value) > 16:
        raise BadParameter(f"{where}: expected a list of OpenSSH public keys")
    from teleport.ca import keys as cakeys

    out = []
    for k in value:
        try:
            out.append(cakeys.public_key_to_openssh(cakeys.load_public_key(k)))
        except (BadParameter, ValueError):
            raise BadParameter(f"{where}: {k[:40]!r}... is not an OpenSSH public key") from None
    return out


class TrustMixin(AuthCore):
    """Trusted clusters: stored CAs, resources, the exchange, and remote users' access."""

    # stored CAs --------------------------------------------------------------------------------
    async def trusted_cas(self) -> list[dict[str, Any]]:
        """Every stored CA of another cluster (public keys only)."""
        out = []
        for item in await self.store.backend.get_range(CA_PREFIX):
            try:
                out.append(json.loads(item.value))
            except ValueError:
                log.warning("unreadable trusted CA record %s: skipped", item.key)
        return out

    async def _put_trusted_ca(self, cluster: str, ca_type: str, keys: list[str], **fields: Any) -> None:
        if cluster == self.cluster_name:
            raise BadParameter(f"cluster {cluster!r} is this cluster: it cannot trust itself")
        rec = {"cluster_name": cluster, "type": ca_type, "checking_keys": keys, "enabled": True, **fields}
        await self.store.backend.put(Item(_ca_key(cluster, ca_type), json.dumps(rec).encode()))

    async def _delete_trusted_cas(self, cluster: str) -> None:
        for t in CA_KINDS:
            try:
                await self.store.backend.delete(_ca_key(cluster, t))
            except NotFound:
                pass

    async def load_static_trust(self, entries: list[tuple[tcres.ExportedCAs, list[str], str]]) -> None:
        """auth_service.trusted_clusters (CAs, allowed logins, tunnel address), as read at start:
        replace every static record."""
        wanted = {e.cluster for e, _, _ in entries}
        for rec in await self.trusted_cas():
            if rec.get("source") == "static" and rec.get("cluster_name") not in wanted:
                await self._delete_trusted_cas(str(rec["cluster_name"]))
        for cas, logins, tunnel_addr in entries:
            # with allowed logins the other cluster's users come here: it is our root; without,
            # we only accept its tunnel and show it to our users
            relation = "root" if logins else "leaf"
            for t in CA_KINDS:
                keys = cas.user if t == "user" else cas.host
                if keys:
                    await self._put_trusted_ca(cas.cluster, t, keys, source="static", relation=relation,
                                               allow_logins=logins, tunnel_addr=tunnel_addr)
            log.info("trusting cluster %s (static, %s)", cas.cluster,
                     f"logins {','.join(logins)}" if logins else "no logins")

    async def trusted_user_ca_keys(self) -> list[str]:
        """User CA keys of enabled root clusters (what nodes accept besides their own CA)."""
        out: list[str] = []
        for rec in await self.trusted_cas():
            if rec.get("type") == "user" and rec.get("relation") == "root" and rec.get("enabled"):
                out += list(rec.get("checking_keys") or [])
        return out

    # the root's side of the exchange ---------------------------------------------------------
    async def validate_trusted_cluster(self, token: str, leaf: str, cas: dict[str, Any]) -> dict[str, Any]:
        """A leaf presents a `trusted_cluster` token and its CAs: store them (trusting the leaf's
        host CA for its tunnel) and return ours. The token works once."""
        from teleport.auth import secrets

        tcres.check_cluster_name(leaf, "cluster_name")
        if not isinstance(cas, dict):
            raise BadParameter("cas: expected {user: [...], host: [...]}")
        user, host = _keys(cas.get("user") or [], "cas.user"), _keys(cas.get("host") or [], "cas.host")
        if not host:
            raise BadParameter("cas.host: the leaf's host CA is needed")
        refused = AccessDenied(
            "the trusted cluster token is unknown, expired or already used: ask the root cluster's "
            "admin for a new one ('tctl tokens add --type=trusted_cluster')"
        )
        digest = secrets.token_digest(token)
        try:
            tok = await self.store.get_token(digest)
        except (NotFound, BadParameter):
            raise refused from None
        if "trusted_cluster" not in tok.roles:
            raise AccessDenied(
                f"this token is for joining hosts ({', '.join(tok.roles)}), not for trusted clusters: "
                "make one with 'tctl tokens add --type=trusted_cluster'"
            )
        try:
            await self.store.delete_token(digest)  # single use: a second exchange is refused
        except NotFound:
            raise refused from None
        if leaf == self.cluster_name:
            raise BadParameter(f"the leaf cluster has this cluster's name {leaf!r}: rename one of them")
        await self._put_trusted_ca(leaf, "host", host, source="dynamic", relation="leaf")
        if user:
            await self._put_trusted_ca(leaf, "user", user, source="dynamic", relation="leaf")
        log.info("cluster %s is now a trusted (leaf) cluster", leaf)
        return {
            "cluster_name": self.cluster_name,
            "user": await self.checking_keys("user"),
            "host": await self.checking_keys("host"),
        }

    # the leaf's resources ----------------------------------------------------------------------
    async def list_trusted_clusters(self) -> list[tcres.TrustedCluster]:
        out = []
        for item in await self.store.backend.get_range(TC_PREFIX):
            try:
                out.append(tcres.parse_trusted_cluster(json.loads(item.value)))
            except (ValueError, BadParameter) as exc:
                log.warning("unreadable trusted_cluster record %s: %s", item.key, exc)
        return out

    async def get_trusted_cluster(self, name: str) -> tcres.TrustedCluster:
        tcres.check_cluster_name(name, "trusted cluster name")
        try:
            item = await self.store.backend.get(TC_PREFIX + name)
        except NotFound:
            raise NotFound(f"trusted cluster {name!r} not found") from None
        return tcres.parse_trusted_cluster(json.loads(item.value))

    async def upsert_trusted_cluster(self, tc: tcres.TrustedCluster, replace: bool) -> bool:
        """Create (or with `replace`, update) a trusted cluster; enabled and not yet trusted, it
        exchanges CAs with the root first. Returns True when it was created."""
        from teleport.trustedcluster.exchange import exchange_cas

        if tc.name == self.cluster_name:
            raise BadParameter(f"{tc.name!r} is this cluster's own name: name the root cluster")
        existing: tcres.TrustedCluster | None
        try:
            existing = await self.get_trusted_cluster(tc.name)
        except NotFound:
            existing = None
        if existing is not None and not replace:
            raise AlreadyExists(f"trusted cluster {tc.name!r} already exists: use 'tctl create -f' to update it")
        have_cas = any(r.get("cluster_name") == tc.name and r.get("relation") == "root"
                       and r.get("source") == "dynamic" for r in await self.trusted_cas())
        if tc.enabled and (not have_cas or existing is None or existing.token != tc.token):
            answer = await exchange_cas(tc, self.cluster_name, {
                "user": await self.checking_keys("user"), "host": await self.checking_keys("host"),
            })
            if answer["cluster_name"] != tc.name:
                raise BadParameter(
                    f"the root cluster at {tc.web_proxy_addr} is named {answer['cluster_name']!r}, "
                    f"not {tc.name!r}: set metadata.name to the root cluster's name"
                )
            for t in CA_KINDS:
                await self._put_trusted_ca(tc.name, t, _keys(answer.get(t) or [], f"root {t} CA"),
                                           source="dynamic", relation="root")
        role_map = tc.to_dict()["spec"]["role_map"]
        for rec in await self.trusted_cas():
            if rec.get("cluster_name") == tc.name and rec.get("source") == "dynamic":
                rec.update(enabled=tc.enabled, role_map=role_map, relation="root", tunnel_addr=tc.tunnel_addr)
                await self.store.backend.put(Item(_ca_key(tc.name, rec["type"]), json.dumps(rec).encode()))
        await self.store.backend.put(Item(TC_PREFIX + tc.name, json.dumps(tc.to_dict(with_token=True)).encode()))
        return existing is None

    async def delete_trusted_cluster(self, name: str) -> None:
        """Forget the root cluster: its CAs (no more access) and the tunnel (the proxy drops it)."""
        await self.get_trusted_cluster(name)
        await self._delete_trusted_cas(name)
        await self.store.backend.delete(TC_PREFIX + name)

    # access for users of a root cluster ------------------------------------------------------
    async def remote_roleset(self, cert_line: str) -> tuple[CertInfo, str, RoleSet]:
        """(certificate, its cluster, the local roles it maps to) for a user certificate of a
        trusted root cluster; AccessDenied when it is not one or maps to nothing."""
        for rec in await self.trusted_cas():
            if rec.get("type") != "user" or rec.get("relation") != "root":
                continue
            try:
                info = sshcert.verify_cert_signature(cert_line, list(rec.get("checking_keys") or []))
            except (AccessDenied, BadParameter):
                continue
            cluster = str(rec["cluster_name"])
            if not rec.get("enabled"):
                raise AccessDenied(f"access from trusted cluster {cluster!r} is disabled on this cluster")
            if info.cert_type != "user" or not info.valid_at():
                raise AccessDenied(f"certificate of {info.key_id!r} is not a valid user certificate now")
            remote = info.roles
            roles: list[Role] = []
            if rec.get("source") == "static":
                logins = [str(x) for x in rec.get("allow_logins") or []]
                if logins:
                    roles.append(Role(metadata=Metadata(name=f"ca:{cluster}"), spec=tcres.static_role_spec(logins)))
            else:
                for name in tcres.map_roles(tcres.role_map_from_json(rec.get("role_map")), remote):
                    try:
                        roles.append(await self.store.get_role(name))
                    except NotFound:
                        log.warning("role_map of %s names a missing role %s", cluster, name)
            if not roles:
                raise AccessDenied(
                    f"user {info.key_id!r} of trusted cluster {cluster!r} gets no role here: none of "
                    f"its roles ({', '.join(remote) or 'none'}) is mapped by role_map"
                )
            return info, cluster, RoleSet(roles, info.traits)
        raise AccessDenied("the certificate is not signed by the user CA of any trusted cluster")

    async def check_remote_access(self, cert_line: str, login: str, node_labels: dict[str, str]) -> dict[str, Any]:
        """check_ssh_access for a root cluster's user: its mapped roles decide."""
        info, cluster, roleset = await self.remote_roleset(cert_line)
        roleset.check_login(login, node_labels)
        return {
            "login": login,
            "user": info.key_id,
            "cluster": cluster,
            "roles": [r.name for r in roleset.roles],
            "permit_port_forwarding": roleset.permit_port_forwarding(),
            "permit_agent_forwarding": roleset.permit_agent_forwarding(),
            "client_idle_timeout": roleset.client_idle_timeout(),
            "disconnect_expired_cert": roleset.disconnect_expired_cert(),
            "max_connections": roleset.max_connections(),
            "max_sessions": roleset.max_sessions(),
        }

    async def remote_visible_nodes(self, cert_line: str) -> list[Server]:
        """The nodes a root cluster's user may see here (its mapped roles)."""
        _, _, roleset = await self.remote_roleset(cert_line)
        return [n for n in await self.store.list_nodes() if roleset.can_see_node(server_labels(n))]

