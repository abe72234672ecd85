"""The web UI's parsers of untrusted input: the audit page's query (from the browser) and the
views of session records and events (whose shape nodes decide) never fail but with BadParameter,
and the player's view of any recording bytes is well formed or a BadParameter."""

from __future__ import annotations

import gzip
import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from teleport import defaults
from teleport.errors import BadParameter
from teleport.proxy.webapi.audit import parse_event_query
from teleport.proxy.webapi.recordings import live_session_view, playback_view, recording_view

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)
_records = st.dictionaries(
    st.sampled_from(["sid", "id", "server_id", "server_hostname", "login", "user", "parties",
                     "participants", "created", "session_start", "session_stop", "time"]),
    _values, max_size=8)


@example({"limit": "²"})  # a digit to str.isdigit, not to int()
@given(st.dictionaries(st.sampled_from(["type", "user", "since", "until", "limit", "x"]),
                       st.text(max_size=30), max_size=5))
def test_event_query(query: dict[str, str]) -> None:
    try:
        body = parse_event_query(query)
    except BadParameter:
        return
    assert 1 <= int(body["limit"]) <= defaults.WEB_EVENTS_LIMIT  # type: ignore[call-overload]
    since, until = body["since"], body["until"]
    if isinstance(since, float) and isinstance(until, float):
        assert since <= until
    json.dumps(body)


@given(_records)
def test_session_and_recording_views(record: dict[str, Any]) -> None:
    for view in (live_session_view(record), recording_view(record)):
        json.dumps(view)
        assert isinstance(view["sid"], str)


@given(st.lists(st.tuples(st.floats(min_value=0, max_value=1e6), st.sampled_from("oir"),
                          st.text(max_size=20)), max_size=10),
       st.one_of(st.integers(), st.none(), st.text(max_size=3)), st.binary(max_size=20))
def test_playback_view(events: list[tuple[float, str, str]], width: Any, junk: bytes) -> None:
    header = json.dumps({"version": 2, "width": width, "height": 24})
    lines = [header] + [json.dumps(list(e)) for e in events]
    data = gzip.compress(("\n".join(lines) + "\n").encode() + junk)
    view = playback_view(data)
    assert view["width"] > 0 and view["height"] > 0
    # typed input never reaches the player
    assert [e for e in view["events"] if e[1] == "i"] == []
    assert len(view["events"]) == len([e for e in events if e[1] != "i"])
    try:
        playback_view(junk)
    except BadParameter:
        pass
