"""teleport.yaml for DynamoDB storage and the audit URIs: parsed, normalized, every mistake named
by file and key, secrets never shown, and the reference's rule (DynamoDB events need S3)."""

from __future__ import annotations

import pytest

from teleport import defaults
from teleport.auth.statecheck import storage_location
from teleport.config.fileconf import parse_config_text
from teleport.config.storageuri import parse_events_uri, parse_sessions_uri
from teleport.errors import ConfigError

SRC = "/etc/teleport.yaml"


def parse(text: str) -> object:
    return parse_config_text(text, SRC)


def test_dynamodb_storage_as_the_reference_writes_it() -> None:
    cfg = parse_config_text(
        "teleport:\n  storage:\n    type: dynamodb\n    region: eu-west-1\n"
        "    table_name: teleport.state\n    access_key: BKZA3H2LOKJ1QJ3YF21A\n"
        "    secret_key: Oc20333k293SKwzraT3ah3Rv1G3/97POQb3eGziSZ\n", SRC)
    storage = cfg.teleport.storage
    assert storage == {"type": "dynamodb", "region": "eu-west-1", "table_name": "teleport.state",
                       "access_key": "BKZA3H2LOKJ1QJ3YF21A",
                       "secret_key": "Oc20333k293SKwzraT3ah3Rv1G3/97POQb3eGziSZ"}
    assert "Oc20333k" not in repr(cfg) and "BKZA3H2" not in repr(cfg)
    assert cfg.auth_service.audit_events_uri == "dir" and cfg.auth_service.audit_sessions_uri == "dir"
    assert storage_location(storage, "/var/lib/teleport") == \
        "DynamoDB table 'teleport.state' (region eu-west-1)"


def test_dynamodb_defaults_and_environment_credentials() -> None:
    cfg = parse_config_text("teleport:\n  storage: {type: dynamodb}\n", SRC)
    assert cfg.teleport.storage == {"type": "dynamodb", "table_name": defaults.DYNAMODB_TABLE}


@pytest.mark.parametrize("where", ["storage", "auth"])
def test_audit_uris_in_either_place(where: str) -> None:
    uris = "audit_events_uri: 'dynamodb://teleport.events', audit_sessions_uri: 's3://bkt/rec'"
    if where == "storage":
        text = f"teleport:\n  storage: {{type: dynamodb, {uris}}}\n"
    else:
        text = f"auth_service: {{{uris}}}\n"
    cfg = parse_config_text(text, SRC)
    assert cfg.auth_service.audit_events_uri == "dynamodb://teleport.events"
    assert cfg.auth_service.audit_sessions_uri == "s3://bkt/rec"
    assert "audit_events_uri" not in cfg.teleport.storage


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("teleport:\n  storage: {type: dynamodb, audit_events_uri: 'dynamodb://events'}\n",
         "teleport.storage.audit_sessions_uri: audit_events_uri is dynamodb://, which requires "
         "recordings in S3"),
        ("auth_service: {audit_events_uri: 'dynamodb://events', audit_sessions_uri: dir}\n",
         "auth_service.audit_sessions_uri: audit_events_uri is dynamodb://"),
        ("auth_service: {audit_events_uri: 'dynamodb://events'}\nteleport:\n"
         "  storage: {audit_events_uri: 'dynamodb://other'}\n",
         "auth_service.audit_events_uri: also set in teleport.storage.audit_events_uri"),
        ("auth_service: {audit_events_uri: 'mysql://events'}\n",
         'auth_service.audit_events_uri: expected "dir" or dynamodb://TABLE'),
        ("auth_service: {audit_events_uri: 'dynamodb://e'}\n", "is not a DynamoDB table name"),
        ("auth_service: {audit_sessions_uri: 'gs://bucket/x'}\n",
         'auth_service.audit_sessions_uri: expected "dir" or s3://BUCKET/PREFIX'),
        ("auth_service: {audit_sessions_uri: 's3://Bad_Bucket/x'}\n", "is not an S3 bucket name"),
        ("auth_service: {audit_sessions_uri: 's3://bucket/../x'}\n", "the key prefix"),
        ("auth_service: {audit_sessions_uri: 's3://bucket/x?sse=none'}\n",
         "sse must be one of AES256, aws:kms, off"),
        ("auth_service: {audit_sessions_uri: 's3://bucket/x?color=red'}\n",
         "unknown parameter 'color'"),
        ("teleport:\n  storage: {type: dynamodb, access_key: AKIAXXXX}\n",
         "teleport.storage.secret_key: access_key and secret_key must be given together"),
        ("teleport:\n  storage: {type: dynamodb, region: mars}\n",
         'teleport.storage.region: expected an AWS region such as eu-west-1, got "mars"'),
        ("teleport:\n  storage: {type: dynamodb, table_name: x}\n",
         'teleport.storage.table_name: "x" is not a DynamoDB table name'),
        ("teleport:\n  storage: {type: dynamodb, endpoint: 'localhost:8000'}\n",
         "teleport.storage.endpoint: expected an URL"),
        ("teleport:\n  storage: {type: dynamodb, peers: [x]}\n",
         "teleport.storage.peers: unknown key"),
        ("teleport:\n  storage: {type: dynamodb, secret_key: [1], access_key: a}\n",
         "teleport.storage.secret_key: expected a non-empty string"),
    ],
)
def test_errors_name_file_and_key(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert str(info.value).startswith(f"{SRC}: "), info.value
    assert fragment in str(info.value), info.value


def test_secret_key_never_in_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse("teleport:\n  storage: {type: dynamodb, secret_key: TopSecretValue42, region: bad}\n")
    assert "TopSecretValue42" not in str(info.value)


def test_uri_parsing() -> None:
    assert parse_events_uri("dir").kind == "dir"
    e = parse_events_uri("dynamodb://teleport.events?region=us-east-2&endpoint=http://127.0.0.1:8000")
    assert (e.kind, e.table, e.region, e.endpoint) == (
        "dynamodb", "teleport.events", "us-east-2", "http://127.0.0.1:8000")
    s = parse_sessions_uri("s3://my.bucket/teleport/records/?sse=aws:kms&sse_kms_key_id=alias/tp")
    assert (s.bucket, s.prefix, s.sse, s.kms_key_id) == (
        "my.bucket", "teleport/records", "aws:kms", "alias/tp")
    assert parse_sessions_uri("s3://bucket").prefix == ""
    assert parse_sessions_uri("s3://bucket/x").sse == "AES256"  # encrypted unless told otherwise
