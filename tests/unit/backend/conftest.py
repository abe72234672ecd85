"""Fixtures for the backend tests: real etcd servers (plain and mutual-TLS) and backends."""

from __future__ import annotations

import ctypes
import datetime
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from teleport.backend.aws import AWSSettings
from teleport.backend.base import Backend
from teleport.backend.dynamodb import DynamoDBBackend
from teleport.backend.etcd import EtcdBackend
from teleport.backend.sqlite import SQLiteBackend
from tests.awsmock import ACCESS_KEY, REGION, SECRET_KEY, MotoServer, moto_server

ETCD_BINARY = os.environ.get("TELEPORT_ETCD_BINARY", "/usr/bin/etcd")


def _require_etcd() -> str:
    binary = ETCD_BINARY if os.path.exists(ETCD_BINARY) else shutil.which("etcd")
    if binary:
        return binary
    if os.environ.get("TELEPORT_SKIP_ETCD") == "1":
        pytest.skip("etcd binary missing and TELEPORT_SKIP_ETCD=1")
    pytest.fail(
        f"etcd binary not found at {ETCD_BINARY} or on PATH: install etcd-server "
        "(apt-get install etcd-server, etcd 3.4+) or set TELEPORT_SKIP_ETCD=1 to skip etcd tests"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TLSFiles:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def make_tls_files(directory: Path) -> TLSFiles:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test etcd CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
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
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        cn: str, usage: list[x509.ObjectIdentifier]
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        )
        return builder.sign(ca_key, hashes.SHA256()), key

    # etcd's JSON gateway dials etcd's own gRPC port presenting the *server* certificate, so
    # with --client-cert-auth that certificate must also be valid for client authentication.
    server_cert, server_key = leaf(
        "etcd-server", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    client_cert, client_key = leaf("teleport", [ExtendedKeyUsageOID.CLIENT_AUTH])
    files = TLSFiles(
        ca=str(directory / "ca.pem"),
        server_cert=str(directory / "server.pem"),
        server_key=str(directory / "server-key.pem"),
        client_cert=str(directory / "client.pem"),
        client_key=str(directory / "client-key.pem"),
    )
    Path(files.ca).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    Path(files.server_cert).write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    Path(files.client_cert).write_bytes(client_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(Path(files.server_key), server_key)
    _write_key(Path(files.client_key), client_key)
    return files


@dataclass
class EtcdServer:
    url: str
    pid: int
    tls: TLSFiles | None


def _start_etcd(directory: Path, tls: TLSFiles | None) -> tuple[subprocess.Popen[bytes], str]:
    binary = _require_etcd()
    client_port, peer_port = _free_port(), _free_port()
    scheme = "https" if tls else "http"
    url = f"{scheme}://127.0.0.1:{client_port}"
    peer = f"http://127.0.0.1:{peer_port}"
    args = [
        binary,
        "--name=test",
        f"--data-dir={directory / 'data'}",
        f"--listen-client-urls={url}",
        f"--advertise-client-urls={url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=test={peer}",
        "--log-level=error",
    ]
    if tls:
        args += [
            "--client-cert-auth",
            f"--trusted-ca-file={tls.ca}",
            f"--cert-file={tls.server_cert}",
            f"--key-file={tls.server_key}",
        ]
    log = open(directory / "etcd.log", "wb")  # noqa: SIM115 - closed below, owned by the child
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    log.close()
    ctx: ssl.SSLContext | None = None
    if tls:
        ctx = ssl.create_default_context(cafile=tls.ca)
        ctx.load_cert_chain(tls.client_cert, tls.client_key)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            out = (directory / "etcd.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"etcd exited with {proc.returncode}: {out}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1, context=ctx) as resp:
                if b'"true"' in resp.read():
                    return proc, url
        except OSError:
            pass
        if time.monotonic() > deadline:
            _stop(proc)
            out = (directory / "etcd.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"etcd did not become healthy within 20 s: {out}")
        time.sleep(0.1)


def _die_with_parent() -> None:
    """In the child: get SIGTERM if pytest dies without running teardown (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop our etcd by its pid: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[EtcdServer]:
    """A plain-HTTP etcd on free loopback ports, for the whole session."""
    _require_etcd()
    directory = Path(tempfile.mkdtemp(prefix="teleport-etcd-"))
    try:
        proc, url = _start_etcd(directory, None)
        try:
            yield EtcdServer(url, proc.pid, None)
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def etcd_tls_server() -> Iterator[EtcdServer]:
    """An etcd that requires client certificates signed by a test CA."""
    _require_etcd()
    directory = Path(tempfile.mkdtemp(prefix="teleport-etcd-tls-"))
    try:
        tls = make_tls_files(directory)
        proc, url = _start_etcd(directory, tls)
        try:
            yield EtcdServer(url, proc.pid, tls)
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses."""
    return f"/test-{uuid.uuid4().hex[:12]}/"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    """A moto server (the local AWS API) for the module's tests."""
    with moto_server() as server:
        yield server


def dynamo_settings(server: MotoServer) -> AWSSettings:
    return AWSSettings(REGION, ACCESS_KEY, SECRET_KEY, server.endpoint)


@pytest.fixture(params=["sqlite", "etcd", "dynamodb"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each conformance test runs once per backend."""
    b: Backend
    if request.param == "sqlite":
        b = await SQLiteBackend.open(str(tmp_path / "backend.sqlite"))
    elif request.param == "dynamodb":
        server: MotoServer = request.getfixturevalue("moto")
        # a table per test: the tests share one server, never state
        b = await DynamoDBBackend.open(
            dynamo_settings(server), f"teleport-{uuid.uuid4().hex[:12]}", poll_interval=0.2
        )
    else:
        etcd_server: EtcdServer = request.getfixturevalue("etcd_server")
        etcd = EtcdBackend([etcd_server.url], prefix=f"teleport-{uuid.uuid4().hex[:8]}")
        await etcd.connect()
        b = etcd
    try:
        yield b
    finally:
        await b.close()


@dataclass
class EtcdMember:
    name: str
    url: str
    proc: subprocess.Popen[bytes]


def start_etcd_cluster(directory: Path, size: int = 3) -> list[EtcdMember]:
    """A real etcd cluster of ``size`` members on free loopback ports (plain HTTP), healthy.

    Stop it with stop_etcd_cluster (by pid); members die with the test process anyway.
    """
    binary = _require_etcd()
    ports = [(_free_port(), _free_port()) for _ in range(size)]
    initial = ",".join(f"m{i}=http://127.0.0.1:{peer}" for i, (_c, peer) in enumerate(ports))
    members: list[EtcdMember] = []
    try:
        for i, (client, peer) in enumerate(ports):
            url = f"http://127.0.0.1:{client}"
            logf = open(directory / f"etcd-m{i}.log", "wb")  # noqa: SIM115 - owned by the child
            proc = subprocess.Popen(
                [binary, f"--name=m{i}", f"--data-dir={directory / f'data-m{i}'}",
                 f"--listen-client-urls={url}", f"--advertise-client-urls={url}",
                 f"--listen-peer-urls=http://127.0.0.1:{peer}",
                 f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                 f"--initial-cluster={initial}", "--initial-cluster-state=new",
                 "--initial-cluster-token=tp-ha-test",
                 # fast elections keep the failover tests short
                 "--heartbeat-interval=50", "--election-timeout=500", "--log-level=error"],
                stdout=logf, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            )
            logf.close()
            members.append(EtcdMember(f"m{i}", url, proc))
        deadline = time.monotonic() + 30
        for m in members:
            while True:
                if m.proc.poll() is not None:
                    out = (directory / f"etcd-{m.name}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"etcd {m.name} exited with {m.proc.returncode}: {out}")
                try:
                    with urllib.request.urlopen(m.url + "/health", timeout=1) as resp:
                        if b'"true"' in resp.read():
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"etcd cluster member {m.name} not healthy within 30 s")
                time.sleep(0.1)
    except BaseException:
        stop_etcd_cluster(members)
        raise
    return members


def stop_etcd_cluster(members: list[EtcdMember]) -> None:
    for m in members:
        _stop(m.proc)


def etcd_leader(members: list[EtcdMember]) -> EtcdMember:
    """The member that is the raft leader now (asked through the maintenance status API)."""
    import json as _json

    for m in members:
        if m.proc.poll() is not None:
            continue
        req = urllib.request.Request(m.url + "/v3/maintenance/status", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=2) as resp:
            status = _json.loads(resp.read())
        if status.get("leader") == status.get("header", {}).get("member_id"):
            return m
    raise RuntimeError("no etcd member says it is the leader")
