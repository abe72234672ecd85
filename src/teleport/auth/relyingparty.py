"""WebAuthn's pure settings: the second_factor modes, and the relying party (its id is a host
name, never an IP; the reference's u2f app_id maps to it) and origins. No WebAuthn library here:
configuration loading imports this, every process loads configuration."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from teleport.errors import BadParameter

# second_factor values: otp only, webauthn only, either ("on"), or only for users who enrolled one
SECOND_FACTORS = ("off", "otp", "webauthn", "on", "optional")
# the reference's name for security keys; WebAuthn replaced U2F in every browser
SECOND_FACTOR_ALIASES = {"u2f": "webauthn"}


def allows_otp(mode: str) -> bool:
    return mode in ("otp", "on", "optional")


def allows_webauthn(mode: str) -> bool:
    return mode in ("webauthn", "on", "optional")


@dataclass
class WebAuthnSettings:
    """The relying party: its id (a host name, never an IP) and the origins pages come from.
    Empty rp_id/origins: derived from the proxies' public addresses when needed."""

    rp_id: str = ""
    origins: list[str] = field(default_factory=list)


def check_rp_id(rp_id: str, where: str) -> str:
    """A relying party id must be a host name: browsers refuse IP addresses."""
    host = rp_id.strip().lower()
    if not host:
        raise BadParameter(f"{where}: the WebAuthn relying party id is empty")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host
    raise BadParameter(
        f"{where} is the IP address {host}: browsers refuse an IP address as the WebAuthn "
        "relying party; give the proxy a host name (proxy_service.public_addr) or set "
        "auth_service.authentication.webauthn.rp_id, and open the web UI by that name"
    )


def rp_from_u2f(app_id: str) -> str:
    """The reference's u2f.app_id (an https URL) maps to the relying party id: its host."""
    try:
        parts = urlsplit(app_id if "://" in app_id else f"https://{app_id}")
        host = parts.hostname
    except ValueError:
        host = None
    if host is None or parts.scheme != "https":
        raise BadParameter(f"u2f.app_id {app_id!r} must be an https URL such as https://proxy.example.com:3080")
    return host


def origin_of(addr: str) -> str:
    """https://host[:port] for a public address "host:port" (no port when it is 443)."""
    host, _, port = addr.rpartition(":")
    if not host:
        host, port = addr, ""
    return f"https://{host}" if port in ("", "443") else f"https://{host}:{port}"


def host_of(addr: str) -> str:
    host = addr.rpartition(":")[0] or addr
    return host.strip("[]")
