"""The signup, key login and account routes of the web API, without a browser, against real
teleport processes: cookies and CSRF, origins, single-use invites and challenges, the password
change, and the messages of a security-key-only cluster (tsh, and a proxy reached by IP)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Iterator

import pytest

from tests.helpers import Cluster, destroy, env_with, new_cluster
from tests.integration.test_web_sessions import COOKIE, Answer, _req

pytestmark = pytest.mark.integration

PASSWORD = "secret-pass-1"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = new_cluster(second_factor="on", web_host="localhost")
    try:
        c.start()
        yield c
    finally:
        destroy(c)


def req(c: Cluster, method: str, path: str, body: object = None, cookie: str | None = None,
        headers: dict[str, str] | None = None) -> Answer:
    return asyncio.run(_req(c, method, path, body, cookie, headers))


def _invite(c: Cluster, user: str) -> str:
    out = c.tctl("users", "add", user, "--roles=access", "--logins=nobody").stdout
    return next(w for w in out.split() if w.startswith("https://")).rsplit("/", 1)[1]


def _signup(c: Cluster, user: str) -> tuple[str, str]:
    """Sign up through the web API; returns (session cookie, CSRF token)."""
    token = _invite(c, user)
    info = req(c, "GET", f"/v1/webapi/users/invites/{token}").body
    c.secrets[user] = info["otp_secret"]
    a = req(c, "POST", "/v1/webapi/signup", {
        "invite_token": token, "password": PASSWORD,
        "otp_code": c.otp.code(user, info["otp_secret"])})
    assert a.status == 200, a.body
    return a.cookies[COOKIE].value, a.body["csrf_token"]


def test_invite_info_for_the_signup_page(cluster: Cluster) -> None:
    token = _invite(cluster, "ann")
    a = req(cluster, "GET", f"/v1/webapi/users/invites/{token}")
    assert a.status == 200, a.body
    assert a.body["user"] == "ann" and a.body["logins"] == ["nobody"]
    assert a.body["second_factor"] == "on" and a.body["min_password_length"] >= 6
    assert a.body["otp_uri"].startswith("otpauth://totp/")
    assert f"secret={a.body['otp_secret']}" in a.body["otp_uri"]
    qr = a.body["otp_qr"]
    assert qr.startswith("data:image/svg+xml;base64,")
    assert b"<svg" in base64.b64decode(qr.split(",", 1)[1])
    # the page itself is the app's page
    page = req(cluster, "GET", f"/web/invite/{token}")
    assert page.status == 200 and "<script type=\"module\"" in page.body
    # unknown tokens: a 404 that says what to do
    bad = req(cluster, "GET", "/v1/webapi/users/invites/" + "0" * 32)
    assert bad.status == 404 and "ask your administrator" in bad.body["message"]


def test_signup_sets_the_cookie_and_works_once(cluster: Cluster) -> None:
    c = cluster
    token = _invite(c, "bob")
    secret = req(c, "GET", f"/v1/webapi/users/invites/{token}").body["otp_secret"]
    # another site's page cannot post it; a form (not JSON) neither
    evil = req(c, "POST", "/v1/webapi/signup", {"invite_token": token, "password": PASSWORD},
               headers={"Origin": "https://evil.example"})
    assert evil.status == 403 and "cross-origin" in evil.body["message"]
    wrong = req(c, "POST", "/v1/webapi/signup", {
        "invite_token": token, "password": PASSWORD, "otp_code": "000000"})
    assert wrong.status == 403, wrong.body
    short = req(c, "POST", "/v1/webapi/signup", {
        "invite_token": token, "password": "abc", "otp_code": c.otp.code("bob", secret)})
    assert short.status == 400 and "too short" in short.body["message"]
    ok = req(c, "POST", "/v1/webapi/signup", {
        "invite_token": token, "password": PASSWORD, "otp_code": c.otp.code("bob", secret)})
    assert ok.status == 200, ok.body
    assert ok.body["user"] == "bob" and "session_id" not in ok.body
    cookie = ok.headers.getall("Set-Cookie")[0]
    assert cookie.startswith(f"{COOKIE}=")
    for attr in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
        assert attr in cookie, cookie
    me = req(c, "GET", "/v1/webapi/sessions", cookie=ok.cookies[COOKIE].value)
    assert me.status == 200 and me.body["user"] == "bob"
    again = req(c, "POST", "/v1/webapi/signup", {
        "invite_token": token, "password": PASSWORD, "otp_code": c.otp.code("bob", secret)})
    assert again.status == 404 and "already used" in again.body["message"]


ACCOUNT_CHANGES = [
    ("PUT", "/v1/webapi/account/password"), ("POST", "/v1/webapi/account/keys/begin"),
    ("POST", "/v1/webapi/account/keys"), ("DELETE", "/v1/webapi/account/keys"),
]


def test_account_needs_the_session_and_csrf_token(cluster: Cluster) -> None:
    c = cluster
    cookie, csrf = _signup(c, "carl")
    for method, path in [("GET", "/v1/webapi/account"), *ACCOUNT_CHANGES]:
        a = req(c, method, path, {})
        assert a.status == 401, (method, path, a.body)
    for method, path in ACCOUNT_CHANGES:
        a = req(c, method, path, {}, cookie=cookie)
        assert a.status == 403 and "CSRF" in a.body["message"], (method, path, a.body)
        a = req(c, method, path, {}, cookie=cookie, headers={"X-CSRF-Token": "x" * 43})
        assert a.status == 403 and "CSRF" in a.body["message"], (method, path, a.body)
    info = req(c, "GET", "/v1/webapi/account", cookie=cookie).body
    assert info["user"] == "carl" and info["cluster_name"] == c.cluster_name
    assert info["totp"] is True and info["devices"] == [] and info["second_factor"] == "on"
    assert info["session_expires"] > 0 and info["idle_timeout"] > 0
    # with the token: a key registration challenge for this host name, no credentials yet
    begin = req(c, "POST", "/v1/webapi/account/keys/begin", {}, cookie=cookie,
                headers={"X-CSRF-Token": csrf})
    assert begin.status == 200, begin.body
    assert begin.body["options"]["rp"]["id"] == "localhost"
    assert begin.body["options"]["user"]["name"] == "carl"
    # a junk answer to it is refused, and uses the challenge up
    junk = {"password": PASSWORD, "webauthn": {"challenge_id": begin.body["challenge_id"],
                                               "credential": {"id": "x"}}}
    for expect in ("registration refused", "expired or was already used"):
        a = req(c, "POST", "/v1/webapi/account/keys", junk, cookie=cookie,
                headers={"X-CSRF-Token": csrf})
        assert a.status == 403 and expect in a.body["message"], a.body


def test_password_change(cluster: Cluster) -> None:
    c = cluster
    cookie, csrf = _signup(c, "dora")
    h = {"X-CSRF-Token": csrf}
    wrong = req(c, "PUT", "/v1/webapi/account/password", {
        "old_password": "not-it", "new_password": "second-pass-2", "otp_code": "000000"},
        cookie=cookie, headers=h)
    assert wrong.status == 403, wrong.body
    ok = req(c, "PUT", "/v1/webapi/account/password", {
        "old_password": PASSWORD, "new_password": "second-pass-2",
        "otp_code": c.otp.code("dora", c.secrets["dora"])}, cookie=cookie, headers=h)
    assert ok.status == 200, ok.body
    assert c.login("dora", "second-pass-2", check=False).returncode == 0
    assert c.login("dora", PASSWORD, check=False).returncode != 0


def test_key_login_routes(cluster: Cluster) -> None:
    c = cluster
    _signup(c, "eve")
    begin = req(c, "POST", "/v1/webapi/webauthn/login/begin", {"user": "eve", "password": "nope"})
    assert begin.status == 403 and "invalid user name" in begin.body["message"]
    begin = req(c, "POST", "/v1/webapi/webauthn/login/begin", {"user": "eve", "password": PASSWORD})
    assert begin.status == 403 and "no security key" in begin.body["message"]
    finish = req(c, "POST", "/v1/webapi/webauthn/login/finish", {
        "user": "eve", "webauthn": {"challenge_id": "A" * 43, "credential": {"id": "x"}}})
    assert finish.status == 403 and "expired or was already used" in finish.body["message"]
    assert COOKIE not in finish.cookies


@pytest.fixture(scope="module")
def keys_only() -> Iterator[Cluster]:
    """A cluster whose second factor is webauthn alone, reached by IP address."""
    c = new_cluster(second_factor="webauthn")
    try:
        c.start()
        yield c
    finally:
        destroy(c)


def test_keys_only_cluster_sends_tsh_to_the_browser(keys_only: Cluster) -> None:
    c = keys_only
    out = c.tctl("users", "add", "kim", "--roles=access", "--logins=nobody").stdout
    url = next(w for w in out.split() if w.startswith("https://"))
    home = env_with(TELEPORT_HOME=os.path.join(c.root, "kim-home"))
    res = c.tsh("--insecure", "signup", url, input="", env=home, check=False)
    assert res.returncode != 0 and "open the invite URL in a browser" in res.stderr, res.stderr
    res = c.tsh("--insecure", f"--proxy={c.web_addr}", "--user=kim", "login", input="",
                env=home, check=False)
    assert res.returncode != 0
    assert f"log in in the browser at https://{c.web_addr}/web" in res.stderr, res.stderr
    assert "security key (webauthn)" in res.stderr
    # the browser flow would fail too, and says why: an IP address cannot be the relying party
    token = url.rsplit("/", 1)[1]
    a = req(c, "POST", f"/v1/webapi/users/invites/{token}/webauthn", {})
    assert a.status == 400 and "browsers refuse an IP address" in a.body["message"], a.body
    assert "proxy_service.public_addr" in a.body["message"]
