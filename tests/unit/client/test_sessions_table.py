"""Rows of `tsh recordings ls` and `tsh sessions ls`."""

from __future__ import annotations

from typing import Any

import pytest

from teleport.cli.common import table
from teleport.client.sessions import (
    RECORDING_HEADERS,
    SESSION_HEADERS,
    fmt_duration,
    participants,
    recording_rows,
    session_rows,
    to_unix,
)
from teleport.events.schema import make_event


@pytest.mark.parametrize(
    "seconds,want",
    [(0, "0s"), (45.4, "45s"), (59.6, "1m00s"), (187, "3m07s"), (7509, "2h05m09s"), (None, "-"),
     (-3, "-")],
)
def test_fmt_duration(seconds: float | None, want: str) -> None:
    assert fmt_duration(seconds) == want


def test_to_unix() -> None:
    assert to_unix("1970-01-01T00:01:40.500Z") == 100.5
    assert to_unix(12) == 12.0
    assert to_unix("yesterday") is None and to_unix(None) is None and to_unix("") is None


def test_recording_rows_from_session_end_events() -> None:
    old = make_event("session.end", sid="11111111-aaaa", user="alice", login="root",
                     server_id="uuid-1", server_hostname="web-1", interactive=True,
                     participants=["alice"], session_start=1_700_000_000.0,
                     session_stop=1_700_000_187.0)
    new = make_event("session.end", sid="22222222-bbbb", user="bob", login="ubuntu",
                     server_id="uuid-2", interactive=True, participants=["bob"],
                     session_start=1_700_000_500.0, session_stop=1_700_000_505.0)
    rows = recording_rows([old, new])
    assert rows == [
        ["22222222-bbbb", "bob", "ubuntu", "uuid-2", "2023-11-14 22:21:40 UTC", "5s"],
        ["11111111-aaaa", "alice", "root", "web-1", "2023-11-14 22:13:20 UTC", "3m07s"],
    ]
    text = table(RECORDING_HEADERS, rows)
    assert text.splitlines()[0].split() == ["ID", "User", "Login", "Node", "Started", "Duration"]


def test_participants_both_shapes() -> None:
    assert participants({"parties": [{"user": "a"}, {"user": "b"}, {"user": "a"}]}) == ["a", "b"]
    assert participants({"participants": ["x", "y"]}) == ["x", "y"]
    assert participants({}) == []


def test_session_rows() -> None:
    sessions: list[dict[str, Any]] = [
        {"sid": "s2", "server_id": "n2", "login": "root", "parties": [{"user": "bob"}],
         "created": "2024-01-02T03:04:06Z"},
        {"id": "s1", "server_hostname": "web-1", "server_id": "n1", "login": "ubuntu",
         "parties": [{"user": "alice"}, {"user": "carol"}], "created": 1704164645.0},
    ]
    assert session_rows(sessions) == [
        ["s1", "web-1", "ubuntu", "alice, carol", "2024-01-02 03:04:05 UTC"],
        ["s2", "n2", "root", "bob", "2024-01-02 03:04:06 UTC"],
    ]
    assert table(SESSION_HEADERS, []).splitlines()[0].split() == SESSION_HEADERS
