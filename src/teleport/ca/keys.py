"""Key generation and (de)serialization for the CAs and their subjects; pure, cryptography only."""

from __future__ import annotations

import base64
import hashlib
from typing import Any, TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization.ssh import (
    SSHCertificate,
    load_ssh_public_identity,
)

from teleport import defaults
from teleport.errors import BadParameter

PrivateKey: TypeAlias = ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey: TypeAlias = ed25519.Ed25519PublicKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey

KEY_KINDS = ("ed25519", "rsa", "ecdsa")

# Key types an OpenSSH public key line may start with (and their certificate forms).
SSH_KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
    }
)
SSH_CERT_TYPES = frozenset(t + "-cert-v01@openssh.com" for t in SSH_KEY_TYPES)

# Shorter RSA keys are breakable; refuse to certify them.
MIN_RSA_BITS = 2048


def generate_private_key(kind: str = "ed25519") -> PrivateKey:
    """Generate a new private key: "ed25519", "rsa" (defaults.RSA_KEY_BITS) or "ecdsa" (P-256)."""
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=defaults.RSA_KEY_BITS)
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    raise BadParameter(f"unknown key type {kind!r}: expected one of {', '.join(KEY_KINDS)}")


def _check_private(key: Any) -> PrivateKey:
    if not isinstance(
        key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    ):
        raise BadParameter(
            f"unsupported private key type {type(key).__name__}: expected Ed25519, RSA or ECDSA"
        )
    return key


def private_key_to_openssh(key: PrivateKey) -> bytes:
    """The key in OpenSSH private key format, unencrypted (what ssh-keygen writes)."""
    return _check_private(key).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )


def private_key_to_pem(key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM."""
    return _check_private(key).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(data: bytes | str) -> PrivateKey:
    """Load an unencrypted private key in OpenSSH or PEM (PKCS#8 / traditional) format."""
    raw = data.encode() if isinstance(data, str) else bytes(data)
    try:
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in raw:
            key: Any = serialization.load_ssh_private_key(raw, password=None)
        else:
            key = serialization.load_pem_private_key(raw, password=None)
    except TypeError as exc:
        # cryptography raises TypeError for a missing passphrase.
        raise BadParameter(
            f"cannot load private key: {exc} (encrypted keys are not supported)"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadParameter(
            f"cannot load private key: {exc}; expected an OpenSSH or PEM private key"
        ) from None
    return _check_private(key)


def _split_key_line(line: str) -> tuple[str, str]:
    """(key type, base64 blob) of an authorized_keys-style line; skips options and comment."""
    tokens = line.strip().split()
    for i, tok in enumerate(tokens):
        if (tok in SSH_KEY_TYPES or tok in SSH_CERT_TYPES) and i + 1 < len(tokens):
            return tok, tokens[i + 1]
    shown = line.strip()[:60]
    raise BadParameter(
        f"not an OpenSSH public key line: {shown!r}; expected e.g. 'ssh-ed25519 AAAA... [comment]'"
    )


def load_public_key(line: str | bytes) -> PublicKey:
    """Parse an authorized_keys-style public key line (options and comment allowed)."""
    key = _parse_public_key(line)
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise BadParameter(
            f"RSA key of {key.key_size} bits is too short: use at least {MIN_RSA_BITS}"
        )
    return key


def _parse_public_key(line: str | bytes) -> PublicKey:
    text = line.decode(errors="replace") if isinstance(line, bytes) else line
    ktype, blob = _split_key_line(text)
    if ktype in SSH_CERT_TYPES:
        raise BadParameter("expected a public key, got an OpenSSH certificate")
    try:
        key: Any = load_ssh_public_identity(f"{ktype} {blob}".encode())
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise BadParameter(f"invalid {ktype} public key: {exc}") from None
    if isinstance(key, SSHCertificate):  # pragma: no cover - excluded by the type check above
        raise BadParameter("expected a public key, got an OpenSSH certificate")
    if not isinstance(key, ed25519.Ed25519PublicKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise BadParameter(f"unsupported public key type {ktype}: use Ed25519, RSA or ECDSA")
    return key


def public_key_to_openssh(key: PrivateKey | PublicKey) -> str:
    """One OpenSSH public key line without comment, e.g. "ssh-ed25519 AAAA..."."""
    if isinstance(key, ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        key = key.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise BadParameter(
            f"unsupported key type {type(key).__name__}: expected Ed25519, RSA or ECDSA"
        )
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def fingerprint_sha256(public_key_line: str) -> str:
    """The key's fingerprint as `ssh-keygen -l -E sha256` prints it ("SHA256:<unpadded base64>").

    A certificate line gives the fingerprint of the certified key, as ssh-keygen does.
    """
    ktype, _ = _split_key_line(public_key_line)
    if ktype in SSH_CERT_TYPES:
        from teleport.ca.sshcert import parse_cert  # sshcert imports this module

        public_key_line = parse_cert(public_key_line).public_key
    # Hash the canonical wire encoding so the result never depends on the line's formatting.
    blob = public_key_to_openssh(_parse_public_key(public_key_line)).split()[1]
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
