"""tsh and trusted (leaf) clusters: ask the proxy which clusters it serves, keep the leaves' host
CAs in ~/.tsh/known_hosts (tagged with their cluster, so that `tsh config` and OpenSSH trust
their nodes), and credentials that trust a leaf's nodes for `--cluster=LEAF`."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import asyncssh

from teleport.client.clusters import check_cluster
from teleport.client.ssh import Credentials
from teleport.errors import ConnectionProblem
from teleport.files import write_public
from teleport.proxy.lookup import CLUSTERS_SUBSYSTEM, NODES_SUBSYSTEM, RECORDING_SUBSYSTEM


async def _run_json(proxy: asyncssh.SSHClientConnection, subsystem: str, what: str) -> Any:
    result = await proxy.run(subsystem=subsystem, encoding=None)
    if result.exit_status != 0:
        raw = result.stderr or b""
        err = (raw.decode(errors="replace") if isinstance(raw, bytes) else raw).strip()
        raise ConnectionProblem(f"the proxy could not list {what}: {err.removeprefix('ERROR: ') or result.exit_status}")
    out = result.stdout
    return json.loads(out if isinstance(out, bytes | str) else b"[]")


async def fetch_clusters(proxy: asyncssh.SSHClientConnection) -> list[dict[str, Any]]:
    """[{name, status[, host_ca_keys]}]: this cluster first, then its leaves."""
    data = await _run_json(proxy, CLUSTERS_SUBSYSTEM, "clusters")
    return [c for c in data if isinstance(c, dict) and isinstance(c.get("name"), str)] if isinstance(data, list) else []


def remember_leaf_cas(known_hosts: str, leaves: list[dict[str, Any]]) -> None:
    """Write each leaf's host CA into known_hosts, tagged `clustername=LEAF` (replacing old ones)."""
    from teleport.ca.export import known_hosts_line

    names = {str(c["name"]) for c in leaves}
    try:
        with open(known_hosts) as f:
            keep = [ln for ln in f.read().splitlines()
                    if not any(ln.endswith(f"clustername={n}") for n in names)]
    except FileNotFoundError:
        keep = []
    for c in leaves:
        name = str(c["name"])
        for key in c.get("host_ca_keys") or []:
            # only that leaf's names: a leaf's CA never vouches for the root's hosts (or another
            # leaf's) to OpenSSH; "[...]:*" covers nodes on a port other than 22
            patterns = [f"*.{name}", f"[*.{name}]:*"]
            keep.append(f"{known_hosts_line(str(key), name, patterns)} clustername={name}")
    write_public(known_hosts, "\n".join(keep) + "\n")


async def creds_for(proxy: asyncssh.SSHClientConnection, creds: Credentials, cluster: str) -> Credentials:
    """`creds` trusting the nodes of `cluster` (a leaf: its host CA, as the proxy announces it);
    NotFound ("not known to this proxy") when the proxy serves no such cluster."""
    local = creds.profile.cluster
    if not cluster or cluster == local:
        return creds
    clusters = await fetch_clusters(proxy)
    leaves = [c for c in clusters if c["name"] != local]
    check_cluster(cluster, local, leaves)
    remember_leaf_cas(creds.known_hosts_path, leaves)
    keys = [asyncssh.import_public_key(str(k)) for c in leaves if c["name"] == cluster
            for k in c.get("host_ca_keys") or []]
    return dataclasses.replace(creds, host_ca_keys=keys)


async def list_nodes(proxy: asyncssh.SSHClientConnection, cluster: str, local: str) -> list[dict[str, Any]]:
    """The nodes of `cluster` this user may see (a leaf decides itself)."""
    if not cluster or cluster == local:
        from teleport.client.ssh import list_nodes as local_nodes

        return await local_nodes(proxy)
    data = await _run_json(proxy, f"{NODES_SUBSYSTEM}@{cluster}", f"the nodes of cluster {cluster!r}")
    return data if isinstance(data, list) else []


def leaves_in_known_hosts(known_hosts: str, local: str) -> list[str]:
    """The leaf clusters whose host CAs `tsh clusters` wrote into known_hosts."""
    out: list[str] = []
    try:
        with open(known_hosts) as f:
            for ln in f.read().splitlines():
                tag = ln.rsplit(" ", 1)[-1]
                if tag.startswith("clustername="):
                    name = tag.removeprefix("clustername=")
                    if name != local and name not in out:
                        out.append(name)
    except FileNotFoundError:
        pass
    return out


async def fetch_recording(proxy: asyncssh.SSHClientConnection, cluster: str, sid: str) -> bytes:
    """A session recording of leaf `cluster` (the leaf checks that this user may read it)."""
    from teleport.types.names import check_sid

    result = await proxy.run(subsystem=f"{RECORDING_SUBSYSTEM}@{cluster}:{check_sid(sid)}", encoding=None)
    if result.exit_status != 0:
        raw = result.stderr or b""
        err = (raw.decode(errors="replace") if isinstance(raw, bytes) else raw).strip()
        from teleport.errors import NotFound

        raise NotFound(f"{err.removeprefix('ERROR: ') or 'no such recording'}; see 'tsh recordings ls' on the leaf")
    out = result.stdout
    return bytes(out) if isinstance(out, bytes | bytearray) else b""
