"""Who may call what on the auth API: built-in rules per system role, RBAC rules for users. Pure."""

from __future__ import annotations

from teleport.ca.tlsca import Identity
from teleport.errors import AccessDenied
from teleport.events import schema
from teleport.rbac.roleset import RoleSet

# (resource, verb) pairs each service identity may use: exactly what its routes need (a proxy
# checks CAs, routes to nodes, logs users in and completes invites, and in recording proxy mode
# reports the sessions it relays and gets forwarding host certificates; a node heartbeats and
# reports its sessions; both re-issue their own identity in a CA rotation and read the cache
# snapshot that lets them serve while auth is down). Anything not listed
# is refused.
BUILTIN_RULES: dict[str, frozenset[tuple[str, str]]] = {
    "Proxy": frozenset(
        {
            ("cert_authority", "read"),
            ("invite", "read"),
            ("invite", "use"),
            ("user", "authenticate"),
            ("node", "list"),
            ("proxy", "heartbeat"),
            ("proxy", "list"),  # proxies announce each other (reverse tunnel agents)
            ("auth_server", "list"),
            ("event", "create"),
            ("access", "check"),
            ("session", "create"),
            ("host_cert", "forward"),
            # browser logins: web sessions, and terminal certificates for a session's own user
            ("web_session", "create"),
            ("web_session", "read"),
            ("web_session", "delete"),
            ("web_session", "sign"),
            # a web session's own account: keys and password (auth/api_mfa.py)
            ("web_session", "update"),
            ("host_cert", "reissue"),
            # trusted clusters: a leaf's proxy keeps a tunnel to each root; a root's proxy
            # passes a leaf's CA exchange (token-authorized) to auth
            ("trusted_cluster", "list"),
            ("trusted_cluster", "validate"),
            # a root user's recording on this (leaf) cluster: auth checks the user's mapped roles
            ("trusted_cluster", "recording"),
            ("cache", "read"),
            # single sign-on: the login pages' connector list, login requests and callbacks
            ("sso", "read"),
            ("sso", "login"),
        }
    ),
    "Node": frozenset(
        {
            ("cert_authority", "read"),
            ("node", "heartbeat"),
            ("auth_server", "list"),
            ("proxy", "list"),  # a tunnel agent keeps a tunnel to every proxy
            ("event", "create"),
            ("session", "create"),
            ("access", "check"),
            ("host_cert", "reissue"),
            ("cache", "read"),
        }
    ),
}

ALL_POWERFUL = frozenset({"Admin", "Auth"})

# Audit event types each identity may post to /v1/events: what that service emits itself (node/*,
# proxy/sshproxy.py). Auth logs user.login itself, never through the API; admins and users emit
# nothing, so an identity that is not listed may post no event at all. In recording proxy mode
# (auth_service.session_recording: proxy) a proxy runs the sessions' audit as a node does
# (proxy/forward.py) and emits RECORDING_PROXY_EVENTS; in the other modes it may not.
_SESSION_EVENTS = frozenset(
    {
        schema.SESSION_START,
        schema.SESSION_JOIN,
        schema.SESSION_RESIZE,
        schema.SESSION_LEAVE,
        schema.SESSION_END,
        schema.SESSION_UPLOAD,
        schema.SESSION_DATA,
        schema.EXEC,
        schema.PORT_FORWARD,
        schema.SCP,
        schema.AUTH_ATTEMPT,
    }
)
EMITTED_EVENTS: dict[str, frozenset[str]] = {
    "Auth": schema.EVENT_TYPES,
    "Node": _SESSION_EVENTS,
    "Proxy": frozenset({schema.AUTH_ATTEMPT}),
}
RECORDING_PROXY_EVENTS = _SESSION_EVENTS


def emitted_events(identity: Identity, recording_proxy: bool = False) -> frozenset[str]:
    """The event types this identity may post (`recording_proxy`: the cluster records at the
    proxy)."""
    if recording_proxy and identity.system_role == "Proxy":
        return RECORDING_PROXY_EVENTS
    return EMITTED_EVENTS.get(identity.system_role, frozenset())


def identity_phrase(identity: Identity) -> str:
    """'a node identity', 'an admin identity': how refusals name the caller."""
    role = identity.system_role.lower()
    return f"{'an' if role[:1] in 'aeiou' else 'a'} {role} identity"


def authorize(identity: Identity | None, resource: str, verb: str, roleset: RoleSet | None) -> None:
    """Raise AccessDenied unless the identity may perform verb on resource."""
    if identity is None:
        raise AccessDenied(
            "this endpoint needs a client certificate issued by the cluster: "
            "log in with 'tsh login' or join with a token"
        )
    if identity.system_role in ALL_POWERFUL:
        return
    builtin = BUILTIN_RULES.get(identity.system_role)
    if builtin is not None:
        if (resource, verb) in builtin:
            return
        raise AccessDenied(
            f"{identity_phrase(identity)} may not {verb} {resource}"
        )
    if identity.system_role == "User" and roleset is not None:
        roleset.check_rule(resource, verb)
        return
    raise AccessDenied(f"access denied to perform action {verb!r} on {resource!r}")


def check_emitter(identity: Identity) -> None:
    """Raise AccessDenied for identities whose service emits no audit events (checked before the
    body is read)."""
    if not EMITTED_EVENTS.get(identity.system_role):
        raise AccessDenied(
            f"{identity_phrase(identity)} may not emit audit events: the auth service logs the "
            "actions of admins and users itself"
        )


def check_emit(identity: Identity, event_type: object, recording_proxy: bool = False) -> None:
    """Raise AccessDenied unless events of this type are ones the identity's service emits."""
    allowed = emitted_events(identity, recording_proxy)
    if event_type not in allowed:
        what = ", ".join(sorted(allowed)) if allowed else "no audit events"
        raise AccessDenied(
            f"{identity_phrase(identity)} may not emit {event_type!r} events "
            f"(it emits {what})"
        )
