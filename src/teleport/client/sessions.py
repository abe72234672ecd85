"""Rows for `tsh recordings ls` and `tsh sessions ls` (pure: no I/O, no asyncio).

Recordings come from session.end audit events; active sessions from the auth service's session
records, whose exact shape the node decides, so every field is read leniently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from teleport.errors import BadParameter
from teleport.events.schema import parse_time

RECORDING_HEADERS = ["ID", "User", "Login", "Node", "Started", "Duration"]
SESSION_HEADERS = ["ID", "Node", "Login", "Participants", "Created"]


def to_unix(value: Any) -> float | None:
    """A Unix time from an RFC 3339 string or a number; None when absent or unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return parse_time(str(value))
    except BadParameter:
        return None


def fmt_started(ts: float | None) -> str:
    """`2024-01-02 15:04:05 UTC`, or `-` when unknown."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(seconds: float | None) -> str:
    """`45s`, `3m07s`, `2h05m09s`; `-` when unknown."""
    if seconds is None or seconds < 0:
        return "-"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m{sec:02d}s"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"


def node_name(rec: Mapping[str, Any]) -> str:
    """The node's host name, falling back to its ID."""
    return str(rec.get("server_hostname") or rec.get("server_id") or "-")


def recording_row(ev: Mapping[str, Any]) -> list[str]:
    """ID, User, Login, Node, Started, Duration of one session.end event."""
    start = to_unix(ev.get("session_start")) or to_unix(ev.get("time"))
    stop = to_unix(ev.get("session_stop")) or to_unix(ev.get("time"))
    duration = stop - start if start is not None and stop is not None else None
    return [
        str(ev.get("sid", "")),
        str(ev.get("user", "") or "-"),
        str(ev.get("login", "") or "-"),
        node_name(ev),
        fmt_started(start),
        fmt_duration(duration),
    ]


def recording_rows(events: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Rows for `tsh recordings ls`, newest first."""
    ordered = sorted(
        events,
        key=lambda e: to_unix(e.get("session_start")) or to_unix(e.get("time")) or 0.0,
        reverse=True,
    )
    return [recording_row(e) for e in ordered]


def participants(sess: Mapping[str, Any]) -> list[str]:
    """User names in a live session, each once, in joining order."""
    raw = sess.get("parties")
    if raw is None:
        raw = sess.get("participants", [])
    names: list[str] = []
    for p in raw if isinstance(raw, list) else []:
        name = p.get("user") if isinstance(p, Mapping) else p
        if name and str(name) not in names:
            names.append(str(name))
    return names


def session_id(sess: Mapping[str, Any]) -> str:
    """A live session's ID (`sid`, or `id` as the reference names it)."""
    return str(sess.get("sid") or sess.get("id") or "")


def session_row(sess: Mapping[str, Any]) -> list[str]:
    """ID, Node, Login, Participants, Created of one live session."""
    created = to_unix(sess.get("created")) or to_unix(sess.get("session_start"))
    return [
        session_id(sess),
        node_name(sess),
        str(sess.get("login", "") or "-"),
        ", ".join(participants(sess)) or "-",
        fmt_started(created),
    ]


def session_rows(sessions: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Rows for `tsh sessions ls`, oldest first."""
    ordered = sorted(
        sessions,
        key=lambda s: to_unix(s.get("created")) or to_unix(s.get("session_start")) or 0.0,
    )
    return [session_row(s) for s in ordered]
