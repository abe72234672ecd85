"""The proxy's SSH listener (3023): certificate-only logins and the `proxy:host:port` subsystem.

A client authenticates with a user certificate signed by the cluster's user CA, then asks for the
subsystem `proxy:host:port[@cluster]`; the proxy finds the node, dials it and relays raw bytes, so
the client runs SSH end to end with the node (which authenticates the user a second time).
In recording proxy mode (auth_service.session_recording: proxy) the proxy instead terminates the
client's SSH on that channel and records the session itself: see forward.py.
The relay is callback based (asyncio protocols on both sides, no per-chunk coroutines) and uses
the channel's flow control in both directions.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import asyncssh

from teleport import defaults, sshalgs
from teleport.auth.client import AuthClient
from teleport.config.model import FileConfig
from teleport.config.start import effective_auth_servers
from teleport.errors import AccessDenied, ConnectionProblem, NotFound, TeleportError
from teleport.proxy import dialpolicy, lookup, recmode
from teleport.proxy.recorder import ProxyRecorder
from teleport.proxy.sshconn import CHANNEL_WINDOW, ProxyServer, fmt_addr
from teleport.reversetunnel import route
from teleport.service import listeners
from teleport.service.cache import LocalCache
from teleport.service.cachedata import CacheData
from teleport.service.httplistener import ListenerLimits
from teleport.service.sshgate import SSHGate
from teleport.types.identity import HostIdentity

if TYPE_CHECKING:
    from teleport.reversetunnel.server import TunnelServer

log = logging.getLogger("teleport.proxy.ssh")

NODES_CACHE_SECONDS = 5.0
NODES_MISS_REFRESH_SECONDS = 1.0
ENDPOINTS_CACHE_SECONDS = 60.0
CA_CACHE_SECONDS = 30.0

HeaderFunc = Callable[..., bytes]
T = TypeVar("T")


def _load_header_func() -> HeaderFunc | None:
    """The node service's proxy-header encoder, once that module exists."""
    try:
        from teleport.node.proxyheader import make_proxy_header
    except ImportError:
        return None
    return make_proxy_header


class ProxySSHService:
    """The proxy SSH service: `await start()` listens on proxy_service.listen_addr."""

    def __init__(
        self, cfg: FileConfig, identity: HostIdentity, auth_client: AuthClient, data_dir: str
    ) -> None:
        self.cfg = cfg
        self.identity = identity
        self.auth = auth_client
        self.data_dir = data_dir
        self.cluster_name = identity.cluster_name
        self._server: asyncssh.SSHAcceptor | None = None
        self._nodes: list[dict[str, Any]] = []
        self._nodes_at = 0.0
        self._nodes_lock = asyncio.Lock()
        self._ca_keys: set[asyncssh.SSHKey] = {
            asyncssh.import_public_key(k) for k in identity.user_ca_keys
        }
        self._ca_lines: list[str] = list(identity.user_ca_keys)
        self._host_ca_keys: list[asyncssh.SSHKey] = [
            asyncssh.import_public_key(k) for k in identity.host_ca_keys
        ]
        self._ca_at = 0.0
        # auth_service.session_recording, from auth's ping (re-read every RECORDING_MODE_REFRESH)
        self.mode = "node"
        self._mode_at = 0.0
        self.recorder = ProxyRecorder(self, data_dir)
        self._header = _load_header_func()
        self._conns: set[asyncssh.SSHServerConnection] = set()
        self.gateways: dict[str, int] = {}  # open `proxy:@cluster` streams per Teleport user
        self.allowed_hosts = dialpolicy.parse_allow_list(cfg.proxy_service.ssh_allowed_hosts)
        self._endpoints: list[dialpolicy.Endpoint] | None = None
        self._endpoints_at = 0.0
        self._bound_port = 0
        self.limits = ListenerLimits.from_config(cfg.teleport)
        self.gate = SSHGate(self.limits, f"the SSH proxy ({cfg.proxy_service.listen_addr})")
        # the reverse tunnel listener (set by the process once it listens): routes tunnelled nodes
        self.tunnels: TunnelServer | None = None
        # trusted (leaf) clusters: routes `@leaf` requests through their tunnels
        from teleport.trustedcluster.proxyside import TrustCache

        self.trust = TrustCache(auth_client, self.cluster_name)
        # what the proxy serves from when auth is down (set by the process; None in tests)
        self.cache: LocalCache | None = None

    def use_cache(self, cache: LocalCache) -> None:
        """Serve CAs, the recording mode and, with auth down, routing and access from `cache`."""
        self.cache = cache
        cache.on_update(self._cache_updated)

    def _cache_updated(self, data: CacheData) -> None:
        self.apply_authorities(data.authorities)
        self.mode = recmode.parse_mode(data.session_recording, self.mode)
        self._mode_at = time.monotonic()

    async def from_auth_or_cache(self, ask: Callable[[], Awaitable[T]],
                                 decide: Callable[[CacheData], T]) -> T:
        """Auth's answer while auth answers (within CACHE_FALLBACK_AFTER); the same decision made
        from the cache when it does not. Without a cache, auth's error."""
        cache = self.cache
        if cache is not None and cache.data is not None and not cache.online:
            return decide(cache.data)  # known down: no round trip to wait for
        try:
            return await asyncio.wait_for(ask(), defaults.CACHE_FALLBACK_AFTER)
        except (ConnectionProblem, TimeoutError, OSError) as exc:
            if cache is None:
                if isinstance(exc, TimeoutError):
                    raise ConnectionProblem("the auth server did not answer in time") from None
                raise
            log.info("auth did not answer (%s); deciding from the cache", exc or "timeout")
            cache.online = False  # until the cache's own poll reaches auth again: no more waits
            return decide(await cache.get("proxy"))

    @property
    def listen_addr(self) -> str:
        return str(self.cfg.proxy_service.listen_addr)

    async def start(self) -> None:
        """Listen for SSH clients; raises OSError with the address when the port is taken."""
        addr = self.cfg.proxy_service.listen_addr
        host_key = asyncssh.import_private_key(self.identity.private_key)
        cert = asyncssh.import_certificate(self.identity.cert)
        options = await asyncssh.SSHServerConnectionOptions.construct(
            server_host_keys=[(host_key, cert)],
            encoding=None,
            window=CHANNEL_WINDOW,
            allow_pty=False,
            # recording proxy mode logs in to nodes through the agent the client forwards here
            agent_forwarding=True,
            x11_forwarding=False,
            keepalive_interval=defaults.SSH_KEEPALIVE_INTERVAL,
            keepalive_count_max=defaults.SSH_KEEPALIVE_COUNT_MAX,
            login_timeout=self.limits.handshake_timeout,
            **sshalgs.connection_options(),
        )
        sshalgs.restrict_server_host_keys(options)
        try:
            self._server = await asyncssh.create_server(
                lambda: ProxyServer(self),
                options=options,
                sock=listeners.listen_socket(addr.host, addr.port),  # kept across a SIGHUP restart
            )
        except OSError as exc:
            raise OSError(f"cannot listen on {addr}: {exc.strerror or exc}") from None
        if addr.port == 0:  # an ephemeral port is one of ours too
            self._bound_port = int(self._server.get_port())
        await self.recording_mode()
        self.recorder.start()
        log.info("proxy SSH service listening on %s (session recording: %s)", addr, self.mode)

    def stop_accepting(self) -> None:
        """Graceful shutdown: no new clients; the connected ones carry on."""
        if self._server is not None:
            self._server.close()

    def live_connections(self) -> int:
        return len(self._conns)

    async def close(self) -> None:
        """Stop listening and drop the open client connections."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for conn in list(self._conns):
            conn.abort()
        self._conns.clear()
        await self.recorder.close()

    # cluster state ----------------------------------------------------------------------
    async def recording_mode(self) -> str:
        """auth_service.session_recording as auth last announced it (node | proxy | off)."""
        cached = self.cache is not None and self.cache.data is not None
        if not cached and time.monotonic() - self._mode_at > defaults.RECORDING_MODE_REFRESH:
            try:
                self.mode = recmode.parse_mode((await self.auth.ping()).get("session_recording"), self.mode)
                self._mode_at = time.monotonic()
            except (TeleportError, OSError, ValueError) as exc:
                log.warning("cannot read the session recording mode, keeping %r: %s", self.mode, exc)
        return self.mode

    def user_ca_lines(self) -> list[str]:
        """The user CA's checking keys as OpenSSH lines (as last refreshed by user_ca_keys)."""
        return self._ca_lines

    async def host_ca_keys(self) -> list[asyncssh.SSHKey]:
        """The host CA's checking keys (refreshed with the user CA's)."""
        await self.user_ca_keys()
        return self._host_ca_keys

    async def user_ca_keys(self) -> set[asyncssh.SSHKey]:
        """The user CA's checking keys (refreshed from auth; the last known set on failure)."""
        cached = self.cache is not None and self.cache.data is not None
        if not cached and time.monotonic() - self._ca_at > CA_CACHE_SECONDS:
            try:
                self.apply_authorities(await self.auth.get_authorities())
            except (TeleportError, OSError, ValueError) as exc:
                log.warning("cannot refresh the user CA from auth (using the cached one): %s", exc)
        return self._ca_keys

    def apply_authorities(self, cas: list[dict[str, Any]]) -> None:
        """Trust every checking key of the user and host CAs (old and new during a rotation)."""
        keys: set[asyncssh.SSHKey] = set()
        lines: list[str] = []
        host: list[asyncssh.SSHKey] = []
        for ca in cas:
            spec = ca.get("spec", {})
            if spec.get("cluster_name") != self.cluster_name:
                continue
            if spec.get("type") == "user":
                lines += spec.get("checking_keys", [])
                keys.update(asyncssh.import_public_key(k) for k in spec.get("checking_keys", []))
            elif spec.get("type") == "host":
                host += [asyncssh.import_public_key(k) for k in spec.get("checking_keys", [])]
        if keys:
            self._ca_keys, self._ca_lines = keys, lines
        if host:
            self._host_ca_keys = host
        self._ca_at = time.monotonic()

    async def reload_identity(self, identity: HostIdentity) -> None:
        """CA rotation re-issued this proxy's identity: present the new host certificate to new
        clients (open connections keep theirs)."""
        self.identity = identity
        if self._server is not None:
            self._server.update(server_host_keys=[
                (asyncssh.import_private_key(identity.private_key), asyncssh.import_certificate(identity.cert))
            ])

    async def nodes(self, max_age: float = NODES_CACHE_SECONDS) -> list[dict[str, Any]]:
        """The registered nodes, cached for up to `max_age` seconds."""
        async with self._nodes_lock:
            if time.monotonic() - self._nodes_at > max_age:
                # offline tunnelled nodes too: asking for one says "offline", not "unknown"
                self._nodes = await self.from_auth_or_cache(
                    lambda: self.auth.call("GET", "/v1/nodes?offline=1"),
                    lambda data: list(data.nodes or []))
                self._nodes_at = time.monotonic()
            return self._nodes

    async def resolve(self, req: lookup.ProxyRequest, user: str, cert: str = "") -> DialTarget:
        """Where to dial for `req` on behalf of Teleport user `user` (holding certificate `cert`),
        after every check of the dial policy (see dialpolicy.py); AccessDenied / NotFound say why
        not. A trusted (leaf) cluster decides itself, through its tunnel."""
        if req.cluster and req.cluster != self.cluster_name:
            return await self.trust.resolve(req, cert)
        if not req.host:
            # proxy:@cluster: a byte stream to the cluster's auth API (the client then speaks
            # mutual TLS with its own x509 identity, end to end): a deliberate gateway, the one
            # way through to the auth port
            auth = effective_auth_servers(self.cfg)[0]
            return DialTarget(fmt_addr(auth.host, auth.port), [auth.host], auth.port, None)
        ips: list[str] | None = None
        matches: list[dict[str, Any]] = []
        # a miss asks auth again (at most once a second): a node that just joined is routable
        for max_age in (NODES_CACHE_SECONDS, NODES_MISS_REFRESH_SECONDS):
            nodes = await self.nodes(max_age)
            matches = lookup.match_nodes(nodes, req.host, req.port)
            suffix = "." + self.cluster_name
            if not matches and dialpolicy.normalize_host(req.host).endswith(suffix.lower()):
                # `node.<cluster>` (the ssh_config `Host *.<cluster>` form) names node `node`
                matches = lookup.match_nodes(nodes, req.host.rstrip(".")[: -len(suffix)], req.port)
            if not matches:
                if ips is None:
                    ips = await _resolve_ips(req.host)
                matches = lookup.match_nodes(nodes, req.host, req.port, ips)
            if matches:
                break
        node = lookup.pick_node(matches, req.host)
        if node is not None and route.is_tunnelled(node):
            await self.check_route(user, node)
            connected = self.tunnels.connected() if self.tunnels is not None else set()
            via = route.route_for(node, connected)
            shown = f"{node.get('spec', {}).get('hostname', '?')} (reverse tunnel)"
            return DialTarget(shown, [], 0, node, via.tunnel)
        if node is not None:
            await self.check_route(user, node)
            host, port = lookup.node_address(node)
            candidates = [dialpolicy.unmap(ip) for ip in _ips(await _resolve_ips(host))]
            if not candidates:
                raise NotFound(f"cannot resolve the address {host!r} of node {req.host!r}")
            shown = fmt_addr(host, port)
        else:
            port = req.port
            if ips is None:
                ips = await _resolve_ips(req.host)
            name = None if dialpolicy.parse_ip(req.host) is not None else req.host
            # the protected ports first, whatever the allow list says, for the clearer message
            await self._refuse_own(req.host, _ips(ips), port)
            candidates = [
                ip for ip in _ips(ips)
                if dialpolicy.allowed_by_config(self.allowed_hosts, name, ip, port)
            ]
            if not candidates:
                if not ips and name is not None and dialpolicy.name_allowed(self.allowed_hosts, name, port):
                    raise NotFound(f"cannot resolve host {req.host!r}")
                raise dialpolicy.not_allowed(req.host, port)
            shown = fmt_addr(req.host, port)
        await self._refuse_own(req.host, candidates, port)
        return DialTarget(shown, [str(ip) for ip in candidates], port, node)

    async def _refuse_own(self, host: str, ips: list[dialpolicy.IPAddress], port: int) -> None:
        """AccessDenied when any of `ips`:`port` is the auth API or one of this proxy's ports."""
        endpoints = await self.protected_endpoints()
        for ip in ips:
            ep = dialpolicy.own_endpoint(endpoints, ip, port, _is_local_ip)
            if ep is not None:
                raise dialpolicy.own_port_refused(host, port, ep)

    async def protected_endpoints(self) -> list[dialpolicy.Endpoint]:
        """The auth API and this proxy's own listeners, with the addresses they resolve to
        (cached for a minute: names in auth_servers may move)."""
        if self._endpoints is not None and time.monotonic() - self._endpoints_at < ENDPOINTS_CACHE_SECONDS:
            return self._endpoints
        px = self.cfg.proxy_service
        named: list[tuple[str, str, int]] = [
            ("proxy SSH listener", px.listen_addr.host, px.listen_addr.port),
            ("proxy web listener", px.web_listen_addr.host, px.web_listen_addr.port),
            ("proxy tunnel listener", px.tunnel_listen_addr.host, px.tunnel_listen_addr.port),
        ]
        named += [("auth server", a.host, a.port) for a in effective_auth_servers(self.cfg)]
        if self.cfg.auth_service.enabled:
            a = self.cfg.auth_service.listen_addr
            named.append(("auth server", a.host, a.port))
        if self._bound_port:
            named.append(("proxy SSH listener", px.listen_addr.host, self._bound_port))
        out = []
        for what, host, port in named:
            if dialpolicy.wildcard(host):
                out.append(dialpolicy.Endpoint(what, port, None))
            else:
                found = frozenset(_ips(await _resolve_ips(host)))
                # a name that does not resolve now may later: treat it as every local address
                out.append(dialpolicy.Endpoint(what, port, found or None))
        self._endpoints, self._endpoints_at = out, time.monotonic()
        return out

    async def visible_nodes(self, user: str, offline: bool = False) -> list[dict[str, Any]]:
        """The nodes the user's current roles can see, asked fresh from auth (a role edit applies
        to the next `tsh ls` and the next connection); online ones only unless `offline`; decided
        from the cache when auth is down."""
        if not user:
            raise AccessDenied("access denied: the proxy could not tell which Teleport user you are")
        body: dict[str, Any] = {"user": user, **({"offline": True} if offline else {})}

        async def ask() -> list[dict[str, Any]]:
            nodes = await self.auth.call("POST", "/v1/access/nodes", body)
            return nodes if isinstance(nodes, list) else []

        return await self.from_auth_or_cache(ask, lambda data: data.visible_nodes(user))

    async def check_route(self, user: str, node: dict[str, Any]) -> None:
        """AccessDenied unless some role of the user allows a login on this registered node."""
        name = node.get("metadata", {}).get("name")
        if any(n.get("metadata", {}).get("name") == name for n in await self.visible_nodes(user, True)):
            return
        hostname = node.get("spec", {}).get("hostname", "?")
        raise AccessDenied(
            f"access denied: user {user!r} may not connect to node {hostname!r} ({name}): "
            "none of your roles allows a login on it"
        )

    def proxy_header(self, client_addr: str, node_addr: str, recording_proxy: bool = False) -> bytes:
        """The signed header telling a Teleport node the real client address, and whether this
        proxy records the connection's sessions itself (b"" when the node service that reads it
        is not installed)."""
        if self._header is None:
            return b""
        return self._header(client_addr, node_addr, self.identity.private_key, self.identity.cert,
                            recording_proxy=recording_proxy)


async def _resolve_ips(host: str) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        return []
    return list(dict.fromkeys(str(i[4][0]) for i in infos))


def _ips(texts: list[str]) -> list[dialpolicy.IPAddress]:
    out = []
    for t in texts:
        ip = dialpolicy.parse_ip(t.partition("%")[0])
        if ip is not None and ip not in out:
            out.append(ip)
    return out


def _is_local_ip(ip: dialpolicy.IPAddress) -> bool:
    """Does `ip` belong to this host? (Binding to an address succeeds only for local ones.)"""
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((str(ip), 0))
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class DialTarget:
    """What the proxy dials: the addresses (checked IPs, tried in order) and port; `shown` names
    it in messages and the proxy header; `node` is the registered node, None for an allow-listed
    OpenSSH host or the auth gateway."""

    shown: str
    addrs: list[str]
    port: int
    node: dict[str, Any] | None
    tunnel: str | None = None  # the host id whose reverse tunnel reaches the node (addrs unused)
    cluster: str = ""  # a trusted leaf cluster reached through its tunnel (with `request`)
    request: dict[str, Any] | None = None

    async def dial_tunnel(self, svc: ProxySSHService, client_addr: tuple[str, int]) -> socket.socket:
        """A socket to the node through its reverse tunnel (NotFound when it is offline)."""
        if self.cluster and self.request is not None and svc.tunnels is not None:
            from teleport.reversetunnel.clusters import open_channel

            req = {**self.request, "client": fmt_addr(str(client_addr[0]), int(client_addr[1]))}
            return await open_channel(svc.tunnels, self.cluster, req, client_addr)
        assert self.tunnel is not None
        if svc.tunnels is None:
            raise NotFound(f"node {self.shown} is reached through a reverse tunnel, and this proxy "
                           "has no tunnel listener")
        return await svc.tunnels.dial(self.tunnel, client_addr)
