"""`tsh play`: replay a recorded session in the terminal (pure: the caller supplies write/sleep).

Timing comes from recording.player.playback_schedule (long pauses shortened, --speed applied).
Output events are written as recorded, resize events become the xterm "resize window" sequence
when the output is a terminal, and recorded input is not shown (the terminal's echo is already in
the output).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from teleport.errors import BadParameter
from teleport.recording.player import parse_resize, playback_schedule

DEFAULT_MAX_PAUSE = 2.0


def resize_sequence(cols: int, rows: int) -> str:
    """The xterm control sequence that resizes the terminal window to cols x rows."""
    return f"\x1b[8;{rows};{cols}t"


@dataclass
class PlayStats:
    """What a replay did: output events shown, resizes applied, seconds waited."""

    outputs: int = 0
    resizes: int = 0
    waited: float = 0.0


def play(
    header: dict[str, Any],
    events: Iterable[tuple[float, str, str]],
    write: Callable[[str], None],
    sleep: Callable[[float], None],
    *,
    speed: float = 1.0,
    max_pause: float | None = DEFAULT_MAX_PAUSE,
    resize: bool = True,
) -> PlayStats:
    """Write a recording's output with its recorded timing; returns what was done.

    With `resize`, the terminal is first set to the header's size and then follows each recorded
    resize. A malformed resize event is skipped rather than stopping the replay.
    """
    stats = PlayStats()
    if resize:
        width, height = header.get("width"), header.get("height")
        if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
            write(resize_sequence(width, height))
            stats.resizes += 1
    pending = 0.0
    for gap, kind, data in playback_schedule(events, speed, max_pause):
        if kind not in ("o", "r"):
            pending += gap  # input: its echo is part of the output already; keep its time
            continue
        delay, pending = pending + gap, 0.0
        if delay > 0:
            sleep(delay)
            stats.waited += delay
        if kind == "o":
            write(data)
            stats.outputs += 1
        elif resize:
            try:
                cols, rows = parse_resize(data)
            except BadParameter:
                continue
            write(resize_sequence(cols, rows))
            stats.resizes += 1
    return stats


def incomplete_message(sid: str, problems: list[str], events: list[tuple[float, str, str]]) -> str:
    """What `tsh play` says (on stderr, exiting non-zero) after showing an incomplete recording."""
    shown = f"{len(events)} event(s)" + (f", up to {events[-1][0]:.1f} s" if events else "")
    return (
        f"the recording of session {sid} is incomplete: {'; '.join(problems)}; what could be "
        f"read was shown ({shown})"
    )


def parse_speed(value: str) -> float:
    """--speed: a positive number (2 = twice as fast, 0.5 = half speed)."""
    try:
        speed = float(value)
    except ValueError:
        raise BadParameter(f"--speed must be a number such as 2 or 0.5, got {value!r}") from None
    if not speed > 0 or speed == float("inf"):
        raise BadParameter(f"--speed must be a positive number such as 2 or 0.5, got {value!r}")
    return speed
