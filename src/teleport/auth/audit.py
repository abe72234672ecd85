"""The auth service's custody of the audit log, active sessions and session recordings.

Events go to an AuditLog (events/auditlog.py): by default a FileAuditLog under data_dir/log (one
JSON-lines file per day), or DynamoDB (``audit_events_uri``). Recordings go to a RecordingStore
(storage/recordings.py): by default data_dir/log/sessions/default/<sid>.cast.gz, or S3
(``audit_sessions_uri``). Active sessions live in the cluster-state backend with a TTL so that a
node that dies takes its sessions with it.

Every session has one owner, the node that runs it: auth learns it from the node's session.start
event or active-session record (whichever arrives first claims the session) and keeps it under
``/session_owners/default/<sid>``. Only the owner may report, end or upload a session, and a
recording is written once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from teleport import defaults
from teleport.backend.base import Backend, Item
from teleport.errors import AccessDenied, AlreadyExists, NotFound
from teleport.events.auditlog import AuditLog
from teleport.events.filelog import FileAuditLog
from teleport.events.schema import SESSION_START, validate_event
from teleport.files import ensure_private_dir
from teleport.storage.recordings import (
    DirRecordingStore,
    RecordingStore,
    recording_too_large,
)
from teleport.types.names import check_sid

log = logging.getLogger(__name__)

SESSION_TTL = 90.0  # nodes refresh their active sessions well within this
# How long auth remembers who owns a session after the last sign of it (refreshed while the
# session runs). Older owners are looked up in the audit log, which is slower but exact.
OWNER_TTL = 7 * 86400.0
_NOT_YOURS = "session {sid} runs on another node: a node may only report, end or upload its own sessions"

__all__ = ["AuditService", "recording_too_large"]


class AuditService:
    """Events, recordings and active sessions; ``log`` and ``recordings`` default to the files
    under data_dir/log (storage.open_audit_storage opens the configured ones)."""

    def __init__(
        self,
        data_dir: str,
        backend: Backend,
        max_recording_size: int = defaults.MAX_RECORDING_SIZE,
        log: AuditLog | None = None,
        recordings: RecordingStore | None = None,
    ) -> None:
        self.log_dir = ensure_private_dir(os.path.join(data_dir, "log"))
        self.log: AuditLog = log if log is not None else FileAuditLog(self.log_dir)
        self.recordings: RecordingStore = (
            recordings if recordings is not None
            else DirRecordingStore(os.path.join(self.log_dir, "sessions", "default"), max_recording_size)
        )
        self.backend = backend
        self.max_recording_size = max_recording_size
        self.recordings.max_size = max_recording_size

    def close(self) -> None:
        self.log.close()
        self.recordings.close()

    # events --------------------------------------------------------------------------------
    def emit(self, event: dict[str, Any]) -> bool:
        """Validate and store one event; False when its uid was stored before (a redelivery)."""
        return self.log.append(validate_event(event))

    def emit_many(self, events: list[dict[str, Any]]) -> list[bool]:
        """Validate and store a batch (whole, or nothing if one is invalid); per event, whether
        it was stored now."""
        return self.log.append_many(events)

    def search(self, **filters: Any) -> list[dict[str, Any]]:
        return self.log.search(**filters)

    # session owners ------------------------------------------------------------------------
    @staticmethod
    def _owner_key(sid: str) -> str:
        return f"/session_owners/default/{check_sid(sid)}"

    async def claim_session(self, sid: str, server_id: str) -> str:
        """Record server_id as the owner of sid unless the session has one; return the owner.

        The owner's claim is renewed (its TTL restarted) when it claims again."""
        key = self._owner_key(sid)
        item = Item(key, server_id.encode(), expires=time.time() + OWNER_TTL)
        try:
            await self.backend.create(item)
            return server_id
        except AlreadyExists:
            pass
        owner = await self.session_owner(sid)
        if owner == server_id:
            await self.backend.put(item)
        return owner or server_id

    async def session_owner(self, sid: str) -> str | None:
        """The host id of the node that runs (or ran) sid, or None when auth never heard of it."""
        try:
            return (await self.backend.get(self._owner_key(sid))).value.decode()
        except NotFound:
            pass
        try:
            active = json.loads((await self.backend.get(f"/sessions/default/{sid}")).value)
            if isinstance(active.get("server_id"), str) and active["server_id"]:
                return str(active["server_id"])
        except NotFound:
            pass
        # Forgotten (owner record expired): the session.start event names the node.
        starts = await asyncio.to_thread(self.log.search, sid=sid, event_types=[SESSION_START])
        for ev in starts:
            if isinstance(ev.get("server_id"), str) and ev["server_id"]:
                return str(ev["server_id"])
        return None

    # recordings ----------------------------------------------------------------------------
    async def store_recording(
        self, sid: str, chunks: AsyncIterator[bytes], declared_size: int | None = None
    ) -> int:
        """Stream a recording into place, once: AlreadyExists if sid has one, BadParameter (and
        nothing stored) past max_recording_size. Returns the bytes stored."""
        return await self.recordings.store(sid, chunks, declared_size)

    def read_recording(self, sid: str) -> bytes:
        return self.recordings.read(check_sid(sid))

    def list_recordings(self, since: float | None = None) -> list[dict[str, Any]]:
        """Recorded sessions, from their session.end events, newest first."""
        stored = self.recordings.list_sids()
        out = []
        for ev in self.log.search(since=since, event_types=["session.end"]):
            if not ev.get("interactive", True):
                continue
            if ev.get("sid", "") not in stored:
                continue
            out.append(ev)
        out.sort(key=lambda e: e.get("session_start", e.get("time", "")), reverse=True)
        return out

    # active sessions ---------------------------------------------------------------------
    async def upsert_session(self, session: dict[str, Any], owner: str | None = None) -> None:
        """Store (refresh) an active session. With ``owner`` (the caller's host id), the session
        must be that node's: claimed by it now, or before (AccessDenied otherwise)."""
        sid = check_sid(str(session.get("sid", "")))
        if owner is not None:
            if await self.claim_session(sid, owner) != owner:
                raise AccessDenied(_NOT_YOURS.format(sid=sid))
        await self.backend.put(
            Item(f"/sessions/default/{sid}", json.dumps(session).encode(), expires=time.time() + SESSION_TTL)
        )

    async def delete_session(self, sid: str, owner: str | None = None) -> None:
        """Forget an active session; with ``owner``, only that node's (AccessDenied otherwise)."""
        check_sid(sid)
        if owner is not None:
            known = await self.session_owner(sid)
            if known is not None and known != owner:
                raise AccessDenied(_NOT_YOURS.format(sid=sid))
        try:
            await self.backend.delete(f"/sessions/default/{sid}")
        except NotFound:
            pass

    async def check_uploader(self, sid: str, host_id: str) -> None:
        """Refuse an upload of sid by any node but the one that ran the session."""
        owner = await self.session_owner(check_sid(sid))
        if owner is None:
            raise NotFound(
                f"session {sid} is unknown to the auth service: neither its session.start event "
                "nor its active-session record has arrived; the node retries the upload later"
            )
        if owner != host_id:
            raise AccessDenied(_NOT_YOURS.format(sid=sid))

    async def list_sessions(self) -> list[dict[str, Any]]:
        return [json.loads(i.value) for i in await self.backend.get_range("/sessions/default/")]

    async def get_session(self, sid: str) -> dict[str, Any]:
        try:
            item = await self.backend.get(f"/sessions/default/{check_sid(sid)}")
        except NotFound:
            raise NotFound(f"session {sid} is not active (ended, or never existed)") from None
        return json.loads(item.value)
