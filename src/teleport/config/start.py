"""`teleport start` flags applied over a FileConfig, and where this process finds auth. Pure."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable

from teleport import defaults
from teleport.config.addr import HostPort, is_ip, parse_host_port, valid_host
from teleport.config.fileconf import CA_PIN
from teleport.config.labels import parse_labels_flag
from teleport.config.model import FileConfig
from teleport.errors import BadParameter, ConfigError


def parse_roles_flag(text: str) -> list[str]:
    """Parse --roles ("auth,node,proxy"); unknown or empty roles raise BadParameter."""
    roles = [r.strip().lower() for r in text.split(",") if r.strip()]
    if not roles:
        raise BadParameter(
            f"--roles: expected a comma list of {','.join(defaults.SERVICE_ROLES)}, got {text!r}"
        )
    for role in roles:
        if role not in defaults.SERVICE_ROLES:
            close = difflib.get_close_matches(role, defaults.SERVICE_ROLES, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            raise BadParameter(
                f'--roles: unknown role "{role}"{hint}; expected a comma list of '
                f"{','.join(defaults.SERVICE_ROLES)}"
            )
    return list(dict.fromkeys(roles))


def _auth_server_list(value: str | Iterable[str]) -> list[HostPort]:
    items = [value] if isinstance(value, str) else list(value)
    out: list[HostPort] = []
    for item in items:
        for part in item.split(","):
            if not part.strip():
                continue
            try:
                out.append(parse_host_port(part, defaults.AUTH_PORT))
            except BadParameter as exc:
                raise BadParameter(f"--auth-server: {exc.message}") from None
    if not out:
        raise BadParameter("--auth-server: expected host[:port] of an auth server, got nothing")
    return out


def apply_start_flags(
    cfg: FileConfig,
    *,
    roles: str | None = None,
    advertise_ip: str | None = None,
    listen_ip: str | None = None,
    auth_server: str | Iterable[str] | None = None,
    token: str | None = None,
    nodename: str | None = None,
    labels: str | None = None,
    debug: bool = False,
    ca_pin: str | None = None,
) -> FileConfig:
    """Return a copy of ``cfg`` with the `teleport start` flags applied (flags win over the file).

    Bad flag values raise BadParameter naming the flag.
    """
    g = dataclasses.replace(cfg.teleport, storage=dict(cfg.teleport.storage))
    auth = dataclasses.replace(cfg.auth_service)
    ssh = dataclasses.replace(
        cfg.ssh_service,
        labels=dict(cfg.ssh_service.labels),
        commands=list(cfg.ssh_service.commands),
    )
    proxy = dataclasses.replace(cfg.proxy_service)

    if roles is not None:
        wanted = parse_roles_flag(roles)
        auth.enabled = "auth" in wanted
        ssh.enabled = "node" in wanted
        proxy.enabled = "proxy" in wanted
    if advertise_ip is not None:
        if not valid_host(advertise_ip.strip()):
            raise BadParameter(
                f"--advertise-ip: expected an IP address or host name, got {advertise_ip!r}"
            )
        g.advertise_ip = advertise_ip.strip()
    if listen_ip is not None:
        ip = listen_ip.strip().strip("[]")
        if not is_ip(ip):
            raise BadParameter(f"--listen-ip: expected an IP address, got {listen_ip!r}")
        auth.listen_addr = HostPort(ip, auth.listen_addr.port)
        ssh.listen_addr = HostPort(ip, ssh.listen_addr.port)
        proxy.listen_addr = HostPort(ip, proxy.listen_addr.port)
        proxy.web_listen_addr = HostPort(ip, proxy.web_listen_addr.port)
        proxy.tunnel_listen_addr = HostPort(ip, proxy.tunnel_listen_addr.port)
    if auth_server is not None:
        g.auth_servers = _auth_server_list(auth_server)
    if token is not None:
        if not token.strip():
            raise BadParameter("--token: expected a join token, got an empty string")
        g.auth_token = token.strip()
    if nodename is not None:
        name = nodename.strip()
        if not name or any(c.isspace() for c in name) or "@" in name or "/" in name:
            raise BadParameter(
                f'--nodename: expected a host name without spaces, "@" or "/", got {nodename!r}'
            )
        g.nodename = name
    if labels is not None:
        static, commands = parse_labels_flag(labels)
        ssh.labels.update(static)
        for cmd in commands:
            ssh.labels.pop(cmd.name, None)
        flagged = {c.name for c in commands} | set(static)
        ssh.commands = [c for c in ssh.commands if c.name not in flagged] + commands
    if debug:
        g.log_severity = "DEBUG"
    if ca_pin is not None:
        pin = ca_pin.strip()
        if not CA_PIN.fullmatch(pin):
            raise BadParameter(
                f'--ca-pin: expected "sha256:<64 hex digits>" as printed by `tctl nodes add`, '
                f"got {ca_pin!r}"
            )
        g.ca_pin = pin.lower()
    return FileConfig(
        teleport=g, auth_service=auth, ssh_service=ssh, proxy_service=proxy, source=cfg.source
    )


def loopback_for(host: str) -> str:
    """The address to dial a listener bound to ``host`` at (wildcards become loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def effective_auth_servers(cfg: FileConfig) -> list[HostPort]:
    """Where this process reaches auth: the configured auth_servers, else its own auth service.

    Raises ConfigError when neither is available (a node or proxy with nowhere to join).
    """
    if cfg.teleport.auth_servers:
        return list(cfg.teleport.auth_servers)
    if cfg.auth_service.enabled:
        listen = cfg.auth_service.listen_addr
        return [HostPort(loopback_for(listen.host), listen.port)]
    where = f"in {cfg.source} " if cfg.source else ""
    raise ConfigError(
        f"{cfg.source or 'teleport'}: teleport.auth_servers: this process does not run the auth "
        f"service and no auth server is configured; set teleport.auth_servers {where}"
        f"or pass --auth-server=HOST:3025"
    )
