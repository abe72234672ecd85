"""The auth server's audit log: JSON lines, one file per UTC day, `<dir>/<YYYY-MM-DD>.00:00:00.log`.

Durability policy: every append is whole lines or nothing. The lines of one call go to the file
descriptor in one piece (no user-space buffer) and are fsynced before the call returns; only then
are their uids recorded as stored. A write or fsync that fails (a full disk, an I/O error) is cut
back to where the file ended before it, so the next event never lands on a fragment and a
redelivery of the failed event is stored, not dropped as a duplicate. A fragment left by a crash
(or by a failure the cut-back could not repair) is moved aside to ``<day file>.torn`` and cut off
when the log is opened, with a warning in the log.

An event goes to the file of the day in its own ``time`` field (not the arrival time): an event a
node delivers late lands where a time-window search looks for it, and the same event delivered twice
maps to the same file, which is what makes de-duplication by ``uid`` exact. Each day file's uids are
indexed in memory when the file is first appended to (today's and yesterday's at open), so
de-duplication survives restarts. Only the ``max_indexed_days`` most recently used day indexes are
kept in memory.

Thread safety: every public method holds one lock and never awaits, so it may be called from the
event loop or from executor threads.

Several auth servers may share the log directory (the reference's HA setup puts data_dir/log on a
network file system): every append holds an exclusive ``flock`` on its day file while it reads
what the others appended since it last looked (their uids join the index), checks the tail, and
writes. De-duplication by uid is then exact across processes, and no writer ever lands on another's
fragment.
"""

from __future__ import annotations

import fcntl
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
from teleport.events.auditlog import AuditLog
from teleport.events.schema import parse_time, validate_event

log = logging.getLogger(__name__)

_DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.00:00:00\.log$")
FILE_MODE = 0o640


TORN_SUFFIX = ".torn"


def _write_all(fd: int, data: bytes) -> None:
    # os.write may write less than asked (e.g. signals, nearly full disk): loop until all is out.
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def repair_torn_tail(path: str, locked_fd: int | None = None) -> int:
    """Cut a day file back to its last complete line; return how many bytes were cut.

    The fragment is appended to ``<path>.torn`` (kept for an investigator, never read back as
    events); when even that cannot be written (the disk is full) it is dropped, and the warning
    says so. A fragment is never an event anyone was told is stored: its append did not return.
    With ``locked_fd`` (read-write, its flock held by the caller) that descriptor is used; without
    it the file is opened and flocked here.
    """
    if locked_fd is not None:
        return _repair_fd(path, locked_fd)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except (FileNotFoundError, IsADirectoryError):
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another auth server may be appending to it
        return _repair_fd(path, fd)
    finally:
        os.close(fd)


def _repair_fd(path: str, fd: int) -> int:
    size = os.fstat(fd).st_size
    if size == 0:
        return 0
    # Find the last newline, reading backwards in blocks (a fragment is at most one line).
    end = size
    good = 0
    block = 64 * 1024
    while end > 0:
        start = max(0, end - block)
        chunk = os.pread(fd, end - start, start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            good = start + i + 1
            break
        end = start
    if good == size:
        return 0
    fragment = os.pread(fd, size - good, good)
    kept = ""
    try:
        tfd = os.open(path + TORN_SUFFIX, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                      FILE_MODE)
        try:
            _write_all(tfd, fragment + b"\n")
            os.fsync(tfd)
        finally:
            os.close(tfd)
        kept = f"; moved to {path + TORN_SUFFIX}"
    except OSError as exc:
        kept = f"; could not keep it in {path + TORN_SUFFIX} ({exc.strerror or exc}), dropped"
    os.ftruncate(fd, good)
    os.fsync(fd)
    log.warning(
        "audit log %s ended with an incomplete line of %d bytes (a crash or a full disk during "
        "a write); cut back to the last complete line%s", path, size - good, kept,
    )
    return size - good


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


def _scan_uids(fd: int, start: int) -> tuple[set[str], int]:
    """The uids of the complete lines from byte ``start`` on, and the offset just past them."""
    uids: set[str] = set()
    offset = start
    pending = b""
    while True:
        chunk = os.pread(fd, 1 << 20, offset + len(pending))
        if not chunk:
            break
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        for raw in data[:cut].splitlines():
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            if isinstance(ev, dict) and isinstance(ev.get("uid"), str):
                uids.add(ev["uid"])
        offset += cut
        pending = data[cut:]
    return uids, offset


class FileAuditLog(AuditLog):
    """Append-only JSON-lines audit log with de-duplication by event uid and time-window search."""

    def __init__(self, log_dir: str, *, max_indexed_days: int = 4) -> None:
        self.log_dir = log_dir
        self.max_indexed_days = max(2, max_indexed_days)
        os.makedirs(log_dir, mode=DIR_MODE, exist_ok=True)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._fd_name: str | None = None
        # day file name -> uids stored in it; most recently used last; and how far into the
        # file they were read (what another auth server appended after that is read on append)
        self._uids: OrderedDict[str, set[str]] = OrderedDict()
        self._offsets: dict[str, int] = {}
        now = time.time()
        with self._lock:
            # Only the last line of a file can be torn (appends are the only writes).
            for name in self.day_files():
                try:
                    repair_torn_tail(os.path.join(log_dir, name))
                except OSError as exc:  # tried again (and reported) when the file is appended to
                    log.warning("cannot check the end of audit log %s: %s", name, exc)
            for ts in (now - 86400, now):
                self._index(day_file_name(ts))

    # -- writing -------------------------------------------------------------------------------

    def append(self, event: dict[str, Any]) -> bool:
        """Validate and durably store one event; False (nothing stored) if its uid is already in.

        Raises OSError when the event could not be written whole (e.g. the disk is full); then
        nothing of it is in the file and a later redelivery is stored."""
        return self.append_many([event])[0]

    def append_many(self, events: list[dict[str, Any]]) -> list[bool]:
        """Validate every event, then store those not stored before; one write and one fsync per
        day file. Returns, per event, whether it was stored now (False: a redelivery).

        Nothing is written if any event is invalid (BadParameter). A failed write leaves the day
        file as it was before that write and raises OSError; the events of day files written
        before the failure stay stored (and report so on redelivery)."""
        checked = [validate_event(e) for e in events]
        by_day: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for i, ev in enumerate(checked):
            by_day.setdefault(day_file_name(parse_time(ev["time"])), []).append((i, ev))
        stored = [False] * len(checked)
        with self._lock:
            for name, items in by_day.items():
                fd = self._open(name)
                fcntl.flock(fd, fcntl.LOCK_EX)  # other auth servers sharing the directory
                try:
                    uids = self._catch_up(name, fd)
                    fresh: dict[str, tuple[int, bytes]] = {}
                    for i, ev in items:
                        if ev["uid"] not in uids and ev["uid"] not in fresh:
                            line = (json.dumps(ev, separators=(",", ":")) + "\n").encode("utf-8")
                            fresh[ev["uid"]] = (i, line)
                    if not fresh:
                        continue
                    self._write_locked(name, b"".join(line for _, line in fresh.values()))
                    self._offsets[name] = os.fstat(fd).st_size
                    # Marked only now that the lines are on disk: a failed write marks nothing.
                    for uid, (i, _) in fresh.items():
                        uids.add(uid)
                        stored[i] = True
                finally:
                    if self._fd == fd:  # a failed write closed it, which released the lock
                        fcntl.flock(fd, fcntl.LOCK_UN)
        return stored

    def _catch_up(self, name: str, fd: int) -> set[str]:
        """Under the day file's flock: cut a fragment another writer's crash left, and add the
        uids appended by others since this process last read the file."""
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            repair_torn_tail(os.path.join(self.log_dir, name), locked_fd=fd)
            size = os.fstat(fd).st_size
        uids = self._index(name)
        offset = self._offsets.get(name, 0)
        if size < offset:  # the file was replaced or cut: read it again
            uids.clear()
            offset = 0
        if size > offset:
            more, self._offsets[name] = _scan_uids(fd, offset)
            uids |= more
        return uids

    def _write_locked(self, name: str, data: bytes) -> None:
        fd = self._open(name)
        before = os.fstat(fd).st_size  # O_APPEND and one writer (this lock): data goes here
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, before)
                os.fsync(fd)
                log.error("cannot write %d bytes to the audit log %s: %s; nothing of them is "
                          "kept", len(data), self._fd_name, exc.strerror or exc)
            except OSError:
                log.error("cannot write to the audit log %s (%s) nor cut the partial write "
                          "back; it is repaired when the file is next opened",
                          self._fd_name, exc.strerror or exc)
            # Reopen on the next append: that re-checks (and repairs) the file's tail.
            self._close_locked(sync=False)
            raise

    def sync(self) -> None:
        """fsync the open day file now (appends already do; kept for callers that batch)."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)

    def close(self) -> None:
        """Close the open day file; the log may be appended to again afterwards."""
        with self._lock:
            self._close_locked()

    def __enter__(self) -> FileAuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _close_locked(self, sync: bool = True) -> None:
        if self._fd is not None:
            try:
                if sync:
                    os.fsync(self._fd)
            finally:
                os.close(self._fd)
        self._fd = None
        self._fd_name = None

    def _open(self, name: str) -> int:
        if self._fd_name == name and self._fd is not None:
            return self._fd
        # Rotation (or a late event for another day): the previous file is closed.
        self._close_locked()
        path = os.path.join(self.log_dir, name)
        # Read-write: a torn tail (a crash, or a failed write we could not cut back) is checked
        # and cut under the flock before every append (_catch_up).
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o777 != FILE_MODE:
                os.fchmod(fd, FILE_MODE)  # the umask may have taken bits away
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._fd_name = fd, name
        return fd

    def _index(self, name: str) -> set[str]:
        uids = self._uids.get(name)
        if uids is None:
            path = os.path.join(self.log_dir, name)
            try:
                rfd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                uids, offset = set(), 0
            else:
                try:
                    uids, offset = _scan_uids(rfd, 0)
                finally:
                    os.close(rfd)
            self._uids[name] = uids
            self._offsets[name] = offset
            while len(self._uids) > self.max_indexed_days:
                old, _ = self._uids.popitem(last=False)
                self._offsets.pop(old, None)
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

    def describe(self) -> str:
        return f"the audit log under {self.log_dir}"

