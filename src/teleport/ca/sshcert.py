"""OpenSSH user and host certificates: signing, parsing and checking; pure, cryptography only."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization.ssh import (
    SSHCertificate,
    SSHCertificateBuilder,
    SSHCertificateType,
    load_ssh_public_identity,
)

from teleport import defaults
from teleport.ca import keys
from teleport.errors import AccessDenied, BadParameter

# Extension names (OpenSSH standard ones and Teleport's own).
EXT_PERMIT_PTY = "permit-pty"
EXT_PERMIT_PORT_FORWARDING = "permit-port-forwarding"
EXT_PERMIT_AGENT_FORWARDING = "permit-agent-forwarding"
EXT_PERMIT_X11_FORWARDING = "permit-X11-forwarding"
EXT_TELEPORT_ROLES = "teleport-roles"
EXT_TELEPORT_TRAITS = "teleport-traits"
EXT_TELEPORT_ROUTE_TO_CLUSTER = "teleport-route-to-cluster"
EXT_TELEPORT_ROLE = "x-teleport-role"
EXT_TELEPORT_AUTHORITY = "x-teleport-authority"

CERT_TIME_INFINITY = 2**64 - 1
ROLES_VERSION = "v1"

_NOT_TRUSTED = "certificate is not signed by a trusted certificate authority"


def _json(value: Any) -> bytes:
    # Compact like Go's json.Marshal, so the values read the same as Teleport's.
    return json.dumps(value, separators=(",", ":")).encode()


def _serial() -> int:
    return secrets.randbits(64)


def sign_user_cert(
    ca_key: keys.PrivateKey,
    public_key: str,
    *,
    username: str,
    principals: list[str],
    ttl: int,
    roles: list[str],
    traits: dict[str, list[str]] | None = None,
    permit_port_forwarding: bool = True,
    permit_agent_forwarding: bool = True,
    permit_x11_forwarding: bool = False,
    route_to_cluster: str = "",
    now: float | None = None,
) -> str:
    """Sign `public_key` as a user certificate valid for `ttl` seconds; returns one OpenSSH line.

    The caller clamps `ttl`; here it is only checked to be positive.
    """
    if not username:
        raise BadParameter("cannot sign a user certificate without a username")
    if not principals:
        raise BadParameter(
            f"user {username!r} has no logins: a certificate needs at least one principal"
        )
    if ttl <= 0:
        raise BadParameter(f"certificate TTL must be positive, got {ttl}")
    current = int(time.time() if now is None else now)
    extensions: list[tuple[str, bytes]] = [
        (EXT_PERMIT_PTY, b""),
        (EXT_TELEPORT_ROLES, _json({"version": ROLES_VERSION, "roles": list(roles)})),
    ]
    if permit_port_forwarding:
        extensions.append((EXT_PERMIT_PORT_FORWARDING, b""))
    if permit_agent_forwarding:
        extensions.append((EXT_PERMIT_AGENT_FORWARDING, b""))
    if permit_x11_forwarding:
        extensions.append((EXT_PERMIT_X11_FORWARDING, b""))
    if traits is not None:
        extensions.append((EXT_TELEPORT_TRAITS, _json({k: list(v) for k, v in traits.items()})))
    if route_to_cluster:
        extensions.append((EXT_TELEPORT_ROUTE_TO_CLUSTER, route_to_cluster.encode()))
    return _sign(
        ca_key,
        public_key,
        SSHCertificateType.USER,
        key_id=username,
        principals=principals,
        valid_after=max(0, current - defaults.CERT_BACKDATE),
        valid_before=current + int(ttl),
        extensions=extensions,
    )


def sign_host_cert(
    ca_key: keys.PrivateKey,
    public_key: str,
    *,
    host_id: str,
    nodename: str,
    cluster_name: str,
    role: str = "Node",
    addresses: Iterable[str] = (),
    now: float | None = None,
) -> str:
    """Sign `public_key` as a host certificate that never expires; returns one OpenSSH line.

    Like Teleport's host certificates it is valid from the epoch (valid_after = 0), so clock
    skew between hosts never matters; `now` is accepted for symmetry with sign_user_cert.
    """
    del now
    if not host_id or not cluster_name:
        raise BadParameter("a host certificate needs both a host id and a cluster name")
    names = [f"{host_id}.{cluster_name}", host_id]
    if nodename:
        names += [f"{nodename}.{cluster_name}", nodename]
    names += ["localhost", "127.0.0.1", "::1", *addresses]
    principals = list(dict.fromkeys(n for n in names if n))  # dedupe, keep first occurrence
    return _sign(
        ca_key,
        public_key,
        SSHCertificateType.HOST,
        key_id=host_id,
        principals=principals,
        valid_after=0,
        valid_before=CERT_TIME_INFINITY,
        extensions=[
            (EXT_TELEPORT_ROLE, role.encode()),
            (EXT_TELEPORT_AUTHORITY, cluster_name.encode()),
        ],
    )


def sign_forward_host_cert(
    ca_key: keys.PrivateKey,
    public_key: str,
    *,
    proxy_host_id: str,
    cluster_name: str,
    principal: str,
    ttl: int,
    now: float | None = None,
) -> str:
    """A short-lived host certificate a recording proxy presents to clients in the name of the
    node they asked for (`principal`, exactly as the client names it); key id
    ``forward:<proxy host id>`` and role Proxy say who holds it."""
    if not proxy_host_id or not cluster_name or not principal:
        raise BadParameter("a forwarding certificate needs a proxy host id, a cluster and a principal")
    start = int(now if now is not None else time.time())
    return _sign(
        ca_key,
        public_key,
        SSHCertificateType.HOST,
        key_id=f"forward:{proxy_host_id}",
        principals=[principal],
        valid_after=start - 60,  # a little clock skew between proxy and client
        valid_before=start + ttl,
        extensions=[
            (EXT_TELEPORT_ROLE, b"Proxy"),
            (EXT_TELEPORT_AUTHORITY, cluster_name.encode()),
        ],
    )


def _sign(
    ca_key: keys.PrivateKey,
    public_key: str,
    cert_type: SSHCertificateType,
    *,
    key_id: str,
    principals: list[str],
    valid_after: int,
    valid_before: int,
    extensions: list[tuple[str, bytes]],
) -> str:
    subject = keys.load_public_key(public_key)
    builder = (
        SSHCertificateBuilder()
        .public_key(subject)
        .serial(_serial())
        .type(cert_type)
        .key_id(key_id.encode())
        .valid_principals([p.encode() for p in principals])
        .valid_after(valid_after)
        .valid_before(valid_before)
    )
    # The builder sorts extensions by name when signing, as OpenSSH requires.
    for name, value in extensions:
        builder = builder.add_extension(name.encode(), value)
    try:
        cert = builder.sign(ca_key)
    except TypeError as exc:
        raise BadParameter(f"cannot sign with this CA key: {exc}") from None
    return cert.public_bytes().decode()


@dataclass
class CertInfo:
    """The readable content of an OpenSSH certificate."""

    cert_type: str  # "user" | "host"
    key_id: str
    serial: int
    principals: list[str]
    valid_after: int
    valid_before: int
    extensions: dict[str, str] = field(default_factory=dict)
    critical_options: dict[str, str] = field(default_factory=dict)
    public_key: str = ""
    ca_public_key: str = ""

    @property
    def roles(self) -> list[str]:
        """Role names from the teleport-roles extension ([] when absent)."""
        raw = self.extensions.get(EXT_TELEPORT_ROLES)
        if raw is None:
            return []
        try:
            data = json.loads(raw)
            roles = data["roles"]
        except (ValueError, KeyError, TypeError, RecursionError):
            raise BadParameter(
                f"certificate {self.key_id!r} has a malformed teleport-roles extension"
            ) from None
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise BadParameter(
                f"certificate {self.key_id!r} has a malformed teleport-roles extension"
            )
        return roles

    @property
    def traits(self) -> dict[str, list[str]]:
        """Traits from the teleport-traits extension ({} when absent)."""
        raw = self.extensions.get(EXT_TELEPORT_TRAITS)
        if raw is None:
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict) or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in data.values()
        ):
            raise BadParameter(
                f"certificate {self.key_id!r} has a malformed teleport-traits extension"
            )
        return data

    @property
    def route_to_cluster(self) -> str:
        """The teleport-route-to-cluster extension ("" when absent)."""
        return self.extensions.get(EXT_TELEPORT_ROUTE_TO_CLUSTER, "")

    def expired(self, now: float | None = None) -> bool:
        """True once the certificate's valid_before has passed."""
        current = time.time() if now is None else now
        return current >= self.valid_before

    def valid_at(self, now: float | None = None) -> bool:
        """True when `now` lies inside [valid_after, valid_before)."""
        current = time.time() if now is None else now
        return self.valid_after <= current < self.valid_before


def _load_cert(line: str | bytes) -> SSHCertificate:
    raw = line.encode() if isinstance(line, str) else bytes(line)
    raw = raw.strip()
    try:
        obj = load_ssh_public_identity(raw)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadParameter(f"not a valid OpenSSH certificate: {exc}") from None
    if not isinstance(obj, SSHCertificate):
        raise BadParameter(
            "expected an OpenSSH certificate (…-cert-v01@openssh.com), got a plain public key"
        )
    return obj


def _info(cert: SSHCertificate) -> CertInfo:
    def text(b: bytes) -> str:
        return b.decode("utf-8", errors="replace")

    try:
        # cryptography parses these two keys only when asked: a damaged blob fails here
        public_key = keys.public_key_to_openssh(cert.public_key())
        ca_public_key = keys.public_key_to_openssh(cert.signature_key())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadParameter(f"not a valid OpenSSH certificate: {exc}") from None
    return CertInfo(
        cert_type="user" if cert.type == SSHCertificateType.USER else "host",
        key_id=text(cert.key_id),
        serial=cert.serial,
        principals=[text(p) for p in cert.valid_principals],
        valid_after=cert.valid_after,
        valid_before=cert.valid_before,
        extensions={text(k): text(v) for k, v in cert.extensions.items()},
        critical_options={text(k): text(v) for k, v in cert.critical_options.items()},
        public_key=public_key,
        ca_public_key=ca_public_key,
    )


def parse_cert(line: str | bytes) -> CertInfo:
    """Parse one OpenSSH certificate line (comment allowed). Does not check the signature."""
    return _info(_load_cert(line))


def verify_cert_signature(line: str | bytes, ca_public_keys: list[str]) -> CertInfo:
    """Parse a certificate and check it is signed by one of `ca_public_keys` (OpenSSH lines).

    Raises AccessDenied otherwise. Validity window and principals are the caller's to check.
    """
    cert = _load_cert(line)
    info = _info(cert)
    trusted = {keys.public_key_to_openssh(keys.load_public_key(k)) for k in ca_public_keys}
    if info.ca_public_key not in trusted:
        raise AccessDenied(_NOT_TRUSTED)
    try:
        cert.verify_cert_signature()
    except (InvalidSignature, ValueError):
        raise AccessDenied(_NOT_TRUSTED) from None
    return info
