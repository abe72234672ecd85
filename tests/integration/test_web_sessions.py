"""Browser sessions on the proxy's web API, without a browser: the cookie and CSRF rules, the
security headers, logout ending the session on the server, the role-filtered node list, and the
terminal WebSocket's checks (against real teleport processes)."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from teleport import defaults
from tests.helpers import Cluster, destroy, new_cluster, wait_port

pytestmark = pytest.mark.integration

PASSWORD = "secret-pass-1"
COOKIE = defaults.WEB_SESSION_COOKIE


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = new_cluster(roles="auth,proxy,node")
    try:
        c.start()
        wait_port(c.ports["node"], 20, c.proc)
        c.add_user("wendy", "wendy")
        yield c
    finally:
        destroy(c)


def _insecure() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Answer:
    def __init__(self, status: int, headers: Any, body: Any, cookies: Any) -> None:
        self.status, self.headers, self.body, self.cookies = status, headers, body, cookies


async def _req(c: Cluster, method: str, path: str, body: Any = None, cookie: str | None = None,
               headers: dict[str, str] | None = None) -> Answer:
    h = dict(headers or {})
    if cookie is not None:
        h["Cookie"] = f"{COOKIE}={cookie}"
    async with aiohttp.ClientSession() as s:
        async with s.request(method, f"https://{c.web_addr}{path}", json=body, headers=h,
                             ssl=_insecure()) as r:
            text = await r.text()
            try:
                data = json.loads(text)
            except ValueError:
                data = text
            return Answer(r.status, r.headers, data, r.cookies)


def req(c: Cluster, method: str, path: str, **kw: Any) -> Answer:
    return asyncio.run(_req(c, method, path, **kw))


def login(c: Cluster, user: str = "wendy", password: str = PASSWORD) -> tuple[str, dict[str, Any], Answer]:
    code = c.otp.code(user, c.secrets[user])
    a = req(c, "POST", "/v1/webapi/sessions", body={"user": user, "password": password, "otp_code": code})
    assert a.status == 200, a.body
    return a.cookies[COOKIE].value, a.body, a


def nodes_path(c: Cluster) -> str:
    return f"/v1/webapi/sites/{c.cluster_name}/nodes"


def test_login_sets_a_strict_cookie_and_security_headers(cluster: Cluster) -> None:
    sid, body, a = login(cluster)
    morsel = a.cookies[COOKIE]
    assert morsel["httponly"] and morsel["secure"] and morsel["samesite"] == "Strict"
    assert morsel["path"] == "/" and not morsel["domain"]
    # the session id is in the cookie only, never in what a script can read
    assert sid not in json.dumps(body) and body["csrf_token"] and body["user"] == "wendy"
    assert body["logins"] == ["wendy"]
    csp = a.headers["Content-Security-Policy"]
    script_src = next(p for p in csp.split(";") if p.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "frame-ancestors 'none'" in csp
    assert a.headers["X-Frame-Options"] == "DENY"
    assert "max-age=" in a.headers["Strict-Transport-Security"]
    assert a.headers["Cache-Control"] == "no-store"


def test_nodes_need_a_live_session_and_answer_what_roles_allow(cluster: Cluster) -> None:
    sid, _, _ = login(cluster)
    a = req(cluster, "GET", nodes_path(cluster), cookie=sid)
    assert a.status == 200 and a.headers["Cache-Control"] == "no-store"
    assert [n["hostname"] for n in a.body["items"]] == ["testnode"]
    assert req(cluster, "GET", nodes_path(cluster)).status == 401
    bad = req(cluster, "GET", nodes_path(cluster), cookie="A" * 43)
    assert bad.status == 401 and "log in again" in bad.body["message"]
    assert req(cluster, "GET", nodes_path(cluster), cookie="junk!").status == 401
    assert req(cluster, "GET", "/v1/webapi/sites/other/nodes", cookie=sid).status == 404
    # a role that allows no node sees none
    cluster.tctl("create", _role_file(cluster, "nonodes"))
    cluster.add_user("nora", "nora")
    cluster.tctl("users", "update", "nora", "--set-roles=nonodes")
    nsid, _, _ = login(cluster, "nora")
    assert req(cluster, "GET", nodes_path(cluster), cookie=nsid).body["items"] == []


def _role_file(c: Cluster, name: str) -> str:
    import os

    path = os.path.join(c.root, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(f"kind: role\nversion: v3\nmetadata: {{name: {name}}}\n"
                "spec:\n  allow: {logins: [nora], node_labels: {env: nowhere}}\n")
    return path


def test_state_changes_need_the_csrf_token_and_logout_ends_the_session(cluster: Cluster) -> None:
    sid, body, _ = login(cluster)
    refused = req(cluster, "DELETE", "/v1/webapi/sessions", cookie=sid)
    assert refused.status == 403 and "CSRF" in refused.body["message"]
    wrong = req(cluster, "DELETE", "/v1/webapi/sessions", cookie=sid,
                headers={defaults.WEB_CSRF_HEADER: "x" + body["csrf_token"][1:]})
    assert wrong.status == 403
    assert req(cluster, "GET", nodes_path(cluster), cookie=sid).status == 200  # still alive
    out = req(cluster, "DELETE", "/v1/webapi/sessions", cookie=sid,
              headers={defaults.WEB_CSRF_HEADER: body["csrf_token"]})
    assert out.status == 200 and out.cookies[COOKIE].value == ""
    # the server forgot it: the old cookie, replayed, is refused
    gone = req(cluster, "GET", nodes_path(cluster), cookie=sid)
    assert gone.status == 401 and "log in again" in gone.body["message"]


def test_login_refusals_look_like_tsh_login(cluster: Cluster) -> None:
    a = req(cluster, "POST", "/v1/webapi/sessions",
            body={"user": "wendy", "password": "wrong", "otp_code": "000000"})
    b = req(cluster, "POST", "/v1/webapi/ssh/certs",
            body={"user": "wendy", "password": "wrong", "otp_token": "000000", "pub_key": "x"})
    assert a.status == b.status == 403 and a.body["message"] == defaults.LOGIN_FAILED_MESSAGE
    assert COOKIE not in a.cookies
    cross = req(cluster, "POST", "/v1/webapi/sessions", body={"user": "wendy"},
                headers={"Origin": "https://evil.example"})
    assert cross.status == 403 and "cross-origin" in cross.body["message"]


def test_terminal_websocket_needs_the_csrf_token_in_band(cluster: Cluster) -> None:
    sid, body, _ = login(cluster)
    path = f"/v1/webapi/sites/{cluster.cluster_name}/connect?node=testnode&login=root"

    async def go(first: dict[str, Any] | None, cookie: str | None) -> list[Any]:
        headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
        async with aiohttp.ClientSession() as s:
            try:
                ws = await s.ws_connect(f"https://{cluster.web_addr}{path}", ssl=_insecure(),
                                        headers=headers)
            except aiohttp.WSServerHandshakeError as exc:
                return [exc.status]
            if first is not None:
                await ws.send_str(json.dumps(first))
            out = [json.loads(m.data) async for m in ws if m.type == aiohttp.WSMsgType.TEXT]
            return out

    assert asyncio.run(go(None, None)) == [401]
    assert asyncio.run(go(None, "B" * 43)) == [401]
    msgs = asyncio.run(go({"type": "auth", "csrf_token": "nope"}, sid))
    assert msgs and msgs[0]["type"] == "error" and "CSRF" in msgs[0]["message"]
    # with the token, the login is checked against the roles: wendy may not be root
    msgs = asyncio.run(go({"type": "auth", "csrf_token": body["csrf_token"]}, sid))
    assert msgs and msgs[0]["type"] == "error", msgs
    assert "login 'root' is not allowed by your roles" in msgs[0]["message"], msgs
