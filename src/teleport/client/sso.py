"""tsh's single sign-on login: a loopback listener for the answer, the browser for the rest.

tsh makes a key pair and a one-time sealing key, listens on 127.0.0.1 (a free port), and asks the
proxy for a login with a connector. It opens (or prints) the identity provider's URL; after the
user signs in, the proxy sends the browser to the listener with the answer sealed under tsh's
key: certificates for tsh's public key, or the reason for a refusal. Answers that do not open
with the key are ignored.
"""

from __future__ import annotations

import sys
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any
from urllib.parse import parse_qs, urlsplit

from teleport import defaults
from teleport.auth.sso import seal
from teleport.client.keystore import KeyStore
from teleport.client.session import LoginOutcome, _save_login
from teleport.client.webclient import WebClient
from teleport.errors import AccessDenied, BadParameter, TeleportError

KINDS = ("github", "oidc")
_DONE_PAGE = (
    '<!doctype html><html lang="en"><meta charset="utf-8"><title>{title}</title><h1>{title}</h1>'
    '<p id="sso-message">{message}</p></html>'
)


def pick_connector(info: dict[str, Any], wanted: str) -> dict[str, Any]:
    """The connector for `--auth=WANTED` (a connector's name, or a kind meaning the cluster's
    default connector or the only one of that kind); without --auth, the cluster's default."""
    auth = info.get("auth") or {}
    conns = [c for c in auth.get("connectors") or [] if isinstance(c, dict)]
    default = str(auth.get("connector_name") or "")
    names = ", ".join(f"{c.get('name')} ({c.get('kind')})" for c in conns) or "none"
    want = wanted or default or str(auth.get("type") or "")
    for c in conns:
        if c.get("name") == want:
            return c
    if want in KINDS:
        of_kind = [c for c in conns if c.get("kind") == want]
        chosen = [c for c in of_kind if c.get("name") == default] or of_kind
        if len(chosen) == 1:
            return chosen[0]
        if len(chosen) > 1:
            raise BadParameter(f"several {want} connectors exist: pick one with --auth=NAME ({names})")
    raise BadParameter(f"no connector named {want!r} on this cluster; its connectors: {names}")


class _Listener:
    """The loopback HTTP listener that waits for the sealed answer."""

    def __init__(self, response_key: str) -> None:
        self.response_key = response_key
        self.done = threading.Event()
        self.payload: dict[str, Any] = {}
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                query = parse_qs(urlsplit(self.path).query)
                sealed = (query.get("response") or [""])[0]
                try:
                    payload = seal.unseal(listener.response_key, sealed)
                except (BadParameter, ValueError):
                    self._answer(400, "Not this login", "This answer was not meant for the tsh "
                                 "login that is waiting; it was ignored.")
                    return
                if payload.get("error"):
                    self._answer(403, "Login failed", str(payload["error"]))
                else:
                    self._answer(200, "Login successful",
                                 "You are logged in; return to the terminal. You may close this window.")
                if not listener.done.is_set():
                    listener.payload = payload
                    listener.done.set()

            def _answer(self, status: int, title: str, message: str) -> None:
                import html

                body = _DONE_PAGE.format(title=html.escape(title), message=html.escape(message)).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the query holds the sealed answer: never logged

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/callback"

    def __enter__(self) -> _Listener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def login(client: WebClient, info: dict[str, Any], connector: dict[str, Any], ttl_seconds: float | None,
          store: KeyStore, browser: str = "", timeout: float = defaults.SSO_CALLBACK_TIMEOUT,
          out: IO[str] | None = None) -> LoginOutcome:
    """Log in with an SSO connector through the browser; saves the certificates like a password
    login. `browser="none"` only prints the URL."""
    from teleport.ca import keys as cakeys

    out = out or sys.stderr
    kind, name = str(connector.get("kind")), str(connector.get("name"))
    if kind not in KINDS:
        raise BadParameter(f"connector {name!r} has unknown kind {kind!r}")
    key = cakeys.generate_private_key("ed25519")
    public = cakeys.public_key_to_openssh(key)
    response_key = seal.new_key()
    with _Listener(response_key) as listener:
        resp = client.call("POST", f"/v1/webapi/{kind}/login/console", {
            "connector_id": name, "pub_key": public, "ttl": ttl_seconds,
            "redirect_url": listener.url, "response_key": response_key,
        })
        url = str(resp["redirect_url"])
        out.write(f"If the browser does not open, open this URL to sign in with {name}:\n  {url}\n")
        out.flush()
        if browser != "none":
            try:
                webbrowser.open(url)
            except Exception:  # noqa: BLE001 - no browser: the printed URL is the way
                pass
        if not listener.done.wait(timeout):
            raise TeleportError(
                f"timed out after {int(timeout)}s waiting for the sign-in with {name} to finish "
                "in the browser: run 'tsh login' again"
            )
        payload = listener.payload
    if payload.get("error"):
        raise AccessDenied(f"login with {name} failed: {payload['error']}")
    _check_cert_key(str(payload.get("cert", "")), public)
    return _save_login(client, info, key, payload, store)


def _check_cert_key(cert: str, public: str) -> None:
    """The certificate must certify our own key (fail closed on anything else)."""
    from cryptography.hazmat.primitives import serialization

    try:
        parsed = serialization.load_ssh_public_identity(cert.encode())
        mine = serialization.load_ssh_public_key(public.encode())
        certified = parsed.public_key() if hasattr(parsed, "public_key") else parsed
        same = certified.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH) \
            == mine.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    except Exception:  # noqa: BLE001 - any parse failure is a refusal
        same = False
    if not same:
        raise AccessDenied("the proxy returned a certificate for another key: login refused")
