"""Storage backends: the Backend interface and the factory that opens one from teleport.yaml."""

from __future__ import annotations

import os
from typing import Any

from teleport import defaults
from teleport.backend.base import Backend, Event, EventType, Item, Watcher
from teleport.errors import ConfigError

__all__ = ["Backend", "Event", "EventType", "Item", "Watcher", "open_backend"]


async def open_backend(storage: dict[str, Any], data_dir: str) -> Backend:
    """Open the backend described by the ``teleport.storage`` section of teleport.yaml.

    ``{"type": "dir"}`` (the default) is SQLite at ``<data_dir>/backend.sqlite`` (or at
    ``<path>/backend.sqlite`` when ``path`` is given); ``{"type": "etcd", "peers": [...], ...}``
    is etcd, checked to answer before returning; ``{"type": "dynamodb", "table_name", ...}`` is a
    DynamoDB table, created when missing. Other keys (e.g. audit URIs) are ignored here; the
    config layer validates the section.
    """
    storage = dict(storage or {})
    kind = storage.get("type") or defaults.STORAGE_TYPE
    if kind == "dir":
        from teleport.backend.sqlite import SQLiteBackend

        directory = str(storage.get("path") or data_dir)
        try:
            os.makedirs(directory, mode=defaults.DATA_DIR_MODE, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"teleport.storage: cannot create the data directory {directory}: {exc}"
            ) from exc
        return await SQLiteBackend.open(os.path.join(directory, defaults.SQLITE_FILE))
    if kind == "etcd":
        from teleport.backend.etcd import EtcdBackend

        peers = storage.get("peers")
        if isinstance(peers, str):
            peers = [peers]
        if not peers or not isinstance(peers, list) or not all(isinstance(p, str) for p in peers):
            raise ConfigError(
                "teleport.storage.peers must be a non-empty list of etcd client URLs, "
                "e.g. [https://127.0.0.1:2379]"
            )
        insecure = storage.get("insecure", False)
        if not isinstance(insecure, bool):
            raise ConfigError("teleport.storage.insecure must be true or false")
        backend = EtcdBackend(
            peers,
            prefix=str(storage.get("prefix") or defaults.ETCD_PREFIX),
            tls_cert_file=storage.get("tls_cert_file"),
            tls_key_file=storage.get("tls_key_file"),
            tls_ca_file=storage.get("tls_ca_file"),
            insecure=insecure,
        )
        try:
            await backend.connect()
        except BaseException:
            await backend.close()
            raise
        return backend
    if kind == "dynamodb":
        from teleport.backend.aws import AWSSettings
        from teleport.backend.dynamodb import DynamoDBBackend

        return await DynamoDBBackend.open(
            AWSSettings.from_storage(storage),
            str(storage.get("table_name") or defaults.DYNAMODB_TABLE),
        )
    raise ConfigError(
        f"teleport.storage.type {kind!r} is not supported; use 'dir' (SQLite under data_dir), "
        "'etcd' or 'dynamodb'"
    )
