"""The role resource (kind `role`, version v3): options, allow and deny conditions. Pure data.

`Role.from_dict` validates strictly: an unknown key, a wrong type, a bad duration, regex or
template is a BadParameter naming the key path (e.g. `role 'dev': spec.allow.logins[1]: ...`).
`to_dict()` emits a normalized form that parses back to an equal Role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from teleport import defaults
from teleport.durations import format_duration, parse_duration
from teleport.errors import BadParameter
from teleport.rbac.labels import Selector, parse_selector, selector_to_dict, wildcard_selector
from teleport.rbac.templates import parse_template
from teleport.types.resources import Metadata, Resource, load_json

CERT_FORMATS = ("standard", "oldssh")

_TOP_KEYS = ("kind", "version", "metadata", "spec")
_METADATA_KEYS = ("name", "namespace", "description", "labels", "expires")
_SPEC_KEYS = ("options", "allow", "deny")
_CONDITION_KEYS = ("logins", "node_labels", "rules")
_RULE_KEYS = ("resources", "verbs", "where")


@dataclass
class RoleOptions:
    """spec.options; durations in seconds (0 = not limited for client_idle_timeout)."""

    max_session_ttl: float = float(defaults.MAX_USER_CERT_TTL)
    forward_agent: bool = False
    port_forwarding: bool = True
    permit_x11_forwarding: bool = False
    client_idle_timeout: float = 0.0
    disconnect_expired_cert: bool = False
    cert_format: str = "standard"
    max_connections: int = 0
    max_sessions: int = 0

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RoleOptions:
        data = _mapping(data, where, cls.__dataclass_fields__)
        opts = cls()
        for key, value in data.items():
            path = f"{where}.{key}"
            if key in ("max_session_ttl", "client_idle_timeout"):
                seconds = _duration(value, path)
                if key == "max_session_ttl" and seconds == 0:
                    seconds = float(defaults.MAX_USER_CERT_TTL)  # 0 means "the default"
                setattr(opts, key, seconds)
            elif key in ("forward_agent", "port_forwarding", "permit_x11_forwarding",
                         "disconnect_expired_cert"):
                if not isinstance(value, bool):
                    raise BadParameter(f"{path}: expected true or false, got {value!r}")
                setattr(opts, key, value)
            elif key == "cert_format":
                if value not in CERT_FORMATS:
                    raise BadParameter(
                        f"{path}: expected one of {', '.join(CERT_FORMATS)}, got {value!r}"
                    )
                opts.cert_format = value
            else:  # max_connections, max_sessions
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise BadParameter(
                        f"{path}: expected a whole number >= 0 (0 = unlimited), got {value!r}"
                    )
                setattr(opts, key, value)
        return opts

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_session_ttl": format_duration(self.max_session_ttl),
            "forward_agent": self.forward_agent,
            "port_forwarding": self.port_forwarding,
            "permit_x11_forwarding": self.permit_x11_forwarding,
            "client_idle_timeout": format_duration(self.client_idle_timeout),
            "disconnect_expired_cert": self.disconnect_expired_cert,
            "cert_format": self.cert_format,
            "max_connections": self.max_connections,
            "max_sessions": self.max_sessions,
        }


@dataclass
class Rule:
    """An API permission: verbs on resources (either may hold '*'); `where` is kept but cannot be
    evaluated here, so an allow rule with one never grants and a deny rule with one always applies."""

    resources: list[str]
    verbs: list[str]
    where: str = ""

    def matches(self, resource: str, verb: str) -> bool:
        """Whether this rule names the resource and the verb (wildcards included)."""
        return ("*" in self.resources or resource in self.resources) and (
            "*" in self.verbs or verb in self.verbs
        )

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Rule:
        data = _mapping(data, where, _RULE_KEYS)
        resources = _str_list(data.get("resources"), f"{where}.resources", non_empty=True)
        verbs = _str_list(data.get("verbs"), f"{where}.verbs", non_empty=True)
        cond = data.get("where") or ""
        if not isinstance(cond, str):
            raise BadParameter(f"{where}.where: expected a string, got {cond!r}")
        return cls(resources=resources, verbs=verbs, where=cond)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"resources": list(self.resources), "verbs": list(self.verbs)}
        if self.where:
            out["where"] = self.where
        return out


@dataclass
class RoleConditions:
    """spec.allow or spec.deny: logins (literals or templates), node_labels, rules."""

    logins: list[str] = field(default_factory=list)
    node_labels: Selector = field(default_factory=dict)
    rules: list[Rule] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Any, where: str, allow: bool) -> RoleConditions:
        data = _mapping(data, where, _CONDITION_KEYS)
        logins = _str_list(data.get("logins"), f"{where}.logins")
        for i, login in enumerate(logins):
            path = f"{where}.logins[{i}]"
            template = parse_template(login, path)
            literal_parts = [login] if template.is_literal else [template.prefix, template.suffix]
            if any(c.isspace() for part in literal_parts for c in part):
                raise BadParameter(f"{path}: a login may not contain spaces, got {login!r}")
        raw_labels = data.get("node_labels")
        if raw_labels is None:
            # v3 default: logins without node_labels grant every node; deny defaults to nothing.
            labels = wildcard_selector() if allow and logins else {}
        else:
            labels = parse_selector(raw_labels, f"{where}.node_labels")
        raw_rules = data.get("rules")
        if raw_rules is None:
            raw_rules = []
        if not isinstance(raw_rules, list):
            raise BadParameter(f"{where}.rules: expected a list of {{resources, verbs}} mappings")
        rules = [Rule.from_dict(r, f"{where}.rules[{i}]") for i, r in enumerate(raw_rules)]
        return cls(logins=logins, node_labels=labels, rules=rules)

    def to_dict(self) -> dict[str, Any]:
        return {
            "logins": list(self.logins),
            "node_labels": selector_to_dict(self.node_labels),
            "rules": [r.to_dict() for r in self.rules],
        }


@dataclass
class Role(Resource):
    """A role. Build it from its YAML/JSON form with `Role.from_dict`, or as
    `Role(metadata=Metadata("dev"), spec={...})`: the spec is validated and normalized either way.
    `options`, `allow` and `deny` are the parsed views of `spec`; treat a Role as immutable."""

    KIND: ClassVar[str] = "role"
    VERSION: ClassVar[str] = "v3"

    options: RoleOptions = field(init=False)
    allow: RoleConditions = field(init=False)
    deny: RoleConditions = field(init=False)

    def __post_init__(self) -> None:
        where = f"role {self.metadata.name!r}: spec"
        spec = _mapping(self.spec if self.spec is not None else {}, where, _SPEC_KEYS)
        self.options = RoleOptions.from_dict(spec.get("options") or {}, f"{where}.options")
        self.allow = RoleConditions.from_dict(spec.get("allow") or {}, f"{where}.allow", True)
        self.deny = RoleConditions.from_dict(spec.get("deny") or {}, f"{where}.deny", False)
        self.spec = self._spec_dict()

    def _spec_dict(self) -> dict[str, Any]:
        return {
            "options": self.options.to_dict(),
            "allow": self.allow.to_dict(),
            "deny": self.deny.to_dict(),
        }

    def to_dict(self) -> dict[str, Any]:
        """The resource form (kind, version, metadata, spec) that from_dict parses back."""
        return {
            "kind": self.KIND,
            "version": self.VERSION,
            "metadata": self.metadata.to_dict(),
            "spec": self._spec_dict(),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Role:
        """Parse and validate a role; BadParameter names the key path of the first problem."""
        if not isinstance(data, dict):
            raise BadParameter(f"a role must be a mapping, got {type(data).__name__}")
        _mapping(data, "role", _TOP_KEYS)
        kind = data.get("kind", cls.KIND)
        if kind != cls.KIND:
            raise BadParameter(f"kind: expected {cls.KIND!r}, got {kind!r}")
        version = data.get("version", cls.VERSION)
        if version != cls.VERSION:
            raise BadParameter(f"version: expected {cls.VERSION!r}, got {version!r}")
        meta = data.get("metadata")
        if not isinstance(meta, dict):
            raise BadParameter("metadata: expected a mapping with a 'name'")
        _mapping(meta, "metadata", _METADATA_KEYS)
        name = meta.get("name")
        if not isinstance(name, str) or not name.strip():
            raise BadParameter("metadata.name: a role needs a non-empty name")
        if name != name.strip() or "/" in name or any(c.isspace() for c in name):
            raise BadParameter(f"metadata.name: {name!r} may not contain spaces or '/'")
        spec = data.get("spec")
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise BadParameter(f"role {name!r}: spec: expected a mapping, got {type(spec).__name__}")
        return cls(metadata=Metadata.from_dict(meta), spec=spec)

    @classmethod
    def from_json(cls, raw: bytes | str) -> Role:
        """Parse a role from JSON; BadParameter for bytes that are not a valid role."""
        return cls.from_dict(load_json(raw, "a role"))


def _mapping(data: Any, where: str, allowed: Any) -> dict[str, Any]:
    """Check data is a mapping whose keys are all in `allowed`; name the first unknown key."""
    if not isinstance(data, dict):
        raise BadParameter(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    allowed_keys = list(allowed)
    for key in data:
        if key not in allowed_keys:
            raise BadParameter(
                f"{where}: unknown key {key!r}; expected one of {', '.join(allowed_keys)}"
            )
    return data


def _str_list(data: Any, where: str, non_empty: bool = False) -> list[str]:
    """A list of strings (a single string is accepted as a list of one)."""
    if data is None:
        data = []
    if isinstance(data, str):
        data = [data]
    if not isinstance(data, list):
        raise BadParameter(f"{where}: expected a list of strings, got {type(data).__name__} {data!r}")
    for i, item in enumerate(data):
        if not isinstance(item, str) or not item:
            raise BadParameter(f"{where}[{i}]: expected a non-empty string, got {item!r}")
    if non_empty and not data:
        raise BadParameter(f"{where}: must list at least one entry (or '*')")
    return list(data)


def _duration(value: Any, where: str) -> float:
    try:
        seconds = parse_duration(value)
    except BadParameter as exc:
        raise BadParameter(f"{where}: {exc.message}") from None
    # Millisecond precision is what format_duration keeps, so round trips stay exact.
    return round(seconds, 3)
