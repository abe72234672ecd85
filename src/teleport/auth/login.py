"""Login: credentials with lockout and rate limits, and the certificates a login buys."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from teleport import defaults
from teleport.auth import secrets
from teleport.auth.core import AuthCore, _now
from teleport.auth.relyingparty import allows_otp, allows_webauthn
from teleport.ca import keys as cakeys
from teleport.ca import sshcert, tlsca
from teleport.durations import parse_duration
from teleport.errors import (
    AccessDenied,
    BadParameter,
    CompareFailed,
    NotFound,
)
from teleport.limits import source_of
from teleport.rbac import access
from teleport.types.resources import User

log = logging.getLogger(__name__)


# Principal given to a certificate whose roles allow no login: an empty principal list would
# make OpenSSH accept the certificate for ANY login.
NO_LOGIN_PRINCIPAL = "-teleport-nologin-"


@dataclass
class LoginResult:
    cert: str
    tls_cert: bytes
    username: str
    roles: list[str]
    logins: list[str]
    expires: float


def clamp_ttl(requested: float | None) -> int:
    """Clamp a requested user certificate TTL to [1 min, 30 h] (default 23 h)."""
    ttl = defaults.USER_CERT_TTL if not requested else parse_duration(requested)
    return int(min(max(ttl, defaults.MIN_USER_CERT_TTL), defaults.MAX_USER_CERT_TTL))


class LoginMixin(AuthCore):
    """Password and second factor checks, user certificates, access decisions."""

    # login -----------------------------------------------------------------------------
    async def _begin_attempt(self, name: str, source: str) -> tuple[bool, int]:
        """Count an attempt before checking it: (locked, failures counted before this one).

        Counting first, under one lock, means a burst of concurrent attempts cannot all read
        "0 failures" and all get a try: at most MAX_LOGIN_ATTEMPTS are ever checked."""
        async with self._attempts_lock:
            state = await self.store.get_login_attempts(name, source)
            locked_until = float(state.get("locked_until", 0))
            failures = int(state.get("failures", 0))
            if locked_until > _now():
                return True, failures
            if locked_until:
                failures = 0  # an expired lock: start afresh
            elif failures >= defaults.MAX_LOGIN_ATTEMPTS:
                return True, failures  # the last allowed attempts are still being checked
            await self.store.put_login_attempts(
                name, source, {"failures": failures + 1, "locked_until": 0},
                _now() + defaults.ACCOUNT_LOCK_SECONDS,
            )
            return False, failures

    async def _end_attempt(self, name: str, source: str, ok: bool, failures_before: int) -> None:
        """Settle a counted attempt: success clears the count; the MAX_LOGIN_ATTEMPTS-th failure
        locks this user out from this source address, and says so in the audit log (that is how
        the real user learns of it)."""
        async with self._attempts_lock:
            if ok:
                await self.store.delete_login_attempts(name, source)
                return
            if failures_before + 1 != defaults.MAX_LOGIN_ATTEMPTS:
                return  # not the attempt that sets the lock
            until = _now() + defaults.ACCOUNT_LOCK_SECONDS
            await self.store.put_login_attempts(
                name, source, {"failures": failures_before + 1, "locked_until": until}, until
            )
        when = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        reason = (
            f"logins of {name!r} from {source or 'an unknown address'} are locked until {when} "
            f"after {defaults.MAX_LOGIN_ATTEMPTS} failed attempts (other addresses are not affected)"
        )
        log.warning("%s", reason)
        self.on_event("user.login", user=name, method="local", success=False, error=reason,
                      addr_remote=source or None)

    async def check_credentials(
        self, name: str, password: str, otp_code: str, remote_addr: str = "",
        password_only: bool = False,
    ) -> User:
        """Password then one-time code, for a login from ``remote_addr`` (the client's address).
        ``password_only``: the first half of a security key login (auth/mfa.py checks the key).

        Unknown users, wrong passwords or codes and locked (user, address) pairs all get the same
        AccessDenied message after the same work (one argon2 check, the same backend reads and
        writes), so the answer tells nobody which users exist. Attempts are rate-limited per
        address and per user name (LimitExceeded), and MAX_LOGIN_ATTEMPTS failures lock the user
        out from that address only."""
        source = source_of(remote_addr)
        self.login_rates.check(source, name)
        locked, failures_before = await self._begin_attempt(name, source)
        try:
            user: User | None = await self.store.get_user(name)
        except NotFound:
            user = None
        encoded = _DUMMY_HASH
        reason = ""
        if user is None:
            reason = "unknown user"
        elif locked:
            reason = "locked after too many failed attempts from this address"
        else:
            try:
                encoded = (await self.store.get_user_secret(name, "pwd"))["hash"]
            except NotFound:
                reason = "the user has no password yet (invite not completed)"
        # Always one hash check, against the dummy hash when there is nothing to check against,
        # so that every refusal costs the same time.
        ok = await self.hasher.verify(encoded, password)
        if not reason and not ok:
            reason = "wrong password"
        if not reason:
            try:
                await self.check_second_factor(name, otp_code, password_only)
            except AccessDenied as exc:
                reason = f"second factor refused: {exc.message}"
        if reason:
            if not locked:
                await self._end_attempt(name, source, False, failures_before)
            log.info("login of %r from %s refused: %s", name, source or "?", reason)
            raise AccessDenied(defaults.LOGIN_FAILED_MESSAGE)
        await self._end_attempt(name, source, True, failures_before)
        assert user is not None
        return user

    async def check_second_factor(self, name: str, otp_code: str, password_only: bool) -> None:
        """The one-time code the cluster's second_factor asks of this user (a security key is
        checked by the second half of a key login, never here). AccessDenied says why."""
        mode = self.second_factor
        if mode == "off":
            return
        if password_only:
            if not allows_webauthn(mode):
                raise AccessDenied("this cluster does not use security keys")
            return
        if mode == "otp":
            if not await self._has_secret(name, "totp"):
                raise AccessDenied("this user has no one-time code enrolled (signed up under another second_factor)")
            await self._check_totp(name, otp_code)
            return
        if not allows_otp(mode):
            raise AccessDenied("this cluster's second factor is a security key: log in in the browser")
        if await self._has_secret(name, "totp"):
            await self._check_totp(name, otp_code)
        elif mode == "on" or await self._has_secret(name, "webauthn"):
            raise AccessDenied("this user has no one-time code, only security keys: log in in the browser")

    async def _has_secret(self, name: str, what: str) -> bool:
        try:
            await self.store.get_user_secret(name, what)
        except NotFound:
            return False
        return True

    async def _check_totp(self, name: str, code: str) -> None:
        for _ in range(5):
            totp = await self.store.get_user_secret(name, "totp")
            check = secrets.verify_totp(totp["secret"], code or "", int(totp.get("last", 0)))
            try:
                await self.store.swap_user_secret(name, "totp", totp, {**totp, "last": check.counter})
                return
            except CompareFailed:
                continue  # a concurrent login used a code; re-check against the new counter
        raise AccessDenied("one-time code was already used: wait for the next code")

    async def authenticate_ssh(
        self, name: str, password: str, otp_code: str, public_key: str, ttl: float | None,
        remote_addr: str = "",
    ) -> LoginResult:
        """Check credentials and sign the client's key: SSH user certificate + x509 identity."""
        user = await self.check_credentials(name, password, otp_code, remote_addr)
        return await self.generate_user_certs(user, public_key, ttl)

    async def generate_user_certs(
        self, user: User, public_key: str, ttl: float | None, route_to_cluster: str = ""
    ) -> LoginResult:
        """Sign a user's public key with the user CA, limited by the user's roles."""
        try:
            pub = cakeys.load_public_key(public_key)
        except Exception as exc:
            raise BadParameter(f"bad public key: {exc}") from None
        roleset = await self.roleset_for(user)
        effective = int(roleset.adjust_session_ttl(clamp_ttl(ttl)))
        effective = max(effective, defaults.MIN_USER_CERT_TTL)
        logins = roleset.logins()
        principals = logins or [NO_LOGIN_PRINCIPAL + str(uuid.uuid4())]
        now = _now()
        cert = sshcert.sign_user_cert(
            self._signers["user"],
            public_key,
            username=user.name,
            principals=principals,
            ttl=effective,
            roles=user.roles,
            traits=user.traits,
            permit_port_forwarding=roleset.permit_port_forwarding(),
            permit_agent_forwarding=roleset.permit_agent_forwarding(),
            route_to_cluster=self.cluster_name,
            now=now,
        )
        identity = tlsca.Identity(
            username=user.name,
            system_role="User",
            roles=user.roles,
            logins=logins,
            cluster_name=self.cluster_name,
        )
        tls_cert = self.issue_tls_identity(identity, pub, effective)
        return LoginResult(cert, tls_cert, user.name, user.roles, logins, now + effective)

    async def sign_for_automation(self, name: str, ttl: float | None) -> tuple[bytes, str]:
        """`tctl auth sign --user`: a fresh key and certificate for an existing user."""
        user = await self.store.get_user(name)
        key = cakeys.generate_private_key("ed25519")
        result = await self.generate_user_certs(user, cakeys.public_key_to_openssh(key), ttl)
        return cakeys.private_key_to_openssh(key), result.cert

    async def check_ssh_access(self, username: str, login: str, node_labels: dict[str, str]) -> dict[str, Any]:
        """Decide with the user's current roles whether login is allowed on a node with these
        labels; returns the session options the roles grant. Raises AccessDenied."""
        user = await self._existing_user(username)
        roleset = await self.roleset_for(user)
        return access.check_ssh_access(username, user.roles, roleset, login, node_labels)

    async def session_options(self, username: str) -> dict[str, Any]:
        """The session options the user's current roles grant (idle timeout, expired-certificate
        disconnect, forwarding, limits), without a login decision: what a recording proxy
        enforces for a host outside the registry (an OpenSSH node decides the login itself)."""
        user = await self._existing_user(username)
        return access.session_options(username, user.roles, await self.roleset_for(user))

    async def _existing_user(self, username: str) -> User:
        try:
            return await self.store.get_user(username)
        except NotFound:
            raise AccessDenied(f"user {username!r} does not exist (deleted?)") from None


_DUMMY_HASH = secrets.hash_password("not-a-real-password-" + str(uuid.uuid4()))
