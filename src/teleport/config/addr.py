"""Network addresses as teleport.yaml and the flags write them: "host", "host:port", ":port",
"[::1]:3025". Pure module."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from teleport.errors import BadParameter

# Hostname-ish: DNS labels, IPv4 literals, and names with "_" (common in docker/k8s setups).
_HOST = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?")

WILDCARD_HOSTS = ("0.0.0.0", "::")


@dataclass(frozen=True)
class HostPort:
    """A host (name, IPv4 or IPv6 literal without brackets) and a port."""

    host: str
    port: int

    def __str__(self) -> str:
        if ":" in self.host:
            return f"[{self.host}]:{self.port}"
        return f"{self.host}:{self.port}"


def is_ip(text: str) -> bool:
    """True when text is an IPv4 or IPv6 literal (no brackets)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def valid_host(host: str) -> bool:
    """True for an IP literal or a plausible host name."""
    return is_ip(host) or bool(_HOST.fullmatch(host))


def parse_host_port(text: str, default_port: int, *, allow_zero: bool = False) -> HostPort:
    """Parse "host", "host:port", ":port", "[v6]", "[v6]:port" or a bare IPv6 literal.

    An empty host (":3025") means every interface, 0.0.0.0. Port 0 (pick any free port) is
    only accepted with allow_zero, for listen addresses. Bad input raises BadParameter.
    """
    if not isinstance(text, str):
        raise BadParameter(f"expected host:port, got {text!r}")
    raw = text.strip()
    bad = BadParameter(f'expected host:port, got "{text}"')
    if raw.startswith("tcp://"):
        raw = raw[len("tcp://") :]
    if not raw:
        raise BadParameter("expected host:port, got an empty string")
    port_text: str | None
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise bad
        host = raw[1:end]
        rest = raw[end + 1 :]
        if rest == "":
            port_text = None
        elif rest.startswith(":"):
            port_text = rest[1:]
        else:
            raise bad
        try:
            if not isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
                raise bad
        except ValueError:
            raise bad from None
    elif raw.count(":") > 1:
        # an unbracketed IPv6 literal cannot carry a port: "::1" is a host
        if not is_ip(raw):
            raise bad
        host, port_text = raw, None
    elif ":" in raw:
        host, port_text = raw.split(":", 1)
    else:
        host, port_text = raw, None
    if host == "":
        host = "0.0.0.0"
    elif not valid_host(host):
        raise bad
    if port_text is None:
        port = default_port
    else:
        # at most 5 digits: int() of thousands of digits raises ValueError, and no port needs more
        if not re.fullmatch(r"[0-9]{1,5}", port_text):
            raise bad
        port = int(port_text)
        low = 0 if allow_zero else 1
        if not low <= port <= 65535:
            raise BadParameter(f'expected host:port with a port from {low} to 65535, got "{text}"')
    return HostPort(host, port)
