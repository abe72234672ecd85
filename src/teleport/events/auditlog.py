"""The audit-event store contract (``auth_service.audit_events_uri``): the file log under
data_dir (events/filelog.py) and DynamoDB (events/dynamo.py) implement it, and one conformance
suite (tests/unit/events/test_auditlog_conformance.py) runs against both.

Methods are synchronous and thread-safe: the auth service calls them from worker threads (and,
for its own few events, from the event loop), whatever the store is.
"""

from __future__ import annotations

import abc
from typing import Any


class AuditLog(abc.ABC):
    """Append-once events (de-duplicated by ``uid``) with a time-window search."""

    def append(self, event: dict[str, Any]) -> bool:
        """Validate and durably store one event; False (nothing stored) if its uid is in."""
        return self.append_many([event])[0]

    @abc.abstractmethod
    def append_many(self, events: list[dict[str, Any]]) -> list[bool]:
        """Validate every event (BadParameter and nothing stored if one is invalid), then store
        those not stored before; per event, whether it was stored now (False: a redelivery).
        A store that fails raises (OSError, ConnectionProblem) and the caller redelivers."""

    @abc.abstractmethod
    def search(
        self,
        since: float | None = None,
        until: float | None = None,
        event_types: list[str] | None = None,
        user: str | None = None,
        sid: str | None = None,
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        """Events with since <= time < until matching every given filter, oldest first;
        ``limit`` > 0 returns the oldest that many. BadParameter on a window that ends before
        it starts or a negative limit."""

    def session_events(self, sid: str) -> list[dict[str, Any]]:
        """Every event of one session, oldest first."""
        from teleport.errors import BadParameter

        if not sid:
            raise BadParameter("session_events needs a session id")
        return self.search(sid=sid)

    @abc.abstractmethod
    def close(self) -> None:
        """Release files or connections; the log may not be used afterwards (files: it may)."""

    def describe(self) -> str:
        """Where the events are, for messages."""
        return type(self).__name__
