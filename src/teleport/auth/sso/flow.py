"""The auth server's side of a single sign-on login (joined into AuthServer as a mixin).

1. `create_sso_request`: the proxy asks for a login with a connector, on behalf of tsh (the
   client's public key, the loopback URL to send the answer to, and a key to seal it with) or of
   a browser (the digest of a binding cookie the proxy set in that browser). A request id (the
   OAuth `state`), a PKCE verifier and an OIDC nonce are stored for SSO_REQUEST_TTL.
2. `sso_callback`: the identity provider sent the browser back to the proxy with `code` and
   `state`. The request is consumed (once), the browser binding checked, the code exchanged, the
   identity verified and mapped to roles and traits; an external user is created or refreshed
   with an expiry; then certificates for the client's key (sealed for tsh) or a web session.
Every refusal fails closed and is written to the audit log with the connector's name.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from teleport import defaults
from teleport.auth.core import AuthCore
from teleport.auth.sso import github, oidc, seal
from teleport.auth.sso.connectors import (
    GithubConnector,
    Mapped,
    OIDCConnector,
    check_connector_name,
    check_kind,
    claims_to_traits,
    github_mapping,
    is_loopback_host,
    no_role_message,
    oidc_roles,
)
from teleport.auth.sso.store import SSOStore
from teleport.ca import keys as cakeys
from teleport.errors import AccessDenied, BadParameter, NotFound, TeleportError
from teleport.types.names import check_logins, check_user_name
from teleport.types.resources import Metadata, User

log = logging.getLogger(__name__)


def check_client_redirect_url(value: Any) -> str:
    """tsh's loopback listener: http://127.0.0.1:PORT/... (or localhost, [::1]) and nothing else,
    so that a login link made by someone else can never deliver certificates off this machine."""
    if not isinstance(value, str) or len(value) > 512:
        raise BadParameter("redirect_url must be tsh's loopback URL, http://127.0.0.1:PORT/callback")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        port = None
        parts = urlsplit("")
    if parts.scheme != "http" or not is_loopback_host(parts.hostname or "") or not port \
            or parts.username or parts.password or parts.fragment or parts.query:
        raise BadParameter(
            f"redirect_url {value[:120]!r} refused: certificates are only sent to tsh's own "
            "loopback listener (http://127.0.0.1:PORT/PATH)"
        )
    return value


def binding_matches(stored: str, presented: str) -> bool:
    return bool(stored) and bool(presented) and hmac.compare_digest(stored.encode(), presented.encode())


class SSOMixin(AuthCore):
    """Connectors and SSO logins."""

    auth_type: str = defaults.AUTH_TYPE
    connector_name: str = ""
    _oidc: oidc.OIDCClient | None = None

    @property
    def sso(self) -> SSOStore:
        return SSOStore(self.store.backend)

    def _oidc_client(self) -> oidc.OIDCClient:
        if self._oidc is None:
            self._oidc = oidc.OIDCClient()
        return self._oidc

    async def public_connectors(self) -> dict[str, Any]:
        """What login pages and tsh may know: the default auth type and connector, and each
        connector's kind, name and display name (never a secret)."""
        conns = await self.sso.list_connectors()
        return {
            "type": self.auth_type,
            "connector_name": self.connector_name,
            "connectors": [{"kind": c.KIND, "name": c.name, "display": c.display} for c in conns],
        }

    # 1. the request -------------------------------------------------------------------
    async def create_sso_request(
        self, kind: str, connector: str, *, public_key: str = "", ttl: float | None = None,
        client_redirect_url: str = "", response_key: str = "", binding_digest: str = "",
    ) -> dict[str, Any]:
        """Start a login; returns {request_id, redirect_url (the provider's sign-in page)}."""
        from teleport.auth.login import clamp_ttl

        conn = await self.sso.get_connector(check_kind(kind), check_connector_name(connector))
        console = bool(public_key or client_redirect_url or response_key)
        if console:
            try:
                cakeys.load_public_key(public_key)
            except Exception as exc:
                raise BadParameter(f"bad public key: {exc}") from None
            check_client_redirect_url(client_redirect_url)
            seal.check_key(response_key)
        elif len(binding_digest) != 64:
            raise BadParameter("a browser login needs the digest of its binding cookie")
        request_id = secrets.token_urlsafe(32)
        pkce = oidc.new_pkce()
        nonce = secrets.token_urlsafe(32)
        if isinstance(conn, OIDCConnector):
            doc = await self._oidc_client().discover(conn)
            url = oidc.authorization_url(doc, conn, request_id, nonce, pkce.challenge)
        else:
            assert isinstance(conn, GithubConnector)
            url = github.authorization_url(conn, request_id, pkce.challenge)
        record = {
            "kind": conn.KIND, "connector": conn.name, "created": time.time(),
            "verifier": pkce.verifier, "nonce": nonce,
            "console": console, "public_key": public_key,
            "ttl": min(clamp_ttl(ttl), conn.max_session_ttl),
            "client_redirect_url": client_redirect_url, "response_key": response_key,
            "binding": binding_digest,
        }
        await self.sso.put_request(request_id, record)
        return {"request_id": request_id, "redirect_url": url}

    # 2. the callback ------------------------------------------------------------------
    async def sso_callback(self, kind: str, params: dict[str, str], binding_digest: str = "",
                           remote_addr: str = "") -> dict[str, Any]:
        """Finish a login from the provider's redirect (`params`: its query).

        Console logins answer {console: True, client_redirect_url, response} (the response sealed
        for tsh, a refusal included); browser logins {console: False, session_id, ...}.
        Raises AccessDenied for unknown state, a browser that did not start the login, and any
        refusal of a browser login."""
        state = params.get("state") or ""
        req = await self.sso.get_request(state)
        if req["kind"] != kind:
            raise AccessDenied("this sign-in was started with another kind of connector (state mismatch)")
        if not req["console"] and not binding_matches(req["binding"], binding_digest):
            raise AccessDenied(
                "state mismatch: this sign-in was started in another browser (or its cookies were "
                "cleared); start the login again from the login page"
            )
        await self.sso.consume_request(state)
        method, connector = str(req["kind"]), str(req["connector"])
        seen: dict[str, str] = {}  # who the provider said signed in, once known (for the audit log)
        try:
            mapped = await self._identity(req, params, seen)
            user = await self._upsert_external_user(mapped, req)
        except TeleportError as err:
            # fail closed, and tell tsh why (a deleted connector or an unreachable provider too)
            self.on_event("user.login", user=seen.get("user", ""), method=method, success=False,
                          error=err.message, connector=connector, addr_remote=remote_addr or None)
            log.info("%s login with connector %s refused: %s", method, connector, err.message)
            if req["console"]:
                return self._console_answer(req, {"error": err.message})
            raise
        self.on_event("user.login", user=user.name, method=method, success=True,
                      connector=connector, addr_remote=remote_addr or None)
        if req["console"]:
            result = await self.generate_user_certs(user, req["public_key"], req["ttl"])  # type: ignore[attr-defined]
            return self._console_answer(req, await self._certs_body(result))
        return {"console": False, **await self._web_session(user, float(req["ttl"]))}

    def _console_answer(self, req: dict[str, Any], payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "console": True,
            "client_redirect_url": req["client_redirect_url"],
            "response": seal.seal(req["response_key"], payload),
            "error": payload.get("error", ""),
        }

    async def _certs_body(self, result: Any) -> dict[str, Any]:
        """The same answer as a password login's (/v1/webapi/ssh/certs)."""
        return {
            "username": result.username, "cert": result.cert, "tls_cert": result.tls_cert.decode(),
            "roles": result.roles, "logins": result.logins, "expires": result.expires,
            "host_signers": [{"cluster_name": self.cluster_name, "type": "host",
                              "checking_keys": await self.checking_keys("host")}],
            "tls_ca": self.tls_ca_cert.decode(), "cluster_name": self.cluster_name,
        }

    async def _identity(self, req: dict[str, Any], params: dict[str, str],
                        seen: dict[str, str]) -> Mapped:
        """Who the provider says signed in, mapped through the connector (AccessDenied if not)."""
        if params.get("error"):
            detail = params.get("error_description") or ""
            raise AccessDenied(
                f"the identity provider did not sign you in: {params['error'][:100]}"
                + (f" ({detail[:200]})" if detail else "")
                + (" — consent was denied" if params["error"] == "access_denied" else "")
            )
        code = oidc.check_code(params.get("code"))
        conn = await self.sso.get_connector(req["kind"], req["connector"])
        if isinstance(conn, OIDCConnector):
            client = self._oidc_client()
            doc = await client.discover(conn)
            if params.get("iss") and params["iss"] != doc["issuer"]:
                # RFC 9207: the answer came from another provider than this login's (mix-up)
                raise AccessDenied("the sign-in answer names another issuer than the connector's")
            tokens = await client.exchange(conn, doc, code, req["verifier"])
            claims = await client.verify_id_token(conn, doc, tokens["id_token"], req["nonce"])
            info = await client.userinfo(doc, str(tokens.get("access_token") or ""), str(claims["sub"]))
            traits = claims_to_traits({**info, **claims})
            name_values = traits.get(conn.username_claim) or []
            if not name_values:
                raise AccessDenied(
                    f"the identity provider gave no {conn.username_claim!r} claim to name the user "
                    "(set the connector's username_claim, or add the scope that carries it)"
                )
            username = name_values[0]
            seen["user"] = username
            if conn.username_claim == "email" and traits.get("email_verified") == ["false"]:
                raise AccessDenied(f"the identity provider has not verified the address {username!r}")
            roles = oidc_roles(conn, traits)
            what = ", ".join(f"{c['claim']}={c['value']}" for c in conn.spec["claims_to_roles"])
        else:
            assert isinstance(conn, GithubConnector)
            gh = github.GithubClient(conn)
            token = await gh.exchange(code, req["verifier"])
            username = await gh.user(token)
            seen["user"] = username
            teams = await gh.teams(token)
            roles, logins = github_mapping(conn, teams)
            traits = {"github_teams": [f"{o}/{t}" for o, t in teams], "logins": logins}
            what = "teams: " + (", ".join(f"{o}/{t}" for o, t in teams) or "none")
        try:
            check_user_name(username)
        except BadParameter as exc:
            raise AccessDenied(f"the identity provider's user name cannot be used: {exc.message}") from None
        if "logins" in traits:
            try:
                traits["logins"] = check_logins(traits["logins"])
            except BadParameter as exc:
                raise AccessDenied(f"the identity's logins are refused: {exc.message}") from None
        existing = {r.name for r in await self.store.list_roles()}
        roles = [r for r in roles if r in existing]
        if not roles:
            raise AccessDenied(no_role_message(conn.KIND, conn.name, username, what))
        return Mapped(username, roles, traits)

    async def _upsert_external_user(self, mapped: Mapped, req: dict[str, Any]) -> User:
        """Create or refresh the external user (expiring with this login); never take over a local
        user of the same name."""
        try:
            current = await self.store.get_user(mapped.username)
        except NotFound:
            current = None
        if current is not None and not (current.spec.get("created_by") or {}).get("connector"):
            raise AccessDenied(
                f"a local user named {mapped.username!r} exists: an SSO login cannot use that name "
                "(delete or rename the local user first)"
            )
        expires = time.time() + float(req["ttl"])
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        user = User(
            metadata=Metadata(name=mapped.username, expires=datetime.fromtimestamp(expires, UTC)),
            spec={
                "roles": mapped.roles, "traits": mapped.traits,
                "created_at": (current.spec.get("created_at") if current else None) or now,
                "created_by": {"connector": {"type": req["kind"], "id": req["connector"],
                                             "identity": mapped.username}, "time": now},
            },
        )
        await self.store.upsert_user(user, expires=expires)
        return user

    async def _web_session(self, user: User, ttl: float) -> dict[str, Any]:
        """A browser session for an SSO user (as a password login's, but ending with the login's
        TTL); returns its id (for the cookie) and public fields."""
        from teleport.auth.websession import WebSession, _digest

        now = time.time()
        session_id = secrets.token_urlsafe(32)
        ws = WebSession(
            user=user.name, csrf_token=secrets.token_urlsafe(32), created=now,
            expires=now + min(float(defaults.WEB_SESSION_TTL), ttl),
            idle_timeout=float(defaults.WEB_SESSION_IDLE_TIMEOUT), last_active=now,
        )
        await self.store.put_web_session(_digest(session_id), ws.to_dict(), ws.deadline())
        return {"session_id": session_id, "user": user.name, "expires": ws.expires}
