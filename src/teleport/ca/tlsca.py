"""The x509 side: the internal TLS CA, identity certificates for mutual TLS, CA pins; pure."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from teleport import defaults
from teleport.ca import keys
from teleport.errors import AccessDenied, BadParameter

SYSTEM_ROLES = ("Admin", "Auth", "Node", "Proxy", "User")

# Private OID (under the 1.3.9999 arc Teleport uses for its own fields) of the non-critical
# extension that carries the identity as JSON in a DER UTF8String.
IDENTITY_OID = x509.ObjectIdentifier("1.3.9999.7.1")

CA_VALIDITY = datetime.timedelta(days=3650)
HTTPS_VALIDITY = datetime.timedelta(days=365)
# CN is limited to 64 characters by RFC 5280; longer names live only in the JSON extension.
_CN_MAX = 64


@dataclass
class Identity:
    """Who holds an internal TLS certificate: a user, or a service of the cluster."""

    username: str
    system_role: str  # "Admin" | "Auth" | "Node" | "Proxy" | "User"
    roles: list[str] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    cluster_name: str = ""
    host_id: str = ""


def _check_identity(identity: Identity) -> None:
    if not identity.username:
        raise BadParameter("an identity needs a username")
    if identity.system_role not in SYSTEM_ROLES:
        raise BadParameter(
            f"unknown system role {identity.system_role!r}: expected one of {', '.join(SYSTEM_ROLES)}"
        )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def _serial() -> int:
    # Positive and at most 20 octets, as RFC 5280 asks.
    return secrets.randbits(127) + 1


def _sig_hash(key: Any) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def generate_tls_key() -> ec.EllipticCurvePrivateKey:
    """A new ECDSA P-256 private key for a TLS identity."""
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: keys.PrivateKey) -> bytes:
    return keys.private_key_to_pem(key)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def create_tls_ca(cluster_name: str) -> tuple[bytes, bytes]:
    """A new self-signed CA for the cluster: (key PEM, cert PEM); ECDSA P-256, 10 years."""
    if not cluster_name:
        raise BadParameter("a TLS CA needs a cluster name")
    key = generate_tls_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, cluster_name),
            x509.NameAttribute(NameOID.COMMON_NAME, cluster_name[:_CN_MAX]),
        ]
    )
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - datetime.timedelta(seconds=defaults.CERT_BACKDATE))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return _pem_key(key), _cert_pem(cert)


def _public_key_object(public_key: Any) -> Any:
    """Accept a cryptography public key, a private key, or an OpenSSH public key line."""
    if isinstance(public_key, str | bytes):
        return keys.load_public_key(public_key)
    if isinstance(
        public_key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    ):
        return public_key.public_key()
    if isinstance(
        public_key, ed25519.Ed25519PublicKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey
    ):
        return public_key
    raise BadParameter(
        f"unsupported public key {type(public_key).__name__}: expected an Ed25519, RSA or ECDSA key"
    )


def _subject(identity: Identity) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, identity.username[:_CN_MAX])]
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, identity.system_role))
    attrs += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, r) for r in identity.roles if r]
    return x509.Name(attrs)


def _identity_extension(identity: Identity) -> x509.UnrecognizedExtension:
    payload = json.dumps(
        {
            "username": identity.username,
            "system_role": identity.system_role,
            "roles": list(identity.roles),
            "logins": list(identity.logins),
            "cluster_name": identity.cluster_name,
            "host_id": identity.host_id,
        },
        separators=(",", ":"),
    )
    return x509.UnrecognizedExtension(IDENTITY_OID, asn1.encode_der(payload))


def issue_identity_cert(
    ca_key_pem: bytes,
    ca_cert_pem: bytes,
    public_key: Any,
    identity: Identity,
    ttl: int,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
) -> bytes:
    """Sign `public_key` with the TLS CA as `identity`, valid `ttl` seconds; returns cert PEM.

    The certificate is usable for both client and server authentication.
    """
    _check_identity(identity)
    if ttl <= 0:
        raise BadParameter(f"certificate TTL must be positive, got {ttl}")
    ca_key = keys.load_private_key(ca_key_pem)
    ca_cert = load_cert(ca_cert_pem)
    subject_key = _public_key_object(public_key)
    now = _now()
    # Never outlive the CA: a chain with a child valid past its issuer confuses verifiers.
    not_after = min(now + datetime.timedelta(seconds=int(ttl)), ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_subject(identity))
        .issuer_name(ca_cert.subject)
        .public_key(subject_key)
        .serial_number(_serial())
        .not_valid_before(now - datetime.timedelta(seconds=defaults.CERT_BACKDATE))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=isinstance(subject_key, rsa.RSAPublicKey),
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(_identity_extension(identity), critical=False)
    )
    sans = _sans(dns_names, ip_addresses)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return _cert_pem(builder.sign(ca_key, _sig_hash(ca_key)))


def _sans(dns_names: Iterable[str], ip_addresses: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in dict.fromkeys(n for n in dns_names if n):
        try:
            # An address passed as a DNS name would never match; put it where verifiers look.
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    for ip in dict.fromkeys(i for i in ip_addresses if i):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise BadParameter(f"{ip!r} is not an IP address") from None
    return list(dict.fromkeys(out))


def load_cert(data: bytes | x509.Certificate) -> x509.Certificate:
    """Load a certificate from PEM or DER bytes."""
    if isinstance(data, x509.Certificate):
        return data
    raw = bytes(data)
    try:
        if b"-----BEGIN" in raw:
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError as exc:
        raise BadParameter(f"cannot load x509 certificate: {exc}; expected PEM or DER") from None


def identity_from_cert(cert: x509.Certificate | bytes) -> Identity:
    """The Identity encoded in a certificate issued by issue_identity_cert."""
    c = load_cert(cert)
    try:
        ext = c.extensions.get_extension_for_oid(IDENTITY_OID).value
    except x509.ExtensionNotFound:
        raise AccessDenied(
            "the certificate carries no Teleport identity: it was not issued by the cluster's TLS CA"
        ) from None
    if not isinstance(ext, x509.UnrecognizedExtension):  # pragma: no cover - OID is private
        raise AccessDenied("malformed Teleport identity in certificate")
    try:
        data = json.loads(asn1.decode_der(str, ext.value))
        identity = Identity(
            username=str(data["username"]),
            system_role=str(data["system_role"]),
            roles=[str(r) for r in data.get("roles", [])],
            logins=[str(x) for x in data.get("logins", [])],
            cluster_name=str(data.get("cluster_name", "")),
            host_id=str(data.get("host_id", "")),
        )
    except (ValueError, KeyError, TypeError):
        raise AccessDenied("malformed Teleport identity in certificate") from None
    try:
        _check_identity(identity)
    except BadParameter as exc:
        raise AccessDenied(f"malformed Teleport identity in certificate: {exc}") from None
    return identity


def ca_pin(ca_cert_pem: bytes) -> str:
    """The CA pin: "sha256:" + hex SHA-256 of the CA certificate's SubjectPublicKeyInfo (DER)."""
    spki = (
        load_cert(ca_cert_pem)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def check_ca_pin(ca_cert_pem: bytes, pin: str) -> None:
    """Raise AccessDenied unless `pin` is the pin of this CA certificate."""
    actual = ca_pin(ca_cert_pem)
    given = pin.strip().lower()
    if not hmac.compare_digest(actual.encode(), given.encode()):
        hint = "" if given.startswith("sha256:") else " (a pin looks like sha256:<64 hex digits>)"
        raise AccessDenied(
            f"CA pin mismatch: the auth server's CA has pin {actual} but {pin!r} was expected{hint}; "
            "check the --ca-pin value printed by 'tctl nodes add'"
        )


def self_signed_https_cert(
    hostnames: Iterable[str], ip_addresses: Iterable[str] = ()
) -> tuple[bytes, bytes]:
    """A self-signed certificate for the proxy's web listener: (key PEM, cert PEM), one year."""
    names = [h for h in hostnames if h] or ["localhost"]
    key = generate_tls_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:_CN_MAX])])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(_serial())
        .not_valid_before(now - datetime.timedelta(seconds=defaults.CERT_BACKDATE))
        .not_valid_after(now + HTTPS_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(_sans(names, ip_addresses)), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem_key(key), _cert_pem(cert)
