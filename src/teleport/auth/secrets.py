"""Password hashing, one-time codes and random tokens: the auth service's secret handling.

Pure (no I/O): callers store the results. Tokens are compared in constant time and are only ever
stored by their SHA-256 digest where a lookup is needed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import pyotp
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from teleport import defaults
from teleport.errors import AccessDenied, BadParameter

_hasher = PasswordHasher(
    time_cost=defaults.ARGON2_TIME_COST,
    memory_cost=defaults.ARGON2_MEMORY_KIB,
    parallelism=defaults.ARGON2_PARALLELISM,
    type=Type.ID,
)


def check_password_strength(password: str) -> None:
    """Reject passwords that are too short or too long, with a message that says the bounds."""
    if len(password) < defaults.MIN_PASSWORD_LENGTH:
        raise BadParameter(
            f"password is too short: use at least {defaults.MIN_PASSWORD_LENGTH} characters"
        )
    if len(password) > defaults.MAX_PASSWORD_LENGTH:
        raise BadParameter(
            f"password is too long: use at most {defaults.MAX_PASSWORD_LENGTH} characters"
        )


def hash_password(password: str) -> str:
    """Hash a password with argon2id (the encoded hash carries its own salt and parameters)."""
    return _hasher.hash(password)


def verify_password(encoded_hash: str, password: str) -> bool:
    """True when the password matches the stored argon2 hash."""
    try:
        return _hasher.verify(encoded_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_token(nbytes: int = defaults.TOKEN_BYTES) -> str:
    """A random token, hex encoded."""
    return secrets.token_hex(nbytes)


def token_digest(token: str) -> str:
    """The SHA-256 digest a token is stored and looked up under."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(a: str, b: str) -> bool:
    """Constant-time comparison of two tokens."""
    return hmac.compare_digest(a.encode(), b.encode())


def new_totp_secret() -> str:
    """A fresh base32 TOTP secret (160 bits, as authenticator apps expect)."""
    return pyotp.random_base32(32)


def totp_uri(secret: str, account: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app imports."""
    return pyotp.TOTP(secret, digits=defaults.TOTP_DIGITS, interval=defaults.TOTP_PERIOD).provisioning_uri(
        name=account, issuer_name=issuer
    )


@dataclass(frozen=True)
class TOTPCheck:
    counter: int  # the time step the code belonged to; store it to refuse replays


def verify_totp(secret: str, code: str, last_counter: int, now: float | None = None) -> TOTPCheck:
    """Check a one-time code with one step of skew; a code of a step already used is refused."""
    code = code.strip()
    if not code.isdigit() or len(code) != defaults.TOTP_DIGITS:
        raise AccessDenied(f"invalid one-time code: expected {defaults.TOTP_DIGITS} digits")
    totp = pyotp.TOTP(secret, digits=defaults.TOTP_DIGITS, interval=defaults.TOTP_PERIOD)
    t = time.time() if now is None else now
    current = int(t // defaults.TOTP_PERIOD)
    for step in range(current - defaults.TOTP_SKEW_STEPS, current + defaults.TOTP_SKEW_STEPS + 1):
        if hmac.compare_digest(totp.at(step * defaults.TOTP_PERIOD), code):
            if step <= last_counter:
                raise AccessDenied("one-time code was already used: wait for the next code")
            return TOTPCheck(counter=step)
    raise AccessDenied("invalid one-time code")
