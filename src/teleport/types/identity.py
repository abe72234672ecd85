"""A service's host identity as auth issues it: SSH host key and certificate, x509 key and
certificate for the auth API, the TLS CA, and the CA keys it trusts. Pure data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class HostIdentity:
    """What a node, proxy or auth server holds to prove who it is."""

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


def host_identity_to_dict(h: HostIdentity) -> dict[str, Any]:
    """The identity as JSON-ready data (data_dir/keys, the register answer)."""
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
    """The identity from host_identity_to_dict's data (KeyError/AttributeError when malformed)."""
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
