"""tsh play's replay loop with a fake clock and writer, and its --speed parsing."""

from __future__ import annotations

import pytest

from teleport.client.play import parse_speed, play, resize_sequence
from teleport.errors import BadParameter

HEADER = {"version": 2, "width": 80, "height": 24}
EVENTS = [
    (0.5, "o", "$ "),
    (0.7, "i", "l"),
    (1.0, "o", "ls\r\n"),
    (1.2, "r", "100x30"),
    (11.2, "o", "later\r\n"),  # a 10 s pause
    (11.3, "r", "bogus"),
    (11.5, "o", "end\r\n"),
]


class Fake:
    """Records writes and sleeps in order, with a clock that advances only by sleep()."""

    def __init__(self) -> None:
        self.log: list[tuple[str, object]] = []
        self.now = 0.0

    def write(self, text: str) -> None:
        self.log.append(("w", text))

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.log.append(("s", round(seconds, 6)))


def test_timing_resizes_and_capped_pause() -> None:
    f = Fake()
    stats = play(HEADER, EVENTS, f.write, f.sleep)
    assert f.log == [
        ("w", resize_sequence(80, 24)),
        ("s", 0.5), ("w", "$ "),
        ("s", 0.5), ("w", "ls\r\n"),  # the input event's 0.2 s is kept, its text not shown
        ("s", 0.2), ("w", "\x1b[8;30;100t"),
        ("s", 2.0), ("w", "later\r\n"),  # 10 s pause capped at 2 s
        ("s", 0.1), ("s", 0.2), ("w", "end\r\n"),  # the bad resize is skipped, its gap kept
    ]
    assert stats.outputs == 4 and stats.resizes == 2
    assert f.now == pytest.approx(3.5) and stats.waited == pytest.approx(3.5)


def test_speed_divides_delays_and_no_resize_when_not_a_terminal() -> None:
    f = Fake()
    play(HEADER, EVENTS, f.write, f.sleep, speed=4, resize=False)
    assert "".join(str(x) for k, x in f.log if k == "w") == "$ ls\r\nlater\r\nend\r\n"
    assert f.now == pytest.approx(3.5 / 4)


def test_no_cap() -> None:
    f = Fake()
    play(HEADER, EVENTS, f.write, f.sleep, max_pause=None, resize=False)
    assert f.now == pytest.approx(11.5)


def test_resize_sequence() -> None:
    assert resize_sequence(132, 43) == "\x1b[8;43;132t"


@pytest.mark.parametrize("text,want", [("1", 1.0), ("2.5", 2.5), ("0.25", 0.25)])
def test_parse_speed(text: str, want: float) -> None:
    assert parse_speed(text) == want


@pytest.mark.parametrize("text", ["0", "-1", "fast", "inf", "nan"])
def test_parse_speed_refuses(text: str) -> None:
    with pytest.raises(BadParameter, match="--speed"):
        parse_speed(text)


def test_incomplete_message() -> None:
    from teleport.client.play import incomplete_message

    msg = incomplete_message("abc-123", ["the compressed data stops after 10 bytes"], EVENTS[:3])
    assert msg == ("the recording of session abc-123 is incomplete: the compressed data stops "
                   "after 10 bytes; what could be read was shown (3 event(s), up to 1.0 s)")
    assert "(0 event(s))" in incomplete_message("s", ["x"], [])
