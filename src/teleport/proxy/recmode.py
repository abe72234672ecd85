"""Recording proxy mode: what the proxy decides before it terminates a user's SSH connection. Pure.

In `auth_service.session_recording: proxy` the proxy no longer relays raw bytes for
`proxy:host:port`: it runs an SSH server for the client on that channel, logs in to the node
with the user's own certificate (reached through the agent the client forwards) and records and
audits the session itself (proxy/forward.py). This module holds the decisions that need no I/O:
which mode applies, which agent certificate may speak for the user, what the refusals say.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from teleport.ca.sshcert import CertInfo

MODES = ("node", "proxy", "off")
PROXY = "proxy"

NO_AGENT = (
    "recording proxy mode needs your agent: use tsh, or ssh -A / ForwardAgent yes "
    "(the proxy logs in to the node with your own certificate, which it reaches only through "
    "the agent you forward to it)"
)


def parse_mode(value: object, last: str = "node") -> str:
    """The session recording mode auth announced (`last` when it said nothing we know)."""
    return value if isinstance(value, str) and value in MODES else last


def terminates(mode: str, host: str) -> bool:
    """Whether the proxy terminates SSH for a `proxy:host:port` request: in proxy mode, for
    every node or OpenSSH host; never for `proxy:@cluster` (the auth API gateway carries TLS)."""
    return mode == PROXY and bool(host)


def no_certificate(user: str, login: str) -> str:
    """The refusal when the forwarded agent holds no usable certificate of `user`."""
    return (
        f"recording proxy mode: your forwarded agent holds no valid certificate of {user!r} "
        f"from this cluster allowing login {login!r}; run 'tsh login' (it loads the agent) or "
        "'ssh-add' your tsh key and certificate"
    )


def user_mismatch(outer: str, inner: str) -> str:
    """The refusal when the SSH session inside the proxy channel is another user's."""
    return (
        f"recording proxy mode: you reached the proxy as {outer!r} but logged in to the node as "
        f"{inner!r}; one connection speaks for one Teleport user"
    )


@dataclass(frozen=True)
class AgentCert:
    """A certificate the forwarded agent offers: its position in the agent's list and content."""

    index: int
    info: CertInfo


def pick_agent_cert(
    certs: Iterable[AgentCert], user: str, login: str, now: float
) -> AgentCert | None:
    """The agent certificate that may log `user` in as `login`: already checked against the
    cluster's user CA by the caller; its key id must be `user` (an identity speaks only for
    itself), `login` among its principals, valid now. The one valid the longest wins."""
    best: AgentCert | None = None
    for c in certs:
        info = c.info
        if info.cert_type != "user" or info.key_id != user or login not in info.principals:
            continue
        if not info.valid_at(now):
            continue
        if best is None or info.valid_before > best.info.valid_before:
            best = c
    return best


def host_key_policy(checks_host_keys: bool) -> str:
    """How the proxy checks a node's host key: "ca" (a certificate of the cluster's host CA
    naming the host) or "any" (proxy_checks_host_keys: no)."""
    return "ca" if checks_host_keys else "any"


def session_limits(options: dict[str, object], cert_valid_before: int) -> tuple[float, float | None]:
    """(idle timeout in seconds or 0, expiry time to disconnect at or None) from the options
    auth's access check returned, as a teleport node enforces them (node/server.py)."""
    raw_idle = options.get("client_idle_timeout") or 0
    idle = float(raw_idle) if isinstance(raw_idle, (int, float, str)) else 0.0
    expires = None
    if options.get("disconnect_expired_cert") and cert_valid_before < 2**40:
        expires = float(cert_valid_before)  # 2**64-1 is "forever": nothing to enforce
    return idle, expires


def disconnect_reason(idle: float, idle_for: float, expires: float | None, now: float) -> str | None:
    """Why the proxy ends the user's connection now (None: not yet)."""
    if expires is not None and now >= expires:
        return "teleport: your certificate has expired; log in again (tsh login)"
    if idle and idle_for >= idle:
        return f"teleport: disconnecting: client idle for more than {idle:g}s (client_idle_timeout of your role)"
    return None
