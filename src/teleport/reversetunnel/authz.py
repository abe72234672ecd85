"""Who may open a reverse tunnel: a pure check of the agent's certificate.

An agent logs in as ``<host_id>.<cluster>`` with its host certificate. The certificate must be a
*host* certificate signed by this cluster's host CA, valid now, issued to a node of this cluster,
whose key id is that host id and whose principals name that login: an identity speaks only for
itself, so a node can hold the tunnel of its own host id and of no other.
"""

from __future__ import annotations

from teleport.ca import sshcert
from teleport.ca.sshcert import CertInfo
from teleport.errors import AccessDenied, BadParameter

# The system roles whose host certificates may hold a tunnel (a leaf cluster's proxy later).
TUNNEL_ROLES = ("Node",)


def agent_login(host_id: str, cluster_name: str) -> str:
    """The SSH user name an agent logs in to the tunnel listener with."""
    return f"{host_id}.{cluster_name}"


def check_agent_cert(line: str, username: str, cluster_name: str, host_ca_keys: list[str],
                     now: float | None = None) -> CertInfo:
    """The certificate's content when `line` may open a tunnel as `username`; AccessDenied (with
    the reason) otherwise. `host_ca_keys` are the host CA's OpenSSH public key lines."""
    try:
        info = sshcert.verify_cert_signature(line, host_ca_keys)
    except BadParameter as exc:
        raise AccessDenied(f"reverse tunnel refused: {exc}") from None
    if info.cert_type != "host":
        raise AccessDenied(
            f"reverse tunnel refused: {info.key_id!r} presented a user certificate; only the host "
            "certificate of a node of this cluster opens a tunnel"
        )
    if not info.valid_at(now):
        raise AccessDenied(f"reverse tunnel refused: the certificate of {info.key_id!r} is not valid now")
    role = info.extensions.get(sshcert.EXT_TELEPORT_ROLE, "")
    if role not in TUNNEL_ROLES:
        raise AccessDenied(
            f"reverse tunnel refused: {info.key_id!r} is a {role or 'host without a role'}, "
            f"not one of {', '.join(TUNNEL_ROLES)}"
        )
    authority = info.extensions.get(sshcert.EXT_TELEPORT_AUTHORITY)
    if authority is not None and authority != cluster_name:
        raise AccessDenied(f"reverse tunnel refused: certificate of cluster {authority!r}, not {cluster_name!r}")
    want = agent_login(info.key_id, cluster_name)
    if not info.key_id or username != want:
        raise AccessDenied(
            f"reverse tunnel refused: the identity of host {info.key_id!r} may open a tunnel only as "
            f"{want!r}, not {username!r}"
        )
    if username not in info.principals:
        raise AccessDenied(f"reverse tunnel refused: {username!r} is not a principal of its certificate")
    return info


# The system role whose host certificate a tunnel listener must show (leaf proxies later).
LISTENER_ROLES = ("Proxy",)


def check_proxy_cert(line: str, cluster_name: str, host_ca_keys: list[str],
                     now: float | None = None) -> CertInfo:
    """The content of the certificate a tunnel listener showed when an agent may tunnel to it: a
    valid host certificate of this cluster's host CA issued to a proxy. AccessDenied otherwise
    (a node, an auth server or another cluster's proxy never receives a node's tunnel)."""
    try:
        info = sshcert.verify_cert_signature(line, host_ca_keys)
    except (BadParameter, AccessDenied) as exc:
        raise AccessDenied(f"reverse tunnel: the server's certificate is not trusted: {exc}") from None
    if info.cert_type != "host":
        raise AccessDenied("reverse tunnel: the server showed a user certificate, not a proxy's host certificate")
    if not info.valid_at(now):
        raise AccessDenied(f"reverse tunnel: the server's certificate ({info.key_id!r}) is not valid now")
    role = info.extensions.get(sshcert.EXT_TELEPORT_ROLE, "")
    if role not in LISTENER_ROLES:
        raise AccessDenied(
            f"reverse tunnel: the server {info.key_id!r} holds the host certificate of a "
            f"{role or 'host without a role'}, not of a proxy: refusing to tunnel to it"
        )
    authority = info.extensions.get(sshcert.EXT_TELEPORT_AUTHORITY)
    if authority is not None and authority != cluster_name:
        raise AccessDenied(f"reverse tunnel: the server is a proxy of cluster {authority!r}, not {cluster_name!r}")
    return info


# The system role whose host certificate holds a leaf cluster's tunnel (the leaf's proxy).
CLUSTER_TUNNEL_ROLES = ("Proxy",)


def check_cluster_agent_cert(line: str, username: str, trusted_host_cas: dict[str, list[str]],
                             now: float | None = None) -> tuple[CertInfo, str]:
    """(certificate, cluster) when `line` is the host certificate of a trusted leaf cluster's
    proxy logging in as ``<host_id>.<leaf>``: signed by that cluster's host CA, valid now, naming
    that cluster and no other. AccessDenied otherwise."""
    for cluster, keys in sorted(trusted_host_cas.items()):
        try:
            info = sshcert.verify_cert_signature(line, keys)
        except (BadParameter, AccessDenied):
            continue
        if info.cert_type != "host" or not info.valid_at(now):
            raise AccessDenied(f"reverse tunnel refused: {info.key_id!r} of cluster {cluster!r} has "
                               "no valid host certificate")
        role = info.extensions.get(sshcert.EXT_TELEPORT_ROLE, "")
        if role not in CLUSTER_TUNNEL_ROLES:
            raise AccessDenied(f"reverse tunnel refused: {info.key_id!r} of cluster {cluster!r} is a "
                               f"{role or 'host without a role'}; a trusted cluster's tunnel is its proxy's")
        authority = info.extensions.get(sshcert.EXT_TELEPORT_AUTHORITY)
        if authority != cluster:
            raise AccessDenied(f"reverse tunnel refused: a certificate of cluster {authority!r} signed "
                               f"by the host CA of {cluster!r}")
        want = agent_login(info.key_id, cluster)
        if not info.key_id or username != want or username not in info.principals:
            raise AccessDenied(f"reverse tunnel refused: the proxy {info.key_id!r} of cluster "
                               f"{cluster!r} may open a tunnel only as {want!r}")
        return info, cluster
    raise AccessDenied("reverse tunnel refused: not signed by the host CA of this cluster or of a "
                       "trusted cluster")
