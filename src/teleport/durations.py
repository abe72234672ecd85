"""Durations in Go's syntax ("1h30m", "90s", "500ms"), as teleport.yaml and the CLIs write them.

Pure module: parsing and formatting only. Durations are plain float seconds everywhere else.
"""

from __future__ import annotations

import math
import re

from teleport.errors import BadParameter

# Go's units, in seconds. "µs" and "μs" are the two spellings Go accepts for microseconds.
_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_BARE_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+")

_FORMS = 'expected a duration such as "90s", "5m", "1h30m", "500ms" or a number of seconds'


def parse_duration(text: str | int | float) -> float:
    """Parse a Go-style duration (or a bare number of seconds) into seconds.

    Negative values and garbage raise BadParameter naming the accepted forms.
    """
    if isinstance(text, bool):
        # bool is an int subclass; "yes" in YAML must not become one second
        raise BadParameter(f"{_FORMS}, got {text!r}")
    if isinstance(text, int | float):
        if math.isnan(text) or math.isinf(text) or text < 0:
            raise BadParameter(f"{_FORMS}, got {text!r}")
        return float(text)
    if not isinstance(text, str):
        raise BadParameter(f"{_FORMS}, got {text!r}")
    s = text.strip()
    if not s:
        raise BadParameter(f"{_FORMS}, got an empty string")
    if s.startswith("-"):
        raise BadParameter(f'{_FORMS}; negative durations are not allowed, got "{text}"')
    if s.startswith("+"):
        s = s[1:]
    if _BARE_NUMBER.fullmatch(s):
        return float(s)
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            hint = ""
            if re.fullmatch(r"\d+d", s):
                hint = f' (days are not a unit: write "{int(s[:-1]) * 24}h")'
            raise BadParameter(f'{_FORMS}, got "{text}"{hint}')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total


def format_duration(seconds: float) -> str:
    """Format seconds the friendly way: "1h", "30m", "5m30s", "1h0m5s", "500ms", "0s".

    The result always parses back with parse_duration to the same value (to the millisecond).
    """
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds == 0:
        return "0s"
    if seconds < 1:
        ms = round(seconds * 1000, 3)
        return f"{_num(ms)}ms"
    whole = int(seconds)
    frac = round(seconds - whole, 3)
    if frac >= 1:
        whole, frac = whole + 1, 0.0
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    sec_value = secs + frac
    out = ""
    if hours:
        out += f"{hours}h"
    if minutes or (hours and sec_value):
        out += f"{minutes}m"
    if sec_value or not out:
        out += f"{_num(round(sec_value, 3))}s"
    return out


def _num(value: float) -> str:
    """A number without a trailing ".0" (3 decimals at most)."""
    if value == int(value):
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")
