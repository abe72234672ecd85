"""Fuzz: validate_event, which checks every audit event a node or proxy sends to auth."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from teleport.errors import BadParameter
from teleport.events import schema
from tests.fuzz.strategies import (
    expect_ok_or_error,
    json_like,
    json_objects,
    mutated,
    nasty_strings,
)

VALID: dict[str, Any] = schema.make_event(
    schema.SESSION_START, user="alice", login="root", sid="s1", server_id="n1",
    addr_local="10.0.0.5:3022", addr_remote="10.0.0.9:5000", time=1_700_000_000.5,
)
VALID_SCP: dict[str, Any] = schema.make_event(
    schema.SCP, user="alice", path="/tmp/x", action="upload", time=1_700_000_000)


def _check(event: Any) -> dict[str, Any] | None:
    out = expect_ok_or_error(schema.validate_event, event, errors=(BadParameter,))
    if out is not None:
        assert out["event"] in schema.EVENT_TYPES
        assert isinstance(schema.event_time(out), float)
        assert json.loads(json.dumps(out, allow_nan=False)) == out
    return out


@given(json_like)
@example({"event": ["session.start"]})  # an unhashable event type once raised TypeError
@example({"event": {"a": 1}})
def test_arbitrary_values(event: Any) -> None:
    """Any JSON value is a valid event or a BadParameter."""
    _check(event)


@given(json_objects)
def test_arbitrary_objects(event: dict[str, Any]) -> None:
    """Any JSON object too."""
    _check(event)


@given(st.sampled_from(sorted(schema.EVENT_TYPES)), st.dictionaries(
    st.sampled_from(sorted({*schema.COMMON_FIELDS, "method", "success", "error", "size",
                            "command", "exitCode", "path", "action", "addr", "len"})),
    json_like, max_size=8))
def test_known_type_random_fields(etype: str, fields: dict[str, Any]) -> None:
    """Each event type with random values in its known fields."""
    _check({**fields, "event": etype})


@given(st.one_of(mutated(VALID), mutated(VALID_SCP)))
@example({**VALID, "time": "0001-01-01T00:00:00+01:00"})
@example({**VALID, "time": "9999-12-31T23:59:59-23:59"})
@example({**VALID, "time": "2017-02-03T06:54:05.123+25:00"})
def test_mutated_events(event: dict[str, Any]) -> None:
    """A valid event with one value replaced by junk validates or raises BadParameter."""
    _check(event)


@given(st.one_of(nasty_strings, st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())))
def test_parse_time(value: str) -> None:
    """Event times parse to a Unix time or BadParameter; format_time's output parses back."""
    t = expect_ok_or_error(schema.parse_time, value, errors=(BadParameter,))
    if t is not None:
        assert isinstance(t, float)


@given(st.floats(min_value=0, max_value=4e9))
def test_time_round_trip(ts: float) -> None:
    """format_time then parse_time is the same time, to the millisecond."""
    assert abs(schema.parse_time(schema.format_time(ts)) - ts) < 0.001 + 1e-6


def test_valid_events_validate() -> None:
    """The bases of the mutations are valid and come back unchanged."""
    assert schema.validate_event(VALID) == VALID
    assert schema.validate_event(VALID_SCP)["code"] == schema.SCP_UPLOAD_CODE
