"""Nodes and proxies cannot forge the audit trail. A real auth+proxy+node process and a second
node joined from its own process; each test calls the auth API over mutual TLS with the real
identity files of a service (its data_dir ``keys/``), as a compromised host would:

- an event is bound to the identity that emits it: its server_id is the caller's host id whatever
  the body says, and its type is one the caller's service emits (a node may not log user.login, a
  proxy only logs refused certificates, an admin logs nothing);
- a recording is written once, only by the node that owns the session, and within
  ``auth_service.max_recording_size`` (nothing left on disk when refused);
- a node reports and ends only its own active sessions;
- bodies that are not JSON answer 400 with a message.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import ssl
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from teleport.auth.client import AuthClient, client_ssl_context
from teleport.defaults import AUTH_SERVER_NAME
from teleport.errors import AccessDenied, AlreadyExists, BadParameter, NotFound
from teleport.events.schema import make_event
from tests.helpers import Cluster, destroy, new_cluster, wait_port
from tests.integration.test_join import NodeProc

pytestmark = pytest.mark.integration

MAX_RECORDING = 64 * 1024


def service_identity(data_dir: str, role: str) -> tuple[str, str, str, str]:
    """(host id, cert file, key file, CA PEM) of a joined service's identity in its data_dir."""
    keys = os.path.join(data_dir, "keys")
    with open(os.path.join(keys, f"{role}.json")) as f:
        ident = json.load(f)
    cert, key = os.path.join(keys, f"{role}-cert.pem"), os.path.join(keys, f"{role}-key.pem")
    return ident["host_id"], cert, key, ident["tls_ca"]


def service_client(c: Cluster, data_dir: str, role: str) -> tuple[str, AuthClient]:
    """(host id, AuthClient) speaking to c's auth server as the service identity in data_dir."""
    host_id, cert, key, ca = service_identity(data_dir, role)
    return host_id, AuthClient([c.auth_addr], client_ssl_context(ca.encode(), cert, key))


def admin_client(c: Cluster) -> AuthClient:
    keys = os.path.join(c.data_dir, "keys")
    with open(os.path.join(keys, "tls-ca.pem"), "rb") as f:
        ca = f.read()
    return AuthClient([c.auth_addr], client_ssl_context(
        ca, os.path.join(keys, "admin-cert.pem"), os.path.join(keys, "admin-key.pem")))


def run(fn: Callable[..., Awaitable[Any]], *clients: AuthClient) -> Any:
    """Run fn(*clients) on a fresh loop and close the clients after."""
    async def go() -> Any:
        try:
            return await fn(*clients)
        finally:
            for cl in clients:
                await cl.close()
    return asyncio.run(go())


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[tuple[Cluster, NodeProc]]:
    """auth+proxy+node in one process (max_recording_size 64 KiB), a second node in another."""
    c = new_cluster(roles="auth,proxy,node", auth_extra=f"  max_recording_size: {MAX_RECORDING}\n")
    other: NodeProc | None = None
    try:
        c.start()
        wait_port(c.ports["node"], 20, c.proc)
        other = NodeProc(c, "othernode")
        other.start(f"--token={c.static_token}")
        other.wait_listening()
        yield c, other
    finally:
        if other is not None:
            other.destroy()
        destroy(c)


def node_a(c: Cluster) -> tuple[str, AuthClient]:
    return service_client(c, c.data_dir, "node")


def node_b(other: NodeProc) -> tuple[str, AuthClient]:
    return service_client(other.cluster, os.path.join(other.root, "data"), "node")


def sessions_dir(c: Cluster) -> str:
    return os.path.join(c.data_dir, "log", "sessions", "default")


def search(c: Cluster, **query: Any) -> list[dict[str, Any]]:
    return list(run(lambda a: a.search_events(**query), admin_client(c)))


def session_start(sid: str, **fields: Any) -> dict[str, Any]:
    return make_event("session.start", sid=sid, user="alice", login="root", size="80:24", **fields)


def small_recording(path: str) -> None:
    with gzip.open(path, "wb") as f:
        f.write(b'{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "hi\\r\\n"]\n')


# -- events ---------------------------------------------------------------------------------

def test_node_may_not_log_user_login(two_nodes: tuple[Cluster, NodeProc]) -> None:
    c, _ = two_nodes
    _, node = node_a(c)
    fake = make_event("user.login", user="alice", method="local", success=True,
                      addr_remote="203.0.113.9:4444")
    with pytest.raises(AccessDenied, match="user.login"):
        run(lambda a: a.emit_events([fake]), node)
    assert not [e for e in search(c, type="user.login") if e["uid"] == fake["uid"]]


def test_a_refused_batch_stores_nothing(two_nodes: tuple[Cluster, NodeProc]) -> None:
    c, _ = two_nodes
    _, node = node_a(c)
    ok = make_event("exec", user="alice", login="root", command="true", exitCode=0)
    fake = make_event("user.login", user="mallory", method="local", success=True)
    with pytest.raises(AccessDenied):
        run(lambda a: a.emit_events([ok, fake]), node)
    assert not [e for e in search(c, type="exec") if e["uid"] == ok["uid"]]


def test_node_event_carries_its_own_server_id(two_nodes: tuple[Cluster, NodeProc]) -> None:
    c, other = two_nodes
    host_a, node = node_a(c)
    host_b = service_identity(os.path.join(other.root, "data"), "node")[0]
    ev = make_event("exec", user="alice", login="root", command="id", exitCode=0,
                    server_id=host_b, server_hostname="othernode")  # claims to be the other node
    got = run(lambda a: a.emit_events([ev]), node)
    assert got["stored"] == 1
    stored = [e for e in search(c, type="exec") if e["uid"] == ev["uid"]]
    assert [e["server_id"] for e in stored] == [host_a]
    assert [e["server_hostname"] for e in stored] == ["testnode"]  # its registered name
    # without any server_id it is filled in the same way
    ev2 = make_event("port", user="alice", addr="10.0.0.1:22")
    run(lambda a: a.emit_events([ev2]), node_a(c)[1])
    assert [e["server_id"] for e in search(c, type="port") if e["uid"] == ev2["uid"]] == [host_a]


def test_proxy_logs_only_refused_certificates(two_nodes: tuple[Cluster, NodeProc]) -> None:
    c, _ = two_nodes
    host_p, proxy = service_client(c, c.data_dir, "proxy")
    for etype, fields in (("exec", {"command": "id"}), ("session.start", {"sid": str(uuid.uuid4()),
                          "login": "root"}), ("user.login", {"method": "local", "success": True})):
        ev = make_event(etype, user="alice", **fields)
        with pytest.raises(AccessDenied, match=etype):
            run(lambda a, ev=ev: a.emit_events([ev]), service_client(c, c.data_dir, "proxy")[1])
    refused = make_event("auth", user="alice", login="root", success=False, error="bad cert",
                         server_id="not-the-proxy")
    run(lambda a: a.emit_events([refused]), proxy)
    assert [e["server_id"] for e in search(c, type="auth") if e["uid"] == refused["uid"]] == [host_p]


def test_admin_identity_logs_no_events(two_nodes: tuple[Cluster, NodeProc]) -> None:
    c, _ = two_nodes
    ev = make_event("session.end", sid=str(uuid.uuid4()), user="alice")
    with pytest.raises(AccessDenied, match="admin identity may not emit audit events"):
        run(lambda a: a.emit_events([ev]), admin_client(c))


# -- recordings -----------------------------------------------------------------------------

def test_recording_is_written_once_by_its_node(two_nodes: tuple[Cluster, NodeProc],
                                              tmp_path: Any) -> None:
    c, other = two_nodes
    sid = str(uuid.uuid4())
    rec = str(tmp_path / "rec.cast.gz")
    small_recording(rec)
    # nobody may upload a session auth has never heard of
    with pytest.raises(NotFound, match="unknown"):
        run(lambda a: a.upload_recording(sid, rec), node_a(c)[1])
    run(lambda a: a.emit_events([session_start(sid)]), node_a(c)[1])
    # not the other node, not an admin
    with pytest.raises(AccessDenied, match="another node"):
        run(lambda a: a.upload_recording(sid, rec), node_b(other)[1])
    with pytest.raises(AccessDenied):
        run(lambda a: a.upload_recording(sid, rec), admin_client(c))
    assert not os.path.exists(os.path.join(sessions_dir(c), f"{sid}.cast.gz"))
    # the owner, once
    run(lambda a: a.upload_recording(sid, rec), node_a(c)[1])
    with open(os.path.join(sessions_dir(c), f"{sid}.cast.gz"), "rb") as f:
        first = f.read()
    forged = str(tmp_path / "forged.cast.gz")
    with gzip.open(forged, "wb") as f:
        f.write(b'{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "nothing happened"]\n')
    with pytest.raises(AlreadyExists):
        run(lambda a: a.upload_recording(sid, forged), node_a(c)[1])
    with pytest.raises((AccessDenied, AlreadyExists)):
        run(lambda a: a.upload_recording(sid, forged), node_b(other)[1])
    with open(os.path.join(sessions_dir(c), f"{sid}.cast.gz"), "rb") as f:
        assert f.read() == first


def test_a_forged_session_start_does_not_steal_a_session(two_nodes: tuple[Cluster, NodeProc],
                                                        tmp_path: Any) -> None:
    c, other = two_nodes
    sid = str(uuid.uuid4())
    run(lambda a: a.emit_events([session_start(sid)]), node_a(c)[1])
    run(lambda a: a.emit_events([session_start(sid)]), node_b(other)[1])  # logged as B's claim
    rec = str(tmp_path / "rec.cast.gz")
    small_recording(rec)
    with pytest.raises(AccessDenied):
        run(lambda a: a.upload_recording(sid, rec), node_b(other)[1])
    run(lambda a: a.upload_recording(sid, rec), node_a(c)[1])


def leftovers(c: Cluster, sid: str) -> list[str]:
    return [n for n in os.listdir(sessions_dir(c)) if sid in n]


def test_oversize_recording_is_refused_and_nothing_is_left(two_nodes: tuple[Cluster, NodeProc],
                                                          tmp_path: Any) -> None:
    c, _ = two_nodes
    sid = str(uuid.uuid4())
    run(lambda a: a.emit_events([session_start(sid)]), node_a(c)[1])
    big = str(tmp_path / "big.cast.gz")
    with open(big, "wb") as f:
        f.write(os.urandom(MAX_RECORDING + 1))
    with pytest.raises(BadParameter, match="max_recording_size"):
        run(lambda a: a.upload_recording(sid, big), node_a(c)[1])
    assert leftovers(c, sid) == []

    # Without a Content-Length (chunked), the bound is enforced while streaming.
    _, cert, key, ca = service_identity(c.data_dir, "node")

    async def chunked() -> tuple[int, dict[str, Any]]:
        ctx = ssl.create_default_context(cadata=ca)
        ctx.load_cert_chain(cert, key)

        async def body() -> AsyncIterator[bytes]:
            for _ in range(4):
                yield os.urandom(MAX_RECORDING // 2)

        async with aiohttp.ClientSession() as s, s.put(
            f"https://{c.auth_addr}/v1/sessions/{sid}/recording", data=body(), ssl=ctx,
            server_hostname=AUTH_SERVER_NAME,
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    try:
        status, data = asyncio.run(chunked())
    except aiohttp.ClientError:
        status, data = 400, {}  # auth answered and closed while we were still sending
    assert status == 400, data
    assert leftovers(c, sid) == []
    # the limit is per recording: one that fits still goes in
    ok = str(tmp_path / "ok.cast.gz")
    small_recording(ok)
    run(lambda a: a.upload_recording(sid, ok), node_a(c)[1])
    assert leftovers(c, sid) == [f"{sid}.cast.gz"]


# -- active sessions --------------------------------------------------------------------------

def test_node_touches_only_its_own_active_sessions(two_nodes: tuple[Cluster, NodeProc]) -> None:
    c, other = two_nodes
    host_a = service_identity(c.data_dir, "node")[0]
    host_b = service_identity(os.path.join(other.root, "data"), "node")[0]
    sid = str(uuid.uuid4())
    record = {"sid": sid, "namespace": "default", "user": "alice", "login": "root",
              "server_id": host_a, "parties": []}
    run(lambda a: a.upsert_session(record), node_a(c)[1])
    with pytest.raises(AccessDenied):
        run(lambda a: a.upsert_session({**record, "server_id": host_b, "user": "mallory"}),
            node_b(other)[1])
    with pytest.raises(AccessDenied):
        run(lambda a: a.upsert_session(record), node_b(other)[1])  # server_id not its own
    with pytest.raises(AccessDenied):
        run(lambda a: a.delete_session(sid), node_b(other)[1])
    got = run(lambda a: a.get_session(sid), admin_client(c))
    assert got["server_id"] == host_a and got["user"] == "alice"
    run(lambda a: a.delete_session(sid), node_a(c)[1])
    with pytest.raises(NotFound):
        run(lambda a: a.get_session(sid), admin_client(c))


@pytest.mark.parametrize("path", ["/v1/events", "/v1/sessions"])
def test_non_json_bodies_answer_400(two_nodes: tuple[Cluster, NodeProc], path: str) -> None:
    c, _ = two_nodes

    async def post(a: AuthClient, body: bytes) -> tuple[int, Any]:
        session = await a._get_session()
        async with session.post(f"https://{c.auth_addr}{path}", data=body,
                                server_hostname=AUTH_SERVER_NAME) as resp:
            return resp.status, await resp.json(content_type=None)

    for body in (b"this is not json", b"[1, 2]", b"\xff\xfe"):
        status, data = run(lambda a, body=body: post(a, body), node_a(c)[1])
        assert status == 400, (body, status, data)
        assert data["error"] == "BadParameter" and "JSON" in data["message"]
