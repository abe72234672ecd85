"""One conformance suite that every backend (SQLite, etcd, DynamoDB) must pass unchanged."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator

import pytest

from teleport.backend import Backend, Event, EventType, Item, Watcher
from teleport.errors import AlreadyExists, CompareFailed, NotFound

BINARY = bytes(range(256)) + b"\x00\xff\x00" + "héllo ✓".encode()


async def next_event(it: AsyncIterator[Event], timeout: float = 10.0) -> Event:
    return await asyncio.wait_for(anext(it), timeout)


async def expect_no_event(it: AsyncIterator[Event], timeout: float = 0.5) -> None:
    """Nothing arrives within the timeout (the pending anext is cancelled, which is fine)."""
    try:
        ev = await asyncio.wait_for(anext(it), timeout)
    except TimeoutError:
        return
    raise AssertionError(f"unexpected event {ev}")


async def test_get_missing_raises_not_found(backend: Backend, prefix: str) -> None:
    with pytest.raises(NotFound):
        await backend.get(prefix + "nope")


async def test_put_get_overwrite(backend: Backend, prefix: str) -> None:
    key = prefix + "k"
    first = await backend.put(Item(key, b"one"))
    assert first.revision > 0
    got = await backend.get(key)
    assert (got.key, got.value, got.expires) == (key, b"one", None)
    assert got.revision == first.revision
    second = await backend.put(Item(key, b"two"))
    assert second.revision > first.revision
    assert (await backend.get(key)).value == b"two"


async def test_revisions_increase_on_every_write(backend: Backend, prefix: str) -> None:
    revs = []
    for i in range(5):
        revs.append((await backend.put(Item(prefix + f"r{i}", b"x"))).revision)
    revs.append((await backend.update(Item(prefix + "r0", b"y"))).revision)
    assert revs == sorted(revs) and len(set(revs)) == len(revs)


async def test_create(backend: Backend, prefix: str) -> None:
    key = prefix + "c"
    created = await backend.create(Item(key, b"first"))
    assert created.value == b"first" and created.revision > 0
    with pytest.raises(AlreadyExists):
        await backend.create(Item(key, b"second"))
    assert (await backend.get(key)).value == b"first"


async def test_update(backend: Backend, prefix: str) -> None:
    key = prefix + "u"
    with pytest.raises(NotFound):
        await backend.update(Item(key, b"v"))
    with pytest.raises(NotFound):
        await backend.get(key)  # a failed update must not create
    await backend.put(Item(key, b"v1"))
    updated = await backend.update(Item(key, b"v2"))
    assert updated.value == b"v2"
    assert (await backend.get(key)).value == b"v2"


async def test_compare_and_swap(backend: Backend, prefix: str) -> None:
    key = prefix + "cas"
    with pytest.raises(NotFound):
        await backend.compare_and_swap(Item(key, b"a"), Item(key, b"b"))
    await backend.put(Item(key, b"a"))
    with pytest.raises(CompareFailed):
        await backend.compare_and_swap(Item(key, b"wrong"), Item(key, b"b"))
    assert (await backend.get(key)).value == b"a"
    swapped = await backend.compare_and_swap(Item(key, b"a"), Item(key, b"b"))
    assert swapped.value == b"b"
    assert (await backend.get(key)).value == b"b"
    with pytest.raises(CompareFailed):  # the old value no longer matches
        await backend.compare_and_swap(Item(key, b"a"), Item(key, b"c"))


async def test_delete(backend: Backend, prefix: str) -> None:
    key = prefix + "d"
    with pytest.raises(NotFound):
        await backend.delete(key)
    await backend.put(Item(key, b"x"))
    await backend.delete(key)
    with pytest.raises(NotFound):
        await backend.get(key)
    with pytest.raises(NotFound):
        await backend.delete(key)


async def test_get_range_sorted_with_prefix_boundaries(backend: Backend, prefix: str) -> None:
    keys = ["/a/1", "/a/2", "/a/sub/x", "/a/", "/ab/1", "/ab", "/b/1", "/a"]
    shuffled = keys[:]
    random.Random(7).shuffle(shuffled)
    for k in shuffled:
        await backend.put(Item(prefix + k, k.encode()))
    items = await backend.get_range(prefix + "/a/")
    assert [i.key for i in items] == [prefix + k for k in ["/a/", "/a/1", "/a/2", "/a/sub/x"]]
    assert [i.value for i in items] == [b"/a/", b"/a/1", b"/a/2", b"/a/sub/x"]
    assert all(i.revision > 0 for i in items)
    everything = await backend.get_range(prefix)
    assert [i.key for i in everything] == sorted(prefix + k for k in keys)
    limited = await backend.get_range(prefix + "/a/", limit=2)
    assert [i.key for i in limited] == [prefix + "/a/", prefix + "/a/1"]
    assert await backend.get_range(prefix + "/zzz/") == []


async def test_delete_range(backend: Backend, prefix: str) -> None:
    for k in ["/a/1", "/a/2/x", "/ab/1", "/b"]:
        await backend.put(Item(prefix + k, b"v"))
    await backend.delete_range(prefix + "/a/")
    assert [i.key for i in await backend.get_range(prefix)] == [prefix + "/ab/1", prefix + "/b"]
    await backend.delete_range(prefix + "/nothing/")  # deleting nothing is fine
    await backend.delete_range(prefix)
    assert await backend.get_range(prefix) == []


async def test_binary_values(backend: Backend, prefix: str) -> None:
    key = prefix + "bin"
    stored = await backend.put(Item(key, BINARY))
    assert stored.value == BINARY
    assert (await backend.get(key)).value == BINARY
    assert [i.value for i in await backend.get_range(prefix)] == [BINARY]
    assert (await backend.compare_and_swap(Item(key, BINARY), Item(key, b""))).value == b""
    assert (await backend.get(key)).value == b""  # empty values are values too


async def test_unicode_keys(backend: Backend, prefix: str) -> None:
    await backend.put(Item(prefix + "ü/é", b"1"))
    await backend.put(Item(prefix + "ü/z", b"2"))
    await backend.put(Item(prefix + "üx", b"3"))
    # Code-point (= UTF-8 byte) order: "z" (U+007A) sorts before "é" (U+00E9).
    assert [i.value for i in await backend.get_range(prefix + "ü/")] == [b"2", b"1"]


async def test_expires_is_kept(backend: Backend, prefix: str) -> None:
    expires = time.time() + 3600
    await backend.put(Item(prefix + "e", b"v", expires=expires))
    got = await backend.get(prefix + "e")
    assert got.expires == pytest.approx(expires, abs=1e-3)
    assert (await backend.get_range(prefix))[0].expires == pytest.approx(expires, abs=1e-3)


async def test_already_expired_item_is_never_returned(backend: Backend, prefix: str) -> None:
    # Written with an expiry in the past: it is stored (no sweep has run yet) but invisible.
    key = prefix + "past"
    await backend.put(Item(key, b"old", expires=time.time() - 1))
    with pytest.raises(NotFound):
        await backend.get(key)
    assert await backend.get_range(prefix) == []
    with pytest.raises(NotFound):
        await backend.update(Item(key, b"x"))
    with pytest.raises(NotFound):
        await backend.compare_and_swap(Item(key, b"old"), Item(key, b"x"))
    created = await backend.create(Item(key, b"new"))
    assert created.value == b"new"
    assert (await backend.get(key)).value == b"new"


async def test_ttl_expiry(backend: Backend, prefix: str) -> None:
    key = prefix + "ttl"
    await backend.put(Item(key, b"short", expires=time.time() + 1.0))
    await backend.put(Item(prefix + "forever", b"stay"))
    assert (await backend.get(key)).value == b"short"
    await asyncio.sleep(1.3)
    with pytest.raises(NotFound):
        await backend.get(key)
    assert [i.key for i in await backend.get_range(prefix)] == [prefix + "forever"]
    with pytest.raises(NotFound):
        await backend.delete(key)
    again = await backend.create(Item(key, b"again", expires=time.time() + 60))
    assert again.value == b"again"
    assert (await backend.get(key)).value == b"again"


async def test_update_can_remove_expiry(backend: Backend, prefix: str) -> None:
    key = prefix + "k"
    await backend.put(Item(key, b"v", expires=time.time() + 1.0))
    await backend.update(Item(key, b"v2"))
    await asyncio.sleep(1.3)
    assert (await backend.get(key)).value == b"v2"


async def test_concurrent_creates_exactly_one_wins(backend: Backend, prefix: str) -> None:
    key = prefix + "race"

    async def attempt(i: int) -> int | None:
        try:
            await backend.create(Item(key, f"w{i}".encode()))
            return i
        except AlreadyExists:
            return None

    results = await asyncio.gather(*(attempt(i) for i in range(20)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert (await backend.get(key)).value == f"w{winners[0]}".encode()


async def test_concurrent_cas_increments_are_not_lost(backend: Backend, prefix: str) -> None:
    key = prefix + "counter"
    await backend.put(Item(key, b"0"))

    async def increment() -> None:
        while True:
            current = await backend.get(key)
            nxt = str(int(current.value) + 1).encode()
            try:
                await backend.compare_and_swap(current, Item(key, nxt))
                return
            except CompareFailed:
                continue

    await asyncio.gather(*(increment() for _ in range(10)))
    assert (await backend.get(key)).value == b"10"


async def _events(w: Watcher) -> AsyncIterator[Event]:
    async for ev in w:
        yield ev


async def test_watch_put_delete_and_prefix_filter(backend: Backend, prefix: str) -> None:
    async with backend.watch([prefix + "w/"]) as w:
        it = aiter(w)
        await backend.put(Item(prefix + "other/1", b"no"))
        await backend.put(Item(prefix + "wx", b"no"))  # a sibling prefix must not match
        await backend.put(Item(prefix + "w/1", BINARY))
        await backend.delete(prefix + "w/1")
        await backend.put(Item(prefix + "other/2", b"no"))
        await backend.put(Item(prefix + "w/marker", b"m"))

        ev = await next_event(it)
        assert ev.type == EventType.PUT
        assert (ev.item.key, ev.item.value) == (prefix + "w/1", BINARY)
        assert ev.item.revision > 0
        ev = await next_event(it)
        assert (ev.type, ev.item.key) == (EventType.DELETE, prefix + "w/1")
        ev = await next_event(it)
        assert (ev.type, ev.item.key) == (EventType.PUT, prefix + "w/marker")
        await expect_no_event(it)


async def test_watch_several_prefixes_and_delete_range(backend: Backend, prefix: str) -> None:
    async with backend.watch([prefix + "a/", prefix + "b/"]) as w:
        it = aiter(w)
        await backend.put(Item(prefix + "a/1", b"1"))
        await backend.put(Item(prefix + "c/1", b"no"))
        await backend.put(Item(prefix + "b/1", b"2"))
        seen = {(ev.type, ev.item.key) for ev in [await next_event(it), await next_event(it)]}
        assert seen == {(EventType.PUT, prefix + "a/1"), (EventType.PUT, prefix + "b/1")}
        await backend.delete_range(prefix + "a/")
        ev = await next_event(it)
        assert (ev.type, ev.item.key) == (EventType.DELETE, prefix + "a/1")
        await expect_no_event(it)


async def test_watch_sees_writes_made_right_after_creation(backend: Backend, prefix: str) -> None:
    # No 'async with' and no wait: a write issued right after watch() must still be seen.
    w = backend.watch([prefix])
    try:
        await backend.put(Item(prefix + "early", b"e"))
        ev = await next_event(aiter(w))
        assert (ev.type, ev.item.key, ev.item.value) == (EventType.PUT, prefix + "early", b"e")
    finally:
        await w.close()


async def test_watch_expiry_emits_delete(backend: Backend, prefix: str) -> None:
    async with backend.watch([prefix]) as w:
        it = aiter(w)
        await backend.put(Item(prefix + "ttl", b"v", expires=time.time() + 1.0))
        ev = await next_event(it)
        assert (ev.type, ev.item.key) == (EventType.PUT, prefix + "ttl")
        started = time.monotonic()
        # etcd revokes leases late (its minimum lease TTL is ~2 s); allow for that.
        ev = await next_event(it, timeout=15)
        assert (ev.type, ev.item.key) == (EventType.DELETE, prefix + "ttl")
        assert time.monotonic() - started >= 0.5


async def test_watch_close_ends_iteration(backend: Backend, prefix: str) -> None:
    w = backend.watch([prefix])
    it = aiter(w)
    pending = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.05)
    await w.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 5)
    await backend.put(Item(prefix + "after", b"x"))  # no error writing after a watcher closed
