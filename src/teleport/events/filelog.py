"""The auth server's audit log: JSON lines, one file per UTC day, `<dir>/<YYYY-MM-DD>.00:00:00.log`.

Durability policy: every line goes straight to the file descriptor (no user-space buffer), so a
crash of this process loses nothing already appended. ``fsync`` happens when a day file is closed
(rotation, ``close()``) and at most every ``fsync_interval`` seconds while appending (1 s default;
0 means after every line), so a power failure loses at most about that much.

An event goes to the file of the day in its own ``time`` field (not the arrival time): an event a
node delivers late lands where a time-window search looks for it, and the same event delivered twice
maps to the same file, which is what makes de-duplication by ``uid`` exact. Each day file's uids are
indexed in memory when the file is first appended to (today's and yesterday's at open), so
de-duplication survives restarts. Only the ``max_indexed_days`` most recently used day indexes are
kept in memory.

Thread safety: every public method holds one lock and never awaits, so it may be called from the
event loop or from executor threads.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from teleport.errors import BadParameter
from teleport.events.schema import parse_time, validate_event

log = logging.getLogger(__name__)

_DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.00:00:00\.log$")
FILE_MODE = 0o640


def _write_all(fd: int, data: bytes) -> None:
    # os.write may write less than asked (e.g. signals, nearly full disk); never leave half a line.
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
DIR_MODE = 0o750


def day_file_name(ts: float) -> str:
    """The day file name holding events of Unix time ``ts`` (UTC day)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d") + ".00:00:00.log"


def _day_start(day: str) -> float:
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()


def _read_lines(path: str) -> Iterator[dict[str, Any]]:
    """Parse a day file's events, skipping lines that are torn or not JSON objects."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        for lineno, raw in enumerate(f, 1):
            if not raw.endswith(b"\n"):
                # Torn last line of a crashed writer: the append never completed.
                continue
            try:
                ev = json.loads(raw)
            except ValueError:
                log.warning("audit log %s line %d is not JSON; skipped", path, lineno)
                continue
            if isinstance(ev, dict):
                yield ev


class FileAuditLog:
    """Append-only JSON-lines audit log with de-duplication by event uid and time-window search."""

    def __init__(
        self, log_dir: str, *, fsync_interval: float = 1.0, max_indexed_days: int = 4
    ) -> None:
        self.log_dir = log_dir
        self.fsync_interval = fsync_interval
        self.max_indexed_days = max(2, max_indexed_days)
        os.makedirs(log_dir, mode=DIR_MODE, exist_ok=True)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._fd_name: str | None = None
        self._last_sync = time.monotonic()
        self._dirty = False
        # day file name -> uids stored in it; most recently used last.
        self._uids: OrderedDict[str, set[str]] = OrderedDict()
        now = time.time()
        with self._lock:
            for ts in (now - 86400, now):
                self._index(day_file_name(ts))

    # -- writing -------------------------------------------------------------------------------

    def append(self, event: dict[str, Any]) -> bool:
        """Validate and store one event; return False (and store nothing) if its uid is already in."""
        ev = validate_event(event)
        name = day_file_name(parse_time(ev["time"]))
        line = (json.dumps(ev, separators=(",", ":")) + "\n").encode("utf-8")
        with self._lock:
            uids = self._index(name)
            if ev["uid"] in uids:
                return False
            fd = self._open(name)
            _write_all(fd, line)
            uids.add(ev["uid"])
            self._dirty = True
            if time.monotonic() - self._last_sync >= self.fsync_interval:
                self._sync_locked()
        return True

    def sync(self) -> None:
        """fsync the open day file now."""
        with self._lock:
            self._sync_locked()

    def close(self) -> None:
        """fsync and close the open day file; the log may be appended to again afterwards."""
        with self._lock:
            self._close_locked()

    def __enter__(self) -> FileAuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sync_locked(self) -> None:
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
        self._dirty = False
        self._last_sync = time.monotonic()

    def _close_locked(self) -> None:
        if self._fd is not None:
            self._sync_locked()
            os.close(self._fd)
        self._fd = None
        self._fd_name = None

    def _open(self, name: str) -> int:
        if self._fd_name == name and self._fd is not None:
            return self._fd
        # Rotation (or a late event for another day): the previous file is synced and closed.
        self._close_locked()
        path = os.path.join(self.log_dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o777 != FILE_MODE:
                os.fchmod(fd, FILE_MODE)  # the umask may have taken bits away
            if st.st_size > 0:
                # A crash may have left a torn last line; start ours on a fresh line.
                with open(path, "rb") as f:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        os.write(fd, b"\n")
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._fd_name = fd, name
        return fd

    def _index(self, name: str) -> set[str]:
        uids = self._uids.get(name)
        if uids is None:
            path = os.path.join(self.log_dir, name)
            uids = {ev["uid"] for ev in _read_lines(path) if isinstance(ev.get("uid"), str)}
            self._uids[name] = uids
            while len(self._uids) > self.max_indexed_days:
                self._uids.popitem(last=False)
        else:
            self._uids.move_to_end(name)
        return uids

    # -- reading -------------------------------------------------------------------------------

    def day_files(self) -> list[str]:
        """Names of the day files present, oldest first."""
        try:
            names = os.listdir(self.log_dir)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if _DAY_FILE.match(n))

    def search(
        self,
        since: float | None = None,
        until: float | None = None,
        event_types: list[str] | None = None,
        user: str | None = None,
        sid: str | None = None,
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        """Events with since <= time < until matching every given filter, oldest first.

        ``limit`` > 0 returns at most that many (the oldest). Day files wholly outside the window
        are not opened.
        """
        if since is not None and until is not None and until < since:
            raise BadParameter(f"search window ends ({until}) before it starts ({since})")
        if limit < 0:
            raise BadParameter(f"search limit must be 0 (no limit) or positive, got {limit}")
        types = set(event_types) if event_types else None
        found: list[tuple[float, int, dict[str, Any]]] = []
        seq = 0
        with self._lock:
            files = self.day_files()
            for name in files:
                m = _DAY_FILE.match(name)
                assert m is not None
                start = _day_start(m.group(1))
                end = start + 86400
                if since is not None and end <= since:
                    continue
                if until is not None and start >= until:
                    continue
                day: list[tuple[float, int, dict[str, Any]]] = []
                for ev in _read_lines(os.path.join(self.log_dir, name)):
                    if types is not None and ev.get("event") not in types:
                        continue
                    if user is not None and ev.get("user") != user:
                        continue
                    if sid is not None and ev.get("sid") != sid:
                        continue
                    try:
                        t = parse_time(ev.get("time", ""))
                    except BadParameter:
                        continue
                    if since is not None and t < since:
                        continue
                    if until is not None and t >= until:
                        continue
                    day.append((t, seq, ev))
                    seq += 1
                # Late deliveries are appended out of order; files are in day order already.
                day.sort(key=lambda x: (x[0], x[1]))
                found.extend(day)
                if limit and len(found) >= limit:
                    break
        out = [ev for _, _, ev in found]
        return out[:limit] if limit else out

    def session_events(self, sid: str) -> list[dict[str, Any]]:
        """Every event of one session, oldest first."""
        if not sid:
            raise BadParameter("session_events needs a session id")
        return self.search(sid=sid)

