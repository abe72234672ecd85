"""A STAND-IN for GitHub (github.com cannot be reached from the test machines): a small local
server that speaks the parts of GitHub's OAuth web flow and REST API the github connector uses,
as GitHub documents them:

- GET  /login/oauth/authorize?client_id&redirect_uri&scope&state&code_challenge[_method]: a sign-in
  and authorize page (a form: the GitHub login to sign in as; Authorize or Cancel). Authorize
  redirects to redirect_uri with `code` and `state`; Cancel with `error=access_denied`.
- POST /login/oauth/access_token (form: client_id, client_secret, code, redirect_uri,
  code_verifier; `Accept: application/json`): `{access_token, token_type, scope}`, or GitHub's
  `{error: bad_verification_code}` with status 200.
- GET  /user and /user/teams with `Authorization: Bearer TOKEN`: the login, and the teams with
  their organization.
It checks what GitHub checks (client secret, redirect URI, single-use codes, PKCE S256), so the
connector's requests are exercised for real; it is not GitHub.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import secrets
import threading
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.helpers import free_port


class GithubStandIn:
    """Runs on 127.0.0.1 in a thread of the test process; users: {login: [(org, team), ...]}."""

    def __init__(self, client_id: str, client_secret: str, users: dict[str, list[tuple[str, str]]]) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.users = users
        self.codes: dict[str, dict[str, str]] = {}
        self.tokens: dict[str, str] = {}
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        started = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(started,), daemon=True)
        self.thread.start()
        if not started.wait(20):
            raise RuntimeError("the GitHub stand-in did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/login/oauth/authorize", self.authorize_page)
        app.router.add_post("/login/oauth/authorize", self.authorize)
        app.router.add_post("/login/oauth/access_token", self.access_token)
        app.router.add_get("/user", self.user)
        app.router.add_get("/user/teams", self.teams)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        started.set()
        self.loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            if self.runner is not None:
                await self.runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def authorize_page(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != self.client_id:
            return web.Response(status=404, text="unknown client_id")
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v)}">'
            for k, v in q.items() if k in ("redirect_uri", "state", "code_challenge", "code_challenge_method")
        )
        body = (
            "<!doctype html><title>Sign in to GitHub (stand-in)</title><h1>Authorize the application</h1>"
            f'<form method="post">{hidden}<label for="login">Username</label>'
            '<input id="login" name="login">'
            '<button name="decision" value="authorize">Authorize</button>'
            '<button name="decision" value="cancel">Cancel</button></form>'
        )
        return web.Response(text=body, content_type="text/html")

    async def authorize(self, request: web.Request) -> web.Response:
        form = await request.post()
        redirect_uri, state = str(form.get("redirect_uri", "")), str(form.get("state", ""))
        if str(form.get("decision")) != "authorize":
            raise web.HTTPFound(f"{redirect_uri}?{urlencode({'error': 'access_denied', 'error_description': 'The user has denied your application access.', 'state': state})}")
        code = secrets.token_hex(10)
        self.codes[code] = {"login": str(form.get("login", "")), "redirect_uri": redirect_uri,
                            "challenge": str(form.get("code_challenge", ""))}
        raise web.HTTPFound(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}")

    async def access_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = self.codes.pop(str(form.get("code", "")), None)  # single use
        verifier = str(form.get("code_verifier", ""))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if (grant is None or form.get("client_id") != self.client_id
                or form.get("client_secret") != self.client_secret
                or form.get("redirect_uri") != grant["redirect_uri"]
                or (grant["challenge"] and challenge != grant["challenge"])):
            return web.json_response({"error": "bad_verification_code",
                                      "error_description": "The code passed is incorrect or expired."})
        token = "gho_" + secrets.token_hex(16)
        self.tokens[token] = grant["login"]
        return web.json_response({"access_token": token, "token_type": "bearer", "scope": "read:org"})

    def _login_of(self, request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        login = self.tokens.get(auth.removeprefix("Bearer ").removeprefix("token "))
        if login is None:
            raise web.HTTPUnauthorized(text='{"message": "Bad credentials"}', content_type="application/json")
        return login

    async def user(self, request: web.Request) -> web.Response:
        login = self._login_of(request)
        return web.json_response({"login": login, "id": abs(hash(login)) % 10**8, "type": "User"})

    async def teams(self, request: web.Request) -> web.Response:
        login = self._login_of(request)
        if request.query.get("page", "1") != "1":
            return web.json_response([])
        out: list[dict[str, Any]] = [
            {"slug": team, "name": team, "organization": {"login": org}}
            for org, team in self.users.get(login, [])
        ]
        return web.json_response(out)
