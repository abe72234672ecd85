"""The embedded default backend: one SQLite file in WAL mode, used by a single process.

SQLite is called directly on the event-loop thread: every statement touches a few pages of a
local file (a get is ~10 microseconds), far cheaper than a hop to a worker thread, and running
each operation without an ``await`` in the middle makes it atomic with respect to every other
coroutine of the process. Watchers are in-process queues fed after each commit; a sweeper task
deletes expired rows when they fall due and tells the watchers.

Create it with ``SQLiteBackend(path)`` (synchronous; the sweeper starts on first use inside the
event loop) or ``await SQLiteBackend.open(path)`` (starts the sweeper at once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator

from teleport.backend._watch import QueueWatcher, matches, prefix_end
from teleport.backend.base import Backend, Event, EventType, Item, Watcher
from teleport.defaults import SECRET_FILE_MODE
from teleport.errors import AlreadyExists, BadParameter, CompareFailed, ConnectionProblem, NotFound

log = logging.getLogger(__name__)

# Upper bound on how long the sweeper sleeps when nothing is due, so clock jumps are harmless.
SWEEP_MAX_INTERVAL = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires REAL,
    revision INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS kv_expires ON kv(expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS meta (id INTEGER PRIMARY KEY CHECK (id = 1), revision INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (id, revision) VALUES (1, 0);
"""

_LIVE = "(expires IS NULL OR expires > ?)"


def damaged_message(path: str, exc: BaseException) -> str:
    """The one message for a SQLite file that is not a sound database (damaged pages, not SQLite)."""
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return (
        f"the SQLite backend {path} is damaged ({detail}): stop teleport and copy a backup of "
        f"{os.path.basename(path)} to {path}, or, to start a new cluster instead, move its data "
        "directory aside, start again and re-join every node and proxy with a new token"
    )


class SQLiteBackend(Backend):
    """Key-value storage in a SQLite file; see the module docstring for the threading model."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn, self._revision = self._connect(path)
        self._watchers: set[QueueWatcher] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._closed = False

    @classmethod
    async def open(cls, path: str) -> SQLiteBackend:
        """Open (creating if needed) the database at path and start its expiry sweeper."""
        backend = cls(path)
        backend._ensure_sweeper()
        return backend

    @staticmethod
    def _connect(path: str) -> tuple[sqlite3.Connection, int]:
        """Open the file, create the schema, check it is sound; returns (connection, revision)."""
        conn: sqlite3.Connection | None = None
        try:
            # Create the file ourselves so it is never world-readable, not even for an instant;
            # SQLite gives the -wal and -shm files the same mode as the database.
            fd = os.open(path, os.O_RDWR | os.O_CREAT, SECRET_FILE_MODE)
            os.close(fd)
            os.chmod(path, SECRET_FILE_MODE)
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(_SCHEMA)
            # Page damage is otherwise found only when a damaged page is read, at any later
            # moment; a quick check (structure, not contents) finds it here, once, at start.
            problems = [r[0] for r in conn.execute("PRAGMA quick_check(1)").fetchall()]
            if problems != ["ok"]:
                first = " ".join(str(problems[0]).replace("*** in database main ***", "").split())
                raise sqlite3.DatabaseError(f"database disk image is malformed: {first}")
            row = conn.execute("SELECT revision FROM meta WHERE id = 1").fetchone()
            return conn, int(row[0])
        except (OSError, sqlite3.Error) as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
                raise ConnectionProblem(damaged_message(path, exc)) from None
            raise ConnectionProblem(
                f"cannot open the SQLite backend at {path}: {exc}; check that the directory "
                "exists and is writable by this user and that the file is a teleport database"
            ) from exc

    # -- helpers -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionProblem(f"the SQLite backend at {self.path} is closed")
        self._ensure_sweeper()

    def _ensure_sweeper(self) -> None:
        if self._sweeper is None and not self._closed:
            self._wakeup = asyncio.Event()
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_loop(), name=f"sqlite-sweeper:{self.path}"
            )

    @contextlib.contextmanager
    def _write(self) -> Iterator[int]:
        """A write transaction that yields the revision its changes carry."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            revision = self._revision + 1
            yield revision
            conn.execute("UPDATE meta SET revision = ? WHERE id = 1", (revision,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._revision = revision

    def _emit(self, event: Event) -> None:
        for watcher in list(self._watchers):
            if matches(event.item.key, watcher.prefixes):
                watcher.push(event)

    def _stored(self, item: Item, revision: int) -> Item:
        stored = Item(item.key, bytes(item.value), item.expires, revision)
        if self._watchers:
            self._emit(Event(EventType.PUT, stored))
        if item.expires is not None and self._wakeup is not None:
            self._wakeup.set()  # the sweeper may need to wake earlier than planned
        return stored

    @staticmethod
    def _validate(item: Item) -> None:
        if not item.key:
            raise BadParameter("backend key must not be empty")

    # -- Backend -----------------------------------------------------------------------------

    async def get(self, key: str) -> Item:
        """Return the live item at key; raise NotFound when absent or expired."""
        self._check_open()
        row = self._conn.execute(
            f"SELECT value, expires, revision FROM kv WHERE key = ? AND {_LIVE}",
            (key, time.time()),
        ).fetchone()
        if row is None:
            raise NotFound(f"key {key!r} is not found")
        return Item(key, row[0], row[1], row[2])

    async def put(self, item: Item) -> Item:
        """Create or overwrite the item."""
        self._check_open()
        self._validate(item)
        with self._write() as rev:
            self._conn.execute(
                "INSERT OR REPLACE INTO kv (key, value, expires, revision) VALUES (?, ?, ?, ?)",
                (item.key, item.value, item.expires, rev),
            )
        return self._stored(item, rev)

    async def create(self, item: Item) -> Item:
        """Insert the item unless a live one exists (raise AlreadyExists)."""
        self._check_open()
        self._validate(item)
        with self._write() as rev:
            # One statement: insert, or take over a row that has expired but not been swept.
            cur = self._conn.execute(
                "INSERT INTO kv (key, value, expires, revision) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                "expires = excluded.expires, revision = excluded.revision "
                "WHERE kv.expires IS NOT NULL AND kv.expires <= ?",
                (item.key, item.value, item.expires, rev, time.time()),
            )
            if cur.rowcount != 1:
                raise AlreadyExists(f"key {item.key!r} already exists")
        return self._stored(item, rev)

    async def update(self, item: Item) -> Item:
        """Overwrite a live item; raise NotFound when there is none."""
        self._check_open()
        self._validate(item)
        with self._write() as rev:
            cur = self._conn.execute(
                f"UPDATE kv SET value = ?, expires = ?, revision = ? WHERE key = ? AND {_LIVE}",
                (item.value, item.expires, rev, item.key, time.time()),
            )
            if cur.rowcount != 1:
                raise NotFound(f"key {item.key!r} is not found")
        return self._stored(item, rev)

    async def compare_and_swap(self, expected: Item, replace_with: Item) -> Item:
        """Replace the item only if its current value equals expected.value."""
        self._check_open()
        self._validate(replace_with)
        if expected.key != replace_with.key:
            raise BadParameter(
                f"compare_and_swap keys differ: {expected.key!r} and {replace_with.key!r}"
            )
        with self._write() as rev:
            now = time.time()
            cur = self._conn.execute(
                f"UPDATE kv SET value = ?, expires = ?, revision = ? "
                f"WHERE key = ? AND value = ? AND {_LIVE}",
                (replace_with.value, replace_with.expires, rev, expected.key, expected.value, now),
            )
            if cur.rowcount != 1:
                exists = self._conn.execute(
                    f"SELECT 1 FROM kv WHERE key = ? AND {_LIVE}", (expected.key, now)
                ).fetchone()
                if exists is None:
                    raise NotFound(f"key {expected.key!r} is not found")
                raise CompareFailed(
                    f"key {expected.key!r} does not hold the expected value; re-read and retry"
                )
        return self._stored(replace_with, rev)

    async def delete(self, key: str) -> None:
        """Delete the live item at key; raise NotFound when there is none."""
        self._check_open()
        with self._write():
            cur = self._conn.execute(
                f"DELETE FROM kv WHERE key = ? AND {_LIVE}", (key, time.time())
            )
            if cur.rowcount != 1:
                raise NotFound(f"key {key!r} is not found")
        if self._watchers:
            self._emit(Event(EventType.DELETE, Item(key, b"", None, self._revision)))

    async def get_range(self, prefix: str, limit: int = 0) -> list[Item]:
        """Live items under prefix, sorted by key (BINARY collation = code-point order)."""
        self._check_open()
        sql = "SELECT key, value, expires, revision FROM kv WHERE key >= ?"
        args: list[object] = [prefix]
        end = prefix_end(prefix)
        if end is not None:
            sql += " AND key < ?"
            args.append(end)
        sql += f" AND {_LIVE} ORDER BY key"
        args.append(time.time())
        if limit > 0:
            sql += " LIMIT ?"
            args.append(limit)
        return [Item(k, v, e, r) for k, v, e, r in self._conn.execute(sql, args)]

    async def delete_range(self, prefix: str) -> None:
        """Delete every item under prefix (expired-but-unswept ones too)."""
        self._check_open()
        sql = "DELETE FROM kv WHERE key >= ?"
        args: list[object] = [prefix]
        end = prefix_end(prefix)
        if end is not None:
            sql += " AND key < ?"
            args.append(end)
        with self._write() as rev:
            keys = [row[0] for row in self._conn.execute(sql + " RETURNING key", args)]
        if self._watchers:
            for key in sorted(keys):
                self._emit(Event(EventType.DELETE, Item(key, b"", None, rev)))

    def watch(self, prefixes: list[str]) -> Watcher:
        """Events for changes under any of the prefixes from now on (in-process only)."""
        self._check_open()
        watcher = QueueWatcher(prefixes, on_close=self._watchers.discard)
        self._watchers.add(watcher)
        return watcher

    async def close(self) -> None:
        """Stop the sweeper, end every watcher and close the database."""
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()  # _closed also stops the loop should the cancel be lost
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for watcher in list(self._watchers):
            await watcher.close()
        self._conn.close()

    # -- expiry ------------------------------------------------------------------------------

    def sweep(self) -> int:
        """Delete every expired row now, emit DELETE events; return how many went."""
        now = time.time()
        with self._write() as rev:
            keys = [
                row[0]
                for row in self._conn.execute(
                    "DELETE FROM kv WHERE expires IS NOT NULL AND expires <= ? RETURNING key",
                    (now,),
                )
            ]
        for key in sorted(keys):
            self._emit(Event(EventType.DELETE, Item(key, b"", None, rev)))
        return len(keys)

    def _next_expiry(self) -> float | None:
        row = self._conn.execute("SELECT MIN(expires) FROM kv WHERE expires IS NOT NULL").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    async def _sweep_loop(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while not self._closed:
            try:
                due = self._next_expiry()
                now = time.time()
                if due is not None and due <= now:
                    self.sweep()
                    continue
                delay = SWEEP_MAX_INTERVAL if due is None else min(due - now, SWEEP_MAX_INTERVAL)
            except sqlite3.Error as exc:
                log.warning("SQLite backend %s: expiry sweep failed: %s", self.path, exc)
                delay = 1.0
            self._wakeup.clear()
            # A timer plus Event.wait rather than wait_for: on 3.11 wait_for can swallow a
            # cancellation that races with the event being set, which would stall close().
            timer = loop.call_later(delay, self._wakeup.set)
            try:
                await self._wakeup.wait()
            finally:
                timer.cancel()
