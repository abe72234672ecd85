"""Session recording on the node and its upload to the auth service.

While an interactive session runs, its output goes to ``<upload_dir>/<sid>.cast.gz`` (asciicast v2,
gzip, flushed about once a second) next to ``<sid>.json``, a small record of who/where/when that
lets a restarted node finish the job after a crash: emit the missing ``session.end`` and upload the
part recorded so far. A finished recording is uploaded with ``auth.upload_recording``, deleted
locally, and a ``session.upload`` event is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from teleport.errors import AlreadyExists, BadParameter
from teleport.events.schema import SESSION_END, SESSION_UPLOAD, format_time
from teleport.node.audit import AuditEmitter
from teleport.recording.asciicast import CastWriter

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 1.0
RETRY_INTERVAL = 10.0  # seconds between upload attempts of recordings left behind
UPLOAD_FLUSH_TIMEOUT = 5.0  # seconds an upload waits for pending events to reach auth first
REJECTED_SUFFIX = ".rejected"  # a recording auth refused for good (kept, never retried)
COMPRESS_LEVEL = 6

Uploader = Callable[[str, str], Awaitable[Any]]  # (sid, path) -> None, raises on failure


def upload_dir(data_dir: str) -> str:
    """Where a node keeps recordings not yet uploaded."""
    return os.path.join(data_dir, "log", "upload", "sessions")


def _write_json(path: str, data: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class SessionRecorder:
    """Records one session's output and resizes in a worker thread, so that compressing the
    recording overlaps with serving the session (zlib releases the GIL); flushed about once a
    second. The event loop only timestamps and queues the bytes."""

    HIGH_WATER = 32 * 1024 * 1024  # queued bytes at which the session should stop reading output
    LOW_WATER = 4 * 1024 * 1024

    def __init__(
        self, directory: str, sid: str, width: int, height: int, meta: dict[str, Any],
        env: dict[str, str] | None = None, on_backlog: Callable[[bool], None] | None = None,
    ) -> None:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.sid = sid
        self.path = os.path.join(directory, f"{sid}.cast.gz")
        self.meta_path = os.path.join(directory, f"{sid}.json")
        self.meta = {**meta, "sid": sid, "ended": False}
        _write_json(self.meta_path, self.meta)
        self.writer = CastWriter(
            self.path, max(width, 1), max(height, 1), env=env,
            flush_interval=FLUSH_INTERVAL, compresslevel=COMPRESS_LEVEL,
        )
        self._start = time.monotonic()
        self._cond = threading.Condition()
        self._queue: list[tuple[str, float, Any]] = []
        self._queued = 0
        self._closing = False
        self.backlogged = False
        self._on_backlog = on_backlog
        self._loop = asyncio.get_running_loop()
        self._done: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._work, name=f"recorder-{sid[:8]}", daemon=True)
        self._thread.start()

    def _put(self, kind: str, value: Any, size: int = 0) -> None:
        with self._cond:
            if self._closing:
                return
            self._queue.append((kind, time.monotonic() - self._start, value))
            self._queued += size
            self._cond.notify()
            backlog = self._queued > self.HIGH_WATER
        if backlog and not self.backlogged:
            self.backlogged = True
            if self._on_backlog is not None:
                self._on_backlog(True)

    def output(self, data: bytes) -> None:
        """Record bytes the session printed (timestamped now, written by the worker)."""
        self._put("o", data, len(data))

    def resize(self, cols: int, rows: int) -> None:
        """Record a window size change."""
        if cols > 0 and rows > 0:
            self._put("r", (cols, rows))

    def update_meta(self, **fields: Any) -> None:
        """Persist more about the session (e.g. participants) for crash recovery."""
        self.meta.update(fields)
        _write_json(self.meta_path, self.meta)

    def _drained(self) -> None:  # in the loop thread
        if self.backlogged:
            self.backlogged = False
            if self._on_backlog is not None:
                self._on_backlog(False)

    def _work(self) -> None:
        w = self.writer
        dirty = False
        last_flush = time.monotonic()
        while True:
            with self._cond:
                if not self._queue and not self._closing:
                    self._cond.wait(FLUSH_INTERVAL)
                items, self._queue = self._queue, []
                closing = self._closing
                size, self._queued = self._queued, 0
                low = self.backlogged
            try:
                # Consecutive output chunks become one call: fewer Python-level steps under the GIL.
                out: list[bytes] = []
                out_t = 0.0
                for kind, t, value in items:
                    if kind == "o":
                        if not out:
                            out_t = t
                        out.append(value)
                        continue
                    if out:
                        w.output(b"".join(out), out_t)
                        out = []
                    w.resize(value[0], value[1], t)
                if out:
                    w.output(b"".join(out), out_t)
                dirty = dirty or bool(items)
                now = time.monotonic()
                if closing:
                    w.close()
                    break
                if dirty and now - last_flush >= FLUSH_INTERVAL:
                    w.flush()
                    dirty, last_flush = False, now
            except (OSError, ValueError) as exc:
                log.error("recording of session %s failed, the rest is not recorded: %s", self.sid, exc)
                with self._cond:
                    self._closing = True
                    self._queue = []
                break
            if low and size < self.LOW_WATER:
                self._loop.call_soon_threadsafe(self._drained)
        self._loop.call_soon_threadsafe(self._finished)

    def _finished(self) -> None:
        if self.backlogged:
            self._drained()
        if self._done is not None:
            self._done()

    def close(self, done: Callable[[], None] | None = None, ended: bool = True) -> None:
        """Finish the file in the worker, mark the session ended (``ended``: its session.end is
        logged), then call ``done`` on the event loop (e.g. to upload)."""
        if ended:
            self.update_meta(ended=True)
        self._done = done
        with self._cond:
            self._closing = True
            self._cond.notify()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the worker to finish (tests, shutdown)."""
        self._thread.join(timeout)


class RecordingUploader:
    """Uploads finished recordings and, at start, recovers those a crashed node left behind."""

    def __init__(self, directory: str, upload: Uploader, emitter: AuditEmitter | None) -> None:
        self.dir = directory
        os.makedirs(directory, mode=0o700, exist_ok=True)
        self.upload_fn = upload
        self.emitter = emitter
        self.active: set[str] = set()  # sessions still recording: never touched by the scan
        self._busy: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    def pending(self) -> list[str]:
        """Session ids with a recording on disk that is not being written."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.endswith(".cast.gz"):
                sid = name[: -len(".cast.gz")]
                if sid not in self.active:
                    out.append(sid)
        return out

    def recover(self) -> list[str]:
        """For recordings of sessions that never ended (the node died), log the session.end;
        returns their ids. Call once at start, before any new session."""
        recovered = []
        for sid in self.pending():
            meta_path = os.path.join(self.dir, f"{sid}.json")
            try:
                with open(meta_path) as f:
                    meta = json.load(f)
            except (OSError, ValueError):
                meta = {"sid": sid, "ended": True}  # nothing to log from; just upload it
            if not meta.get("ended"):
                stop = os.path.getmtime(os.path.join(self.dir, f"{sid}.cast.gz"))
                if self.emitter is not None:
                    fields = dict(meta.get("fields") or {})
                    self.emitter.emit(
                        SESSION_END, **fields, sid=sid, participants=meta.get("participants") or [],
                        interactive=True, session_start=meta.get("session_start") or format_time(stop),
                        session_stop=format_time(stop),
                    )
                meta["ended"] = True
                _write_json(meta_path, meta)
                log.warning("session %s was cut off by a node restart; uploading what was recorded", sid)
                recovered.append(sid)
        return recovered

    async def upload(self, sid: str) -> bool:
        """Upload one finished recording; on success delete it locally and log session.upload."""
        if sid in self._busy or sid in self.active:
            return False
        path = os.path.join(self.dir, f"{sid}.cast.gz")
        meta_path = os.path.join(self.dir, f"{sid}.json")
        try:
            with open(meta_path) as f:
                if not json.load(f).get("ended", True):
                    return False  # its session.end is not logged yet: recover() does that first
        except (OSError, ValueError):
            pass
        self._busy.add(sid)
        try:
            if self.emitter is not None and self.emitter.running and len(self.emitter.spool):
                # Auth learns that this node owns the session from its session.start event:
                # give the shipper a moment to deliver it before the upload asks.
                await self.emitter.flush(UPLOAD_FLUSH_TIMEOUT)
            await self.upload_fn(sid, path)
        except AlreadyExists:
            # An earlier attempt was stored but its answer lost: it is uploaded.
            log.info("the recording of session %s was already stored by auth", sid)
        except BadParameter as exc:
            # Final (too large for auth_service.max_recording_size, or refused as invalid):
            # keep the file for an admin, out of the retry loop.
            rejected = path + REJECTED_SUFFIX
            os.replace(path, rejected)
            log.error("the auth service refused the recording of session %s (%s); it is kept "
                      "at %s", sid, exc, rejected)
            return False
        except Exception as exc:
            log.warning("cannot upload the recording of session %s yet, will retry: %s", sid, exc)
            return False
        finally:
            self._busy.discard(sid)
        fields: dict[str, Any] = {}
        try:
            with open(meta_path) as f:
                fields = dict(json.load(f).get("fields") or {})
        except (OSError, ValueError):
            pass
        for p in (path, meta_path):
            try:
                os.remove(p)
            except FileNotFoundError:
                pass
        if self.emitter is not None:
            fields.pop("sid", None)
            self.emitter.emit(SESSION_UPLOAD, **fields, sid=sid)
        log.info("uploaded the recording of session %s", sid)
        return True

    async def upload_all(self) -> int:
        """Try every recording left on disk; returns how many were uploaded."""
        n = 0
        for sid in self.pending():
            n += int(await self.upload(sid))
        return n

    def start(self) -> None:
        """Recover crashed sessions, then keep retrying uploads in the background."""
        self.recover()
        if self._task is None:
            self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await self.upload_all()
            await asyncio.sleep(RETRY_INTERVAL)

    async def close(self) -> None:
        """Stop retrying (what is left is uploaded at the next start)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

