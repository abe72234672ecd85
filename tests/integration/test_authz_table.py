"""Every route of the auth API and the web API, called with every identity kind over the network.

The table below is the authorization contract: for each route, which identity kinds may use it.
The routes are read from the applications themselves, so a new route without a row fails here.
Each identity must get exactly what its row says (a refusal is a 403 that says why), and no
route answers 5xx to any identity or to junk bodies (a property-based walk with hypothesis).
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import ssl
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from teleport.defaults import AUTH_SERVER_NAME
from tests.helpers import Cluster, destroy, new_cluster

pytestmark = pytest.mark.integration

NONE, USER, NODE, PROXY, ADMIN = "none", "user", "node", "proxy", "admin"
KINDS = (NONE, USER, NODE, PROXY, ADMIN)
PUBLIC = frozenset(KINDS)

# (method, route) -> the identity kinds the route serves. The user kind holds a role with logins
# but no rules, so it may use nothing but the public routes.
AUTH_TABLE: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/v1/ping"): PUBLIC,
    ("GET", "/v1/tlsca"): PUBLIC,
    ("POST", "/v1/register"): PUBLIC,  # authorized by a join token, not by an identity
    ("GET", "/v1/authorities"): frozenset({NODE, PROXY, ADMIN}),
    ("GET", "/v1/authorities/{ca_type}"): frozenset({NODE, PROXY, ADMIN}),
    ("POST", "/v1/authorities/rotate"): frozenset({ADMIN}),
    ("POST", "/v1/invites"): frozenset({ADMIN}),
    ("GET", "/v1/invites/{token}"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/invites/{token}/complete"): frozenset({PROXY, ADMIN}),
    ("GET", "/v1/users"): frozenset({ADMIN}),
    ("POST", "/v1/users"): frozenset({ADMIN}),
    ("GET", "/v1/users/{user}"): frozenset({ADMIN}),
    ("PUT", "/v1/users/{user}"): frozenset({ADMIN}),
    ("DELETE", "/v1/users/{user}"): frozenset({ADMIN}),
    ("POST", "/v1/users/{user}/password"): frozenset({ADMIN}),
    ("POST", "/v1/users/{user}/ssh/authenticate"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/users/{user}/certs"): frozenset({ADMIN}),
    ("POST", "/v1/hosts/certs"): frozenset({ADMIN}),
    # recording proxy mode: the proxy presents short-lived certificates of the nodes it relays
    ("POST", "/v1/hosts/forward-certs"): frozenset({PROXY}),
    # CA rotation: a node or proxy re-issues its own identity (never an admin: not a host)
    ("POST", "/v1/hosts/reissue"): frozenset({NODE, PROXY}),
    ("POST", "/v1/tokens"): frozenset({ADMIN}),
    ("GET", "/v1/tokens"): frozenset({ADMIN}),
    ("DELETE", "/v1/tokens/{token}"): frozenset({ADMIN}),
    ("GET", "/v1/nodes"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/nodes"): frozenset({NODE, ADMIN}),
    # reverse tunnel agents (nodes) and proxies learn the proxies of the cluster
    ("GET", "/v1/proxies"): frozenset({NODE, PROXY, ADMIN}),
    ("POST", "/v1/proxies"): frozenset({PROXY, ADMIN}),
    # a proxy that stops removes its own heartbeat (another's: refused, not by role)
    ("DELETE", "/v1/proxies/{host_id}"): frozenset({PROXY, ADMIN}),
    # HA: nodes and proxies learn the cluster's auth servers (service/authservers.py)
    ("GET", "/v1/authservers"): frozenset({NODE, PROXY, ADMIN}),
    # caches: the snapshot nodes and proxies serve from while auth is down (service/cache.py)
    ("GET", "/v1/cache"): frozenset({NODE, PROXY, ADMIN}),
    ("POST", "/v1/access/check"): frozenset({NODE, PROXY, ADMIN}),
    ("POST", "/v1/access/nodes"): frozenset({PROXY, ADMIN}),
    # audit: a service emits events as itself; admins and users run no sessions, so they emit
    # nothing and touch no session or recording (auth logs their actions itself); a proxy reports
    # sessions only in recording proxy mode (this cluster records at the node; see
    # test_recording_proxy.py for the proxy mode)
    ("POST", "/v1/events"): frozenset({NODE, PROXY}),
    ("GET", "/v1/events"): frozenset({ADMIN}),
    ("GET", "/v1/sessions"): frozenset({ADMIN}),
    ("POST", "/v1/sessions"): frozenset({NODE}),
    ("GET", "/v1/sessions/{sid}"): frozenset({ADMIN}),
    ("DELETE", "/v1/sessions/{sid}"): frozenset({NODE}),
    ("PUT", "/v1/sessions/{sid}/recording"): frozenset({NODE}),
    ("GET", "/v1/sessions/{sid}/recording"): frozenset({ADMIN}),
    ("GET", "/v1/recordings"): frozenset({ADMIN}),
    ("GET", "/v1/roles"): frozenset({ADMIN}),
    ("POST", "/v1/roles"): frozenset({ADMIN}),
    ("GET", "/v1/roles/{role}"): frozenset({ADMIN}),
    ("DELETE", "/v1/roles/{role}"): frozenset({ADMIN}),
    # web sessions: a proxy logs browsers in, checks and ends their sessions, and gets terminal
    # certificates only for the user of a session it presents (see test_web_sessions.py)
    ("POST", "/v1/websessions"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/websessions/get"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/websessions/delete"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/websessions/certs"): frozenset({PROXY, ADMIN}),
    # security keys and the account page (auth/api_mfa.py; test_web_account.py checks them)
    ("POST", "/v1/invites/{token}/webauthn"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/webauthn/login/begin"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/websessions/webauthn"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/websessions/account"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/websessions/password"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/websessions/keys/begin"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/websessions/keys"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/websessions/keys/delete"): frozenset({PROXY, ADMIN}),
    # the web UI's sessions, recordings and audit log: a proxy asks for a session's user, and
    # auth answers under that user's own rules (test_web_session_pages.py)
    ("POST", "/v1/websessions/sessions"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/websessions/sessions/get"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/websessions/recordings"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/websessions/recordings/get"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/websessions/events"): frozenset({PROXY, ADMIN}),
    # single sign-on: admins manage connectors; a proxy lists them for login pages and runs the
    # login requests and callbacks for tsh and browsers
    ("GET", "/v1/connectors"): frozenset({ADMIN}),
    ("POST", "/v1/connectors"): frozenset({ADMIN}),
    ("DELETE", "/v1/connectors/{kind}/{name}"): frozenset({ADMIN}),
    ("GET", "/v1/sso/connectors"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/sso/requests"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/sso/callback"): frozenset({PROXY, ADMIN}),
    # trusted clusters: nodes and proxies read the other clusters' CAs (a leaf's nodes trust the
    # root's user CA; a root's proxy accepts its leaves' tunnels); a leaf's proxy lists its
    # trusted clusters (its tunnels); a root's proxy passes a leaf's token exchange on
    ("GET", "/v1/trustedcas"): frozenset({NODE, PROXY, ADMIN}),
    ("GET", "/v1/trustedclusters"): frozenset({PROXY, ADMIN}),
    ("POST", "/v1/trustedclusters"): frozenset({ADMIN}),
    ("DELETE", "/v1/trustedclusters/{cluster}"): frozenset({ADMIN}),
    ("POST", "/v1/trustedclusters/validate"): frozenset({PROXY, ADMIN}),
    # a root user's recording on a leaf, asked by the leaf's proxy (auth checks the mapped roles)
    ("POST", "/v1/trustedclusters/recording"): frozenset({PROXY, ADMIN}),
}

# The web API on the proxy's HTTPS port is public (it authenticates by password and code).
WEB_ROUTES = {
    ("GET", "/"), ("GET", "/webapi/ping"), ("GET", "/v1/webapi/ping"),
    ("POST", "/v1/webapi/ssh/certs"), ("GET", "/v1/webapi/users/invites/{token}"),
    ("POST", "/v1/webapi/users"), ("GET", "/web/invite/{token}"),
    # a leaf cluster's CA exchange: authorized by its trusted_cluster token alone
    ("POST", "/v1/webapi/trustedclusters/validate"),
    # the web UI: the login and the app's files are public; the rest need a live web session
    # (cookie) and, for DELETE and the terminal, its CSRF token (test_web_sessions.py checks)
    ("POST", "/v1/webapi/sessions"), ("GET", "/web"), ("GET", "/web/{page}"),
    ("GET", "/web/assets/{name}"), ("GET", "/web/vendor/{name}"),
    ("GET", "/v1/webapi/sessions"), ("DELETE", "/v1/webapi/sessions"),
    ("GET", "/v1/webapi/sites/{cluster}/nodes"), ("GET", "/v1/webapi/sites/{cluster}/connect"),
    # nodes behind a firewall: a WebSocket relay of their own TLS to auth (auth authorizes
    # inside it, by their client certificate; test_tunnel_via_proxy.py and
    # test_auth_relay_grants_only_what_auth_grants below)
    ("GET", "/v1/webapi/auth/stream"),
    # signup in the browser and key logins (public: the invite, password or key is the
    # credential); the account page (cookie, and CSRF token on changes)
    ("POST", "/v1/webapi/users/invites/{token}/webauthn"), ("POST", "/v1/webapi/signup"),
    ("POST", "/v1/webapi/webauthn/login/begin"), ("POST", "/v1/webapi/webauthn/login/finish"),
    ("GET", "/web/account"), ("GET", "/v1/webapi/account"), ("PUT", "/v1/webapi/account/password"),
    ("POST", "/v1/webapi/account/keys/begin"), ("POST", "/v1/webapi/account/keys"),
    ("DELETE", "/v1/webapi/account/keys"),
    ("GET", "/v1/webapi/sites/{cluster}/sessions"), ("GET", "/v1/webapi/sites/{cluster}/recordings"),
    ("GET", "/v1/webapi/sites/{cluster}/recordings/{sid}"), ("GET", "/v1/webapi/sites/{cluster}/events"),
    # single sign-on: public starts (a login request at auth) and the providers' callbacks
    ("POST", "/v1/webapi/github/login/console"), ("GET", "/v1/webapi/github/login/web"),
    ("GET", "/v1/webapi/github/callback"), ("POST", "/v1/webapi/oidc/login/console"),
    ("GET", "/v1/webapi/oidc/login/web"), ("GET", "/v1/webapi/oidc/callback"),
}
# web routes that answer 401 without a web session cookie
WEB_SESSION_ROUTES = {
    ("GET", "/v1/webapi/sessions"), ("DELETE", "/v1/webapi/sessions"),
    ("GET", "/v1/webapi/sites/{cluster}/nodes"), ("GET", "/v1/webapi/sites/{cluster}/connect"),
    ("GET", "/v1/webapi/account"), ("PUT", "/v1/webapi/account/password"),
    ("POST", "/v1/webapi/account/keys/begin"), ("POST", "/v1/webapi/account/keys"),
    ("DELETE", "/v1/webapi/account/keys"),
    ("GET", "/v1/webapi/sites/{cluster}/sessions"), ("GET", "/v1/webapi/sites/{cluster}/recordings"),
    ("GET", "/v1/webapi/sites/{cluster}/recordings/{sid}"), ("GET", "/v1/webapi/sites/{cluster}/events"),
}

# What each identity kind's refusal says: the 403 must be an authorization refusal, not a
# refusal of the body that happens to use the same status.
DENIALS = {
    NONE: "client certificate",
    USER: "access denied to perform action",
    NODE: "a node identity may not",
    PROXY: "a proxy identity may not",
    ADMIN: "an admin identity may not",
}

SAMPLE = {"user": "nobody-x", "role": "no-such-role", "token": "0" * 32,
          "sid": str(uuid.uuid4()), "ca_type": "user", "host_id": str(uuid.uuid4()),
          "kind": "oidc", "name": "no-such-connector",
          "cluster": "no-such-cluster"}

NOROLE = """kind: role
version: v3
metadata: {name: norules}
spec:
  allow: {logins: [nobody], node_labels: {'*': '*'}}
"""


def _routes(app: Any) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        out.add((route.method, route.resource.canonical))
    return out


def auth_routes() -> set[tuple[str, str]]:
    from teleport.auth.api import AuthAPI

    return _routes(AuthAPI(None, audit=object()).app())  # type: ignore[arg-type]


def web_routes() -> set[tuple[str, str]]:
    from teleport.proxy.web import WebProxy

    return _routes(WebProxy(None, "c", "h:3023", "h:3080").app())  # type: ignore[arg-type]


def test_the_table_covers_every_route() -> None:
    assert auth_routes() == set(AUTH_TABLE), "add the new auth API route to AUTH_TABLE"
    assert web_routes() == WEB_ROUTES, "add the new web API route to WEB_ROUTES"


# a cluster and one identity of each kind -------------------------------------------------------
class World:
    def __init__(self, cluster: Cluster, tmp: str) -> None:
        self.cluster = cluster
        self.tmp = tmp
        self.certs: dict[str, tuple[str, str] | None] = {NONE: None}

    def ca(self) -> str:
        with open(os.path.join(self.cluster.data_dir, "keys", "tls-ca.pem")) as f:
            return f.read()


def _user_identity(c: Cluster, tmp: str) -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization

    path = os.path.join(tmp, "norole.yaml")
    with open(path, "w") as f:
        f.write(NOROLE)
    c.tctl("create", path)
    c.add_user("plain", "nobody")
    c.tctl("users", "update", "plain", "--set-roles=norules")
    c.login("plain")
    x509 = glob.glob(os.path.join(c.home, "**", "plain-x509.pem"), recursive=True)[0]
    key = serialization.load_ssh_private_key(open(x509[: -len("-x509.pem")], "rb").read(), None)
    key_path = os.path.join(tmp, "user-key.pem")
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return x509, key_path


def _node_identity(c: Cluster, tmp: str) -> tuple[str, str]:
    async def go() -> dict[str, Any]:
        ctx = ssl.create_default_context(cadata=open(os.path.join(c.data_dir, "keys", "tls-ca.pem")).read())
        body = {"token": c.static_token, "role": "node", "host_id": str(uuid.uuid4()),
                "nodename": "tablenode", "addresses": []}
        async with aiohttp.ClientSession() as s:
            async with s.post(f"https://{c.auth_addr}/v1/register", json=body, ssl=ctx,
                              server_hostname=AUTH_SERVER_NAME) as r:
                assert r.status == 200, await r.text()
                return dict(await r.json())

    ident = asyncio.run(go())
    cert, key = os.path.join(tmp, "node-cert.pem"), os.path.join(tmp, "node-key.pem")
    with open(cert, "w") as f:
        f.write(ident["tls_cert"])
    with open(key, "w") as f:
        f.write(ident["tls_key"])
    return cert, key


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    c = new_cluster()
    tmp = tempfile.mkdtemp(prefix="tp-authz-")
    try:
        c.start()
        w = World(c, tmp)
        keys = os.path.join(c.data_dir, "keys")
        w.certs[ADMIN] = (os.path.join(keys, "admin-cert.pem"), os.path.join(keys, "admin-key.pem"))
        w.certs[PROXY] = (os.path.join(keys, "proxy-cert.pem"), os.path.join(keys, "proxy-key.pem"))
        w.certs[NODE] = _node_identity(c, tmp)
        w.certs[USER] = _user_identity(c, tmp)
        yield w
    finally:
        destroy(c)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


async def _call(w: World, kind: str, method: str, path: str, body: bytes,
                relay: bool = False) -> tuple[int, Any]:
    """One call to auth as `kind`; with `relay`, through the proxy's auth relay on its web port
    (the TLS to auth is the same, end to end)."""
    ctx = ssl.create_default_context(cadata=w.ca())
    cert = w.certs[kind]
    if cert is not None:
        ctx.load_cert_chain(*cert)
    addr = w.cluster.web_addr if relay else w.cluster.auth_addr
    url = yarl.URL(f"https://{addr}{path}", encoded=True)
    headers = {"Content-Type": "application/json"}
    if relay:
        from teleport.reversetunnel.viaproxy import RelayDialer, relay_connector

        dialer = RelayDialer()
        try:
            async with aiohttp.ClientSession(connector=relay_connector(dialer.dial, ctx)) as s:
                async with s.request(method, url, data=body, ssl=ctx, headers=headers,
                                     server_hostname=AUTH_SERVER_NAME) as r:
                    text = await r.read()
        finally:
            await dialer.close()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, text
    async with aiohttp.ClientSession() as s:
        async with s.request(method, url, data=body, ssl=ctx, headers=headers,
                             server_hostname=AUTH_SERVER_NAME) as r:
            text = await r.read()
            try:
                return r.status, json.loads(text)
            except ValueError:
                return r.status, text


def _fill(route: str) -> str:
    for kind, value in SAMPLE.items():
        route = route.replace("{" + kind + "}", value)
    return route


@pytest.mark.parametrize("kind", KINDS)
def test_each_identity_gets_exactly_what_its_role_allows(world: World, kind: str) -> None:
    _walk_table(world, kind, relay=False)


@pytest.mark.parametrize("kind", (NONE, USER, NODE))
def test_the_proxy_auth_relay_grants_exactly_what_auth_grants(world: World, kind: str) -> None:
    """/v1/webapi/auth/stream adds no right: auth sees the caller's own certificate (or none)."""
    _walk_table(world, kind, relay=True)


def _walk_table(world: World, kind: str, relay: bool) -> None:
    wrong = []
    for (method, route), allowed in sorted(AUTH_TABLE.items()):
        status, body = asyncio.run(_call(world, kind, method, _fill(route), b"{}", relay))
        message = body.get("message", "") if isinstance(body, dict) else str(body)
        denied = status == 403 and DENIALS.get(kind, "\0") in message
        if status >= 500:
            wrong.append(f"{method} {route}: {status} {message}")
        elif kind in allowed and denied:
            wrong.append(f"{method} {route}: refused but the table allows {kind}: {message}")
        elif kind not in allowed and not denied:
            wrong.append(f"{method} {route}: {kind} got {status} {message!r}, expected a refusal")
        if status >= 400:
            assert isinstance(body, dict) and body.get("message"), (method, route, body)
    assert not wrong, "\n".join(wrong)


# junk bodies on every route, for the identities that reach the parsers ------------------------
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_field_names = st.sampled_from([
    "user", "logins", "roles", "ttl", "token", "password", "otp_code", "public_key", "host_id",
    "nodename", "addresses", "role", "events", "sid", "server_id", "labels", "login", "upsert",
    "kind", "metadata", "spec", "traits", "proxy_addr", "remote_addr", "session_id", "webauthn",
    "challenge_id", "credential", "old_password", "new_password", "id", "web_session",
    "connector", "connector_id", "params", "binding", "redirect_url", "response_key",
    "cert", "cluster_name", "cas", "trusted_cluster",
])
_bodies = st.one_of(
    st.dictionaries(_field_names, _json_values, max_size=6).map(lambda d: json.dumps(d).encode()),
    _json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)
_unsafe = {("POST", "/v1/tokens"), ("POST", "/v1/hosts/certs"), ("POST", "/v1/invites"),
           ("POST", "/v1/authorities/rotate")}


_queries = st.one_of(
    st.just(""),
    st.dictionaries(
        st.sampled_from(["since", "until", "type", "user", "sid", "limit", "with_secrets"]),
        st.one_of(st.text(max_size=12), st.sampled_from(["nan", "inf", "-1", "1e400", "x", "9" * 30])),
        max_size=3,
    ).map(lambda q: "?" + str(yarl.URL.build(query=q).raw_query_string) if q else ""),
)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(route=st.sampled_from(sorted(set(AUTH_TABLE) - _unsafe)), kind=st.sampled_from([ADMIN, NODE, PROXY]),
       body=_bodies, query=_queries)
def test_junk_bodies_never_get_a_5xx(world: World, route: tuple[str, str], kind: str, body: bytes,
                                     query: str) -> None:
    method, template = route
    status, answer = asyncio.run(_call(world, kind, method, _fill(template) + query, body))
    assert status < 500, (method, template, kind, body, answer)
    if status >= 400:
        assert isinstance(answer, dict) and answer.get("message"), (method, template, answer)


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(route=st.sampled_from(sorted(WEB_ROUTES)), body=_bodies,
       token=st.text(min_size=1, max_size=40).map(lambda t: yarl.URL.build(path=t).raw_path.lstrip("/")))
def test_web_api_never_gives_a_5xx(world: World, route: tuple[str, str], body: bytes, token: str) -> None:
    method, template = route
    path = (template.replace("{token}", token or "x").replace("{cluster}", token or "x")
            .replace("{sid}", token or "x"))
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE

    async def go() -> tuple[int, bytes]:
        url = yarl.URL(f"https://{world.cluster.web_addr}{path}", encoded=True)
        async with aiohttp.ClientSession() as s:
            async with s.request(method, url, data=body, ssl=insecure) as r:
                return r.status, await r.read()

    status, answer = asyncio.run(go())
    assert status < 500, (method, path, body, answer)
    if route in WEB_SESSION_ROUTES and _keeps_route(token):
        assert status == 401, (method, path, status, answer)


def _keeps_route(token: str) -> bool:
    """Does this value, as a path parameter, still name the same route? aiohttp matches a
    parameter with [^{}/]+, and '.'/'..' are normalized away: those make another route (404)."""
    from urllib.parse import unquote

    value = unquote(token)
    return bool(value) and value not in (".", "..") and not any(c in value for c in "/{}")
