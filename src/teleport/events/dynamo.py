"""Audit events in DynamoDB (``audit_events_uri: dynamodb://TABLE``), shared by every auth server.

Table (created when missing): partition key ``uid``, so that an event lands once however many
auth servers receive it: each is written with a conditional put (``attribute_not_exists(uid)``)
and a redelivery fails the condition and reports "stored before". The whole event is kept as
JSON in ``fields``; ``event``, ``user`` and ``sid`` are copied out for filtering. Two global
secondary indexes serve the searches:

- ``timesearch``: partition ``namespace`` ("default"), sort ``time_uid`` (the event's time,
  fixed-width, then its uid): every time-window search, oldest first (the original product's
  index has the same shape);
- ``sessions``: partition ``sid``, sort ``time_uid``: one session's events (a sparse index, only
  session events carry a sid).

Type and user filters are DynamoDB filter expressions on the index query. Global secondary
indexes are eventually consistent on AWS: an event is searchable within about a second of being
stored.

boto3 is synchronous and so is the AuditLog contract: callers run it in worker threads.
"""

from __future__ import annotations

import json
from typing import Any

from teleport.backend.aws import AWSSettings, connection_problem, ensure_table, error_code
from teleport.errors import BadParameter
from teleport.events.auditlog import AuditLog
from teleport.events.schema import DEFAULT_NAMESPACE, parse_time, validate_event

TIME_INDEX = "timesearch"
SESSION_INDEX = "sessions"
# DynamoDB's item limit is 400 KB; the event JSON is the bulk of the item.
MAX_EVENT_SIZE = 350 * 1024


def time_key(ts: float, uid: str = "") -> str:
    """The sort key of an event: fixed-width seconds (sorts as numbers do), then the uid."""
    key = f"{ts:017.6f}"
    return f"{key}#{uid}" if uid else key


class DynamoAuditLog(AuditLog):
    """The AuditLog on a DynamoDB table; see the module docstring."""

    def __init__(self, settings: AWSSettings, table: str) -> None:
        self.settings = settings
        self.table = table
        self._client: Any = None

    def open(self) -> DynamoAuditLog:
        """Connect and create the table when missing (blocking: run it in a thread)."""
        client = self.settings.client("dynamodb")
        s = {"AttributeType": "S"}
        ensure_table(
            client, self.table,
            [{"AttributeName": "uid", "KeyType": "HASH"}],
            [{"AttributeName": n, **s} for n in ("uid", "namespace", "time_uid", "sid")],
            what=f"the DynamoDB audit events table {self.table!r} ({self.settings.where()})",
            key_hint="auth_service.audit_events_uri",
            indexes=[
                {
                    "IndexName": name,
                    "KeySchema": [{"AttributeName": part, "KeyType": "HASH"},
                                  {"AttributeName": "time_uid", "KeyType": "RANGE"}],
                    "Projection": {"ProjectionType": "ALL"},
                }
                for name, part in ((TIME_INDEX, "namespace"), (SESSION_INDEX, "sid"))
            ],
        )
        self._client = client
        return self

    def describe(self) -> str:
        return f"the DynamoDB audit events table {self.table!r}"

    def _item(self, event: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(event, separators=(",", ":"))
        if len(body) > MAX_EVENT_SIZE:
            raise BadParameter(
                f"audit event {event.get('event')!r} is {len(body)} bytes; events of at most "
                f"{MAX_EVENT_SIZE} bytes are stored"
            )
        item: dict[str, Any] = {
            "uid": {"S": event["uid"]},
            "namespace": {"S": str(event.get("namespace") or DEFAULT_NAMESPACE)},
            "time_uid": {"S": time_key(parse_time(event["time"]), event["uid"])},
            "event": {"S": event["event"]},
            "fields": {"S": body},
        }
        for name in ("user", "sid"):
            if isinstance(event.get(name), str) and event[name]:
                item[name] = {"S": event[name]}
        return item

    def append_many(self, events: list[dict[str, Any]]) -> list[bool]:
        """Validate all, then put each unless its uid is stored (by any auth server)."""
        items = [self._item(validate_event(e)) for e in events]
        stored: list[bool] = []
        for item in items:
            try:
                self._client.put_item(
                    TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(#u)",
                    ExpressionAttributeNames={"#u": "uid"},
                )
                stored.append(True)
            except Exception as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    stored.append(False)  # a redelivery, or another auth server stored it
                    continue
                raise connection_problem(f"storing an audit event in {self.describe()}", exc) from None
        return stored

    def search(
        self,
        since: float | None = None,
        until: float | None = None,
        event_types: list[str] | None = None,
        user: str | None = None,
        sid: str | None = None,
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        """Events with since <= time < until matching every filter, oldest first."""
        if since is not None and until is not None and until < since:
            raise BadParameter(f"search window ends ({until}) before it starts ({since})")
        if limit < 0:
            raise BadParameter(f"search limit must be 0 (no limit) or positive, got {limit}")
        names = {"#p": "sid" if sid else "namespace"}
        values: dict[str, Any] = {":p": {"S": sid or DEFAULT_NAMESPACE}}
        cond = "#p = :p"
        if since is not None or until is not None:
            names["#t"] = "time_uid"  # DynamoDB refuses names an expression does not use
        if since is not None and until is not None:
            cond += " AND #t BETWEEN :a AND :b"  # inclusive; "until#uid" > "until" excludes it
            values[":a"], values[":b"] = {"S": time_key(since)}, {"S": time_key(until)}
        elif since is not None:
            cond += " AND #t >= :a"
            values[":a"] = {"S": time_key(since)}
        elif until is not None:
            cond += " AND #t < :b"
            values[":b"] = {"S": time_key(until)}
        filters = []
        if event_types:
            names["#e"] = "event"
            marks = []
            for i, t in enumerate(dict.fromkeys(event_types)):
                values[f":e{i}"] = {"S": t}
                marks.append(f":e{i}")
            filters.append(f"#e IN ({', '.join(marks)})")
        if user is not None:
            names["#usr"] = "user"  # USER is a reserved word
            values[":usr"] = {"S": user}
            filters.append("#usr = :usr")
        kw: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": SESSION_INDEX if sid else TIME_INDEX,
            "KeyConditionExpression": cond,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        if filters:
            kw["FilterExpression"] = " AND ".join(filters)
        out: list[dict[str, Any]] = []
        while True:
            try:
                page = self._client.query(**kw)
            except Exception as exc:
                raise connection_problem(f"searching {self.describe()}", exc) from None
            for item in page.get("Items", []):
                ev = json.loads(item["fields"]["S"])
                if until is not None and parse_time(ev["time"]) >= until:
                    continue
                out.append(ev)
                if limit and len(out) >= limit:
                    return out
            last = page.get("LastEvaluatedKey")
            if not last:
                return out
            kw["ExclusiveStartKey"] = last

    def close(self) -> None:
        """Nothing to release: the SDK's connections close with the process."""
