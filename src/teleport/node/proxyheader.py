"""The one-line header a proxy sends before the SSH banner to tell a node the real client address.

Wire form: ``Teleport-Proxy <base64 JSON>\\r\\n`` where the JSON holds ``client_addr``, ``node_addr``,
``time`` (unix seconds), ``proxy_cert`` (the proxy's OpenSSH host certificate), optionally
``recording_proxy`` (true: this proxy terminated the user's SSH and itself records and audits the
session, so the node must not log a second copy) and ``sig`` (base64 signature by the proxy's host
key over the canonical JSON of the other fields). Pure module.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from teleport.ca import keys, sshcert
from teleport.errors import AccessDenied, BadParameter

PREFIX = b"Teleport-Proxy "
MAX_HEADER_LEN = 16 * 1024  # a host cert plus a few fields; anything longer is not ours
MAX_SKEW = 60  # seconds either way
PROXY_ROLE = "Proxy"
_FIELDS = ("client_addr", "node_addr", "time", "proxy_cert")
RECORDING_PROXY = "recording_proxy"  # optional, signed when present


def _canonical(fields: dict[str, Any]) -> bytes:
    signed = {k: fields[k] for k in _FIELDS}
    if RECORDING_PROXY in fields:
        signed[RECORDING_PROXY] = fields[RECORDING_PROXY]
    return json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()


def _ec_hash(curve: ec.EllipticCurve) -> hashes.HashAlgorithm:
    # The same curve/hash pairing as ssh's ecdsa-sha2-nistp* algorithms.
    size = curve.key_size
    if size <= 256:
        return hashes.SHA256()
    if size <= 384:
        return hashes.SHA384()
    return hashes.SHA512()


def _sign(key: keys.PrivateKey, data: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(_ec_hash(key.curve)))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    raise BadParameter(f"cannot sign a proxy header with a {type(key).__name__}")


def _verify(pub: Any, sig: bytes, data: bytes) -> None:
    if isinstance(pub, ed25519.Ed25519PublicKey):
        pub.verify(sig, data)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        pub.verify(sig, data, ec.ECDSA(_ec_hash(pub.curve)))
    elif isinstance(pub, rsa.RSAPublicKey):
        pub.verify(sig, data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise InvalidSignature()


def make_proxy_header(
    client_addr: str,
    node_addr: str,
    proxy_private_key_openssh: bytes,
    proxy_cert: str,
    now: float | None = None,
    recording_proxy: bool = False,
) -> bytes:
    """The header line (with CRLF) a proxy writes to a node before relaying the client's SSH bytes
    (`recording_proxy`: the proxy records and audits this connection's sessions itself)."""
    key = keys.load_private_key(proxy_private_key_openssh)
    cert_key = sshcert.parse_cert(proxy_cert).public_key
    if keys.public_key_to_openssh(key) != cert_key:
        raise BadParameter("the proxy's private key does not match its host certificate")
    fields: dict[str, Any] = {
        "client_addr": client_addr,
        "node_addr": node_addr,
        "time": int(time.time() if now is None else now),
        "proxy_cert": proxy_cert.strip(),
    }
    if recording_proxy:
        fields[RECORDING_PROXY] = True
    fields["sig"] = base64.b64encode(_sign(key, _canonical(fields))).decode()
    payload = base64.b64encode(json.dumps(fields, separators=(",", ":")).encode())
    return PREFIX + payload + b"\r\n"


def parse_proxy_header(line: bytes, host_ca_keys: list[str], now: float | None = None) -> dict[str, Any]:
    """Check a header line (CRLF optional) and return its fields plus ``proxy_id`` (the proxy's
    host id). Raises AccessDenied for a header this cluster's proxy did not sign just now."""
    line = line.rstrip(b"\r\n")
    if not line.startswith(PREFIX):
        raise AccessDenied("not a Teleport-Proxy header")
    if len(line) > MAX_HEADER_LEN:
        raise AccessDenied(f"malformed Teleport-Proxy header: longer than {MAX_HEADER_LEN} bytes")
    try:
        fields = json.loads(base64.b64decode(line[len(PREFIX):], validate=True))
    except (binascii.Error, ValueError, RecursionError):
        # ValueError includes bytes that are not UTF-8; RecursionError: "[[[[..." nesting
        raise AccessDenied("malformed Teleport-Proxy header: not base64 JSON") from None
    if not isinstance(fields, dict) or any(k not in fields for k in (*_FIELDS, "sig")):
        raise AccessDenied(f"malformed Teleport-Proxy header: needs fields {', '.join(_FIELDS)}, sig")
    stamp = fields["time"]
    if (
        isinstance(stamp, bool)
        or not isinstance(stamp, int)
        # a time float() cannot hold would raise OverflowError in the skew check below
        or not -(2**53) < stamp < 2**53
        or not all(isinstance(fields[k], str) for k in ("client_addr", "node_addr", "proxy_cert", "sig"))
    ):
        raise AccessDenied("malformed Teleport-Proxy header: wrong field types")
    if RECORDING_PROXY in fields and not isinstance(fields[RECORDING_PROXY], bool):
        raise AccessDenied(f"malformed Teleport-Proxy header: {RECORDING_PROXY} must be true or false")
    current = time.time() if now is None else now
    if abs(current - fields["time"]) > MAX_SKEW:
        raise AccessDenied(
            f"Teleport-Proxy header is {int(current - fields['time'])}s old (allowed {MAX_SKEW}s): "
            "replayed, or the proxy's and node's clocks differ"
        )
    try:
        info = sshcert.verify_cert_signature(fields["proxy_cert"], host_ca_keys)
    except BadParameter as exc:
        raise AccessDenied(f"Teleport-Proxy header: {exc}") from None
    if info.cert_type != "host" or info.extensions.get(sshcert.EXT_TELEPORT_ROLE) != PROXY_ROLE:
        raise AccessDenied(
            f"Teleport-Proxy header signed by {info.key_id!r}, which is not a proxy of this cluster"
        )
    if not info.valid_at(current):
        raise AccessDenied("Teleport-Proxy header: the proxy's host certificate is not valid now")
    try:
        sig = base64.b64decode(fields["sig"], validate=True)
        _verify(keys.load_public_key(info.public_key), sig, _canonical(fields))
    except (binascii.Error, ValueError, InvalidSignature, BadParameter):
        # BadParameter: a certified key load_public_key refuses (an RSA key under 2048 bits)
        raise AccessDenied("Teleport-Proxy header: bad signature") from None
    out = {k: fields[k] for k in _FIELDS}
    out[RECORDING_PROXY] = fields.get(RECORDING_PROXY) is True
    out["proxy_id"] = info.key_id
    return out
