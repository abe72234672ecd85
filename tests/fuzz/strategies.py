"""Shared strategies and the one assertion every fuzz property makes: a parser either returns or
raises one of the project's own error types, with a message for the user."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeVar

import yaml
from hypothesis import strategies as st

from teleport.errors import TeleportError

T = TypeVar("T")

# Scalars that break naive parsers: NaN/inf, huge and negative numbers, booleans (an int
# subclass), empty and odd strings.
nasty_numbers = st.one_of(
    st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e20, -1e20, 1e308, 10**30,
                     -(10**30), 2**64, -1, 0, 0.5, True, False]),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
)
nasty_strings = st.one_of(
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-1", "1e20", "9" * 5000, "\x00", "*", "^$",
                     "^(", "{{", "}}", "{{internal.logins}}", "../..", "%2F", "a\nb", "🙂"]),
    st.text(max_size=40),
)
scalars = st.one_of(st.none(), nasty_numbers, nasty_strings)

# Random JSON-like trees (what json.loads or yaml.safe_load can return), nasty leaves included.
json_like: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(nasty_strings, st.integers()), children, max_size=4),
    ),
    max_leaves=12,
)
# Random trees whose keys are strings, as a JSON body has.
json_objects: st.SearchStrategy[dict[str, Any]] = st.dictionaries(
    nasty_strings, json_like, max_size=6
)


def expect_ok_or_error(
    fn: Callable[..., T], *args: Any, errors: tuple[type[TeleportError], ...] = (TeleportError,),
    **kwargs: Any,
) -> T | None:
    """Call fn; return its result, or None if it raised one of ``errors`` with a non-empty,
    one-line-ish message. Any other exception (TypeError, KeyError, RecursionError...) propagates
    and fails the property."""
    try:
        return fn(*args, **kwargs)
    except errors as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        return None


@st.composite
def mutated(draw: st.DrawFn, valid: Any) -> Any:
    """A copy of a JSON-like ``valid`` tree with one value replaced by junk (or a key added or
    removed), walking down a random path."""
    if isinstance(valid, dict) and valid:
        key = draw(st.sampled_from(sorted(valid, key=str)))
        out = dict(valid)
        action = draw(st.sampled_from(["replace", "recurse", "drop", "add"]))
        if action == "replace":
            out[key] = draw(json_like)
        elif action == "recurse":
            out[key] = draw(mutated(valid[key]))
        elif action == "drop":
            del out[key]
        else:
            out[draw(nasty_strings)] = draw(json_like)
        return out
    if isinstance(valid, list) and valid:
        i = draw(st.integers(0, len(valid) - 1))
        out_list = list(valid)
        out_list[i] = draw(st.one_of(json_like, mutated(valid[i])))
        return out_list
    return draw(json_like)


def yaml_dump(data: Any) -> str:
    """YAML text for a tree that may hold NaN/inf (dumped as .nan/.inf, as a user could write)."""
    return yaml.safe_dump(data, default_flow_style=False, allow_unicode=True)


def json_dump(data: Any) -> str:
    """JSON text (NaN/Infinity allowed: Python's json.loads reads them, so an attacker can send them)."""
    return json.dumps(data)


def is_finite_number(value: Any) -> bool:
    """True for an int or a finite float (never a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
