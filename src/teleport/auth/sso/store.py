"""Where connectors and SSO login requests live in the backend (one place knows the keys).

A login request is stored under the SHA-256 digest of its id (the OAuth `state`), with an expiry,
and is consumed by the callback exactly once.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from teleport import defaults
from teleport.auth.sso.connectors import CLASSES, Connector, check_connector_name, check_kind
from teleport.backend.base import Backend, Item
from teleport.errors import AccessDenied, NotFound

STATE_MISMATCH = (
    "state mismatch: this sign-in is unknown, expired or was already used; start the login again "
    "(tsh login, or the button on the login page)"
)


def _conn_key(kind: str, name: str) -> str:
    return f"/connectors/{check_kind(kind)}/{check_connector_name(name)}"


def request_digest(request_id: str) -> str:
    if not isinstance(request_id, str) or not 20 <= len(request_id) <= 100:
        raise AccessDenied(STATE_MISMATCH)
    return hashlib.sha256(request_id.encode()).hexdigest()


class SSOStore:
    """Connectors and login requests."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def put_connector(self, conn: Connector) -> bool:
        """Create or replace; True when it was new."""
        key = _conn_key(conn.KIND, conn.name)
        try:
            await self.backend.get(key)
            existed = True
        except NotFound:
            existed = False
        await self.backend.put(Item(key, conn.to_json()))
        return not existed

    async def get_connector(self, kind: str, name: str) -> Connector:
        try:
            item = await self.backend.get(_conn_key(kind, name))
        except NotFound:
            raise NotFound(
                f"no {kind} connector named {name!r}: 'tctl get connectors' lists them"
            ) from None
        conn = CLASSES[kind].from_json(item.value)
        assert isinstance(conn, Connector)
        return conn

    async def find_connector(self, name: str) -> Connector:
        """The connector of this name, whatever its kind."""
        for kind in CLASSES:
            try:
                return await self.get_connector(kind, name)
            except NotFound:
                continue
        raise NotFound(f"no connector named {name!r}: 'tctl get connectors' lists them")

    async def list_connectors(self) -> list[Connector]:
        out: list[Connector] = []
        for kind, cls in CLASSES.items():
            for item in await self.backend.get_range(f"/connectors/{kind}/"):
                conn = cls.from_json(item.value)
                assert isinstance(conn, Connector)
                out.append(conn)
        return out

    async def delete_connector(self, kind: str, name: str) -> None:
        try:
            await self.backend.delete(_conn_key(kind, name))
        except NotFound:
            raise NotFound(f"no {kind} connector named {name!r}") from None

    async def put_request(self, request_id: str, record: dict[str, Any]) -> None:
        await self.backend.create(Item(
            f"/sso/requests/{request_digest(request_id)}",
            json.dumps(record, separators=(",", ":")).encode(),
            expires=time.time() + defaults.SSO_REQUEST_TTL,
        ))

    async def get_request(self, request_id: str) -> dict[str, Any]:
        try:
            item = await self.backend.get(f"/sso/requests/{request_digest(request_id)}")
        except NotFound:
            raise AccessDenied(STATE_MISMATCH) from None
        return dict(json.loads(item.value))

    async def consume_request(self, request_id: str) -> None:
        """Delete the request; AccessDenied when another callback consumed it first."""
        try:
            await self.backend.delete(f"/sso/requests/{request_digest(request_id)}")
        except NotFound:
            raise AccessDenied(STATE_MISMATCH) from None
