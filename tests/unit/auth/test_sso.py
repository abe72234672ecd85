"""Single sign-on's pure parts: connector mappings, connector choice in tsh, the loopback-only
redirect rule, the sealed answer, and the configuration keys."""

from __future__ import annotations

import copy

import pytest

from teleport.auth.sso import seal
from teleport.auth.sso.connectors import (
    GithubConnector,
    OIDCConnector,
    check_url,
    claims_to_traits,
    github_mapping,
    no_role_message,
    oidc_roles,
    parse_connector,
)
from teleport.auth.sso.flow import binding_matches, check_client_redirect_url
from teleport.client.sso import pick_connector
from teleport.config.fileconf import parse_config_text
from teleport.errors import BadParameter, ConfigError
from tests.fuzz.test_sso_connectors import VALID_GITHUB, VALID_OIDC


def _oidc(mappings: list[dict[str, object]]) -> OIDCConnector:
    data = copy.deepcopy(VALID_OIDC)
    data["spec"]["claims_to_roles"] = mappings
    conn = parse_connector(data)
    assert isinstance(conn, OIDCConnector)
    return conn


def test_oidc_roles_literal_glob_and_regex() -> None:
    conn = _oidc([
        {"claim": "groups", "value": "admins", "roles": ["admin"]},
        {"claim": "groups", "value": "dev-*", "roles": ["access"]},
        {"claim": "email", "value": "^.*@example\\.com$", "roles": ["auditor", "access"]},
    ])
    assert oidc_roles(conn, {"groups": ["dev-web"]}) == ["access"]
    assert oidc_roles(conn, {"groups": ["admins", "dev-x"], "email": ["a@example.com"]}) == [
        "admin", "access", "auditor"]
    assert oidc_roles(conn, {"groups": ["administrators"], "email": ["a@example.org"]}) == []
    assert oidc_roles(conn, {}) == []


def test_github_mapping_is_case_insensitive_and_merges() -> None:
    data = copy.deepcopy(VALID_GITHUB)
    data["spec"]["teams_to_logins"] = [
        {"organization": "Acme", "team": "devs", "logins": ["dev"], "roles": ["access"]},
        {"organization": "acme", "team": "ops", "logins": ["root", "dev"], "roles": ["admin"]},
    ]
    conn = parse_connector(data)
    assert isinstance(conn, GithubConnector)
    assert github_mapping(conn, [("acme", "DEVS"), ("acme", "ops")]) == (["access", "admin"], ["dev", "root"])
    assert github_mapping(conn, [("other", "devs")]) == ([], [])


def test_claims_to_traits() -> None:
    traits = claims_to_traits({"sub": "x", "email": "a@b", "groups": ["g1", 2, "g2"], "n": 5,
                               "email_verified": True, "nonce": "n", "iss": "i"})
    assert traits == {"sub": ["x"], "email": ["a@b"], "groups": ["g1", "g2"], "email_verified": ["true"]}


@pytest.mark.parametrize("url", ["http://idp.example.com", "ftp://x", "https://", "https://u:p@x",
                                 "https://x/#f", "", "https://x:99999"])
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(BadParameter):
        check_url(url, "issuer_url")


def test_check_url_accepts() -> None:
    assert check_url("https://idp.example.com/realms/x", "u")
    assert check_url("http://127.0.0.1:5556/dex", "u")
    assert check_url("http://localhost:1", "u")


def test_connector_needs_mappings_and_secret() -> None:
    for data, key in ((VALID_OIDC, "claims_to_roles"), (VALID_GITHUB, "teams_to_logins"),
                      (VALID_OIDC, "client_secret")):
        bad = copy.deepcopy(data)
        del bad["spec"][key]
        with pytest.raises(BadParameter, match=key):
            parse_connector(bad)


def test_client_redirect_url_is_loopback_only() -> None:
    assert check_client_redirect_url("http://127.0.0.1:5000/callback")
    assert check_client_redirect_url("http://[::1]:5000/callback")
    for bad in ("https://127.0.0.1:5000/callback", "http://attacker.example:5000/callback",
                "http://127.0.0.1/callback", "http://127.0.0.1:5000/cb?steal=1", 5):
        with pytest.raises(BadParameter, match="loopback"):
            check_client_redirect_url(bad)  # type: ignore[arg-type]


def test_binding_matches() -> None:
    assert binding_matches("a" * 64, "a" * 64)
    assert not binding_matches("a" * 64, "b" * 64)
    assert not binding_matches("", "")


def test_seal() -> None:
    key = seal.new_key()
    assert seal.unseal(key, seal.seal(key, {"error": "x"})) == {"error": "x"}
    with pytest.raises(BadParameter):
        seal.check_key("short")


PING = {"auth": {"type": "oidc", "connector_name": "corp", "connectors": [
    {"kind": "oidc", "name": "corp", "display": "Corp"},
    {"kind": "oidc", "name": "partner", "display": "Partner"},
    {"kind": "github", "name": "gh", "display": "GitHub"},
]}}


def test_pick_connector() -> None:
    assert pick_connector(PING, "")["name"] == "corp"  # the cluster's default
    assert pick_connector(PING, "partner")["name"] == "partner"  # by name
    assert pick_connector(PING, "github")["name"] == "gh"  # the only one of its kind
    assert pick_connector(PING, "oidc")["name"] == "corp"  # the default among several
    with pytest.raises(BadParameter, match="no connector named 'nope'.*corp \\(oidc\\)"):
        pick_connector(PING, "nope")
    several = {"auth": {"type": "local", "connectors": PING["auth"]["connectors"]}}
    with pytest.raises(BadParameter, match="several oidc connectors"):
        pick_connector(several, "oidc")


def test_no_role_message_names_connector_and_what() -> None:
    msg = no_role_message("oidc", "corp", "bob@x", "groups=devs")
    assert "'corp'" in msg and "groups=devs" in msg and "bob@x" in msg


def test_config_authentication_type_and_connector() -> None:
    cfg = parse_config_text(
        "auth_service:\n  authentication: {type: oidc, connector_name: corp}\n", "t.yaml")
    assert cfg.auth_service.auth_type == "oidc" and cfg.auth_service.connector_name == "corp"
    cfg = parse_config_text("auth_service:\n  authentication: {type: github}\n", "t.yaml")
    assert cfg.auth_service.auth_type == "github" and cfg.auth_service.connector_name == ""
    with pytest.raises(ConfigError, match="authentication.type"):
        parse_config_text("auth_service:\n  authentication: {type: saml}\n", "t.yaml")
