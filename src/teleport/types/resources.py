"""Typed resources (kind, version, metadata, spec) and their dict/JSON forms. Pure data, no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from teleport.errors import BadParameter


def parse_time(value: Any) -> datetime | None:
    """Parse an RFC 3339 timestamp (or None) into an aware datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadParameter(f"bad timestamp {value!r}: expected RFC 3339 like 2026-01-02T15:04:05Z") from exc
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def format_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        if not isinstance(data, dict) or not data.get("name"):
            raise BadParameter("resource metadata must be a mapping with a non-empty 'name'")
        labels = data.get("labels") or {}
        if not isinstance(labels, dict):
            raise BadParameter("metadata.labels must be a mapping of strings")
        return cls(
            name=str(data["name"]),
            namespace=str(data.get("namespace") or "default"),
            description=str(data.get("description") or ""),
            labels={str(k): str(v) for k, v in labels.items()},
            expires=parse_time(data.get("expires")),
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
            raise BadParameter(f"expected kind {cls.KIND!r}, got {kind!r}")
        spec = data.get("spec") or {}
        if not isinstance(spec, dict):
            raise BadParameter(f"{cls.KIND}.spec must be a mapping")
        return cls(metadata=Metadata.from_dict(data.get("metadata")), spec=spec)

    @classmethod
    def from_json(cls, raw: bytes) -> Resource:
        return cls.from_dict(json.loads(raw))


@dataclass
class User(Resource):
    """A cluster user. spec: roles [names], traits {logins: [...], ...}, created, status."""

    KIND: ClassVar[str] = "user"

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
