"""Single sign-on on the proxy's HTTPS listener: the redirect flow between the browser, the
identity provider and the auth service (which holds every secret and makes every decision).

- POST /v1/webapi/{github,oidc}/login/console: tsh starts a login (its public key, its loopback
  URL, the key to seal the answer with) and gets the provider's sign-in URL to open.
- GET /v1/webapi/{github,oidc}/login/web?connector_id=NAME: the login page's button. A random
  binding cookie is set in this browser (its digest goes with the request), then a redirect to
  the provider.
- GET /v1/webapi/{github,oidc}/callback: the provider sends the browser back here. tsh's logins
  go on to tsh's loopback listener with the sealed answer; browser logins get their session
  cookie, but only in the browser holding the binding cookie of that very login.
"""

from __future__ import annotations

import hashlib
import html
import secrets
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from teleport import defaults
from teleport.auth.client import AuthClient
from teleport.errors import BadParameter, TeleportError
from teleport.httpapi import json_body
from teleport.limits import LoginRateLimits, source_of
from teleport.proxy.webapi.security import set_session_cookie
from teleport.proxy.webapi.sessions import remote_addr

KINDS = ("github", "oidc")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest() if value else ""


def _page(title: str, message: str, status: int = 200, refresh: str = "") -> web.Response:
    """A small page for the browser (no script: the proxy's CSP allows none inline)."""
    meta = f'<meta http-equiv="refresh" content="0;url={html.escape(refresh)}">' if refresh else ""
    body = (
        f'<!doctype html><html lang="en"><meta charset="utf-8">{meta}<title>{html.escape(title)}'
        f"</title><h1>{html.escape(title)}</h1><p id=\"sso-message\">{html.escape(message)}</p>"
        '<p><a href="/web">Back to the login page</a></p></html>'
    )
    return web.Response(text=body, content_type="text/html", status=status)


class SSORoutes:
    """The SSO routes; stateless (the auth service keeps the login requests)."""

    def __init__(self, auth: AuthClient, login_rates: LoginRateLimits) -> None:
        self.auth = auth
        self.login_rates = login_rates

    def add_routes(self, router: web.UrlDispatcher) -> None:
        for kind in KINDS:
            router.add_post(f"/v1/webapi/{kind}/login/console", self._console(kind))
            router.add_get(f"/v1/webapi/{kind}/login/web", self._web(kind))
            router.add_get(f"/v1/webapi/{kind}/callback", self._callback(kind))

    async def ping_auth(self, second_factor: str) -> dict[str, Any]:
        """The `auth` part of /v1/webapi/ping: type, default connector, the connectors."""
        info = await self.auth.call("GET", "/v1/sso/connectors")
        return {
            "type": info.get("type", defaults.AUTH_TYPE), "second_factor": second_factor,
            "connector_name": info.get("connector_name", ""),
            "connectors": info.get("connectors", []),
        }

    def _limit(self, request: web.Request, connector: str) -> None:
        # every start stores a request at auth: the same per-address budget as password logins
        # (the second bucket is per address too: one per connector would let anyone throttle
        # everybody's sign-ins)
        source = source_of(remote_addr(request))
        self.login_rates.check(source, f"sso:{connector}:{source}")

    def _console(self, kind: str) -> Any:
        async def handler(request: web.Request) -> web.Response:
            data = await json_body(request)
            connector = data.get("connector_id")
            if not isinstance(connector, str) or not connector:
                raise BadParameter("missing connector_id")
            self._limit(request, connector)
            answer = await self.auth.call("POST", "/v1/sso/requests", {
                "kind": kind, "connector_id": connector,
                "public_key": str(data.get("pub_key") or ""), "ttl": data.get("ttl"),
                "redirect_url": str(data.get("redirect_url") or ""),
                "response_key": str(data.get("response_key") or ""),
            })
            return web.json_response({"redirect_url": answer["redirect_url"],
                                      "request_id": answer["request_id"]})

        return handler

    def _web(self, kind: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            connector = request.query.get("connector_id", "")
            if not connector:
                raise BadParameter("missing connector_id")
            self._limit(request, connector)
            binding = secrets.token_urlsafe(32)
            try:
                answer = await self.auth.call("POST", "/v1/sso/requests", {
                    "kind": kind, "connector_id": connector, "binding": _digest(binding),
                })
            except TeleportError as err:
                return _page("Sign-in failed", err.message, _status(err))
            resp = web.HTTPFound(answer["redirect_url"])
            # Lax: the provider's redirect back is a cross-site top-level navigation
            resp.set_cookie(defaults.SSO_BINDING_COOKIE, binding, max_age=defaults.SSO_REQUEST_TTL,
                            path="/", secure=True, httponly=True, samesite="Lax")
            return resp

        return handler

    def _callback(self, kind: str) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            params = {k: v for k, v in request.query.items()
                      if k in ("state", "code", "error", "error_description", "iss")}
            binding = request.cookies.get(defaults.SSO_BINDING_COOKIE, "")
            try:
                answer = await self.auth.call("POST", "/v1/sso/callback", {
                    "kind": kind, "params": params, "binding": _digest(binding),
                    "remote_addr": remote_addr(request),
                })
            except TeleportError as err:
                return _page("Sign-in failed", err.message, _status(err))
            if answer.get("console"):
                # to tsh's loopback listener (auth checked the URL when the login started)
                url = f"{answer['client_redirect_url']}?{urlencode({'response': answer['response']})}"
                raise web.HTTPFound(url)
            # the session cookie is SameSite=Strict: set it here, then let the page move on by
            # itself, so that the first request to /web is a same-site one that carries it
            resp = _page("Signed in", f"Signed in as {answer['user']}.", refresh="/web")
            set_session_cookie(resp, str(answer["session_id"]), float(answer["expires"]) - _now())
            resp.del_cookie(defaults.SSO_BINDING_COOKIE, path="/", secure=True, httponly=True,
                            samesite="Lax")
            return resp

        return handler


def _status(err: TeleportError) -> int:
    return err.http_status if 400 <= err.http_status < 600 else 403


def _now() -> float:
    return time.time()
