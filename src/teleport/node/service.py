"""The node service: the SSH server on 3022, heartbeats with labels, and the cluster's CA keys."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import asyncssh

from teleport import defaults
from teleport.aio import cancel_and_wait
from teleport.auth.client import AuthClient
from teleport.config.model import FileConfig
from teleport.node.audit import AuditEmitter, spool_path
from teleport.node.labels import CommandLabels
from teleport.node.party import SessionServices
from teleport.node.recorder import RecordingUploader, upload_dir
from teleport.node.server import NodeServer
from teleport.service.cache import LocalCache
from teleport.service.cachedata import CacheData
from teleport.service.httplistener import ListenerLimits
from teleport.types.identity import HostIdentity

if TYPE_CHECKING:
    from teleport.reversetunnel.pool import AgentPool

log = logging.getLogger(__name__)

CA_REFRESH_INTERVAL = 300.0  # seconds between re-reading the user/host CA keys from auth
LABEL_CHANGE_DELAY = 1.0  # coalesce label changes into one heartbeat


def advertise_addr(cfg: FileConfig, port: int) -> str:
    """host:port other cluster members dial this node at: advertise_ip, else the listen host,
    else the nodename when it resolves, else loopback."""
    host = cfg.teleport.advertise_ip or cfg.ssh_service.listen_addr.host
    if host in ("", "0.0.0.0", "::"):
        try:
            socket.getaddrinfo(cfg.teleport.nodename, None)
            host = cfg.teleport.nodename
        except OSError:
            host = "127.0.0.1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ca_keys(authorities: list[dict[str, Any]], ca_type: str) -> list[str]:
    """The OpenSSH checking keys of the CA of this type ("user" or "host") in get_authorities()."""
    out: list[str] = []
    for ca in authorities:
        spec = ca.get("spec") or {}
        if spec.get("type", (ca.get("metadata") or {}).get("name")) == ca_type:
            out += [str(k).strip() for k in spec.get("checking_keys") or [] if str(k).startswith(("ssh-", "ecdsa-"))]
    return out


class NodeService:
    """The node role: SSH access to this host for certificates of the cluster's user CA."""

    def __init__(self, cfg: FileConfig, identity: HostIdentity, auth: AuthClient, data_dir: str,
                 cache: LocalCache | None = None) -> None:
        self.cfg = cfg
        self.identity = identity
        self.auth = auth
        self.data_dir = data_dir
        self.user_ca = list(identity.user_ca_keys)
        self.host_ca = list(identity.host_ca_keys)
        self.trusted_user_ca: list[str] = []  # user CAs of trusted (root) clusters
        self.labels = CommandLabels(cfg.ssh_service.commands, on_change=self._labels_changed)
        self.recording_mode = "node"  # from auth's /v1/ping (auth_service.session_recording)
        self.emitter = AuditEmitter(spool_path(data_dir), auth.emit_events)
        self.uploader = RecordingUploader(upload_dir(data_dir), auth.upload_recording, self.emitter)
        self.services = SessionServices(
            server_id=identity.host_id,
            server_hostname=cfg.teleport.nodename,
            emitter=self.emitter,
            uploader=self.uploader,
            upload_dir=self.uploader.dir,
            # in proxy mode the proxy records what it relays (and says so in its signed header:
            # those connections get NodeServer.proxy_recorded_services); whatever reaches the
            # node another way is recorded here, so that no session goes unrecorded
            recording_enabled=lambda: self.recording_mode != "off",
            upsert=auth.upsert_session,
            delete=auth.delete_session,
            check_access=self._check_access,
        )
        self.server = NodeServer(
            asyncssh.import_private_key(identity.private_key),
            asyncssh.import_certificate(identity.cert),
            identity.cluster_name,
            identity.host_id,
            lambda: self.user_ca + self.trusted_user_ca,
            lambda: self.host_ca,
            self._check_access,
            self.services,
            ListenerLimits.from_config(cfg.teleport),
        )
        self.server.remote_access = self._remote_access
        self.addr = ""
        self.agent: AgentPool | None = None  # set when the node is reached through tunnels
        # a node that joined through proxies: called with the proxies' heartbeats (the process
        # lets its auth client fail over among their web addresses)
        self.on_proxies: Callable[[list[dict[str, Any]]], None] = lambda proxies: None
        # the proxy's tunnel address: ssh_service.tunnel_addr, or what the proxy it joined
        # through announced (set by the process before start)
        self.tunnel_addr = cfg.ssh_service.tunnel_addr
        self._beat_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # the access decision, CAs and recording mode, fed by auth's watch and kept on disk
        self.cache = cache or LocalCache(auth, data_dir, "node", identity.cluster_name)
        self.cache.on_update(self._cache_updated)

    def _cache_updated(self, data: CacheData) -> None:
        self.apply_authorities(data.authorities)
        self.recording_mode = data.session_recording

    def node_labels(self) -> dict[str, str]:
        """Static labels plus the latest command label results (what RBAC matches against)."""
        return {**self.cfg.ssh_service.labels, **self.labels.values()}

    async def _remote_access(self, cert_line: str, login: str) -> dict[str, Any] | None:
        """A user of a trusted root cluster: auth checks its certificate and maps its roles
        (None for a certificate of this cluster's own user CA)."""
        from teleport.ca import sshcert
        from teleport.errors import AccessDenied, BadParameter

        try:
            sshcert.verify_cert_signature(cert_line, self.user_ca)
            return None
        except (AccessDenied, BadParameter):
            pass
        result = await self.auth.call("POST", "/v1/access/check", {
            "user": "", "login": login, "host_id": self.identity.host_id,
            "labels": self.node_labels(), "cert": cert_line,
        })
        return result if isinstance(result, dict) else None

    async def refresh_trusted(self) -> None:
        """Re-read the user CAs of trusted root clusters (keeps the last on failure)."""
        try:
            records = await self.auth.call("GET", "/v1/trustedcas")
        except Exception as exc:
            log.warning("cannot read the trusted clusters' CAs, keeping the current ones: %s", exc)
            return
        self.trusted_user_ca = [
            str(k) for r in (records if isinstance(records, list) else [])
            if r.get("type") == "user" and r.get("relation") == "root" and r.get("enabled")
            for k in r.get("checking_keys") or []
        ]

    async def _trusted_loop(self) -> None:
        import random

        while True:
            await self.refresh_trusted()
            await asyncio.sleep(defaults.TRUSTED_CA_REFRESH * (1 + random.random() / 5))

    async def _check_access(self, user: str, login: str) -> dict[str, Any]:
        """Decided here from the cached roles, with auth's own rbac code (no round trip to auth,
        and it keeps working while auth is down); fails closed when the cache was never filled."""
        data = await self.cache.get("node")
        return data.check_ssh_access(user, login, self.node_labels())

    def heartbeat_resource(self) -> dict[str, Any]:
        """The `node` resource this node posts to auth."""
        return {
            "kind": "node",
            "version": "v2",
            "metadata": {"name": self.identity.host_id, "labels": dict(self.cfg.ssh_service.labels)},
            "spec": {
                "addr": self.addr,
                "hostname": self.cfg.teleport.nodename,
                "cmd_labels": self.labels.spec(),
            },
        }

    async def start(self) -> None:
        """Listen on ssh_service.listen_addr, run label commands, send the first heartbeat."""
        listen = self.cfg.ssh_service.listen_addr
        started_from_cache = self.cache.load()
        self._tasks.append(asyncio.create_task(self.cache.run()))
        if not started_from_cache:
            await self.refresh_recording_mode()
        # Before the first new session: finish what a crash left (session.end, uploads).
        self.emitter.start()
        self.uploader.start()
        tunnel = self.tunnel_addr
        if tunnel is not None:
            # behind a firewall: no listener at all; the proxies reach us through the tunnels
            from teleport.reversetunnel.pool import AgentPool

            await self.server.prepare()
            self.addr = defaults.TUNNEL_NODE_ADDR
            self.agent = AgentPool(tunnel, lambda: self.identity, lambda: self.host_ca,
                                   self.server.handle_socket, self._discover_proxies)
        else:
            _, port = await self.server.listen(listen.host, listen.port)
            self.addr = advertise_addr(self.cfg, port)
        self.services.server_addr = self.addr
        await self.labels.start()
        if started_from_cache:
            self._beat_now.set()  # auth may be down: beat from the loop, do not hold up the start
        else:
            await self._heartbeat_once()
        self._tasks += [
            asyncio.create_task(self._heartbeat_loop()),
            asyncio.create_task(self._ca_loop()),
            asyncio.create_task(self._trusted_loop()),
        ]
        if self.agent is not None:
            self._tasks.append(asyncio.create_task(self.agent.run()))
            log.info("node SSH service reached through a reverse tunnel to %s (no listener)", tunnel)
        else:
            log.info("node SSH service listening on %s (advertised as %s)", listen, self.addr)

    async def _discover_proxies(self) -> list[dict[str, Any]]:
        proxies = await self.auth.list_proxies()
        self.on_proxies(proxies)
        return proxies

    def _labels_changed(self) -> None:
        self._beat_now.set()

    async def _heartbeat_once(self) -> None:
        try:
            await self.auth.heartbeat(self.heartbeat_resource())
        except Exception as exc:  # keep beating; the auth server may be restarting
            log.warning("node heartbeat failed: %s", exc)

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._beat_now.wait(), defaults.HEARTBEAT_INTERVAL)
                await asyncio.sleep(LABEL_CHANGE_DELAY)
            except TimeoutError:
                pass
            self._beat_now.clear()
            await self._heartbeat_once()

    async def refresh_authorities(self) -> None:
        """Re-read the user and host CA keys (rotation adds keys); keeps the old ones on failure."""
        try:
            cas = await self.auth.get_authorities()
        except Exception as exc:
            log.warning("cannot refresh the cluster's CA keys, keeping the current ones: %s", exc)
            return
        self.apply_authorities(cas)

    def apply_authorities(self, cas: list[dict[str, Any]]) -> None:
        """Trust every checking key of the user and host CAs (old and new during a rotation)."""
        user, host = ca_keys(cas, "user"), ca_keys(cas, "host")
        if user:
            self.user_ca = user
        if host:
            self.host_ca = host

    async def reload_identity(self, identity: HostIdentity) -> None:
        """CA rotation re-issued this node's identity: present the new host certificate to new
        connections (live sessions keep theirs)."""
        self.identity = identity
        self.server.reload_host_key(
            asyncssh.import_private_key(identity.private_key), asyncssh.import_certificate(identity.cert)
        )

    async def refresh_recording_mode(self) -> None:
        """Read auth_service.session_recording (node|proxy|off) from auth; keep the last on failure."""
        try:
            mode = (await self.auth.ping()).get("session_recording")
        except Exception as exc:
            log.warning("cannot read the session recording mode, keeping %r: %s", self.recording_mode, exc)
            return
        if isinstance(mode, str) and mode:
            self.recording_mode = mode

    async def _ca_loop(self) -> None:
        while True:
            await asyncio.sleep(CA_REFRESH_INTERVAL)
            await self.refresh_authorities()
            await self.refresh_recording_mode()

    async def close(self) -> None:
        """Stop listening, heartbeats and label commands."""
        await cancel_and_wait(self._tasks)
        if self.agent is not None:
            await self.agent.close()
        await self.labels.close()
        await self.server.close()
        await self.uploader.close()
        await self.emitter.close()

    async def serve_until_cancelled(self) -> None:
        """Run until the task is cancelled (the supervisor's shutdown), then close."""
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()
