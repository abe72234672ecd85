"""Web sessions in the auth service on a real SQLite backend: idle timeout, absolute expiry,
logout, malformed ids, the CSRF check, and terminal certificates that never outlive the session."""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncssh
import pytest

from teleport import defaults
from teleport.auth import websession
from teleport.auth.server import AuthServer
from teleport.auth.store import ClusterStore
from teleport.auth.websession import WebSessions
from teleport.backend.sqlite import SQLiteBackend
from teleport.ca.sshcert import parse_cert
from teleport.errors import AccessDenied
from teleport.types.resources import Metadata, User

PASSWORD = "right-pass-1"


@pytest.fixture
async def auth() -> AsyncIterator[AuthServer]:
    with tempfile.TemporaryDirectory() as d:
        backend = await SQLiteBackend.open(os.path.join(d, "state.db"))
        try:
            server = await AuthServer.init(ClusterStore(backend), "unit", second_factor="off")
            user = User(metadata=Metadata(name="alice"), spec={"roles": ["access"],
                                                                 "traits": {"logins": ["alice"]}})
            await server.put_user(user, replace=False)
            await server.set_password("alice", PASSWORD)
            yield server
        finally:
            server.hasher.close()
            await backend.close()


class Clock:
    def __init__(self, monkeypatch: Any) -> None:
        self.now = time.time()
        monkeypatch.setattr(websession.time, "time", lambda: self.now)


async def test_session_lives_while_used_and_ends_when_idle(auth: AuthServer, monkeypatch: Any) -> None:
    clock = Clock(monkeypatch)
    ws = WebSessions(auth)
    sid, session = await ws.create("alice", PASSWORD, "", "10.0.0.1:5000")
    assert session.user == "alice" and len(sid) == 43
    # the backend holds the digest of the id, never the id
    keys = [i.key for i in await auth.store.backend.get_range("/websessions/")]
    assert keys == [f"/websessions/{hashlib.sha256(sid.encode()).hexdigest()}"]
    for _ in range(3):  # each use moves the idle deadline
        clock.now += defaults.WEB_SESSION_IDLE_TIMEOUT - 60
        assert (await ws.get(sid)).user == "alice"
    clock.now += defaults.WEB_SESSION_IDLE_TIMEOUT + 1
    with pytest.raises(AccessDenied, match="log in again"):
        await ws.get(sid)


async def test_absolute_expiry_whatever_the_use(auth: AuthServer, monkeypatch: Any) -> None:
    clock = Clock(monkeypatch)
    ws = WebSessions(auth)
    sid, _ = await ws.create("alice", PASSWORD, "", "10.0.0.1:5000")
    start = clock.now
    while clock.now + defaults.WEB_SESSION_IDLE_TIMEOUT / 2 < start + defaults.WEB_SESSION_TTL:
        clock.now += defaults.WEB_SESSION_IDLE_TIMEOUT / 2
        await ws.get(sid)
    clock.now = start + defaults.WEB_SESSION_TTL
    with pytest.raises(AccessDenied):
        await ws.get(sid)


async def test_logout_bad_ids_and_csrf(auth: AuthServer) -> None:
    ws = WebSessions(auth)
    sid, session = await ws.create("alice", PASSWORD, "", "10.0.0.1:5000")
    with pytest.raises(AccessDenied, match="CSRF"):
        await ws.check_csrf(sid, "")
    with pytest.raises(AccessDenied, match="CSRF"):
        await ws.check_csrf(sid, session.csrf_token[:-1] + "x")
    assert (await ws.check_csrf(sid, session.csrf_token)).user == "alice"
    for bad in ("", "x", "../" * 20, "A" * 43, sid + "A", sid[:-1] + "/"):
        with pytest.raises(AccessDenied):
            await ws.get(bad)
    await ws.delete(sid)
    with pytest.raises(AccessDenied):
        await ws.get(sid)
    with pytest.raises(AccessDenied):
        await ws.create("alice", "wrong-pass", "", "10.0.0.1:5000")


async def test_terminal_certificate_never_outlives_the_session(auth: AuthServer, monkeypatch: Any) -> None:
    clock = Clock(monkeypatch)
    ws = WebSessions(auth)
    sid, _ = await ws.create("alice", PASSWORD, "", "10.0.0.1:5000")
    key = asyncssh.generate_private_key("ssh-ed25519")
    pub = key.export_public_key("openssh").decode()
    signed = await ws.sign(sid, pub)
    cert = parse_cert(signed["cert"])
    assert cert.key_id == "alice" and signed["logins"] == ["alice"] and signed["host_ca_keys"]
    assert cert.valid_before - cert.valid_after <= defaults.WEB_TERMINAL_CERT_TTL + 60
    # near the session's absolute end (kept alive by use), the certificate ends with it
    start = clock.now
    end = start + defaults.WEB_SESSION_TTL
    while clock.now + defaults.WEB_SESSION_IDLE_TIMEOUT / 2 < end - 90:
        clock.now += defaults.WEB_SESSION_IDLE_TIMEOUT / 2
        await ws.get(sid)
    clock.now = end - 90
    late = parse_cert((await ws.sign(sid, pub))["cert"])
    # (auth signs with the real clock: compare lifetimes, 90 s left instead of the usual 120 s)
    assert (late.valid_before - late.valid_after) == (cert.valid_before - cert.valid_after) - 30
    # less than a minute left: no certificate (it could not be shorter than one minute)
    clock.now = end - 30
    with pytest.raises(AccessDenied, match="less than a minute"):
        await ws.sign(sid, pub)
