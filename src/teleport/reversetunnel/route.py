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


def is_tunnelled(node: dict[str, Any]) -> bool:
    """Does this registered node live behind a reverse tunnel?"""
    return str((node.get("spec") or {}).get("addr", "")) == defaults.TUNNEL_NODE_ADDR


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
