"""etcd-specific behaviour: key layout, peer failover, leases, TLS client certificates."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from teleport.backend import EventType, Item, open_backend
from teleport.backend.etcd import EtcdBackend, decode_value, encode_value
from teleport.errors import ConfigError, ConnectionProblem

from . import conftest
from .conftest import EtcdServer, _free_port


def _dead_url() -> str:
    return f"http://127.0.0.1:{_free_port()}"


def test_envelope_roundtrip() -> None:
    assert decode_value(encode_value(Item("/k", b"\x01abc", expires=12.5))) == (b"\x01abc", 12.5)
    assert decode_value(encode_value(Item("/k", b""))) == (b"", None)
    assert decode_value(b"written by etcdctl") == (b"written by etcdctl", None)


async def test_keys_are_stored_under_the_prefix(etcd_server: EtcdServer, prefix: str) -> None:
    name = f"tp-{uuid.uuid4().hex[:6]}"
    b = EtcdBackend([etcd_server.url], prefix=name)
    raw = EtcdBackend([etcd_server.url], prefix="")
    try:
        await b.put(Item(prefix + "k", b"v"))
        stored = await raw.get(f"/{name}{prefix}k")
        assert decode_value(stored.value)[0] == b"v" or stored.value == b"v"
        # Another prefix is another namespace.
        other = EtcdBackend([etcd_server.url], prefix=name + "-other")
        try:
            assert await other.get_range(prefix) == []
        finally:
            await other.close()
    finally:
        await b.close()
        await raw.close()


async def test_peers_are_tried_in_order(etcd_server: EtcdServer, prefix: str) -> None:
    b = EtcdBackend([_dead_url(), etcd_server.url])
    try:
        await b.put(Item(prefix + "k", b"v"))
        assert (await b.get(prefix + "k")).value == b"v"
        async with b.watch([prefix]) as w:
            await b.put(Item(prefix + "k2", b"w"))
            ev = await asyncio.wait_for(anext(aiter(w)), 10)
            assert (ev.type, ev.item.key) == (EventType.PUT, prefix + "k2")
    finally:
        await b.close()


async def test_no_reachable_peer_is_a_connection_problem() -> None:
    dead1, dead2 = _dead_url(), _dead_url()
    b = EtcdBackend([dead1, dead2])
    try:
        with pytest.raises(ConnectionProblem, match="cannot reach any etcd peer") as err:
            await b.connect()
        assert dead1 in str(err.value) and dead2 in str(err.value)
    finally:
        await b.close()


async def test_writes_expiring_in_the_same_second_share_a_lease(
    etcd_server: EtcdServer, prefix: str
) -> None:
    b = EtcdBackend([etcd_server.url])
    try:
        expires = float(int(time.time()) + 30) + 0.25
        for i in range(5):
            await b.put(Item(prefix + f"k{i}", b"v", expires=expires + i * 0.1))
        assert len(b._leases) == 1
        assert len(await b.get_range(prefix)) == 5
    finally:
        await b.close()


async def test_open_backend_etcd(etcd_server: EtcdServer, prefix: str) -> None:
    b = await open_backend(
        {"type": "etcd", "peers": [etcd_server.url], "prefix": "teleport-cfg"}, "/nonexistent"
    )
    try:
        assert isinstance(b, EtcdBackend) and b.prefix == "/teleport-cfg"
        await b.put(Item(prefix + "k", b"v"))
        assert (await b.get(prefix + "k")).value == b"v"
    finally:
        await b.close()


async def test_open_backend_etcd_bad_config() -> None:
    with pytest.raises(ConfigError, match="peers"):
        await open_backend({"type": "etcd"}, "/tmp")
    with pytest.raises(ConfigError, match="cannot load TLS files"):
        await open_backend(
            {
                "type": "etcd",
                "peers": ["https://127.0.0.1:1"],
                "tls_cert_file": "/nonexistent/cert.pem",
                "tls_key_file": "/nonexistent/key.pem",
            },
            "/tmp",
        )
    with pytest.raises(ConfigError, match="together"):
        EtcdBackend(["https://127.0.0.1:1"], tls_cert_file="/x.pem")


async def test_tls_with_client_certificate(etcd_tls_server: EtcdServer, prefix: str) -> None:
    tls = etcd_tls_server.tls
    assert tls is not None
    b = await open_backend(
        {
            "type": "etcd",
            "peers": [etcd_tls_server.url],
            "tls_cert_file": tls.client_cert,
            "tls_key_file": tls.client_key,
            "tls_ca_file": tls.ca,
        },
        "/nonexistent",
    )
    try:
        async with b.watch([prefix]) as w:
            await b.put(Item(prefix + "k", b"secret"))
            assert (await b.get(prefix + "k")).value == b"secret"
            ev = await asyncio.wait_for(anext(aiter(w)), 10)
            assert (ev.type, ev.item.value) == (EventType.PUT, b"secret")
    finally:
        await b.close()


async def test_tls_without_client_certificate_fails_clearly(etcd_tls_server: EtcdServer) -> None:
    tls = etcd_tls_server.tls
    assert tls is not None
    with pytest.raises(ConnectionProblem, match="tls_cert_file and tls_key_file") as err:
        await open_backend(
            {"type": "etcd", "peers": [etcd_tls_server.url], "tls_ca_file": tls.ca},
            "/nonexistent",
        )
    assert etcd_tls_server.url in str(err.value)


async def test_tls_with_wrong_ca_fails(etcd_tls_server: EtcdServer, tmp_path: object) -> None:
    # The system trust store does not know the test CA: the server is not trusted.
    tls = etcd_tls_server.tls
    assert tls is not None
    b = EtcdBackend(
        [etcd_tls_server.url], tls_cert_file=tls.client_cert, tls_key_file=tls.client_key
    )
    try:
        with pytest.raises(ConnectionProblem, match="certificate verify failed|tls_ca_file"):
            await b.connect()
    finally:
        await b.close()


def test_missing_etcd_binary_fails_unless_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "ETCD_BINARY", "/nonexistent/etcd")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("TELEPORT_SKIP_ETCD", raising=False)
    with pytest.raises(pytest.fail.Exception, match="install etcd-server"):
        conftest._require_etcd()
    monkeypatch.setenv("TELEPORT_SKIP_ETCD", "1")
    with pytest.raises(pytest.skip.Exception):
        conftest._require_etcd()
