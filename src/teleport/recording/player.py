"""Replay timing for recorded sessions (pure: the caller sleeps and writes)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from teleport.errors import BadParameter


def playback_schedule(
    events: Iterable[tuple[float, str, str]], speed: float = 1.0, max_pause: float | None = 2.0
) -> Iterator[tuple[float, str, str]]:
    """Yield ``(delay_seconds, kind, data)``: how long to wait before showing each event.

    The delay is the recorded gap to the previous event (the first from time 0), capped at
    ``max_pause`` (None or 0: no cap), then divided by ``speed``. Out-of-order times give 0.
    """
    if not speed > 0:
        raise BadParameter(f"playback speed must be positive, got {speed}")
    if max_pause is not None and max_pause < 0:
        raise BadParameter(f"max pause must be 0 (no cap) or positive, got {max_pause}")
    prev = 0.0
    for t, kind, data in events:
        gap = max(0.0, t - prev)
        prev = max(prev, t)
        if max_pause:
            gap = min(gap, max_pause)
        yield gap / speed, kind, data


def playback_duration(
    events: Iterable[tuple[float, str, str]], speed: float = 1.0, max_pause: float | None = 2.0
) -> float:
    """Total wall time a playback with these settings takes."""
    return sum(d for d, _, _ in playback_schedule(events, speed, max_pause))


def parse_resize(data: str) -> tuple[int, int]:
    """Parse a resize event's ``"COLSxROWS"`` into ``(cols, rows)``."""
    cols, sep, rows = data.partition("x")
    try:
        if not sep:
            raise ValueError(data)
        c, r = int(cols), int(rows)
    except ValueError:
        raise BadParameter(f"resize event {data!r} is not COLSxROWS (e.g. 80x24)") from None
    if c <= 0 or r <= 0:
        raise BadParameter(f"resize event {data!r} has a non-positive size")
    return c, r
