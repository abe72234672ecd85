"""teleport.storage (dir, etcd, dynamodb) and the audit storage URIs of auth_service: parsing and
the checks between them. Pure module."""

from __future__ import annotations

import re
from typing import Any

from teleport import defaults
from teleport.config.model import FileConfig, Secret
from teleport.config.storageuri import URIError, check_pair, parse_events_uri, parse_sessions_uri
from teleport.config.yamlctx import Ctx, describe, suggest

STORAGE_TYPES = ("dir", "etcd", "dynamodb")
# audit_events_uri / audit_sessions_uri may sit in teleport.storage (where the original product
# reads them) or in auth_service; they are moved to auth_service when parsed.
_AUDIT_URI_KEYS = ("audit_events_uri", "audit_sessions_uri")
_ETCD_KEYS = ("type", "peers", "tls_cert_file", "tls_key_file", "tls_ca_file", "prefix", "insecure",
              *_AUDIT_URI_KEYS)
_DIR_KEYS = ("type", "path", *_AUDIT_URI_KEYS)
_DYNAMODB_KEYS = ("type", "region", "table_name", "access_key", "secret_key", "endpoint",
                  *_AUDIT_URI_KEYS)
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")


def parse_storage(ctx: Ctx, raw: Any) -> dict[str, Any]:
    p = "teleport.storage"
    if raw is None:
        return {"type": defaults.STORAGE_TYPE}
    if not isinstance(raw, dict):
        ctx.fail(p, f"expected a mapping with a type (dir, etcd or dynamodb), got {describe(raw)}")
    kind_raw = raw.get("type", defaults.STORAGE_TYPE)
    kind = ctx.string(kind_raw, f"{p}.type").strip().lower()
    if kind == "bolt":
        # the reference's embedded default; here the embedded store is SQLite under data_dir
        kind = "dir"
    if kind not in STORAGE_TYPES:
        ctx.fail(
            f"{p}.type",
            f'unknown storage type "{kind_raw}"{suggest(kind, STORAGE_TYPES)}; '
            f"expected one of {', '.join(STORAGE_TYPES)}",
        )
    out: dict[str, Any]
    if kind == "dir":
        d = ctx.mapping(raw, p, _DIR_KEYS)
        out = {"type": "dir"}
        if d.get("path") is not None:
            out["path"] = ctx.string(d["path"], f"{p}.path")
        return _storage_uris(ctx, d, out)
    if kind == "dynamodb":
        return _storage_uris(ctx, raw, _parse_dynamodb(ctx, raw))
    d = ctx.mapping(raw, p, _ETCD_KEYS)
    peers = d.get("peers")
    if isinstance(peers, str):
        peers = [peers]
    if not peers:
        ctx.fail(
            f"{p}.peers",
            "etcd storage needs peers: a list of etcd URLs, e.g. [https://10.0.0.1:2379]",
        )
    if not isinstance(peers, list):
        ctx.fail(f"{p}.peers", f"expected a list of etcd URLs, got {describe(peers)}")
    for i, peer in enumerate(peers):
        text = ctx.string(peer, f"{p}.peers[{i}]")
        if not re.fullmatch(r"https?://[^\s/]+/?", text):
            ctx.fail(f"{p}.peers[{i}]", f'expected an URL like https://10.0.0.1:2379, got "{text}"')
    out = {"type": "etcd", "peers": [str(x) for x in peers]}
    for key in ("tls_cert_file", "tls_key_file", "tls_ca_file", "prefix"):
        if d.get(key) is not None:
            out[key] = ctx.string(d[key], f"{p}.{key}")
    out["prefix"] = out.get("prefix", defaults.ETCD_PREFIX)
    out["insecure"] = ctx.get(d, "insecure", p, ctx.boolean, False)
    if ("tls_cert_file" in out) != ("tls_key_file" in out):
        missing = "tls_key_file" if "tls_cert_file" in out else "tls_cert_file"
        ctx.fail(f"{p}.{missing}", "tls_cert_file and tls_key_file must be given together")
    return _storage_uris(ctx, d, out)


def _storage_uris(ctx: Ctx, d: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """Keep the audit URIs given in teleport.storage (checked later with auth_service's)."""
    for key in _AUDIT_URI_KEYS:
        if d.get(key) is not None:
            out[key] = ctx.string(d[key], f"teleport.storage.{key}").strip()
    return out


def _parse_dynamodb(ctx: Ctx, raw: Any) -> dict[str, Any]:
    """``storage: {type: dynamodb, region, table_name, access_key, secret_key, endpoint}``;
    without keys the AWS SDK's default credentials (environment, instance role) are used."""
    p = "teleport.storage"
    d = ctx.mapping(raw, p, _DYNAMODB_KEYS)
    out: dict[str, Any] = {"type": "dynamodb"}
    table = ctx.get(d, "table_name", p, ctx.string, defaults.DYNAMODB_TABLE).strip()
    if not _TABLE_NAME.fullmatch(table):
        ctx.fail(f"{p}.table_name",
                 f'"{table}" is not a DynamoDB table name (3-255 letters, digits, "_", "-", ".")')
    out["table_name"] = table
    if d.get("region") is not None:
        region = ctx.string(d["region"], f"{p}.region").strip()
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d+", region):
            ctx.fail(f"{p}.region", f'expected an AWS region such as eu-west-1, got "{region}"')
        out["region"] = region
    if d.get("endpoint") is not None:
        endpoint = ctx.string(d["endpoint"], f"{p}.endpoint").strip()
        if not re.fullmatch(r"https?://[^\s/]+/?", endpoint):
            ctx.fail(f"{p}.endpoint", f'expected an URL like https://dynamodb.example.com:8000, got "{endpoint}"')
        out["endpoint"] = endpoint
    for key in ("access_key", "secret_key"):
        if d.get(key) is not None:
            if not isinstance(d[key], str) or not d[key].strip():
                # never echo the value: it may be (part of) a secret
                ctx.fail(f"{p}.{key}", "expected a non-empty string (quote it)")
            out[key] = Secret(d[key].strip())
    if ("access_key" in out) != ("secret_key" in out):
        missing = "secret_key" if "access_key" in out else "access_key"
        ctx.fail(f"{p}.{missing}", "access_key and secret_key must be given together (or neither, "
                 "to use the environment's or the instance role's AWS credentials)")
    return out


def audit_uris(ctx: Ctx, cfg: FileConfig, auth_raw: Any) -> None:
    """Settle audit_events_uri / audit_sessions_uri (from auth_service or teleport.storage, not
    both) and enforce the reference's rule: DynamoDB events need S3 recordings."""
    auth_keys = auth_raw if isinstance(auth_raw, dict) else {}
    storage = cfg.teleport.storage
    a = cfg.auth_service
    for key in _AUDIT_URI_KEYS:
        in_storage = storage.pop(key, None)
        in_auth = auth_keys.get(key)
        if in_storage is not None and in_auth is not None:
            ctx.fail(f"auth_service.{key}",
                     f"also set in teleport.storage.{key}: give it in one place only")
        if in_storage is not None:
            setattr(a, key, in_storage)
    try:
        events = parse_events_uri(a.audit_events_uri)
    except URIError as exc:
        ctx.fail(_uri_key(auth_keys, "audit_events_uri"), str(exc))
    try:
        sessions = parse_sessions_uri(a.audit_sessions_uri)
    except URIError as exc:
        ctx.fail(_uri_key(auth_keys, "audit_sessions_uri"), str(exc))
    why = check_pair(events, sessions)
    if why is not None:
        ctx.fail(_uri_key(auth_keys, "audit_sessions_uri"), why)


def _uri_key(auth_keys: dict[str, Any], key: str) -> str:
    return f"auth_service.{key}" if key in auth_keys else f"teleport.storage.{key}"
