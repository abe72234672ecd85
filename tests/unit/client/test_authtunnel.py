"""The auth tunnel's pieces, with real TLS and a real in-process SSH server (no cluster)."""

from __future__ import annotations

import asyncio
import datetime
import glob
import os
import ssl
import tempfile
from typing import Any

import asyncssh
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from teleport.client.authtunnel import AuthTunnel, auth_subsystem, user_ssl_context
from teleport.client.keystore import Profile
from teleport.client.ssh import Credentials


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, pub: Any, issuer: str, ca_key: Any, ca: bool = False,
          dns: str | None = None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(pub).serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(minutes=1))
         .not_valid_after(now + datetime.timedelta(hours=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if dns:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
    return b.sign(ca_key, hashes.SHA256())


def _pem(c: x509.Certificate) -> bytes:
    return c.public_bytes(serialization.Encoding.PEM)


def test_user_ssl_context_does_mutual_tls(tmp_path: Any) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test-ca", ca_key.public_key(), "test-ca", ca_key, ca=True)
    # the user's key as tsh stores it: OpenSSH format, which ssl cannot load itself
    user_key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = str(tmp_path / "alice")
    user_key.write_private_key(key_path)
    pub = serialization.load_pem_public_key(user_key.export_public_key("pkcs8-pem"))
    assert isinstance(pub, ed25519.Ed25519PublicKey)
    (tmp_path / "alice-x509.pem").write_bytes(_pem(_cert("alice", pub, "test-ca", ca_key)))
    (tmp_path / "alice-tlsca.pem").write_bytes(_pem(ca))
    srv_key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "srv.pem").write_bytes(
        _pem(_cert("auth", srv_key.public_key(), "test-ca", ca_key, dns="teleport.cluster.local")))
    (tmp_path / "srv.key").write_bytes(srv_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    creds = Credentials(Profile("127.0.0.1:3080", "127.0.0.1:3023", "alice", "c1"), "127.0.0.1:3023", user_key,
                        None, [], [], key_path, key_path + "-cert.pub", "", 0)  # type: ignore[arg-type]

    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "tsh-tls-*")))
    ctx = user_ssl_context(creds)
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "tsh-tls-*"))) == before

    async def handshake() -> str:
        sctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "alice-tlsca.pem"))
        sctx.load_cert_chain(str(tmp_path / "srv.pem"), str(tmp_path / "srv.key"))
        sctx.verify_mode = ssl.CERT_REQUIRED
        seen: list[str] = []

        async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            peer = w.get_extra_info("peercert")
            seen.append(dict(x[0] for x in peer["subject"])["commonName"])
            w.write(b"ok")
            await w.drain()
            w.close()

        server = await asyncio.start_server(on_conn, "127.0.0.1", 0, ssl=sctx)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                             server_hostname="teleport.cluster.local")
        assert await r.read() == b"ok"
        w.close()
        server.close()
        await server.wait_closed()
        return seen[0]

    assert asyncio.run(handshake()) == "alice"


class _Server(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False  # test server: no authentication


async def test_tunnel_relays_each_connection_over_the_subsystem() -> None:
    subsystems: list[str] = []

    async def echo(process: asyncssh.SSHServerProcess[bytes]) -> None:
        # what the proxy would relay to auth; here an upper-casing echo until EOF
        subsystems.append(process.subsystem or "")
        while data := await process.stdin.read(65536):
            process.stdout.write(data.upper())
        process.exit(0)

    host_key = asyncssh.generate_private_key("ssh-ed25519")
    server = await asyncssh.create_server(_Server, "127.0.0.1", 0, server_host_keys=[host_key],
                                          process_factory=echo, encoding=None)
    port = server.sockets[0].getsockname()[1]
    conn = await asyncssh.connect("127.0.0.1", port, known_hosts=None, username="u",
                                  client_keys=None, agent_path=None, config=None)
    tunnel = AuthTunnel(conn, "c1")
    try:
        lport = await tunnel.start()

        async def one(msg: bytes) -> bytes:
            r, w = await asyncio.open_connection("127.0.0.1", lport)
            w.write(msg)
            await w.drain()
            w.write_eof()
            out = await r.read()
            w.close()
            return out

        outs = await asyncio.gather(*(one(f"hello {i} ".encode() * 5000) for i in range(5)))
        assert outs == [f"HELLO {i} ".encode() * 5000 for i in range(5)]
        assert subsystems == [auth_subsystem("c1")] * 5 == ["proxy:@c1"] * 5
    finally:
        await tunnel.close()
        conn.close()
        server.close()
        await server.wait_closed()
