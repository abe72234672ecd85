"""The proxy subsystem's request and how it finds the target node; pure (no network, no asyncio)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from teleport import defaults
from teleport.errors import BadParameter, NotFound
from teleport.proxy import dialpolicy

PROXY_SUBSYSTEM_PREFIX = "proxy:"
NODES_SUBSYSTEM = "teleport-nodes"
# answers the session recording mode ("node", "proxy" or "off"): tsh forwards its key to the
# proxy only when the proxy needs it (recording proxy mode)
MODE_SUBSYSTEM = "teleport-session-recording"
# answers this cluster and its trusted (leaf) clusters with their status; `teleport-nodes@LEAF`
# answers a leaf's nodes
CLUSTERS_SUBSYSTEM = "teleport-clusters"
# `teleport-recording@LEAF:SID`: a leaf's session recording (gzip), as the leaf lets this user read it
RECORDING_SUBSYSTEM = "teleport-recording"


@dataclass(frozen=True)
class ProxyRequest:
    """`proxy:host:port@cluster` parsed; cluster is "" when not given."""

    host: str
    port: int
    cluster: str = ""


# A cluster name as teleport.yaml accepts it (config/fileconf.py), bounded like a host name.
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
MAX_SUBSYSTEM_LEN = 1024


def parse_proxy_subsystem(name: str) -> ProxyRequest:
    """Parse `proxy:host[:port][@cluster]` (host may be `[v6]`); the port defaults to 3022.

    Raises only BadParameter: the host must be an IP literal or an RFC 1123 host name, the port
    1-65535, the cluster a cluster name. `proxy:@cluster` (no host) is the cluster's auth API.
    """
    if not name.startswith(PROXY_SUBSYSTEM_PREFIX):
        raise BadParameter(f"unknown subsystem {name[:80]!r}: expected proxy:host:port[@cluster]")
    if len(name) > MAX_SUBSYSTEM_LEN:
        raise BadParameter(f"bad proxy subsystem: longer than {MAX_SUBSYSTEM_LEN} characters")
    shown = repr(name[:300])
    rest = name[len(PROXY_SUBSYSTEM_PREFIX):]
    target, _, cluster = rest.rpartition("@") if "@" in rest else (rest, "", "")
    if "@" in rest and not _CLUSTER_NAME.fullmatch(cluster):
        raise BadParameter(
            f"bad proxy subsystem {shown}: {cluster[:80]!r} is not a cluster name (letters, "
            "digits, '.', '_' and '-')"
        )
    host, port_s = target, ""
    bracketed = target.startswith("[")
    if bracketed:
        end = target.find("]")
        if end < 0:
            raise BadParameter(f"bad proxy subsystem {shown}: unclosed '[' in the host")
        host, tail = target[1:end], target[end + 1:]
        if tail:
            if not tail.startswith(":"):
                raise BadParameter(f"bad proxy subsystem {shown}: expected ':' after ']'")
            port_s = tail[1:]
            if not port_s:
                raise BadParameter(f"bad proxy subsystem {shown}: no port after ':'")
    elif target.count(":") == 1:
        host, port_s = target.split(":")
        if not port_s:
            raise BadParameter(f"bad proxy subsystem {shown}: no port after ':'")
    elif target.count(":") > 1:
        host = target  # a bare IPv6 address
    if not target and cluster:
        return ProxyRequest(host="", port=0, cluster=cluster)  # proxy:@cluster = that cluster's auth
    if not host:
        raise BadParameter(
            f"bad proxy subsystem {shown}: no host given (the form is proxy:host:port[@cluster])"
        )
    if bracketed and not _is_v6(host):
        raise BadParameter(f"bad proxy subsystem {shown}: only IPv6 addresses go in brackets")
    dialpolicy.check_host_syntax(host, f"bad proxy subsystem {shown}")
    port = defaults.NODE_SSH_PORT
    if port_s:
        if not (port_s.isascii() and port_s.isdigit()) or not 0 < int(port_s) < 65536:
            raise BadParameter(f"bad proxy subsystem {shown}: port {port_s[:20]!r} is not a TCP port")
        port = int(port_s)
    return ProxyRequest(host=host, port=port, cluster=cluster)


def _is_v6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return "%" not in text


def format_proxy_subsystem(req: ProxyRequest) -> str:
    """The subsystem name of `req` (parse_proxy_subsystem's inverse)."""
    if not req.host:
        return f"{PROXY_SUBSYSTEM_PREFIX}@{req.cluster}"
    host = f"[{req.host}]" if ":" in req.host else req.host
    return f"{PROXY_SUBSYSTEM_PREFIX}{host}:{req.port}" + (f"@{req.cluster}" if req.cluster else "")


def _split_addr(addr: str) -> tuple[str, int | None]:
    if addr.startswith("["):
        host, _, tail = addr[1:].partition("]")
        return host, int(tail[1:]) if tail.startswith(":") and tail[1:].isascii() and tail[1:].isdigit() else None
    if addr.count(":") == 1:
        host, port = addr.split(":")
        return host, int(port) if port.isascii() and port.isdigit() else None
    return addr, None


def node_address(node: dict[str, Any]) -> tuple[str, int]:
    """(host, port) a registered node is dialled at (its spec.addr; port 3022 when absent)."""
    host, port = _split_addr(str(node.get("spec", {}).get("addr", "")))
    return host, port or defaults.NODE_SSH_PORT


def match_nodes(
    nodes: list[dict[str, Any]], host: str, port: int, resolved: list[str] | None = None
) -> list[dict[str, Any]]:
    """The registered nodes `host` names: by uuid, hostname, or address IP (also the IPs `host`
    resolved to); an IP literal matches addresses only. An address match also needs the port to
    agree. Every comparison is between
    normalised forms (dialpolicy.normalize_host: case, trailing dot, brackets, IPv4-mapped IPv6),
    so no other spelling of a node's address escapes its access check."""
    want = dialpolicy.normalize_host(host)
    if dialpolicy.parse_ip(host) is None:
        by_id = [n for n in nodes if str(n.get("metadata", {}).get("name", "")).lower() == want]
    else:
        # an IP literal names an address, never a node that calls itself "127.0.0.1"
        by_id = []
    if by_id:
        return by_id
    by_name = [
        n for n in nodes
        if dialpolicy.normalize_host(str(n.get("spec", {}).get("hostname", ""))) == want
    ] if not by_id and dialpolicy.parse_ip(host) is None else []
    if by_name:
        return by_name
    ips = {want} if dialpolicy.parse_ip(host) is not None else set()
    ips.update(dialpolicy.normalize_host(ip) for ip in resolved or [])
    if not ips:
        return []
    out = []
    for n in nodes:
        nhost, nport = node_address(n)
        if dialpolicy.normalize_host(nhost) in ips and nport == port:
            out.append(n)
    return out


def pick_node(matches: list[dict[str, Any]], host: str) -> dict[str, Any] | None:
    """One match, None for none; several -> an "ambiguous node" error listing them."""
    if not matches:
        return None
    if len(matches) > 1:
        names = ", ".join(
            f"{n.get('spec', {}).get('hostname', '?')} ({n.get('metadata', {}).get('name', '?')})"
            for n in matches
        )
        raise NotFound(
            f"ambiguous node {host!r}: it matches {len(matches)} nodes ({names}); "
            "connect by node ID (see 'tsh ls')"
        )
    return matches[0]


def label_selector(text: str) -> dict[str, str] | None:
    """`k=v[,k2=v2]` -> {k: v}; None when `text` is not a label selector (a host name)."""
    if "=" not in text:
        return None
    out: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise BadParameter(f"bad label selector {text!r}: use key=value[,key=value]")
        out[key.strip()] = value.strip()
    return out


def node_labels(node: dict[str, Any]) -> dict[str, str]:
    """Static labels plus the current results of command labels."""
    labels = {str(k): str(v) for k, v in (node.get("metadata", {}).get("labels") or {}).items()}
    for key, cmd in (node.get("spec", {}).get("cmd_labels") or {}).items():
        if isinstance(cmd, dict):
            labels[str(key)] = str(cmd.get("result", "")).strip()
    return labels


def filter_by_labels(nodes: list[dict[str, Any]], selector: dict[str, str]) -> list[dict[str, Any]]:
    """Nodes whose labels contain every key=value of `selector`."""
    return [
        n for n in nodes
        if all(node_labels(n).get(k) == v for k, v in selector.items())
    ]
