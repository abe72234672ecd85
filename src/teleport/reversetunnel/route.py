"""How the proxy reaches a registered node: a pure decision (the dialers live elsewhere).

A node that joined behind a firewall heartbeats with ``spec.addr`` = defaults.TUNNEL_NODE_ADDR;
the proxy reaches it only through the reverse tunnel its agent holds, never by dialling an
address. Every other node is dialled directly at its address.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from teleport import defaults
from teleport.errors import NotFound


@dataclass(frozen=True)
class Route:
    """`tunnel` is the host id whose tunnel to use; None means dial the node's address."""

    tunnel: str | None


def _field(res: dict[str, Any], part: str, key: str) -> Any:
    """res[part][key], or None when either is missing or not a mapping."""
    section = res.get(part)
    return section.get(key) if isinstance(section, dict) else None


def is_tunnelled(node: dict[str, Any]) -> bool:
    """Does this registered node live behind a reverse tunnel?"""
    return _field(node, "spec", "addr") == defaults.TUNNEL_NODE_ADDR


def route_for(node: dict[str, Any], connected: Container[str]) -> Route:
    """The route to `node`, given the host ids whose tunnels are connected to this proxy.
    NotFound when the node is tunnelled and its tunnel is gone (the node is offline)."""
    if not is_tunnelled(node):
        return Route(None)
    host_id = str((node.get("metadata") or {}).get("name", ""))
    if host_id not in connected:
        hostname = (node.get("spec") or {}).get("hostname", "?")
        raise NotFound(
            f"node {hostname!r} ({host_id}) is offline: it is reached through a reverse tunnel, "
            "and its tunnel to this proxy is not connected"
        )
    return Route(host_id)


def tunnels_of(proxies: list[dict[str, Any]]) -> set[str]:
    """The host ids whose tunnels some live proxy announces (proxy heartbeats' spec.tunnels)."""
    out: set[str] = set()
    for p in proxies:
        ids = _field(p, "spec", "tunnels")
        if isinstance(ids, list):
            out.update(i for i in ids if isinstance(i, str))
    return out


def online_only(nodes: list[dict[str, Any]], proxies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`nodes` without the tunnelled ones whose tunnel no proxy holds: they are offline at once,
    not only when their heartbeat expires (their proxy announces the tunnel's end)."""
    held = tunnels_of(proxies)
    return [n for n in nodes if not is_tunnelled(n) or str(_field(n, "metadata", "name")) in held]
