"""Typed teleport.yaml: what fileconf.py produces and the services consume. Pure data."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from teleport import defaults
from teleport.config.addr import HostPort


class Secret(str):
    """A string that is a secret (an AWS secret key): its repr never shows it, so a config
    printed for debugging or in a traceback does not leak it."""

    def __repr__(self) -> str:
        return "'<hidden>'"


@dataclass
class StaticToken:
    """A join token from ``auth_service.tokens`` ("proxy,node:secret"); repr hides the secret."""

    roles: list[str]
    token: str = field(repr=False)


@dataclass
class CommandLabel:
    """A label whose value is the output of ``command``, re-run every ``period`` seconds."""

    name: str
    command: list[str]
    period: float


@dataclass
class GlobalConfig:
    """The ``teleport:`` section, shared by every service."""

    nodename: str = field(default_factory=socket.gethostname)
    data_dir: str = defaults.DATA_DIR
    auth_token: str | None = field(default=None, repr=False)
    ca_pin: str | None = None
    advertise_ip: str | None = None
    auth_servers: list[HostPort] = field(default_factory=list)
    max_connections: int = defaults.MAX_CONNECTIONS
    max_users: int = defaults.MAX_USERS
    # seconds for a TLS handshake, the first HTTP request's headers and an SSH login
    handshake_timeout: float = defaults.HANDSHAKE_TIMEOUT
    log_output: str = defaults.LOG_OUTPUT
    log_severity: str = defaults.LOG_SEVERITY
    # validated and normalized: {"type": "dir"[, "path"]}, {"type": "etcd", "peers": [...], ...}
    # or {"type": "dynamodb", "table_name", "region", "endpoint", "access_key", "secret_key"}
    # (keys as Secret)
    storage: dict[str, Any] = field(default_factory=lambda: {"type": defaults.STORAGE_TYPE})


@dataclass
class TrustedClusterConfig:
    """One entry of ``auth_service.trusted_clusters`` (the static form of trust)."""

    key_file: str
    allow_logins: list[str] = field(default_factory=list)  # logins its users get here
    tunnel_addr: HostPort | None = None  # its proxy's tunnel address: keep a tunnel open to it


@dataclass
class AuthServiceConfig:
    """The ``auth_service:`` section."""

    enabled: bool = True
    cluster_name: str | None = None
    listen_addr: HostPort = HostPort("0.0.0.0", defaults.AUTH_PORT)
    tokens: list[StaticToken] = field(default_factory=list)
    auth_type: str = defaults.AUTH_TYPE
    connector_name: str = ""  # the default SSO connector (auth_type github or oidc)
    second_factor: str = defaults.SECOND_FACTOR
    # security keys: the relying party id (empty: the proxy's public host) and extra origins
    webauthn_rp_id: str = ""
    webauthn_origins: list[str] = field(default_factory=list)
    session_recording: str = "node"
    max_recording_size: int = defaults.MAX_RECORDING_SIZE  # bytes (compressed) per upload
    # where events and recordings go (config/storageuri.py): "dir", dynamodb://TABLE, s3://...
    audit_events_uri: str = defaults.AUDIT_EVENTS_URI
    audit_sessions_uri: str = defaults.AUDIT_SESSIONS_URI
    trusted_clusters: list[TrustedClusterConfig] = field(default_factory=list)


@dataclass
class SSHServiceConfig:
    """The ``ssh_service:`` section (the node)."""

    enabled: bool = True
    listen_addr: HostPort = HostPort("0.0.0.0", defaults.NODE_SSH_PORT)
    labels: dict[str, str] = field(default_factory=dict)
    commands: list[CommandLabel] = field(default_factory=list)
    # A node behind a firewall: the proxy's reverse tunnel address (proxy_service.tunnel_listen_addr,
    # port 3024). When set the node dials out to it, keeps the tunnel open and listens nowhere
    # (listen_addr is unused); users reach it only through the proxy.
    tunnel_addr: HostPort | None = None


@dataclass
class ProxyServiceConfig:
    """The ``proxy_service:`` section."""

    enabled: bool = True
    listen_addr: HostPort = HostPort("0.0.0.0", defaults.PROXY_SSH_PORT)
    web_listen_addr: HostPort = HostPort("0.0.0.0", defaults.PROXY_WEB_PORT)
    tunnel_listen_addr: HostPort = HostPort("0.0.0.0", defaults.PROXY_TUNNEL_PORT)
    public_addr: HostPort | None = None
    # where agents reach tunnel_listen_addr (default: public_addr's host, tunnel_listen_addr's port)
    tunnel_public_addr: HostPort | None = None
    https_key_file: str | None = None
    https_cert_file: str | None = None
    # OpenSSH servers (not registered nodes) the proxy may dial: CIDRs, IPs and host-name globs,
    # each optionally with :port (see proxy/dialpolicy.py). Empty: registered nodes only.
    ssh_allowed_hosts: list[str] = field(default_factory=list)
    # Recording proxy mode (auth_service.session_recording: proxy): check each node's host
    # certificate against the cluster's host CA, refusing plain host keys (no: accept any key).
    proxy_checks_host_keys: bool = True


@dataclass
class FileConfig:
    """A whole teleport.yaml; ``source`` is the file it came from ("" for built-in defaults)."""

    teleport: GlobalConfig = field(default_factory=GlobalConfig)
    auth_service: AuthServiceConfig = field(default_factory=AuthServiceConfig)
    ssh_service: SSHServiceConfig = field(default_factory=SSHServiceConfig)
    proxy_service: ProxyServiceConfig = field(default_factory=ProxyServiceConfig)
    source: str = ""

    def roles(self) -> list[str]:
        """The enabled service roles, in the order auth, node, proxy."""
        out = []
        if self.auth_service.enabled:
            out.append("auth")
        if self.ssh_service.enabled:
            out.append("node")
        if self.proxy_service.enabled:
            out.append("proxy")
        return out
