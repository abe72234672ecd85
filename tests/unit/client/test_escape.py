"""The escape state machine: OpenSSH's ~. ~? ~~, only at the start of a line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from teleport.client.escape import EscapeAction, EscapeFilter, help_text, parse_escape_char

D, H = EscapeAction.DISCONNECT, EscapeAction.HELP


def feed_all(chunks: list[bytes], char: str = "~") -> list[bytes | EscapeAction]:
    f = EscapeFilter(char)
    out: list[bytes | EscapeAction] = []
    for c in chunks:
        out += f.feed(c)
    return out


def sent(items: list[bytes | EscapeAction]) -> bytes:
    return b"".join(i for i in items if isinstance(i, bytes))


def test_tilde_dot_at_session_start_disconnects() -> None:
    assert feed_all([b"~."]) == [D]


def test_tilde_dot_after_newline_or_cr_disconnects_after_sending_the_line() -> None:
    assert feed_all([b"ls\r~."]) == [b"ls\r", D]
    assert feed_all([b"ls\n~.rest"]) == [b"ls\n", D, b"rest"]


def test_tilde_in_the_middle_of_a_line_is_sent() -> None:
    assert feed_all([b"echo ~.x"]) == [b"echo ~.x"]
    assert feed_all([b"a~?"]) == [b"a~?"]


def test_help_lists_sequences_and_keeps_line_start() -> None:
    assert feed_all([b"\r~?"]) == [b"\r", H]
    # after ~? another escape works at once, as in OpenSSH
    assert feed_all([b"~?~."]) == [H, D]
    text = help_text("~")
    assert "~." in text and "~?" in text and "~~" in text and text.endswith("\r\n")


def test_double_tilde_sends_one_and_ends_line_start() -> None:
    assert sent(feed_all([b"~~."])) == b"~."
    assert feed_all([b"~~", b"."]) == [b"~", b"."]


def test_other_char_after_tilde_sends_both() -> None:
    assert sent(feed_all([b"~x"])) == b"~x"
    assert sent(feed_all([b"~\r~."])[:1]) == b"~\r"
    assert feed_all([b"~\r~."])[-1] == D


def test_split_across_reads() -> None:
    assert feed_all([b"abc\r", b"~", b"."]) == [b"abc\r", D]


def test_other_escape_char() -> None:
    assert feed_all([b"%."], "%") == [D]
    assert feed_all([b"~."], "%") == [b"~."]


def test_parse_escape_char() -> None:
    assert parse_escape_char("none") is None
    assert parse_escape_char("~") == "~"
    assert parse_escape_char("^]") == "\x1d"
    with pytest.raises(ValueError, match="Bad escape character"):
        parse_escape_char("ab")


@given(st.binary(max_size=200))
def test_without_tilde_everything_passes_unchanged(data: bytes) -> None:
    data = data.replace(b"~", b"")
    assert sent(feed_all([data])) == data


@given(st.lists(st.binary(max_size=30), max_size=10))
def test_chunking_does_not_change_the_result(chunks: list[bytes]) -> None:
    whole = feed_all([b"".join(chunks)])
    parts = feed_all(chunks)
    assert sent(whole) == sent(parts)
    assert [i for i in whole if not isinstance(i, bytes)] == [i for i in parts if not isinstance(i, bytes)]
