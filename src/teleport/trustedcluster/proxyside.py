"""The root proxy's view of its trusted (leaf) clusters: which exist (the trusted CAs auth
holds), which are online (their tunnels), and routing a request to one of them."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from teleport import defaults
from teleport.auth.client import AuthClient
from teleport.errors import NotFound, TeleportError

if TYPE_CHECKING:
    from teleport.proxy.lookup import ProxyRequest
    from teleport.proxy.sshproxy import DialTarget
    from teleport.reversetunnel.server import TunnelServer

log = logging.getLogger(__name__)


def accepts_tunnel(rec: dict[str, Any]) -> bool:
    """Is this trusted cluster one of our leaves (its proxy may hold a tunnel here, `tsh clusters`
    lists it)? A dynamic leaf is; in the static form every cluster we do not dial ourselves is
    (both sides may allow logins to each other: the tunnel says who is the leaf)."""
    if rec.get("source") == "static":
        return not rec.get("tunnel_addr")
    return rec.get("relation") == "leaf"


class TrustCache:
    """The trusted CAs from auth, re-read at most every TRUSTED_CLUSTER_POLL seconds."""

    def __init__(self, auth: AuthClient, local: str) -> None:
        self.auth = auth
        self.local = local
        self._records: list[dict[str, Any]] = []
        self._at = 0.0
        self.tunnels: TunnelServer | None = None

    async def records(self) -> list[dict[str, Any]]:
        if time.monotonic() - self._at > defaults.TRUSTED_CLUSTER_POLL:
            try:
                got = await self.auth.call("GET", "/v1/trustedcas")
                self._records = got if isinstance(got, list) else []
                self._at = time.monotonic()
            except (TeleportError, OSError, ValueError) as exc:
                log.warning("cannot read the trusted clusters, keeping the last known: %s", exc)
            self._drop_untrusted()
        return self._records

    def _drop_untrusted(self) -> None:
        from teleport.reversetunnel.clusters import drop_cluster

        if self.tunnels is None:
            return
        trusted = self._host_cas(self._records)
        for name in list(self.tunnels.clusters):
            if name not in trusted:
                log.info("cluster %s is no longer trusted: closing its tunnel", name)
                drop_cluster(self.tunnels, name)

    @staticmethod
    def _host_cas(records: list[dict[str, Any]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rec in records:
            if rec.get("type") == "host" and rec.get("enabled", True) and accepts_tunnel(rec):
                out[str(rec["cluster_name"])] = list(rec.get("checking_keys") or [])
        return out

    async def host_cas(self) -> dict[str, list[str]]:
        """Leaf cluster -> its host CA keys (whose proxies may hold a tunnel here)."""
        return self._host_cas(await self.records())

    async def leaf_clusters(self) -> list[dict[str, Any]]:
        """[{name, status, host_ca_keys}] for `tsh clusters`: online while a tunnel is up."""
        online = set(self.tunnels.clusters) if self.tunnels is not None else set()
        return [
            {"name": name, "status": "online" if name in online else "offline", "host_ca_keys": keys}
            for name, keys in sorted((await self.host_cas()).items())
        ]

    async def resolve(self, req: ProxyRequest, cert: str) -> DialTarget:
        """The route to a node of leaf cluster `req.cluster` (NotFound when unknown or offline)."""
        from teleport.proxy.sshproxy import DialTarget

        if req.cluster not in await self.host_cas():
            raise NotFound(f"cluster {req.cluster!r} not found ('tsh clusters' lists the clusters)")
        if not req.host:
            raise NotFound(f"the auth service of trusted cluster {req.cluster!r} is not reachable "
                           "through this proxy")
        if not cert:
            raise NotFound("this proxy could not read your certificate to pass it to the leaf cluster")
        shown = f"{req.host}:{req.port}@{req.cluster}"
        return DialTarget(shown, [], 0, None, cluster=req.cluster,
                          request={"op": "dial", "host": req.host, "port": req.port, "cert": cert})
