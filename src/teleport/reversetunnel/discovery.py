"""Which proxies a tunnel agent keeps tunnels to: a pure choice from the proxies' heartbeats.

Every proxy announces where agents reach its tunnel listener (spec.tunnel_public_addr); an agent
keeps one tunnel per announced address, so that any proxy can route to it. While no proxy
announces one (none registered yet, or auth unreachable), the agent keeps its configured address.
"""

from __future__ import annotations

from typing import Any

from teleport import defaults
from teleport.config.addr import parse_host_port
from teleport.errors import BadParameter


def announced_tunnel_addrs(proxies: list[Any]) -> list[str]:
    """The valid tunnel addresses the proxies announce (sorted, no duplicates; an address that
    does not parse or names no host is skipped: it would never reach a proxy)."""
    out: set[str] = set()
    for p in proxies:
        spec = p.get("spec") if isinstance(p, dict) else None
        addr = spec.get("tunnel_public_addr") if isinstance(spec, dict) else None
        if not isinstance(addr, str) or not addr:
            continue
        try:
            hp = parse_host_port(addr, defaults.PROXY_TUNNEL_PORT)
        except BadParameter:
            continue
        if hp.host not in ("0.0.0.0", "::"):
            out.add(str(hp))
    return sorted(out)


def announced_web_addrs(proxies: list[Any]) -> list[str]:
    """The proxies' public web addresses (where a node that joined through a proxy may reach
    auth through another when its own is gone)."""
    out: set[str] = set()
    for p in proxies:
        spec = p.get("spec") if isinstance(p, dict) else None
        addr = spec.get("public_addr") if isinstance(spec, dict) else None
        if not isinstance(addr, str) or not addr:
            continue
        try:
            hp = parse_host_port(addr, defaults.PROXY_WEB_PORT)
        except BadParameter:
            continue
        if hp.host not in ("0.0.0.0", "::"):
            out.add(str(hp))
    return sorted(out)


def wanted(announced: list[str], configured: str) -> list[str]:
    """The tunnel addresses to hold: every announced one, or the configured one while none is."""
    return list(announced) if announced else [configured]
