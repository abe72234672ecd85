"""Key generation, formats and fingerprints."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from teleport import defaults
from teleport.ca import keys
from teleport.errors import BadParameter

KINDS = ["ed25519", "rsa", "ecdsa"]
PREFIX = {"ed25519": "ssh-ed25519 ", "rsa": "ssh-rsa ", "ecdsa": "ecdsa-sha2-nistp256 "}


@pytest.fixture(scope="module", params=KINDS)
def kind_key(request: pytest.FixtureRequest) -> tuple[str, keys.PrivateKey]:
    return request.param, keys.generate_private_key(request.param)


def test_default_kind_is_ed25519() -> None:
    assert isinstance(keys.generate_private_key(), ed25519.Ed25519PrivateKey)


def test_kinds_and_sizes(kind_key: tuple[str, keys.PrivateKey]) -> None:
    kind, key = kind_key
    if kind == "rsa":
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == defaults.RSA_KEY_BITS
    elif kind == "ecdsa":
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    else:
        assert isinstance(key, ed25519.Ed25519PrivateKey)


def test_unknown_kind() -> None:
    with pytest.raises(BadParameter, match="unknown key type 'dsa'"):
        keys.generate_private_key("dsa")


def _same(a: keys.PrivateKey, b: keys.PrivateKey) -> bool:
    return keys.public_key_to_openssh(a) == keys.public_key_to_openssh(b)


def test_private_formats_round_trip(kind_key: tuple[str, keys.PrivateKey]) -> None:
    _, key = kind_key
    ossh = keys.private_key_to_openssh(key)
    pem = keys.private_key_to_pem(key)
    assert ossh.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert _same(keys.load_private_key(ossh), key)
    assert _same(keys.load_private_key(pem), key)
    assert _same(keys.load_private_key(pem.decode()), key)


def test_load_traditional_pem() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    trad = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert _same(keys.load_private_key(trad), key)


def test_load_private_key_errors() -> None:
    with pytest.raises(BadParameter, match="cannot load private key"):
        keys.load_private_key(b"garbage")
    enc = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(BadParameter, match="encrypted"):
        keys.load_private_key(enc)


def test_public_line(kind_key: tuple[str, keys.PrivateKey]) -> None:
    kind, key = kind_key
    line = keys.public_key_to_openssh(key)
    assert line.startswith(PREFIX[kind]) and len(line.split()) == 2
    assert keys.public_key_to_openssh(key.public_key()) == line
    # with a comment, with options in front, as bytes
    assert keys.public_key_to_openssh(keys.load_public_key(line + " alice@laptop")) == line
    assert (
        keys.public_key_to_openssh(keys.load_public_key('from="10.0.0.1",no-pty ' + line)) == line
    )
    assert keys.public_key_to_openssh(keys.load_public_key((line + "\n").encode())) == line


def test_load_public_key_errors() -> None:
    with pytest.raises(BadParameter, match="not an OpenSSH public key line"):
        keys.load_public_key("hello world")
    with pytest.raises(BadParameter, match="not an OpenSSH public key line"):
        keys.load_public_key("")
    with pytest.raises(BadParameter, match="invalid ssh-ed25519 public key"):
        keys.load_public_key("ssh-ed25519 AAAAB3NzaC1yc2E=")
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(BadParameter, match="too short"):
        keys.load_public_key(keys.public_key_to_openssh(small))


def test_fingerprint_matches_hash_of_blob(kind_key: tuple[str, keys.PrivateKey]) -> None:
    _, key = kind_key
    line = keys.public_key_to_openssh(key)
    blob = base64.b64decode(line.split()[1])
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    fp = keys.fingerprint_sha256(line + " comment")
    assert fp == expected and "=" not in fp and len(fp) == 7 + 43


def test_fingerprints_differ() -> None:
    a = keys.public_key_to_openssh(keys.generate_private_key())
    b = keys.public_key_to_openssh(keys.generate_private_key())
    assert keys.fingerprint_sha256(a) != keys.fingerprint_sha256(b)
