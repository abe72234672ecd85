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
import json
import logging
import math
import ssl
import time
from typing import Any

import aiohttp

from teleport import defaults
from teleport.backend._watch import prefix_end
from teleport.backend.base import Backend, Item, Watcher
from teleport.backend.etcdwatch import EtcdWatcher
from teleport.backend.etcdwire import (
    EtcdError,
    b64,
    decode_value,
    encode_value,
    is_transient,
    unb64,
)
from teleport.defaults import ETCD_PREFIX
from teleport.errors import (
    AlreadyExists,
    BadParameter,
    CompareFailed,
    ConfigError,
    ConnectionProblem,
    NotFound,
)
from teleport.retry import backoff_delay

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0  # seconds for one unary call
CONNECT_TIMEOUT = 5.0

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
        self._watchers: set[EtcdWatcher] = set()
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
            "/v3/kv/range", {"key": b64(self.prefix.encode() or b"/"), "count_only": True}
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
            except EtcdError as exc:
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
                raise EtcdError(f"etcd {path} failed on {peer}: {message}", message)
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
        op: dict[str, Any] = {"key": b64(self._k(item.key)), "value": b64(encode_value(item))}
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
            except EtcdError as exc:
                if attempt == 0 and "lease not found" in exc.etcd_message:
                    self._leases.clear()
                    continue
                raise
        raise AssertionError("unreachable")

    # -- reads -------------------------------------------------------------------------------

    def _item(self, kv: dict[str, Any]) -> Item:
        value, expires = decode_value(unb64(kv.get("value")))
        return Item(self._strip(unb64(kv["key"])), value, expires, int(kv.get("mod_revision", 0)))

    async def _read(self, key: str) -> tuple[Item | None, int]:
        """The item at key if live, and the key's mod_revision (0 when absent)."""
        body = await self._call("/v3/kv/range", {"key": b64(self._k(key))})
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
            req: dict[str, Any] = {"key": b64(start), "range_end": b64(end)}
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
            start = unb64(kvs[-1]["key"]) + b"\x00"

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
            except EtcdError as exc:
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
        key = b64(self._k(item.key))
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
        key = b64(self._k(item.key))
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
        key = b64(self._k(expected.key))
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
        body = await self._call("/v3/kv/deleterange", {"key": b64(self._k(key)), "prev_kv": True})
        prev = body.get("prev_kvs") or []
        if not prev or self._item(prev[0]).expired():
            raise NotFound(f"key {key!r} is not found")

    async def delete_range(self, prefix: str) -> None:
        """Delete every item under prefix."""
        await self._call(
            "/v3/kv/deleterange",
            {"key": b64(self._k(prefix)), "range_end": b64(self._range_end(prefix))},
        )

    # -- watch -------------------------------------------------------------------------------

    def watch(self, prefixes: list[str]) -> Watcher:
        """Events under the prefixes from the last revision this client has seen onwards."""
        self._get_session()
        watcher = EtcdWatcher(self, prefixes, self._revision + 1 if self._revision else 0)
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


