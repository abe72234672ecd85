"""etcd's wire details shared by the backend and its watcher: the value envelope, base64 keys
and values of the JSON gateway, and etcd's errors (which ones a retry may get past)."""

from __future__ import annotations

import base64
import struct

from teleport.backend.base import Item
from teleport.errors import ConnectionProblem

# Envelope: magic byte, big-endian float64 expiry (0 = none), then the raw value.
_MAGIC = b"\x01"
_HEADER = struct.Struct(">d")
_HEADER_LEN = 1 + _HEADER.size


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(data: str | None) -> bytes:
    return base64.b64decode(data) if data else b""


def encode_value(item: Item) -> bytes:
    """Wrap the item's value with its expiry for storage in etcd."""
    return _MAGIC + _HEADER.pack(item.expires or 0.0) + bytes(item.value)


def decode_value(raw: bytes) -> tuple[bytes, float | None]:
    """Unwrap a stored value; values written by other tools are taken as-is, never expiring."""
    if len(raw) >= _HEADER_LEN and raw[:1] == _MAGIC:
        (expires,) = _HEADER.unpack_from(raw, 1)
        return raw[_HEADER_LEN:], (expires or None)
    return raw, None


# etcd's messages for conditions that pass by themselves: an election in progress or just
# finished, a member that lost its quorum for a moment, a proposal that timed out, overload.
# The request may be retried as it is (the gateway answers 503/504 with gRPC code 14/4).
TRANSIENT_ETCD_ERRORS = (
    "leader changed",
    "no leader",
    "request timed out",
    "timed out",
    "too many requests",
    "server stopped",
    "not capable",
    "context deadline exceeded",
    "connection refused",
    "transport is closing",
    "connection is closing",  # the member's own gateway while that member shuts down
    "error reading from server",
    "unavailable",
)


def is_transient(etcd_message: str) -> bool:
    """Whether etcd's error message names a condition that a retry may get past."""
    text = etcd_message.lower()
    return any(marker in text for marker in TRANSIENT_ETCD_ERRORS)


class EtcdError(ConnectionProblem):
    """etcd answered with an error; keeps etcd's own message for matching."""

    def __init__(self, message: str, etcd_message: str) -> None:
        super().__init__(message)
        self.etcd_message = etcd_message
