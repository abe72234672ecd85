"""tsh's SSH client: reach nodes through the proxy's `proxy:host:port` subsystem with asyncssh.

The proxy and every node are trusted only by the cluster's host CA from ~/.tsh/known_hosts (never
trust on first use). The inner SSH connection to the node runs directly over the subsystem
channel (no socketpair, no extra copy).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import dataclass
from typing import Any

import asyncssh

from teleport import defaults, sshalgs
from teleport.client.keystore import KeyStore, Profile, split_host
from teleport.errors import (
    AccessDenied,
    BadParameter,
    ConnectionProblem,
    NotAuthenticated,
    NotFound,
)

CHANNEL_WINDOW = 8 * 1024 * 1024
# Bigger SSH packets mean fewer Python callbacks per MiB (servers cap what they send at this).
MAX_PACKET = 256 * 1024
NODES_SUBSYSTEM = "teleport-nodes"


@dataclass
class Credentials:
    """What tsh logs in with: the profile, the key + certificate, the host CA keys."""

    profile: Profile
    ssh_proxy_addr: str
    key: asyncssh.SSHKey
    cert: asyncssh.SSHCertificate
    logins: list[str]
    host_ca_keys: list[asyncssh.SSHKey]
    key_path: str
    cert_path: str
    known_hosts_path: str
    valid_before: int


def _split_hostport(addr: str, default_port: int) -> tuple[str, int]:
    host = split_host(addr)
    rest = addr[len(host) + (2 if addr.startswith("[") else 0):]
    if rest.startswith(":") and rest[1:].isdigit():
        return host, int(rest[1:])
    return host, default_port


def read_host_ca_keys(known_hosts_path: str, cluster: str) -> list[asyncssh.SSHKey]:
    """The `@cert-authority` keys of `cluster` in tsh's known_hosts (all CA lines when none is
    tagged with the cluster)."""
    tagged: list[asyncssh.SSHKey] = []
    untagged: list[asyncssh.SSHKey] = []
    try:
        with open(known_hosts_path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        parts = line.split()
        if len(parts) < 4 or parts[0] != "@cert-authority":
            continue
        try:
            key = asyncssh.import_public_key(f"{parts[2]} {parts[3]}")
        except (asyncssh.KeyImportError, ValueError):
            continue
        (tagged if f"clustername={cluster}" in parts[4:] else untagged).append(key)
    return tagged or untagged


def load_credentials(
    store: KeyStore | None = None, proxy: str | None = None, identity: str | None = None
) -> Credentials:
    """The current profile's key and certificate; `proxy` (the --proxy flag) must match it.
    `identity` (ssh -i FILE) takes the key from FILE and the certificate from FILE-cert.pub."""
    store = store or KeyStore()
    profile = store.current_profile()
    if profile is None:
        raise NotAuthenticated("not logged in: run 'tsh --proxy=HOST login' first")
    ssh_addr = profile.ssh_proxy_addr or f"{profile.proxy_host}:{defaults.PROXY_SSH_PORT}"
    if proxy:
        # --proxy=host[:webport][,sshport], as the reference's tsh
        web, _, ssh_port = proxy.partition(",")
        if split_host(web) != profile.proxy_host:
            raise NotAuthenticated(
                f"not logged in to {web}: the current profile is for {profile.proxy_host}; run "
                f"'tsh --proxy={web} login' first"
            )
        if ssh_port:
            if not ssh_port.isdigit():
                raise BadParameter(f"bad --proxy {proxy!r}: the SSH port after ',' must be a number")
            ssh_addr = f"{split_host(ssh_addr)}:{ssh_port}"
    key_path = store.key_path(profile.proxy_host, profile.user)
    cert_path = store.cert_path(profile.proxy_host, profile.user)
    if identity:
        key_path, cert_path = identity, identity + "-cert.pub"
    try:
        key = asyncssh.read_private_key(key_path)
        cert = asyncssh.read_certificate(cert_path)
    except FileNotFoundError as exc:
        if identity:
            raise BadParameter(
                f"{exc.filename}: No such file (-i needs the key FILE and its certificate "
                "FILE-cert.pub, as 'tctl auth sign --user' writes them)"
            ) from None
        raise NotAuthenticated(f"no key in {key_path}: run 'tsh login' again") from None
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise BadParameter(f"cannot read the key {key_path} or its certificate: {exc}") from None
    import time

    from teleport.ca.sshcert import parse_cert

    with open(cert_path) as f:
        info = parse_cert(f.read())
    if info.valid_before <= time.time():
        raise NotAuthenticated(
            f"your certificate for {profile.proxy_host} has expired: run 'tsh login' again"
            if not identity else f"the certificate {cert_path} has expired"
        )
    logins = [p for p in info.principals if not p.startswith("-teleport-")]
    ca_keys = read_host_ca_keys(store.known_hosts_path, profile.cluster)
    if not ca_keys:
        raise NotAuthenticated(
            f"no host CA for cluster {profile.cluster!r} in {store.known_hosts_path}: "
            "run 'tsh login' again"
        )
    return Credentials(
        profile, ssh_addr, key, cert, logins, ca_keys, key_path, cert_path,
        store.known_hosts_path, info.valid_before,
    )


def _options(creds: Credentials, username: str) -> dict[str, Any]:
    return {
        "username": username,
        "client_keys": [(creds.key, creds.cert)],
        "known_hosts": ([], creds.host_ca_keys, []),
        "agent_path": None,
        "config": None,
        **sshalgs.client_options(),  # the cluster's one modern algorithm list
        "compression_algs": None,
        "preferred_auth": "publickey",
        "connect_timeout": 30,
        "window": CHANNEL_WINDOW,
        "max_pktsize": MAX_PACKET,
        # a node or proxy that dies without closing its TCP connection is noticed in seconds
        "keepalive_interval": defaults.CLIENT_KEEPALIVE_INTERVAL,
        "keepalive_count_max": defaults.CLIENT_KEEPALIVE_COUNT_MAX,
    }


def _trust_error(what: str, exc: asyncssh.HostKeyNotVerifiable, cluster: str) -> AccessDenied:
    return AccessDenied(
        f"refusing to connect to {what}: its host certificate is not trusted ({exc.reason}). "
        f"tsh trusts only hosts with a certificate from the host CA of cluster {cluster!r}; "
        "if that CA was rotated run 'tsh login' again, otherwise this host does not belong to "
        "the cluster"
    )


def pick_proxy_login(creds: Credentials, login: str | None) -> str:
    """The principal the proxy connection uses (the proxy checks it is in the certificate)."""
    if login and login in creds.logins:
        return login
    if not creds.logins:
        # A role without logins (e.g. auditor) still reaches the proxy for the auth API with the
        # placeholder principal its certificate carries.
        principals = list(getattr(creds.cert, "principals", None) or [])
        if principals:
            return str(principals[0])
        raise AccessDenied("your certificate has no logins: ask an admin to give you some")
    return creds.logins[0]


async def connect_proxy(
    creds: Credentials, login: str | None = None, agent_path: str | None = None
) -> asyncssh.SSHClientConnection:
    """An SSH connection to the proxy, authenticated by the user certificate; with `agent_path`,
    the agent is forwarded to the proxy (recording proxy mode, see recproxy.py)."""
    host, port = _split_hostport(creds.ssh_proxy_addr, defaults.PROXY_SSH_PORT)
    opts = _options(creds, pick_proxy_login(creds, login))
    if agent_path:
        opts["agent_forwarding"] = agent_path
    try:
        conn = await asyncssh.connect(host, port, **opts)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise _trust_error(f"the proxy {host}:{port}", exc, creds.profile.cluster) from None
    except asyncssh.PermissionDenied:
        raise AccessDenied(
            f"the proxy {host}:{port} refused your certificate: run 'tsh login' again"
        ) from None
    except (TimeoutError, OSError, asyncssh.Error) as exc:
        raise ConnectionProblem(f"cannot connect to the proxy at {host}:{port}: {exc}") from None
    return conn


class _TunnelSession(asyncssh.SSHClientSession[bytes]):
    """Feeds the subsystem channel's bytes into the inner SSH connection (the node's)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.stderr = bytearray()
        self.chan: asyncssh.SSHClientChannel[bytes] | None = None

    def connection_made(self, chan: asyncssh.SSHClientChannel[bytes]) -> None:
        self.chan = chan

    def session_started(self) -> None:
        # Start the inner handshake only once the proxy accepted the subsystem.
        self.inner.connection_made(self.chan)

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            self.stderr += data  # the proxy's error message, not SSH traffic
        else:
            self.inner.data_received(data)

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None and self.stderr:
            exc = ConnectionProblem(self.error_text())
        self.inner.connection_lost(exc)

    def error_text(self) -> str:
        text = self.stderr.decode(errors="replace").strip()
        return text[len("ERROR: "):] if text.startswith("ERROR: ") else text


class SubsystemTunnel:
    """An asyncssh `tunnel=` object: each connection is a `proxy:host:port@cluster` channel."""

    def __init__(self, proxy: asyncssh.SSHClientConnection, cluster: str) -> None:
        self.proxy = proxy
        self.cluster = cluster
        self.last: _TunnelSession | None = None

    def subsystem(self, host: str, port: int) -> str:
        h = f"[{host}]" if ":" in host else host
        return f"proxy:{h}:{port}" + (f"@{self.cluster}" if self.cluster else "")

    async def create_connection(
        self, session_factory: Any, remote_host: str, remote_port: int
    ) -> tuple[Any, Any]:
        inner = session_factory()
        tunnel = _TunnelSession(inner)
        self.last = tunnel
        try:
            chan, _ = await self.proxy.create_session(
                lambda: tunnel,
                subsystem=self.subsystem(remote_host, remote_port),
                encoding=None,
                window=CHANNEL_WINDOW,
                max_pktsize=MAX_PACKET,
            )
        except asyncssh.ChannelOpenError as exc:
            raise ConnectionProblem(f"the proxy refused the connection: {exc.reason}") from None
        return chan, inner

    def close(self) -> None:
        """The proxy connection is shared; its owner closes it."""

    async def wait_closed(self) -> None:
        """See close()."""


async def connect_node(
    proxy: asyncssh.SSHClientConnection,
    creds: Credentials,
    host: str,
    port: int,
    login: str,
    cluster: str = "",
    agent_forwarding: bool = False,
    sock: socket.socket | None = None,
) -> asyncssh.SSHClientConnection:
    """An SSH connection to `host:port` through the proxy, the node verified by the host CA;
    with `sock`, over that stream (a relay process's, see relay.py) instead of `proxy`."""
    if login not in creds.logins:
        raise AccessDenied(
            f"login {login!r} is not in your certificate (your logins: "
            f"{', '.join(creds.logins) or 'none'}): use one of them, e.g. 'tsh ssh "
            f"{creds.logins[0] if creds.logins else 'LOGIN'}@{host}'"
        )
    from teleport.client import recproxy

    cleanups: list[Any] = []
    if sock is None and await recproxy.recording_mode(proxy) == "proxy":
        # the proxy terminates SSH and logs in to the node with our certificate, which it
        # reaches through the agent we forward on a connection of its own
        agent, stop = await recproxy.agent_for(creds.key, creds.cert, creds.valid_before)
        try:
            proxy = await connect_proxy(creds, login, agent_path=agent)
        except BaseException:
            await stop()
            raise
        cleanups = [proxy.close, stop]
    tunnel = SubsystemTunnel(proxy, cluster)
    opts = _options(creds, login)
    if agent_forwarding:
        agent_sock = os.environ.get("SSH_AUTH_SOCK")
        if not agent_sock:
            raise BadParameter(
                "-A needs a running SSH agent (SSH_AUTH_SOCK): start one with 'eval $(tsh agent)'"
            )
        opts["agent_path"] = agent_sock
        opts["agent_forwarding"] = True
    try:
        if sock is not None:
            conn = await asyncssh.connect(host, port, sock=sock, **opts)
        else:
            conn = await asyncssh.connect(host, port, tunnel=tunnel, **opts)
        if cleanups:
            recproxy.close_after(conn, *cleanups)
            cleanups = []
        return conn
    except asyncssh.HostKeyNotVerifiable as exc:
        raise _trust_error(f"node {host}:{port}", exc, creds.profile.cluster) from None
    except asyncssh.PermissionDenied:
        raise AccessDenied(
            f"node {host}:{port} refused login {login!r} with your certificate (is the login "
            "allowed by your roles on that node?)"
        ) from None
    except (TimeoutError, OSError, asyncssh.Error) as exc:
        if tunnel.last is not None and tunnel.last.stderr:
            raise ConnectionProblem(tunnel.last.error_text()) from None
        raise ConnectionProblem(f"cannot connect to node {host}:{port}: {exc}") from None
    finally:
        for c in cleanups:  # the node connection failed: drop the forwarding proxy connection
            result = c()
            if asyncio.iscoroutine(result):
                await result


async def list_nodes(proxy: asyncssh.SSHClientConnection) -> list[dict[str, Any]]:
    """The nodes registered in the cluster, from the proxy's `teleport-nodes` subsystem."""
    result = await proxy.run(subsystem=NODES_SUBSYSTEM, encoding=None)
    if result.exit_status != 0:
        raw = result.stderr or b""
        err = (raw.decode(errors="replace") if isinstance(raw, bytes) else raw).strip()
        raise ConnectionProblem(f"the proxy could not list nodes: {err or result.exit_status}")
    out = result.stdout
    data = json.loads(out if isinstance(out, bytes | str) else b"[]")
    return data if isinstance(data, list) else []


def _node_names(node: dict[str, Any], cluster: str) -> set[str]:
    spec = node.get("spec", {})
    hostname = str(spec.get("hostname", ""))
    addr = str(spec.get("addr", ""))
    names = {str(node.get("metadata", {}).get("name", "")), hostname, split_host(addr) if addr else ""}
    if hostname and cluster:
        names.add(f"{hostname}.{cluster}")
    return {n.lower() for n in names if n}


async def explain_unknown_node(
    proxy: asyncssh.SSHClientConnection, creds: Credentials, host: str, exc: ConnectionProblem
) -> Exception:
    """The error to show when connecting to `host` failed: 'no such node' when no registered node
    has that name (rather than the resolver's words), the original error otherwise."""
    try:
        nodes = await list_nodes(proxy)
    except Exception:  # listing is only a better message; the original error stands
        return exc
    if any(host.lower() in _node_names(n, creds.profile.cluster) for n in nodes):
        return exc
    return NotFound(
        f"no node named {host!r} in cluster {creds.profile.cluster!r} ({exc}): 'tsh ls' lists "
        "the nodes you can reach"
    )
