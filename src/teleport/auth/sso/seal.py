"""The console login's answer, sealed for the tsh that asked for it. Pure.

tsh sends a fresh 256-bit key with its login request; the auth service seals the answer
(certificates, or the reason for a refusal) with AES-256-GCM under that key, and the browser
carries it to tsh's loopback listener. Anything else that reaches the listener (a page that
redirects there, a stale tab) does not open and is ignored.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from teleport.errors import BadParameter

KEY_BYTES = 32
_AAD = b"teleport-sso-console-response-v1"


def new_key() -> str:
    """A fresh key, URL-safe base64."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode().rstrip("=")


def _decode(text: str, what: str) -> bytes:
    if not isinstance(text, str) or len(text) > 1_000_000:
        raise BadParameter(f"{what} must be URL-safe base64")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        raise BadParameter(f"{what} must be URL-safe base64") from None


def check_key(key: Any) -> str:
    """A key as tsh sends it: 32 bytes in URL-safe base64; BadParameter otherwise."""
    message = "the response key must be 32 bytes in URL-safe base64"
    try:
        if len(_decode(key, "the response key")) != KEY_BYTES:
            raise BadParameter(message)
    except BadParameter:
        raise BadParameter(message) from None
    return str(key)


def seal(key: str, payload: dict[str, Any]) -> str:
    """Encrypt and authenticate a JSON payload; URL-safe base64 (nonce + ciphertext)."""
    nonce = os.urandom(12)
    box = AESGCM(_decode(key, "the response key")).encrypt(nonce, json.dumps(payload).encode(), _AAD)
    return base64.urlsafe_b64encode(nonce + box).decode().rstrip("=")


def unseal(key: str, sealed: str) -> dict[str, Any]:
    """The payload; BadParameter when it was not sealed under this key (or was changed)."""
    raw = _decode(sealed, "the response")
    if len(raw) < 12 + 16:
        raise BadParameter("the response is too short to be a sealed answer")
    try:
        plain = AESGCM(_decode(key, "the response key")).decrypt(raw[:12], raw[12:], _AAD)
    except InvalidTag:
        raise BadParameter("the response was not sealed for this login (or was altered)") from None
    data = json.loads(plain)
    if not isinstance(data, dict):
        raise BadParameter("the sealed answer is not a JSON object")
    return data
