"""The storage contract every backend implements (SQLite, etcd).

Keys are '/'-separated strings such as ``/users/joe/params``; values are bytes. An item may
carry an absolute expiry (unix seconds); an expired item is never returned, even before it
is physically removed. Nothing above this layer knows which backend it runs on.
"""

from __future__ import annotations

import abc
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class Item:
    key: str
    value: bytes
    expires: float | None = None  # absolute unix time; None = never
    revision: int = 0  # set by the backend on reads; ignored on writes

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and self.expires <= (time.time() if now is None else now)


class EventType(StrEnum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True)
class Event:
    type: EventType
    item: Item  # for DELETE only item.key is meaningful


class Watcher(abc.ABC):
    """A stream of events for a set of key prefixes; use ``async with`` and ``async for``."""

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[Event]: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Watcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Backend(abc.ABC):
    """Key-value storage with TTLs, atomic create and compare-and-swap, range reads and watches."""

    @abc.abstractmethod
    async def get(self, key: str) -> Item:
        """Return the item; raise NotFound when absent or expired."""

    @abc.abstractmethod
    async def put(self, item: Item) -> Item:
        """Create or overwrite; return the stored item (with its revision)."""

    @abc.abstractmethod
    async def create(self, item: Item) -> Item:
        """Create only if absent (an expired item counts as absent); else raise AlreadyExists."""

    @abc.abstractmethod
    async def update(self, item: Item) -> Item:
        """Overwrite only if present; else raise NotFound."""

    @abc.abstractmethod
    async def compare_and_swap(self, expected: Item, replace_with: Item) -> Item:
        """Replace only if the current value equals expected.value; else raise CompareFailed
        (NotFound when the key is absent)."""

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Delete one key; raise NotFound when absent."""

    @abc.abstractmethod
    async def get_range(self, prefix: str, limit: int = 0) -> list[Item]:
        """All live items whose key starts with prefix, sorted by key; limit 0 = no limit."""

    @abc.abstractmethod
    async def delete_range(self, prefix: str) -> None:
        """Delete every item whose key starts with prefix."""

    @abc.abstractmethod
    def watch(self, prefixes: list[str]) -> Watcher:
        """Events for puts and deletes (including expiries) under any of the prefixes,
        from the moment the watcher is created."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and background tasks."""
