"""Fuzz: Go-style durations (teleport.yaml, role options, CLI flags)."""

from __future__ import annotations

import math

from hypothesis import example, given
from hypothesis import strategies as st

from teleport.durations import format_duration, parse_duration
from teleport.errors import BadParameter
from tests.fuzz.strategies import expect_ok_or_error, json_like, nasty_strings

_duration_text = st.one_of(
    nasty_strings,
    st.text(alphabet="0123456789.hmsnuµμ+- d", max_size=30),
    st.from_regex(r"\A([0-9]{1,400}(\.[0-9]{0,5})?(h|m|s|ms|us|ns)){1,4}\Z"),
)


@given(st.one_of(_duration_text, json_like))
@example("9" * 400)  # float("9"*400) is inf
@example("9" * 400 + "h")
@example("9" * 5000 + "d")  # the "days" hint once ran int() over 5000 digits
@example("١h")  # Arabic-Indic digit: Go does not accept it
def test_parse_duration_only_bad_parameter(value: object) -> None:
    """Anything parses to a finite, non-negative number of seconds, or raises BadParameter."""
    seconds = expect_ok_or_error(parse_duration, value, errors=(BadParameter,))
    if seconds is not None:
        assert isinstance(seconds, float)
        assert math.isfinite(seconds) and seconds >= 0


@given(st.floats(min_value=0, max_value=10**9, allow_nan=False))
def test_format_parse_round_trip(seconds: float) -> None:
    """format_duration's output parses back to the same value, to the millisecond."""
    text = format_duration(seconds)
    assert abs(parse_duration(text) - seconds) <= 0.0005 + 1e-9 * seconds


@given(st.integers(min_value=0, max_value=10**6))
def test_parse_format_whole_seconds(seconds: int) -> None:
    """Whole seconds written as a bare number come back in the friendly form and re-parse exactly."""
    text = format_duration(parse_duration(str(seconds)))
    assert parse_duration(text) == seconds
    assert text == "0s" or text[0] != "0"


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_format_duration_total(seconds: float) -> None:
    """format_duration never crashes; non-finite values are refused with BadParameter."""
    text = expect_ok_or_error(format_duration, seconds, errors=(BadParameter,))
    if math.isfinite(seconds):
        assert isinstance(text, str) and text
    else:
        assert text is None
