"""The pure parts behind the web UI's session pages: the audit page's query, the list views and
the player's data."""

from __future__ import annotations

import gzip
import json

import pytest

from teleport import defaults
from teleport.auth.api_webaudit import newest_first
from teleport.errors import BadParameter
from teleport.proxy.webapi.audit import parse_event_query
from teleport.proxy.webapi.recordings import live_session_view, playback_view, recording_view


def test_event_query_defaults_and_filters() -> None:
    assert parse_event_query({}) == {"types": [], "user": "", "since": None, "until": None,
                                     "limit": defaults.WEB_EVENTS_LIMIT}
    q = parse_event_query({"type": "session.start,exec", "user": " ada ", "since": "10",
                           "until": "20.5", "limit": "3"})
    assert q == {"types": ["session.start", "exec"], "user": "ada", "since": 10.0, "until": 20.5,
                 "limit": 3}


@pytest.mark.parametrize("query, says", [
    ({"since": "yesterday"}, "since must be a Unix time"),
    ({"until": "inf"}, "until must be a Unix time"),
    ({"since": "-5"}, "since must be a Unix time"),
    ({"limit": "0"}, "limit must be a number"),
    ({"limit": str(defaults.WEB_EVENTS_LIMIT + 1)}, "limit must be a number"),
    ({"since": "20", "until": "10"}, "ends before it starts"),
    ({"type": "x" * 101}, "comma-separated event types"),
])
def test_event_query_refusals_say_what_is_wrong(query: dict[str, str], says: str) -> None:
    with pytest.raises(BadParameter, match=says):
        parse_event_query(query)


def test_newest_first_keeps_the_newest() -> None:
    events = [{"n": i} for i in range(5)]
    assert newest_first(events, 2) == [{"n": 4}, {"n": 3}]
    assert newest_first(events, 0) == list(reversed(events))


def test_views_read_node_records_leniently() -> None:
    live = live_session_view({
        "sid": "s1", "server_id": "h1", "server_hostname": "web1", "login": "root", "user": "ada",
        "parties": [{"user": "ada"}, {"user": "bob"}, {"user": "ada"}],
        "created": "2024-01-02T03:04:05Z",
    })
    assert live["node"] == "web1" and live["parties"] == ["ada", "bob"] and live["created"] == 1704164645.0
    assert live_session_view({})["node"] == "-"
    rec = recording_view({"sid": "s2", "user": "ada", "login": "root", "server_id": "h1",
                          "session_start": "2024-01-02T03:04:05Z", "session_stop": "2024-01-02T03:05:05Z"})
    assert rec["node"] == "h1" and rec["duration"] == 60.0
    assert recording_view({"sid": "s3"})["duration"] is None


def test_playback_view_leaves_typed_input_out() -> None:
    lines = [json.dumps({"version": 2, "width": 100, "height": 30}),
             json.dumps([0.1, "o", "$ "]), json.dumps([0.5, "i", "secret\r"]),
             json.dumps([0.6, "r", "90x20"]), json.dumps([0.7, "o", "hi\r\n"])]
    view = playback_view(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert view == {"width": 100, "height": 30, "problems": [],
                    "events": [[0.1, "o", "$ "], [0.6, "r", "90x20"], [0.7, "o", "hi\r\n"]]}
    with pytest.raises(BadParameter, match="not an asciicast v2 recording"):
        playback_view(b"junk")
