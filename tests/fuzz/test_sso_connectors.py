"""Fuzz: SSO connector resources (`kind: github`, `kind: oidc`) as `tctl create` and the auth API
read them, the identity mappings, and the sealed console answer."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from teleport.auth.sso import seal
from teleport.auth.sso.connectors import (
    Connector,
    GithubConnector,
    OIDCConnector,
    claims_to_traits,
    github_mapping,
    oidc_roles,
    parse_connector,
)
from teleport.auth.sso.flow import check_client_redirect_url
from teleport.errors import BadParameter
from tests.fuzz.strategies import expect_ok_or_error, json_like, mutated, nasty_strings

VALID_GITHUB: dict[str, Any] = {
    "kind": "github", "version": "v3", "metadata": {"name": "github"},
    "spec": {
        "client_id": "id", "client_secret": "secret", "display": "GitHub",
        "redirect_url": "https://proxy.example.com:3080/v1/webapi/github/callback",
        "teams_to_logins": [{"organization": "acme", "team": "devs", "logins": ["dev"],
                             "roles": ["access"]}],
        "max_session_ttl": "8h",
    },
}
VALID_OIDC: dict[str, Any] = {
    "kind": "oidc", "version": "v2", "metadata": {"name": "okta"},
    "spec": {
        "client_id": "id", "client_secret": "secret", "issuer_url": "https://idp.example.com",
        "redirect_url": "https://proxy.example.com:3080/v1/webapi/oidc/callback",
        "scope": ["groups"], "username_claim": "email",
        "claims_to_roles": [{"claim": "groups", "value": "^dev-.*$", "roles": ["access"]}],
    },
}


def _exercise(conn: Connector) -> None:
    """Everything the auth service reads from an accepted connector works."""
    assert type(conn).from_json(conn.to_json()) == conn
    assert "client_secret" not in conn.without_secrets()["spec"]
    assert isinstance(conn.display, str) and conn.max_session_ttl >= 60
    if isinstance(conn, OIDCConnector):
        assert "openid" in conn.scopes and conn.issuer_url and conn.username_claim
        roles = oidc_roles(conn, {"groups": ["dev-x", "y"], "email": ["a@b"]})
        assert all(isinstance(r, str) for r in roles)
    if isinstance(conn, GithubConnector):
        roles, logins = github_mapping(conn, [("acme", "devs"), ("x", "y")])
        assert all(isinstance(r, str) for r in roles + logins)
        assert conn.endpoint_url.startswith("http") and conn.api_endpoint_url.startswith("http")


@given(st.sampled_from([VALID_GITHUB, VALID_OIDC]).flatmap(mutated))
@example({**VALID_OIDC, "spec": {**VALID_OIDC["spec"], "issuer_url": "http://idp.example.com"}})
@example({**VALID_OIDC, "spec": {**VALID_OIDC["spec"], "claims_to_roles": [
    {"claim": "g", "value": "^a{99999999999}$", "roles": ["x"]}]}})
@example({**VALID_GITHUB, "spec": {**VALID_GITHUB["spec"], "max_session_ttl": float("nan")}})
@example({**VALID_GITHUB, "metadata": {"name": "../x"}})
def test_mutated_connectors(data: Any) -> None:
    """A valid connector with one value replaced by junk parses fully or raises BadParameter."""
    conn = expect_ok_or_error(parse_connector, data, errors=(BadParameter,))
    if conn is not None:
        _exercise(conn)


@given(json_like)
def test_random_trees(data: Any) -> None:
    conn = expect_ok_or_error(parse_connector, data, errors=(BadParameter,))
    if conn is not None:
        _exercise(conn)


def test_valid_connectors_parse() -> None:
    for data in (VALID_GITHUB, VALID_OIDC):
        conn = parse_connector(copy.deepcopy(data))
        _exercise(conn)
    bad = copy.deepcopy(VALID_OIDC)
    bad["spec"]["issuer_url"] = "http://idp.example.com"
    assert expect_ok_or_error(parse_connector, bad, errors=(BadParameter,)) is None


@given(st.dictionaries(nasty_strings, json_like, max_size=8))
def test_claims_to_traits(claims: dict[str, Any]) -> None:
    """Any claims map to traits of string lists; protocol claims never become traits."""
    traits = claims_to_traits({**claims, "nonce": "n", "aud": ["x"]})
    assert "nonce" not in traits and "aud" not in traits
    assert all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in traits.values())


@given(st.one_of(nasty_strings, st.sampled_from([
    "http://127.0.0.1:1234/callback", "http://localhost:1/x", "http://[::1]:5/cb",
    "http://evil.example.com:80/callback", "https://127.0.0.1:1/callback",
    "http://127.0.0.1/callback", "http://127.0.0.1:1/cb?x=1", "http://u:p@127.0.0.1:1/",
    "http://127.0.0.1:99999/x", "http://127.0.0.1.evil.com:1/x",
])))
def test_client_redirect_urls(url: str) -> None:
    """Only a loopback http URL with a port (tsh's listener) is accepted."""
    ok = expect_ok_or_error(check_client_redirect_url, url, errors=(BadParameter,))
    if ok is not None:
        from urllib.parse import urlsplit

        parts = urlsplit(ok)
        assert parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1") \
            or (parts.hostname or "").startswith("127.")
        assert parts.port


@given(st.one_of(nasty_strings, st.binary(max_size=80).map(lambda b: b.decode("latin-1"))))
@example("")
def test_unseal_junk(sealed: str) -> None:
    """Anything that is not a sealed answer for this key is a BadParameter, never a crash."""
    key = seal.new_key()
    expect_ok_or_error(seal.unseal, key, sealed, errors=(BadParameter,))


def test_seal_round_trip_and_other_key() -> None:
    key, other = seal.new_key(), seal.new_key()
    sealed = seal.seal(key, {"cert": "x"})
    assert seal.unseal(key, sealed) == {"cert": "x"}
    assert expect_ok_or_error(seal.unseal, other, sealed, errors=(BadParameter,)) is None
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    assert expect_ok_or_error(seal.unseal, key, flipped, errors=(BadParameter,)) is None
