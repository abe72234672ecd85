"""The certificate capture hook, through a real in-process node server and asyncssh client."""

from __future__ import annotations

import base64
import os
import pwd
from collections.abc import AsyncIterator
from typing import Any

import asyncssh
import pytest

from teleport.ca import keys, sshcert
from teleport.errors import AccessDenied, ConnectionProblem
from teleport.node.certcheck import cert_line_from_wire, check_user_cert
from teleport.node.server import NodeServer

LOGIN = pwd.getpwuid(os.geteuid()).pw_name


class Auth:
    """Stands in for the auth server's access check: records calls, answers as configured."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.error: Exception | None = None

    async def check(self, user: str, login: str) -> dict[str, Any]:
        self.calls.append((user, login))
        if self.error is not None:
            raise self.error
        return {"permit_port_forwarding": False, "permit_agent_forwarding": False}


@pytest.fixture
async def node() -> AsyncIterator[tuple[NodeServer, Auth, keys.PrivateKey, int]]:
    user_ca, host_ca = keys.generate_private_key(), keys.generate_private_key()
    host_key = keys.generate_private_key()
    host_cert = sshcert.sign_host_cert(host_ca, keys.public_key_to_openssh(host_key), host_id="h1",
                                       nodename="n", cluster_name="c")
    auth = Auth()
    srv = NodeServer(
        asyncssh.import_private_key(keys.private_key_to_openssh(host_key)),
        asyncssh.import_certificate(host_cert), "c", "h1",
        lambda: [keys.public_key_to_openssh(user_ca)], lambda: [keys.public_key_to_openssh(host_ca)],
        auth.check,
    )
    _, port = await srv.listen("127.0.0.1", 0)
    yield srv, auth, user_ca, port
    await srv.close()


def _client_key(ca: keys.PrivateKey, **kw: Any) -> tuple[asyncssh.SSHKey, asyncssh.SSHCertificate, str]:
    key = keys.generate_private_key()
    args: dict[str, Any] = dict(username="alice", principals=[LOGIN], ttl=300, roles=["dev", "ops"])
    args.update(kw)
    cert = sshcert.sign_user_cert(ca, keys.public_key_to_openssh(key), **args)
    return asyncssh.import_private_key(keys.private_key_to_openssh(key)), asyncssh.import_certificate(cert), cert


async def _connect(port: int, client_keys: Any) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect("127.0.0.1", port, username=LOGIN, client_keys=client_keys,
                                  known_hosts=None, agent_path=None, config=None)


async def test_captures_certificate_and_asks_auth(node: Any) -> None:
    srv, auth, ca, port = node
    key, cert, _ = _client_key(ca)
    async with await _connect(port, [(key, cert)]) as conn:
        res = await conn.run("echo $TELEPORT_USER; exit 5")
    assert res.exit_status == 5 and res.stdout == "alice\n"
    assert auth.calls == [("alice", LOGIN)]


async def test_denied_and_unreachable_auth_fail_closed(node: Any) -> None:
    srv, auth, ca, port = node
    key, cert, _ = _client_key(ca)
    for err in (AccessDenied("role forbids"), ConnectionProblem("auth down")):
        auth.error = err
        with pytest.raises(asyncssh.PermissionDenied):
            await _connect(port, [(key, cert)])


async def test_plain_key_and_wrong_principal_never_reach_auth(node: Any) -> None:
    srv, auth, ca, port = node
    key, _, _ = _client_key(ca)
    with pytest.raises(asyncssh.PermissionDenied):
        await _connect(port, [key])
    key, cert, _ = _client_key(ca, principals=["someone-else"])
    with pytest.raises(asyncssh.PermissionDenied):
        await _connect(port, [(key, cert)])
    assert auth.calls == []


def test_cert_line_from_wire_and_check() -> None:
    ca = keys.generate_private_key()
    _, _, line = _client_key(ca)
    blob = base64.b64decode(line.split()[1])
    assert cert_line_from_wire(blob) == " ".join(line.split()[:2])
    assert cert_line_from_wire(base64.b64decode(keys.public_key_to_openssh(ca).split()[1])) is None
    info = check_user_cert(line, LOGIN, [keys.public_key_to_openssh(ca)])
    assert info.key_id == "alice" and info.roles == ["dev", "ops"]
    with pytest.raises(AccessDenied, match="does not allow login"):
        check_user_cert(line, "bob", [keys.public_key_to_openssh(ca)])
    with pytest.raises(AccessDenied, match="expired"):
        check_user_cert(line, LOGIN, [keys.public_key_to_openssh(ca)], now=0)
