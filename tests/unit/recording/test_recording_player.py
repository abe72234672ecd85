"""Replay timing: pauses capped, speed applied."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from teleport.errors import BadParameter
from teleport.recording.player import parse_resize, playback_duration, playback_schedule

EVENTS = [(0.5, "o", "a"), (1.0, "r", "100x30"), (11.0, "o", "b"), (11.25, "o", "c"),
          (10.0, "o", "late")]


@pytest.mark.parametrize(
    ("speed", "max_pause", "delays"),
    [
        pytest.param(1.0, 2.0, [0.5, 0.5, 2.0, 0.25, 0.0], id="cap-long-pause"),
        pytest.param(2.0, 2.0, [0.25, 0.25, 1.0, 0.125, 0.0], id="double-speed"),
        pytest.param(0.5, 2.0, [1.0, 1.0, 4.0, 0.5, 0.0], id="half-speed"),
        pytest.param(1.0, None, [0.5, 0.5, 10.0, 0.25, 0.0], id="no-cap"),
        pytest.param(1.0, 0.0, [0.5, 0.5, 10.0, 0.25, 0.0], id="zero-is-no-cap"),
        pytest.param(1.0, 0.3, [0.3, 0.3, 0.3, 0.25, 0.0], id="tight-cap"),
    ],
)
def test_schedule(speed: float, max_pause: float | None, delays: list[float]) -> None:
    out = list(playback_schedule(EVENTS, speed=speed, max_pause=max_pause))
    assert [d for d, _, _ in out] == pytest.approx(delays)
    assert [(k, d) for _, k, d in out] == [(k, d) for _, k, d in EVENTS]


def test_duration_and_laziness() -> None:
    assert playback_duration(EVENTS) == pytest.approx(3.25)

    def endless() -> Iterator[tuple[float, str, str]]:
        t = 0.0
        while True:
            t += 1.0
            yield (t, "o", "x")

    it = playback_schedule(endless(), speed=4.0)
    assert [next(it)[0] for _ in range(3)] == [0.25, 0.25, 0.25]


@pytest.mark.parametrize("speed", [0.0, -1.0])
def test_bad_speed(speed: float) -> None:
    with pytest.raises(BadParameter, match="speed must be positive"):
        list(playback_schedule(EVENTS, speed=speed))


def test_bad_max_pause() -> None:
    with pytest.raises(BadParameter, match="max pause"):
        list(playback_schedule(EVENTS, max_pause=-1))


def test_parse_resize() -> None:
    assert parse_resize("120x40") == (120, 40)
    for bad in ("120:40", "x40", "0x10", "axb"):
        with pytest.raises(BadParameter, match="resize event"):
            parse_resize(bad)
