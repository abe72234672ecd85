"""The web UI's files as the proxy serves them: a clear page when the build is missing, no
inline script in the app's page, security headers, and no way out of the served folders."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from teleport.proxy.web import WebProxy
from teleport.proxy.webapi import static


async def _client() -> TestClient[Any, Any]:
    app = WebProxy(None, "c", "h:3023", "h:3080").app()  # type: ignore[arg-type]
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_missing_build_says_how_to_build(monkeypatch: Any, tmp_path: Any) -> None:
    monkeypatch.setattr(static, "VENDOR_DIR", str(tmp_path / "nothing"))
    client = await _client()
    try:
        resp = await client.get("/web")
        text = await resp.text()
        assert resp.status == 503 and "teleport-web-build" in text and "npm ci" in text
        assert resp.headers["X-Frame-Options"] == "DENY"
    finally:
        await client.close()


async def test_app_page_has_no_inline_script_and_files_stay_inside(monkeypatch: Any, tmp_path: Any) -> None:
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    for name in static.VENDOR_FILES:
        (vendor / name).write_text("/* test */")
    monkeypatch.setattr(static, "VENDOR_DIR", str(vendor))
    client = await _client()
    try:
        for path in ("/web", "/web/nodes"):
            resp = await client.get(path)
            page = await resp.text()
            assert resp.status == 200 and "Content-Security-Policy" in resp.headers
            scripts = re.findall(r"<script[^>]*>", page)
            assert scripts and all("src=" in s for s in scripts), scripts
            assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers either
        assert (await client.get("/web/assets/app.js")).headers["Content-Type"].startswith("text/javascript")
        assert (await client.get("/web/vendor/xterm.js")).status == 200
        for bad in ("/web/assets/..%2Fbuild.py", "/web/assets/.gitignore", "/web/vendor/..%2F..%2Fbuild.py",
                    "/web/assets/index.py", "/web/other"):
            assert (await client.get(bad)).status == 404, bad
    finally:
        await client.close()
