"""The auth service's custody of the audit log, active sessions and session recordings.

Events go to a FileAuditLog under data_dir/log (one JSON-lines file per day); recordings are
stored as data_dir/log/sessions/default/<sid>.cast.gz next to them; active sessions live in the
backend with a TTL so that a node that dies takes its sessions with it.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

from teleport.backend.base import Backend, Item
from teleport.errors import BadParameter, NotFound
from teleport.events.filelog import FileAuditLog
from teleport.events.schema import validate_event
from teleport.files import ensure_private_dir

SESSION_TTL = 90.0  # nodes refresh their active sessions well within this
_SID = re.compile(r"^[0-9a-fA-F-]{8,64}$")


def check_sid(sid: str) -> str:
    """Session ids are UUIDs; refuse anything that could escape the sessions directory."""
    if not _SID.match(sid):
        raise BadParameter(f"invalid session id {sid!r}")
    return sid


class AuditService:
    def __init__(self, data_dir: str, backend: Backend) -> None:
        self.log_dir = ensure_private_dir(os.path.join(data_dir, "log"))
        self.sessions_dir = ensure_private_dir(os.path.join(self.log_dir, "sessions", "default"))
        self.log = FileAuditLog(self.log_dir)
        self.backend = backend

    def close(self) -> None:
        self.log.close()

    # events --------------------------------------------------------------------------------
    def emit(self, event: dict[str, Any]) -> bool:
        """Validate and store one event; False when its uid was stored before (a redelivery)."""
        return self.log.append(validate_event(event))

    def search(self, **filters: Any) -> list[dict[str, Any]]:
        return self.log.search(**filters)

    # recordings ----------------------------------------------------------------------------
    def recording_path(self, sid: str) -> str:
        return os.path.join(self.sessions_dir, f"{check_sid(sid)}.cast.gz")

    def open_upload(self, sid: str) -> tuple[str, Any]:
        """A temp file to stream an upload into; `finish_upload` moves it into place."""
        tmp = self.recording_path(sid) + f".upload{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        return tmp, os.fdopen(fd, "wb")

    def finish_upload(self, sid: str, tmp: str) -> None:
        os.replace(tmp, self.recording_path(sid))

    def read_recording(self, sid: str) -> bytes:
        try:
            with open(self.recording_path(sid), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise NotFound(f"no recording of session {sid} (not recorded, or not uploaded yet)") from None

    def list_recordings(self, since: float | None = None) -> list[dict[str, Any]]:
        """Recorded sessions, from their session.end events, newest first."""
        out = []
        for ev in self.log.search(since=since, event_types=["session.end"]):
            if not ev.get("interactive", True):
                continue
            sid = ev.get("sid", "")
            if not os.path.exists(os.path.join(self.sessions_dir, f"{sid}.cast.gz")):
                continue
            out.append(ev)
        out.sort(key=lambda e: e.get("session_start", e.get("time", "")), reverse=True)
        return out

    # active sessions ---------------------------------------------------------------------
    async def upsert_session(self, session: dict[str, Any]) -> None:
        sid = check_sid(str(session.get("sid", "")))
        await self.backend.put(
            Item(f"/sessions/default/{sid}", json.dumps(session).encode(), expires=time.time() + SESSION_TTL)
        )

    async def delete_session(self, sid: str) -> None:
        try:
            await self.backend.delete(f"/sessions/default/{check_sid(sid)}")
        except NotFound:
            pass

    async def list_sessions(self) -> list[dict[str, Any]]:
        return [json.loads(i.value) for i in await self.backend.get_range("/sessions/default/")]

    async def get_session(self, sid: str) -> dict[str, Any]:
        try:
            item = await self.backend.get(f"/sessions/default/{check_sid(sid)}")
        except NotFound:
            raise NotFound(f"session {sid} is not active (ended, or never existed)") from None
        return json.loads(item.value)
