"""One conformance suite that every AuditLog (the file log, DynamoDB on a moto server) passes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from teleport.backend.aws import AWSSettings
from teleport.errors import BadParameter
from teleport.events.auditlog import AuditLog
from teleport.events.dynamo import DynamoAuditLog
from teleport.events.filelog import FileAuditLog
from teleport.events.schema import make_event
from tests.awsmock import ACCESS_KEY, REGION, SECRET_KEY, MotoServer, moto_server


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


def dynamo_log(server: MotoServer, table: str) -> DynamoAuditLog:
    return DynamoAuditLog(AWSSettings(REGION, ACCESS_KEY, SECRET_KEY, server.endpoint), table).open()


@pytest.fixture(params=["file", "dynamodb"])
def audit_log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AuditLog]:
    log: AuditLog
    if request.param == "file":
        log = FileAuditLog(str(tmp_path / "log"))
    else:
        log = dynamo_log(request.getfixturevalue("moto"), f"events-{uuid.uuid4().hex[:12]}")
    try:
        yield log
    finally:
        log.close()


def ts(d: int, h: int = 0, mi: int = 0, s: int = 0) -> float:
    return datetime(2024, 3, d, h, mi, s, tzinfo=UTC).timestamp()


def ev(etype: str = "session.join", t: float | None = None, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sid": str(uuid.uuid4()), "user": "alice"}
    base.update(fields)
    if t is not None:
        base["time"] = t
    return make_event(etype, **base)


def uids(events: list[dict[str, Any]]) -> list[str]:
    return [e["uid"] for e in events]


def test_append_and_redelivery_is_stored_once(audit_log: AuditLog) -> None:
    e = ev(t=ts(1, 10))
    assert audit_log.append(e) is True
    assert audit_log.append(e) is False
    assert audit_log.append_many([e, ev(t=ts(1, 11))]) == [False, True]
    found = audit_log.search()
    assert len(found) == 2 and found[0] == {**e, "namespace": "default"}


def test_batch_is_validated_whole(audit_log: AuditLog) -> None:
    good = ev(t=ts(1, 10))
    bad = dict(ev(t=ts(1, 11)), code="T9999X")
    with pytest.raises(BadParameter):
        audit_log.append_many([good, bad])
    assert audit_log.search() == []
    assert audit_log.append_many([good, good]) == [True, False]  # a duplicate inside one batch


def test_search_window_oldest_first_across_days(audit_log: AuditLog) -> None:
    a, b, c, d = ev(t=ts(1, 23, 59, 59)), ev(t=ts(2, 0, 0, 0)), ev(t=ts(2, 12)), ev(t=ts(4, 1))
    for e in (d, b, a, c):  # late deliveries arrive out of order
        assert audit_log.append(e)
    assert uids(audit_log.search()) == uids([a, b, c, d])
    assert uids(audit_log.search(since=ts(2))) == uids([b, c, d])  # since is inclusive
    assert uids(audit_log.search(until=ts(2, 12))) == uids([a, b])  # until is exclusive
    assert uids(audit_log.search(since=ts(2), until=ts(3))) == uids([b, c])
    assert audit_log.search(since=ts(5)) == []
    assert uids(audit_log.search(limit=2)) == uids([a, b])  # the oldest
    assert uids(audit_log.search(since=ts(2), limit=1)) == uids([b])
    with pytest.raises(BadParameter):
        audit_log.search(since=ts(3), until=ts(2))
    with pytest.raises(BadParameter):
        audit_log.search(limit=-1)


def test_search_by_type_user_and_session(audit_log: AuditLog) -> None:
    sid = str(uuid.uuid4())
    login = make_event("user.login", user="bob", method="local", success=True, time=ts(1, 9))
    start = ev("session.start", t=ts(1, 10), sid=sid, user="bob", login="root")
    join = ev("session.join", t=ts(1, 11), sid=sid, user="carol")
    other = ev("session.join", t=ts(1, 12), user="bob")
    audit_log.append_many([login, start, join, other])
    assert uids(audit_log.search(event_types=["user.login"])) == uids([login])
    assert uids(audit_log.search(event_types=["session.start", "user.login"])) == uids([login, start])
    assert uids(audit_log.search(user="bob")) == uids([login, start, other])
    assert uids(audit_log.search(user="bob", event_types=["session.join"])) == uids([other])
    assert uids(audit_log.search(sid=sid)) == uids([start, join])
    assert uids(audit_log.session_events(sid)) == uids([start, join])
    assert uids(audit_log.search(sid=sid, user="carol", since=ts(1, 10, 30))) == uids([join])
    assert audit_log.search(user="nobody") == []
    assert audit_log.search(event_types=["exec"]) == []


def test_fields_come_back_as_stored(audit_log: AuditLog) -> None:
    e = make_event("exec", user="u", login="root", sid=str(uuid.uuid4()), command="ls -l 'ü'",
                   exitCode=2, addr_local="10.0.0.1:3022", time=ts(3, 3))
    audit_log.append(e)
    (got,) = audit_log.search(event_types=["exec"])
    assert got == e


def test_dynamodb_two_auth_servers_store_an_event_once(moto: MotoServer) -> None:
    """Two auth servers on one table: the same event delivered to both is stored once."""
    table = f"events-{uuid.uuid4().hex[:12]}"
    first, second = dynamo_log(moto, table), dynamo_log(moto, table)  # the second finds the table
    e = ev(t=ts(1, 10))
    assert first.append(e) is True
    assert second.append(e) is False
    assert second.append_many([ev(t=ts(1, 11)), e]) == [True, False]
    assert len(first.search()) == 2 and uids(first.search()) == uids(second.search())
