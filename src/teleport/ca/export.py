"""OpenSSH trust lines for the cluster's CAs (authorized_keys and known_hosts); pure."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlencode

from teleport.ca import keys
from teleport.errors import BadParameter


def _key(ca_public_key: str) -> str:
    # Normalise (drops any comment/options) and reject what is not a key.
    return keys.public_key_to_openssh(keys.load_public_key(ca_public_key))


def authorized_keys_line(ca_public_key: str, cluster_name: str) -> str:
    """`cert-authority <key> clustername=<cluster>&type=user`: trust the user CA in authorized_keys.

    The trailing field is the line's comment, URL-encoded as Teleport writes it.
    """
    if not cluster_name:
        raise BadParameter("authorized_keys_line needs a cluster name")
    comment = urlencode([("clustername", cluster_name), ("type", "user")])
    return f"cert-authority {_key(ca_public_key)} {comment}"


def known_hosts_line(ca_public_key: str, cluster_name: str, hosts: Iterable[str]) -> str:
    """`@cert-authority <hosts> <key> type=host`: trust the host CA for these host patterns."""
    patterns = [h.strip() for h in hosts if h.strip()]
    if not patterns:
        raise BadParameter(
            f"known_hosts_line for cluster {cluster_name!r} needs at least one host pattern"
        )
    for p in patterns:
        if any(c.isspace() for c in p) or "," in p:
            raise BadParameter(
                f"invalid known_hosts host pattern {p!r}: no spaces or commas allowed"
            )
    return f"@cert-authority {','.join(patterns)} {_key(ca_public_key)} type=host"
