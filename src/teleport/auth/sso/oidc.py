"""OpenID Connect, the authorization code flow with PKCE, as the auth service runs it.

Discovery (`/.well-known/openid-configuration`, whose issuer must be the connector's exactly),
the code exchange at the token endpoint, and the ID token: its signature checked against the
provider's published keys, and its issuer, audience, expiry and nonce by `joserfc` (a maintained
JOSE library); nothing of the token is read before that check. PKCE's challenge comes from
`authlib`. Userinfo claims are added when the provider has a userinfo endpoint (their `sub`
must be the ID token's).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from teleport import defaults
from teleport.auth.sso.connectors import OIDCConnector, check_url
from teleport.errors import AccessDenied, BadParameter, ConnectionProblem

log = logging.getLogger(__name__)

# Asymmetric algorithms only: an HS256 token would be "signed" with the client secret, which is
# not proof that the provider issued it.
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


@dataclass
class PKCE:
    verifier: str
    challenge: str


def new_pkce() -> PKCE:
    """A fresh PKCE verifier (RFC 7636: 43-128 characters) and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)
    return PKCE(verifier, create_s256_code_challenge(verifier))


def authorization_url(discovery: dict[str, Any], conn: OIDCConnector, state: str, nonce: str,
                      challenge: str) -> str:
    """Where the browser goes to sign in at the provider."""
    params = {
        "response_type": "code",
        "client_id": conn.spec["client_id"],
        "redirect_uri": conn.spec["redirect_url"],
        "scope": " ".join(conn.scopes),
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    endpoint = str(discovery["authorization_endpoint"])
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"


class OIDCClient:
    """Talks to OIDC providers; caches each issuer's discovery document and keys for a while."""

    def __init__(self) -> None:
        self._discovery: dict[str, tuple[float, dict[str, Any]]] = {}
        self._keys: dict[str, tuple[float, dict[str, Any]]] = {}

    async def _get_json(self, url: str, what: str, headers: dict[str, str] | None = None) -> Any:
        timeout = aiohttp.ClientTimeout(total=defaults.SSO_HTTP_TIMEOUT)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as s, s.get(url, headers=headers) as r:
                if r.status != 200:
                    raise ConnectionProblem(f"the identity provider's {what} ({url}) answered HTTP {r.status}")
                return await r.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ConnectionProblem(f"cannot read the identity provider's {what} at {url}: {exc}") from None

    async def discover(self, conn: OIDCConnector) -> dict[str, Any]:
        """The provider's discovery document (cached); its issuer must be the connector's."""
        issuer = conn.issuer_url
        cached = self._discovery.get(issuer)
        if cached and cached[0] > time.time():
            return cached[1]
        doc = await self._get_json(f"{issuer}/.well-known/openid-configuration", "discovery document")
        if not isinstance(doc, dict):
            raise ConnectionProblem(f"the discovery document of {issuer} is not a JSON object")
        if str(doc.get("issuer", "")).rstrip("/") != issuer:
            raise AccessDenied(
                f"the discovery document of {issuer} names issuer {str(doc.get('issuer'))[:120]!r}: "
                "set the connector's issuer_url to the provider's issuer exactly"
            )
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            check_url(doc.get(key), f"{issuer} discovery {key}")
        if doc.get("userinfo_endpoint"):
            check_url(doc["userinfo_endpoint"], f"{issuer} discovery userinfo_endpoint")
        self._discovery[issuer] = (time.time() + defaults.OIDC_DISCOVERY_CACHE_SECONDS, doc)
        return doc

    async def _key_set(self, doc: dict[str, Any], refresh: bool) -> KeySet:
        uri = str(doc["jwks_uri"])
        cached = self._keys.get(uri)
        if refresh or not cached or cached[0] <= time.time():
            jwks = await self._get_json(uri, "signing keys (jwks_uri)")
            if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
                raise ConnectionProblem(f"the provider's jwks_uri {uri} did not return a key set")
            cached = (time.time() + defaults.OIDC_DISCOVERY_CACHE_SECONDS, jwks)
            self._keys[uri] = cached
        # keys of kinds joserfc does not know (or symmetric ones) are left out, not trusted
        usable = [k for k in cached[1]["keys"] if isinstance(k, dict) and k.get("kty") in ("RSA", "EC", "OKP")]
        try:
            return KeySet.import_key_set({"keys": usable})
        except (JoseError, ValueError, TypeError) as exc:
            raise ConnectionProblem(f"the provider's signing keys cannot be read: {exc}") from None

    async def exchange(self, conn: OIDCConnector, doc: dict[str, Any], code: str,
                       verifier: str) -> dict[str, Any]:
        """Trade the authorization code (with the PKCE verifier) for the provider's tokens."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": conn.spec["redirect_url"],
            "code_verifier": verifier,
        }
        # client_secret_basic, each part form-encoded first (RFC 6749 section 2.3.1)
        auth = aiohttp.BasicAuth(
            urlencode({"": conn.spec["client_id"]})[1:], urlencode({"": conn.spec["client_secret"]})[1:]
        )
        timeout = aiohttp.ClientTimeout(total=defaults.SSO_HTTP_TIMEOUT)
        url = str(doc["token_endpoint"])
        try:
            async with aiohttp.ClientSession(timeout=timeout) as s, s.post(
                url, data=form, auth=auth, headers={"Accept": "application/json"}
            ) as r:
                body = await r.json(content_type=None)
                status = r.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ConnectionProblem(f"cannot reach the provider's token endpoint {url}: {exc}") from None
        if status != 200 or not isinstance(body, dict):
            reason = body.get("error_description") or body.get("error") if isinstance(body, dict) else ""
            raise AccessDenied(f"the identity provider refused the login code: {reason or f'HTTP {status}'}")
        if not isinstance(body.get("id_token"), str):
            raise AccessDenied("the identity provider returned no ID token (is 'openid' in its scopes?)")
        return body

    async def verify_id_token(self, conn: OIDCConnector, doc: dict[str, Any], id_token: str,
                              nonce: str) -> dict[str, Any]:
        """The ID token's claims, after its signature (the provider's keys), issuer, audience,
        expiry and nonce were checked; AccessDenied for any failure."""
        allowed = [a for a in ALGORITHMS if a in (doc.get("id_token_signing_alg_values_supported") or ALGORITHMS)]
        token = None
        for refresh in (False, True):  # once more with fresh keys: the provider may have rotated
            keys = await self._key_set(doc, refresh)
            try:
                token = jwt.decode(id_token, keys, algorithms=allowed)
                break
            except (JoseError, ValueError, TypeError) as exc:
                err = exc
        if token is None:
            log.warning("ID token refused: %s", err)
            raise AccessDenied(f"the ID token's signature is not valid ({type(err).__name__}): login refused")
        registry = JWTClaimsRegistry(
            leeway=defaults.OIDC_CLOCK_LEEWAY,
            iss={"essential": True, "value": str(doc["issuer"])},
            aud={"essential": True, "value": str(conn.spec["client_id"])},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(token.claims)
        except JoseError as exc:
            raise AccessDenied(f"the ID token was refused: {exc}") from None
        aud = token.claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and token.claims.get("azp") != conn.spec["client_id"]:
            raise AccessDenied("the ID token has several audiences and is not authorized for this client")
        return dict(token.claims)

    async def userinfo(self, doc: dict[str, Any], access_token: str, sub: str) -> dict[str, Any]:
        """The userinfo endpoint's claims ({} without one); its `sub` must be the ID token's."""
        url = doc.get("userinfo_endpoint")
        if not url or not access_token:
            return {}
        info = await self._get_json(str(url), "userinfo endpoint",
                                    headers={"Authorization": f"Bearer {access_token}"})
        if not isinstance(info, dict):
            return {}
        if info.get("sub") != sub:
            raise AccessDenied("the provider's userinfo is about another subject than the ID token")
        return info


def check_code(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise BadParameter("the identity provider's callback has no valid 'code'")
    return value
