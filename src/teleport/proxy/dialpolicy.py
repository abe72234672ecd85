"""What the proxy may dial for `proxy:host:port`: address normalisation, the OpenSSH allow list
(`proxy_service.ssh_allowed_hosts`) and "is this one of the cluster's own ports". Pure: no
network, no asyncio; the proxy resolves names and asks these functions about the results.

Security invariant (DESIGN.md): the proxy dials only registered nodes the user may reach, or
hosts an administrator allowed for OpenSSH nodes, and never the auth server's or its own
listening ports, whatever name or address form a client uses to spell them.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from teleport.errors import AccessDenied, BadParameter

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

CONFIG_KEY = "proxy_service.ssh_allowed_hosts"
MAX_HOSTNAME = 253
MAX_LABEL = 63
# RFC 1123 labels; "_" is accepted too because node names are free-form host names in practice.
_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?")
# An allow-list pattern label: the same characters plus the glob characters * and ?.
_GLOB_LABEL = re.compile(r"[A-Za-z0-9_*?-]+")
_WILDCARD_HOSTS = ("", "0.0.0.0", "::", "*")


def parse_ip(text: str) -> IPAddress | None:
    """`text` as an IP address (brackets stripped, IPv4-mapped IPv6 unmapped), else None.

    Only the canonical literal forms count: ``127.1`` or ``0x7f000001`` are not IP literals here
    (the resolver would accept them, so the proxy resolves every name and checks the results).
    """
    host = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    if "%" in host:
        return None  # zone ids name an interface, not a host
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return unmap(ip)


def unmap(ip: IPAddress) -> IPAddress:
    """::ffff:a.b.c.d is a.b.c.d: the kernel connects both to the same IPv4 host."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def normalize_host(text: str) -> str:
    """One spelling per host: IPs in canonical form (mapped IPv6 unmapped, no brackets), names in
    lower case without the trailing dot."""
    ip = parse_ip(text)
    if ip is not None:
        return str(ip)
    host = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    return host.rstrip(".").lower()


def is_hostname(text: str) -> bool:
    """A DNS host name: labels of letters, digits, "-" (and "_"), each 1-63 characters, at most
    253 characters in all, an optional trailing dot."""
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > MAX_HOSTNAME:
        return False
    return all(len(label) <= MAX_LABEL and _LABEL.fullmatch(label) for label in name.split("."))


def check_host_syntax(host: str, what: str) -> None:
    """BadParameter unless `host` is an IP literal or a host name (see is_hostname)."""
    if parse_ip(host) is not None:
        return
    if "%" in host and ":" in host:
        raise BadParameter(f"{what}: IPv6 zone ids (%...) are not supported; use the address alone")
    if not host.isprintable():
        raise BadParameter(f"{what}: the host name contains control characters")
    name = host[:-1] if host.endswith(".") else host
    if len(name) > MAX_HOSTNAME:
        raise BadParameter(f"{what}: the host name is longer than {MAX_HOSTNAME} characters")
    for label in name.split("."):
        if len(label) > MAX_LABEL:
            raise BadParameter(
                f"{what}: the host name label {label[:20]!r}... is longer than {MAX_LABEL} characters"
            )
    if not is_hostname(host):
        raise BadParameter(
            f"{what}: {host!r} is neither an IP address nor a host name (letters, digits, '-' "
            "and '.'; IPv6 addresses go in brackets: [::1]:22)"
        )


# --- the allow list ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowRule:
    """One entry of ssh_allowed_hosts: a network (CIDR or single IP) or a host-name glob, with an
    optional port (None: any port)."""

    text: str
    network: IPNetwork | None = None
    pattern: str | None = None
    port: int | None = None

    def matches(self, name: str | None, ip: IPAddress, port: int) -> bool:
        """Does this rule allow dialling `ip:port`, reached by the host name `name` (None when the
        client gave an IP literal)? A network rule checks the address actually dialled; a name
        pattern checks the name the client asked for (never an IP literal)."""
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return ip.version == self.network.version and ip in self.network
        if self.pattern is not None and name is not None:
            return fnmatch.fnmatchcase(normalize_host(name), self.pattern)
        return False


def _split_port(text: str) -> tuple[str, int | None]:
    """`host`, `host:port`, `[v6]`, `[v6]:port`, `net/len`, `net/len:port`, bare v6 (no port)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise BadParameter("unclosed '['")
        host, tail = text[1:end], text[end + 1:]
        if not tail:
            return host, None
        if not tail.startswith(":"):
            raise BadParameter("expected ':port' after ']'")
        return host, _port(tail[1:])
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, _port(port)
    return text, None  # a bare IPv6 address or network, or a name without port


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise BadParameter(f"port {text!r} is not a TCP port (1-65535)")
    return int(text)


def parse_allow_entry(entry: str) -> AllowRule:
    """One ssh_allowed_hosts entry: a CIDR (10.0.0.0/8, fd00::/8), an IP, or a host-name glob
    (*.db.internal, web-?.example.com), each optionally followed by :port ([v6] or [v6/len] for
    IPv6 with a port). BadParameter says what is wrong."""
    text = entry.strip()
    if not text:
        raise BadParameter("expected a CIDR, an IP address or a host name pattern, got an empty string")
    try:
        host, port = _split_port(text)
    except BadParameter as exc:
        raise BadParameter(f"{entry!r}: {exc.message}") from None
    if not host:
        raise BadParameter(f"{entry!r}: no host or network before the port")
    try:
        net = ipaddress.ip_network(host, strict=False)
    except ValueError:
        net = None
    if net is not None:
        if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96:
            mapped = net.network_address.ipv4_mapped
            if mapped is not None:  # ::ffff:10.0.0.0/104 is 10.0.0.0/8
                net = ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}", strict=False)
        return AllowRule(text=text, network=net, port=port)
    if "/" in host:
        raise BadParameter(f"{entry!r}: {host!r} is not a valid CIDR network (e.g. 10.0.0.0/8)")
    pattern = host.rstrip(".").lower()
    labels = pattern.split(".")
    if (
        not pattern
        or len(pattern) > MAX_HOSTNAME
        or any(not _GLOB_LABEL.fullmatch(lb) or len(lb) > MAX_LABEL for lb in labels)
    ):
        raise BadParameter(
            f"{entry!r}: expected a CIDR (10.0.0.0/8), an IP address or a host name pattern "
            "(letters, digits, '-', '.', and the globs '*' and '?'), optionally with :port"
        )
    return AllowRule(text=text, pattern=pattern, port=port)


def parse_allow_list(entries: Iterable[str]) -> tuple[AllowRule, ...]:
    """Every entry parsed (see parse_allow_entry)."""
    return tuple(parse_allow_entry(e) for e in entries)


def name_allowed(rules: Iterable[AllowRule], name: str, port: int) -> bool:
    """Does a host-name rule allow `name:port`? (Used only to tell "not allowed" from "does not
    resolve" in messages; the dial itself is decided by allowed_by_config.)"""
    return any(
        r.pattern is not None and (r.port is None or r.port == port)
        and fnmatch.fnmatchcase(normalize_host(name), r.pattern)
        for r in rules
    )


def allowed_by_config(rules: Iterable[AllowRule], name: str | None, ip: IPAddress, port: int) -> bool:
    """Does some ssh_allowed_hosts rule allow dialling `ip:port` asked for as `name`?"""
    return any(r.matches(name, ip, port) for r in rules)


# --- the cluster's own ports ---------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A listener the proxy must never dial for a client: the auth API or a proxy port. `ips` are
    the addresses it is reachable at (None: a wildcard listener, i.e. every local address)."""

    what: str
    port: int
    ips: frozenset[IPAddress] | None


def wildcard(host: str) -> bool:
    """Is `host` a listen address meaning "every local address" (0.0.0.0, ::, empty)?"""
    return normalize_host(host) in _WILDCARD_HOSTS


def own_endpoint(
    endpoints: Iterable[Endpoint], ip: IPAddress, port: int, is_local: Callable[[IPAddress], bool]
) -> Endpoint | None:
    """The protected listener that `ip:port` would reach, or None.

    `is_local` tells whether an address belongs to this host. Loopback and unspecified addresses
    (0.0.0.0 and :: connect to this host) count as local whatever `is_local` says, and a loopback
    listener is treated as listening on every loopback address (127.0.0.1 and 127.0.0.2 are one
    host), so no spelling of "this machine" slips past.
    """
    ip = unmap(ip)
    local = ip.is_loopback or ip.is_unspecified or is_local(ip)
    for ep in endpoints:
        if ep.port != port:
            continue
        if ep.ips is None:
            if local:
                return ep
            continue
        ips = {unmap(x) for x in ep.ips}
        if ip in ips:
            return ep
        if local and any(x.is_loopback or x.is_unspecified or is_local(x) for x in ips):
            # the listener is on this host and so is the target: the same machine, whatever
            # local address spells it
            return ep
    return None


# --- messages ------------------------------------------------------------------------------------


def not_allowed(host: str, port: int) -> AccessDenied:
    """The refusal for a host that is neither a reachable registered node nor allow-listed."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return AccessDenied(
        f"access denied: {shown} is not a registered node you may reach; to reach an OpenSSH "
        f"server that is not registered, an administrator lists it in {CONFIG_KEY}"
    )


def own_port_refused(host: str, port: int, ep: Endpoint) -> AccessDenied:
    """The refusal for a target that is the auth API or one of the proxy's own listeners."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return AccessDenied(
        f"access denied: {shown} is the cluster's {ep.what}, which the proxy never dials for a "
        "client (nodes listen elsewhere; tsh reaches the auth API with 'proxy:@CLUSTER')"
    )
