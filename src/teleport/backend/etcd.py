"""The distributed backend: etcd 3.4+ through its v3 JSON gRPC-gateway, over aiohttp.

Keys live under ``/<prefix>`` + key. Each value is stored in a small envelope carrying the item's
absolute expiry, so that reads filter expired items exactly even though etcd's leases expire
late (etcd rounds lease TTLs up to its minimum, ~2 s, and revokes in batches). The lease still
makes etcd delete the key, which is what produces the DELETE event watchers see on expiry.
Leases are shared by all writes that expire within the same whole second, so a burst of
heartbeats costs one lease grant rather than one per write.

``EtcdBackend(...)`` is synchronous and connects lazily; ``await backend.connect()`` (done by
``open_backend``) checks at once that a peer answers, so configuration errors show at startup.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import json
import logging
import math
import ssl
import struct
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp

from teleport import defaults
from teleport.backend._watch import QueueWatcher, prefix_end
from teleport.backend.base import Backend, Event, EventType, Item, Watcher
from teleport.defaults import ETCD_PREFIX
from teleport.errors import (
    AlreadyExists,
    BadParameter,
    CompareFailed,
    ConfigError,
    ConnectionProblem,
    NotFound,
    TeleportError,
)
from teleport.retry import backoff_delay

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0  # seconds for one unary call
CONNECT_TIMEOUT = 5.0
WATCH_RETRY_DELAY = 0.5

# Envelope: magic byte, big-endian float64 expiry (0 = none), then the raw value.
_MAGIC = b"\x01"
_HEADER = struct.Struct(">d")
_HEADER_LEN = 1 + _HEADER.size


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(data: str | None) -> bytes:
    return base64.b64decode(data) if data else b""


def encode_value(item: Item) -> bytes:
    """Wrap the item's value with its expiry for storage in etcd."""
    return _MAGIC + _HEADER.pack(item.expires or 0.0) + bytes(item.value)


def decode_value(raw: bytes) -> tuple[bytes, float | None]:
    """Unwrap a stored value; values written by other tools are taken as-is, never expiring."""
    if len(raw) >= _HEADER_LEN and raw[:1] == _MAGIC:
        (expires,) = _HEADER.unpack_from(raw, 1)
        return raw[_HEADER_LEN:], (expires or None)
    return raw, None


class EtcdBackend(Backend):
    """Backend on an etcd cluster; peers are tried in order when one cannot be reached."""

    def __init__(
        self,
        peers: list[str],
        prefix: str = ETCD_PREFIX,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        tls_ca_file: str | None = None,
        insecure: bool = False,
    ) -> None:
        if not peers:
            raise ConfigError("etcd storage needs at least one peer in teleport.storage.peers")
        if bool(tls_cert_file) != bool(tls_key_file):
            raise ConfigError("etcd storage: tls_cert_file and tls_key_file must be given together")
        use_tls = bool(tls_cert_file or tls_ca_file or insecure)
        self.peers = [self._normalize_peer(p, use_tls) for p in peers]
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self._ssl = self._ssl_context(tls_cert_file, tls_key_file, tls_ca_file, insecure)
        self._has_client_cert = bool(tls_cert_file)
        self._session: aiohttp.ClientSession | None = None
        self._current = 0  # index of the peer that answered last
        self._revision = 0  # highest store revision seen in any response
        self._leases: dict[int, int] = {}  # expiry second -> lease id
        self._watchers: set[_EtcdWatcher] = set()
        self._closed = False
        self.retry_attempts = defaults.ETCD_RETRY_ATTEMPTS
        self.retries = 0  # transient failures retried so far (reported by tests and benches)

    # -- setup -------------------------------------------------------------------------------

    @staticmethod
    def _normalize_peer(peer: str, use_tls: bool) -> str:
        peer = peer.strip().rstrip("/")
        if "://" not in peer:
            peer = ("https://" if use_tls else "http://") + peer
        if not peer.startswith(("http://", "https://")):
            raise ConfigError(f"etcd peer {peer!r} must be an http:// or https:// URL")
        return peer

    @staticmethod
    def _ssl_context(
        cert: str | None, key: str | None, ca: str | None, insecure: bool
    ) -> ssl.SSLContext:
        try:
            ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
            if insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if cert and key:
                ctx.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"etcd storage: cannot load TLS files (tls_cert_file={cert!r}, "
                f"tls_key_file={key!r}, tls_ca_file={ca!r}): {exc}"
            ) from exc
        return ctx

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ConnectionProblem("the etcd backend is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=64),
                timeout=aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT),
            )
        return self._session

    async def connect(self) -> None:
        """Check that a peer answers (raises ConnectionProblem with the reason if none does)."""
        await self._call(
            "/v3/kv/range", {"key": _b64(self.prefix.encode() or b"/"), "count_only": True}
        )

    # -- transport ---------------------------------------------------------------------------

    def _k(self, key: str) -> bytes:
        return (self.prefix + key).encode()

    def _strip(self, raw_key: bytes) -> str:
        return raw_key.decode()[len(self.prefix) :]

    def _note_header(self, body: dict[str, Any]) -> None:
        rev = int(body.get("header", {}).get("revision", 0))
        if rev > self._revision:
            self._revision = rev

    def _explain(self, peer: str, exc: BaseException) -> str:
        text = f"{peer}: {type(exc).__name__}: {exc}"
        if peer.startswith("https://") and isinstance(
            exc, aiohttp.ClientSSLError | aiohttp.ServerDisconnectedError | aiohttp.ClientOSError
        ):
            text += (
                " (TLS handshake or client certificate rejected: check tls_ca_file, and "
                "tls_cert_file/tls_key_file if etcd runs with --client-cert-auth)"
                if self._has_client_cert
                else " (TLS failed: if etcd requires client certificates, set tls_cert_file "
                "and tls_key_file in teleport.storage; check tls_ca_file)"
            )
        return text

    async def _open(
        self, path: str, body: dict[str, Any], timeout: float | None
    ) -> tuple[aiohttp.ClientResponse, str]:
        """POST to the first peer that can be reached, starting with the last good one."""
        session = self._get_session()
        errors: list[str] = []
        n = len(self.peers)
        for i in range(n):
            idx = (self._current + i) % n
            peer = self.peers[idx]
            try:
                resp = await session.post(
                    peer + path,
                    json=body,
                    timeout=aiohttp.ClientTimeout(total=timeout, connect=CONNECT_TIMEOUT),
                )
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                errors.append(self._explain(peer, exc))
                continue
            self._current = idx
            return resp, peer
        raise ConnectionProblem("cannot reach any etcd peer: " + "; ".join(errors))

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One unary call; transient failures (an election, a member going away, no member
        reachable for a moment) are retried with backoff, then surface as ConnectionProblem."""
        attempts = max(1, self.retry_attempts)
        for attempt in range(attempts):
            try:
                return await self._call_once(path, body)
            except _EtcdError as exc:
                if not is_transient(exc.etcd_message) or attempt == attempts - 1:
                    if is_transient(exc.etcd_message):
                        raise ConnectionProblem(
                            f"{exc.message} (still failing after {attempts} attempts over "
                            "the etcd members; is a majority of the etcd cluster up?)"
                        ) from None
                    raise
                last: ConnectionProblem = exc
                # that member may be the one going away: ask the next one first
                self._current = (self._current + 1) % len(self.peers)
            except ConnectionProblem as exc:  # no member reachable, or every one failed
                if attempt == attempts - 1:
                    raise ConnectionProblem(
                        f"{exc.message} (after {attempts} attempts; is etcd running?)"
                    ) from None
                last = exc
            self.retries += 1
            log.info("etcd %s: %s; retrying", path, last.message)
            await asyncio.sleep(
                backoff_delay(attempt, defaults.ETCD_RETRY_BASE_DELAY, defaults.ETCD_RETRY_MAX_DELAY)
            )
        raise AssertionError("unreachable")

    async def _call_once(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        errors: list[str] = []
        for _attempt in range(len(self.peers)):
            resp, peer = await self._open(path, body, REQUEST_TIMEOUT)
            try:
                async with resp:
                    data = await resp.read()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                # The peer went away mid-request: try the next one.
                errors.append(self._explain(peer, exc))
                self._current = (self._current + 1) % len(self.peers)
                continue
            try:
                parsed: dict[str, Any] = json.loads(data) if data else {}
            except ValueError as exc:
                raise ConnectionProblem(
                    f"etcd peer {peer} answered {path} with non-JSON (HTTP {resp.status}); "
                    "is this the etcd client URL?"
                ) from exc
            if resp.status != 200 or "error" in parsed:
                message = (
                    parsed.get("message")
                    or parsed.get("error")
                    or data[:200].decode("utf-8", "replace")
                )
                raise _EtcdError(f"etcd {path} failed on {peer}: {message}", message)
            self._note_header(parsed)
            return parsed
        raise ConnectionProblem("etcd request failed on every peer: " + "; ".join(errors))

    # -- leases ------------------------------------------------------------------------------

    async def _lease_for(self, expires: float | None) -> int:
        if expires is None:
            return 0
        now = time.time()
        bucket = math.ceil(expires)
        for second in [s for s in self._leases if s <= now]:
            del self._leases[second]
        lease = self._leases.get(bucket)
        if lease is None:
            ttl = max(1, math.ceil(bucket - now))
            body = await self._call("/v3/lease/grant", {"TTL": ttl})
            lease = int(body["ID"])
            self._leases[bucket] = lease
        return lease

    async def _put_op(self, item: Item) -> dict[str, Any]:
        op: dict[str, Any] = {"key": _b64(self._k(item.key)), "value": _b64(encode_value(item))}
        lease = await self._lease_for(item.expires)
        if lease:
            op["lease"] = str(lease)
        return {"request_put": op}

    async def _txn(
        self, compare: list[dict[str, Any]], item: Item, failure: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """A transaction whose success branch puts item; retried once if its lease vanished."""
        for attempt in range(2):
            body = {
                "compare": compare,
                "success": [await self._put_op(item)],
                "failure": failure or [],
            }
            try:
                return await self._call("/v3/kv/txn", body)
            except _EtcdError as exc:
                if attempt == 0 and "lease not found" in exc.etcd_message:
                    self._leases.clear()
                    continue
                raise
        raise AssertionError("unreachable")

    # -- reads -------------------------------------------------------------------------------

    def _item(self, kv: dict[str, Any]) -> Item:
        value, expires = decode_value(_unb64(kv.get("value")))
        return Item(self._strip(_unb64(kv["key"])), value, expires, int(kv.get("mod_revision", 0)))

    async def _read(self, key: str) -> tuple[Item | None, int]:
        """The item at key if live, and the key's mod_revision (0 when absent)."""
        body = await self._call("/v3/kv/range", {"key": _b64(self._k(key))})
        kvs = body.get("kvs") or []
        if not kvs:
            return None, 0
        item = self._item(kvs[0])
        return (None if item.expired() else item), item.revision

    async def get(self, key: str) -> Item:
        """Return the live item at key; raise NotFound when absent or expired."""
        item, _ = await self._read(key)
        if item is None:
            raise NotFound(f"key {key!r} is not found")
        return item

    async def get_range(self, prefix: str, limit: int = 0) -> list[Item]:
        """Live items under prefix sorted by key; pages past expired items to honour limit."""
        start = self._k(prefix)
        end = self._range_end(prefix)
        out: list[Item] = []
        page = max(limit, 0) or 0
        while True:
            req: dict[str, Any] = {"key": _b64(start), "range_end": _b64(end)}
            if page:
                req["limit"] = str(page)
            body = await self._call("/v3/kv/range", req)
            kvs = body.get("kvs") or []
            now = time.time()
            for kv in kvs:
                item = self._item(kv)
                if not item.expired(now):
                    out.append(item)
                    if limit and len(out) >= limit:
                        return out
            if not body.get("more") or not kvs:
                return out
            start = _unb64(kvs[-1]["key"]) + b"\x00"

    def _range_end(self, prefix: str) -> bytes:
        full = self._k(prefix)
        if not full:
            return b"\x00"  # etcd: every key
        end = prefix_end(full.decode())
        return end.encode() if end is not None else b"\x00"

    # -- writes ------------------------------------------------------------------------------

    @staticmethod
    def _validate(item: Item) -> None:
        if not item.key:
            raise BadParameter("backend key must not be empty")

    async def put(self, item: Item) -> Item:
        """Create or overwrite the item."""
        self._validate(item)
        for attempt in range(2):
            op = (await self._put_op(item))["request_put"]
            try:
                body = await self._call("/v3/kv/put", op)
            except _EtcdError as exc:
                if attempt == 0 and "lease not found" in exc.etcd_message:
                    self._leases.clear()
                    continue
                raise
            rev = int(body.get("header", {}).get("revision", 0))
            return Item(item.key, bytes(item.value), item.expires, rev)
        raise AssertionError("unreachable")

    async def create(self, item: Item) -> Item:
        """Create the item unless a live one exists; an expired leftover is replaced."""
        self._validate(item)
        key = _b64(self._k(item.key))
        compare = [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}]
        while True:
            body = await self._txn(compare, item, [{"request_range": {"key": key}}])
            if body.get("succeeded"):
                return self._written(item, body)
            kvs = body["responses"][0]["response_range"].get("kvs") or []
            if kvs and not self._item(kvs[0]).expired():
                raise AlreadyExists(f"key {item.key!r} already exists")
            # The key is there but expired (its lease not yet revoked) or vanished: take it
            # over only if nobody else changed it in between.
            mod = int(kvs[0].get("mod_revision", 0)) if kvs else 0
            compare = [self._mod_compare(key, mod)]

    @staticmethod
    def _mod_compare(key: str, mod_revision: int) -> dict[str, Any]:
        if mod_revision == 0:
            return {"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
        return {"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": str(mod_revision)}

    def _written(self, item: Item, body: dict[str, Any]) -> Item:
        rev = int(body.get("header", {}).get("revision", 0))
        return Item(item.key, bytes(item.value), item.expires, rev)

    async def update(self, item: Item) -> Item:
        """Overwrite a live item; raise NotFound when there is none."""
        self._validate(item)
        key = _b64(self._k(item.key))
        while True:
            current, mod = await self._read(item.key)
            if current is None:
                raise NotFound(f"key {item.key!r} is not found")
            body = await self._txn([self._mod_compare(key, mod)], item)
            if body.get("succeeded"):
                return self._written(item, body)

    async def compare_and_swap(self, expected: Item, replace_with: Item) -> Item:
        """Replace the item only if its current value equals expected.value.

        The value is compared here and the write is a txn on the mod_revision that was read,
        which is exact even though etcd stores the value inside an envelope.
        """
        self._validate(replace_with)
        if expected.key != replace_with.key:
            raise BadParameter(
                f"compare_and_swap keys differ: {expected.key!r} and {replace_with.key!r}"
            )
        key = _b64(self._k(expected.key))
        while True:
            current, mod = await self._read(expected.key)
            if current is None:
                raise NotFound(f"key {expected.key!r} is not found")
            if current.value != bytes(expected.value):
                raise CompareFailed(
                    f"key {expected.key!r} does not hold the expected value; re-read and retry"
                )
            body = await self._txn([self._mod_compare(key, mod)], replace_with)
            if body.get("succeeded"):
                return self._written(replace_with, body)

    async def delete(self, key: str) -> None:
        """Delete the live item at key; raise NotFound when there is none."""
        body = await self._call("/v3/kv/deleterange", {"key": _b64(self._k(key)), "prev_kv": True})
        prev = body.get("prev_kvs") or []
        if not prev or self._item(prev[0]).expired():
            raise NotFound(f"key {key!r} is not found")

    async def delete_range(self, prefix: str) -> None:
        """Delete every item under prefix."""
        await self._call(
            "/v3/kv/deleterange",
            {"key": _b64(self._k(prefix)), "range_end": _b64(self._range_end(prefix))},
        )

    # -- watch -------------------------------------------------------------------------------

    def watch(self, prefixes: list[str]) -> Watcher:
        """Events under the prefixes from the last revision this client has seen onwards."""
        self._get_session()
        watcher = _EtcdWatcher(self, prefixes, self._revision + 1 if self._revision else 0)
        self._watchers.add(watcher)
        return watcher

    async def close(self) -> None:
        """End every watcher and close the HTTP connections."""
        if self._closed:
            return
        for watcher in list(self._watchers):
            await watcher.close()
        self._closed = True
        if self._session is not None:
            await self._session.close()


# etcd's messages for conditions that pass by themselves: an election in progress or just
# finished, a member that lost its quorum for a moment, a proposal that timed out, overload.
# The request may be retried as it is (the gateway answers 503/504 with gRPC code 14/4).
TRANSIENT_ETCD_ERRORS = (
    "leader changed",
    "no leader",
    "request timed out",
    "timed out",
    "too many requests",
    "server stopped",
    "not capable",
    "context deadline exceeded",
    "connection refused",
    "transport is closing",
    "connection is closing",  # the member's own gateway while that member shuts down
    "error reading from server",
    "unavailable",
)


def is_transient(etcd_message: str) -> bool:
    """Whether etcd's error message names a condition that a retry may get past."""
    text = etcd_message.lower()
    return any(marker in text for marker in TRANSIENT_ETCD_ERRORS)


class _EtcdError(ConnectionProblem):
    """etcd answered with an error; keeps etcd's own message for matching."""

    def __init__(self, message: str, etcd_message: str) -> None:
        super().__init__(message)
        self.etcd_message = etcd_message


class _WatchCancelled(ConnectionProblem):
    """etcd cancelled a watch (e.g. its revision was compacted); resuming cannot help."""


class _EtcdWatcher(QueueWatcher):
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
                    "key": _b64(backend._k(prefix)),
                    "range_end": _b64(backend._range_end(prefix)),
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
                        async for msg in _json_stream(resp.content):
                            if "error" in msg:
                                raise ConnectionProblem(f"etcd watch failed: {msg}")
                            result = msg.get("result", {})
                            backend._note_header(result)
                            if result.get("canceled"):
                                raise _WatchCancelled(
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
                    if not created or isinstance(exc, _WatchCancelled):
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
            key = self._backend._strip(_unb64(kv.get("key")))
            return Event(EventType.DELETE, Item(key, b"", None, int(kv.get("mod_revision", 0))))
        return Event(EventType.PUT, self._backend._item(kv))

    async def close(self) -> None:
        """Stop the streams and end iteration."""
        await super().close()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _json_stream(content: aiohttp.StreamReader) -> AsyncIterator[dict[str, Any]]:
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
