"""The single-page app's files under /web.

The app's own sources live in teleport/web/app/ (plain ES modules and CSS, committed); the
third-party parts (xterm.js) are copied by the build step (`teleport-web-build`, or `npm ci &&
npm run build` in src/teleport/web/) into teleport/web/static/vendor/, which is git-ignored.
When they are missing, /web says how to build them instead of showing a broken page.
"""

from __future__ import annotations

import html
import os
import re

from aiohttp import web

from teleport.errors import NotFound

WEB_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "web")
APP_DIR = os.path.join(WEB_DIR, "app")
VENDOR_DIR = os.path.join(WEB_DIR, "static", "vendor")
# what the page needs from the build; /web checks for these
VENDOR_FILES = ("xterm.js", "xterm.css", "addon-fit.js")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml",
          ".png": "image/png", ".map": "application/json"}

NOT_BUILT = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Web UI not built</title>
<h1>The web UI's files are not built</h1>
<p>This proxy serves the web UI from <code>{dir}</code>, which lacks the third-party files
(xterm.js) that the build step copies from the npm registry.</p>
<p>Build them on the proxy's machine (needs <code>node</code> and <code>npm</code>):</p>
<pre>teleport-web-build</pre>
<p>(or <code>cd src/teleport/web &amp;&amp; npm ci &amp;&amp; npm run build</code> in a source
checkout), then reload this page. <code>tsh</code> works without them.</p></html>"""


def built() -> bool:
    return all(os.path.isfile(os.path.join(VENDOR_DIR, f)) for f in VENDOR_FILES)


class StaticRoutes:
    """GET /web[/page] (the app's page) and its files."""

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/web", self.page)
        router.add_get("/web/{page:(login|nodes|terminal|sessions|recordings|audit)}", self.page)
        router.add_get("/web/assets/{name}", self.asset)
        router.add_get("/web/vendor/{name}", self.vendor)

    async def page(self, request: web.Request) -> web.Response:
        if not built():
            return web.Response(text=NOT_BUILT.format(dir=html.escape(VENDOR_DIR)),
                                content_type="text/html", status=503)
        return _file(APP_DIR, "index.html", cache=False)

    async def asset(self, request: web.Request) -> web.Response:
        return _file(APP_DIR, request.match_info["name"])

    async def vendor(self, request: web.Request) -> web.Response:
        return _file(VENDOR_DIR, request.match_info["name"])


def _file(folder: str, name: str, cache: bool = True) -> web.Response:
    """A file directly inside `folder` (no path ever leaves it: the name has no separators)."""
    ext = os.path.splitext(name)[1]
    path = os.path.join(folder, name)
    if not _NAME.fullmatch(name) or ext not in _TYPES or not os.path.isfile(path):
        raise NotFound(f"no such file: {name[:80]!r}")
    with open(path, "rb") as f:
        body = f.read()
    resp = web.Response(body=body, content_type=_TYPES[ext])
    # short cache: files change with the package, and their names carry no version
    resp.headers["Cache-Control"] = "no-cache" if not cache else "max-age=300"
    return resp
