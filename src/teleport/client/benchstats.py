"""`tsh bench`'s pure parts: the open-loop schedule, latency percentiles and the export format.

Latency is measured from the moment a request was *scheduled*, not from when it actually started,
so a client or server that falls behind shows up in the figures instead of silently slowing the
schedule down (the coordinated-omission trap of closed-loop load generators).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# The percentiles printed, as the original's `tsh bench` does, plus the tail this project cares about.
PERCENTILES: tuple[float, ...] = (50, 75, 90, 95, 99, 99.9, 100)


@dataclass(frozen=True)
class Result:
    """One request: when it was due (seconds from the run's start), how long it took from then,
    and the error text when it failed."""

    due: float
    latency: float
    error: str = ""


def schedule(rate: float, duration: float) -> list[float]:
    """Start offsets (seconds) of the requests of a run at `rate` per second for `duration` s."""
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError("the rate must be a positive number of requests per second")
    if not (duration > 0 and math.isfinite(duration)):
        raise ValueError("the duration must be positive")
    count = max(1, int(rate * duration))
    if count > 10_000_000:
        raise ValueError("rate x duration is more than 10,000,000 requests: lower one of them")
    return [i / rate for i in range(count)]


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile `p` (0 < p <= 100) of ascending values (nan when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class Summary:
    """What a run amounts to."""

    originated: int
    failed: int
    elapsed: float
    percentiles: list[tuple[float, float]]  # (percentile, seconds) over successful requests
    errors: list[tuple[str, int]]  # distinct error texts, most frequent first

    @property
    def throughput(self) -> float:
        """Successful requests per second of wall time."""
        return (self.originated - self.failed) / self.elapsed if self.elapsed > 0 else 0.0


def summarize(results: Iterable[Result], elapsed: float) -> Summary:
    """Count, failures, latency percentiles of the successful requests, and the errors seen."""
    results = list(results)
    ok = sorted(r.latency for r in results if not r.error)
    counts: dict[str, int] = {}
    for r in results:
        if r.error:
            counts[r.error] = counts.get(r.error, 0) + 1
    return Summary(
        originated=len(results),
        failed=sum(counts.values()),
        elapsed=elapsed,
        percentiles=[(p, percentile(ok, p)) for p in PERCENTILES],
        errors=sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])),
    )


def _fmt_ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f} ms"


def render(summary: Summary) -> str:
    """The text report: counts, then a percentile table."""
    lines = [
        f"* Requests originated: {summary.originated}",
        f"* Requests failed: {summary.failed}",
        f"* Throughput: {summary.throughput:.1f} requests/s over {summary.elapsed:.1f} s",
        "",
        "Histogram",
        "",
        f"{'Percentile':<11}{'Response Duration':>18}",
        f"{'-' * 10:<11}{'-' * 17:>18}",
    ]
    for p, value in summary.percentiles:
        label = "max" if p == 100 else f"{p:g}"
        lines.append(f"{label:<11}{_fmt_ms(value):>18}")
    if summary.errors:
        lines += ["", "Errors"]
        lines += [f"  {n} x {text}" for text, n in summary.errors[:10]]
    return "\n".join(lines) + "\n"


def export_csv(results: Iterable[Result]) -> str:
    """One line per request, in schedule order, for plotting: due_s,latency_ms,ok,error."""
    out = ["due_s,latency_ms,ok,error"]
    for r in sorted(results, key=lambda r: r.due):
        err = r.error.replace('"', "'").replace("\n", " ")
        out.append(f"{r.due:.6f},{r.latency * 1000:.3f},{0 if r.error else 1},\"{err}\"")
    return "\n".join(out) + "\n"
