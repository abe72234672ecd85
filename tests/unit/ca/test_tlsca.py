"""The internal TLS CA: identities, mutual TLS with real handshakes, pins, HTTPS certificate."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from teleport.ca import keys, tlsca
from teleport.errors import AccessDenied, BadParameter


@pytest.fixture(scope="module")
def ca() -> tuple[bytes, bytes]:
    return tlsca.create_tls_ca("example.com")


def test_ca_properties(ca: tuple[bytes, bytes]) -> None:
    key_pem, cert_pem = ca
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = keys.load_private_key(key_pem)
    assert keys.public_key_to_openssh(key) == keys.public_key_to_openssh(cert.public_key())  # type: ignore[arg-type]
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert cert.subject == cert.issuer
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "example.com"
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 3649 <= days <= 3651
    cert.verify_directly_issued_by(cert)


def test_identity_round_trip(ca: tuple[bytes, bytes]) -> None:
    ident = tlsca.Identity(
        username="alice",
        system_role="User",
        roles=["admin", "dev"],
        logins=["root", "alice"],
        cluster_name="example.com",
    )
    key = tlsca.generate_tls_key()
    pem = tlsca.issue_identity_cert(*ca, key.public_key(), ident, 3600)
    assert tlsca.identity_from_cert(pem) == ident
    cert = x509.load_pem_x509_certificate(pem)
    assert tlsca.identity_from_cert(cert) == ident
    assert tlsca.identity_from_cert(cert.public_bytes(serialization.Encoding.DER)) == ident
    subj = cert.subject
    assert subj.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    assert subj.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "User"
    assert [a.value for a in subj.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "admin",
        "dev",
    ]
    ext = cert.extensions.get_extension_for_oid(tlsca.IDENTITY_OID)
    assert not ext.critical
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert life == datetime.timedelta(seconds=3600 + 60)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca[1]))


def test_host_identity_long_name_and_sans(ca: tuple[bytes, bytes]) -> None:
    host_id = "0b8a1c6e-6a1f-4f36-9d54-5b9f0a3a4d11"
    name = f"{host_id}.a-rather-long-cluster-name.example.com"
    assert len(name) > 64
    ident = tlsca.Identity(
        name, "Node", cluster_name="a-rather-long-cluster-name.example.com", host_id=host_id
    )
    pem = tlsca.issue_identity_cert(
        *ca,
        tlsca.generate_tls_key().public_key(),
        ident,
        600,
        dns_names=["node1", "127.0.0.2"],
        ip_addresses=["10.1.2.3", "::1"],
    )
    assert tlsca.identity_from_cert(pem) == ident
    san = (
        x509.load_pem_x509_certificate(pem)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert san.get_values_for_type(x509.DNSName) == ["node1"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.2"),
        ipaddress.ip_address("10.1.2.3"),
        ipaddress.ip_address("::1"),
    ]


@pytest.mark.parametrize("kind", ["ed25519", "rsa", "ecdsa"])
def test_issue_for_ssh_key_kinds(ca: tuple[bytes, bytes], kind: str) -> None:
    key = keys.generate_private_key(kind)
    ident = tlsca.Identity("bob", "User", roles=["dev"])
    for pub in (key.public_key(), keys.public_key_to_openssh(key)):
        cert = x509.load_pem_x509_certificate(tlsca.issue_identity_cert(*ca, pub, ident, 60))
        assert keys.public_key_to_openssh(cert.public_key()) == keys.public_key_to_openssh(key)  # type: ignore[arg-type]


def test_bad_identities(ca: tuple[bytes, bytes]) -> None:
    pub = tlsca.generate_tls_key().public_key()
    with pytest.raises(BadParameter, match="unknown system role 'Root'"):
        tlsca.issue_identity_cert(*ca, pub, tlsca.Identity("x", "Root"), 60)
    with pytest.raises(BadParameter, match="username"):
        tlsca.issue_identity_cert(*ca, pub, tlsca.Identity("", "User"), 60)
    with pytest.raises(BadParameter, match="TTL"):
        tlsca.issue_identity_cert(*ca, pub, tlsca.Identity("x", "User"), 0)
    with pytest.raises(BadParameter, match="unsupported public key"):
        tlsca.issue_identity_cert(*ca, object(), tlsca.Identity("x", "User"), 60)
    with pytest.raises(BadParameter, match="not an IP address"):
        tlsca.issue_identity_cert(*ca, pub, tlsca.Identity("x", "User"), 60, ip_addresses=["host"])


def test_foreign_cert_has_no_identity(ca: tuple[bytes, bytes]) -> None:
    _, https = tlsca.self_signed_https_cert(["proxy.example.com"])
    with pytest.raises(AccessDenied, match="no Teleport identity"):
        tlsca.identity_from_cert(https)
    with pytest.raises(BadParameter, match="cannot load x509 certificate"):
        tlsca.identity_from_cert(b"not a cert")


def test_ttl_never_exceeds_ca(ca: tuple[bytes, bytes]) -> None:
    pem = tlsca.issue_identity_cert(
        *ca, tlsca.generate_tls_key().public_key(), tlsca.Identity("a", "Admin"), 20 * 365 * 86400
    )
    ca_cert = x509.load_pem_x509_certificate(ca[1])
    assert x509.load_pem_x509_certificate(pem).not_valid_after_utc <= ca_cert.not_valid_after_utc


def test_pin(ca: tuple[bytes, bytes]) -> None:
    cert = x509.load_pem_x509_certificate(ca[1])
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pin = tlsca.ca_pin(ca[1])
    assert pin == "sha256:" + hashlib.sha256(spki).hexdigest()
    tlsca.check_ca_pin(ca[1], pin)
    tlsca.check_ca_pin(ca[1], pin.upper().replace("SHA256:", "sha256:") + "\n")
    other = tlsca.ca_pin(tlsca.create_tls_ca("other")[1])
    with pytest.raises(AccessDenied) as err:
        tlsca.check_ca_pin(ca[1], other)
    assert pin in str(err.value) and other in str(err.value)
    with pytest.raises(AccessDenied, match="sha256:<64 hex digits>"):
        tlsca.check_ca_pin(ca[1], "deadbeef")


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, hostname: str) -> ssl.SSLObject:
    """A real TLS handshake in memory; returns the server side."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    cobj = client.wrap_bio(c_in, c_out, server_hostname=hostname)
    sobj = server.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for name, obj in (("c", cobj), ("s", sobj)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            # TLS 1.3: the server learns of a rejected client cert only on the next read.
            cobj.write(b"ping")
            s_in.write(c_out.read())
            assert sobj.read(4) == b"ping"
            return sobj
    raise AssertionError("handshake did not finish")


@pytest.fixture()
def tmpdir_path() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as d:
        yield d


def _write(d: str, name: str, data: bytes) -> str:
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_mutual_tls_handshake(ca: tuple[bytes, bytes], tmpdir_path: str) -> None:
    """Certificates from issue_identity_cert work on both ends of a verified mTLS connection."""
    ca_path = _write(tmpdir_path, "ca.pem", ca[1])
    skey = tlsca.generate_tls_key()
    scert = tlsca.issue_identity_cert(
        *ca,
        skey.public_key(),
        tlsca.Identity("h.example.com", "Auth"),
        600,
        dns_names=["auth.local"],
    )
    ckey = keys.generate_private_key("ed25519")
    ident = tlsca.Identity(
        "alice", "User", roles=["admin"], logins=["root"], cluster_name="example.com"
    )
    ccert = tlsca.issue_identity_cert(*ca, ckey.public_key(), ident, 600)

    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(
        _write(tmpdir_path, "s.pem", scert),
        _write(tmpdir_path, "s.key", keys.private_key_to_pem(skey)),
    )
    server.load_verify_locations(ca_path)
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(ca_path)
    client.load_cert_chain(
        _write(tmpdir_path, "c.pem", ccert),
        _write(tmpdir_path, "c.key", keys.private_key_to_pem(ckey)),
    )

    sobj = _handshake(client, server, "auth.local")
    der = sobj.getpeercert(binary_form=True)
    assert der is not None and tlsca.identity_from_cert(der) == ident

    # A client certificate from another CA is refused.
    other = tlsca.create_tls_ca("evil")
    client2 = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client2.load_verify_locations(ca_path)
    ecert = tlsca.issue_identity_cert(*other, ckey.public_key(), ident, 600)
    client2.load_cert_chain(
        _write(tmpdir_path, "e.pem", ecert),
        _write(tmpdir_path, "c.key", keys.private_key_to_pem(ckey)),
    )
    with pytest.raises(ssl.SSLError):
        _handshake(client2, server, "auth.local")
    # The server name must be in the SANs.
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(client, server, "other.local")


def test_self_signed_https(tmpdir_path: str) -> None:
    key_pem, cert_pem = tlsca.self_signed_https_cert(
        ["proxy.example.com", "localhost"], ["127.0.0.1"]
    )
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["proxy.example.com", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(
        _write(tmpdir_path, "w.pem", cert_pem), _write(tmpdir_path, "w.key", key_pem)
    )
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cadata=cert_pem.decode())
    _handshake(client, server, "proxy.example.com")
    _handshake(client, server, "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(client, server, "elsewhere.example.com")
    _, default = tlsca.self_signed_https_cert([])
    names = x509.load_pem_x509_certificate(default).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert names.value.get_values_for_type(x509.DNSName) == ["localhost"]
