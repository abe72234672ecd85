"""Reading and strictly validating teleport.yaml into the typed model.

Every problem raises ConfigError with one line: ``<file>: <key.path>: <what is expected>``.
Pure module (no asyncio).
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

import yaml

from teleport import defaults
from teleport.auth import relyingparty as webauthn_cfg
from teleport.config.addr import HostPort, parse_host_port, valid_host
from teleport.config.model import (
    AuthServiceConfig,
    CommandLabel,
    FileConfig,
    GlobalConfig,
    ProxyServiceConfig,
    Secret,
    SSHServiceConfig,
    StaticToken,
    TrustedClusterConfig,
)
from teleport.config.storageuri import URIError, check_pair, parse_events_uri, parse_sessions_uri
from teleport.durations import parse_duration
from teleport.errors import BadParameter, ConfigError
from teleport.proxy import dialpolicy

T = TypeVar("T")

SECTIONS = ("teleport", "auth_service", "ssh_service", "proxy_service")
LOG_OUTPUTS = ("stderr", "stdout", "syslog")
LOG_SEVERITIES = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR")
STORAGE_TYPES = ("dir", "etcd", "dynamodb")
SECOND_FACTORS = (*webauthn_cfg.SECOND_FACTORS, *webauthn_cfg.SECOND_FACTOR_ALIASES)
AUTH_TYPES = defaults.AUTH_TYPES
SESSION_RECORDING = ("node", "proxy", "off")
# The label key syntax of the original product.
LABEL_KEY = re.compile(r"[A-Za-z0-9/._:*-]+")
CA_PIN = re.compile(r"sha256:[0-9a-fA-F]{64}")
MIN_COMMAND_PERIOD = 1.0
_BYTE_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?", re.IGNORECASE)
_BYTE_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kib": 1024, "kb": 1000, "ki": 1024,
    "m": 1024**2, "mib": 1024**2, "mb": 1000**2, "mi": 1024**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3, "gi": 1024**3,
    "t": 1024**4, "tib": 1024**4, "tb": 1000**4, "ti": 1024**4,
}

_GLOBAL_KEYS = (
    "nodename",
    "data_dir",
    "auth_token",
    "ca_pin",
    "advertise_ip",
    "auth_servers",
    "connection_limits",
    "log",
    "storage",
)
# dynamic_config appears in the reference sample; it has no effect here and is accepted so
# that sample keeps loading.
_AUTH_KEYS = (
    "enabled",
    "cluster_name",
    "listen_addr",
    "tokens",
    "authentication",
    "session_recording",
    "max_recording_size",
    "audit_events_uri",
    "audit_sessions_uri",
    "dynamic_config",
    "trusted_clusters",
)
_SSH_KEYS = ("enabled", "listen_addr", "labels", "commands", "tunnel_addr")
_PROXY_KEYS = (
    "enabled",
    "listen_addr",
    "web_listen_addr",
    "tunnel_listen_addr",
    "public_addr",
    "tunnel_public_addr",
    "https_key_file",
    "https_cert_file",
    "ssh_allowed_hosts",
    "proxy_checks_host_keys",
)
_BOOL_WORDS = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}
# audit_events_uri / audit_sessions_uri may sit in teleport.storage (where the original product
# reads them) or in auth_service; they are moved to auth_service when parsed.
_AUDIT_URI_KEYS = ("audit_events_uri", "audit_sessions_uri")
_ETCD_KEYS = ("type", "peers", "tls_cert_file", "tls_key_file", "tls_ca_file", "prefix", "insecure",
              *_AUDIT_URI_KEYS)
_DIR_KEYS = ("type", "path", *_AUDIT_URI_KEYS)
_DYNAMODB_KEYS = ("type", "region", "table_name", "access_key", "secret_key", "endpoint",
                  *_AUDIT_URI_KEYS)
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")


# --- YAML loading ----------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            duplicate = False
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f'duplicate key "{key}"', key_node.start_mark
            )
        try:
            seen.add(key)
        except TypeError:
            pass
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown line"
        what = exc.problem or exc.context or "syntax error"
        lines = text.splitlines()
        if mark and mark.line < len(lines) and re.search(r":\s*\[[0-9a-fA-F]*:", lines[mark.line]):
            what += ' (quote IPv6 addresses: "[::1]:3025")'
        raise _error(f"{source}: {where}: invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        one_line = " ".join(str(exc).split())
        raise _error(f"{source}: invalid YAML: {one_line}") from None
    except RecursionError:
        # PyYAML recurses once per nesting level: "[[[[..." thousands deep overflows the stack
        raise _error(
            f"{source}: invalid YAML: lists or mappings nested too deeply; "
            "teleport.yaml needs only a few levels"
        ) from None


# --- validation helpers ----------------------------------------------------------------------


def one_line(message: str) -> str:
    """The message with control characters (a newline in a key or value the file holds)
    escaped, so that every error stays the one line the module promises."""
    if message.isprintable():
        return message
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


def _error(message: str) -> ConfigError:
    """The ConfigError for a message, kept on one line."""
    return ConfigError(one_line(message))


def _describe(value: Any) -> str:
    """How a wrong value is shown in a message."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{value!r}" if isinstance(value, int | float) else type(value).__name__


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


class _Ctx:
    """Carries the source name so every error says which file it is about."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> NoReturn:
        raise _error(f"{self.source}: {path}: {message}")

    def mapping(self, value: Any, path: str, allowed: Iterable[str]) -> dict[str, Any]:
        """A mapping whose keys are all in ``allowed``; null is an empty mapping."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping of keys, got {_describe(value)}")
        allowed = tuple(allowed)
        for key in value:
            if not isinstance(key, str):
                self.fail(path, f"keys must be strings, got {_describe(key)}")
            if key not in allowed:
                self.fail(
                    _join(path, key),
                    f"unknown key{_suggest(key, allowed)}; valid keys: {', '.join(allowed)}",
                )
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            # a quoted "yes" still means yes
            return _BOOL_WORDS[value.strip().lower()]
        if not isinstance(value, bool):
            self.fail(path, f"expected yes/no (or true/false), got {_describe(value)}")
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            self.fail(path, f'expected a string, got {_describe(value)} (quote it: "...")')
        if not value.strip():
            self.fail(path, "expected a non-empty string")
        return value

    def positive_int(self, value: Any, path: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.fail(path, f"expected a positive integer, got {_describe(value)}")
        return value

    def byte_size(self, value: Any, path: str) -> int:
        """A positive size: bytes as an integer, or a number with a unit (100MiB, 1GB, 512K)."""
        if isinstance(value, str):
            m = _BYTE_SIZE.fullmatch(value.strip())
            if m is not None and float(m.group(1)) > 0:
                return int(float(m.group(1)) * _BYTE_UNITS[(m.group(2) or "").lower()])
        elif not isinstance(value, bool) and isinstance(value, int) and value > 0:
            return value
        self.fail(path, f"expected a size such as 100MiB, 1GB or 1048576 (bytes), got {_describe(value)}")

    def choice(self, value: Any, path: str, choices: Iterable[str], *, upper: bool = False) -> str:
        choices = tuple(choices)
        if value is False and "off" in choices:
            # YAML 1.1 reads a bare `off` as the boolean false
            return "off"
        text = self.string(value, path).strip()
        text = text.upper() if upper else text.lower()
        if text not in choices:
            self.fail(
                path,
                f"expected one of {', '.join(choices)}, got {_describe(value)}"
                f"{_suggest(text, choices)}",
            )
        return text

    def addr(self, value: Any, path: str, default_port: int, *, listen: bool) -> HostPort:
        if isinstance(value, int) and not isinstance(value, bool):
            # a bare port number: an easy slip, say what to write instead
            self.fail(
                path, f'expected host:port, got {value} (write ":{value}" or "0.0.0.0:{value}")'
            )
        if isinstance(value, list):
            # unquoted "[::1]:3025" is a YAML list followed by junk, or just a list
            self.fail(path, 'expected host:port, got a list (quote IPv6 addresses: "[::1]:3025")')
        if not isinstance(value, str):
            self.fail(path, f"expected host:port, got {_describe(value)}")
        try:
            return parse_host_port(value, default_port, allow_zero=listen)
        except BadParameter as exc:
            message = exc.message
        self.fail(path, message)

    def duration(self, value: Any, path: str) -> float:
        try:
            return parse_duration(value)
        except BadParameter as exc:
            message = exc.message
        self.fail(path, message)

    def get(
        self,
        data: dict[str, Any],
        key: str,
        path: str,
        convert: Callable[[Any, str], T],
        default: T,
    ) -> T:
        """Convert ``data[key]`` when present; absent (or null) keeps the default."""
        if key not in data or data[key] is None:
            return default
        return convert(data[key], _join(path, key))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- sections --------------------------------------------------------------------------------


def _parse_global(ctx: _Ctx, raw: Any) -> GlobalConfig:
    p = "teleport"
    d = ctx.mapping(raw, p, _GLOBAL_KEYS)
    g = GlobalConfig()
    g.nodename = ctx.get(d, "nodename", p, _nodename(ctx), g.nodename)
    g.data_dir = ctx.get(d, "data_dir", p, ctx.string, g.data_dir)
    g.auth_token = ctx.get(d, "auth_token", p, ctx.string, None)
    g.ca_pin = ctx.get(d, "ca_pin", p, _ca_pin(ctx), None)
    g.advertise_ip = ctx.get(d, "advertise_ip", p, _host(ctx), None)
    g.auth_servers = ctx.get(d, "auth_servers", p, _auth_servers(ctx), [])

    limits = ctx.mapping(
        d.get("connection_limits"), f"{p}.connection_limits",
        ("max_connections", "max_users", "handshake_timeout"),
    )
    lp = f"{p}.connection_limits"
    g.max_connections = ctx.get(limits, "max_connections", lp, ctx.positive_int, g.max_connections)
    g.max_users = ctx.get(limits, "max_users", lp, ctx.positive_int, g.max_users)
    g.handshake_timeout = ctx.get(limits, "handshake_timeout", lp, _positive_duration(ctx),
                                  g.handshake_timeout)

    log = ctx.mapping(d.get("log"), f"{p}.log", ("output", "severity"))
    g.log_output = ctx.get(log, "output", f"{p}.log", _log_output(ctx), g.log_output)
    g.log_severity = ctx.get(
        log,
        "severity",
        f"{p}.log",
        lambda v, path: ctx.choice(v, path, LOG_SEVERITIES, upper=True),
        g.log_severity,
    )
    g.storage = _parse_storage(ctx, d.get("storage"))
    return g


def _positive_duration(ctx: _Ctx) -> Callable[[Any, str], float]:
    def convert(value: Any, path: str) -> float:
        seconds = ctx.duration(value, path)
        if seconds <= 0:
            ctx.fail(path, f"must be a positive duration such as 30s, got {value!r}")
        return seconds

    return convert


def _nodename(ctx: _Ctx) -> Callable[[Any, str], str]:
    def convert(value: Any, path: str) -> str:
        text = ctx.string(value, path).strip()
        if any(c.isspace() for c in text) or "@" in text or "/" in text:
            ctx.fail(path, f'expected a host name without spaces, "@" or "/", got "{value}"')
        return text

    return convert


def _ca_pin(ctx: _Ctx) -> Callable[[Any, str], str]:
    def convert(value: Any, path: str) -> str:
        text = ctx.string(value, path).strip()
        if not CA_PIN.fullmatch(text):
            ctx.fail(
                path,
                f'expected "sha256:<64 hex digits>" as printed by `tctl nodes add`, got "{value}"',
            )
        return text.lower()

    return convert


def _host(ctx: _Ctx) -> Callable[[Any, str], str]:
    def convert(value: Any, path: str) -> str:
        text = ctx.string(value, path).strip()
        if not valid_host(text):
            ctx.fail(path, f'expected an IP address or host name (no port), got "{value}"')
        return text

    return convert


def _auth_servers(ctx: _Ctx) -> Callable[[Any, str], list[HostPort]]:
    def convert(value: Any, path: str) -> list[HostPort]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            ctx.fail(path, f"expected a list of host:port, got {_describe(value)}")
        return [
            ctx.addr(item, f"{path}[{i}]", defaults.AUTH_PORT, listen=False)
            for i, item in enumerate(items)
        ]

    return convert


def _log_output(ctx: _Ctx) -> Callable[[Any, str], str]:
    def convert(value: Any, path: str) -> str:
        text = ctx.string(value, path).strip()
        if text.lower() in LOG_OUTPUTS:
            return text.lower()
        if "/" not in text:
            # a typo such as "stdrr" must not silently become a log file in the working dir
            ctx.fail(
                path,
                f"expected stderr, stdout, syslog or a file path such as /var/log/teleport.log, "
                f'got "{value}"{_suggest(text.lower(), LOG_OUTPUTS)}',
            )
        return text

    return convert


def _parse_storage(ctx: _Ctx, raw: Any) -> dict[str, Any]:
    p = "teleport.storage"
    if raw is None:
        return {"type": defaults.STORAGE_TYPE}
    if not isinstance(raw, dict):
        ctx.fail(p, f"expected a mapping with a type (dir, etcd or dynamodb), got {_describe(raw)}")
    kind_raw = raw.get("type", defaults.STORAGE_TYPE)
    kind = ctx.string(kind_raw, f"{p}.type").strip().lower()
    if kind == "bolt":
        # the reference's embedded default; here the embedded store is SQLite under data_dir
        kind = "dir"
    if kind not in STORAGE_TYPES:
        ctx.fail(
            f"{p}.type",
            f'unknown storage type "{kind_raw}"{_suggest(kind, STORAGE_TYPES)}; '
            f"expected one of {', '.join(STORAGE_TYPES)}",
        )
    out: dict[str, Any]
    if kind == "dir":
        d = ctx.mapping(raw, p, _DIR_KEYS)
        out = {"type": "dir"}
        if d.get("path") is not None:
            out["path"] = ctx.string(d["path"], f"{p}.path")
        return _storage_uris(ctx, d, out)
    if kind == "dynamodb":
        return _storage_uris(ctx, raw, _parse_dynamodb(ctx, raw))
    d = ctx.mapping(raw, p, _ETCD_KEYS)
    peers = d.get("peers")
    if isinstance(peers, str):
        peers = [peers]
    if not peers:
        ctx.fail(
            f"{p}.peers",
            "etcd storage needs peers: a list of etcd URLs, e.g. [https://10.0.0.1:2379]",
        )
    if not isinstance(peers, list):
        ctx.fail(f"{p}.peers", f"expected a list of etcd URLs, got {_describe(peers)}")
    for i, peer in enumerate(peers):
        text = ctx.string(peer, f"{p}.peers[{i}]")
        if not re.fullmatch(r"https?://[^\s/]+/?", text):
            ctx.fail(f"{p}.peers[{i}]", f'expected an URL like https://10.0.0.1:2379, got "{text}"')
    out = {"type": "etcd", "peers": [str(x) for x in peers]}
    for key in ("tls_cert_file", "tls_key_file", "tls_ca_file", "prefix"):
        if d.get(key) is not None:
            out[key] = ctx.string(d[key], f"{p}.{key}")
    out["prefix"] = out.get("prefix", defaults.ETCD_PREFIX)
    out["insecure"] = ctx.get(d, "insecure", p, ctx.boolean, False)
    if ("tls_cert_file" in out) != ("tls_key_file" in out):
        missing = "tls_key_file" if "tls_cert_file" in out else "tls_cert_file"
        ctx.fail(f"{p}.{missing}", "tls_cert_file and tls_key_file must be given together")
    return _storage_uris(ctx, d, out)


def _storage_uris(ctx: _Ctx, d: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """Keep the audit URIs given in teleport.storage (checked later with auth_service's)."""
    for key in _AUDIT_URI_KEYS:
        if d.get(key) is not None:
            out[key] = ctx.string(d[key], f"teleport.storage.{key}").strip()
    return out


def _parse_dynamodb(ctx: _Ctx, raw: Any) -> dict[str, Any]:
    """``storage: {type: dynamodb, region, table_name, access_key, secret_key, endpoint}``;
    without keys the AWS SDK's default credentials (environment, instance role) are used."""
    p = "teleport.storage"
    d = ctx.mapping(raw, p, _DYNAMODB_KEYS)
    out: dict[str, Any] = {"type": "dynamodb"}
    table = ctx.get(d, "table_name", p, ctx.string, defaults.DYNAMODB_TABLE).strip()
    if not _TABLE_NAME.fullmatch(table):
        ctx.fail(f"{p}.table_name",
                 f'"{table}" is not a DynamoDB table name (3-255 letters, digits, "_", "-", ".")')
    out["table_name"] = table
    if d.get("region") is not None:
        region = ctx.string(d["region"], f"{p}.region").strip()
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+", region):
            ctx.fail(f"{p}.region", f'expected an AWS region such as eu-west-1, got "{region}"')
        out["region"] = region
    if d.get("endpoint") is not None:
        endpoint = ctx.string(d["endpoint"], f"{p}.endpoint").strip()
        if not re.fullmatch(r"https?://[^\s/]+/?", endpoint):
            ctx.fail(f"{p}.endpoint", f'expected an URL like https://dynamodb.example.com:8000, got "{endpoint}"')
        out["endpoint"] = endpoint
    for key in ("access_key", "secret_key"):
        if d.get(key) is not None:
            if not isinstance(d[key], str) or not d[key].strip():
                # never echo the value: it may be (part of) a secret
                ctx.fail(f"{p}.{key}", "expected a non-empty string (quote it)")
            out[key] = Secret(d[key].strip())
    if ("access_key" in out) != ("secret_key" in out):
        missing = "secret_key" if "access_key" in out else "access_key"
        ctx.fail(f"{p}.{missing}", "access_key and secret_key must be given together (or neither, "
                 "to use the environment's or the instance role's AWS credentials)")
    return out


def _audit_uris(ctx: _Ctx, cfg: FileConfig, auth_raw: Any) -> None:
    """Settle audit_events_uri / audit_sessions_uri (from auth_service or teleport.storage, not
    both) and enforce the reference's rule: DynamoDB events need S3 recordings."""
    auth_keys = auth_raw if isinstance(auth_raw, dict) else {}
    storage = cfg.teleport.storage
    a = cfg.auth_service
    for key in _AUDIT_URI_KEYS:
        in_storage = storage.pop(key, None)
        in_auth = auth_keys.get(key)
        if in_storage is not None and in_auth is not None:
            ctx.fail(f"auth_service.{key}",
                     f"also set in teleport.storage.{key}: give it in one place only")
        if in_storage is not None:
            setattr(a, key, in_storage)
    try:
        events = parse_events_uri(a.audit_events_uri)
    except URIError as exc:
        ctx.fail(_uri_key(auth_keys, "audit_events_uri"), str(exc))
    try:
        sessions = parse_sessions_uri(a.audit_sessions_uri)
    except URIError as exc:
        ctx.fail(_uri_key(auth_keys, "audit_sessions_uri"), str(exc))
    why = check_pair(events, sessions)
    if why is not None:
        ctx.fail(_uri_key(auth_keys, "audit_sessions_uri"), why)


def _uri_key(auth_keys: dict[str, Any], key: str) -> str:
    return f"auth_service.{key}" if key in auth_keys else f"teleport.storage.{key}"


def _parse_auth(ctx: _Ctx, raw: Any) -> AuthServiceConfig:
    p = "auth_service"
    d = ctx.mapping(raw, p, _AUTH_KEYS)
    a = AuthServiceConfig()
    a.enabled = ctx.get(d, "enabled", p, ctx.boolean, True)
    a.cluster_name = ctx.get(d, "cluster_name", p, _cluster_name(ctx), None)
    a.listen_addr = ctx.get(
        d,
        "listen_addr",
        p,
        lambda v, q: ctx.addr(v, q, defaults.AUTH_PORT, listen=True),
        a.listen_addr,
    )
    a.tokens = ctx.get(d, "tokens", p, _tokens(ctx), [])
    authn = ctx.mapping(d.get("authentication"), f"{p}.authentication",
                        ("type", "second_factor", "webauthn", "u2f", "connector_name"))
    ap = f"{p}.authentication"
    a.auth_type = ctx.get(authn, "type", ap, lambda v, q: ctx.choice(v, q, AUTH_TYPES), a.auth_type)
    # the default connector of `tsh login` and the login page (github and oidc types)
    a.connector_name = ctx.get(authn, "connector_name", ap, ctx.string, "").strip()
    if "second_factor" in authn and authn["second_factor"] is None:
        ctx.fail(f"{ap}.second_factor", f"expected one of {', '.join(SECOND_FACTORS)}, got nothing (null)")
    # YAML 1.1 reads a bare `on` as true
    a.second_factor = ctx.get(
        authn, "second_factor", ap,
        lambda v, q: "on" if v is True else ctx.choice(v, q, SECOND_FACTORS), a.second_factor,
    )
    a.second_factor = webauthn_cfg.SECOND_FACTOR_ALIASES.get(a.second_factor, a.second_factor)
    _webauthn_section(ctx, authn, ap, a)
    a.session_recording = ctx.get(
        d,
        "session_recording",
        p,
        lambda v, q: ctx.choice(v, q, SESSION_RECORDING),
        a.session_recording,
    )
    a.max_recording_size = ctx.get(d, "max_recording_size", p, ctx.byte_size, a.max_recording_size)
    a.audit_events_uri = ctx.get(d, "audit_events_uri", p, ctx.string, a.audit_events_uri).strip()
    a.audit_sessions_uri = ctx.get(d, "audit_sessions_uri", p, ctx.string,
                                   a.audit_sessions_uri).strip()
    ctx.get(d, "dynamic_config", p, ctx.boolean, False)
    a.trusted_clusters = ctx.get(d, "trusted_clusters", p, _trusted_clusters(ctx), [])
    return a


def _trusted_clusters(ctx: _Ctx) -> Callable[[Any, str], list[TrustedClusterConfig]]:
    def convert(value: Any, path: str) -> list[TrustedClusterConfig]:
        if not isinstance(value, list):
            ctx.fail(path, f"expected a list of {{key_file, allow_logins, tunnel_addr}}, got {_describe(value)}")
        out = []
        for i, item in enumerate(value):
            ip = f"{path}[{i}]"
            d = ctx.mapping(item, ip, ("key_file", "allow_logins", "tunnel_addr"))
            if "key_file" not in d:
                ctx.fail(ip, "key_file is required (the other cluster's 'tctl auth export' output)")
            key_file = ctx.string(d["key_file"], f"{ip}.key_file").strip()
            logins_raw = d.get("allow_logins") or []
            if isinstance(logins_raw, str):
                logins = [x.strip() for x in logins_raw.split(",") if x.strip()]
            elif isinstance(logins_raw, list) and all(isinstance(x, str) for x in logins_raw):
                logins = [x.strip() for x in logins_raw if x.strip()]
            else:
                ctx.fail(f"{ip}.allow_logins", "expected a comma-separated list of OS logins")
            for login in logins:
                if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}", login):
                    ctx.fail(f"{ip}.allow_logins", f"{login!r} is not an OS login name")
            tunnel = ctx.get(d, "tunnel_addr", ip,
                             lambda v, q: ctx.addr(v, q, defaults.PROXY_TUNNEL_PORT, listen=False), None)
            out.append(TrustedClusterConfig(key_file, logins, tunnel))
        return out

    return convert


def _cluster_name(ctx: _Ctx) -> Callable[[Any, str], str]:
    def convert(value: Any, path: str) -> str:
        text = ctx.string(value, path).strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", text):
            ctx.fail(
                path,
                f'expected a name of letters, digits, ".", "_" and "-", got "{value}"',
            )
        return text

    return convert


def _tokens(ctx: _Ctx) -> Callable[[Any, str], list[StaticToken]]:
    def convert(value: Any, path: str) -> list[StaticToken]:
        if not isinstance(value, list):
            ctx.fail(path, f'expected a list of "roles:token" strings, got {_describe(value)}')
        out = []
        for i, item in enumerate(value):
            ip = f"{path}[{i}]"
            text = ctx.string(item, ip).strip()
            if ":" not in text:
                # never echo the value: it is (part of) a secret
                ctx.fail(ip, 'expected "roles:token" such as "node,proxy:<secret>", found no ":"')
            roles_text, token = text.split(":", 1)
            roles = [r.strip().lower() for r in roles_text.split(",")]
            for role in roles:
                if role not in defaults.SYSTEM_ROLES:
                    shown = f'"{role}"' if role else "an empty role"
                    ctx.fail(
                        ip,
                        f"unknown role {shown} in token{_suggest(role, defaults.SYSTEM_ROLES)}; "
                        f"expected a comma list of {', '.join(defaults.SYSTEM_ROLES)}",
                    )
            if not token.strip():
                ctx.fail(ip, 'the token after ":" is empty')
            out.append(StaticToken(roles=list(dict.fromkeys(roles)), token=token.strip()))
        return out

    return convert


def _parse_ssh(ctx: _Ctx, raw: Any) -> SSHServiceConfig:
    p = "ssh_service"
    d = ctx.mapping(raw, p, _SSH_KEYS)
    s = SSHServiceConfig()
    s.enabled = ctx.get(d, "enabled", p, ctx.boolean, True)
    s.listen_addr = ctx.get(
        d,
        "listen_addr",
        p,
        lambda v, q: ctx.addr(v, q, defaults.NODE_SSH_PORT, listen=True),
        s.listen_addr,
    )
    s.tunnel_addr = ctx.get(
        d,
        "tunnel_addr",
        p,
        lambda v, q: ctx.addr(v, q, defaults.PROXY_TUNNEL_PORT, listen=False),
        None,
    )
    s.labels = ctx.get(d, "labels", p, _labels(ctx), {})
    s.commands = ctx.get(d, "commands", p, _commands(ctx), [])
    for cmd in s.commands:
        if cmd.name in s.labels:
            ctx.fail(
                f"{p}.commands", f'label "{cmd.name}" is both a static label and a command label'
            )
    return s


def check_label_key(key: str) -> str | None:
    """Why ``key`` is not a valid label key, or None when it is."""
    if not LABEL_KEY.fullmatch(key):
        return f'invalid label name "{key}": use letters, digits and / . _ : * -'
    return None


def _labels(ctx: _Ctx) -> Callable[[Any, str], dict[str, str]]:
    def convert(value: Any, path: str) -> dict[str, str]:
        if not isinstance(value, dict):
            ctx.fail(path, f"expected a mapping of label: value, got {_describe(value)}")
        out = {}
        for key, val in value.items():
            if not isinstance(key, str):
                ctx.fail(path, f"label names must be strings, got {_describe(key)}")
            problem = check_label_key(key)
            if problem:
                ctx.fail(_join(path, key), problem)
            if not isinstance(val, str):
                ctx.fail(
                    _join(path, key), f'expected a string, got {_describe(val)} (quote it: "...")'
                )
            out[key] = val
        return out

    return convert


def _commands(ctx: _Ctx) -> Callable[[Any, str], list[CommandLabel]]:
    def convert(value: Any, path: str) -> list[CommandLabel]:
        if not isinstance(value, list):
            ctx.fail(path, f"expected a list of {{name, command, period}}, got {_describe(value)}")
        out: list[CommandLabel] = []
        for i, item in enumerate(value):
            ip = f"{path}[{i}]"
            d = ctx.mapping(item, ip, ("name", "command", "period"))
            for key in ("name", "command", "period"):
                if d.get(key) is None:
                    ctx.fail(
                        f"{ip}.{key}", "missing; a command label needs name, command and period"
                    )
            name = ctx.string(d["name"], f"{ip}.name").strip()
            problem = check_label_key(name)
            if problem:
                ctx.fail(f"{ip}.name", problem)
            if any(c.name == name for c in out):
                ctx.fail(f"{ip}.name", f'duplicate command label "{name}"')
            cmd = d["command"]
            if isinstance(cmd, str):
                try:
                    cmd = shlex.split(cmd)
                except ValueError as exc:
                    cmd = f"cannot split the command: {exc}"
                if isinstance(cmd, str):
                    ctx.fail(f"{ip}.command", cmd)
            if not isinstance(cmd, list) or not cmd:
                ctx.fail(
                    f"{ip}.command",
                    f"expected a list such as [uname, -r], got {_describe(d['command'])}",
                )
            argv = [ctx.string(a, f"{ip}.command[{j}]") for j, a in enumerate(cmd)]
            period = ctx.duration(d["period"], f"{ip}.period")
            if period < MIN_COMMAND_PERIOD:
                ctx.fail(f"{ip}.period", f'expected at least 1s, got "{d["period"]}"')
            out.append(CommandLabel(name=name, command=argv, period=period))
        return out

    return convert


def _parse_proxy(ctx: _Ctx, raw: Any) -> ProxyServiceConfig:
    p = "proxy_service"
    d = ctx.mapping(raw, p, _PROXY_KEYS)
    x = ProxyServiceConfig()
    x.enabled = ctx.get(d, "enabled", p, ctx.boolean, True)

    def listen(port: int) -> Callable[[Any, str], HostPort]:
        return lambda v, q: ctx.addr(v, q, port, listen=True)

    x.listen_addr = ctx.get(d, "listen_addr", p, listen(defaults.PROXY_SSH_PORT), x.listen_addr)
    x.web_listen_addr = ctx.get(
        d, "web_listen_addr", p, listen(defaults.PROXY_WEB_PORT), x.web_listen_addr
    )
    x.tunnel_listen_addr = ctx.get(
        d, "tunnel_listen_addr", p, listen(defaults.PROXY_TUNNEL_PORT), x.tunnel_listen_addr
    )
    x.public_addr = ctx.get(
        d,
        "public_addr",
        p,
        lambda v, q: ctx.addr(v, q, defaults.PROXY_WEB_PORT, listen=False),
        None,
    )
    if x.public_addr is not None and x.public_addr.host in ("0.0.0.0", "::"):
        ctx.fail(
            f"{p}.public_addr",
            f'expected the address users reach the proxy at, not "{d["public_addr"]}"',
        )
    # where agents (nodes behind firewalls) reach this proxy's tunnel listener
    x.tunnel_public_addr = ctx.get(
        d, "tunnel_public_addr", p,
        lambda v, q: ctx.addr(v, q, defaults.PROXY_TUNNEL_PORT, listen=False), None,
    )
    if x.tunnel_public_addr is not None and x.tunnel_public_addr.host in ("0.0.0.0", "::"):
        ctx.fail(f"{p}.tunnel_public_addr",
                 f'expected the address agents reach the tunnel listener at, not "{d["tunnel_public_addr"]}"')
    x.https_key_file = ctx.get(d, "https_key_file", p, ctx.string, None)
    x.https_cert_file = ctx.get(d, "https_cert_file", p, ctx.string, None)
    if (x.https_key_file is None) != (x.https_cert_file is None):
        missing = "https_cert_file" if x.https_cert_file is None else "https_key_file"
        ctx.fail(f"{p}.{missing}", "https_key_file and https_cert_file must be given together")
    x.ssh_allowed_hosts = ctx.get(d, "ssh_allowed_hosts", p, _allowed_hosts(ctx), [])
    x.proxy_checks_host_keys = ctx.get(
        d, "proxy_checks_host_keys", p, ctx.boolean, x.proxy_checks_host_keys
    )
    return x


def _allowed_hosts(ctx: _Ctx) -> Callable[[Any, str], list[str]]:
    def convert(value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            ctx.fail(
                path,
                "expected a list of CIDRs, IP addresses or host name patterns (optionally with "
                f':port), such as ["10.0.0.0/8", "*.db.internal:22"], got {_describe(value)}',
            )
        out = []
        for i, item in enumerate(value):
            text = ctx.string(item, f"{path}[{i}]").strip()
            try:
                dialpolicy.parse_allow_entry(text)
            except BadParameter as exc:
                ctx.fail(f"{path}[{i}]", exc.message)
            out.append(text)
        return out

    return convert


def _check_listeners(ctx: _Ctx, cfg: FileConfig) -> None:
    """Two enabled services on one port would fail at start with a bare "address in use"."""
    listeners: list[tuple[str, HostPort]] = []
    if cfg.auth_service.enabled:
        listeners.append(("auth_service.listen_addr", cfg.auth_service.listen_addr))
    if cfg.ssh_service.enabled and cfg.ssh_service.tunnel_addr is None:  # tunnelled: no listener
        listeners.append(("ssh_service.listen_addr", cfg.ssh_service.listen_addr))
    if cfg.proxy_service.enabled:
        px = cfg.proxy_service
        listeners += [
            ("proxy_service.listen_addr", px.listen_addr),
            ("proxy_service.web_listen_addr", px.web_listen_addr),
            ("proxy_service.tunnel_listen_addr", px.tunnel_listen_addr),
        ]
    # the one sharing allowed: the tunnel listener on the web port (told apart by first bytes)
    shared = {"proxy_service.web_listen_addr", "proxy_service.tunnel_listen_addr"}
    for i, (name_a, a) in enumerate(listeners):
        for name_b, b in listeners[i + 1 :]:
            if a.port == 0 or a.port != b.port:
                continue
            if {name_a, name_b} == shared and a == b:
                continue
            wild = ("0.0.0.0", "::")
            if a.host == b.host or a.host in wild or b.host in wild:
                ctx.fail(name_b, f"port {b.port} is already used by {name_a} ({a})")


# --- public API ------------------------------------------------------------------------------


def parse_config_text(text: str, source: str = "<string>") -> FileConfig:
    """Parse and validate teleport.yaml text; ``source`` names the file in error messages."""
    ctx = _Ctx(source)
    data = _load_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _error(
            f"{source}: expected a mapping with the sections {', '.join(SECTIONS)}, "
            f"got {_describe(data)}"
        )
    for key in data:
        if not isinstance(key, str) or key not in SECTIONS:
            shown = key if isinstance(key, str) else _describe(key)
            raise _error(
                f"{source}: {shown}: unknown section{_suggest(str(key), SECTIONS)}; "
                f"valid sections: {', '.join(SECTIONS)}"
            )
    cfg = FileConfig(
        teleport=_parse_global(ctx, data.get("teleport")),
        auth_service=_parse_auth(ctx, data.get("auth_service")),
        ssh_service=_parse_ssh(ctx, data.get("ssh_service")),
        proxy_service=_parse_proxy(ctx, data.get("proxy_service")),
        source=source,
    )
    _audit_uris(ctx, cfg, data.get("auth_service"))
    _check_listeners(ctx, cfg)
    return cfg


def load_config_file(path: str) -> FileConfig:
    """Read and validate a teleport.yaml file; every problem is a one-line ConfigError."""
    if not os.path.exists(path):
        raise _error(
            f"{path}: the configuration file does not exist; create one with "
            f"`teleport configure > {path}` and edit it, or pass another file with --config"
        )
    if os.path.isdir(path):
        raise _error(f"{path}: is a directory, expected a teleport.yaml file")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise _error(
            f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})"
        ) from None
    except OSError as exc:
        raise _error(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    return parse_config_text(text, path)


def default_config() -> FileConfig:
    """The configuration used when there is no file: every service enabled, default ports."""
    return FileConfig()


def _webauthn_section(ctx: _Ctx, authn: dict[str, Any], ap: str, a: AuthServiceConfig) -> None:
    """authentication.webauthn {rp_id} or the reference's u2f {app_id, facets}: the relying
    party (RP id a host name, never an IP) and extra origins for the browser's answers."""
    wcfg = ctx.mapping(authn.get("webauthn"), f"{ap}.webauthn", ("rp_id",))
    ucfg = ctx.mapping(authn.get("u2f"), f"{ap}.u2f", ("app_id", "facets"))
    try:
        if "rp_id" in wcfg:
            a.webauthn_rp_id = webauthn_cfg.check_rp_id(
                ctx.string(wcfg["rp_id"], f"{ap}.webauthn.rp_id"), f"{ap}.webauthn.rp_id")
        elif "app_id" in ucfg:
            app_id = ctx.string(ucfg["app_id"], f"{ap}.u2f.app_id")
            a.webauthn_rp_id = webauthn_cfg.check_rp_id(
                webauthn_cfg.rp_from_u2f(app_id), f"{ap}.u2f.app_id")
            a.webauthn_origins.append(app_id.rstrip("/"))
    except BadParameter as exc:
        ctx.fail(ap, exc.message)
    facets = ucfg.get("facets") or []
    if not isinstance(facets, list) or not all(isinstance(f, str) and f.startswith("https://") for f in facets):
        ctx.fail(f"{ap}.u2f.facets", "expected a list of https:// URLs (the proxies' web addresses)")
    a.webauthn_origins += [f.rstrip("/") for f in facets]
