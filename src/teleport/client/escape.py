"""OpenSSH's escape sequences for interactive sessions (`~.`, `~?`, `~~`); pure.

The escape character is recognised only at the start of a line (after `\\r` or `\\n`, or as the
very first byte of the session), as OpenSSH's `ssh` does: a `~` typed in the middle of a line is
sent as is. The filter sees the bytes the user types and returns what to send to the node plus
the actions to take, in order, so that the caller can keep typing order and actions aligned.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from teleport import defaults

DEFAULT_ESCAPE_CHAR = defaults.ESCAPE_CHAR


class EscapeAction(enum.Enum):
    """What an escape sequence asks the client to do."""

    DISCONNECT = "disconnect"  # ~.
    HELP = "help"  # ~?


def help_text(escape_char: str = DEFAULT_ESCAPE_CHAR) -> str:
    """The list `~?` prints; lines end in CRLF because the terminal is in raw mode."""
    e = escape_char
    lines = [
        "Supported escape sequences:",
        f" {e}.   - terminate connection",
        f" {e}?   - this message",
        f" {e}{e}   - send the escape character by typing it twice",
        "(Note that escapes are only recognized immediately after newline.)",
    ]
    return "\r\n".join(lines) + "\r\n"


def parse_escape_char(value: str) -> str | None:
    """`-e` / EscapeChar: `none` turns escapes off; otherwise one character or `^X` (control).

    Returns the escape character, or None for `none`; ValueError with OpenSSH's wording otherwise.
    """
    if value == "none":
        return None
    if len(value) == 1:
        return value
    if len(value) == 2 and value[0] == "^" and value[1].isascii():
        return chr(ord(value[1].upper()) & 0x1F)
    raise ValueError(f"Bad escape character '{value}'.")


@dataclass
class EscapeFilter:
    """The escape state machine. Feed it what the user typed; it returns the output items:
    `bytes` to send to the remote side and `EscapeAction`s, in input order."""

    escape_char: str = DEFAULT_ESCAPE_CHAR
    at_line_start: bool = True  # the session's first byte counts as the start of a line
    pending: bool = False  # the escape character was seen at a line start; waiting for the next
    _esc: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        code = self.escape_char.encode("latin-1")
        if len(code) != 1:
            raise ValueError(f"the escape character must be one byte, got {self.escape_char!r}")
        self._esc = code[0]

    def feed(self, data: bytes) -> list[bytes | EscapeAction]:
        """Process typed bytes; consecutive bytes to send are returned as one chunk."""
        out: list[bytes | EscapeAction] = []
        buf = bytearray()

        def flush() -> None:
            if buf:
                out.append(bytes(buf))
                buf.clear()

        for ch in data:
            if self.pending:
                self.pending = False
                if ch == ord("."):
                    flush()
                    out.append(EscapeAction.DISCONNECT)
                    continue
                if ch == ord("?"):
                    flush()
                    out.append(EscapeAction.HELP)
                    # still at the start of a line: another escape may follow at once (OpenSSH)
                    continue
                if ch != self._esc:
                    # not an escape after all: the escape character goes through, then this byte
                    buf.append(self._esc)
                # the doubled escape character sends one of it (and falls through below)
            elif self.at_line_start and ch == self._esc:
                self.pending = True
                continue
            buf.append(ch)
            self.at_line_start = ch in (0x0D, 0x0A)
        flush()
        return out
