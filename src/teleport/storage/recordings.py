"""The session-recording store contract (``auth_service.audit_sessions_uri``) and its embedded
default: one ``<sid>.cast.gz`` file per session under data_dir/log/sessions/default.

Every store keeps the same promises, checked by one conformance suite
(tests/unit/storage/test_recordings_conformance.py) run against every implementation:

- a recording is written once: a second upload of the same session is refused (AlreadyExists),
  also when two uploads race;
- a recording larger than ``max_size`` is refused (BadParameter, from recording_too_large) and
  nothing of it is kept;
- a recording is whole or absent: an upload cut off leaves nothing readable behind;
- ``read`` returns exactly the bytes stored, NotFound for a session without one.

``store`` is a coroutine (it streams the upload); ``read``, ``exists`` and ``list_sids`` are
synchronous and thread-safe (callers run the remote ones in worker threads).
"""

from __future__ import annotations

import abc
import asyncio
import os
import tempfile
from collections.abc import AsyncIterator

from teleport import defaults
from teleport.errors import AlreadyExists, BadParameter, NotFound
from teleport.files import ensure_private_dir
from teleport.types.names import check_sid

UPLOAD_SUFFIX = ".upload"
RECORDING_SUFFIX = ".cast.gz"
FILE_MODE = 0o640


def recording_too_large(sid: str, size: int, limit: int) -> BadParameter:
    """The one refusal of an oversize recording (the node recognises BadParameter as final)."""
    return BadParameter(
        f"the recording of session {sid} is larger than auth_service.max_recording_size "
        f"({limit} bytes{'' if size <= limit else f'; it is {size}'}): it is not stored"
    )


def already_stored(sid: str) -> AlreadyExists:
    return AlreadyExists(f"the recording of session {sid} is already stored")


def not_recorded(sid: str) -> NotFound:
    return NotFound(f"no recording of session {sid} (not recorded, or not uploaded yet)")


class RecordingStore(abc.ABC):
    """Compressed session recordings, written once, read back whole."""

    def __init__(self, max_size: int = defaults.MAX_RECORDING_SIZE) -> None:
        self.max_size = max_size

    @abc.abstractmethod
    async def store(
        self, sid: str, chunks: AsyncIterator[bytes], declared_size: int | None = None
    ) -> int:
        """Stream a recording into place, once; returns the bytes stored."""

    @abc.abstractmethod
    def read(self, sid: str) -> bytes:
        """The stored recording; NotFound when there is none."""

    @abc.abstractmethod
    def exists(self, sid: str) -> bool:
        """Whether sid has a stored recording."""

    @abc.abstractmethod
    def list_sids(self) -> set[str]:
        """The session ids that have a stored recording."""

    def close(self) -> None:  # noqa: B027 - optional: only remote stores hold connections
        """Release connections (nothing for files)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where the recordings are, for messages."""

    def _check_declared(self, sid: str, declared_size: int | None) -> None:
        if declared_size is not None and declared_size > self.max_size:
            raise recording_too_large(sid, declared_size, self.max_size)


class DirRecordingStore(RecordingStore):
    """Recordings as files in one private directory (the embedded default)."""

    def __init__(self, directory: str, max_size: int = defaults.MAX_RECORDING_SIZE) -> None:
        super().__init__(max_size)
        self.directory = ensure_private_dir(directory)
        self._remove_partial_uploads()

    def describe(self) -> str:
        return f"the recordings directory {self.directory}"

    def path(self, sid: str) -> str:
        return os.path.join(self.directory, f"{check_sid(sid)}{RECORDING_SUFFIX}")

    def _remove_partial_uploads(self) -> None:
        # Uploads cut off by a crash of this process: the node still has the file and retries.
        for name in os.listdir(self.directory):
            if name.endswith(UPLOAD_SUFFIX):
                try:
                    os.remove(os.path.join(self.directory, name))
                except OSError:
                    pass

    async def store(
        self, sid: str, chunks: AsyncIterator[bytes], declared_size: int | None = None
    ) -> int:
        """Write to a temporary file, fsync, then link into place (fails if another upload of
        sid won the race)."""
        final = self.path(sid)
        limit = self.max_size
        if os.path.exists(final):
            raise already_stored(sid)
        self._check_declared(sid, declared_size)
        fd, tmp = tempfile.mkstemp(prefix=f".{sid}.", suffix=UPLOAD_SUFFIX, dir=self.directory)
        size = 0
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > limit:
                        raise recording_too_large(sid, size, limit)
                    f.write(chunk)
                f.flush()
                await asyncio.to_thread(os.fsync, f.fileno())
            os.chmod(tmp, FILE_MODE)
            try:
                # link, not rename: it fails when another upload of sid won the race.
                os.link(tmp, final)
            except FileExistsError:
                raise already_stored(sid) from None
        finally:
            os.remove(tmp)
        return size

    def read(self, sid: str) -> bytes:
        try:
            with open(self.path(sid), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise not_recorded(sid) from None

    def exists(self, sid: str) -> bool:
        return os.path.exists(self.path(sid))

    def list_sids(self) -> set[str]:
        return {
            name[: -len(RECORDING_SUFFIX)]
            for name in os.listdir(self.directory)
            if name.endswith(RECORDING_SUFFIX) and not name.startswith(".")
        }
