"""The web UI's session pages in a real browser (Debian's Chromium driven by Playwright) against
real teleport processes: the terminal follows the window's size, its session plays back in the
web player, a browser joins a live session started by `tsh ssh` (on a PTY), the audit page shows
the session's events to a user whose roles allow it and nothing to one whose roles do not, the
terminal closes when its web session ends, nodes appear without a reload, and the pages fit a
phone. One browser for the module; screenshots go to each test's tmp_path."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.test_web_ui import CHROMIUM, CHROMIUM_FLAGS
from tests.helpers import (
    Cluster,
    NodeProc,
    cli,
    destroy,
    env_with,
    free_port,
    new_cluster,
    os_account,
    wait_port,
)

pytestmark = pytest.mark.integration

OS_USER = "tpwebsess"
PASSWORD = "secret-pass-1"
NOROLE = f"""kind: role
version: v3
metadata: {{name: nothing-to-read}}
spec:
  allow: {{logins: [{OS_USER}], node_labels: {{'*': '*'}}}}
"""

if not os.path.exists(CHROMIUM):
    pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")
pexpect = pytest.importorskip("pexpect", reason="pip install -e '.[test]'")
expect = sync_api.expect


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


def _invite(c: Cluster, name: str, *flags: str) -> None:
    out = c.tctl("users", "add", name, *flags).stdout
    url = next(w for w in out.split() if w.startswith("https://"))
    secret = c.invite_secret(url)
    c.tsh("--insecure", "signup", url,
          input=f"{PASSWORD}\n{PASSWORD}\n{c.otp.code(name, secret)}\n",
          env=env_with(TELEPORT_HOME=os.path.join(c.root, f"signup-{name}")))
    c.secrets[name] = secret


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    from teleport.proxy.webapi.static import built

    if not built():
        pytest.fail("the web UI is not built: run teleport-web-build (see .ci/run)")
    with os_account(OS_USER):
        c = new_cluster(roles="auth,proxy,node", ssh_extra="  labels: {env: e2e}\n")
        try:
            c.start()
            wait_port(c.ports["node"], 20, c.proc)
            # an auditor reads events and recordings; the access role joins and plays sessions
            _invite(c, "sally", "--roles=access,auditor", f"--logins={OS_USER}")
            role = os.path.join(c.root, "norole.yaml")
            with open(role, "w") as f:
                f.write(NOROLE)
            c.tctl("create", role)
            _invite(c, "nemo", "--roles=nothing-to-read", f"--logins={OS_USER}")
            yield c
        finally:
            destroy(c)


def _login(browser: Any, c: Cluster, user: str = "sally", width: int = 1280,
           height: int = 800) -> tuple[Any, Any]:
    context = browser.new_context(ignore_https_errors=True, viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(f"https://{c.web_addr}/web")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("One-time code").fill(c.otp.code(user, c.secrets[user]))
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#nodes-table tbody tr", has_text="testnode")).to_be_visible(timeout=15000)
    return context, page


def _open_terminal(page: Any) -> Any:
    page.get_by_role("navigation").get_by_role("button", name="Nodes").click()
    page.get_by_role("button", name="Connect to testnode").click()
    expect(page.locator("#terminal-status")).to_have_text("connected", timeout=15000)
    screen = page.locator("#terminal .xterm-rows")
    expect(screen).to_contain_text("$", timeout=15000)
    page.locator("#terminal").click()
    return screen


def _run(page: Any, line: str) -> None:
    page.keyboard.type(line)
    page.keyboard.press("Enter")


def _stty_size(page: Any, screen: Any, tag: str) -> tuple[int, int]:
    # the marker is computed by the shell, so the typed command line never matches it
    _run(page, f"echo {tag}-$((1+1)) $(stty size) end")
    expect(screen).to_contain_text(re.compile(rf"{tag}-2 \d+ \d+ end"), timeout=15000)
    m = re.search(rf"{tag}-2 (\d+) (\d+) end", screen.inner_text())
    assert m, screen.inner_text()
    return int(m.group(1)), int(m.group(2))


def _until(what: str, check: Callable[[], bool], timeout: float = 45) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_terminal_resizes_and_its_session_plays_back(browser: Any, cluster: Cluster, tmp_path: Any) -> None:
    context, page = _login(browser, cluster)
    try:
        screen = _open_terminal(page)
        rows, cols = _stty_size(page, screen, "big")
        page.set_viewport_size({"width": 800, "height": 500})
        _until("the terminal to shrink", lambda: page.evaluate(
            "document.querySelector('#terminal .xterm-screen').offsetWidth") < 780)
        small_rows, small_cols = _stty_size(page, screen, "small")
        assert small_cols < cols and small_rows < rows, (rows, cols, small_rows, small_cols)
        page.set_viewport_size({"width": 1280, "height": 800})
        _run(page, "echo web-$((6*7))")
        expect(screen).to_contain_text("web-42", timeout=15000)
        page.screenshot(path=str(tmp_path / "terminal.png"))
        _run(page, "sleep 3; echo slept-$((1+1))")  # an idle gap for the player to skip
        expect(screen).to_contain_text("slept-2", timeout=15000)
        _run(page, "exit")
        expect(page.locator("#terminal-status")).to_contain_text("session ended (exit status 0)",
                                                                   timeout=15000)

        # the recording reaches auth after the session: the list shows it once it is uploaded
        nav = page.get_by_role("navigation")
        row = page.locator("#recordings-table tbody tr", has_text="testnode").first

        def listed() -> bool:
            nav.get_by_role("button", name="Recordings").click()
            try:
                expect(row).to_be_visible(timeout=2000)
                return True
            except AssertionError:
                return False

        _until("the recording in the list", listed)
        expect(row).to_contain_text("sally")
        expect(row).to_contain_text(OS_USER)
        page.screenshot(path=str(tmp_path / "recordings.png"))
        row.get_by_role("button", name=re.compile("^Play session of sally")).click()
        expect(page.locator("#player-status")).to_have_text(re.compile("playing|finished"), timeout=15000)
        page.get_by_label("Speed").select_option("16")
        player = page.locator("#player-screen .xterm-rows")
        expect(player).to_contain_text("web-42", timeout=30000)
        expect(page.locator("#player-status")).to_have_text("finished", timeout=30000)
        page.screenshot(path=str(tmp_path / "player.png"))
        # seeking to the start shows an empty screen again; the end shows the output
        seek = page.get_by_label("Position")
        seek.fill("0")
        expect(player).not_to_contain_text("web-42")
        seek.fill(seek.get_attribute("max") or "0")
        expect(player).to_contain_text("web-42")
        # the idle gap (sleep 3) plays as a second; unskipped it takes its recorded time
        skipped = float(seek.get_attribute("max") or "0")
        page.get_by_label("Skip idle gaps").uncheck()
        real = float(seek.get_attribute("max") or "0")
        assert real > skipped + 2, (real, skipped)
        page.get_by_label("Skip idle gaps").check()
        # play/pause from the keyboard
        page.get_by_role("button", name="Play").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#player-status")).to_have_text(re.compile("playing|finished"))

        # the audit log shows the session's events
        nav.get_by_role("button", name="Audit log").click()
        events = page.locator("#events-table tbody tr")
        for kind in ("session.start", "session.end"):
            expect(events.filter(has_text=kind).filter(has_text="sally").first).to_be_visible(
                timeout=15000)
    finally:
        context.close()


def test_browser_joins_a_session_started_by_tsh(browser: Any, cluster: Cluster, tmp_path: Any) -> None:
    c = cluster
    home = os.path.join(c.root, "home-sally")
    env = env_with(TELEPORT_HOME=home, TERM="xterm")
    c.tsh("--insecure", f"--proxy={c.web_addr}", "--user=sally", "login",
          input=f"{PASSWORD}\n{c.otp.code('sally', c.secrets['sally'])}\n", env=env)
    cmd = cli("tsh")
    child = pexpect.spawn(cmd[0], [*cmd[1:], "ssh", f"{OS_USER}@testnode"], env=env,
                          encoding="utf-8", timeout=30, dimensions=(30, 100))
    context = None
    try:
        child.expect(r"\$ ")
        child.sendline("echo before-$((3*3))")
        child.expect("before-9")
        context, page = _login(browser, c)
        page.get_by_role("navigation").get_by_role("button", name="Active sessions").click()
        join = page.get_by_role("button", name="Join session of sally on testnode")
        expect(join).to_be_visible(timeout=20000)
        expect(page.locator("#sessions-table tbody tr").first).to_contain_text(OS_USER)
        page.screenshot(path=str(tmp_path / "sessions.png"))
        join.click()
        expect(page.locator("#terminal-status")).to_have_text("connected", timeout=15000)
        screen = page.locator("#terminal .xterm-rows")
        expect(screen).to_contain_text("joined session", timeout=15000)
        child.expect("joined the session")
        # typed in tsh: the browser sees it
        child.sendline("echo typed-in-tsh-$((7*11))")
        expect(screen).to_contain_text("typed-in-tsh-77", timeout=15000)
        # typed in the browser: tsh sees it
        page.locator("#terminal").click()
        _run(page, "echo from-web-$((2*3))")
        child.expect("from-web-6")
        page.screenshot(path=str(tmp_path / "joined.png"))
        child.sendline("exit")
        child.expect(pexpect.EOF)
        expect(page.locator("#terminal-status")).to_contain_text("session ended", timeout=15000)
    finally:
        if child.isalive():
            child.terminate(force=True)
        if context is not None:
            context.close()


def test_audit_log_shows_what_roles_allow(browser: Any, cluster: Cluster, tmp_path: Any) -> None:
    context, page = _login(browser, cluster)
    try:
        page.get_by_role("navigation").get_by_role("button", name="Audit log").click()
        rows = page.locator("#events-table tbody tr")
        expect(rows.first).to_be_visible(timeout=15000)
        page.get_by_label("Event type").select_option("user.login")
        page.get_by_label("User", exact=True).fill("sally")
        page.get_by_role("button", name="Show events").click()
        expect(rows.filter(has_not_text="sally")).to_have_count(0, timeout=15000)
        expect(rows.first).to_contain_text("user.login")
        texts = rows.all_inner_texts()
        assert len(texts) >= 2 and all("user.login" in t and "sally" in t for t in texts), texts
        # newest first
        times = page.locator("#events-table tbody tr td:first-child").all_inner_texts()
        assert times == sorted(times, reverse=True), times
        # a date range that ends before any event shows none
        page.get_by_label("From date", exact=True).fill("2001-01-01")
        page.get_by_label("To date", exact=True).fill("2001-01-02")
        page.get_by_role("button", name="Show events").click()
        expect(page.get_by_text("No events match.")).to_be_visible()
        page.get_by_label("From date", exact=True).fill("")
        page.get_by_label("To date", exact=True).fill("")
        page.get_by_label("Event type").select_option("")
        page.get_by_label("User", exact=True).fill("")
        page.get_by_role("button", name="Show events").click()
        expect(rows.first).to_be_visible(timeout=15000)
        page.screenshot(path=str(tmp_path / "audit.png"))
        # the keyboard alone moves between pages: Tab along the navigation, Enter opens
        page.get_by_role("navigation").get_by_role("button", name="Nodes").focus()
        page.keyboard.press("Tab")
        expect(page.get_by_role("button", name="Active sessions")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", name="Active sessions")).to_be_visible()
        assert page.url.endswith("/web/sessions")
        # the address names the page: a reload comes back to it
        page.reload()
        expect(page.get_by_role("heading", name="Active sessions")).to_be_visible(timeout=15000)
    finally:
        context.close()

    # a user whose roles grant no event or session rule sees none of them
    context, page = _login(browser, cluster, "nemo")
    try:
        nav = page.get_by_role("navigation")
        nav.get_by_role("button", name="Audit log").click()
        expect(page.locator("#events-error")).to_contain_text("You may not read the audit log",
                                                              timeout=15000)
        expect(page.locator("#events-table tbody tr")).to_have_count(0)
        nav.get_by_role("button", name="Recordings").click()
        expect(page.locator("#recordings-error")).to_contain_text("access denied", timeout=15000)
        expect(page.locator("#recordings-table tbody tr")).to_have_count(0)
        nav.get_by_role("button", name="Active sessions").click()
        expect(page.locator("#sessions-error")).to_contain_text("access denied", timeout=15000)
        page.screenshot(path=str(tmp_path / "audit-denied.png"))
    finally:
        context.close()


def test_terminal_closes_when_its_web_session_ends(browser: Any, cluster: Cluster) -> None:
    context, page = _login(browser, cluster)
    try:
        _open_terminal(page)
        # log out in another tab: the server ends the session, the open terminal follows
        other = context.new_page()
        other.goto(f"https://{cluster.web_addr}/web/nodes")
        other.get_by_role("button", name="Log out").click()
        expect(other.get_by_label("User name")).to_be_visible()
        expect(page.locator("#terminal-status")).to_contain_text("log in again", timeout=30000)
    finally:
        context.close()


def test_phone_window_and_nodes_that_come_and_go(browser: Any, cluster: Cluster, tmp_path: Any) -> None:
    c = cluster
    context, page = _login(browser, c, width=390, height=844)
    node = NodeProc(c, f"phonenode{free_port()}")
    try:
        page.screenshot(path=str(tmp_path / "phone-nodes.png"))
        for name in ("Active sessions", "Recordings", "Audit log", "Nodes"):
            page.get_by_role("navigation").get_by_role("button", name=name).click()
            page.wait_for_load_state("networkidle")
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= 390, f"{name}: the page is {overflow}px wide on a 390px phone"
        # a node that joins shows up in the open list without a reload
        token = c.tctl("nodes", "add", "--ttl=5m").stdout.split("--token=")[1].split()[0]
        node.start(f"--token={token}")
        expect(page.locator("#nodes-table tbody tr", has_text=node.name)).to_be_visible(timeout=45000)
    finally:
        node.destroy()
        context.close()


def test_terminal_says_when_the_connection_drops(browser: Any, tmp_path: Any) -> None:
    # a cluster of its own: the test kills its proxy
    with os_account("tpwebdrop"):
        c = new_cluster(roles="auth,proxy,node")
        try:
            c.start()
            wait_port(c.ports["node"], 20, c.proc)
            _invite(c, "sally", "--roles=access", "--logins=tpwebdrop")
            context, page = _login(browser, c)
            try:
                _open_terminal(page)
                assert c.proc is not None
                c.proc.kill()  # the proxy dies without a goodbye
                expect(page.locator("#terminal-status")).to_have_text(
                    "connection to the proxy lost: reconnect from the node list", timeout=30000)
                expect(page.locator("#terminal .xterm-rows")).to_contain_text("connection to the proxy lost")
                page.screenshot(path=str(tmp_path / "dropped.png"))
            finally:
                context.close()
        finally:
            destroy(c)
