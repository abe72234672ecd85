"""Proxy header signing and verification."""

from __future__ import annotations

import base64
import json
import time

import pytest

from teleport.ca import keys, sshcert
from teleport.errors import AccessDenied, BadParameter
from teleport.node.proxyheader import make_proxy_header, parse_proxy_header


def _host(ca: keys.PrivateKey, role: str, kind: str = "ed25519") -> tuple[bytes, str]:
    key = keys.generate_private_key(kind)
    cert = sshcert.sign_host_cert(ca, keys.public_key_to_openssh(key), host_id="p1", nodename="proxy",
                                  cluster_name="c", role=role)
    return keys.private_key_to_openssh(key), cert


@pytest.fixture
def ca() -> keys.PrivateKey:
    return keys.generate_private_key()


@pytest.mark.parametrize("kind", ["ed25519", "ecdsa", "rsa"])
def test_roundtrip(ca: keys.PrivateKey, kind: str) -> None:
    priv, cert = _host(ca, "Proxy", kind)
    line = make_proxy_header("10.0.0.5:4242", "10.0.0.9:3022", priv, cert)
    assert line.startswith(b"Teleport-Proxy ") and line.endswith(b"\r\n") and line.count(b"\n") == 1
    out = parse_proxy_header(line, [keys.public_key_to_openssh(ca)])
    assert out["client_addr"] == "10.0.0.5:4242" and out["node_addr"] == "10.0.0.9:3022"
    assert out["proxy_id"] == "p1"


def test_wrong_ca(ca: keys.PrivateKey) -> None:
    priv, cert = _host(ca, "Proxy")
    line = make_proxy_header("1.2.3.4:1", "n:3022", priv, cert)
    other = keys.public_key_to_openssh(keys.generate_private_key())
    with pytest.raises(AccessDenied, match="not signed by a trusted"):
        parse_proxy_header(line, [other])


def test_not_a_proxy(ca: keys.PrivateKey) -> None:
    priv, cert = _host(ca, "Node")
    line = make_proxy_header("1.2.3.4:1", "n:3022", priv, cert)
    with pytest.raises(AccessDenied, match="not a proxy"):
        parse_proxy_header(line, [keys.public_key_to_openssh(ca)])


def test_expired_and_future(ca: keys.PrivateKey) -> None:
    priv, cert = _host(ca, "Proxy")
    now = time.time()
    old = make_proxy_header("1.2.3.4:1", "n:3022", priv, cert, now=now - 61)
    with pytest.raises(AccessDenied, match="old"):
        parse_proxy_header(old, [keys.public_key_to_openssh(ca)], now=now)
    fresh = make_proxy_header("1.2.3.4:1", "n:3022", priv, cert, now=now - 59)
    assert parse_proxy_header(fresh, [keys.public_key_to_openssh(ca)], now=now)["client_addr"] == "1.2.3.4:1"
    future = make_proxy_header("1.2.3.4:1", "n:3022", priv, cert, now=now + 120)
    with pytest.raises(AccessDenied):
        parse_proxy_header(future, [keys.public_key_to_openssh(ca)], now=now)


def test_tampered(ca: keys.PrivateKey) -> None:
    priv, cert = _host(ca, "Proxy")
    line = make_proxy_header("1.2.3.4:1", "n:3022", priv, cert)
    fields = json.loads(base64.b64decode(line.split()[1]))
    fields["client_addr"] = "6.6.6.6:1"
    forged = b"Teleport-Proxy " + base64.b64encode(json.dumps(fields).encode()) + b"\r\n"
    with pytest.raises(AccessDenied, match="bad signature"):
        parse_proxy_header(forged, [keys.public_key_to_openssh(ca)])
    with pytest.raises(AccessDenied, match="malformed"):
        parse_proxy_header(b"Teleport-Proxy !!!\r\n", [keys.public_key_to_openssh(ca)])


def test_signed_by_another_key_than_the_cert(ca: keys.PrivateKey) -> None:
    priv, cert = _host(ca, "Proxy")
    other_priv, _ = _host(ca, "Proxy")
    with pytest.raises(BadParameter, match="does not match"):
        make_proxy_header("1.2.3.4:1", "n:3022", other_priv, cert)


def test_recording_proxy_flag_is_signed(ca: keys.PrivateKey) -> None:
    """A recording proxy says (signed) that it records the connection; the node keeps quiet only
    then. Absent (older proxies, relay mode) it reads as false; added or removed, the signature
    no longer holds."""
    priv, cert = _host(ca, "Proxy")
    trusted = [keys.public_key_to_openssh(ca)]
    plain = make_proxy_header("1.2.3.4:1", "n:3022", priv, cert)
    flagged = make_proxy_header("1.2.3.4:1", "n:3022", priv, cert, recording_proxy=True)
    assert parse_proxy_header(plain, trusted)["recording_proxy"] is False
    assert parse_proxy_header(flagged, trusted)["recording_proxy"] is True

    def edit(line: bytes, change: dict[str, object], drop: str = "") -> bytes:
        fields = json.loads(base64.b64decode(line[len(b"Teleport-Proxy "):].strip()))
        fields.update(change)
        fields.pop(drop, None)
        return b"Teleport-Proxy " + base64.b64encode(json.dumps(fields).encode()) + b"\r\n"

    with pytest.raises(AccessDenied, match="bad signature"):
        parse_proxy_header(edit(plain, {"recording_proxy": True}), trusted)
    with pytest.raises(AccessDenied, match="bad signature"):
        parse_proxy_header(edit(flagged, {}, drop="recording_proxy"), trusted)
    with pytest.raises(AccessDenied, match="true or false"):
        parse_proxy_header(edit(flagged, {"recording_proxy": "yes"}), trusted)
