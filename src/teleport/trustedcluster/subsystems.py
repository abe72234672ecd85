"""The proxy subsystems about trusted clusters: `teleport-clusters` (this cluster and its leaves,
with their status and host CA keys, for `tsh clusters` and known_hosts) and `teleport-nodes@LEAF`
(the leaf's nodes, as the leaf lets this user see them)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from teleport.errors import NotFound
from teleport.proxy import lookup

if TYPE_CHECKING:
    import asyncssh

    from teleport.proxy.sshconn import ProxyServer
    from teleport.proxy.sshproxy import ProxySSHService


async def serve_cluster_subsystem(svc: ProxySSHService, owner: ProxyServer,
                                  chan: asyncssh.SSHServerChannel[bytes], subsystem: str) -> None:
    """Write the subsystem's JSON answer and exit 0 (errors propagate to the caller's handler)."""
    out: Any
    if subsystem.startswith(lookup.RECORDING_SUBSYSTEM + "@"):
        cluster, _, sid = subsystem.partition("@")[2].partition(":")
        await _check_leaf(svc, owner, cluster)
        from teleport import defaults
        from teleport.reversetunnel.clusters import read_all
        from teleport.types.names import check_sid

        check_sid(sid)
        assert svc.tunnels is not None and owner.conn is not None
        peer = owner.conn.get_extra_info("peername") or ("", 0)
        data = await read_all(svc.tunnels, cluster, {"op": "recording", "sid": sid, "cert": owner.teleport_cert},
                              (str(peer[0]), int(peer[1])), defaults.MAX_RECORDING_SIZE * 2)
        chan.write(data)
        chan.exit(0)
        return
    if subsystem == lookup.CLUSTERS_SUBSYSTEM:
        out = [{"name": svc.cluster_name, "status": "online"}] + await svc.trust.leaf_clusters()
    else:
        cluster = subsystem.partition("@")[2]
        if cluster == svc.cluster_name:
            out = await svc.visible_nodes(owner.teleport_user)
        else:
            await _check_leaf(svc, owner, cluster)
            from teleport.reversetunnel.clusters import list_nodes

            assert owner.conn is not None and svc.tunnels is not None
            peer = owner.conn.get_extra_info("peername") or ("", 0)
            out = await list_nodes(svc.tunnels, cluster, owner.teleport_cert, (str(peer[0]), int(peer[1])))
    chan.write(json.dumps(out).encode() + b"\n")
    chan.exit(0)


async def _check_leaf(svc: ProxySSHService, owner: ProxyServer, cluster: str) -> None:
    if cluster not in await svc.trust.host_cas():
        raise NotFound(f"cluster {cluster!r} not found ('tsh clusters' lists the clusters)")
    if svc.tunnels is None or not owner.teleport_cert:
        raise NotFound(f"cluster {cluster!r} is not reachable through this proxy")
