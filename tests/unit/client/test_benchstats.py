"""tsh bench's pure parts: the open-loop schedule, percentiles, the report and the export."""

from __future__ import annotations

import math

import pytest

from teleport.client.benchstats import (
    PERCENTILES,
    Result,
    export_csv,
    percentile,
    render,
    schedule,
    summarize,
)


def test_schedule_is_evenly_spaced_and_independent_of_answers() -> None:
    s = schedule(4, 2)
    assert s == [0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    assert schedule(0.5, 1) == [0.0]  # at least one request


@pytest.mark.parametrize("rate,duration", [(0, 1), (-1, 1), (math.inf, 1), (math.nan, 1),
                                           (1, 0), (1, -2), (1e9, 1e9)])
def test_schedule_refuses_nonsense(rate: float, duration: float) -> None:
    with pytest.raises(ValueError):
        schedule(rate, duration)


def test_percentile_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 99.9) == 100
    assert percentile(values, 100) == 100
    assert percentile([7.0], 50) == 7.0
    assert math.isnan(percentile([], 50))


def test_summary_counts_failures_apart_from_latency() -> None:
    results = [Result(i * 0.1, 0.010 * (i + 1)) for i in range(10)]
    results += [Result(1.0, 5.0, "node refused"), Result(1.1, 6.0, "node refused"),
                Result(1.2, 0.0, "timeout")]
    s = summarize(results, elapsed=2.0)
    assert (s.originated, s.failed) == (13, 3)
    assert s.throughput == 5.0
    assert dict(s.percentiles)[100] == pytest.approx(0.100)  # failures never enter the latency
    assert dict(s.percentiles)[50] == pytest.approx(0.050)
    assert s.errors == [("node refused", 2), ("timeout", 1)]
    text = render(s)
    assert "* Requests originated: 13" in text and "* Requests failed: 3" in text
    assert "2 x node refused" in text
    for p in PERCENTILES:
        assert (f"{p:g}" if p != 100 else "max") in text
    assert "100.0 ms" in text


def test_render_without_successes_prints_dashes() -> None:
    text = render(summarize([Result(0, 1.0, "down")], elapsed=1.0))
    assert "* Requests failed: 1" in text and "-" in text.split("Histogram")[1]


def test_export_is_one_csv_line_per_request_in_schedule_order() -> None:
    rows = export_csv([Result(0.2, 0.5), Result(0.1, 0.25, 'bad "quote"\nline')]).splitlines()
    assert rows[0] == "due_s,latency_ms,ok,error"
    assert rows[1] == "0.100000,250.000,0,\"bad 'quote' line\""
    assert rows[2] == "0.200000,500.000,1,\"\""
