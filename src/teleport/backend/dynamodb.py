"""Cluster state in one DynamoDB table, shared by any number of auth servers.

Layout (one table, created when missing, with DynamoDB TTL on the ``TTL`` attribute):

- items: partition ``HashKey = "teleport"``, sort key ``FullPath`` = the backend key, with
  ``Value`` (binary), ``Revision`` (number), and, for items with an expiry, ``Expires`` (exact
  unix time) and ``TTL`` (whole seconds, for DynamoDB's own deletion).
- the revision counter: ``HashKey = "meta", FullPath = "revision"``.
- the change log: ``HashKey = "changes"``, sort key ``<revision:020d>.<n:04d>``, one entry per
  changed key (type, key, value, expiry), itself expiring after DYNAMODB_CHANGE_LOG_TTL.

Every write is one TransactWriteItems: the counter goes from the revision this client last saw
(r) to r + 1 under a condition (r must still be current), the item is written under its own
condition (absent-or-expired for create, live for update, live-and-equal for compare-and-swap),
and the change-log entries are written at revision r + 1. Two consequences: revisions are
gapless and totally ordered across every auth server, and a change-log entry exists exactly for
every committed change. When another server moved the counter first, the transaction is
cancelled on the counter's condition and retried at the new revision; when the item's condition
fails, the operation reports AlreadyExists, NotFound or CompareFailed. Writes of one process go
one at a time (an asyncio lock), so a process never races itself for the counter.

Watches poll the change log (DynamoDB Streams would also work on AWS, but a poll of our own log
works the same on AWS, moto and DynamoDB Local, and its gapless revisions tell us when a
watcher fell behind the log's retention). One poller per backend serves every watcher; it is
woken at once after this process's own writes.

Expiry: DynamoDB's TTL deletion is lazy (up to days late) and tells nobody, so reads filter
expired items exactly (as the original product does), and a sweeper deletes expired items
itself, through the same transactions, so that watchers see a DELETE: at once for items this
process wrote (it knows when they fall due), and by a periodic scan for items others wrote.

boto3 is synchronous: each operation runs in this backend's own thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from teleport import defaults
from teleport.backend._watch import QueueWatcher, matches
from teleport.backend.aws import AWSSettings, connection_problem, ensure_table, error_code
from teleport.backend.base import Backend, Event, EventType, Item, Watcher
from teleport.errors import (
    AlreadyExists,
    BadParameter,
    CompareFailed,
    ConnectionProblem,
    NotFound,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

HASH_ITEMS = "teleport"
HASH_META = "meta"
HASH_CHANGES = "changes"
COUNTER_KEY = "revision"
# DynamoDB's item limit is 400 KB; the value is written twice (item and change-log entry).
MAX_VALUE_SIZE = 350 * 1024
# A transaction holds at most 100 actions: the counter plus two per key.
_DELETE_BATCH = 40
_COUNTER_RETRIES = 200
_KEY_SCHEMA = [
    {"AttributeName": "HashKey", "KeyType": "HASH"},
    {"AttributeName": "FullPath", "KeyType": "RANGE"},
]
_LIVE = "(attribute_not_exists(Expires) OR Expires > :now)"


class _ItemCondition(Exception):
    """The item's own condition failed inside a transaction (not the counter's)."""


def _change_key(revision: int, n: int) -> str:
    return f"{revision:020d}.{n:04d}"


def _num(value: float | int) -> dict[str, str]:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


class DynamoDBBackend(Backend):
    """Backend on a DynamoDB table; see the module docstring for the design."""

    def __init__(
        self,
        settings: AWSSettings,
        table_name: str = defaults.DYNAMODB_TABLE,
        poll_interval: float = defaults.DYNAMODB_POLL_INTERVAL,
        sweep_scan_interval: float = defaults.DYNAMODB_SWEEP_SCAN_INTERVAL,
    ) -> None:
        self.settings = settings
        self.table = table_name
        self.poll_interval = poll_interval
        self.sweep_scan_interval = sweep_scan_interval
        self._client: Any = None
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="dynamodb")
        self._write_lock = asyncio.Lock()
        self._counter = 0  # the counter value this client believes current (guess for the next write)
        self._revision = 0  # highest revision known to be committed (watch start point)
        self._watchers: set[_DynamoWatcher] = set()
        self._cursor: str | None = None  # last change-log sort key the poller delivered
        self._poller: asyncio.Task[None] | None = None
        self._poll_wakeup = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None
        self._sweep_wakeup = asyncio.Event()
        self._due: list[tuple[float, str]] = []  # (expires, key) this process wrote
        self._closed = False

    # -- setup -------------------------------------------------------------------------------

    @classmethod
    async def open(cls, settings: AWSSettings, table_name: str = defaults.DYNAMODB_TABLE,
                   **kw: Any) -> DynamoDBBackend:
        """Connect, create the table when missing, read the revision, start the sweeper."""
        backend = cls(settings, table_name, **kw)
        try:
            await backend._run(backend._setup)
        except BaseException:
            await backend.close()
            raise
        backend._sweeper = asyncio.get_running_loop().create_task(
            backend._sweep_loop(), name=f"dynamodb-sweeper:{table_name}"
        )
        return backend

    def _setup(self) -> None:
        self._client = self.settings.client("dynamodb")
        ensure_table(
            self._client, self.table, _KEY_SCHEMA,
            [{"AttributeName": "HashKey", "AttributeType": "S"},
             {"AttributeName": "FullPath", "AttributeType": "S"}],
            what=f"the DynamoDB table {self.table!r} ({self.settings.where()})",
            key_hint=f"{self.settings.source}.table_name",
        )
        self._counter = self._revision = self._read_counter()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise ConnectionProblem(f"the DynamoDB backend (table {self.table!r}) is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    def _call(self, op: str, **kw: Any) -> Any:
        """One SDK call; SDK failures other than conditions become ConnectionProblem."""
        try:
            return getattr(self._client, op)(**kw)
        except Exception as exc:
            if error_code(exc) in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                raise
            if type(exc).__module__.startswith(("botocore", "boto3", "urllib3")):
                raise connection_problem(
                    f"DynamoDB {op} on table {self.table!r} ({self.settings.where()})", exc
                ) from None
            raise

    def _read_counter(self) -> int:
        got = self._call(
            "get_item", TableName=self.table, ConsistentRead=True,
            Key={"HashKey": {"S": HASH_META}, "FullPath": {"S": COUNTER_KEY}},
        )
        item = got.get("Item")
        return int(item["Revision"]["N"]) if item else 0

    # -- the one write path --------------------------------------------------------------------

    def _commit(self, ops: Callable[[int], list[dict[str, Any]]]) -> int:
        """Run ops(revision) in one transaction with the counter step and return the revision;
        raises _ItemCondition when an item's condition (not the counter's) failed."""
        for _attempt in range(_COUNTER_RETRIES):
            current = self._counter
            rev = current + 1
            counter: dict[str, Any] = {
                "TableName": self.table,
                "Key": {"HashKey": {"S": HASH_META}, "FullPath": {"S": COUNTER_KEY}},
                "UpdateExpression": "SET Revision = :next",
                "ExpressionAttributeValues": {":next": _num(rev)},
            }
            if current == 0:
                counter["ConditionExpression"] = "attribute_not_exists(Revision)"
            else:
                counter["ConditionExpression"] = "Revision = :current"
                counter["ExpressionAttributeValues"][":current"] = _num(current)
            try:
                self._call("transact_write_items",
                           TransactItems=[{"Update": counter}, *ops(rev)])
            except Exception as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise
                reasons = [
                    str(r.get("Code", "None"))
                    for r in getattr(exc, "response", {}).get("CancellationReasons", [])
                ]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    # Another writer committed first: retry at the revision it left.
                    self._counter = self._read_counter()
                    continue
                if "ConditionalCheckFailed" in reasons[1:]:
                    raise _ItemCondition() from None
                if "TransactionConflict" in reasons:
                    time.sleep(0.01)  # a concurrent transaction on the same items: try again
                    continue
                raise connection_problem(f"DynamoDB transaction on table {self.table!r}", exc) from None
            self._counter = rev
            self._revision = max(self._revision, rev)
            return rev
        raise ConnectionProblem(
            f"DynamoDB table {self.table!r}: could not commit a write after {_COUNTER_RETRIES} "
            "attempts (too many concurrent writers); try again"
        )

    def _item_attrs(self, item: Item, rev: int) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "HashKey": {"S": HASH_ITEMS},
            "FullPath": {"S": item.key},
            "Value": {"B": bytes(item.value)},
            "Revision": _num(rev),
        }
        if item.expires is not None:
            attrs["Expires"] = _num(float(item.expires))
            attrs["TTL"] = _num(int(item.expires) + 1)
        return attrs

    def _change(self, rev: int, n: int, kind: EventType, key: str, item: Item | None = None
                ) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "HashKey": {"S": HASH_CHANGES},
            "FullPath": {"S": _change_key(rev, n)},
            "Type": {"S": kind.value},
            "Key": {"S": key},
            "TTL": _num(int(time.time()) + defaults.DYNAMODB_CHANGE_LOG_TTL),
        }
        if item is not None:
            attrs["Value"] = {"B": bytes(item.value)}
            if item.expires is not None:
                attrs["Expires"] = _num(float(item.expires))
        return {"Put": {"TableName": self.table, "Item": attrs}}

    def _put_ops(self, item: Item, condition: str | None = None,
                 values: dict[str, Any] | None = None) -> Callable[[int], list[dict[str, Any]]]:
        def ops(rev: int) -> list[dict[str, Any]]:
            put: dict[str, Any] = {"TableName": self.table, "Item": self._item_attrs(item, rev)}
            if condition:
                put["ConditionExpression"] = condition
                put["ExpressionAttributeValues"] = {":now": _num(time.time()), **(values or {})}
                if "#v" in condition:
                    put["ExpressionAttributeNames"] = {"#v": "Value"}  # VALUE is a reserved word
            return [{"Put": put}, self._change(rev, 0, EventType.PUT, item.key, item)]

        return ops

    async def _write(self, item: Item, condition: str | None = None,
                     values: dict[str, Any] | None = None) -> Item:
        self._validate(item)
        async with self._write_lock:
            rev = await self._run(self._commit, self._put_ops(item, condition, values))
        if item.expires is not None:
            heapq.heappush(self._due, (float(item.expires), item.key))
            self._sweep_wakeup.set()
        self._poll_wakeup.set()
        return Item(item.key, bytes(item.value), item.expires, rev)

    @staticmethod
    def _validate(item: Item) -> None:
        if not item.key:
            raise BadParameter("backend key must not be empty")
        if len(item.key.encode()) > 1024:
            raise BadParameter("backend key is longer than DynamoDB's 1024-byte sort key limit")
        if len(item.value) > MAX_VALUE_SIZE:
            raise BadParameter(
                f"value of {item.key!r} is {len(item.value)} bytes; the DynamoDB backend stores "
                f"at most {MAX_VALUE_SIZE}"
            )

    # -- Backend -----------------------------------------------------------------------------

    @staticmethod
    def _from_attrs(attrs: dict[str, Any]) -> Item:
        expires = float(attrs["Expires"]["N"]) if "Expires" in attrs else None
        value = attrs.get("Value", {}).get("B", b"")
        return Item(attrs["FullPath"]["S"], bytes(value), expires, int(attrs["Revision"]["N"]))

    def _get_sync(self, key: str) -> Item | None:
        got = self._call(
            "get_item", TableName=self.table, ConsistentRead=True,
            Key={"HashKey": {"S": HASH_ITEMS}, "FullPath": {"S": key}},
        )
        if "Item" not in got:
            return None
        item = self._from_attrs(got["Item"])
        return None if item.expired() else item

    async def get(self, key: str) -> Item:
        """Return the live item at key; raise NotFound when absent or expired."""
        if not key:
            raise NotFound("key '' is not found")
        item = await self._run(self._get_sync, key)
        if item is None:
            raise NotFound(f"key {key!r} is not found")
        return item

    async def put(self, item: Item) -> Item:
        """Create or overwrite the item."""
        return await self._write(item)

    async def create(self, item: Item) -> Item:
        """Create only if absent or expired; else AlreadyExists."""
        try:
            return await self._write(
                item, "attribute_not_exists(FullPath) OR (attribute_exists(Expires) AND Expires <= :now)"
            )
        except _ItemCondition:
            raise AlreadyExists(f"key {item.key!r} already exists") from None

    async def update(self, item: Item) -> Item:
        """Overwrite a live item; raise NotFound when there is none."""
        try:
            return await self._write(item, f"attribute_exists(FullPath) AND {_LIVE}")
        except _ItemCondition:
            raise NotFound(f"key {item.key!r} is not found") from None

    async def compare_and_swap(self, expected: Item, replace_with: Item) -> Item:
        """Replace the item only if its current value equals expected.value (a conditional
        write on the value itself, so no read-modify-write race)."""
        if expected.key != replace_with.key:
            raise BadParameter(
                f"compare_and_swap keys differ: {expected.key!r} and {replace_with.key!r}"
            )
        try:
            return await self._write(
                replace_with,
                f"attribute_exists(FullPath) AND {_LIVE} AND #v = :expected",
                {":expected": {"B": bytes(expected.value)}},
            )
        except _ItemCondition:
            if await self._run(self._get_sync, expected.key) is None:
                raise NotFound(f"key {expected.key!r} is not found") from None
            raise CompareFailed(
                f"key {expected.key!r} does not hold the expected value; re-read and retry"
            ) from None

    def _delete_ops(self, keys: Sequence[str], condition: str | None,
                    values: dict[str, Any] | None = None) -> Callable[[int], list[dict[str, Any]]]:
        def ops(rev: int) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for n, key in enumerate(keys):
                delete: dict[str, Any] = {
                    "TableName": self.table,
                    "Key": {"HashKey": {"S": HASH_ITEMS}, "FullPath": {"S": key}},
                }
                if condition:
                    delete["ConditionExpression"] = condition
                    delete["ExpressionAttributeValues"] = {":now": _num(time.time()), **(values or {})}
                out += [{"Delete": delete}, self._change(rev, n, EventType.DELETE, key)]
            return out

        return ops

    async def delete(self, key: str) -> None:
        """Delete the live item at key; raise NotFound when there is none."""
        try:
            async with self._write_lock:
                await self._run(
                    self._commit, self._delete_ops([key], f"attribute_exists(FullPath) AND {_LIVE}")
                )
        except _ItemCondition:
            raise NotFound(f"key {key!r} is not found") from None
        self._poll_wakeup.set()

    def _query(self, hash_key: str, prefix: str = "", after: str | None = None,
               limit: int = 0) -> list[dict[str, Any]]:
        """Every item of one partition whose sort key starts with prefix (or is > after),
        in sort-key order (DynamoDB compares strings as UTF-8 bytes = code-point order)."""
        kw: dict[str, Any] = {
            "TableName": self.table,
            "ConsistentRead": True,
            "ExpressionAttributeValues": {":h": {"S": hash_key}},
        }
        if after is not None:
            kw["KeyConditionExpression"] = "HashKey = :h AND FullPath > :a"
            kw["ExpressionAttributeValues"][":a"] = {"S": after}
        elif prefix:
            kw["KeyConditionExpression"] = "HashKey = :h AND begins_with(FullPath, :p)"
            kw["ExpressionAttributeValues"][":p"] = {"S": prefix}
        else:
            kw["KeyConditionExpression"] = "HashKey = :h"
        out: list[dict[str, Any]] = []
        while True:
            page = self._call("query", **kw)
            out += page.get("Items", [])
            if limit and len(out) >= limit:
                return out
            last = page.get("LastEvaluatedKey")
            if not last:
                return out
            kw["ExclusiveStartKey"] = last

    def _range_sync(self, prefix: str, limit: int) -> list[Item]:
        now = time.time()
        out: list[Item] = []
        # Expired items are filtered here (DynamoDB's TTL deletion is lazy).
        for attrs in self._query(HASH_ITEMS, prefix):
            item = self._from_attrs(attrs)
            if not item.expired(now):
                out.append(item)
                if limit and len(out) >= limit:
                    break
        return out

    async def get_range(self, prefix: str, limit: int = 0) -> list[Item]:
        """Live items under prefix sorted by key; limit 0 = no limit."""
        return await self._run(self._range_sync, prefix, max(limit, 0))

    async def delete_range(self, prefix: str) -> None:
        """Delete every item under prefix (expired-but-unswept ones too)."""
        keys = [a["FullPath"]["S"] for a in await self._run(self._query, HASH_ITEMS, prefix)]
        async with self._write_lock:
            for start in range(0, len(keys), _DELETE_BATCH):
                batch = keys[start:start + _DELETE_BATCH]
                try:
                    await self._run(self._commit, self._delete_ops(batch, "attribute_exists(FullPath)"))
                except _ItemCondition:
                    # One went in the meantime (another server): delete the rest one by one.
                    for key in batch:
                        with contextlib.suppress(_ItemCondition):
                            await self._run(
                                self._commit, self._delete_ops([key], "attribute_exists(FullPath)")
                            )
        self._poll_wakeup.set()

    # -- watches -----------------------------------------------------------------------------

    def watch(self, prefixes: list[str]) -> Watcher:
        """Events under the prefixes from the last revision this client knows of onwards."""
        if self._closed:
            raise ConnectionProblem(f"the DynamoDB backend (table {self.table!r}) is closed")
        watcher = _DynamoWatcher(prefixes, self._revision, on_close=self._drop_watcher)
        if not self._watchers:
            # A fresh poll starts after what this client knows; with watchers running, the
            # cursor is at or behind that, and each watcher skips changes before its start.
            self._cursor = _change_key(self._revision, 9999)
        self._watchers.add(watcher)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(
                self._poll_loop(), name=f"dynamodb-watch:{self.table}"
            )
        self._poll_wakeup.set()
        return watcher

    def _drop_watcher(self, watcher: QueueWatcher) -> None:
        self._watchers.discard(watcher)

    def _event_of(self, attrs: dict[str, Any]) -> tuple[int, Event]:
        rev = int(attrs["FullPath"]["S"].split(".", 1)[0])
        key = attrs["Key"]["S"]
        if attrs["Type"]["S"] == EventType.DELETE.value:
            return rev, Event(EventType.DELETE, Item(key, b"", None, rev))
        expires = float(attrs["Expires"]["N"]) if "Expires" in attrs else None
        value = bytes(attrs.get("Value", {}).get("B", b""))
        return rev, Event(EventType.PUT, Item(key, value, expires, rev))

    async def _poll_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed and self._watchers:
            cursor = self._cursor
            try:
                changes = await self._run(self._query, HASH_CHANGES, "", cursor)
            except ConnectionProblem as exc:
                log.warning("DynamoDB watch on table %s: %s; retrying", self.table, exc)
                changes = []
            if changes and cursor is not None:
                first_rev = int(changes[0]["FullPath"]["S"].split(".", 1)[0])
                last_rev = int(cursor.split(".", 1)[0])
                if first_rev > last_rev + 1:
                    # Revisions are gapless: a gap means the log's TTL removed entries we never
                    # delivered. The consumers must re-read the state.
                    for w in list(self._watchers):
                        w.fail(ConnectionProblem(
                            f"DynamoDB watch on table {self.table!r} fell behind the change log "
                            f"(revision {last_rev + 1} is gone); re-read the state and watch again"
                        ))
                    self._cursor = changes[-1]["FullPath"]["S"]
                    continue
            for attrs in changes:
                rev, event = self._event_of(attrs)
                self._revision = max(self._revision, rev)
                self._counter = max(self._counter, rev)
                for w in list(self._watchers):
                    if rev > w.start and matches(event.item.key, w.prefixes):
                        w.push(event)
            if changes:
                self._cursor = changes[-1]["FullPath"]["S"]
                continue  # there may be more right behind
            self._poll_wakeup.clear()
            timer = loop.call_later(self.poll_interval, self._poll_wakeup.set)
            try:
                await self._poll_wakeup.wait()
            finally:
                timer.cancel()

    # -- expiry ------------------------------------------------------------------------------

    def _expired_sync(self) -> list[Item]:
        now = time.time()
        return [i for i in map(self._from_attrs, self._query(HASH_ITEMS)) if i.expired(now)]

    async def _expire(self, items: list[Item]) -> int:
        """Delete expired items unless they changed since read; return how many went."""
        gone = 0
        for item in items:
            ops = self._delete_ops(
                [item.key], "Revision = :rev AND Expires <= :now", {":rev": _num(item.revision)}
            )
            try:
                async with self._write_lock:
                    await self._run(self._commit, ops)
                gone += 1
            except _ItemCondition:
                pass  # rewritten, or swept by another auth server
        if gone:
            self._poll_wakeup.set()
        return gone

    async def sweep(self) -> int:
        """Delete every expired item now (each with a DELETE in the change log)."""
        return await self._expire(await self._run(self._expired_sync))

    async def _sweep_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_scan = 0.0
        while not self._closed:
            try:
                now = time.time()
                if time.monotonic() >= next_scan:
                    await self.sweep()
                    next_scan = time.monotonic() + self.sweep_scan_interval
                    self._due = [d for d in self._due if d[0] > now]
                    heapq.heapify(self._due)
                due_keys = []
                while self._due and self._due[0][0] <= time.time():
                    due_keys.append(heapq.heappop(self._due)[1])
                if due_keys:
                    items = []
                    for key in dict.fromkeys(due_keys):
                        got = await self._run(self._raw_get_sync, key)
                        if got is not None and got.expired():
                            items.append(got)
                    await self._expire(items)
                    continue
                delay = next_scan - time.monotonic()
                if self._due:
                    delay = min(delay, self._due[0][0] - time.time())
                delay = max(0.05, delay)
            except ConnectionProblem as exc:
                log.warning("DynamoDB table %s: expiry sweep failed: %s", self.table, exc)
                delay = 1.0
            self._sweep_wakeup.clear()
            timer = loop.call_later(delay, self._sweep_wakeup.set)
            try:
                await self._sweep_wakeup.wait()
            finally:
                timer.cancel()

    def _raw_get_sync(self, key: str) -> Item | None:
        got = self._call(
            "get_item", TableName=self.table, ConsistentRead=True,
            Key={"HashKey": {"S": HASH_ITEMS}, "FullPath": {"S": key}},
        )
        return self._from_attrs(got["Item"]) if "Item" in got else None

    async def close(self) -> None:
        """Stop the poller and sweeper, end every watcher, release the threads."""
        if self._closed:
            return
        for watcher in list(self._watchers):
            await watcher.close()
        self._closed = True
        for task in (self._poller, self._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._pool.shutdown(wait=False, cancel_futures=True)


class _DynamoWatcher(QueueWatcher):
    """A queue watcher that only takes changes after the revision it was created at."""

    def __init__(self, prefixes: Sequence[str], start: int,
                 on_close: Callable[[QueueWatcher], None]) -> None:
        super().__init__(prefixes, on_close=on_close)
        self.start = start
