"""Audit event constructors: the reference's codes and field names, table-driven."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from teleport.errors import BadParameter
from teleport.events import schema
from teleport.events.schema import format_time, make_event, parse_time, validate_event

COMMON = {
    "user": "alice",
    "login": "root",
    "sid": "8d3895b6-e9dd-11e6-94de-40167e68e931",
    "server_id": "f84f7386-5e22-45ff-8f7d-b8079742e63f",
    "server_hostname": "node-1",
    "addr_local": "10.5.1.15:3022",
    "addr_remote": "10.5.1.20:51234",
}

CODE_CASES = [
    pytest.param("user.login", {"method": "local", "success": True}, None, "T1000I", id="login-ok"),
    pytest.param(
        "user.login",
        {"method": "local", "success": False, "error": "bad password"},
        None,
        "T1000W",
        id="login-failed",
    ),
    pytest.param("session.start", {"size": "80:25"}, None, "T2000I", id="session-start"),
    pytest.param("user.password_change", {}, None, "T1005I", id="password-change"),
    pytest.param("mfa.add", {"mfa_device_name": "key 1"}, None, "T1006I", id="mfa-add"),
    pytest.param("mfa.delete", {"mfa_device_id": "abc"}, None, "T1007I", id="mfa-delete"),
    pytest.param("session.join", {}, None, "T2001I", id="session-join"),
    pytest.param("resize", {"size": (120, 40)}, None, "T2002I", id="resize"),
    pytest.param("session.leave", {}, None, "T2003I", id="session-leave"),
    pytest.param(
        "session.end",
        {"participants": ["alice", "bob"], "interactive": True, "session_start": 1.0e9,
         "session_stop": 1.0e9 + 60},
        None,
        "T2004I",
        id="session-end",
    ),
    pytest.param("session.upload", {"url": "file:///x"}, None, "T2005I", id="session-upload"),
    pytest.param("session.data", {"tx": 10, "rx": 3}, None, "T2006I",
                 id="session-data"),
    pytest.param("exec", {"command": "ls /", "exitCode": 0, "exitError": ""}, None, "T3002I",
                 id="exec-ok"),
    pytest.param("exec", {"command": "false", "exitCode": 1, "exitError": "exit status 1"}, None,
                 "T3002E", id="exec-nonzero"),
    pytest.param("exec", {"command": "ls"}, True, "T3002E", id="exec-explicit-failure"),
    pytest.param("port", {"addr": "db:5432"}, None, "T3003I", id="port"),
    pytest.param("scp", {"path": "/etc/hosts", "action": "download", "len": 10}, None, "T3004I",
                 id="scp-download"),
    pytest.param("scp", {"path": "/etc/hosts", "action": "read", "len": 10}, None, "T3004I",
                 id="scp-read-is-download"),
    pytest.param("scp", {"path": "/tmp/x", "action": "upload", "len": 10}, None, "T3005I",
                 id="scp-upload"),
    pytest.param("scp", {"path": "/tmp/x", "action": "write", "len": 10}, None, "T3005I",
                 id="scp-write-is-upload"),
    pytest.param("auth", {"success": False, "error": "ssh: principal not in cert"}, None, "T3007W",
                 id="auth-failed"),
]


@pytest.mark.parametrize(("etype", "extra", "failure", "code"), CODE_CASES)
def test_event_codes(etype: str, extra: dict[str, Any], failure: bool | None, code: str) -> None:
    ev = make_event(etype, failure=failure, **COMMON, **extra)
    assert ev["event"] == etype
    assert ev["code"] == code
    # Common fields under the reference's (dotted) names, and nothing under the aliases.
    assert ev["addr.local"] == "10.5.1.15:3022" and ev["addr.remote"] == "10.5.1.20:51234"
    assert "addr_local" not in ev and "addr_remote" not in ev
    assert ev["namespace"] == "default"
    assert uuid.UUID(ev["uid"]).version == 4
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ev["time"])
    # JSON round trip keeps it valid.
    assert validate_event(json.loads(json.dumps(ev))) == ev


def test_size_tuple_and_times_are_formatted() -> None:
    ev = make_event("resize", sid="s", size=(132, 43))
    assert ev["size"] == "132:43"
    ev = make_event("session.end", sid="s", user="u", session_start=0.5, session_stop=61.25)
    assert ev["session_start"] == "1970-01-01T00:00:00.500Z"
    assert ev["session_stop"] == "1970-01-01T00:01:01.250Z"


def test_uids_are_unique() -> None:
    uids = {make_event("session.join", sid="s", user="u")["uid"] for _ in range(200)}
    assert len(uids) == 200


@pytest.mark.parametrize(
    ("etype", "fields", "message"),
    [
        pytest.param("session.explode", {}, "unknown audit event type", id="unknown-type"),
        pytest.param("exec", {"user": "u"}, "missing field(s): command", id="missing-field"),
        pytest.param("exec", {"user": "u", "command": "ls", "exitCode": "1"}, "'exitCode' must be int",
                     id="wrong-type"),
        pytest.param("exec", {"user": "u", "command": "ls", "exitCode": True},
                     "'exitCode' must be int", id="bool-is-not-int"),
        pytest.param("scp", {"user": "u", "path": "/x", "action": "delete"}, "action 'delete'",
                     id="scp-bad-action"),
        pytest.param("session.start", {"sid": "s", "user": "u", "login": "r", "failure": True},
                     "no failure code",
                     id="failure-without-code"),
        pytest.param("session.join", {"sid": "s", "user": "u", "code": "T2001I"},
                     "do not pass an event code", id="explicit-code"),
        pytest.param("session.join", {"sid": "s", "user": "u", "time": "yesterday"}, "RFC 3339",
                     id="bad-time"),
    ],
)
def test_make_event_rejects(etype: str, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(BadParameter, match=re.escape(message)):
        make_event(etype, **fields)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        pytest.param(lambda e: e.update(code="T1000I"), "expected one of T2001I", id="wrong-code"),
        pytest.param(lambda e: e.pop("uid"), "missing 'uid'", id="no-uid"),
        pytest.param(lambda e: e.update(event="nope"), "unknown audit event type", id="bad-type"),
        pytest.param(lambda e: e.update(user=5), "'user' must be str", id="user-not-str"),
    ],
)
def test_validate_event_rejects(mutate: Any, message: str) -> None:
    ev = make_event("session.join", sid="s", user="u")
    mutate(ev)
    with pytest.raises(BadParameter, match=re.escape(message)):
        validate_event(ev)


def test_validate_scp_code_must_match_direction() -> None:
    ev = make_event("scp", user="u", path="/x", action="upload")
    ev["code"] = "T3004I"
    with pytest.raises(BadParameter, match="expected one of T3005I"):
        validate_event(ev)


def test_every_type_has_a_code_case() -> None:
    covered = {p.values[0] for p in CODE_CASES}
    assert covered == schema.EVENT_TYPES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2017-02-03T06:54:05Z", datetime(2017, 2, 3, 6, 54, 5, tzinfo=UTC).timestamp()),
        ("2017-02-03T06:54:05.123Z", datetime(2017, 2, 3, 6, 54, 5, 123000, tzinfo=UTC).timestamp()),
        ("2017-02-03T08:54:05+02:00", datetime(2017, 2, 3, 6, 54, 5, tzinfo=UTC).timestamp()),
    ],
)
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text) == pytest.approx(expected)


def test_format_time_ms_and_round_trip() -> None:
    ts = 1486104845.1239
    s = format_time(ts)
    assert s == "2017-02-03T06:54:05.123Z"
    assert parse_time(s) == pytest.approx(1486104845.123)
    naive = datetime(2020, 1, 1, 0, 0, 0)
    assert format_time(naive) == "2020-01-01T00:00:00.000Z"
