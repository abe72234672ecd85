"""The audit storage URIs of teleport.yaml: where events and recordings go. Pure module.

``audit_events_uri``: ``dir`` (JSON lines under data_dir/log, the default) or
``dynamodb://TABLE`` (optional ``?region=...&endpoint=...``).
``audit_sessions_uri``: ``dir`` (data_dir/log/sessions, the default) or
``s3://BUCKET[/PREFIX]`` (optional ``?region=...&endpoint=...&sse=AES256|aws:kms|off&sse_kms_key_id=...``).

The reference's rule: DynamoDB for events requires S3 for recordings (``check_pair``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from teleport import defaults

# DynamoDB table names: 3-255 of letters, digits, "_", "-", ".".
_TABLE = re.compile(r"[A-Za-z0-9_.-]{3,255}")
# S3 bucket names: 3-63 lower-case letters, digits, "." and "-", starting and ending alphanumeric.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9!_.*'()/-]*")
SSE_MODES = ("AES256", "aws:kms", "off")


class URIError(ValueError):
    """Why a URI is wrong (the caller adds the file and key)."""


@dataclass(frozen=True)
class EventsURI:
    kind: str  # "dir" or "dynamodb"
    table: str = ""
    region: str | None = None
    endpoint: str | None = None


@dataclass(frozen=True)
class SessionsURI:
    kind: str  # "dir" or "s3"
    bucket: str = ""
    prefix: str = ""
    region: str | None = None
    endpoint: str | None = None
    sse: str = defaults.S3_SSE
    kms_key_id: str | None = None


def _params(query: str, allowed: tuple[str, ...]) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise URIError(f"cannot parse the query {query!r}") from None
    out = {}
    for key, values in parsed.items():
        if key not in allowed:
            raise URIError(f"unknown parameter {key!r}; allowed: {', '.join(allowed)}")
        if len(values) != 1 or not values[0]:
            raise URIError(f"parameter {key!r} needs exactly one non-empty value")
        out[key] = values[0]
    if "endpoint" in out and not re.fullmatch(r"https?://[^\s/]+/?", out["endpoint"]):
        raise URIError(f"endpoint must be an URL like https://s3.example.com, got {out['endpoint']!r}")
    return out


def parse_events_uri(text: str) -> EventsURI:
    """Parse audit_events_uri; URIError says why it is wrong."""
    text = text.strip()
    if text in ("", "dir"):
        return EventsURI("dir")
    parts = urlsplit(text)
    if parts.scheme != "dynamodb":
        raise URIError(f'expected "dir" or dynamodb://TABLE, got "{text}"')
    if parts.path not in ("", "/"):
        raise URIError(f'expected dynamodb://TABLE (no path), got "{text}"')
    if not _TABLE.fullmatch(parts.netloc):
        raise URIError(
            f'"{parts.netloc}" is not a DynamoDB table name (3-255 letters, digits, "_", "-", ".")'
        )
    q = _params(parts.query, ("region", "endpoint"))
    return EventsURI("dynamodb", parts.netloc, q.get("region"), q.get("endpoint"))


def parse_sessions_uri(text: str) -> SessionsURI:
    """Parse audit_sessions_uri; URIError says why it is wrong."""
    text = text.strip()
    if text in ("", "dir"):
        return SessionsURI("dir")
    parts = urlsplit(text)
    if parts.scheme != "s3":
        raise URIError(f'expected "dir" or s3://BUCKET/PREFIX, got "{text}"')
    if not _BUCKET.fullmatch(parts.netloc) or ".." in parts.netloc:
        raise URIError(f'"{parts.netloc}" is not an S3 bucket name (3-63 of a-z, 0-9, ".", "-")')
    prefix = parts.path.strip("/")
    if not _PREFIX.fullmatch(prefix) or "//" in prefix or any(
        seg in (".", "..") for seg in prefix.split("/")
    ):
        raise URIError(f'the key prefix "{prefix}" may hold only letters, digits and !_.*\'()-/')
    q = _params(parts.query, ("region", "endpoint", "sse", "sse_kms_key_id"))
    sse = q.get("sse", defaults.S3_SSE)
    if sse not in SSE_MODES:
        raise URIError(f"sse must be one of {', '.join(SSE_MODES)}, got {sse!r}")
    if "sse_kms_key_id" in q and sse != "aws:kms":
        raise URIError("sse_kms_key_id needs sse=aws:kms")
    return SessionsURI("s3", parts.netloc, prefix, q.get("region"), q.get("endpoint"), sse,
                       q.get("sse_kms_key_id"))


def check_pair(events: EventsURI, sessions: SessionsURI) -> str | None:
    """Why this pair breaks the reference's rule, or None when it is fine."""
    if events.kind == "dynamodb" and sessions.kind != "s3":
        return (
            "audit_events_uri is dynamodb://, which requires recordings in S3 too: set "
            "audit_sessions_uri to s3://BUCKET/PREFIX (events in DynamoDB and recordings on "
            "one auth server's disk would leave the other auth servers unable to play them)"
        )
    return None
