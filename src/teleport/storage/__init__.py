"""Where the auth service keeps audit events and recordings: the stores behind
``auth_service.audit_events_uri`` and ``audit_sessions_uri`` (cluster state is teleport.backend).

``open_audit_storage`` turns the two URIs into an AuditLog and a RecordingStore: ``dir`` (the
default) is data_dir/log; ``dynamodb://TABLE`` and ``s3://BUCKET/PREFIX`` are AWS, reached with
the AWS settings of ``teleport.storage`` when it is DynamoDB (region, keys, endpoint) and
otherwise the SDK's default credentials, each overridable by the URI's ``region`` and
``endpoint`` parameters.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from typing import Any

from teleport import defaults
from teleport.backend.aws import AWSSettings
from teleport.config.storageuri import parse_events_uri, parse_sessions_uri
from teleport.events.auditlog import AuditLog
from teleport.events.filelog import FileAuditLog
from teleport.files import ensure_private_dir
from teleport.storage.recordings import DirRecordingStore, RecordingStore

__all__ = ["AuditLog", "RecordingStore", "open_audit_storage"]


def _settings(storage: dict[str, Any], source: str, region: str | None,
              endpoint: str | None) -> AWSSettings:
    base = (AWSSettings.from_storage(storage) if storage.get("type") == "dynamodb"
            else AWSSettings())
    return dataclasses.replace(
        base, region=region or base.region, endpoint=endpoint or base.endpoint, source=source
    )


async def open_audit_storage(
    events_uri: str,
    sessions_uri: str,
    storage: dict[str, Any],
    data_dir: str,
    max_recording_size: int = defaults.MAX_RECORDING_SIZE,
) -> tuple[AuditLog, RecordingStore]:
    """Open (creating tables and buckets when missing) the events log and the recording store."""
    log_dir = ensure_private_dir(os.path.join(data_dir, "log"))
    events = parse_events_uri(events_uri)
    sessions = parse_sessions_uri(sessions_uri)
    audit_log: AuditLog
    if events.kind == "dynamodb":
        from teleport.events.dynamo import DynamoAuditLog

        settings = _settings(storage, "auth_service.audit_events_uri", events.region, events.endpoint)
        audit_log = await asyncio.to_thread(DynamoAuditLog(settings, events.table).open)
    else:
        audit_log = FileAuditLog(log_dir)
    recordings: RecordingStore
    try:
        if sessions.kind == "s3":
            from teleport.storage.s3 import S3RecordingStore

            settings = _settings(storage, "auth_service.audit_sessions_uri", sessions.region,
                                 sessions.endpoint)
            store = S3RecordingStore(settings, sessions, max_recording_size, spool_dir=data_dir)
            recordings = await asyncio.to_thread(store.open)
        else:
            recordings = DirRecordingStore(
                os.path.join(log_dir, "sessions", defaults.NAMESPACE), max_recording_size
            )
    except BaseException:
        audit_log.close()
        raise
    return audit_log, recordings
