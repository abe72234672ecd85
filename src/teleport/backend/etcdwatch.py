"""Watches on etcd: one streaming /v3/watch request per prefix of the JSON gateway, merged into
one queue, resumed from the next unseen revision when a stream ends."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import aiohttp

from teleport.backend._watch import QueueWatcher
from teleport.backend.base import Event, EventType, Item, Watcher
from teleport.backend.etcdwire import b64, unb64
from teleport.errors import ConnectionProblem, TeleportError

if TYPE_CHECKING:
    from teleport.backend.etcd import EtcdBackend

log = logging.getLogger("teleport.backend.etcd")

WATCH_RETRY_DELAY = 0.5


class WatchCancelled(ConnectionProblem):
    """etcd cancelled a watch (e.g. its revision was compacted); resuming cannot help."""


class EtcdWatcher(QueueWatcher):
    """One streaming /v3/watch request per prefix, merged into one queue."""

    def __init__(self, backend: EtcdBackend, prefixes: Sequence[str], start_revision: int):
        super().__init__(prefixes, on_close=self._closed_cb)
        self._backend = backend
        self._ready = asyncio.get_running_loop().create_future()
        self._pending = len(prefixes)
        self._tasks = [
            asyncio.get_running_loop().create_task(self._stream(p, start_revision))
            for p in prefixes
        ]
        if not prefixes:
            self._ready.set_result(None)

    def _closed_cb(self, _w: QueueWatcher) -> None:
        self._backend._watchers.discard(self)
        for task in self._tasks:
            task.cancel()
        if not self._ready.done():
            self._ready.set_result(None)

    async def wait_ready(self) -> None:
        """Return once etcd has confirmed every watch stream (or the watcher failed)."""
        await asyncio.shield(self._ready)

    async def __aenter__(self) -> Watcher:
        await self.wait_ready()
        return self

    async def _stream(self, prefix: str, start_revision: int) -> None:
        backend = self._backend
        revision = start_revision
        created = False
        try:
            while True:
                req: dict[str, Any] = {
                    "key": b64(backend._k(prefix)),
                    "range_end": b64(backend._range_end(prefix)),
                    "prev_kv": False,
                }
                if revision:
                    req["start_revision"] = str(revision)
                try:
                    resp, _peer = await backend._open("/v3/watch", {"create_request": req}, None)
                    async with resp:
                        if resp.status != 200:
                            text = (await resp.read())[:200].decode("utf-8", "replace")
                            raise ConnectionProblem(f"etcd watch failed: HTTP {resp.status} {text}")
                        async for msg in json_stream(resp.content):
                            if "error" in msg:
                                raise ConnectionProblem(f"etcd watch failed: {msg}")
                            result = msg.get("result", {})
                            backend._note_header(result)
                            if result.get("canceled"):
                                raise WatchCancelled(
                                    f"etcd cancelled the watch on {prefix!r}: "
                                    f"{result.get('cancel_reason', '')} (compacted at "
                                    f"{result.get('compact_revision', '?')}); re-read the state "
                                    "and watch again"
                                )
                            if result.get("created") and not created:
                                created = True
                                if not revision:
                                    revision = int(result.get("header", {}).get("revision", 0)) + 1
                                self._one_ready()
                            for ev in result.get("events") or []:
                                event = self._event(ev)
                                revision = max(revision, event.item.revision + 1)
                                self.push(event)
                except ConnectionProblem as exc:
                    if not created or isinstance(exc, WatchCancelled):
                        raise
                    log.warning("etcd watch on %r interrupted: %s; resuming", prefix, exc)
                except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                    if not created:
                        raise ConnectionProblem(f"etcd watch on {prefix!r} failed: {exc}") from exc
                    log.warning("etcd watch on %r interrupted: %s; resuming", prefix, exc)
                # The stream ended (peer restarted?): resume from the next unseen revision.
                await asyncio.sleep(WATCH_RETRY_DELAY)
        except asyncio.CancelledError:
            raise
        except TeleportError as exc:
            self.fail(exc)
            if not self._ready.done():
                self._ready.set_exception(exc)
                self._ready.exception()  # mark retrieved; the consumer sees it on iteration

    def _one_ready(self) -> None:
        self._pending -= 1
        if self._pending <= 0 and not self._ready.done():
            self._ready.set_result(None)

    def _event(self, ev: dict[str, Any]) -> Event:
        kv = ev.get("kv", {})
        if ev.get("type") == "DELETE":
            key = self._backend._strip(unb64(kv.get("key")))
            return Event(EventType.DELETE, Item(key, b"", None, int(kv.get("mod_revision", 0))))
        return Event(EventType.PUT, self._backend._item(kv))

    async def close(self) -> None:
        """Stop the streams and end iteration."""
        await super().close()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def json_stream(content: aiohttp.StreamReader) -> AsyncIterator[dict[str, Any]]:
    """Yield the JSON objects of a gRPC-gateway stream (concatenated, usually newline-separated)."""
    decoder = json.JSONDecoder()
    text = codecs.getincrementaldecoder("utf-8")()
    buf = ""
    async for chunk in content.iter_any():
        buf += text.decode(chunk)
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            try:
                obj, end = decoder.raw_decode(buf)
            except ValueError:
                break  # incomplete: wait for more data
            buf = buf[end:]
            yield obj
