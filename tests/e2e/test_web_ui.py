"""The web UI in a real browser (Debian's Chromium driven by Playwright) against real teleport
processes: log in, find the node, open a terminal, run a command, exit; the session is recorded
like any other. One browser for the module; screenshots go to the test's tmp_path."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import Cluster, destroy, env_with, new_cluster, os_account, wait_port

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
# what Chromium needs on this closed network and as root (see the machine notes); Playwright adds
# --headless and a fresh temporary --user-data-dir of its own, which it deletes on close
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
OS_USER = "tpwebtest"
PASSWORD = "secret-pass-1"

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")


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
    with os_account(OS_USER):
        c = new_cluster(roles="auth,proxy,node", ssh_extra="  labels: {env: e2e, team: web}\n")
        try:
            c.start()
            wait_port(c.ports["node"], 20, c.proc)
            out = c.tctl("users", "add", "webby", "--roles=access", f"--logins={OS_USER}").stdout
            url = next(w for w in out.split() if w.startswith("https://"))
            secret = c.invite_secret(url)
            c.tsh("--insecure", "signup", url,
                  input=f"{PASSWORD}\n{PASSWORD}\n{c.otp.code('webby', secret)}\n",
                  env=env_with(TELEPORT_HOME=os.path.join(c.root, "signup-home")))
            c.secrets["webby"] = secret
            yield c
        finally:
            destroy(c)


def test_login_nodes_terminal_and_recording(browser: Any, cluster: Cluster, tmp_path: Any) -> None:
    c = cluster
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(f"https://{c.web_addr}/web")
        page.get_by_label("User name").fill("webby")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("One-time code").fill(c.otp.code("webby", c.secrets["webby"]))
        page.screenshot(path=str(tmp_path / "login.png"))
        page.get_by_role("button", name="Log in").click()

        row = page.locator("#nodes-table tbody tr", has_text="testnode")
        sync_api.expect(row).to_be_visible(timeout=15000)
        sync_api.expect(page.locator("#whoami")).to_have_text("webby")
        page.screenshot(path=str(tmp_path / "nodes.png"))
        # the search box filters
        page.get_by_label("Search").fill("no-such-node")
        sync_api.expect(page.get_by_text("No nodes match.")).to_be_visible()
        page.get_by_label("Search").fill("")
        sync_api.expect(row).to_be_visible()
        # labels are chips; a click filters by that label
        row.get_by_role("button", name="env: e2e").click()
        sync_api.expect(page.get_by_label("Search")).to_have_value("env=e2e")
        sync_api.expect(row).to_be_visible()

        page.get_by_role("button", name="Connect to testnode").click()
        sync_api.expect(page.locator("#terminal-status")).to_have_text("connected", timeout=15000)
        screen = page.locator("#terminal .xterm-rows")
        sync_api.expect(screen).to_contain_text("$", timeout=15000)  # the shell's prompt
        page.locator("#terminal").click()
        page.keyboard.type("echo web-$((6*7))")
        page.keyboard.press("Enter")
        sync_api.expect(screen).to_contain_text("web-42", timeout=15000)
        page.screenshot(path=str(tmp_path / "terminal.png"))
        page.keyboard.type("exit")
        page.keyboard.press("Enter")
        sync_api.expect(page.locator("#terminal-status")).to_contain_text(
            "session ended (exit status 0)", timeout=15000)
        assert not [e for e in errors if "Content Security Policy" in e], errors

        # logout ends the session: back to the login form, and the page's session is gone
        page.get_by_role("button", name="Log out").click()
        sync_api.expect(page.get_by_label("User name")).to_be_visible()
        page.reload()
        sync_api.expect(page.get_by_label("User name")).to_be_visible()
    finally:
        context.close()

    # the node recorded an ordinary session: it shows in tsh recordings ls
    home = env_with(TELEPORT_HOME=os.path.join(c.root, "home-webby"))
    c.tsh("--insecure", f"--proxy={c.web_addr}", "--user=webby", "login",
          input=f"{PASSWORD}\n{c.otp.code('webby', c.secrets['webby'])}\n", env=home)
    deadline = time.time() + 30
    out = ""
    while time.time() < deadline:
        out = c.tsh("recordings", "ls", env=home).stdout
        if re.search(rf"\bwebby\s+{OS_USER}\s+testnode\b", out):
            return
        time.sleep(0.5)
    raise AssertionError(f"the web session is not in tsh recordings ls:\n{out}")
