"""The GitHub connector, driven in Chromium against a local STAND-IN for GitHub
(tests/e2e/github_standin.py: github.com cannot be reached from here): `tsh login --auth=NAME`,
teams mapped to roles and logins, a user in no mapped team refused, a cancelled authorization,
and the connector resource through tctl (its secret never shown)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.github_standin import GithubStandIn
from tests.e2e.sso_support import BackgroundTsh, chromium, need_browser
from tests.helpers import Cluster, destroy, new_cluster

pytestmark = pytest.mark.integration
sync_api = need_browser()

SECRET = "github-client-secret-0123456789"
ROLE = """kind: role
version: v3
metadata: {name: gh-dev}
spec:
  options: {max_session_ttl: 30h}
  allow:
    logins: ["{{external.logins}}"]
    node_labels: {'*': '*'}
"""
CONNECTOR = f"""kind: github
version: v3
metadata: {{name: gh}}
spec:
  display: GitHub
  client_id: teleport-gh
  client_secret: {SECRET}
  redirect_url: https://WEB/v1/webapi/github/callback
  endpoint_url: STANDIN
  api_endpoint_url: STANDIN
  max_session_ttl: 1h
  teams_to_logins:
    - {{organization: acme, team: devs, logins: [octo, deploy], roles: [gh-dev]}}
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium(sync_api) as b:
        yield b


@pytest.fixture(scope="module")
def world() -> Iterator[Cluster]:
    c = new_cluster()
    gh: GithubStandIn | None = None
    try:
        gh = GithubStandIn("teleport-gh", SECRET, {
            "octocat": [("acme", "devs"), ("acme", "qa")],
            "loner": [("other-org", "devs")],
        })
        c.start()
        for name, text in (("role.yaml", ROLE), ("gh.yaml", CONNECTOR)):
            path = os.path.join(c.root, name)
            with open(path, "w") as f:
                f.write(text.replace("STANDIN", gh.url).replace("WEB", c.web_addr))
            c.tctl("create", path)
        yield c
    finally:
        destroy(c)
        if gh is not None:
            gh.close()


def _login(browser: Any, c: Cluster, who: str, decision: str = "Authorize") -> tuple[int, str, str, str]:
    home = os.path.join(c.root, f"home-{who}")
    tsh = BackgroundTsh("--insecure", f"--proxy={c.web_addr}", "login", "--auth=gh", "--browser=none",
                        home=home)
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.goto(tsh.url())
        page.get_by_label("Username").fill(who)
        page.get_by_role("button", name=decision).click()
        page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/callback\?response="), timeout=30000)
        text = page.locator("#sso-message").inner_text(timeout=15000)
        code, out, err = tsh.wait()
        return code, out, err, text
    finally:
        context.close()
        tsh.close()


def test_teams_map_to_roles_and_logins(browser: Any, world: Cluster) -> None:
    c = world
    code, out, err, text = _login(browser, c, "octocat")
    assert code == 0, err
    assert "You are logged in" in text
    assert "Logged in as: octocat" in out and "Roles:        gh-dev" in out
    logins = re.search(r"Logins:\s+(.*)", out)
    assert logins and set(logins.group(1).split(", ")) == {"octo", "deploy"}, out
    # the connector's max_session_ttl (1h) caps the certificate below the role's 30h
    assert re.search(r"valid for (59m|1h)", out), out
    user = json.loads(c.tctl("get", "user/octocat", "--format=json").stdout)
    assert user["spec"]["traits"]["github_teams"] == ["acme/devs", "acme/qa"]
    assert user["spec"]["traits"]["logins"] == ["octo", "deploy"]
    events = json.loads(c.tctl("events", "ls", "--type=user.login", "--format=json").stdout)
    ok = [e for e in events if e.get("user") == "octocat" and e.get("success")]
    assert ok and ok[-1]["method"] == "github" and ok[-1]["connector"] == "gh"


def test_user_in_no_mapped_team_is_refused(browser: Any, world: Cluster) -> None:
    code, out, err, text = _login(browser, world, "loner")
    assert code != 0
    assert "no mapping of the connector gives them a role" in err and "other-org/devs" in err, err


def test_cancelled_authorization_is_reported(browser: Any, world: Cluster) -> None:
    code, out, err, text = _login(browser, world, "octocat", decision="Cancel")
    assert code != 0
    assert "access_denied" in err, err


def test_web_ui_button(browser: Any, world: Cluster) -> None:
    c = world
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.goto(f"https://{c.web_addr}/web")
        page.get_by_role("link", name="Sign in with GitHub").click()
        page.get_by_label("Username").fill("octocat")
        page.get_by_role("button", name="Authorize").click()
        sync_api.expect(page.locator("#whoami")).to_have_text("octocat", timeout=20000)
        # the nodes view opens (this cluster runs no node)
        sync_api.expect(page.locator("#nodes-empty")).to_be_visible()
    finally:
        context.close()


def test_connector_resource_in_tctl(world: Cluster) -> None:
    c = world
    listing = c.tctl("get", "connectors").stdout
    assert re.search(r"github\s+gh\s+GitHub", listing), listing
    yaml_out = c.tctl("get", "github/gh", "--format=yaml").stdout
    assert "teams_to_logins" in yaml_out and SECRET not in yaml_out
    # a local password login still works next to SSO
    c.add_user("localuser", "localuser")
    code = c.otp.code("localuser", c.secrets["localuser"])
    res = c.tsh("--insecure", f"--proxy={c.web_addr}", "--user=localuser", "login", "--auth=local",
                input=f"secret-pass-1\n{code}\n")
    assert "Logged in as: localuser" in res.stdout
    # removing the connector ends its logins
    c.tctl("rm", "github/gh")
    assert "gh" not in c.tctl("get", "connectors").stdout
    res = c.tsh("--insecure", f"--proxy={c.web_addr}", "login", "--auth=gh", "--browser=none",
                check=False)
    assert res.returncode != 0 and "no connector named 'gh'" in res.stderr, res.stderr
