"""OpenSSH certificate signing, parsing and signature checking."""

from __future__ import annotations

import base64
import json

import pytest

from teleport import defaults
from teleport.ca import keys, sshcert
from teleport.errors import AccessDenied, BadParameter

KINDS = ["ed25519", "rsa", "ecdsa"]
NOW = 1_700_000_000.0


@pytest.fixture(scope="module", params=KINDS)
def ca(request: pytest.FixtureRequest) -> keys.PrivateKey:
    return keys.generate_private_key(request.param)


@pytest.fixture(scope="module", params=KINDS)
def subject(request: pytest.FixtureRequest) -> str:
    return keys.public_key_to_openssh(keys.generate_private_key(request.param)) + " alice@laptop"


def _user(ca_key: keys.PrivateKey, pub: str, **kw: object) -> str:
    args: dict[str, object] = dict(
        username="alice", principals=["root", "alice"], ttl=3600, roles=["admin", "dev"], now=NOW
    )
    args.update(kw)
    return sshcert.sign_user_cert(ca_key, pub, **args)  # type: ignore[arg-type]


def test_user_cert_round_trip(ca: keys.PrivateKey, subject: str) -> None:
    line = _user(ca, subject, traits={"logins": ["root"], "groups": []}, route_to_cluster="east")
    key_type = subject.split()[0]
    assert line.startswith(key_type + "-cert-v01@openssh.com AAAA") and len(line.split()) == 2
    info = sshcert.parse_cert(line)
    assert info.cert_type == "user"
    assert info.key_id == "alice"
    assert info.principals == ["root", "alice"]
    assert info.valid_after == int(NOW) - defaults.CERT_BACKDATE
    assert info.valid_before == int(NOW) + 3600
    assert info.public_key == subject.rsplit(" ", 1)[0]
    assert info.ca_public_key == keys.public_key_to_openssh(ca)
    assert info.critical_options == {}
    assert info.extensions == {
        "permit-agent-forwarding": "",
        "permit-port-forwarding": "",
        "permit-pty": "",
        "teleport-roles": '{"version":"v1","roles":["admin","dev"]}',
        "teleport-route-to-cluster": "east",
        "teleport-traits": '{"logins":["root"],"groups":[]}',
    }
    assert info.roles == ["admin", "dev"]
    assert info.traits == {"logins": ["root"], "groups": []}
    assert info.route_to_cluster == "east"
    assert 0 <= info.serial < 2**64


def test_extension_wire_order_and_encoding() -> None:
    ca_key = keys.generate_private_key()
    pub = keys.public_key_to_openssh(keys.generate_private_key())
    line = _user(ca_key, pub, permit_x11_forwarding=True, traits={"a": ["b"]}, route_to_cluster="c")
    blob = base64.b64decode(line.split()[1])
    # OpenSSH requires names sorted bytewise; uppercase X sorts before lowercase letters.
    names = list(sshcert.parse_cert(line).extensions)
    assert names == sorted(names) and names[0] == "permit-X11-forwarding"
    # Custom values are SSH strings inside the extension data: length-prefixed JSON.
    roles = b'{"version":"v1","roles":["admin","dev"]}'
    inner = len(roles).to_bytes(4, "big") + roles
    assert len(inner).to_bytes(4, "big") + inner in blob
    # Flag extensions carry empty data.
    assert b"\x00\x00\x00\x0apermit-pty\x00\x00\x00\x00" in blob


def test_permits_follow_flags() -> None:
    ca_key = keys.generate_private_key()
    pub = keys.public_key_to_openssh(keys.generate_private_key())
    info = sshcert.parse_cert(
        _user(ca_key, pub, permit_port_forwarding=False, permit_agent_forwarding=False)
    )
    assert set(info.extensions) == {"permit-pty", "teleport-roles"}
    assert info.traits == {} and info.route_to_cluster == ""
    info = sshcert.parse_cert(_user(ca_key, pub, permit_x11_forwarding=True, roles=[]))
    assert "permit-X11-forwarding" in info.extensions
    assert info.roles == []


def test_validity_window_and_serials() -> None:
    ca_key = keys.generate_private_key()
    pub = keys.public_key_to_openssh(keys.generate_private_key())
    info = sshcert.parse_cert(_user(ca_key, pub, ttl=60))
    assert info.valid_at(NOW) and info.valid_at(NOW - 59) and not info.valid_at(NOW - 61)
    assert not info.expired(NOW + 59) and info.expired(NOW + 60)
    assert not sshcert.parse_cert(_user(ca_key, pub, now=None)).expired()
    serials = {sshcert.parse_cert(_user(ca_key, pub)).serial for _ in range(20)}
    assert len(serials) == 20


def test_user_cert_bad_inputs() -> None:
    ca_key = keys.generate_private_key()
    pub = keys.public_key_to_openssh(keys.generate_private_key())
    with pytest.raises(BadParameter, match="at least one principal"):
        _user(ca_key, pub, principals=[])
    with pytest.raises(BadParameter, match="TTL must be positive"):
        _user(ca_key, pub, ttl=0)
    with pytest.raises(BadParameter, match="username"):
        _user(ca_key, pub, username="")
    with pytest.raises(BadParameter, match="not an OpenSSH public key"):
        _user(ca_key, "not a key")
    cert = _user(ca_key, pub)
    with pytest.raises(BadParameter, match="got an OpenSSH certificate"):
        _user(ca_key, cert)


def test_host_cert(ca: keys.PrivateKey) -> None:
    pub = keys.public_key_to_openssh(keys.generate_private_key())
    line = sshcert.sign_host_cert(
        ca,
        pub,
        host_id="5f1c",
        nodename="node1",
        cluster_name="example.com",
        role="Proxy",
        addresses=["10.0.0.5", "node1", "10.0.0.5", "proxy.example.com"],
    )
    info = sshcert.parse_cert(line)
    assert info.cert_type == "host"
    assert info.key_id == "5f1c"
    assert info.principals == [
        "5f1c.example.com",
        "5f1c",
        "node1.example.com",
        "node1",
        "localhost",
        "127.0.0.1",
        "::1",
        "10.0.0.5",
        "proxy.example.com",
    ]
    assert info.valid_before == 2**64 - 1 and info.valid_after == 0
    assert not info.expired(4_000_000_000)
    assert info.extensions == {"x-teleport-authority": "example.com", "x-teleport-role": "Proxy"}
    assert info.critical_options == {}
    assert info.roles == []


def test_host_cert_defaults() -> None:
    ca_key = keys.generate_private_key()
    pub = keys.public_key_to_openssh(keys.generate_private_key())
    info = sshcert.parse_cert(
        sshcert.sign_host_cert(ca_key, pub, host_id="h", nodename="n", cluster_name="c")
    )
    assert info.extensions["x-teleport-role"] == "Node"
    assert info.principals[-3:] == ["localhost", "127.0.0.1", "::1"]
    with pytest.raises(BadParameter, match="host id"):
        sshcert.sign_host_cert(ca_key, pub, host_id="", nodename="n", cluster_name="c")


def test_verify_right_and_wrong_ca(ca: keys.PrivateKey, subject: str) -> None:
    line = _user(ca, subject)
    other = keys.generate_private_key()
    ca_line = keys.public_key_to_openssh(ca)
    info = sshcert.verify_cert_signature(line, [keys.public_key_to_openssh(other), ca_line + " c"])
    assert info.key_id == "alice"
    with pytest.raises(AccessDenied, match="not signed by a trusted certificate authority"):
        sshcert.verify_cert_signature(line, [keys.public_key_to_openssh(other)])
    with pytest.raises(AccessDenied):
        sshcert.verify_cert_signature(line, [])


def test_verify_rejects_tampered_certificate() -> None:
    ca_key = keys.generate_private_key()
    pub = keys.public_key_to_openssh(keys.generate_private_key())
    line = _user(ca_key, pub, principals=["alice"])
    ktype, b64 = line.split()
    blob = base64.b64decode(b64)
    # Same length, different login: the signature no longer covers what the cert says.
    forged = blob.replace(b"alice", b"rooot")
    assert forged != blob
    forged_line = f"{ktype} {base64.b64encode(forged).decode()}"
    assert sshcert.parse_cert(forged_line).principals == ["rooot"]
    with pytest.raises(AccessDenied, match="not signed by a trusted"):
        sshcert.verify_cert_signature(forged_line, [keys.public_key_to_openssh(ca_key)])


def test_parse_errors() -> None:
    with pytest.raises(BadParameter, match="not a valid OpenSSH certificate"):
        sshcert.parse_cert("garbage")
    with pytest.raises(BadParameter, match="got a plain public key"):
        sshcert.parse_cert(keys.public_key_to_openssh(keys.generate_private_key()))


def test_parse_with_comment_and_bytes() -> None:
    ca_key = keys.generate_private_key()
    line = _user(ca_key, keys.public_key_to_openssh(keys.generate_private_key()))
    assert sshcert.parse_cert((line + " alice\n").encode()).key_id == "alice"


def test_malformed_teleport_extensions() -> None:
    info = sshcert.CertInfo("user", "bob", 1, ["bob"], 0, 10, extensions={"teleport-roles": "{"})
    with pytest.raises(BadParameter, match="teleport-roles"):
        _ = info.roles
    info.extensions = {"teleport-roles": json.dumps({"roles": [1]})}
    with pytest.raises(BadParameter, match="teleport-roles"):
        _ = info.roles
    info.extensions = {"teleport-traits": json.dumps({"a": "b"})}
    with pytest.raises(BadParameter, match="teleport-traits"):
        _ = info.traits


def test_fingerprint_of_cert_is_that_of_certified_key() -> None:
    ca_key = keys.generate_private_key()
    pub = keys.public_key_to_openssh(keys.generate_private_key("ecdsa"))
    line = _user(ca_key, pub)
    assert keys.fingerprint_sha256(line) == keys.fingerprint_sha256(pub)
