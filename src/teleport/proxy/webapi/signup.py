"""Signup from an invite in the browser, and logging in with a security key.

    GET  /web/invite/<token>                          the app's page (it shows the signup form)
    GET  /v1/webapi/users/invites/<token>             who is invited, logins, TOTP secret + QR
    POST /v1/webapi/users/invites/<token>/webauthn    a key registration challenge for the invite
    POST /v1/webapi/signup                            complete the invite; sets the session cookie
    POST /v1/webapi/webauthn/login/begin              {user, password} -> a key challenge
    POST /v1/webapi/webauthn/login/finish             {user, webauthn} -> sets the session cookie

These are public (the invite token, the password or the key is the credential); like the login,
they refuse other origins and non-JSON bodies, and count against the login rate limits.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

from aiohttp import web

from teleport import defaults
from teleport.auth.client import AuthClient
from teleport.errors import BadParameter
from teleport.httpapi import json_body, path_param
from teleport.limits import LoginRateLimits, source_of
from teleport.proxy.webapi.security import check_origin, set_session_cookie
from teleport.proxy.webapi.sessions import SessionRoutes, remote_addr
from teleport.proxy.webapi.static import StaticRoutes
from teleport.types.names import api_path


def qr_svg_data_url(text: str) -> str:
    """The QR code of `text` as an SVG data: URL (made here, so the page runs no QR code)."""
    import qrcode
    import qrcode.image.svg

    img = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathFillImage, border=2, box_size=8)
    buf = io.BytesIO()
    img.save(buf)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


async def json_from_page(request: web.Request) -> dict[str, Any]:
    """A public form's body: same origin and JSON only (a cross-site form cannot send JSON
    without a CORS preflight, which this proxy never grants)."""
    check_origin(request)
    if request.content_type != "application/json":
        raise BadParameter("send the request as application/json")
    return await json_body(request)


def _user(data: dict[str, Any]) -> str:
    user = data.get("user")
    if not isinstance(user, str) or not user:
        raise BadParameter("missing user name")
    return user


class SignupRoutes:
    def __init__(self, auth: AuthClient, login_rates: LoginRateLimits) -> None:
        self.auth = auth
        self.login_rates = login_rates

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/web/invite/{token}", StaticRoutes().page)
        router.add_get("/v1/webapi/users/invites/{token}", self.get_invite)
        router.add_post("/v1/webapi/users/invites/{token}/webauthn", self.invite_key)
        router.add_post("/v1/webapi/signup", self.signup)
        router.add_post("/v1/webapi/webauthn/login/begin", self.login_begin)
        router.add_post("/v1/webapi/webauthn/login/finish", self.login_finish)

    async def get_invite(self, request: web.Request) -> web.Response:
        """What `tsh signup` and the signup page show (plus the QR code as an image)."""
        info = await self.auth.get_invite(path_param(request, "token"))
        info["min_password_length"] = defaults.MIN_PASSWORD_LENGTH
        if info.get("otp_uri"):
            info["otp_qr"] = qr_svg_data_url(str(info["otp_uri"]))
        return web.json_response(info)

    async def invite_key(self, request: web.Request) -> web.Response:
        check_origin(request)
        token = path_param(request, "token")
        return web.json_response(
            await self.auth.call("POST", api_path("/v1/invites/{token}/webauthn", token=token), {}))

    async def signup(self, request: web.Request) -> web.Response:
        data = await json_from_page(request)
        token = data.get("invite_token")
        if not isinstance(token, str) or not token:
            raise BadParameter("missing invite_token")
        body: dict[str, Any] = {
            "password": str(data.get("password") or ""), "otp_code": str(data.get("otp_code") or ""),
            "web_session": True,
        }
        if isinstance(data.get("webauthn"), dict):
            body["webauthn"] = data["webauthn"]
        result = await self.auth.call(
            "POST", api_path("/v1/invites/{token}/complete", token=token), body)
        return self._logged_in(result["web_session"])

    async def login_begin(self, request: web.Request) -> web.Response:
        data = await json_from_page(request)
        user = _user(data)
        remote = remote_addr(request)
        self.login_rates.check(source_of(remote), user)
        return web.json_response(await self.auth.call("POST", "/v1/webauthn/login/begin", {
            "user": user, "password": str(data.get("password") or ""), "remote_addr": remote,
        }))

    async def login_finish(self, request: web.Request) -> web.Response:
        data = await json_from_page(request)
        user = _user(data)
        remote = remote_addr(request)
        self.login_rates.check(source_of(remote), user)
        answer = await self.auth.call("POST", "/v1/websessions/webauthn", {
            "user": user, "webauthn": data.get("webauthn"), "remote_addr": remote,
        })
        return self._logged_in(answer)

    @staticmethod
    def _logged_in(session: dict[str, Any]) -> web.Response:
        session = dict(session)
        session_id = str(session.pop("session_id"))
        resp = web.json_response(SessionRoutes._public(session))
        set_session_cookie(resp, session_id, float(session["expires"]) - time.time())
        return resp
