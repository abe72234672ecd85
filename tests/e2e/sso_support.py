"""Single sign-on test support: the OIDC provider process (npm `oidc-provider`, tests/oidc/),
a `tsh login` running in the background whose sign-in URL the browser opens, and Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.helpers import cli, env_with, free_port, kill_proc, wait_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
OIDC_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "oidc")


def need_browser() -> Any:
    """Playwright's sync API, or skip the module when Chromium or Playwright is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)",
                    allow_module_level=True)
    return pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")


@contextmanager
def chromium(sync_api: Any) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


class OIDCProvider:
    """`node tests/oidc/provider.mjs` on a free loopback port."""

    def __init__(self, clients: list[dict[str, Any]], accounts: dict[str, dict[str, Any]]) -> None:
        if shutil.which("node") is None:
            pytest.fail("node is missing: apt-get install nodejs (see .ci/run)")
        if not os.path.isdir(os.path.join(OIDC_DIR, "node_modules", "oidc-provider")):
            pytest.fail("the test OIDC provider is not installed: cd tests/oidc && npm ci (see .ci/run)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="tp-oidc-")
        self.config = os.path.join(self.dir, "config.json")
        with open(self.config, "w") as f:
            json.dump({"port": self.port, "clients": clients, "accounts": accounts}, f)
        self.log = open(os.path.join(self.dir, "provider.log"), "wb")
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            ["node", os.path.join(OIDC_DIR, "provider.mjs"), self.config],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=OIDC_DIR,
        )
        try:
            wait_port(self.port, 30, self.proc)
        except BaseException:
            self.close()
            raise

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.proc is not None:
            kill_proc(self.proc)
            self.proc = None
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class BackgroundTsh:
    """`tsh login` with --browser=none in the background: the test reads the sign-in URL it
    prints and opens it in Chromium, as a user would."""

    def __init__(self, *args: str, home: str) -> None:
        self.proc = subprocess.Popen(
            [*cli("tsh"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env_with(TELEPORT_HOME=home),
        )
        self.stderr_lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def url(self, timeout: float = 60) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in list(self.stderr_lines):
                if line.strip().startswith("http"):
                    return line.strip()
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.close()
        raise AssertionError(f"tsh printed no sign-in URL:\n{''.join(self.stderr_lines)}")

    def wait(self, timeout: float = 60) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) once tsh has finished."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise
        self._reader.join(timeout=5)
        return self.proc.returncode, out, "".join(self.stderr_lines)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def provider_sign_in(page: Any, sync_api: Any, login: str, consent: bool = True) -> None:
    """Complete oidc-provider's sign-in form (any password) and its consent page in Chromium."""
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any-password")
    page.get_by_role("button", name="Sign-in").click()
    if consent:
        page.get_by_role("button", name="Continue").click()
    else:
        page.get_by_role("link", name="[ Cancel ]").click()
