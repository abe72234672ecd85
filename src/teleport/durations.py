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

# ASCII digits only, as Go: "\d" alone would also take "١" or "௧", which float() accepts.
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", re.ASCII)
_BARE_NUMBER = re.compile(r"\d+(?:\.\d*)?|\.\d+", re.ASCII)

# Go's longest time.Duration (2**63-1 ns, about 292 years). Longer values are typos or attacks,
# and would overflow the datetime arithmetic they feed (expiry times, sleeps).
MAX_SECONDS = (2**63 - 1) / 1e9

_FORMS = 'expected a duration such as "90s", "5m", "1h30m", "500ms" or a number of seconds'


def parse_duration(text: str | int | float) -> float:
    """Parse a Go-style duration (or a bare number of seconds) into seconds.

    Negative values and garbage raise BadParameter naming the accepted forms.
    """
    if isinstance(text, bool):
        # bool is an int subclass; "yes" in YAML must not become one second
        raise BadParameter(f"{_FORMS}, got {text!r}")
    if isinstance(text, int | float):
        if isinstance(text, float) and math.isnan(text) or text < 0:
            raise BadParameter(f"{_FORMS}, got {text!r}")
        return _bounded(text, text)
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
        return _bounded(float(s), text)
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            hint = ""
            if re.fullmatch(r"[0-9]{1,9}d", s):
                hint = f' (days are not a unit: write "{int(s[:-1]) * 24}h")'
            raise BadParameter(f'{_FORMS}, got "{_shorten(text)}"{hint}')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return _bounded(total, text)


def _shorten(text: str) -> str:
    """Input echoed in a message, cut to a readable length."""
    return text if len(text) <= 60 else text[:57] + "..."


def _bounded(seconds: float, given: object) -> float:
    """seconds as a float, unless longer than Go's longest duration (or inf, from a huge number).

    The check comes before float(): float() of a huge int raises OverflowError.
    """
    if not seconds <= MAX_SECONDS:
        shown = _shorten(given) if isinstance(given, str) else repr(given)
        raise BadParameter(
            f'duration "{shown}" is too long: at most {int(MAX_SECONDS // 3600)}h (about 292 years)'
        )
    return float(seconds)


def format_duration(seconds: float) -> str:
    """Format seconds the friendly way: "1h", "30m", "5m30s", "1h0m5s", "500ms", "0s".

    The result always parses back with parse_duration to the same value (to the millisecond).
    NaN and infinity are not durations: BadParameter.
    """
    if not math.isfinite(seconds):
        raise BadParameter(f"cannot format {seconds!r} as a duration: expected a finite number")
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
