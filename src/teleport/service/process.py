"""`teleport start`: one process running any mix of the auth, proxy and node services on one loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from teleport import defaults
from teleport.aio import cancel_and_wait
from teleport.auth.client import AuthClient, client_ssl_context
from teleport.ca import tlsca
from teleport.config.addr import HostPort, parse_host_port
from teleport.config.model import FileConfig, TrustedClusterConfig
from teleport.config.start import effective_auth_servers
from teleport.errors import BadParameter
from teleport.files import ensure_private_dir, write_public, write_secret
from teleport.reversetunnel import discovery, viaproxy
from teleport.service import authservers, memory
from teleport.service import identity as idstore
from teleport.service.adminid import admin_identity_paths
from teleport.service.cache import LocalCache
from teleport.service.httplistener import HTTPListener, ListenerLimits, UserOf, user_identity_of
from teleport.types.identity import HostIdentity
from teleport.types.names import api_path

if TYPE_CHECKING:
    from teleport.auth.audit import AuditService
    from teleport.auth.server import AuthServer
    from teleport.backend.base import Backend
    from teleport.proxy.sshproxy import ProxySSHService
    from teleport.reversetunnel.server import TunnelServer
    from teleport.trustedcluster.resource import ExportedCAs

log = logging.getLogger("teleport")


def dial_addr(listen: HostPort) -> str:
    """An address to dial a local listener at (wildcard hosts become loopback)."""
    host = listen.host
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return str(HostPort(host, listen.port))


def public_host(cfg: FileConfig) -> str:
    """The host name users reach this machine at: advertise_ip, else the nodename when it
    resolves, else loopback."""
    if cfg.teleport.advertise_ip:
        return cfg.teleport.advertise_ip
    try:
        socket.getaddrinfo(cfg.teleport.nodename, None)
        return cfg.teleport.nodename
    except OSError:
        return "127.0.0.1"


@dataclass
class TeleportProcess:
    cfg: FileConfig
    backend: Backend | None = None
    auth: AuthServer | None = None
    audit: AuditService | None = None
    listeners: list[HTTPListener] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    clients: list[AuthClient] = field(default_factory=list)
    host_id: str = ""
    banner: list[str] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # a node whose auth_servers are proxies' web addresses: it reaches auth only through them
    via_proxies: list[viaproxy.ProxyInfo] = field(default_factory=list)
    relay: viaproxy.RelayDialer | None = None
    tunnel_server: TunnelServer | None = None
    _proxy_beat_now: asyncio.Event = field(default_factory=asyncio.Event)
    # graceful shutdown: what stops accepting, and what counts the live connections to wait for
    stoppers: list[Callable[[], None]] = field(default_factory=list)
    counters: list[Callable[[], int]] = field(default_factory=list)

    @property
    def data_dir(self) -> str:
        return self.cfg.teleport.data_dir

    async def start(self) -> None:
        memory.tune_malloc()
        self.tasks.append(asyncio.create_task(self._trim_memory()))
        ensure_private_dir(self.data_dir)
        self.host_id = idstore.host_uuid(self.data_dir)
        await self._find_proxies()
        if self.cfg.auth_service.enabled:
            await self._start_auth()
        if self.cfg.proxy_service.enabled:
            await self._start_proxy()
        if self.cfg.ssh_service.enabled:
            await self._start_node()

    async def _trim_memory(self) -> None:
        """Hand memory freed after a connection flood back to the system, now and then."""
        while True:
            await asyncio.sleep(defaults.MEMORY_TRIM_INTERVAL)
            memory.reclaim()

    # auth -----------------------------------------------------------------------------
    async def _start_auth(self) -> None:
        # imported here: a node- or proxy-only process never loads the auth server's code
        from teleport.auth.api import AuthAPI, server_ssl_context
        from teleport.auth.audit import AuditService
        from teleport.auth.relyingparty import WebAuthnSettings
        from teleport.auth.server import AuthServer, StaticToken
        from teleport.auth.statecheck import check_cluster_state, storage_location
        from teleport.auth.store import ClusterStore
        from teleport.backend import open_backend
        from teleport.storage import open_audit_storage

        a = self.cfg.auth_service
        self.backend = await open_backend(self.cfg.teleport.storage, self.data_dir)
        store = ClusterStore(self.backend)
        # Never turn a lost or damaged database into a new cluster under the same name.
        await check_cluster_state(
            store, self.data_dir, storage_location(self.cfg.teleport.storage, self.data_dir)
        )
        self.auth = await AuthServer.init(
            store,
            a.cluster_name,
            [StaticToken(t.roles, t.token) for t in a.tokens],
            a.second_factor,
        )
        auth = self.auth
        auth.session_recording = a.session_recording
        auth.webauthn_settings = WebAuthnSettings(a.webauthn_rp_id, list(a.webauthn_origins))
        auth.auth_type, auth.connector_name = a.auth_type, a.connector_name
        await auth.load_static_trust(read_static_trust(a.trusted_clusters))
        ident = tlsca.Identity(
            username=f"{self.host_id}.{auth.cluster_name}",
            system_role="Auth",
            cluster_name=auth.cluster_name,
            host_id=self.host_id,
        )
        key_pem, cert_pem = auth.new_tls_identity(ident, dns_names=[defaults.AUTH_SERVER_NAME])
        keys = idstore.keys_dir(self.data_dir)
        ctx = server_ssl_context(cert_pem, key_pem, auth.tls_ca_cert, keys)
        # Events and recordings: data_dir/log by default, DynamoDB and S3 when configured.
        audit_log, recordings = await open_audit_storage(
            a.audit_events_uri, a.audit_sessions_uri, self.cfg.teleport.storage, self.data_dir,
            a.max_recording_size,
        )
        self.audit = AuditService(self.data_dir, self.backend, a.max_recording_size,
                                  log=audit_log, recordings=recordings)
        api = AuthAPI(auth, self.audit)
        auth.on_event = api.emit  # login locks are announced in the audit log
        self.closers.append(self._close_hasher)
        self.stoppers.append(api.stop_long_polls)
        await self._serve(api.app(), a.listen_addr, ctx, "the auth service", user_identity_of)
        self.tasks.append(asyncio.create_task(auth.run_rotations()))  # auto CA rotation phases
        self._write_admin_identity(auth, a.listen_addr)
        # Register in the shared backend so that nodes and proxies learn of this auth server.
        self.tasks.append(asyncio.create_task(authservers.heartbeat_loop(
            store, self.host_id, self.cfg.teleport.nodename, self.auth_advertise_addr())))
        self.banner.append(
            f"[AUTH]  auth service is listening on {a.listen_addr} (cluster {auth.cluster_name!r})"
        )

    async def _close_hasher(self) -> None:
        if self.auth is not None:
            self.auth.hasher.close()

    def _write_admin_identity(self, auth: AuthServer, listen: HostPort) -> None:
        paths = admin_identity_paths(self.data_dir)
        ident = tlsca.Identity(username="admin", system_role="Admin", cluster_name=auth.cluster_name)
        key_pem, cert_pem = auth.new_tls_identity(ident)
        write_secret(paths["key"], key_pem)
        write_secret(paths["cert"], cert_pem)
        write_secret(paths["ca"], auth.tls_ca_cert)
        write_public(paths["auth_addr"], dial_addr(listen) + "\n", 0o600)

    def auth_advertise_addr(self) -> str:
        """Where other hosts dial this auth server: advertise_ip (or the listen host) and port."""
        listen = self.cfg.auth_service.listen_addr
        if self.cfg.teleport.advertise_ip:
            return str(HostPort(self.cfg.teleport.advertise_ip, listen.port))
        return dial_addr(listen)

    async def _find_proxies(self) -> None:
        """A lone node whose auth_servers name proxies joins and talks to auth through them."""
        c = self.cfg
        if c.auth_service.enabled or c.proxy_service.enabled or not c.ssh_service.enabled:
            return
        configured = [str(a) for a in effective_auth_servers(c)]
        self.via_proxies = await viaproxy.find_proxies(configured, self.data_dir)
        if self.via_proxies:
            self.relay = viaproxy.RelayDialer()
            self.closers.append(self.relay.close)
            log.info("reaching the auth service through the proxy at %s",
                     ", ".join(p.web_addr for p in self.via_proxies))

    def _connector(self) -> idstore.Connector | None:
        """How auth connections are made: through the proxies' relay when joined through them."""
        relay = self.relay
        if relay is None:
            return None
        return lambda ctx: viaproxy.relay_connector(relay.dial, ctx)

    def _auth_addrs(self) -> list[str]:
        """authservers.json (what the cluster said last) first, then the configuration."""
        if self.via_proxies:
            return [p.web_addr for p in self.via_proxies]
        configured = [str(a) for a in effective_auth_servers(self.cfg)]
        if self.cfg.auth_service.enabled:
            return configured  # our own auth service, in this process
        return authservers.startup_addrs(self.data_dir, configured)

    # identities for proxy and node ------------------------------------------------------
    def _addresses(self) -> list[str]:
        addrs = []
        if self.cfg.teleport.advertise_ip:
            addrs.append(self.cfg.teleport.advertise_ip)
        return addrs

    async def _identity(self, role: str) -> HostIdentity:
        existing = idstore.load_identity(self.data_dir, role)
        if existing is not None:
            return existing
        if self.auth is not None:
            ident = await self.auth.issue_host_identity(
                role, self.host_id, self.cfg.teleport.nodename, self._addresses()
            )
        else:
            ident = await idstore.join_cluster(
                self._auth_addrs(),
                self.cfg.teleport.auth_token or "",
                role,
                self.host_id,
                self.cfg.teleport.nodename,
                self._addresses(),
                self.cfg.teleport.ca_pin,
                proof=idstore.other_identity_files(self.data_dir, role),
                **({"connector": conn} if (conn := self._connector()) is not None else {}),
            )
            log.info("joined cluster %s as %s %s", ident.cluster_name, role, self.host_id)
        idstore.save_identity(self.data_dir, ident)
        return ident

    def _auth_client(self, ident: HostIdentity) -> AuthClient:
        cert, key = idstore.identity_tls_files(self.data_dir, ident)
        client = AuthClient(self._auth_addrs(), client_ssl_context(ident.tls_ca, cert, key),
                            connector=self._connector())
        self.clients.append(client)
        if not self.cfg.auth_service.enabled and not self.via_proxies:
            # learn the cluster's auth servers and keep them in authservers.json
            configured = [str(a) for a in effective_auth_servers(self.cfg)]
            self.tasks.append(asyncio.create_task(
                authservers.refresh_loop(client, self.data_dir, configured)))
        return client

    # proxy ----------------------------------------------------------------------------
    def _proxy_tls(self) -> tuple[str, str]:
        p = self.cfg.proxy_service
        if p.https_cert_file and p.https_key_file:
            return p.https_cert_file, p.https_key_file
        d = ensure_private_dir(os.path.join(self.data_dir, "proxy"))
        cert, key = os.path.join(d, "webproxy_cert.pem"), os.path.join(d, "webproxy_key.pem")
        if not (os.path.exists(cert) and os.path.exists(key)):
            names = sorted({self.cfg.teleport.nodename, "localhost"})
            ips = ["127.0.0.1", "::1"] + self._addresses()
            key_pem, cert_pem = tlsca.self_signed_https_cert(names, ips)
            write_secret(key, key_pem)
            write_public(cert, cert_pem)
            log.warning(
                "the web proxy uses a self-signed certificate (%s); set "
                "proxy_service.https_cert_file/https_key_file for production", cert
            )
        return cert, key

    def web_public_addr(self) -> str:
        p = self.cfg.proxy_service
        if p.public_addr is not None:
            return str(p.public_addr)
        host = p.web_listen_addr.host
        if host in ("", "0.0.0.0", "::"):
            host = public_host(self.cfg)
        return str(HostPort(host, p.web_listen_addr.port))

    def ssh_public_addr(self) -> str:
        p = self.cfg.proxy_service
        host = p.public_addr.host if p.public_addr is not None else p.listen_addr.host
        if host in ("", "0.0.0.0", "::"):
            host = public_host(self.cfg)
        return str(HostPort(host, p.listen_addr.port))

    def tunnel_public_addr(self) -> str:
        """Where agents reach this proxy's reverse tunnel listener."""
        p = self.cfg.proxy_service
        if p.tunnel_public_addr is not None:
            return str(p.tunnel_public_addr)
        host = p.public_addr.host if p.public_addr is not None else p.tunnel_listen_addr.host
        if host in ("", "0.0.0.0", "::"):
            host = public_host(self.cfg)
        return str(HostPort(host, p.tunnel_listen_addr.port))

    async def _start_proxy(self) -> None:
        from teleport.proxy.web import WebProxy

        ident = await self._identity("proxy")
        client = self._auth_client(ident)
        p = self.cfg.proxy_service
        web_proxy = WebProxy(client, ident.cluster_name, self.ssh_public_addr(), self.web_public_addr())
        web_proxy.tunnel_public_addr = self.tunnel_public_addr()
        cert, key = self._proxy_tls()
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        shared = p.tunnel_listen_addr == p.web_listen_addr  # one port, told apart by first bytes
        web_listener = await self._serve(web_proxy.app(), p.web_listen_addr, ctx, "the web proxy",
                                         listen=not shared)
        beat = asyncio.create_task(self._proxy_heartbeat(client, ident))
        self.tasks.append(beat)
        self.closers.append(lambda: self._proxy_goodbye(client, ident, beat))
        from teleport.proxy.sshproxy import ProxySSHService

        ssh_proxy = ProxySSHService(self.cfg, ident, client, self.data_dir)
        # routing, access and CAs keep working from here while every auth server is down
        cache = LocalCache(client, self.data_dir, "proxy", ident.cluster_name)
        cache.load()
        ssh_proxy.use_cache(cache)
        self.tasks.append(asyncio.create_task(cache.run()))
        await ssh_proxy.start()
        web_proxy.set_ssh_proxy(ssh_proxy)  # the browser terminal routes as the SSH proxy does
        self.closers.append(ssh_proxy.close)
        self.stoppers.append(ssh_proxy.stop_accepting)
        self.counters.append(ssh_proxy.live_connections)
        tunnels = await self._start_tunnel_server(ssh_proxy, ident, listen=not shared)
        if shared:
            from teleport.reversetunnel.mux import PortMux

            mux = PortMux(p.web_listen_addr, web_listener.serve_accepted, tunnels.serve_socket,
                          ListenerLimits.from_config(self.cfg.teleport).handshake_timeout)
            await mux.start()
            self.closers.append(mux.close)
            self.stoppers.append(mux.stop_accepting)
        self.banner.append(f"[PROXY] reverse tunnel listener is listening on {p.tunnel_listen_addr}"
                           + (" (shared with the web proxy)" if shared else ""))
        self._watch_rotation(ident, client, ssh_proxy.apply_authorities, ssh_proxy.reload_identity)
        self.banner.append(f"[PROXY] SSH proxy is listening on {p.listen_addr}")
        self.banner.append(f"[PROXY] web proxy is listening on {p.web_listen_addr} (https://{self.web_public_addr()})")

    async def _start_tunnel_server(self, ssh_proxy: ProxySSHService, ident: HostIdentity,
                                   listen: bool = True) -> TunnelServer:
        """The reverse tunnel listener (3024); the SSH proxy routes tunnelled nodes through it."""
        from teleport.reversetunnel.server import TunnelServer

        async def host_ca_lines() -> list[str]:
            return [k.export_public_key("openssh").decode().strip() for k in await ssh_proxy.host_ca_keys()]

        tunnels = TunnelServer(self.cfg.proxy_service.tunnel_listen_addr, ident, host_ca_lines,
                               ListenerLimits.from_config(self.cfg.teleport))
        tunnels.on_change = self._proxy_beat_now.set
        self.tunnel_server = tunnels
        await tunnels.start(listen)
        self.closers.append(tunnels.close)
        self.stoppers.append(tunnels.stop_accepting)
        ssh_proxy.tunnels = tunnels
        # trusted clusters: accept the tunnels of our leaves; keep tunnels to our roots
        from teleport.trustedcluster.agents import LeafTunnels

        tunnels.trusted_host_cas = ssh_proxy.trust.host_cas
        ssh_proxy.trust.tunnels = tunnels
        self.tasks.append(asyncio.create_task(LeafTunnels(ssh_proxy, ident, ssh_proxy.auth).run()))
        return tunnels

    async def _proxy_goodbye(self, client: AuthClient, ident: HostIdentity, beat: asyncio.Task[None]) -> None:
        """A proxy that stops removes its heartbeat, so agents close their tunnels to it now
        rather than after the heartbeat's TTL."""
        beats: list[asyncio.Task[None]] = [beat]
        await cancel_and_wait(beats)
        try:
            await asyncio.wait_for(
                client.call("DELETE", api_path("/v1/proxies/{host_id}", host_id=ident.host_id)),
                defaults.PROXY_GOODBYE_TIMEOUT)
        except Exception as exc:  # auth may be down too: the heartbeat then expires by itself
            log.info("could not remove this proxy's heartbeat: %s", exc)

    async def _proxy_heartbeat(self, client: AuthClient, ident: HostIdentity) -> None:
        while True:
            self._proxy_beat_now.clear()
            # the reverse tunnels held here: auth shows a tunnelled node online only while some
            # proxy holds its tunnel
            tunnels = sorted(self.tunnel_server.connected()) if self.tunnel_server is not None else []
            try:
                await client.call(
                    "POST",
                    "/v1/proxies",
                    {
                        "kind": "proxy",
                        "version": "v2",
                        "metadata": {"name": ident.host_id},
                        "spec": {
                            "hostname": self.cfg.teleport.nodename,
                            "public_addr": self.web_public_addr(),
                            "ssh_public_addr": self.ssh_public_addr(),
                            "tunnel_public_addr": self.tunnel_public_addr(),
                            "tunnels": tunnels,
                        },
                    },
                )
            except Exception as exc:  # keep beating; the auth server may be restarting
                log.warning("proxy heartbeat failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._proxy_beat_now.wait(), defaults.HEARTBEAT_INTERVAL)
                await asyncio.sleep(defaults.TUNNEL_ANNOUNCE_DELAY)  # coalesce a burst of changes

    # node -----------------------------------------------------------------------------
    async def _start_node(self) -> None:
        ident = await self._identity("node")
        from teleport.node.service import NodeService

        node_svc = NodeService(self.cfg, ident, self._auth_client(ident), self.data_dir)
        if self.via_proxies:
            joined = [p.web_addr for p in self.via_proxies]
            client = node_svc.auth

            def fail_over(proxies: list[dict[str, Any]]) -> None:
                # auth through any proxy of the cluster, the ones joined through first
                client.set_addrs(authservers.merge(joined, discovery.announced_web_addrs(proxies)))

            node_svc.on_proxies = fail_over
        if node_svc.cfg.ssh_service.tunnel_addr is None and self.via_proxies:
            # joined through a proxy: no way in but the tunnel the proxy announced
            node_svc.tunnel_addr = parse_host_port(self.via_proxies[0].tunnel_addr, defaults.PROXY_TUNNEL_PORT)
        await node_svc.start()
        self.stoppers.append(node_svc.server.stop_accepting)
        self.counters.append(node_svc.server.live_connections)
        self._watch_rotation(ident, node_svc.auth, node_svc.apply_authorities, node_svc.reload_identity)
        self.tasks.append(asyncio.create_task(node_svc.serve_until_cancelled()))
        self.banner.append(
            f"[NODE]  node {self.cfg.teleport.nodename} ({ident.host_id}) joined cluster "
            f"{ident.cluster_name!r}"
        )

    def _watch_rotation(self, ident: HostIdentity, client: AuthClient,
                        on_cas: Callable[..., None], on_identity: Callable[..., Awaitable[None]]) -> None:
        """Follow CA rotations for one service: trust new keys, re-issue its identity when asked."""
        from teleport.service.reissue import RotationWatcher

        watcher = RotationWatcher(self.data_dir, ident, client, self._addresses(), on_cas, on_identity)
        self.tasks.append(asyncio.create_task(watcher.run()))

    # plumbing -------------------------------------------------------------------------
    async def _serve(self, app: web.Application, addr: HostPort, ctx: ssl.SSLContext,
                     what: str, user_of: UserOf | None = None, listen: bool = True) -> HTTPListener:
        """Serve an aiohttp app behind the connection-limit gate (limits, timeouts, 429s);
        with listen=False its connections come from a shared port (serve_accepted)."""
        listener = HTTPListener(app, ListenerLimits.from_config(self.cfg.teleport),
                                f"{what} ({addr})", user_of)
        if listen:
            await listener.start(addr, ctx)
        else:
            await listener.start_unbound(ctx)
        self.listeners.append(listener)
        self.stoppers.append(listener.stop_accepting)
        return listener

    def stop_accepting(self) -> None:
        """Close every listener (not the connections): new clients go to a successor or nowhere."""
        for stop in self.stoppers:
            try:
                stop()
            except Exception as exc:  # stop the others all the same
                log.warning("error while closing a listener: %s", exc)

    def live_connections(self) -> int:
        """SSH connections still open to the node and proxy services (sessions to let finish)."""
        return sum(count() for count in self.counters)

    async def drain(self, timeout: float) -> bool:
        """Wait for the live connections to end, at most `timeout` seconds; True when they did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (live := self.live_connections()) > 0:
            if loop.time() >= deadline:
                log.warning("shutdown timeout (%.0f s): closing %d live connection(s)", timeout, live)
                return False
            await asyncio.sleep(defaults.DRAIN_POLL_INTERVAL)
        return True

    async def close(self) -> None:
        self.stop_accepting()  # first: no new work, and the auth API's long polls answer now
        for closer in reversed(self.closers):
            try:
                await closer()
            except Exception as exc:  # keep closing the rest
                log.warning("error while stopping a service: %s", exc)
        await cancel_and_wait(self.tasks)
        for listener in reversed(self.listeners):
            await listener.close()
        for c in self.clients:
            await c.close()
        if self.audit is not None:
            self.audit.close()
        if self.backend is not None:
            await self.backend.close()


def read_static_trust(entries: list[TrustedClusterConfig]) -> list[tuple[ExportedCAs, list[str], str]]:
    """auth_service.trusted_clusters with their key files read; BadParameter names the file."""
    from teleport.trustedcluster.resource import parse_key_file

    out = []
    for e in entries:
        try:
            with open(e.key_file) as f:
                text = f.read()
        except OSError as exc:
            raise BadParameter(
                f"auth_service.trusted_clusters: cannot read key_file {e.key_file}: {exc.strerror or exc} "
                "(it holds the other cluster's 'tctl auth export' output)"
            ) from None
        out.append((parse_key_file(text, e.key_file), e.allow_logins, str(e.tunnel_addr or "")))
    return out
