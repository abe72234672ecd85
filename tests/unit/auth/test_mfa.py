"""Second factor rules and security key bookkeeping in the auth service, on a real SQLite
backend: which factor each second_factor mode asks of whom, the relying party (a host name,
never an IP), single-use and expiring challenges. (The browser side, with real key answers, is
tests/e2e/test_web_account.py.)"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

import pyotp
import pytest

from teleport import defaults
from teleport.auth import mfa
from teleport.auth import webauthn as wa
from teleport.auth.server import AuthServer
from teleport.auth.store import ClusterStore
from teleport.backend.sqlite import SQLiteBackend
from teleport.errors import AccessDenied, BadParameter
from teleport.types.resources import Metadata, ProxyServer, User

PASSWORD = "right-pass-1"


@pytest.fixture
async def auth() -> AsyncIterator[AuthServer]:
    with tempfile.TemporaryDirectory() as d:
        backend = await SQLiteBackend.open(os.path.join(d, "state.db"))
        try:
            server = await AuthServer.init(ClusterStore(backend), "unit", second_factor="on")
            for name in ("alice", "bob"):
                user = User(metadata=Metadata(name=name),
                            spec={"roles": ["access"], "traits": {"logins": [name]}})
                await server.put_user(user, replace=False)
                await server.set_password(name, PASSWORD)
            await server.store.put_user_secret("alice", "totp", {"secret": "A" * 32, "last": 0})
            yield server
        finally:
            server.hasher.close()
            await backend.close()


async def _proxy(auth: AuthServer, public_addr: str) -> None:
    proxy = ProxyServer.from_dict({"kind": "proxy", "version": "v2", "metadata": {"name": "p1"},
                                   "spec": {"hostname": "p", "public_addr": public_addr}})
    await auth.store.upsert_node(proxy, 60, kind="proxies")  # type: ignore[arg-type]


@pytest.mark.parametrize(("mode", "alice_code", "bob_ok"), [
    ("off", False, True), ("otp", True, False), ("on", True, False), ("optional", True, True),
])
async def test_who_needs_which_factor(auth: AuthServer, mode: str, alice_code: bool, bob_ok: bool) -> None:
    """alice has a TOTP secret, bob has no second factor at all."""
    auth.second_factor = mode
    code = pyotp.TOTP("A" * 32).now()
    if alice_code:
        with pytest.raises(AccessDenied):
            await auth.check_credentials("alice", PASSWORD, "", "10.0.0.1:1")
        assert (await auth.check_credentials("alice", PASSWORD, code, "10.0.0.1:1")).name == "alice"
    else:
        await auth.check_credentials("alice", PASSWORD, "", "10.0.0.1:1")
    if bob_ok:
        await auth.check_credentials("bob", PASSWORD, "", "10.0.0.2:1")
    else:
        with pytest.raises(AccessDenied):
            await auth.check_credentials("bob", PASSWORD, "", "10.0.0.2:1")


async def test_keys_only_mode_refuses_codes_and_key_logins_need_keys(auth: AuthServer) -> None:
    auth.second_factor = "webauthn"
    with pytest.raises(AccessDenied):
        await auth.check_credentials("alice", PASSWORD, pyotp.TOTP("A" * 32).now(), "10.0.0.1:1")
    await _proxy(auth, "proxy.example.com:3080")
    with pytest.raises(AccessDenied, match="no security key"):
        await auth.begin_key_login("alice", PASSWORD, "10.0.0.1:1")
    with pytest.raises(AccessDenied, match=defaults.LOGIN_FAILED_MESSAGE):
        await auth.begin_key_login("alice", "wrong-password", "10.0.0.1:1")
    auth.second_factor = "otp"
    with pytest.raises(BadParameter, match="security keys need"):
        await auth.begin_registration("alice")


async def test_relying_party(auth: AuthServer) -> None:
    with pytest.raises(BadParameter, match="no proxy has registered"):
        await auth.relying_party()
    await _proxy(auth, "10.1.2.3:3080")
    with pytest.raises(BadParameter, match="browsers refuse an IP address"):
        await auth.relying_party()
    auth.webauthn_settings = wa.WebAuthnSettings("example.com", ["https://login.example.com"])
    assert await auth.relying_party() == ("example.com", ["https://login.example.com"])
    await _proxy(auth, "teleport.example.com:443")
    assert await auth.relying_party() == (
        "example.com", ["https://login.example.com", "https://teleport.example.com"])


async def test_challenges_are_single_use_and_expire(auth: AuthServer, monkeypatch: Any) -> None:
    await _proxy(auth, "localhost:3080")
    begin = await auth.begin_registration("alice")
    assert begin["options"]["rp"] == {"name": "unit", "id": "localhost"}
    cid = begin["challenge_id"]
    # for this user and purpose only
    with pytest.raises(AccessDenied, match="expired or was already used"):
        await auth._take_challenge(cid, "login", "alice")
    with pytest.raises(AccessDenied, match="expired or was already used"):  # and now it is gone
        await auth._take_challenge(cid, "register", "alice")
    cid = (await auth.begin_registration("alice"))["challenge_id"]
    assert await auth._take_challenge(cid, "register", "alice")
    with pytest.raises(AccessDenied):
        await auth._take_challenge(cid, "register", "alice")
    cid = (await auth.begin_registration("bob"))["challenge_id"]
    later = time.time() + defaults.WEBAUTHN_CHALLENGE_TTL + 5
    monkeypatch.setattr(mfa.time, "time", lambda: later)
    with pytest.raises(AccessDenied):
        await auth._take_challenge(cid, "register", "bob")
    for junk in ("", "x", "A" * 500):
        with pytest.raises(AccessDenied):
            await auth._take_challenge(junk, "register", "bob")


def test_relying_party_names() -> None:
    assert wa.check_rp_id("Teleport.Example.COM", "x") == "teleport.example.com"
    for ip in ("127.0.0.1", "::1", "[::1]"):
        with pytest.raises(BadParameter, match="IP address"):
            wa.check_rp_id(ip, "x")
    assert wa.rp_from_u2f("https://localhost:3080") == "localhost"
    assert wa.origin_of("p.example.com:443") == "https://p.example.com"
    assert wa.origin_of("p.example.com:3080") == "https://p.example.com:3080"
    assert wa.host_of("p.example.com:3080") == "p.example.com"
