"""What the three command-line tools share: error reporting, tables, time formatting."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from teleport.errors import TeleportError


def fail(message: str, code: int = 1) -> int:
    sys.stderr.write(f"ERROR: {message}\n")
    return code


def run_cli(fn: Callable[[], int | None], error_code: int = 1) -> int:
    """Run a command: known errors print one line and exit `error_code` (255 for tsh called as
    ssh, as OpenSSH); Ctrl-C exits 130."""
    try:
        return fn() or 0
    except TeleportError as err:
        return fail(str(err), error_code)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return 130
    except BrokenPipeError:
        return 1
    except OSError as err:
        return fail(str(err), error_code)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table with a dashed underline, as the reference shows."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = [
        "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip(),
        "  ".join(("-" * len(h)).ljust(widths[i]) for i, h in enumerate(headers)).rstrip(),
    ]
    for row in rows:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return "\n".join(lines)


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, UTC).strftime("%d %b %y %H:%M UTC")


def fmt_remaining(seconds: float) -> str:
    """Time left on a certificate, or EXPIRED."""
    from teleport.client.sessions import fmt_duration

    return "EXPIRED" if seconds <= 0 else fmt_duration(seconds)


def human_duration(seconds: float) -> str:
    """A duration for people: "45 seconds", "1 minute", "1 hour 30 minutes", "48 hours"
    (rounded to the minute from one minute up)."""
    def unit(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    total = max(int(round(seconds)), 0)
    if total < 60:
        return unit(total, "second")
    minutes = int(round(total / 60))
    h, m = divmod(minutes, 60)
    parts = ([unit(h, "hour")] if h else []) + ([unit(m, "minute")] if m else [])
    return " ".join(parts)
