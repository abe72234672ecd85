"""SSO connector resources (`kind: github`, `kind: oidc`) and the mapping from an identity
provider's answer to a user's roles and traits. Pure: no I/O.

GitHub: `teams_to_logins: [{organization, team, logins: [...], roles: [...]}]`; a user in a team
gets its roles, and its logins as the `logins` trait. OIDC: `claims_to_roles: [{claim, value,
roles: [...]}]`; the claims become the user's traits (strings and lists of strings).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from teleport import defaults
from teleport.durations import parse_duration
from teleport.errors import BadParameter
from teleport.rbac.labels import compile_value, value_matches
from teleport.types.names import check_logins, check_role_name
from teleport.types.resources import Resource

KINDS = ("github", "oidc")
_CONNECTOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Claims that describe the token, not the person: never traits.
_PROTOCOL_CLAIMS = frozenset(
    {"iss", "aud", "exp", "iat", "nbf", "nonce", "at_hash", "c_hash", "azp", "auth_time", "sid",
     "acr", "amr", "jti", "s_hash"}
)
MAX_TRAIT_VALUES = 256


def check_connector_name(value: Any) -> str:
    """A connector name: it travels in URLs and backend keys."""
    if not isinstance(value, str) or not _CONNECTOR_NAME.match(value):
        raise BadParameter(
            f"invalid connector name {str(value)[:80]!r}: use 1-64 letters, digits, '.', '_' "
            "and '-', starting with a letter or digit"
        )
    return value


def check_kind(value: Any) -> str:
    if value not in KINDS:
        raise BadParameter(f"unknown connector kind {str(value)[:40]!r}: expected github or oidc")
    return str(value)


def is_loopback_host(host: str) -> bool:
    """True for localhost and loopback addresses (the only hosts plain http is accepted for)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(value: Any, where: str, allow_path: bool = True) -> str:
    """An https URL (plain http only on loopback, for tests and local providers)."""
    if not isinstance(value, str) or not value:
        raise BadParameter(f"{where}: expected a URL like https://host/path, got {str(value)[:80]!r}")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a bad port
    except ValueError:
        raise BadParameter(f"{where}: {value[:120]!r} is not a valid URL") from None
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise BadParameter(f"{where}: expected an https:// URL with a host, got {value[:120]!r}")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise BadParameter(
            f"{where}: {value[:120]!r} uses plain http: only https is accepted (http only for "
            "localhost/127.0.0.1)"
        )
    if parts.username or parts.password or parts.fragment:
        raise BadParameter(f"{where}: {value[:120]!r} may not hold credentials or a #fragment")
    if not allow_path and parts.path not in ("", "/"):
        raise BadParameter(f"{where}: {value[:120]!r} must be a bare https://host[:port]")
    return value


def _str(spec: dict[str, Any], key: str, where: str, required: bool = True) -> str:
    value = spec.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadParameter(f"{where}.{key}: expected a non-empty string, got {str(value)[:80]!r}")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadParameter(f"{where}: expected a list of non-empty strings, got {str(value)[:80]!r}")
    return list(value)


def _roles(value: Any, where: str) -> list[str]:
    roles = _str_list(value, where)
    for r in roles:
        check_role_name(r)
    return roles


def _ttl(spec: dict[str, Any], where: str) -> float:
    raw = spec.get("max_session_ttl")
    if raw in (None, ""):
        return float(defaults.MAX_USER_CERT_TTL)
    try:
        ttl = parse_duration(raw)
    except BadParameter as exc:
        raise BadParameter(f"{where}.max_session_ttl: {exc.message}") from None
    if ttl < defaults.MIN_USER_CERT_TTL:
        raise BadParameter(f"{where}.max_session_ttl: at least 1m, got {raw!r}")
    return min(ttl, float(defaults.MAX_USER_CERT_TTL))


class Connector(Resource):
    """Common parts of the two connector kinds."""

    SECRET_KEYS: ClassVar[tuple[str, ...]] = ("client_secret",)

    @property
    def display(self) -> str:
        return str(self.spec.get("display") or self.name)

    @property
    def max_session_ttl(self) -> float:
        return _ttl(self.spec, f"{self.KIND}.spec")

    def check_common(self) -> None:
        where = f"{self.KIND}.spec"
        check_connector_name(self.name)
        _str(self.spec, "client_id", where)
        _str(self.spec, "client_secret", where)
        check_url(_str(self.spec, "redirect_url", where), f"{where}.redirect_url")
        if self.spec.get("display") is not None:
            _str(self.spec, "display", where)
        _ttl(self.spec, where)

    def without_secrets(self) -> dict[str, Any]:
        """The resource as `tctl get` shows it: the client secret is never sent back."""
        out = self.to_dict()
        out["spec"] = {k: v for k, v in self.spec.items() if k not in self.SECRET_KEYS}
        return out


class GithubConnector(Connector):
    KIND = "github"
    VERSION = "v3"

    def check_spec(self) -> None:
        where = "github.spec"
        self.check_common()
        mappings = self.spec.get("teams_to_logins")
        if not isinstance(mappings, list) or not mappings:
            raise BadParameter(
                f"{where}.teams_to_logins: expected a list of {{organization, team, logins, roles}} "
                "mappings (at least one)"
            )
        for i, m in enumerate(mappings):
            w = f"{where}.teams_to_logins[{i}]"
            if not isinstance(m, dict):
                raise BadParameter(f"{w}: expected a mapping with organization, team, logins, roles")
            _str(m, "organization", w)
            _str(m, "team", w)
            logins = _str_list(m.get("logins"), f"{w}.logins")
            if logins:
                check_logins(logins)
            roles = _roles(m.get("roles"), f"{w}.roles")
            if not roles and not logins:
                raise BadParameter(f"{w}: give roles (Teleport roles) and/or logins (OS logins)")
        for key in ("endpoint_url", "api_endpoint_url"):
            if self.spec.get(key):
                check_url(self.spec[key], f"{where}.{key}", allow_path=False)

    @property
    def endpoint_url(self) -> str:
        return str(self.spec.get("endpoint_url") or defaults.GITHUB_ENDPOINT_URL).rstrip("/")

    @property
    def api_endpoint_url(self) -> str:
        return str(self.spec.get("api_endpoint_url") or defaults.GITHUB_API_ENDPOINT_URL).rstrip("/")


class OIDCConnector(Connector):
    KIND = "oidc"
    VERSION = "v2"

    def check_spec(self) -> None:
        where = "oidc.spec"
        self.check_common()
        check_url(_str(self.spec, "issuer_url", where), f"{where}.issuer_url")
        _str_list(self.spec.get("scope"), f"{where}.scope")
        if self.spec.get("username_claim") is not None:
            _str(self.spec, "username_claim", where)
        mappings = self.spec.get("claims_to_roles")
        if not isinstance(mappings, list) or not mappings:
            raise BadParameter(
                f"{where}.claims_to_roles: expected a list of {{claim, value, roles}} mappings "
                "(at least one)"
            )
        for i, m in enumerate(mappings):
            w = f"{where}.claims_to_roles[{i}]"
            if not isinstance(m, dict):
                raise BadParameter(f"{w}: expected a mapping with claim, value and roles")
            _str(m, "claim", w)
            value = _str(m, "value", w)
            try:
                compile_value(value)
            except re.error as exc:
                raise BadParameter(f"{w}.value: bad regular expression {value[:80]!r}: {exc}") from None
            if not _roles(m.get("roles"), f"{w}.roles"):
                raise BadParameter(f"{w}.roles: name at least one role")

    @property
    def issuer_url(self) -> str:
        return str(self.spec["issuer_url"]).rstrip("/")

    @property
    def scopes(self) -> list[str]:
        extra = _str_list(self.spec.get("scope"), "oidc.spec.scope")
        return list(dict.fromkeys([*defaults.OIDC_DEFAULT_SCOPES, *extra]))

    @property
    def username_claim(self) -> str:
        return str(self.spec.get("username_claim") or defaults.OIDC_USERNAME_CLAIM)


CLASSES: dict[str, type[Connector]] = {"github": GithubConnector, "oidc": OIDCConnector}


def parse_connector(data: Any) -> Connector:
    """A connector resource from its dict form (`tctl create`); BadParameter names what is wrong."""
    if not isinstance(data, dict):
        raise BadParameter("a connector resource must be a mapping (kind, version, metadata, spec)")
    kind = check_kind(data.get("kind"))
    conn = CLASSES[kind].from_dict(data)
    assert isinstance(conn, Connector)
    return conn


# mapping an identity to roles and traits ----------------------------------------------------
@dataclass
class Mapped:
    """What a login maps to: the user's name, roles and traits."""

    username: str
    roles: list[str]
    traits: dict[str, list[str]]


def claims_to_traits(claims: dict[str, Any]) -> dict[str, list[str]]:
    """An OIDC identity's claims as traits: strings and lists of strings (other values, and the
    claims about the token itself, are left out)."""
    traits: dict[str, list[str]] = {}
    for key, value in claims.items():
        if not isinstance(key, str) or key in _PROTOCOL_CLAIMS:
            continue
        if isinstance(value, str):
            traits[key] = [value]
        elif isinstance(value, list):
            items = [v for v in value if isinstance(v, str)][:MAX_TRAIT_VALUES]
            if items:
                traits[key] = items
        elif isinstance(value, bool):
            traits[key] = ["true" if value else "false"]
    return traits


def oidc_roles(conn: OIDCConnector, traits: dict[str, list[str]]) -> list[str]:
    """The roles of every claims_to_roles mapping that one of the user's claim values matches
    (the value is a literal, a glob with '*', or a ^regex$)."""
    roles: dict[str, None] = {}
    for m in conn.spec["claims_to_roles"]:
        if any(value_matches(str(m["value"]), v) for v in traits.get(str(m["claim"]), [])):
            for r in _str_list(m.get("roles"), "roles"):
                roles.setdefault(r, None)
    return list(roles)


def github_mapping(conn: GithubConnector, teams: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """(roles, logins) of the teams_to_logins entries matching one of the user's (org, team)."""
    roles: dict[str, None] = {}
    logins: dict[str, None] = {}
    have = {(o.lower(), t.lower()) for o, t in teams}
    for m in conn.spec["teams_to_logins"]:
        if (str(m["organization"]).lower(), str(m["team"]).lower()) in have:
            for r in _str_list(m.get("roles"), "roles"):
                roles.setdefault(r, None)
            for login in _str_list(m.get("logins"), "logins"):
                logins.setdefault(login, None)
    return list(roles), list(logins)


def no_role_message(kind: str, connector: str, user: str, what: str) -> str:
    """The one refusal for a user the connector maps to no role."""
    return (
        f"{user!r} signed in with {kind} connector {connector!r}, but no mapping of the "
        f"connector gives them a role ({what}): ask your Teleport administrator to add a mapping"
    )
