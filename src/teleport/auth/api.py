"""The auth API: HTTPS with mutual TLS on port 3025. Every endpoint authorizes its caller.

The caller's identity is read from its client certificate (issued by the cluster's TLS CA).
Three endpoints are public: ping, the TLS CA certificate (for pin checks) and register (which
requires a join token instead).
"""

from __future__ import annotations

import logging
import os
import ssl
import uuid
from typing import Any

from aiohttp import web

from teleport import __version__, defaults
from teleport.auth.api_audit import add_audit_routes
from teleport.auth.api_cache import CacheRoutes
from teleport.auth.audit import AuditService
from teleport.auth.authz import authorize, identity_phrase
from teleport.auth.server import AuthServer, host_identity_to_dict
from teleport.ca import tlsca
from teleport.errors import AccessDenied, BadParameter, NotFound
from teleport.events.schema import make_event
from teleport.files import write_secret
from teleport.httpapi import error_middleware, json_body, list_field, path_param
from teleport.types.names import check_host_id
from teleport.types.resources import ProxyServer, Server

log = logging.getLogger(__name__)

IDENTITY = web.AppKey("identity", object)


def caller_identity(request: web.Request) -> tlsca.Identity | None:
    """The identity in the verified client certificate, or None when none was presented."""
    ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
    if ssl_obj is None:
        return None
    der = ssl_obj.getpeercert(binary_form=True)
    if not der:
        return None
    return tlsca.identity_from_cert(der)


def peer_addr(request: web.Request) -> str:
    """The TCP peer of a request as "ip:port" ("" when unknown)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"[{peer[0]}]:{peer[1]}" if ":" in str(peer[0]) else f"{peer[0]}:{peer[1]}"
    return ""


def _str(data: dict[str, Any], key: str, required: bool = True) -> str:
    value = data.get(key, "")
    if not isinstance(value, str) or (required and not value):
        raise BadParameter(f"missing or invalid field {key!r}")
    return value


class AuthAPI:
    """aiohttp routes over an AuthServer."""

    def __init__(self, server: AuthServer, audit: AuditService | None = None) -> None:
        self.server = server
        self.audit = audit
        self.cache_routes: CacheRoutes | None = None  # set by app()

    async def _authorize(self, request: web.Request, resource: str, verb: str) -> tlsca.Identity:
        identity = caller_identity(request)
        roleset = None
        if identity is not None and identity.system_role == "User":
            try:
                user = await self.server.store.get_user(identity.username)
            except NotFound:
                raise AccessDenied(f"user {identity.username!r} no longer exists") from None
            roleset = await self.server.roleset_for(user)
        authorize(identity, resource, verb, roleset)
        assert identity is not None
        return identity

    def app(self) -> web.Application:
        app = web.Application(middlewares=[error_middleware], client_max_size=4 * 1024 * 1024)
        r = app.router
        r.add_get("/v1/ping", self.ping)
        r.add_get("/v1/tlsca", self.tls_ca)
        r.add_post("/v1/register", self.register)
        r.add_get("/v1/authorities", self.get_authorities)
        r.add_get("/v1/authorities/{ca_type}", self.get_authority)
        r.add_post("/v1/authorities/rotate", self.rotate_authority)
        r.add_post("/v1/invites", self.create_invite)
        r.add_get("/v1/invites/{token}", self.get_invite)
        r.add_post("/v1/invites/{token}/complete", self.complete_invite)
        r.add_get("/v1/users", self.list_users)
        r.add_get("/v1/users/{user}", self.get_user)
        r.add_delete("/v1/users/{user}", self.delete_user)
        r.add_post("/v1/users/{user}/password", self.set_password)
        r.add_post("/v1/users/{user}/ssh/authenticate", self.authenticate_ssh)
        r.add_post("/v1/users/{user}/certs", self.sign_user)
        r.add_post("/v1/hosts/certs", self.sign_host)
        r.add_post("/v1/hosts/forward-certs", self.sign_forward_cert)
        r.add_post("/v1/hosts/reissue", self.reissue_host)
        r.add_post("/v1/tokens", self.create_token)
        r.add_get("/v1/tokens", self.list_tokens)
        r.add_delete("/v1/tokens/{token}", self.delete_token)
        r.add_get("/v1/nodes", self.list_nodes)
        r.add_post("/v1/nodes", self.heartbeat)
        r.add_get("/v1/proxies", self.list_proxies)
        r.add_post("/v1/access/check", self.check_access)
        r.add_post("/v1/proxies", self.proxy_heartbeat)
        r.add_delete("/v1/proxies/{host_id}", self.delete_proxy)
        r.add_get("/v1/authservers", self.list_auth_servers)
        if self.audit is not None:
            add_audit_routes(r, self, self.audit)
            from teleport.auth.api_webaudit import add_webaudit_routes

            add_webaudit_routes(r, self, self.audit)
        from teleport.auth.api_resources import add_resource_routes

        add_resource_routes(r, self)
        from teleport.auth.api_trust import add_trust_routes

        add_trust_routes(r, self)
        from teleport.auth.api_websession import add_websession_routes

        add_websession_routes(r, self)
        from teleport.auth.api_cache import add_cache_routes

        self.cache_routes = add_cache_routes(r, self)
        from teleport.auth.api_mfa import add_mfa_routes

        add_mfa_routes(r, self)
        from teleport.auth.api_sso import add_sso_routes

        add_sso_routes(r, self)
        return app

    def stop_long_polls(self) -> None:
        """Shutdown: answer the waiting cache long polls now rather than hold the close up."""
        if self.cache_routes is not None:
            self.cache_routes.stop_waiting()

    def emit(self, event_type: str, **fields: Any) -> None:
        """Write an audit event of the auth service itself (logins)."""
        if self.audit is not None:
            self.audit.emit(make_event(event_type, **fields))

    # public ----------------------------------------------------------------------------
    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "cluster_name": self.server.cluster_name,
                "server_version": __version__,
                "second_factor": self.server.second_factor,
                "session_recording": self.server.session_recording,
            }
        )

    async def tls_ca(self, request: web.Request) -> web.Response:
        return web.Response(body=self.server.tls_ca_cert, content_type="application/x-pem-file")

    async def register(self, request: web.Request) -> web.Response:
        data = await json_body(request)
        addresses = data.get("addresses") or []
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise BadParameter("addresses must be a list of strings")
        ident = await self.server.register_host(
            _str(data, "token"),
            _str(data, "role"),
            _str(data, "host_id"),
            _str(data, "nodename"),
            [str(a) for a in addresses],
            caller=caller_identity(request),
        )
        return web.json_response(host_identity_to_dict(ident))

    # certificate authorities --------------------------------------------------------------
    async def get_authorities(self, request: web.Request) -> web.Response:
        await self._authorize(request, "cert_authority", "read")
        cas = await self.server.get_cert_authorities()
        return web.json_response([ca.to_dict() for ca in cas])

    async def get_authority(self, request: web.Request) -> web.Response:
        await self._authorize(request, "cert_authority", "read")
        if request.query.get("with_secrets"):
            raise AccessDenied("CA private keys never leave the auth service")
        ca = await self.server.store.get_ca(path_param(request, "ca_type"))
        return web.json_response(ca.without_secrets().to_dict())

    async def rotate_authority(self, request: web.Request) -> web.Response:
        """`tctl auth rotate`: start a rotation or move a manual one a phase on."""
        await self._authorize(request, "cert_authority", "rotate")
        data = await json_body(request)
        grace = data.get("grace_period")
        if grace is not None and (isinstance(grace, bool) or not isinstance(grace, int | float)):
            raise BadParameter("grace_period must be a number of seconds")
        result = await self.server.rotate_ca(
            _str(data, "type"), _str(data, "mode"), _str(data, "phase", False), grace
        )
        return web.json_response(result)

    # users and invites -------------------------------------------------------------------
    async def create_invite(self, request: web.Request) -> web.Response:
        await self._authorize(request, "user", "create")
        data = await json_body(request)
        invite = await self.server.create_invite(
            _str(data, "user"),
            list_field(data, "logins"),
            list_field(data, "roles"),
            data.get("ttl"),
            await self._proxy_addr(data),
        )
        return web.json_response(invite)

    async def _proxy_addr(self, data: dict[str, Any]) -> str:
        """The web address in invite URLs: as given, else a registered proxy's public address."""
        given = data.get("proxy_addr")
        if isinstance(given, str) and given:
            return given
        proxies = await self.server.store.list_nodes(kind="proxies")
        for p in proxies:
            addr = p.spec.get("public_addr")
            if addr:
                return str(addr)
        raise BadParameter(
            "no proxy has registered with this cluster yet: start a proxy service "
            "(teleport start --roles=proxy) so that the invite URL can point at it"
        )

    async def get_invite(self, request: web.Request) -> web.Response:
        await self._authorize(request, "invite", "read")
        return web.json_response(await self.server.get_invite(path_param(request, "token")))

    async def complete_invite(self, request: web.Request) -> web.Response:
        await self._authorize(request, "invite", "use")
        data = await json_body(request)
        user = await self.server.complete_invite(
            path_param(request, "token"), _str(data, "password"), _str(data, "otp_code", False),
            data.get("webauthn"),
        )
        out: dict[str, Any] = {"user": user.name}
        if data.get("web_session") is True:
            # the browser's signup ends logged in to the web UI
            from teleport.auth.api_mfa import start_web_session

            out["web_session"] = await start_web_session(self, user.name, peer_addr(request))
        if data.get("public_key"):
            # Signup ends logged in (as the reference's): the code was just used, so a separate
            # login would have to wait for the authenticator's next one.
            result = await self.server.generate_user_certs(user, _str(data, "public_key"), data.get("ttl"))
            self.emit("user.login", user=user.name, method="local", success=True,
                      addr_remote=peer_addr(request) or None)
            out["login"] = await self._login_body(result)
        return web.json_response(out)

    async def list_users(self, request: web.Request) -> web.Response:
        await self._authorize(request, "user", "list")
        return web.json_response([u.to_dict() for u in await self.server.list_users()])

    async def get_user(self, request: web.Request) -> web.Response:
        await self._authorize(request, "user", "read")
        user = await self.server.store.get_user(path_param(request, "user"))
        return web.json_response(user.to_dict())

    async def delete_user(self, request: web.Request) -> web.Response:
        await self._authorize(request, "user", "delete")
        name = path_param(request, "user")
        removed = await self.server.delete_user(name)
        return web.json_response({"deleted": name, "removed": removed})

    async def set_password(self, request: web.Request) -> web.Response:
        await self._authorize(request, "user", "update")
        data = await json_body(request)
        await self.server.set_password(path_param(request, "user"), _str(data, "password"))
        return web.json_response({"ok": True})

    async def authenticate_ssh(self, request: web.Request) -> web.Response:
        identity = await self._authorize(request, "user", "authenticate")
        data = await json_body(request)
        name = path_param(request, "user")
        # Only a proxy speaks for the client behind it; anyone else is the client itself.
        remote = str(data.get("remote_addr") or "") if identity.system_role == "Proxy" else ""
        remote = remote or peer_addr(request)
        try:
            result = await self.server.authenticate_ssh(
                name,
                _str(data, "password", False),
                _str(data, "otp_code", False),
                _str(data, "public_key"),
                data.get("ttl"),
                remote_addr=remote,
            )
        except AccessDenied as err:
            self.emit("user.login", user=name, method="local", success=False, error=err.message,
                      addr_remote=remote or None)
            raise
        self.emit("user.login", user=name, method="local", success=True, addr_remote=remote or None)
        return web.json_response(await self._login_body(result))

    async def _login_body(self, result: Any) -> dict[str, Any]:
        """What a login returns: the certificates and what the client needs to trust the cluster."""
        return {
            "cert": result.cert,
            "tls_cert": result.tls_cert.decode(),
            "username": result.username,
            "roles": result.roles,
            "logins": result.logins,
            "expires": result.expires,
            "cluster_name": self.server.cluster_name,
            "host_ca_keys": await self.server.checking_keys("host"),
            "tls_ca": self.server.tls_ca_cert.decode(),
        }

    async def sign_user(self, request: web.Request) -> web.Response:
        await self._authorize(request, "user_cert", "create")
        data = await json_body(request)
        key, cert = await self.server.sign_for_automation(path_param(request, "user"), data.get("ttl"))
        return web.json_response({"private_key": key.decode(), "cert": cert})

    async def sign_host(self, request: web.Request) -> web.Response:
        await self._authorize(request, "host_cert", "create")
        data = await json_body(request)
        host_id = data.get("host_id") or str(uuid.uuid4())
        ident = await self.server.issue_host_identity(
            data.get("role") or "node", host_id, _str(data, "nodename"), list_field(data, "addresses")
        )
        return web.json_response(host_identity_to_dict(ident))

    async def sign_forward_cert(self, request: web.Request) -> web.Response:
        """Recording proxy mode: a short-lived host certificate for the calling proxy to present
        as the node a client asked for; the proxy is the caller's own host id, never the body's."""
        identity = await self._authorize(request, "host_cert", "forward")
        if identity.system_role != "Proxy" or not identity.host_id:
            # not even an admin: such a certificate is only ever a proxy's, for its own host id
            raise AccessDenied(
                f"{identity_phrase(identity)} may not get forwarding host certificates: only a "
                "proxy in recording proxy mode may"
            )
        data = await json_body(request)
        cert = await self.server.sign_forward_cert(
            identity.host_id, _str(data, "public_key"), _str(data, "principal")
        )
        return web.json_response({"cert": cert})

    async def reissue_host(self, request: web.Request) -> web.Response:
        """CA rotation: a node or proxy gets its own identity signed by the current keys; the
        host is the caller's certificate's, never the body's (not even an admin's)."""
        identity = await self._authorize(request, "host_cert", "reissue")
        if identity.system_role not in ("Node", "Proxy") or not identity.host_id:
            raise AccessDenied(
                f"{identity_phrase(identity)} may not re-issue host identities: only a node or a "
                "proxy re-issues its own"
            )
        data = await json_body(request)
        ident = await self.server.reissue_host_identity(identity, list_field(data, "addresses"))
        return web.json_response(host_identity_to_dict(ident))

    # tokens ----------------------------------------------------------------------------
    async def create_token(self, request: web.Request) -> web.Response:
        await self._authorize(request, "token", "create")
        data = await json_body(request)
        tok = await self.server.create_join_token(list_field(data, "roles"), data.get("ttl"))
        exp = tok.metadata.expires
        return web.json_response(
            {"token": tok.name, "roles": tok.roles, "expires": exp.timestamp() if exp else None}
        )

    async def list_tokens(self, request: web.Request) -> web.Response:
        await self._authorize(request, "token", "list")
        return web.json_response(await self.server.list_tokens())

    async def delete_token(self, request: web.Request) -> web.Response:
        await self._authorize(request, "token", "delete")
        await self.server.delete_token(path_param(request, "token"))
        return web.json_response({"ok": True})

    # nodes -----------------------------------------------------------------------------
    async def list_nodes(self, request: web.Request) -> web.Response:
        await self._authorize(request, "node", "list")
        # ?offline=1: also tunnelled nodes whose tunnel is gone (the proxy, to say "offline")
        return web.json_response(await self.server.node_dicts(bool(request.query.get("offline"))))

    async def heartbeat(self, request: web.Request) -> web.Response:
        identity = await self._authorize(request, "node", "heartbeat")
        data = await json_body(request)
        server = Server.from_dict(data)
        check_host_id(server.name)
        if identity.system_role == "Node" and server.name != identity.host_id:
            raise AccessDenied("a node may only heartbeat for itself")
        if identity.system_role == "Node":
            await self.server.check_heartbeat(server.name, str(server.spec.get("hostname", "")))
        await self.server.store.upsert_node(server, defaults.SERVER_TTL)  # type: ignore[arg-type]
        return web.json_response({"ok": True})

    async def check_access(self, request: web.Request) -> web.Response:
        """May this user log in as this login on this node? (asked by nodes and proxies)."""
        identity = await self._authorize(request, "access", "check")
        data = await json_body(request)
        host_id = _str(data, "host_id", required=False)
        if identity.system_role == "Proxy" and not host_id:
            # a recording proxy about a host outside the registry (an OpenSSH node, which
            # decides the login itself): only the options it must enforce for the session
            return web.json_response(await self.server.session_options(_str(data, "user")))
        if identity.system_role == "Node" and host_id != identity.host_id:
            raise AccessDenied("a node may only ask about logins on itself")
        labels = data.get("labels")
        if identity.system_role == "Node" and host_id == identity.host_id and isinstance(labels, dict):
            node_labels = {str(k): str(v) for k, v in labels.items()}
        else:
            node_labels = await self._stored_labels(host_id)
        cert = data.get("cert")
        if isinstance(cert, str) and cert:
            # a user of a trusted (root) cluster: its certificate's roles, mapped here, decide
            result = await self.server.check_remote_access(cert, _str(data, "login"), node_labels)
            return web.json_response(result)
        result = await self.server.check_ssh_access(_str(data, "user"), _str(data, "login"), node_labels)
        return web.json_response(result)

    async def _stored_labels(self, host_id: str) -> dict[str, str]:
        for node in await self.server.store.list_nodes():
            if node.name == host_id:
                return node_labels(node)
        raise NotFound(f"node {host_id!r} is not registered (offline?)")

    async def list_proxies(self, request: web.Request) -> web.Response:
        """The live proxies; agents read where to open tunnels (a node does not learn which
        tunnels each proxy holds)."""
        identity = await self._authorize(request, "proxy", "list")
        out = [p.to_dict() for p in await self.server.store.list_nodes(kind="proxies")]
        if identity.system_role == "Node":
            for p in out:
                p.get("spec", {}).pop("tunnels", None)
        return web.json_response(out)

    async def delete_proxy(self, request: web.Request) -> web.Response:
        """A proxy that stops removes its heartbeat at once: agents drop their tunnel to it."""
        identity = await self._authorize(request, "proxy", "heartbeat")
        name = path_param(request, "host_id")
        if identity.system_role == "Proxy" and name != identity.host_id:
            raise AccessDenied("a proxy may only remove its own heartbeat")
        await self.server.store.delete_node(name, kind="proxies")
        return web.json_response({"ok": True})

    async def proxy_heartbeat(self, request: web.Request) -> web.Response:
        identity = await self._authorize(request, "proxy", "heartbeat")
        server = ProxyServer.from_dict(await json_body(request))
        check_host_id(server.name)
        if identity.system_role == "Proxy" and server.name != identity.host_id:
            raise AccessDenied("a proxy may only heartbeat for itself")
        await self.server.store.upsert_node(server, defaults.SERVER_TTL, kind="proxies")  # type: ignore[arg-type]
        return web.json_response({"ok": True})

    async def list_auth_servers(self, request: web.Request) -> web.Response:
        """The auth servers registered in the cluster: nodes and proxies fail over among them."""
        await self._authorize(request, "auth_server", "list")
        from teleport.service.authservers import list_registered

        return web.json_response(await list_registered(self.server.store))


def node_labels(node: Server) -> dict[str, str]:
    """A node's static labels plus the latest results of its command labels."""
    labels = dict(node.metadata.labels)
    for name, cmd in (node.spec.get("cmd_labels") or {}).items():
        if isinstance(cmd, dict):
            labels[name] = str(cmd.get("result", ""))
    return labels


def server_ssl_context(cert_pem: bytes, key_pem: bytes, ca_pem: bytes, cert_dir: str) -> ssl.SSLContext:
    """TLS for the auth listener: our identity, and client certificates checked against the CA
    when presented (public endpoints work without one; the rest refuse)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert_file = os.path.join(cert_dir, "auth-server-cert.pem")
    key_file = os.path.join(cert_dir, "auth-server-key.pem")
    write_secret(cert_file, cert_pem)
    write_secret(key_file, key_pem)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.load_verify_locations(cadata=ca_pem.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx

