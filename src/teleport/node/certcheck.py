"""The one place the node learns which user certificate a client authenticated with.

asyncssh checks a user certificate's CA (through SSHServer.validate_ca_key), principals and
validity itself, but does not hand the certificate to the application. We subclass
asyncssh.SSHServerConnection and wrap its ``validate_public_key`` (tested with asyncssh
2.14 to 2.24): after asyncssh accepted the key *and* verified the client's signature, we decode the
same key blob as an OpenSSH certificate, check it once more with ``cryptography`` against the
cluster's user CA, and ask an authorizer (the auth server's access check) before accepting.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import asyncssh

from teleport.ca import sshcert
from teleport.ca.sshcert import CertInfo
from teleport.errors import AccessDenied, BadParameter

log = logging.getLogger(__name__)

CERT_SUFFIX = "-cert-v01@openssh.com"

# (login, certificate) -> access-check result (dict), or raises AccessDenied.
Authorizer = Callable[[str, CertInfo, "CertCaptureConnection"], Awaitable[dict[str, Any]]]
# (teleport user or "", login, reason) -> None: called when a client's certificate is refused.
FailureHook = Callable[[str, str, str], None]


def cert_line_from_wire(key_data: bytes) -> str | None:
    """The OpenSSH text line of a certificate in SSH wire form, or None for a plain public key."""
    if len(key_data) < 4:
        return None
    n = int.from_bytes(key_data[:4], "big")
    try:
        alg = key_data[4 : 4 + n].decode("ascii")
    except UnicodeDecodeError:
        return None
    if len(key_data) < 4 + n or not alg.endswith(CERT_SUFFIX):
        return None
    return f"{alg} {base64.b64encode(key_data).decode()}"


def check_user_cert(line: str, login: str, user_ca_keys: list[str], now: float | None = None) -> CertInfo:
    """Verify a user certificate: signed by the user CA, valid now, login among its principals."""
    try:
        info = sshcert.verify_cert_signature(line, user_ca_keys)
    except BadParameter as exc:
        raise AccessDenied(str(exc)) from None
    if info.cert_type != "user":
        raise AccessDenied(f"certificate {info.key_id!r} is a host certificate, not a user certificate")
    if not info.valid_at(now):
        raise AccessDenied(f"certificate of {info.key_id!r} is expired or not yet valid")
    if login not in info.principals:
        raise AccessDenied(
            f"certificate of {info.key_id!r} does not allow login {login!r} "
            f"(allowed: {', '.join(info.principals)})"
        )
    return info


class CertCaptureConnection(asyncssh.SSHServerConnection):
    """An asyncssh server connection that records the authenticated user certificate.

    After a successful login, ``teleport_cert`` is the CertInfo, ``teleport_login`` the OS login and
    ``teleport_access`` the auth server's access-check answer (permit_port_forwarding, ...).
    """

    def __init__(
        self,
        loop: Any,
        options: asyncssh.SSHServerConnectionOptions,
        authorize: Authorizer,
        user_ca_keys: Callable[[], list[str]],
        client_addr: str,
        on_failure: FailureHook | None = None,
    ) -> None:
        super().__init__(loop, options)
        self._on_failure = on_failure
        # set by the node when a signed proxy header says a recording proxy audits this connection
        self.recorded_by_proxy = False
        self._authorize = authorize
        self._user_ca_keys = user_ca_keys
        self.teleport_client_addr = client_addr
        self.teleport_cert: CertInfo | None = None
        self.teleport_login = ""
        self.teleport_cert_line = ""  # the certificate being authorized (OpenSSH line)
        self.teleport_access: dict[str, Any] = {}
        self.agent_owner: tuple[int, int] | None = None  # (uid, gid) for the agent socket

    async def validate_public_key(
        self, username: str, key_data: bytes, msg: bytes, signature: bytes
    ) -> bool:
        """asyncssh's check, then (once the signature is verified) our capture and authorization."""
        ok = await super().validate_public_key(username, key_data, msg, signature)
        if not ok:
            cert = cert_line_from_wire(key_data)
            if cert is not None:  # a certificate asyncssh refused: wrong CA, expired, or login
                self._failed(_key_id(cert), username, _refusal_reason(cert, username, self._user_ca_keys()))
            return False
        if not msg:
            # A query ("would you accept this key?"): nothing to capture yet.
            return True
        line = cert_line_from_wire(key_data)
        if line is None:
            log.warning("refused %s: plain public keys are not accepted, only user certificates", username)
            self._failed("", username, "plain public keys are not accepted, only user certificates")
            return False
        try:
            info = check_user_cert(line, username, self._user_ca_keys())
            self.teleport_cert_line = line
            access = await self._authorize(username, info, self)
        except AccessDenied as exc:
            log.warning(
                "access denied to %s for login %s from %s: %s",
                _key_id(line), username, self.teleport_client_addr, exc,
            )
            self._failed(_key_id(line), username, str(exc))
            return False
        except Exception as exc:  # auth unreachable or broken: fail closed
            log.error(
                "access check for login %s from %s failed, refusing: %s",
                username, self.teleport_client_addr, exc,
            )
            self._failed(_key_id(line), username, f"access check failed: {exc}")
            return False
        self.teleport_cert = info
        self.teleport_login = username
        self.teleport_access = access
        return True

    def _failed(self, user: str, login: str, reason: str) -> None:
        if self._on_failure is not None:
            try:
                self._on_failure(user, login, reason)
            except Exception as exc:  # auditing must not break the handshake
                log.error("cannot record the failed login of %s: %s", login, exc)

    async def create_agent_listener(self) -> bool:
        """Agent forwarding only when the roles permit it; the socket belongs to the login user."""
        if not self.teleport_access.get("permit_agent_forwarding"):
            log.info("agent forwarding refused for %s: not permitted by role", self.teleport_login)
            return False
        ok = await super().create_agent_listener()
        path = self.get_agent_path()
        if ok and path and self.agent_owner is not None and os.geteuid() == 0:
            uid, gid = self.agent_owner
            os.chown(os.path.dirname(path), uid, gid)
            os.chown(path, uid, gid)
        return ok


def _key_id(line: str) -> str:
    try:
        return sshcert.parse_cert(line).key_id
    except BadParameter:
        return "?"


def _refusal_reason(line: str, login: str, user_ca_keys: list[str]) -> str:
    """Why a certificate asyncssh refused would fail our own check (for the audit log)."""
    try:
        check_user_cert(line, login, user_ca_keys)
    except AccessDenied as exc:
        return str(exc)
    return "certificate refused"
