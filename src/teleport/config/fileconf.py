"""Reading and strictly validating teleport.yaml into the typed model.

Every problem raises ConfigError with one line: ``<file>: <key.path>: <what is expected>``.
Pure module (no asyncio).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from typing import Any, TypeVar

from teleport import defaults
from teleport.auth import relyingparty as webauthn_cfg
from teleport.config.addr import HostPort, valid_host
from teleport.config.model import (
    AuthServiceConfig,
    CommandLabel,
    FileConfig,
    GlobalConfig,
    ProxyServiceConfig,
    SSHServiceConfig,
    StaticToken,
    TrustedClusterConfig,
)
from teleport.config.storageconf import audit_uris, parse_storage
from teleport.config.yamlctx import (
    Ctx,
    config_error,
    describe,
    join_path,
    load_yaml,
    suggest,
)
from teleport.errors import BadParameter
from teleport.proxy import dialpolicy

T = TypeVar("T")

SECTIONS = ("teleport", "auth_service", "ssh_service", "proxy_service")
LOG_OUTPUTS = ("stderr", "stdout", "syslog")
LOG_SEVERITIES = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR")
SECOND_FACTORS = (*webauthn_cfg.SECOND_FACTORS, *webauthn_cfg.SECOND_FACTOR_ALIASES)
AUTH_TYPES = defaults.AUTH_TYPES
SESSION_RECORDING = ("node", "proxy", "off")
# The label key syntax of the original product.
LABEL_KEY = re.compile(r"[A-Za-z0-9/._:*-]+")
CA_PIN = re.compile(r"sha256:[0-9a-fA-F]{64}")
MIN_COMMAND_PERIOD = 1.0
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


# --- sections --------------------------------------------------------------------------------


def _parse_global(ctx: Ctx, raw: Any) -> GlobalConfig:
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
    g.storage = parse_storage(ctx, d.get("storage"))
    return g


def _positive_duration(ctx: Ctx) -> Callable[[Any, str], float]:
    def convert(value: Any, path: str) -> float:
        seconds = ctx.duration(value, path)
        if seconds <= 0:
            ctx.fail(path, f"must be a positive duration such as 30s, got {value!r}")
        return seconds

    return convert


def _nodename(ctx: Ctx) -> Callable[[Any, str], str]:
    def convert(value: Any, path: str) -> str:
        text = ctx.string(value, path).strip()
        if any(c.isspace() for c in text) or "@" in text or "/" in text:
            ctx.fail(path, f'expected a host name without spaces, "@" or "/", got "{value}"')
        return text

    return convert


def _ca_pin(ctx: Ctx) -> Callable[[Any, str], str]:
    def convert(value: Any, path: str) -> str:
        text = ctx.string(value, path).strip()
        if not CA_PIN.fullmatch(text):
            ctx.fail(
                path,
                f'expected "sha256:<64 hex digits>" as printed by `tctl nodes add`, got "{value}"',
            )
        return text.lower()

    return convert


def _host(ctx: Ctx) -> Callable[[Any, str], str]:
    def convert(value: Any, path: str) -> str:
        text = ctx.string(value, path).strip()
        if not valid_host(text):
            ctx.fail(path, f'expected an IP address or host name (no port), got "{value}"')
        return text

    return convert


def _auth_servers(ctx: Ctx) -> Callable[[Any, str], list[HostPort]]:
    def convert(value: Any, path: str) -> list[HostPort]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            ctx.fail(path, f"expected a list of host:port, got {describe(value)}")
        return [
            ctx.addr(item, f"{path}[{i}]", defaults.AUTH_PORT, listen=False)
            for i, item in enumerate(items)
        ]

    return convert


def _log_output(ctx: Ctx) -> Callable[[Any, str], str]:
    def convert(value: Any, path: str) -> str:
        text = ctx.string(value, path).strip()
        if text.lower() in LOG_OUTPUTS:
            return text.lower()
        if "/" not in text:
            # a typo such as "stdrr" must not silently become a log file in the working dir
            ctx.fail(
                path,
                f"expected stderr, stdout, syslog or a file path such as /var/log/teleport.log, "
                f'got "{value}"{suggest(text.lower(), LOG_OUTPUTS)}',
            )
        return text

    return convert


def _parse_auth(ctx: Ctx, raw: Any) -> AuthServiceConfig:
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


def _trusted_clusters(ctx: Ctx) -> Callable[[Any, str], list[TrustedClusterConfig]]:
    def convert(value: Any, path: str) -> list[TrustedClusterConfig]:
        if not isinstance(value, list):
            ctx.fail(path, f"expected a list of {{key_file, allow_logins, tunnel_addr}}, got {describe(value)}")
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


def _cluster_name(ctx: Ctx) -> Callable[[Any, str], str]:
    def convert(value: Any, path: str) -> str:
        text = ctx.string(value, path).strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", text):
            ctx.fail(
                path,
                f'expected a name of letters, digits, ".", "_" and "-", got "{value}"',
            )
        return text

    return convert


def _tokens(ctx: Ctx) -> Callable[[Any, str], list[StaticToken]]:
    def convert(value: Any, path: str) -> list[StaticToken]:
        if not isinstance(value, list):
            ctx.fail(path, f'expected a list of "roles:token" strings, got {describe(value)}')
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
                        f"unknown role {shown} in token{suggest(role, defaults.SYSTEM_ROLES)}; "
                        f"expected a comma list of {', '.join(defaults.SYSTEM_ROLES)}",
                    )
            if not token.strip():
                ctx.fail(ip, 'the token after ":" is empty')
            out.append(StaticToken(roles=list(dict.fromkeys(roles)), token=token.strip()))
        return out

    return convert


def _parse_ssh(ctx: Ctx, raw: Any) -> SSHServiceConfig:
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


def _labels(ctx: Ctx) -> Callable[[Any, str], dict[str, str]]:
    def convert(value: Any, path: str) -> dict[str, str]:
        if not isinstance(value, dict):
            ctx.fail(path, f"expected a mapping of label: value, got {describe(value)}")
        out = {}
        for key, val in value.items():
            if not isinstance(key, str):
                ctx.fail(path, f"label names must be strings, got {describe(key)}")
            problem = check_label_key(key)
            if problem:
                ctx.fail(join_path(path, key), problem)
            if not isinstance(val, str):
                ctx.fail(
                    join_path(path, key), f'expected a string, got {describe(val)} (quote it: "...")'
                )
            out[key] = val
        return out

    return convert


def _commands(ctx: Ctx) -> Callable[[Any, str], list[CommandLabel]]:
    def convert(value: Any, path: str) -> list[CommandLabel]:
        if not isinstance(value, list):
            ctx.fail(path, f"expected a list of {{name, command, period}}, got {describe(value)}")
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
                    f"expected a list such as [uname, -r], got {describe(d['command'])}",
                )
            argv = [ctx.string(a, f"{ip}.command[{j}]") for j, a in enumerate(cmd)]
            period = ctx.duration(d["period"], f"{ip}.period")
            if period < MIN_COMMAND_PERIOD:
                ctx.fail(f"{ip}.period", f'expected at least 1s, got "{d["period"]}"')
            out.append(CommandLabel(name=name, command=argv, period=period))
        return out

    return convert


def _parse_proxy(ctx: Ctx, raw: Any) -> ProxyServiceConfig:
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


def _allowed_hosts(ctx: Ctx) -> Callable[[Any, str], list[str]]:
    def convert(value: Any, path: str) -> list[str]:
        if not isinstance(value, list):
            ctx.fail(
                path,
                "expected a list of CIDRs, IP addresses or host name patterns (optionally with "
                f':port), such as ["10.0.0.0/8", "*.db.internal:22"], got {describe(value)}',
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


def _check_listeners(ctx: Ctx, cfg: FileConfig) -> None:
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
    ctx = Ctx(source)
    data = load_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise config_error(
            f"{source}: expected a mapping with the sections {', '.join(SECTIONS)}, "
            f"got {describe(data)}"
        )
    for key in data:
        if not isinstance(key, str) or key not in SECTIONS:
            shown = key if isinstance(key, str) else describe(key)
            raise config_error(
                f"{source}: {shown}: unknown section{suggest(str(key), SECTIONS)}; "
                f"valid sections: {', '.join(SECTIONS)}"
            )
    cfg = FileConfig(
        teleport=_parse_global(ctx, data.get("teleport")),
        auth_service=_parse_auth(ctx, data.get("auth_service")),
        ssh_service=_parse_ssh(ctx, data.get("ssh_service")),
        proxy_service=_parse_proxy(ctx, data.get("proxy_service")),
        source=source,
    )
    audit_uris(ctx, cfg, data.get("auth_service"))
    _check_listeners(ctx, cfg)
    return cfg


def load_config_file(path: str) -> FileConfig:
    """Read and validate a teleport.yaml file; every problem is a one-line ConfigError."""
    if not os.path.exists(path):
        raise config_error(
            f"{path}: the configuration file does not exist; create one with "
            f"`teleport configure > {path}` and edit it, or pass another file with --config"
        )
    if os.path.isdir(path):
        raise config_error(f"{path}: is a directory, expected a teleport.yaml file")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError as exc:
        raise config_error(
            f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})"
        ) from None
    except OSError as exc:
        raise config_error(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    return parse_config_text(text, path)


def default_config() -> FileConfig:
    """The configuration used when there is no file: every service enabled, default ports."""
    return FileConfig()


def _webauthn_section(ctx: Ctx, authn: dict[str, Any], ap: str, a: AuthServiceConfig) -> None:
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
