"""Audit event constructors and validation: the reference's event names, codes and field names.

Pure module: no I/O. An event is a plain JSON-able dict, e.g.::

    {"event": "session.start", "uid": "...", "code": "T2000I", "time": "2017-02-03T06:54:05.123Z",
     "user": "alice", "login": "root", "sid": "...", "namespace": "default", "server_id": "...",
     "server_hostname": "node-1", "addr.local": "10.0.0.5:3022", "addr.remote": "10.0.0.9:51234",
     "size": "80:25"}
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from teleport.errors import BadParameter
from teleport.types.resources import check_json_value

# Event type names (the `event` field).
USER_LOGIN = "user.login"
SESSION_START = "session.start"
SESSION_JOIN = "session.join"
SESSION_RESIZE = "resize"
SESSION_LEAVE = "session.leave"
SESSION_END = "session.end"
SESSION_UPLOAD = "session.upload"
# bytes a session channel transmitted to (tx) and received from (rx) the client, at its end
SESSION_DATA = "session.data"
EXEC = "exec"
PORT_FORWARD = "port"
SCP = "scp"
AUTH_ATTEMPT = "auth"
# the account page (auth logs them itself)
USER_PASSWORD_CHANGE = "user.password_change"
MFA_ADD = "mfa.add"
MFA_DELETE = "mfa.delete"

# event type -> (success code, failure code); None where the reference has no failure variant.
EVENT_CODES: dict[str, tuple[str, str | None]] = {
    USER_LOGIN: ("T1000I", "T1000W"),
    SESSION_START: ("T2000I", None),
    SESSION_JOIN: ("T2001I", None),
    SESSION_RESIZE: ("T2002I", None),
    SESSION_LEAVE: ("T2003I", None),
    SESSION_END: ("T2004I", None),
    SESSION_UPLOAD: ("T2005I", None),
    SESSION_DATA: ("T2006I", None),
    EXEC: ("T3002I", "T3002E"),
    PORT_FORWARD: ("T3003I", None),
    # scp has two success codes chosen by direction; see _code_for.
    SCP: ("T3004I", None),
    # Only failed SSH authentication is logged, so its one code is a warning.
    AUTH_ATTEMPT: ("T3007W", "T3007W"),
    USER_PASSWORD_CHANGE: ("T1005I", None),
    MFA_ADD: ("T1006I", None),
    MFA_DELETE: ("T1007I", None),
}
EVENT_TYPES: frozenset[str] = frozenset(EVENT_CODES)

SCP_DOWNLOAD_CODE = "T3004I"
SCP_UPLOAD_CODE = "T3005I"
# The admin manual logs scp as action "read"/"write"; newer versions say "download"/"upload".
SCP_DOWNLOAD_ACTIONS = frozenset({"download", "read"})
SCP_UPLOAD_ACTIONS = frozenset({"upload", "write"})

DEFAULT_NAMESPACE = "default"

COMMON_FIELDS: tuple[str, ...] = (
    "event",
    "uid",
    "code",
    "time",
    "user",
    "login",
    "sid",
    "namespace",
    "server_id",
    "server_hostname",
    "addr.local",
    "addr.remote",
)

# Fields each event type must carry (beyond event/uid/code/time/namespace, always filled).
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    USER_LOGIN: ("user", "method", "success"),
    SESSION_START: ("sid", "user", "login"),
    SESSION_JOIN: ("sid", "user"),
    SESSION_RESIZE: ("sid", "size"),
    SESSION_LEAVE: ("sid", "user"),
    SESSION_END: ("sid", "user"),
    SESSION_UPLOAD: ("sid",),
    SESSION_DATA: ("sid", "user", "tx", "rx"),
    EXEC: ("user", "command"),
    PORT_FORWARD: ("user", "addr"),
    SCP: ("user", "path", "action"),
    AUTH_ATTEMPT: ("user", "success", "error"),
    USER_PASSWORD_CHANGE: ("user",),
    MFA_ADD: ("user",),
    MFA_DELETE: ("user",),
}

# Expected JSON types of the fields we know; anything else is passed through if JSON-able.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "event": (str,),
    "uid": (str,),
    "code": (str,),
    "time": (str,),
    "user": (str,),
    "login": (str,),
    "sid": (str,),
    "namespace": (str,),
    "server_id": (str,),
    "server_hostname": (str,),
    "addr.local": (str,),
    "addr.remote": (str,),
    "method": (str,),
    "success": (bool,),
    "error": (str,),
    "size": (str,),
    "participants": (list,),
    "interactive": (bool,),
    "session_start": (str,),
    "session_stop": (str,),
    "command": (str,),
    "exitCode": (int,),
    "exitError": (str,),
    "addr": (str,),
    "path": (str,),
    "action": (str,),
    "len": (int,),
    "tx": (int,),
    "rx": (int,),
}

# Python-friendly keyword spellings of the dotted field names.
_ALIASES = {"addr_local": "addr.local", "addr_remote": "addr.remote"}


def format_time(ts: float | datetime | None = None) -> str:
    """RFC 3339 UTC time with milliseconds, e.g. ``2017-02-03T06:54:05.123Z`` (now if None)."""
    if ts is None:
        dt = datetime.now(UTC)
    elif isinstance(ts, datetime):
        dt = ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)
    else:
        dt = datetime.fromtimestamp(float(ts), UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(value: str) -> float:
    """Parse an RFC 3339 time (with or without fraction, ``Z`` or an offset) to a Unix time."""
    if not isinstance(value, str) or not value:
        raise BadParameter(f"event time {value!r} is not an RFC 3339 time string")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadParameter(
            f"event time {value!r} is not an RFC 3339 time (expected e.g. 2017-02-03T06:54:05.123Z)"
        ) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def format_size(cols: int, rows: int) -> str:
    """The reference's terminal size field: ``"COLS:ROWS"``."""
    return f"{int(cols)}:{int(rows)}"


def _code_for(event_type: str, fields: Mapping[str, Any], failure: bool | None) -> str:
    ok_code, fail_code = EVENT_CODES[event_type]
    if event_type == SCP:
        action = fields.get("action")
        if action in SCP_UPLOAD_ACTIONS:
            return SCP_UPLOAD_CODE
        if action in SCP_DOWNLOAD_ACTIONS:
            return SCP_DOWNLOAD_CODE
        raise BadParameter(
            f"scp event action {action!r} is not one of download/read (T3004I) or upload/write (T3005I)"
        )
    if failure is None:
        if fields.get("success") is False:
            failure = True
        elif event_type == EXEC:
            # A command that exited non-zero or could not run is a failed exec (T3002E).
            failure = bool(fields.get("exitCode", 0)) or bool(fields.get("exitError"))
        else:
            failure = False
    if failure:
        if fail_code is None:
            raise BadParameter(f"event type {event_type!r} has no failure code; do not set failure")
        return fail_code
    return ok_code


def make_event(event_type: str, *, failure: bool | None = None, **fields: Any) -> dict[str, Any]:
    """Build and validate an audit event, filling uid (uuid4), time (now), namespace and code.

    The code comes from ``failure`` if given, else from the fields (``success=False``, a non-zero
    ``exitCode``, the scp ``action``). ``addr_local``/``addr_remote`` are accepted for the dotted
    names; ``size`` may be a ``(cols, rows)`` pair; None values are left out. Unknown event types raise BadParameter.
    """
    if event_type not in EVENT_CODES:
        raise BadParameter(
            f"unknown audit event type {event_type!r}; known types: {', '.join(sorted(EVENT_TYPES))}"
        )
    ev: dict[str, Any] = {"event": event_type}
    for key, value in fields.items():
        if value is not None:  # None means "not applicable": the field is left out
            ev[_ALIASES.get(key, key)] = value
    if isinstance(ev.get("size"), tuple | list):
        cols, rows = ev["size"]
        ev["size"] = format_size(cols, rows)
    for key in ("time", "session_start", "session_stop"):
        if key in ev and not isinstance(ev[key], str):
            ev[key] = format_time(ev[key])
    if "code" in ev:
        raise BadParameter("do not pass an event code; it is derived from the event type and outcome")
    ev["code"] = _code_for(event_type, ev, failure)
    ev.setdefault("uid", str(uuid.uuid4()))
    ev.setdefault("time", format_time())
    ev.setdefault("namespace", DEFAULT_NAMESPACE)
    return validate_event(ev)


def validate_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """Check an event received from elsewhere (type, code, uid, time, field types); return a copy.

    Raises BadParameter naming the first problem found.
    """
    if not isinstance(event, Mapping):
        raise BadParameter(f"an audit event must be a JSON object, got {type(event).__name__}")
    ev = dict(event)
    etype = ev.get("event")
    if not isinstance(etype, str) or etype not in EVENT_CODES:
        raise BadParameter(
            f"unknown audit event type {etype!r}; known types: {', '.join(sorted(EVENT_TYPES))}"
        )
    for key, value in ev.items():
        if not isinstance(key, str):
            raise BadParameter(f"{etype} event has a non-string field name {key!r}")
        want = _FIELD_TYPES.get(key)
        # bool is an int subclass: a True exitCode is still wrong.
        if want is not None and (
            not isinstance(value, want) or (bool not in want and isinstance(value, bool))
        ):
            names = "/".join(t.__name__ for t in want)
            raise BadParameter(
                f"{etype} event field {key!r} must be {names}, got {type(value).__name__} {value!r}"
            )
        # fields we do not know pass through, but only as plain JSON: a NaN or a date would make
        # the audit log line unreadable to JSON tools
        check_json_value(value, f"{etype} event field {key!r}")
    for key in ("uid", "code", "time"):
        if not ev.get(key):
            raise BadParameter(f"{etype} event is missing {key!r}")
    missing = [k for k in REQUIRED_FIELDS[etype] if k not in ev]
    if missing:
        raise BadParameter(f"{etype} event is missing field(s): {', '.join(missing)}")
    parse_time(ev["time"])
    valid_codes = {c for c in EVENT_CODES[etype] if c}
    if etype == SCP:
        valid_codes = {_code_for(SCP, ev, None)}
    if ev["code"] not in valid_codes:
        raise BadParameter(
            f"{etype} event has code {ev['code']!r}; expected one of {', '.join(sorted(valid_codes))}"
        )
    ev.setdefault("namespace", DEFAULT_NAMESPACE)
    return ev


def event_time(event: Mapping[str, Any]) -> float:
    """The event's ``time`` field as a Unix time."""
    return parse_time(event["time"])
