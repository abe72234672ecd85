"""OpenID Connect single sign-on against a real, certified provider (npm `oidc-provider`, run by
node on loopback), driven in Debian's Chromium: `tsh login` (loopback callback), the web UI's
button, claims mapped to roles and logins, and the refusals (no mapped claim, a tampered ID
token, denied consent, a login finished in another browser, a timeout)."""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.sso_support import (
    BackgroundTsh,
    OIDCProvider,
    chromium,
    need_browser,
    provider_sign_in,
)
from tests.helpers import Cluster, destroy, new_cluster

pytestmark = pytest.mark.integration
sync_api = need_browser()

ROLE = """kind: role
version: v3
metadata: {name: sso-dev}
spec:
  options: {max_session_ttl: 2h}
  allow:
    logins: ["{{external.logins}}", "{{email.local(external.email)}}"]
    node_labels: {team: "{{external.groups}}"}
"""
CONNECTOR = """kind: oidc
version: v2
metadata: {name: example-idp}
spec:
  display: Example IdP
  issuer_url: ISSUER
  client_id: teleport-test
  client_secret: oidc-client-secret-0123456789
  redirect_url: https://WEB/v1/webapi/oidc/callback
  scope: [groups, logins]
  claims_to_roles:
    - {claim: groups, value: devs, roles: [sso-dev]}
    - {claim: groups, value: "^ops-.*$", roles: [sso-dev]}
"""
ACCOUNTS = {
    "alice": {"email": "alice@example.com", "groups": ["devs", "readers"], "logins": ["tpsso"]},
    "bob": {"email": "bob@example.com", "groups": ["readers"]},
    "mallory": {"email": "mallory@example.com", "groups": ["readers"], "tamper": True},
    "carol": {"email": "carol@example.com", "groups": ["ops-db"]},
    # dave@example.com also exists as a local user in the cluster
    "dave": {"email": "dave@example.com", "groups": ["devs"]},
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(sync_api) as b:
        yield b


@pytest.fixture(scope="module")
def world() -> Iterator[tuple[Cluster, OIDCProvider]]:
    c = new_cluster(authentication="type: oidc, connector_name: example-idp",
                    roles="auth,proxy,node", ssh_extra="  labels: {team: devs}\n")
    idp: OIDCProvider | None = None
    try:
        idp = OIDCProvider(
            clients=[{"client_id": "teleport-test", "client_secret": "oidc-client-secret-0123456789",
                      "redirect_uris": [f"https://{c.web_addr}/v1/webapi/oidc/callback"]}],
            accounts=ACCOUNTS,
        )
        c.start()
        for name, text in (("role.yaml", ROLE), ("oidc.yaml", CONNECTOR)):
            path = os.path.join(c.root, name)
            with open(path, "w") as f:
                f.write(text.replace("ISSUER", idp.issuer).replace("WEB", c.web_addr))
            c.tctl("create", path)
        yield c, idp
    finally:
        destroy(c)
        if idp is not None:
            idp.close()


def _home(c: Cluster, name: str) -> str:
    return os.path.join(c.root, f"home-{name}")


def _tsh_login(c: Cluster, home: str, *extra: str) -> BackgroundTsh:
    return BackgroundTsh("--insecure", f"--proxy={c.web_addr}", "login", "--browser=none", *extra,
                         home=home)


def _sign_in_via_tsh(browser: Any, c: Cluster, login: str, *extra: str, consent: bool = True,
                     seen: list[str] | None = None) -> tuple[int, str, str, str]:
    """Run tsh login, sign in as `login` in Chromium; (tsh exit, stdout, stderr, final page).
    `seen` collects the URLs the browser requested."""
    tsh = _tsh_login(c, _home(c, login), *extra)
    context = browser.new_context(ignore_https_errors=True)
    try:
        url = tsh.url()
        page = context.new_page()
        if seen is not None:
            page.on("request", lambda r: seen.append(r.url))
        page.goto(url)
        provider_sign_in(page, sync_api, login, consent=consent)
        page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/callback\?response="), timeout=30000)
        text = page.locator("#sso-message").inner_text(timeout=15000)
        code, out, err = tsh.wait()
        return code, out, err, text
    finally:
        context.close()
        tsh.close()


def _wait_for_node(c: Cluster, env: dict[str, str]) -> bool:
    deadline = time.time() + 30
    while time.time() < deadline:
        if "testnode" in c.tsh("ls", env=env).stdout:
            return True
        time.sleep(0.5)
    return False


def _events(c: Cluster) -> list[dict[str, Any]]:
    out = c.tctl("events", "ls", "--type=user.login", "--format=json").stdout
    return list(json.loads(out))


def test_tsh_login_maps_claims_to_roles_logins_and_ttl(browser: Any, world: Any) -> None:
    c, _ = world
    # the cluster's default (authentication.type oidc): no --auth needed
    code, out, err, page_text = _sign_in_via_tsh(browser, c, "alice")
    assert code == 0, err
    assert "You are logged in" in page_text
    assert "Logged in as: alice@example.com" in out
    assert "Roles:        sso-dev" in out
    # logins from the claims: the `logins` claim and the e-mail's local part, via role templates
    logins = re.search(r"Logins:\s+(.*)", out)
    assert logins and set(logins.group(1).split(", ")) == {"tpsso", "alice"}, out
    # TTL capped by the role (2h) although tsh asked for the default 23h
    valid = re.search(r"valid for (\d+)h", out)
    assert valid and int(valid.group(1)) <= 2, out
    home = {**os.environ, "TELEPORT_HOME": _home(c, "alice")}
    status = c.tsh("status", env=home).stdout
    assert "alice@example.com" in status
    # {{external.groups}} in the role's node_labels: alice's group devs shows the team=devs node
    assert _wait_for_node(c, home), "alice does not see the node of her team"
    # an external user with an expiry, its traits from the claims
    user = json.loads(c.tctl("get", "user/alice@example.com", "--format=json").stdout)
    assert user["spec"]["roles"] == ["sso-dev"]
    assert user["spec"]["created_by"]["connector"] == {
        "type": "oidc", "id": "example-idp", "identity": "alice@example.com"}
    assert user["spec"]["traits"]["groups"] == ["devs", "readers"]
    assert user["metadata"]["expires"]
    # the audit log names the connector
    ok = [e for e in _events(c) if e.get("user") == "alice@example.com" and e.get("success")]
    assert ok and ok[-1]["method"] == "oidc" and ok[-1]["connector"] == "example-idp", ok


def test_callback_replay_is_refused(browser: Any, world: Any) -> None:
    """The provider's redirect back works once: replayed, its state is unknown."""
    c, _ = world
    seen: list[str] = []
    code, out, err, _ = _sign_in_via_tsh(browser, c, "carol", seen=seen)
    assert code == 0, err
    assert "Roles:        sso-dev" in out  # by the regex mapping ^ops-.*$
    # carol's groups are not the node's team: her roles let her see no node
    assert "testnode" not in c.tsh("ls", env={**os.environ, "TELEPORT_HOME": _home(c, "carol")}).stdout
    callback = next(u for u in seen if "/v1/webapi/oidc/callback?" in u)
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.goto(callback)
        sync_api.expect(page.locator("#sso-message")).to_contain_text("state mismatch")
    finally:
        context.close()


def test_sso_never_takes_over_a_local_user(browser: Any, world: Any) -> None:
    c, _ = world
    path = os.path.join(c.root, "local-user.yaml")
    with open(path, "w") as f:
        f.write("kind: user\nversion: v2\nmetadata: {name: dave@example.com}\n"
                "spec: {roles: [access], traits: {logins: [root]}}\n")
    c.tctl("create", path)
    code, out, err, _ = _sign_in_via_tsh(browser, c, "dave")
    assert code != 0
    assert "a local user named 'dave@example.com' exists" in err, err
    user = json.loads(c.tctl("get", "user/dave@example.com", "--format=json").stdout)
    assert user["spec"]["roles"] == ["access"] and "created_by" not in user["spec"]


def test_user_without_a_mapped_claim_is_refused(browser: Any, world: Any) -> None:
    c, _ = world
    code, out, err, page_text = _sign_in_via_tsh(browser, c, "bob", "--auth=oidc")
    assert code != 0
    assert "no mapping of the connector gives them a role" in err, err
    assert "no mapping of the connector gives them a role" in page_text
    assert not os.path.exists(os.path.join(_home(c, "bob"), "profile")), "no profile for bob"
    bad = [e for e in _events(c) if e.get("user") == "bob@example.com"]
    assert bad and bad[-1]["success"] is False and bad[-1]["connector"] == "example-idp"


def test_tampered_id_token_is_refused(browser: Any, world: Any) -> None:
    c, _ = world
    code, out, err, page_text = _sign_in_via_tsh(browser, c, "mallory", "--auth=example-idp")
    assert code != 0
    assert "signature is not valid" in err, err
    users = c.tctl("get", "users", "--format=json").stdout
    assert "root@example.com" not in users and "mallory" not in users


def test_denied_consent_is_reported(browser: Any, world: Any) -> None:
    c, _ = world
    code, out, err, page_text = _sign_in_via_tsh(browser, c, "alice", consent=False)
    assert code != 0
    assert "access_denied" in err and "consent was denied" in err, err


def test_web_ui_button_logs_in(browser: Any, world: Any, tmp_path: Any) -> None:
    c, _ = world
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"https://{c.web_addr}/web")
        button = page.get_by_role("link", name="Sign in with Example IdP")
        sync_api.expect(button).to_be_visible(timeout=15000)
        page.screenshot(path=str(tmp_path / "login-with-sso.png"))
        button.click()
        provider_sign_in(page, sync_api, "alice")
        sync_api.expect(page.locator("#whoami")).to_have_text("alice@example.com", timeout=20000)
        assert not [e for e in errors if "Content Security Policy" in e], errors
    finally:
        context.close()


def test_login_finished_in_another_browser_is_refused(browser: Any, world: Any) -> None:
    """Login CSRF: a sign-in started in one browser cannot end in another (no binding cookie)."""
    c, _ = world
    first = browser.new_context(ignore_https_errors=True)
    second = browser.new_context(ignore_https_errors=True)
    try:
        # the first browser starts the login (and holds its binding cookie)...
        start = first.request.get(
            f"https://{c.web_addr}/v1/webapi/oidc/login/web?connector_id=example-idp",
            max_redirects=0)
        assert start.status == 302
        provider_url = start.headers["location"]
        assert any(ck["name"] == "__Host-teleport-sso" for ck in first.cookies())
        # ...and the second one signs in at the provider with that login's URL
        other = second.new_page()
        other.goto(provider_url)
        provider_sign_in(other, sync_api, "alice")
        message = other.locator("#sso-message")
        sync_api.expect(message).to_contain_text("state mismatch", timeout=15000)
        sync_api.expect(other.locator("#sso-message")).to_contain_text("another browser")
        # and a made-up state is refused too
        other.goto(f"https://{c.web_addr}/v1/webapi/oidc/callback?code=x&state={'A' * 43}")
        sync_api.expect(other.locator("#sso-message")).to_contain_text("state mismatch")
    finally:
        first.close()
        second.close()


def test_tsh_gives_up_after_its_timeout(world: Any, tmp_path: Any) -> None:
    from teleport.client import session, sso
    from teleport.client.keystore import KeyStore
    from teleport.client.webclient import WebClient
    from teleport.errors import TeleportError

    c, _ = world
    client = WebClient(c.web_addr, insecure=True)
    info = session.ping(client)
    store = KeyStore(str(tmp_path / "tsh"))
    started = time.time()
    with pytest.raises(TeleportError, match="timed out after 2s"):
        sso.login(client, info, sso.pick_connector(info, "oidc"), None, store, browser="none",
                  timeout=2, out=io.StringIO())
    assert time.time() - started < 30


def test_console_requests_are_checked(world: Any) -> None:
    """The proxy's console route refuses what would send certificates anywhere but tsh's own
    loopback listener, and the ping lists connectors without their secrets."""
    from teleport.auth.sso import seal
    from teleport.ca import keys as cakeys
    from teleport.client.webclient import WebClient
    from teleport.errors import BadParameter, NotFound

    c, _ = world
    client = WebClient(c.web_addr, insecure=True)
    ping = client.call("GET", "/v1/webapi/ping")
    assert ping["auth"]["type"] == "oidc" and ping["auth"]["connector_name"] == "example-idp"
    assert ping["auth"]["connectors"] == [{"kind": "oidc", "name": "example-idp", "display": "Example IdP"}]
    assert "oidc-client-secret" not in json.dumps(ping)
    pub = cakeys.public_key_to_openssh(cakeys.generate_private_key("ed25519"))
    good = {"connector_id": "example-idp", "pub_key": pub, "response_key": seal.new_key(),
            "redirect_url": "http://127.0.0.1:9/callback"}
    answer = client.call("POST", "/v1/webapi/oidc/login/console", good)
    assert answer["redirect_url"].startswith(world[1].issuer + "/auth?")
    assert "code_challenge_method=S256" in answer["redirect_url"] and "nonce=" in answer["redirect_url"]
    for change, error, text in (
        ({"redirect_url": "http://attacker.example.com:80/callback"}, BadParameter, "loopback"),
        ({"redirect_url": "https://127.0.0.1:9/callback"}, BadParameter, "loopback"),
        ({"response_key": "short"}, BadParameter, "32 bytes"),
        ({"pub_key": "ssh-ed25519 junk"}, BadParameter, "public key"),
        ({"connector_id": "nope"}, NotFound, "no oidc connector named 'nope'"),
    ):
        with pytest.raises(error, match=text):
            client.call("POST", "/v1/webapi/oidc/login/console", {**good, **change})
