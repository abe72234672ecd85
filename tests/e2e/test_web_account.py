"""Sign up, log in errors, the account page and security keys, in a real browser (Debian's
Chromium driven by Playwright) against a real teleport process whose second factor is "on"
(one-time code or security key). Security keys are Chromium's virtual authenticator (the
DevTools protocol's WebAuthn domain); the proxy is reached as https://localhost:PORT because
browsers refuse an IP address as the WebAuthn relying party. Screenshots go to tmp_path."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_web_ui import CHROMIUM, CHROMIUM_FLAGS
from tests.helpers import Cluster, destroy, new_cluster

pytestmark = pytest.mark.integration

PASSWORD = "first-pass-1"

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    from teleport.proxy.webapi.static import built

    if not built():
        pytest.fail("the web UI is not built: run teleport-web-build (see .ci/run)")
    c = new_cluster(second_factor="on", web_host="localhost")
    try:
        c.start()
        yield c
    finally:
        destroy(c)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
    try:
        pg = context.new_page()
        errors: list[str] = []
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        yield pg
        assert not [e for e in errors if "Content Security Policy" in e], errors
    finally:
        context.close()


def _invite(c: Cluster, user: str) -> str:
    out = c.tctl("users", "add", user, "--roles=access", "--logins=nobody").stdout
    return next(w for w in out.split() if w.startswith("https://"))


def _signup_with_code(c: Cluster, page: Any, user: str, tmp_path: Any = None) -> str:
    url = _invite(c, user)
    page.goto(url)
    expect(page.locator("#signup-user")).to_have_text(user)
    expect(page.locator("#signup-logins")).to_have_text("nobody")
    # the length is checked as it is typed
    page.get_by_label("Choose a password").fill("abc")
    expect(page.locator("#signup-hint")).to_contain_text("Too short")
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD + "x")
    expect(page.locator("#signup-hint")).to_contain_text("do not match")
    page.get_by_label("Confirm password").fill(PASSWORD)
    expect(page.locator("#signup-hint")).to_contain_text("fine")
    # the QR code is an image made by the proxy; the secret is shown as text
    expect(page.get_by_alt_text("QR code of your one-time code secret")).to_be_visible()
    assert page.locator("#signup-qr").evaluate("img => img.naturalWidth") > 50
    secret = page.locator("#signup-secret").inner_text().strip()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    c.secrets[user] = secret
    page.get_by_label("Code from your authenticator app").fill(c.otp.code(user, secret))
    if tmp_path is not None:
        page.screenshot(path=str(tmp_path / "signup.png"), full_page=True)
    page.get_by_role("button", name="Create account").click()
    # signed up and logged in: the nodes page, under the new name
    expect(page.locator("#whoami")).to_have_text(user, timeout=15000)
    expect(page.locator("#nodes-view")).to_be_visible()
    assert page.url.endswith("/web")
    return url


def _login(c: Cluster, page: Any, user: str, password: str = PASSWORD) -> None:
    page.goto(f"https://{c.web_addr}/web")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("One-time code").fill(c.otp.code(user, c.secrets[user]))
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#whoami")).to_have_text(user, timeout=15000)


def test_signup_logout_login(cluster: Cluster, page: Any, tmp_path: Any) -> None:
    url = _signup_with_code(cluster, page, "alice", tmp_path)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("User name")).to_be_visible()
    page.screenshot(path=str(tmp_path / "login.png"))
    _login(cluster, page, "alice")
    # the used invite now gets the explanation page, not the form
    page.goto(url)
    expect(page.locator("#signup-bad-message")).to_contain_text("expired, was already used")


def test_bad_invite_token_page(cluster: Cluster, page: Any, tmp_path: Any) -> None:
    url = _invite(cluster, "carol")
    page.goto(url[: -4] + "0000")  # not the token any more
    expect(page.get_by_role("heading", name="Invite not valid")).to_be_visible()
    expect(page.locator("#signup-bad-message")).to_contain_text(
        "expired, was already used, or is not valid")
    expect(page.get_by_text("Ask your administrator for a new one")).to_be_visible()
    expect(page.locator("#signup-form")).to_be_hidden()
    page.screenshot(path=str(tmp_path / "bad-invite.png"))


def test_login_errors_are_explained(cluster: Cluster, page: Any, tmp_path: Any) -> None:
    c = cluster
    _signup_with_code(c, page, "dave")
    page.get_by_role("button", name="Log out").click()
    # wrong password
    page.get_by_label("User name").fill("dave")
    page.get_by_label("Password", exact=True).fill("wrong-password")
    page.get_by_label("One-time code").fill("123456")
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#login-error")).to_contain_text("invalid user name, password or one-time code")
    expect(page.locator("#login-help")).to_contain_text("locked for a while")
    page.screenshot(path=str(tmp_path / "login-error.png"))
    # lock the account from this address: the right password is then refused, and the page
    # says that a lock is a possible reason
    for _ in range(5):
        page.get_by_role("button", name="Log in", exact=True).click()
        expect(page.locator("#login-error")).to_be_visible()
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("One-time code").fill("000000")  # refused before the code is looked at
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#login-help")).to_contain_text("locked")
    expect(page.locator("#nodes-view")).to_be_hidden()

    # an ended session: logged in here, and the same session logged out from another browser
    # profile holding a copy of the cookie: the server ended it, this page learns it next time
    _signup_with_code(c, page, "erin")
    other_ctx = page.context.browser.new_context(ignore_https_errors=True)
    try:
        other_ctx.add_cookies(page.context.cookies())
        other = other_ctx.new_page()
        other.goto(f"https://{c.web_addr}/web")
        expect(other.locator("#whoami")).to_have_text("erin", timeout=15000)
        other.get_by_role("button", name="Log out").click()
        expect(other.get_by_label("User name")).to_be_visible()
    finally:
        other_ctx.close()
    page.get_by_role("button", name="Account").click()
    expect(page.locator("#login-error")).to_contain_text("expired or was ended", timeout=15000)
    expect(page.locator("#login-help")).to_contain_text("Web sessions end")


def test_password_change(cluster: Cluster, page: Any, tmp_path: Any) -> None:
    c = cluster
    _signup_with_code(c, page, "frank")
    page.get_by_role("button", name="Account").click()
    expect(page.locator("#account-user")).to_have_text("frank")
    expect(page.locator("#account-cluster")).to_have_text(c.cluster_name)
    expect(page.locator("#account-expires")).to_contain_text("minutes without use")
    expect(page.locator("#account-factor")).to_have_text("one-time code app")
    assert page.url.endswith("/web/account")
    page.screenshot(path=str(tmp_path / "account.png"), full_page=True)
    # a wrong old password is refused
    page.get_by_label("Current password").fill("not-my-password")
    page.get_by_label("New password", exact=True).fill("second-pass-2")
    page.get_by_label("Repeat new password").fill("second-pass-2")
    page.get_by_label("Code from your authenticator app").fill("000000")  # password first
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-status")).to_contain_text("invalid user name, password")
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("Code from your authenticator app").fill(c.otp.code("frank", c.secrets["frank"]))
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-status")).to_have_text("Your password was changed.")
    # the new password works, the old one does not
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("User name").fill("frank")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("One-time code").fill("000000")
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#login-error")).to_be_visible()
    _login(c, page, "frank", "second-pass-2")


def _virtual_key(page: Any) -> tuple[Any, str]:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "usb", "hasResidentKey": False,
        "hasUserVerification": False, "isUserVerified": False, "automaticPresenceSimulation": True,
    }})
    return cdp, str(added["authenticatorId"])


def test_security_key_register_and_login(cluster: Cluster, page: Any, tmp_path: Any) -> None:
    c = cluster
    cdp, auth_id = _virtual_key(page)
    _signup_with_code(c, page, "grace")
    page.get_by_role("button", name="Account").click()
    expect(page.locator("#keys-empty")).to_be_visible()
    page.get_by_label("Key name").fill("virtual key")
    page.get_by_label("Password to confirm key changes").fill(PASSWORD)
    page.get_by_role("button", name="Register a security key").click()
    expect(page.locator("#key-status")).to_have_text('Security key "virtual key" registered.',
                                                     timeout=15000)
    expect(page.locator("#keys-table tbody tr", has_text="virtual key")).to_be_visible()
    creds = cdp.send("WebAuthn.getCredentials", {"authenticatorId": auth_id})["credentials"]
    assert len(creds) == 1 and creds[0]["rpId"] == "localhost"
    page.screenshot(path=str(tmp_path / "account-keys.png"), full_page=True)

    # log out, log in with the key (password, then the key; no code)
    page.get_by_role("button", name="Log out").click()
    for _ in range(2):  # twice: the sign counter grows and is checked each time
        page.get_by_label("User name").fill("grace")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Log in with a security key").click()
        expect(page.locator("#nodes-view, #login-error:not([hidden])").first).to_be_visible(timeout=15000)
        assert page.locator("#login-error").is_hidden(), page.locator("#login-error").inner_text()
        expect(page.locator("#whoami")).to_have_text("grace")
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_label("User name")).to_be_visible()
    count = cdp.send("WebAuthn.getCredentials", {"authenticatorId": auth_id})["credentials"][0]["signCount"]
    assert count >= 3, count

    # a challenge answers once: the same signed answer sent twice is refused the second time
    replay = page.evaluate("""async (password) => {
        const post = async (path, body) => {
            const r = await fetch(path, {method: 'POST', body: JSON.stringify(body),
                headers: {'Content-Type': 'application/json'}});
            return [r.status, await r.json()];
        };
        const [, begin] = await post('/v1/webapi/webauthn/login/begin',
            {user: 'grace', password});
        const cred = await navigator.credentials.get({
            publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(begin.options)});
        const body = {user: 'grace', webauthn: {challenge_id: begin.challenge_id,
                                                credential: cred.toJSON()}};
        return [await post('/v1/webapi/webauthn/login/finish', body),
                await post('/v1/webapi/webauthn/login/finish', body)];
    }""", PASSWORD)
    assert replay[0][0] == 200 and replay[0][1]["user"] == "grace", replay
    assert replay[1][0] == 403 and "already used" in replay[1][1]["message"], replay
    page.goto(f"https://{c.web_addr}/web")
    page.get_by_role("button", name="Log out").click()

    # a cloned key (the same private key, its counter behind the server's) is refused
    cred = cdp.send("WebAuthn.getCredentials", {"authenticatorId": auth_id})["credentials"][0]
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": auth_id})
    cdp, clone_id = _virtual_key(page)
    cdp.send("WebAuthn.addCredential", {"authenticatorId": clone_id, "credential": {
        "credentialId": cred["credentialId"], "isResidentCredential": False,
        "rpId": cred["rpId"], "privateKey": cred["privateKey"], "signCount": 1}})
    page.get_by_label("User name").fill("grace")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in with a security key").click()
    expect(page.locator("#login-error")).to_contain_text("sign count", timeout=15000)
    expect(page.locator("#nodes-view")).to_be_hidden()

    # a key that is not registered for this user is refused
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": clone_id})
    _, other_id = _virtual_key(page)
    page.get_by_label("User name").fill("grace")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in with a security key").click()
    expect(page.locator("#login-error")).to_be_visible(timeout=15000)
    expect(page.locator("#whoami")).to_be_hidden()


def test_signup_with_a_security_key_and_remove_it(cluster: Cluster, page: Any, tmp_path: Any) -> None:
    c = cluster
    _virtual_key(page)
    page.goto(_invite(c, "heidi"))
    expect(page.locator("#signup-key")).to_be_visible()
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_label("Key name").fill("my key")
    page.get_by_role("button", name="Register a security key").click()
    expect(page.locator("#signup-key-status")).to_contain_text("Security key ready", timeout=15000)
    page.get_by_role("button", name="Create account").click()  # no code: the key instead
    expect(page.locator("#whoami")).to_have_text("heidi", timeout=15000)
    page.get_by_role("button", name="Account").click()
    expect(page.locator("#account-factor")).to_have_text("1 security key(s)")
    expect(page.locator("#password-key-note")).to_be_visible()
    # in "on" mode the only second factor cannot be removed
    page.get_by_label("Password to confirm key changes").fill(PASSWORD)
    page.get_by_role("button", name="Remove key my key").click()
    expect(page.locator("#key-status")).to_contain_text("only second factor")
    # the password change is confirmed by the key
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password", exact=True).fill("second-pass-2")
    page.get_by_label("Repeat new password").fill("second-pass-2")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#password-status")).to_have_text("Your password was changed.", timeout=15000)
    # a phone-sized window: one column, nothing cut off
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(tmp_path / "account-narrow.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width


def test_csrf_token_is_required(cluster: Cluster, page: Any) -> None:
    c = cluster
    _signup_with_code(c, page, "ivan")
    # the page's own cookie, but no CSRF header: refused; with the page's token: accepted
    result = page.evaluate("""async () => {
        const r = await fetch('/v1/webapi/account/keys/begin', {method: 'POST',
            headers: {'Content-Type': 'application/json'}, body: '{}'});
        return [r.status, (await r.json()).message];
    }""")
    assert result[0] == 403 and "CSRF" in result[1], result
    me = page.evaluate("async () => (await (await fetch('/v1/webapi/sessions')).json())")
    result = page.evaluate("""async (token) => {
        const r = await fetch('/v1/webapi/account/keys/begin', {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': token}, body: '{}'});
        return [r.status, await r.json()];
    }""", me["csrf_token"])
    assert result[0] == 200 and result[1]["options"]["rp"]["id"] == "localhost", result
    # the password change too
    status = page.evaluate("""async () => (await fetch('/v1/webapi/account/password', {method: 'PUT',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({old_password: 'x', new_password: 'yyyyyyyy'})})).status""")
    assert status == 403


@pytest.fixture(scope="module")
def keys_only() -> Iterator[Cluster]:
    """second_factor: u2f (the reference's name for keys, now WebAuthn) with its app_id and
    facets, which become the relying party and its origins."""
    c = new_cluster(web_host="localhost")
    origin = f"https://localhost:{c.ports['web']}"
    # the authentication mapping is written inline: its other keys go after the value
    c.second_factor = f"u2f, u2f: {{app_id: '{origin}', facets: ['{origin}']}}"
    try:
        c.start()
        yield c
    finally:
        destroy(c)


def test_keys_only_cluster_in_the_browser(keys_only: Cluster, page: Any, tmp_path: Any) -> None:
    c = keys_only
    _virtual_key(page)
    page.goto(_invite(c, "kate"))
    # no one-time code anywhere: the key is required
    expect(page.locator("#signup-key")).to_be_visible()
    expect(page.locator("#signup-otp")).to_be_hidden()
    expect(page.locator("#signup-key-intro")).to_contain_text("This cluster uses security keys")
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_label("Confirm password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#signup-error")).to_contain_text("requires a security key")
    page.get_by_role("button", name="Register a security key").click()
    expect(page.locator("#signup-key-status")).to_contain_text("Security key ready", timeout=15000)
    page.screenshot(path=str(tmp_path / "signup-key.png"), full_page=True)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#nodes-view")).to_be_visible(timeout=15000)
    page.get_by_role("button", name="Log out").click()
    # the login form asks for no code, only the password and the key
    expect(page.get_by_label("User name")).to_be_visible()
    expect(page.locator("#login-otp-row")).to_be_hidden()
    page.get_by_label("User name").fill("kate")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in with a security key").click()
    expect(page.locator("#nodes-view")).to_be_visible(timeout=15000)
    expect(page.locator("#whoami")).to_have_text("kate")
    # the password alone (the ordinary login button) is refused
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("User name").fill("kate")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in", exact=True).click()
    expect(page.locator("#login-error")).to_contain_text("invalid user name, password")
