"""Typed resources (kind, version, metadata, spec) and their dict/JSON forms. Pure data, no I/O."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from teleport.errors import BadParameter

_TIME_FORMS = "expected an RFC 3339 time like 2026-01-02T15:04:05Z (or Unix seconds)"


def parse_time(value: Any) -> datetime | None:
    """Parse an RFC 3339 timestamp or Unix seconds (or None) into an aware UTC datetime, to the
    second (the precision format_time writes, so that resources round-trip exactly).

    Anything else, or a time outside the years 1-9999, raises BadParameter.
    """
    if value is None or value == "":
        return None
    try:
        if isinstance(value, datetime):
            dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        elif isinstance(value, bool) or not isinstance(value, int | float | str):
            raise BadParameter(f"bad timestamp {_short(value)}: {_TIME_FORMS}")
        elif isinstance(value, int | float):
            dt = datetime.fromtimestamp(value, UTC)
        else:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            dt = dt if dt.tzinfo else dt.replace(tzinfo=UTC)
        return dt.astimezone(UTC).replace(microsecond=0)
    except (ValueError, OverflowError, OSError):
        # NaN, 1e20 (year out of range), "9999-12-31T23:59:59-01:00" (past year 9999 in UTC)
        raise BadParameter(f"bad timestamp {_short(value)}: {_TIME_FORMS}") from None


def _short(value: Any) -> str:
    """A value echoed in a message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def format_time(value: datetime | None) -> str | None:
    """RFC 3339 in UTC to the second ("2026-01-02T15:04:05Z"); parse_time reads it back."""
    if value is None:
        return None
    # isoformat, not strftime("%Y"): glibc writes the year 999 as "999", which no parser reads
    return value.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat() + "Z"


@dataclass
class Metadata:
    name: str
    namespace: str = "default"
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    expires: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.namespace != "default":
            out["namespace"] = self.namespace
        if self.description:
            out["description"] = self.description
        if self.labels:
            out["labels"] = dict(self.labels)
        if self.expires is not None:
            out["expires"] = format_time(self.expires)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Metadata:
        """Parse metadata; BadParameter names the field that is wrong."""
        if not isinstance(data, dict):
            raise BadParameter("resource metadata must be a mapping with a non-empty 'name'")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise BadParameter(
                f"metadata.name: expected a non-empty string, got {_short(name)} (quote it in YAML)"
            )
        for key in ("namespace", "description"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise BadParameter(f"metadata.{key}: expected a string, got {_short(data[key])}")
        labels = data.get("labels") or {}
        if not isinstance(labels, dict):
            raise BadParameter("metadata.labels must be a mapping of strings")
        for key, value in labels.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise BadParameter(
                    f"metadata.labels: expected string names and values, got {_short(key)}: "
                    f"{_short(value)} (quote numbers and booleans in YAML)"
                )
        try:
            expires = parse_time(data.get("expires"))
        except BadParameter as exc:
            raise BadParameter(f"metadata.expires: {exc.message}") from None
        return cls(
            name=name,
            namespace=data.get("namespace") or "default",
            description=data.get("description") or "",
            labels=dict(labels),
            expires=expires,
        )


@dataclass
class Resource:
    """A resource as stored and exchanged: kind, version, metadata and a spec mapping."""

    KIND: ClassVar[str] = ""
    VERSION: ClassVar[str] = "v2"

    metadata: Metadata
    spec: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.metadata.name

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.KIND,
            "version": self.VERSION,
            "metadata": self.metadata.to_dict(),
            "spec": self.spec,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_dict(cls, data: Any) -> Resource:
        if not isinstance(data, dict):
            raise BadParameter(f"a {cls.KIND} resource must be a mapping")
        kind = data.get("kind", cls.KIND)
        if kind != cls.KIND:
            raise BadParameter(f"expected kind {cls.KIND!r}, got {_short(kind)}")
        spec = data.get("spec") or {}
        if not isinstance(spec, dict):
            raise BadParameter(f"{cls.KIND}.spec must be a mapping")
        check_json_value(spec, f"{cls.KIND}.spec")
        # a copy: check_spec normalizes it, and the caller's dict stays as it was
        out = cls(metadata=Metadata.from_dict(data.get("metadata")), spec=dict(spec))
        out.check_spec()
        return out

    def check_spec(self) -> None:
        """Check the types of the spec fields this kind reads; BadParameter names the field."""

    @classmethod
    def from_json(cls, raw: bytes | str) -> Resource:
        """Parse a resource from JSON; BadParameter for bytes that are not a JSON object."""
        return cls.from_dict(load_json(raw, f"a {cls.KIND} resource"))


def check_json_value(value: Any, where: str) -> None:
    """A free-form value (a spec) must be plain JSON so that it is stored and served as JSON:
    mappings with string keys, lists, strings, booleans, null and finite numbers. YAML can
    also give dates, NaN, integer keys and self-referencing anchors (``&a [*a]``); those raise
    BadParameter naming the path."""
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict | list):
            if id(item) in seen:
                raise BadParameter(f"{path}: refers to itself (a YAML anchor inside itself?)")
            seen.add(id(item))
            if isinstance(item, list):
                stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
                continue
            for key, v in item.items():
                if not isinstance(key, str):
                    raise BadParameter(f"{path}: keys must be strings, got {_short(key)}")
                stack.append((v, f"{path}.{key}"))
        elif isinstance(item, float) and not math.isfinite(item):
            raise BadParameter(f"{path}: expected a finite number, got {item!r}")
        elif item is not None and not isinstance(item, str | int | float):
            raise BadParameter(
                f"{path}: expected a string, number, boolean, list or mapping, got "
                f"{type(item).__name__} {_short(item)} (quote dates in YAML)"
            )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(raw: bytes | str, what: str) -> Any:
    """json.loads that raises BadParameter (naming ``what``) for anything that is not JSON,
    NaN and Infinity included (Python's json reads them; other JSON parsers do not)."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8 too; RecursionError: "[[[[..." nested thousands deep
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise BadParameter(f"{what} must be JSON: {reason}") from None


def _str_list(spec: dict[str, Any], key: str, kind: str) -> None:
    """spec[key], when present, must be a list of non-empty strings; one string becomes a list."""
    value = spec.get(key)
    if value is None:
        return
    if isinstance(value, str):
        value = spec[key] = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadParameter(
            f"{kind}.spec.{key}: expected a list of non-empty strings, got {_short(value)}"
        )


def _str_fields(spec: dict[str, Any], keys: tuple[str, ...], kind: str) -> None:
    for key in keys:
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise BadParameter(f"{kind}.spec.{key}: expected a string, got {_short(spec[key])}")


@dataclass
class User(Resource):
    """A cluster user. spec: roles [names], traits {logins: [...], ...}, created, status."""

    KIND: ClassVar[str] = "user"

    def check_spec(self) -> None:
        """roles: a list of role names; traits: a mapping of names to lists of strings."""
        _str_list(self.spec, "roles", self.KIND)
        traits = self.spec.get("traits")
        if traits is None:
            return
        if not isinstance(traits, dict):
            raise BadParameter(
                f"user.spec.traits: expected a mapping of names to lists of strings, "
                f"got {_short(traits)}"
            )
        traits = self.spec["traits"] = dict(traits)
        for key, values in traits.items():
            if isinstance(values, str):
                traits[key] = values = [values]
            if not isinstance(key, str) or not isinstance(values, list) or not all(
                isinstance(v, str) for v in values
            ):
                raise BadParameter(
                    f"user.spec.traits: trait {_short(key)} must be a list of strings, "
                    f"got {_short(values)}"
                )

    @property
    def roles(self) -> list[str]:
        return list(self.spec.get("roles") or [])

    @property
    def traits(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in (self.spec.get("traits") or {}).items()}

    @property
    def logins(self) -> list[str]:
        return self.traits.get("logins", [])


@dataclass
class ProvisionToken(Resource):
    """A join token. spec: roles [auth|node|proxy|trusted_cluster]; metadata.expires."""

    KIND: ClassVar[str] = "token"

    def check_spec(self) -> None:
        """roles: a list of system role names."""
        _str_list(self.spec, "roles", self.KIND)

    @property
    def roles(self) -> list[str]:
        return list(self.spec.get("roles") or [])


@dataclass
class CertAuthority(Resource):
    """A CA. metadata.name = '<type>'; spec: type (user|host|tls), cluster_name,
    checking_keys [public, OpenSSH or PEM], signing_keys [private PEM] (auth-only)."""

    KIND: ClassVar[str] = "cert_authority"

    def without_secrets(self) -> CertAuthority:
        spec = {k: v for k, v in self.spec.items() if k != "signing_keys"}
        return CertAuthority(metadata=self.metadata, spec=spec)


@dataclass
class Server(Resource):
    """A node/proxy heartbeat. metadata.name = host uuid, labels = static labels;
    spec: addr, hostname, cmd_labels {name: {period, command, result}}."""

    KIND: ClassVar[str] = "node"

    def check_spec(self) -> None:
        """addr, hostname, public addresses: strings; cmd_labels: {name: {period, command, result}}."""
        _str_fields(self.spec, ("addr", "hostname", "public_addr", "ssh_public_addr"), self.KIND)
        cmd_labels = self.spec.get("cmd_labels")
        if cmd_labels is None:
            return
        if not isinstance(cmd_labels, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) for k, v in cmd_labels.items()
        ):
            raise BadParameter(
                f"{self.KIND}.spec.cmd_labels: expected a mapping of label name to "
                f"{{period, command, result}}, got {_short(cmd_labels)}"
            )


@dataclass
class ProxyServer(Server):
    """A proxy heartbeat. spec: hostname, public_addr (web), ssh_public_addr."""

    KIND: ClassVar[str] = "proxy"


def split_csv(value: str | list[str] | None) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']; lists pass through trimmed."""
    if value is None:
        return []
    items = value if isinstance(value, list) else value.split(",")
    return [s.strip() for s in items if s and s.strip()]
