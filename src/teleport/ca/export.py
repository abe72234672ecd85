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


def user_ca_known_hosts_line(ca_public_key: str, cluster_name: str) -> str:
    """Teleport 1.0's form of the user CA (`--compat=1.0`): a known_hosts line."""
    return f"@cert-authority * {_key(ca_public_key)} type=user"


def export_lines(
    cas: Iterable[tuple[str, str, str]], only: str | None, fmt: str, compat: str | None
) -> list[str]:
    """`tctl auth export`: lines for (type, cluster, public key) CAs (`tls` ones are skipped).

    fmt "openssh": the user CA as an authorized_keys line (known_hosts with compat "1.0"), the
    host CA as a known_hosts line. fmt "openssh-ca": the bare keys, which is what sshd's
    TrustedUserCAKeys file takes (it silently ignores a `cert-authority` line)."""
    if fmt not in ("openssh", "openssh-ca"):
        raise BadParameter(f"unknown export format {fmt!r}: expected openssh or openssh-ca")
    if compat not in (None, "", "1.0"):
        raise BadParameter(f"unknown --compat {compat!r}: the only one is 1.0")
    out = []
    for kind, cluster, key in cas:
        if kind == "tls" or (only and only != kind):
            continue
        if fmt == "openssh-ca":
            out.append(f"{_key(key)} {kind}-ca@{cluster}")
        elif kind == "user":
            out.append(
                user_ca_known_hosts_line(key, cluster) if compat == "1.0"
                else authorized_keys_line(key, cluster)
            )
        else:
            out.append(known_hosts_line(key, cluster, ["*"]))
    return out
