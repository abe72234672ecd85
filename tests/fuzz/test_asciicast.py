"""Fuzz: reading asciicast v2 recordings (plain or gzipped, whole, truncated or damaged)."""

from __future__ import annotations

import gzip
import io
import json
import math
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from teleport.errors import BadParameter
from teleport.recording.asciicast import CastWriter, format_cast, gunzip_tolerant, read_cast
from tests.fuzz.strategies import expect_ok_or_error, json_like

HEADER = json.dumps({"version": 2, "width": 80, "height": 24, "timestamp": 1700000000})


def _check(raw: bytes) -> tuple[dict[str, Any], list[tuple[float, str, str]]] | None:
    out = expect_ok_or_error(read_cast, raw, errors=(BadParameter,))
    if out is not None:
        header, events = out
        assert isinstance(header, dict) and header.get("version") == 2
        for t, kind, data in events:
            assert isinstance(t, float) and math.isfinite(t) and t >= 0
            assert isinstance(kind, str) and isinstance(data, str)
    return out


_event_line = st.one_of(
    st.text(max_size=40),
    json_like.map(json.dumps),
    st.tuples(st.one_of(st.floats(), st.integers(), st.booleans(), st.text(max_size=3)),
              st.one_of(st.sampled_from(["o", "i", "r"]), json_like),
              st.one_of(st.text(max_size=10), json_like)).map(lambda e: json.dumps(list(e))),
    st.sampled_from(['"1ox"', '{"1": 0, "o": 0, "x": 0}', "[NaN, \"o\", \"x\"]",
                     "[1e999, \"o\", \"x\"]", "[" + "9" * 400 + ", \"o\", \"x\"]",
                     "[" * 5000, "[-1, \"o\", \"x\"]"]),
)


@given(st.lists(_event_line, max_size=8))
def test_arbitrary_event_lines(lines: list[str]) -> None:
    """After a valid header, any lines give well-typed events (bad ones skipped), never a crash."""
    _check(("\n".join([HEADER, *lines]) + "\n").encode())


@given(st.binary(max_size=300))
@example(b"[" * 100000)
@example(b"\x1f\x8b")
@example(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xff\xff\xff")
def test_arbitrary_bytes(raw: bytes) -> None:
    """Any bytes (gzip magic or not) are a recording or a BadParameter."""
    _check(raw)
    _check(b"\x1f\x8b" + raw)


@given(st.one_of(json_like, st.text(max_size=30)))
def test_arbitrary_header(header: Any) -> None:
    """Only a JSON object with version 2 is a header."""
    text = header if isinstance(header, str) else json.dumps(header)
    out = _check((text + "\n[0.5, \"o\", \"x\"]\n").encode())
    if out is not None:
        assert out[1] == [(0.5, "o", "x")]


_events = st.lists(st.tuples(st.floats(0, 10**6, allow_nan=False).map(lambda t: round(t, 6)),
                             st.sampled_from(["o", "i", "r"]), st.text(max_size=20)), max_size=10)


@given(_events)
def test_format_read_round_trip(events: list[tuple[float, str, str]]) -> None:
    """format_cast output reads back to the same header and events, plain and gzipped."""
    text = format_cast(json.loads(HEADER), events)
    assert read_cast(text.encode()) == (json.loads(HEADER), events)
    assert read_cast(gzip.compress(text.encode())) == (json.loads(HEADER), events)


@given(st.lists(st.binary(min_size=1, max_size=50), min_size=1, max_size=8), st.data())
def test_truncated_recording(chunks: list[bytes], data: st.DataObject) -> None:
    """A gzipped recording cut anywhere (a crash) reads as a prefix of its events."""
    buf = io.BytesIO()
    w = CastWriter(buf, timestamp=1700000000, fsync=False)
    for i, chunk in enumerate(chunks):
        w.output(chunk, t=float(i))
        w.flush()
    w.close()
    whole = buf.getvalue()
    _, all_events = read_cast(whole)
    cut = data.draw(st.integers(0, len(whole)))
    out = _check(whole[:cut])
    if out is not None:
        assert all_events[: len(out[1])][:-1] == out[1][:-1]


@given(st.binary(max_size=200))
def test_gunzip_tolerant(raw: bytes) -> None:
    """gunzip_tolerant never raises on damaged gzip data."""
    assert isinstance(gunzip_tolerant(b"\x1f\x8b" + raw), bytes)
