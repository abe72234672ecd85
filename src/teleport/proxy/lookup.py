"""The proxy subsystem's request and how it finds the target node; pure (no network, no asyncio)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from teleport import defaults
from teleport.errors import BadParameter, NotFound

PROXY_SUBSYSTEM_PREFIX = "proxy:"
NODES_SUBSYSTEM = "teleport-nodes"


@dataclass(frozen=True)
class ProxyRequest:
    """`proxy:host:port@cluster` parsed; cluster is "" when not given."""

    host: str
    port: int
    cluster: str = ""


def parse_proxy_subsystem(name: str) -> ProxyRequest:
    """Parse `proxy:host[:port][@cluster]` (host may be `[v6]`); the port defaults to 3022."""
    if not name.startswith(PROXY_SUBSYSTEM_PREFIX):
        raise BadParameter(f"unknown subsystem {name!r}: expected proxy:host:port[@cluster]")
    rest = name[len(PROXY_SUBSYSTEM_PREFIX):]
    target, _, cluster = rest.rpartition("@") if "@" in rest else (rest, "", "")
    host, port_s = target, ""
    if target.startswith("["):
        end = target.find("]")
        if end < 0:
            raise BadParameter(f"bad proxy subsystem {name!r}: unclosed '[' in the host")
        host, tail = target[1:end], target[end + 1:]
        if tail:
            if not tail.startswith(":"):
                raise BadParameter(f"bad proxy subsystem {name!r}: expected ':' after ']'")
            port_s = tail[1:]
    elif target.count(":") == 1:
        host, port_s = target.split(":")
    elif target.count(":") > 1:
        host = target  # a bare IPv6 address
    if not host and cluster and not target:
        return ProxyRequest(host="", port=0, cluster=cluster)  # proxy:@cluster = that cluster's auth
    if not host:
        raise BadParameter(
            f"bad proxy subsystem {name!r}: no host given (the form is proxy:host:port[@cluster])"
        )
    port = defaults.NODE_SSH_PORT
    if port_s:
        if not port_s.isdigit() or not 0 < int(port_s) < 65536:
            raise BadParameter(f"bad proxy subsystem {name!r}: port {port_s!r} is not a TCP port")
        port = int(port_s)
    return ProxyRequest(host=host, port=port, cluster=cluster)


def _split_addr(addr: str) -> tuple[str, int | None]:
    if addr.startswith("["):
        host, _, tail = addr[1:].partition("]")
        return host, int(tail[1:]) if tail.startswith(":") and tail[1:].isdigit() else None
    if addr.count(":") == 1:
        host, port = addr.split(":")
        return host, int(port) if port.isdigit() else None
    return addr, None


def node_address(node: dict[str, Any]) -> tuple[str, int]:
    """(host, port) a registered node is dialled at (its spec.addr; port 3022 when absent)."""
    host, port = _split_addr(str(node.get("spec", {}).get("addr", "")))
    return host, port or defaults.NODE_SSH_PORT


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def match_nodes(
    nodes: list[dict[str, Any]], host: str, port: int, resolved: list[str] | None = None
) -> list[dict[str, Any]]:
    """The registered nodes `host` names: by uuid, hostname, or address IP (also the IPs `host`
    resolved to). An address match also needs the port to agree."""
    by_id = [n for n in nodes if n.get("metadata", {}).get("name") == host]
    if by_id:
        return by_id
    by_name = [n for n in nodes if n.get("spec", {}).get("hostname") == host]
    if by_name:
        return by_name
    ips = {host} if _is_ip(host) else set()
    ips.update(resolved or [])
    if not ips:
        return []
    out = []
    for n in nodes:
        nhost, nport = node_address(n)
        if nhost in ips and nport == port:
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
