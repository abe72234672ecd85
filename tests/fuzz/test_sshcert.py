"""Fuzz: OpenSSH certificate parsing (parse_cert, verify_cert_signature, the Teleport extensions)."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.serialization.ssh import (
    SSHCertificateBuilder,
    SSHCertificateType,
)
from hypothesis import example, given
from hypothesis import strategies as st

from teleport.ca import keys, sshcert
from teleport.errors import AccessDenied, BadParameter
from tests.fuzz.strategies import expect_ok_or_error, nasty_strings

CA = keys.generate_private_key()
CA_PUB = keys.public_key_to_openssh(CA)
USER_KEY = keys.generate_private_key()
CERT = sshcert.sign_user_cert(
    CA, keys.public_key_to_openssh(USER_KEY), username="alice", principals=["root", "alice"],
    ttl=3600, roles=["admin"], traits={"logins": ["root"]}, now=1_700_000_000,
)
CERT_TYPE, CERT_B64 = CERT.split()[:2]
BLOB = base64.b64decode(CERT_B64)
# Where the CA's public key sits in the blob: cryptography parses it only when asked, so a bad
# length there once escaped parse_cert as a bare ValueError.
_CA_RAW = base64.b64decode(CA_PUB.split()[1])[-32:]
_CA_AT = BLOB.index(_CA_RAW)
BAD_SIGKEY = BLOB[: _CA_AT - 1] + b"\x7f" + BLOB[_CA_AT:]


def _use(info: sshcert.CertInfo) -> None:
    """Read every derived field of a parsed certificate: only BadParameter may come out."""
    assert info.cert_type in ("user", "host")
    assert isinstance(info.principals, list) and all(isinstance(p, str) for p in info.principals)
    assert info.public_key.split()[0] in keys.SSH_KEY_TYPES
    for prop in ("roles", "traits", "route_to_cluster"):
        expect_ok_or_error(getattr, info, prop, errors=(BadParameter,))


@st.composite
def mutated_blob(draw: st.DrawFn) -> bytes:
    """The valid certificate's wire bytes with a few bytes replaced, inserted, or cut off."""
    blob = bytearray(BLOB)
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["set", "insert", "truncate"]))
        i = draw(st.integers(0, len(blob) - 1))
        if action == "set":
            blob[i] = draw(st.integers(0, 255))
        elif action == "insert":
            blob[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del blob[i:]
            if not blob:
                break
    return bytes(blob)


@given(st.one_of(nasty_strings, st.text(max_size=200),
                 st.builds(lambda t, b: f"{t} {b}", st.sampled_from(sorted(keys.SSH_CERT_TYPES)),
                           st.binary(max_size=300).map(lambda b: base64.b64encode(b).decode()))))
@example("ssh-ed25519-cert-v01@openssh.com AAAA")
@example(CERT_TYPE + " " + CERT_B64[:-8])
def test_parse_cert_text(text: str) -> None:
    """Arbitrary text is a certificate or a BadParameter."""
    info = expect_ok_or_error(sshcert.parse_cert, text, errors=(BadParameter,))
    if info is not None:
        _use(info)


@given(st.binary(max_size=300))
def test_parse_cert_bytes(raw: bytes) -> None:
    """Arbitrary bytes too (parse_cert accepts bytes)."""
    info = expect_ok_or_error(sshcert.parse_cert, raw, errors=(BadParameter,))
    if info is not None:
        _use(info)


@given(mutated_blob())
@example(BAD_SIGKEY)
@example(BLOB[:-1])
def test_mutated_certificate(blob: bytes) -> None:
    """A damaged certificate fails to parse with BadParameter, or parses but never verifies."""
    line = f"{CERT_TYPE} {base64.b64encode(blob).decode()} comment"
    info = expect_ok_or_error(sshcert.parse_cert, line, errors=(BadParameter,))
    if info is not None:
        _use(info)
    verified = expect_ok_or_error(sshcert.verify_cert_signature, line, [CA_PUB],
                                  errors=(BadParameter, AccessDenied))
    assert (verified is not None) == (blob == BLOB)


def test_valid_certificate_round_trip() -> None:
    """The base certificate parses and verifies, with its extensions intact."""
    info = sshcert.verify_cert_signature(CERT, [CA_PUB])
    assert (info.key_id, info.principals, info.roles, info.traits) == (
        "alice", ["root", "alice"], ["admin"], {"logins": ["root"]})
    other = keys.public_key_to_openssh(keys.generate_private_key())
    try:
        sshcert.verify_cert_signature(CERT, [other])
    except AccessDenied:
        pass
    else:
        raise AssertionError("a certificate verified against a CA that did not sign it")


@given(st.binary(max_size=80), st.binary(max_size=80), st.binary(max_size=20))
@example(b"[" * 5000, b"{" * 5000, b"")
@example(b'{"roles": "admin"}', b'{"logins": "root"}', b"\xff")
def test_extension_values(roles: bytes, traits: bytes, route: bytes) -> None:
    """A CA-signed certificate with arbitrary teleport-roles/traits/route bytes: the properties
    give lists of strings or BadParameter."""
    cert = (
        SSHCertificateBuilder()
        .public_key(USER_KEY.public_key())
        .serial(1)
        .type(SSHCertificateType.USER)
        .key_id(b"mallory")
        .valid_principals([b"root"])
        .valid_after(0)
        .valid_before(2**63)
        .add_extension(sshcert.EXT_TELEPORT_ROLES.encode(), roles)
        .add_extension(sshcert.EXT_TELEPORT_TRAITS.encode(), traits)
        .add_extension(sshcert.EXT_TELEPORT_ROUTE_TO_CLUSTER.encode(), route)
        .sign(CA)
    )
    info = sshcert.verify_cert_signature(cert.public_bytes(), [CA_PUB])
    got_roles = expect_ok_or_error(getattr, info, "roles", errors=(BadParameter,))
    if got_roles is not None:
        assert all(isinstance(r, str) for r in got_roles)
    got_traits = expect_ok_or_error(getattr, info, "traits", errors=(BadParameter,))
    if got_traits is not None:
        assert all(isinstance(v, str) for vs in got_traits.values() for v in vs)
    assert isinstance(info.route_to_cluster, str)
