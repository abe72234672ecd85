"""A node's on-disk queue of audit events not yet delivered to the auth service.

One JSON line per event. ``put`` appends and fsyncs before returning, so an event the caller was
told is queued survives a crash or power loss. ``ack`` removes delivered events by rewriting the
remaining ones to a temporary file, fsyncing it and renaming it over the spool (atomic), then
fsyncing the directory. A crash in the middle of ``put`` can leave a torn last line: it is cut off
when the spool is opened (that ``put`` never returned, so nothing was promised for it). A ``put``
whose write fails (a full disk) cuts its partial line back before raising, so the next ``put``
starts on a clean line.

Delivery is at-least-once: an event delivered but not yet acked when the node crashes is sent again;
the audit log de-duplicates by ``uid``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from typing import Any

from teleport.errors import BadParameter

log = logging.getLogger(__name__)

FILE_MODE = 0o600


def _write_all(fd: int, data: bytes) -> None:
    # os.write may write less than asked (e.g. signals, nearly full disk); never leave half a line.
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EventSpool:
    """Durable FIFO of audit events keyed by their ``uid``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._dir = os.path.dirname(os.path.abspath(path))
        os.makedirs(self._dir, mode=0o700, exist_ok=True)
        self._lock = threading.Lock()
        self._events: dict[str, dict[str, Any]] = {}  # insertion-ordered: delivery order
        self._fd = -1
        self._needs_newline = False
        self._recover()

    def _recover(self) -> None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            data = b""
        good = data.rfind(b"\n") + 1
        if good < len(data):
            log.warning(
                "event spool %s: dropping a torn last line of %d bytes (crash during a write)",
                self.path,
                len(data) - good,
            )
        for lineno, raw in enumerate(data[:good].splitlines(), 1):
            try:
                ev = json.loads(raw)
            except ValueError:
                log.warning("event spool %s line %d is not JSON; skipped", self.path, lineno)
                continue
            if isinstance(ev, dict) and isinstance(ev.get("uid"), str):
                self._events.setdefault(ev["uid"], ev)
        self._fd = os.open(
            self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE
        )
        if good < len(data):
            os.ftruncate(self._fd, good)
            os.fsync(self._fd)

    def put(self, event: dict[str, Any]) -> None:
        """Queue one event durably (written and fsynced before this returns)."""
        uid = event.get("uid")
        if not isinstance(uid, str) or not uid:
            raise BadParameter("a spooled event needs a string 'uid' (build it with make_event)")
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            self._check_open()
            if uid in self._events:
                return
            if self._needs_newline:
                line = b"\n" + line
            before = os.fstat(self._fd).st_size
            try:
                _write_all(self._fd, line)
                os.fsync(self._fd)
            except OSError:
                # A full disk or an I/O error: cut the partial line off, so that the next put does
                # not land on it (the two would become one unreadable line and both be lost).
                self._cut_back(before)
                raise
            self._needs_newline = False
            self._events[uid] = event

    def _cut_back(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError as exc:
            # Cannot repair it now; start every later line on a fresh one instead (a fragment
            # line is skipped when the spool is read back).
            log.error("event spool %s: cannot cut a failed write back (%s)", self.path, exc)
            self._needs_newline = True

    def pending(self) -> list[dict[str, Any]]:
        """Queued events in the order they were put."""
        with self._lock:
            return list(self._events.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)

    def ack(self, uids: Iterable[str]) -> int:
        """Remove delivered events; return how many were removed. Unknown uids are ignored."""
        with self._lock:
            self._check_open()
            gone = [u for u in set(uids) if u in self._events]
            if not gone:
                return 0
            for u in gone:
                del self._events[u]
            tmp = self.path + ".tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
            try:
                body = b"".join(
                    (json.dumps(ev, separators=(",", ":")) + "\n").encode("utf-8")
                    for ev in self._events.values()
                )
                _write_all(fd, body)
                os.fsync(fd)
            except OSError:
                # The spool file is untouched: the delivered events stay in it and are sent
                # again after a restart (auth drops the duplicates). Leave no half temp file.
                os.close(fd)
                os.unlink(tmp)
                raise
            os.close(fd)
            os.replace(tmp, self.path)
            _fsync_dir(self._dir)
            # Our descriptor points at the replaced file; appends must go to the new one.
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            return len(gone)

    def close(self) -> None:
        """Close the spool file (everything is already on disk)."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _check_open(self) -> None:
        if self._fd < 0:
            raise BadParameter(f"event spool {self.path} is closed")

    def __enter__(self) -> EventSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
