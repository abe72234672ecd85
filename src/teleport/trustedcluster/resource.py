"""The `trusted_cluster` resource, its role_map, and the static form's `key_file`; pure.

A leaf cluster's admin creates ``kind: trusted_cluster`` (metadata.name = the root cluster's
name) with the root's join token, web proxy and tunnel addresses, and a role_map saying which
local roles a root user holding a remote role gets. A remote role with no mapping gets nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import parse_qs

from teleport.errors import BadParameter

KIND = "trusted_cluster"
VERSION = "v2"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_SPEC_KEYS = ("enabled", "token", "web_proxy_addr", "tunnel_addr", "role_map", "ca_pin")
_ROLE = re.compile(r"[^\s/]{1,128}")
_PIN = re.compile(r"sha256:[0-9a-f]{64}")
_HOSTPORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]{1,253}):[0-9]{1,5}")


@dataclass(frozen=True)
class RoleMapping:
    """`remote` (a name, a glob, or a ^regex$) -> local role names."""

    remote: str
    local: tuple[str, ...]


@dataclass(frozen=True)
class TrustedCluster:
    """A parsed `trusted_cluster` resource (name = the root cluster's name)."""

    name: str
    enabled: bool
    token: str
    web_proxy_addr: str
    tunnel_addr: str
    role_map: tuple[RoleMapping, ...] = ()
    ca_pin: str = ""

    def to_dict(self, with_token: bool = False) -> dict[str, Any]:
        """The resource form; the token is a secret and is shown only when asked."""
        spec: dict[str, Any] = {
            "enabled": self.enabled,
            "web_proxy_addr": self.web_proxy_addr,
            "tunnel_addr": self.tunnel_addr,
            "role_map": [{"remote": m.remote, "local": list(m.local)} for m in self.role_map],
        }
        if with_token:
            spec["token"] = self.token
        if self.ca_pin:
            spec["ca_pin"] = self.ca_pin
        return {"kind": KIND, "version": VERSION, "metadata": {"name": self.name}, "spec": spec}


def check_cluster_name(name: Any, where: str = "metadata.name") -> str:
    """A cluster name (letters, digits, '.', '_', '-'); BadParameter otherwise."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadParameter(
            f"{where}: expected a cluster name (letters, digits, '.', '_' and '-'), got {str(name)[:80]!r}"
        )
    return name


def _addr(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _HOSTPORT.fullmatch(value.strip()):
        raise BadParameter(f"{where}: expected host:port, got {str(value)[:80]!r}")
    port = int(value.strip().rsplit(":", 1)[1])
    if not 0 < port < 65536:
        raise BadParameter(f"{where}: port {port} is not a TCP port")
    return value.strip()


def parse_role_map(value: Any, where: str = "spec.role_map") -> tuple[RoleMapping, ...]:
    """[{remote: NAME|GLOB|^REGEX$, local: [ROLE, ...]}, ...]; BadParameter names the entry."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadParameter(f"{where}: expected a list of {{remote, local}} mappings")
    out = []
    for i, item in enumerate(value):
        w = f"{where}[{i}]"
        if not isinstance(item, dict) or set(item) - {"remote", "local"}:
            raise BadParameter(f"{w}: expected a mapping with 'remote' and 'local' only")
        remote = item.get("remote")
        if not isinstance(remote, str) or not remote.strip() or len(remote) > 256:
            raise BadParameter(f"{w}.remote: expected a role name, glob or ^regex$")
        if remote.startswith("^"):
            try:
                re.compile(remote)
            except re.error as exc:
                raise BadParameter(f"{w}.remote: bad regular expression: {exc}") from None
        local = item.get("local")
        if isinstance(local, str):
            local = [local]
        if not isinstance(local, list) or not local or not all(
            isinstance(r, str) and _ROLE.fullmatch(r) for r in local
        ):
            raise BadParameter(f"{w}.local: expected a non-empty list of local role names")
        out.append(RoleMapping(remote.strip(), tuple(local)))
    return tuple(out)


def parse_trusted_cluster(data: Any) -> TrustedCluster:
    """Parse and validate a `trusted_cluster` resource; BadParameter says which field is wrong."""
    if not isinstance(data, dict):
        raise BadParameter("a trusted_cluster resource must be a mapping")
    extra = set(data) - {"kind", "version", "metadata", "spec"}
    if extra:
        raise BadParameter(f"trusted_cluster: unknown field(s) {', '.join(sorted(map(str, extra)))}")
    if data.get("kind", KIND) != KIND:
        raise BadParameter(f"kind: expected {KIND!r}, got {str(data.get('kind'))[:40]!r}")
    if data.get("version", VERSION) not in ("v1", VERSION):
        raise BadParameter(f"version: expected {VERSION!r}")
    meta = data.get("metadata")
    if not isinstance(meta, dict):
        raise BadParameter("metadata: expected a mapping with the root cluster's 'name'")
    name = check_cluster_name(meta.get("name"))
    spec = data.get("spec")
    if not isinstance(spec, dict):
        raise BadParameter("spec: expected a mapping (enabled, token, web_proxy_addr, tunnel_addr, role_map)")
    unknown = set(spec) - set(_SPEC_KEYS)
    if unknown:
        raise BadParameter(
            f"spec: unknown field(s) {', '.join(sorted(map(str, unknown)))} (expected {', '.join(_SPEC_KEYS)})"
        )
    enabled = spec.get("enabled", True)
    if not isinstance(enabled, bool):
        raise BadParameter("spec.enabled: expected true or false")
    token = spec.get("token")
    if not isinstance(token, str) or not token.strip() or len(token) > 512:
        raise BadParameter("spec.token: expected the join token from the root cluster "
                           "('tctl tokens add --type=trusted_cluster' there)")
    pin = spec.get("ca_pin") or ""
    if not isinstance(pin, str) or (pin and not _PIN.fullmatch(pin)):
        raise BadParameter("spec.ca_pin: expected sha256:<64 hex digits> (the root proxy's certificate pin)")
    return TrustedCluster(
        name=name,
        enabled=enabled,
        token=token.strip(),
        web_proxy_addr=_addr(spec.get("web_proxy_addr"), "spec.web_proxy_addr"),
        tunnel_addr=_addr(spec.get("tunnel_addr"), "spec.tunnel_addr"),
        role_map=parse_role_map(spec.get("role_map")),
        ca_pin=pin,
    )


def _matches(pattern: str, role: str) -> bool:
    if pattern.startswith("^") and pattern.endswith("$"):
        return re.fullmatch(pattern, role) is not None
    return fnmatchcase(role, pattern)


def map_roles(role_map: tuple[RoleMapping, ...] | list[RoleMapping], remote_roles: list[str]) -> list[str]:
    """The local roles a user with `remote_roles` gets; [] when nothing maps (no access)."""
    out: list[str] = []
    for role in remote_roles:
        for m in role_map:
            if _matches(m.remote, role):
                out += [r for r in m.local if r not in out]
    return out


def role_map_from_json(value: Any) -> tuple[RoleMapping, ...]:
    """role_map as stored (a list of {remote, local}); [] for anything else."""
    try:
        return parse_role_map(value)
    except BadParameter:
        return ()


# --- the static form: auth_service.trusted_clusters[].key_file ----------------------------------


@dataclass
class ExportedCAs:
    """What one `tctl auth export` file holds: one cluster's user and host CA keys."""

    cluster: str
    user: list[str] = field(default_factory=list)
    host: list[str] = field(default_factory=list)


def parse_key_file(text: str, where: str) -> ExportedCAs:
    """Parse `tctl auth export` output (authorized_keys and known_hosts lines, or the
    openssh-ca form `KEY user-ca@CLUSTER`); BadParameter when it is not one cluster's CAs."""
    clusters: set[str] = set()
    user: list[str] = []
    host: list[str] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if parts[0] == "cert-authority" and len(parts) >= 3:
            key = f"{parts[1]} {parts[2]}"
            info = parse_qs(parts[3]) if len(parts) > 3 else {}
            if "clustername" in info:
                clusters.add(info["clustername"][0])
            (host if info.get("type", ["user"])[0] == "host" else user).append(key)
        elif parts[0] == "@cert-authority" and len(parts) >= 4:
            key = f"{parts[2]} {parts[3]}"
            kind = "host"
            for extra in parts[4:]:
                if extra.startswith("type="):
                    kind = extra[5:]
            for pattern in parts[1].split(","):
                if pattern.startswith("*.") and len(pattern) > 2:
                    clusters.add(pattern[2:])
            (user if kind == "user" else host).append(key)
        elif len(parts) == 3 and parts[2].partition("@")[0] in ("user-ca", "host-ca") \
                and parts[2].partition("@")[2]:
            kind, _, cluster = parts[2].partition("@")
            clusters.add(cluster)
            (user if kind == "user-ca" else host).append(f"{parts[0]} {parts[1]}")
        else:
            raise BadParameter(f"{where}:{n}: not a CA line of 'tctl auth export'")
    if len(clusters) != 1:
        found = ", ".join(sorted(clusters)) or "none"
        raise BadParameter(
            f"{where}: expected the CAs of exactly one cluster (as 'tctl auth export' writes them), "
            f"found cluster names: {found}"
        )
    cluster = check_cluster_name(next(iter(clusters)), where)
    if not user and not host:
        raise BadParameter(f"{where}: no CA keys found")
    return ExportedCAs(cluster, user, host)


def static_role_spec(allow_logins: list[str]) -> dict[str, Any]:
    """The role a root user gets on this leaf in the static form: the allowed logins on every
    node, nothing else."""
    return {"allow": {"logins": list(allow_logins), "node_labels": {"*": "*"}}}
